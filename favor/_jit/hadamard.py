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


@numba.njit(cache=True, parallel=True)
def sorf_project(x: np.ndarray, signs: np.ndarray, lengths: np.ndarray, out: np.ndarray) -> None:
    r"""``out = x @ W.T`` for a stacked SORF projection ``W``, without forming ``W``.

    Block ``b`` of ``W`` (rows ``b p`` to ``b p + p - 1``, the last block possibly cut)
    is :math:`\operatorname{diag}(\ell_b)\, H_u D_{b,0} H_u D_{b,1} H_u D_{b,2}` restricted
    to its first ``d`` columns, where :math:`H_u` is the unnormalised Hadamard matrix; the
    caller folds the normalisation :math:`p^{-3/2}` into ``lengths``.

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
    for i in numba.prange(n):
        buf = np.empty(p, dtype=x.dtype)
        for b in range(n_blocks):
            s0 = signs[b, 0]
            s1 = signs[b, 1]
            s2 = signs[b, 2]
            for j in range(d):
                buf[j] = x[i, j] * s2[j]
            for j in range(d, p):
                buf[j] = 0
            _fwht_inplace(buf)
            for j in range(p):
                buf[j] *= s1[j]
            _fwht_inplace(buf)
            for j in range(p):
                buf[j] *= s0[j]
            _fwht_inplace(buf)
            start = b * p
            stop = min(start + p, m)
            for j in range(start, stop):
                out[i, j] = buf[j - start] * lengths[j]
