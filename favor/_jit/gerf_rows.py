r"""Jit split form of the generalised exponential (GERF) features of ``"oprf"`` and ``"saderf"``.

With the registry's packed parameters ``params = [A, log_const, |w_1|^2, ..., |w_m|^2, ...]``
(:func:`favor.gerf.pack_params`) and logits :math:`\ell = W x'`:

.. math::
    e_r = \exp(b\ell_r + A\lVert\omega_r\rVert^2 - t), \quad
    t = \max_r (b\ell_r + A\lVert\omega_r\rVert^2), \quad
    r = t + \mathrm{log\_const} - h, \quad b = \sqrt{1 - 4A},

so :math:`e^{r} e` is exactly the GERF feature vector of :mod:`favor.gerf` (formulas §6.3).
The attention engine does not call this form for these maps: it fits their parameters per
(batch..., head) group and runs the positive scans on augmented inputs
(:func:`favor.gerf.prepare_attention`); this form serves single-projection uses and the
registry's contract tests. Its slow twin is ``tests/favor/test_gerf_attention.py::_rows_reference``.
"""

from __future__ import annotations

import numpy as np

from favor._jit.feature_rows import exp_nonpositive, jit_rows

__all__ = ["gerf"]


@jit_rows
def gerf(logits, half_sq_norms, params, is_key, out, log_scale, shifted, scratch):
    """GERF rows (module docstring)."""
    n, m = logits.shape
    a = params[0]
    b = np.sqrt(1.0 - 4.0 * a)
    for i in range(n):
        top = -np.inf
        for r in range(m):
            value = b * logits[i, r] + a * params[2 + r]
            shifted[r] = value
            top = value if value > top else top
        for r in range(m):
            shifted[r] = shifted[r] - top
        exp_nonpositive(shifted[:m], out[i], scratch[:m])
        log_scale[i] = top + params[1] - half_sq_norms[i]
