r"""Jit kernel for the element-wise part of the exponential feature maps.

After the projection GEMM, the positive and hyperbolic maps (:func:`favor.features.positive`,
:func:`favor.features.hyperbolic`) need :math:`\exp(\ell_{ir} - c_i)` for every logit
:math:`\ell_{ir}` and a per-row shift :math:`c_i` (formulas §2.3). NumPy does this as a
broadcast subtraction and ``np.exp``: two passes over the ``n x m`` output, the exponential
at about 3 ns per float32 element on this project's reference machine. The loop here does
one pass per row with the vectorisable exponential of :mod:`favor._jit.feature_rows`:

.. math::
    \exp(\ell_{ir} - c_i) = \exp(\ell_{ir} - M_i)\,\exp(M_i - c_i),
    \qquad M_i = \max_r \ell_{ir},

so the vectorised exponential only ever sees arguments :math:`\le 0` (its domain), and the
row's size :math:`\exp(M_i - c_i)` is one scalar exponential. A row whose size overflows
is computed element by element instead, so exactly the entries that ``np.exp(l - c)`` sends
to ``inf`` are ``inf``; entries whose first factor underflows while the size is above 1
are recomputed directly, so nothing representable is flushed to 0. The rounding error is that of ``np.exp(l - c)`` in the same dtype
(relative :math:`\epsilon\,(|\ell - M| + |M - c|)` from rounding the arguments) plus a
few units in the last place.

Contract (``favor._jit`` rules): no validation, no RNG, C-contiguous float32 or float64
arrays of one dtype, finite logits. The slow twin is
``tests/favor/test_features.py::test_shifted_exp_matches_numpy``.
"""

from __future__ import annotations

import numba
import numpy as np

from favor._jit.feature_rows import _LANES, _row_max, exp_nonpositive

__all__ = ["shifted_exp"]


@numba.njit(cache=True, nogil=True)
def shifted_exp(logits, shift):  # pragma: no cover - compiled
    r"""In place: ``logits[i, r] = exp(logits[i, r] - shift[i])`` (module docstring).

    Runs on the calling thread: it follows the projection GEMM, whose BLAS threads keep
    spinning for a while after it returns, and a parallel region started then measured
    slower than this serial loop (10 ms against 8.7 ms for 20000 x 256 float32).

    Parameters
    ----------
    logits : array of shape (n, m), C-contiguous
        Overwritten with the exponentials.
    shift : array of shape (n,), same dtype
        The per-row shifts :math:`c_i`.
    """
    n, m = logits.shape
    shifted = np.empty(m, dtype=logits.dtype)
    scratch = np.empty(m, dtype=logits.dtype)
    lanes = np.empty(_LANES, dtype=logits.dtype)
    for i in range(n):
        row = logits[i]
        top = _row_max(row, False, lanes)
        arg = top - shift[i]
        size = np.exp(arg)
        if size == np.inf:
            # The row's largest feature overflows; the others may not: element by element.
            for r in range(m):
                row[r] = np.exp(row[r] - shift[i])
            continue
        for r in range(m):
            shifted[r] = row[r] - top
        exp_nonpositive(shifted, row, scratch)
        for r in range(m):
            row[r] = row[r] * size
        if size > 1:
            # exp(l - M) flushed to 0 below the dtype's normal range, while its product
            # with a size above 1 may be representable: those entries directly.
            for r in range(m):
                if row[r] == 0:
                    row[r] = np.exp(shifted[r] + arg)
