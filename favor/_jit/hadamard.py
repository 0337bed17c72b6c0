r"""Jit functions for structured (SORF) projections: the fast Walsh-Hadamard transform.

A SORF block is :math:`B = \operatorname{diag}(\ell)\, H D_1 H D_2 H D_3` with :math:`H`
the normalised ``p x p`` Walsh-Hadamard matrix (``p`` a power of two), :math:`D_i`
diagonal sign matrices and :math:`\ell` the row lengths (Yu et al. 2016, Sec. 4; formulas
§3.3). Its product with an input row is three in-place transforms of ``p log2 p`` additions
each, instead of a dense ``p x p`` matrix-vector product: :math:`B x = \ell \odot
H(D_1 H(D_2 H(D_3 x)))` (:math:`H` is symmetric). Inputs with ``d < p`` features are padded
with zeros, which is the same as keeping the first ``d`` columns of the block.

Contract of every function here (``favor._jit`` rules): no validation, no RNG, NumPy
arrays in and out, the preconditions listed in each docstring. The slow, obviously correct
twins (the dense Hadamard matrix) live in ``tests/favor/test_hadamard.py``.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["fwht_rows", "sorf_project"]


@numba.njit(cache=True, inline="always")
def _fwht_inplace(buf: np.ndarray) -> None:
    """Unnormalised in-place Walsh-Hadamard transform of a power-of-two length vector."""
    p = buf.shape[0]
    h = 1
    while h < p:
        for start in range(0, p, 2 * h):
            for j in range(start, start + h):
                a = buf[j]
                b = buf[j + h]
                buf[j] = a + b
                buf[j + h] = a - b
        h *= 2


@numba.njit(cache=True, parallel=True)
def fwht_rows(x: np.ndarray) -> None:
    r"""In place: every row of ``x`` becomes its unnormalised Walsh-Hadamard transform.

    Row ``i`` becomes :math:`H_u x_i` with :math:`(H_u)_{jk} = (-1)^{\mathrm{popcount}(j
    \,\&\, k)}` (Sylvester order), i.e. :math:`\sqrt p` times the normalised transform.

    Parameters
    ----------
    x : float32 or float64 ndarray of shape (n, p), C-contiguous
        ``p`` must be a power of two.
    """
    for i in numba.prange(x.shape[0]):
        _fwht_inplace(x[i])


#: Rows transformed together: the butterflies then run over ``_ROWS`` contiguous lanes,
#: which LLVM vectorises at every stage (a single row's first stages are too short).
_ROWS = 8


@numba.njit(cache=True)
def _fwht_lanes(buf: np.ndarray) -> None:
    """Unnormalised Walsh-Hadamard transform along axis 0 of a ``(p, _ROWS)`` buffer."""
    p = buf.shape[0]
    h = 1
    while h < p:
        for start in range(0, p, 2 * h):
            for j in range(start, start + h):
                for r in range(_ROWS):
                    a = buf[j, r]
                    b = buf[j + h, r]
                    buf[j, r] = a + b
                    buf[j + h, r] = a - b
        h *= 2


@numba.njit(cache=True)
def _signs_lanes(buf: np.ndarray, signs: np.ndarray) -> None:
    for j in range(buf.shape[0]):
        s = signs[j]
        for r in range(_ROWS):
            buf[j, r] *= s


@numba.njit(cache=True, nogil=True)
def sorf_project(x: np.ndarray, signs: np.ndarray, lengths: np.ndarray, out: np.ndarray) -> None:
    r"""``out = x @ W.T`` for a stacked SORF projection ``W``, without forming ``W``.

    Block ``b`` of ``W`` (rows ``b p`` to ``b p + p - 1``, the last block possibly cut)
    is :math:`\operatorname{diag}(\ell_b)\, H_u D_{b,0} H_u D_{b,1} H_u D_{b,2}` restricted
    to its first ``d`` columns, where :math:`H_u` is the unnormalised Hadamard matrix; the
    caller folds the normalisation :math:`p^{-3/2}` into ``lengths``. Cost
    :math:`O(n\, n_{blocks}\, p \log p)`; rows are processed eight at a time, one group
    after another. Each row's result depends on that row only, so callers run ranges of
    rows in threads (:func:`favor._threads.run_ranges`; the function releases the GIL).

    Parameters
    ----------
    x : ndarray of shape (n, d), C-contiguous
        Inputs, ``d <= p``; implicitly zero-padded to ``p`` features.
    signs : ndarray of shape (n_blocks, 3, p), same dtype as ``x``
        The diagonals :math:`D_{b,0}, D_{b,1}, D_{b,2}` (entries +-1).
    lengths : ndarray of shape (m,), same dtype as ``x``
        Row scales, ``(n_blocks - 1) p < m <= n_blocks p``.
    out : ndarray of shape (n, m), same dtype; rows contiguous (any row stride)
        Receives the projections.
    """
    n, d = x.shape
    n_blocks, _, p = signs.shape
    m = lengths.shape[0]
    for group in range((n + _ROWS - 1) // _ROWS):
        i0 = group * _ROWS
        rows = min(_ROWS, n - i0)
        buf = np.zeros((p, _ROWS), dtype=x.dtype)
        for b in range(n_blocks):
            for j in range(d):
                s = signs[b, 2, j]
                for r in range(rows):
                    buf[j, r] = x[i0 + r, j] * s
                for r in range(rows, _ROWS):
                    buf[j, r] = 0
            for j in range(d, p):
                for r in range(_ROWS):
                    buf[j, r] = 0
            _fwht_lanes(buf)
            _signs_lanes(buf, signs[b, 1])
            _fwht_lanes(buf)
            _signs_lanes(buf, signs[b, 0])
            _fwht_lanes(buf)
            start = b * p
            stop = min(start + p, m)
            for r in range(rows):
                for j in range(start, stop):
                    out[i0 + r, j] = buf[j - start, r] * lengths[j]
