r"""Jit split form of the angular hybrid features (``"hybrid"``; :mod:`favor.hybrid`).

The logits have :math:`m + k` columns: :math:`\ell_r = \omega_r^T x'` for the :math:`m`
base rows, then the :math:`k` sign rows (``k = params[0]``, the registry's
``sign_rows``), with signs :math:`s_j = \mathrm{sgn}(\omega_j'^T x')` (:math:`\mathrm{sgn}(0)
= +1`). With :math:`M = \max_r |\ell_r|`, :math:`h = \lVert x'\rVert^2/2`,
the two base parts have log-scales

.. math::
    r_{hyp} = M - h - \tfrac12\log 2m, \qquad r_{trig} = h - \tfrac12\log m,

and the row's log-scale is :math:`r = \max(r_{hyp}, r_{trig})`. The shape row is

.. math::
    e = \big(c^{hyp} \otimes e^{r_{hyp} - r}(e^{\ell - M}, e^{-\ell - M}),\ \
           c^{trig} \otimes e^{r_{trig} - r}(\cos\ell, \sin\ell)\big),

with :math:`c^{hyp} = (2^{-1/2}, \mp(2k)^{-1/2} s)` (minus for queries, plus for keys)
and :math:`c^{trig} = (2^{-1/2}, (2k)^{-1/2} s)`, so :math:`e^{r} e` is exactly
:func:`favor.hybrid.hybrid_features` (formulas §6.5): every entry has modulus at most
:math:`2^{-1/2}`. Where one part is below the dtype's range relative to the other
(:math:`|r_{hyp} - r_{trig}|` above about 87 in float32, 708 in float64) it flushes to
zero, as its contribution is below the rounding of the other part.

The slow twin is ``tests/reference.py::hybrid_rows_reference``.
"""

from __future__ import annotations

import numpy as np

from favor._jit.feature_rows import jit_rows

__all__ = ["hybrid"]


@jit_rows
def hybrid(logits, half_sq_norms, params, is_key, out, log_scale, shifted, scratch):
    """Hybrid rows (module docstring)."""
    n, total = logits.shape
    k = int(params[0])
    m = total - k
    block = 2 * m
    offset = (k + 1) * block
    c0 = np.sqrt(0.5)
    cs = 1.0 / np.sqrt(2.0 * k)
    hyp_sign = 1.0 if is_key else -1.0
    for i in range(n):
        top = 0.0
        for r in range(m):
            a = abs(logits[i, r])
            top = a if a > top else top
        h = half_sq_norms[i]
        r_hyp = top - h - 0.5 * np.log(2.0 * m)
        r_trig = h - 0.5 * np.log(1.0 * m)
        best = r_hyp if r_hyp > r_trig else r_trig
        f_hyp = np.exp(r_hyp - best)
        f_trig = np.exp(r_trig - best)
        for r in range(m):
            shifted[r] = f_hyp * np.exp(logits[i, r] - top)
            shifted[m + r] = f_hyp * np.exp(-logits[i, r] - top)
            scratch[r] = f_trig * np.cos(logits[i, r])
            scratch[m + r] = f_trig * np.sin(logits[i, r])
        for r in range(block):
            out[i, r] = c0 * shifted[r]
            out[i, offset + r] = c0 * scratch[r]
        for j in range(k):
            s = cs if logits[i, m + j] >= 0 else -cs
            base = (j + 1) * block
            for r in range(block):
                out[i, base + r] = hyp_sign * s * shifted[r]
                out[i, offset + base + r] = s * scratch[r]
        log_scale[i] = best
