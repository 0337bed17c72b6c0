r"""Jit split form of the generalised exponential (GERF) features of ``"oprf"`` and ``"saderf"``.

With the registry's packed parameters ``params = [A, log_const, |w_1|^2, ..., |w_m|^2, ...]``
(:func:`favor.gerf.pack_params`) and logits :math:`\ell = W x'`:

.. math::
    e_r = \exp(b\ell_r + A\lVert\omega_r\rVert^2 - t), \quad
    t = \max_r (b\ell_r + A\lVert\omega_r\rVert^2), \quad
    r = t + \mathrm{log\_const} - h, \quad b = \sqrt{1 - 4A},

so :math:`e^{r} e` is exactly the GERF feature vector of :mod:`favor.gerf` (formulas §6.3).
The attention scans call it with one packed row per (batch..., head) group
(:func:`favor.gerf.prepare_attention`), decoding one group at a time. Its slow twin is
``tests/favor/test_gerf_attention.py::_rows_reference``.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from favor._jit.feature_rows import exp_nonpositive, jit_rows

__all__ = ["column_moments", "gerf"]


@numba.njit(cache=True, nogil=True, parallel=True)
def column_moments(x, stride, weights, sums, squares, counts):  # pragma: no cover - compiled
    r"""Per-group column sums and sums of squares of every ``stride``-th row, in float64.

    For group ``g`` and the rows :math:`l = 0, s, 2s, \dots` with weights :math:`w_l` (1
    when ``weights`` is empty): ``sums[g] =`` :math:`\sum_l w_l x_l`, ``squares[g] =``
    :math:`\sum_l w_l x_l^2` (per coordinate) and ``counts[g] =`` :math:`\sum_l w_l`,
    accumulated in float64 in row order (groups in parallel): one pass over the sampled
    rows, no copy (the moments of :func:`favor.gerf.fit_gerf_parameters`).

    Parameters
    ----------
    x : array of shape (G, L, d), float32 or float64 (any strides)
    stride : int
    weights : float64 array of shape (G, L), or (0, 0) for all ones
    sums, squares : float64 arrays of shape (G, d)
        Written in place.
    counts : float64 array of shape (G,)
        Written in place.
    """
    n_groups, n_rows, d = x.shape
    weighted = weights.shape[0] > 0
    for g in prange(n_groups):
        count = 0.0
        for j in range(d):
            sums[g, j] = 0.0
            squares[g, j] = 0.0
        for i in range(0, n_rows, stride):
            w = weights[g, i] if weighted else 1.0
            count += w
            for j in range(d):
                value = np.float64(x[g, i, j])
                sums[g, j] += w * value
                squares[g, j] += w * value * value
        counts[g] = count


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
