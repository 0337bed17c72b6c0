r"""Attention-level error helpers for FAVOR+ with i.i.d. positive features (formulas §1.2-1.3).

Part of the oracle (:mod:`theory.closed_forms` re-exports every name): NumPy only. Entry
MSEs of the unnormalised attention matrix follow from Lemma 2; the bias and MSE of the
normalised matrix :math:`\hat D^{-1}\hat A` follow, to first order in :math:`1/m`, from
the exact covariances of the entries of one row.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from theory.closed_forms import _m, _sq, mse_positive

__all__ = ["attention_entry_mse", "normalised_attention_first_order"]


def attention_entry_mse(queries: Any, keys: Any, n_components: int) -> np.ndarray:
    r"""Per-entry MSE of the unnormalised FAVOR+ attention matrix, i.i.d. positive features.

    :math:`\hat A_{ij} = \varphi(\tilde q_i)^T\varphi(\tilde k_j)` with
    :math:`\tilde q = d^{-1/4} q` (formulas §1.2) is unbiased for
    :math:`A_{ij} = e^{q_i^T k_j/\sqrt d}` with the Lemma 2 MSE of :func:`mse_positive`.

    Parameters
    ----------
    queries : array_like of shape (L_q, d)
        Queries (unscaled).
    keys : array_like of shape (L_k, d)
        Keys (unscaled).
    n_components : int
        Number of projections :math:`m`.

    Returns
    -------
    numpy.ndarray of shape (L_q, L_k)
        The MSE of each entry.
    """
    q = np.asarray(queries, dtype=np.float64)
    k = np.asarray(keys, dtype=np.float64)
    s = q.shape[-1] ** -0.25
    return mse_positive(s * q[:, None, :], s * k[None, :, :], n_components)


def normalised_attention_first_order(
    queries: Any, keys: Any, n_components: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""First-order (delta-method) bias and MSE of the normalised FAVOR+ attention matrix.

    With i.i.d. positive features, :math:`\hat P_{ij} = \hat A_{ij} / \hat D_i`,
    :math:`\hat D_i = \sum_j \hat A_{ij}` and the exact entry covariances (one projection)

    .. math::
        m\,C_{jk} = \Lambda_{ij}\Lambda_{ik}\ldots = e^{-\lVert\tilde q\rVert^2
        - (\lVert\tilde k_j\rVert^2 + \lVert\tilde k_k\rVert^2)/2
        + \lVert 2\tilde q + \tilde k_j + \tilde k_k\rVert^2/2} - A_{ij}A_{ik},

    a second-order Taylor expansion of the ratio gives (formulas §1.3: "nearly unbiased")

    .. math::
        E\hat P_{ij} - P_{ij} \approx \frac{P_{ij}\mathrm{Var}\hat D_i - \mathrm{Cov}(\hat A_{ij}, \hat D_i)}{D_i^2},
        \qquad
        E(\hat P_{ij} - P_{ij})^2 \approx \frac{C_{jj} - 2P_{ij}\mathrm{Cov}(\hat A_{ij}, \hat D_i)
        + P_{ij}^2\mathrm{Var}\hat D_i}{D_i^2},

    both :math:`O(1/m)`, with :math:`O(1/m^2)` remainders. Derived here.

    Parameters
    ----------
    queries : array_like of shape (L_q, d)
        Queries (unscaled; the :math:`d^{-1/4}` scaling is applied here).
    keys : array_like of shape (L_k, d)
        Keys (unscaled).
    n_components : int
        Number of projections :math:`m`.

    Returns
    -------
    attention : numpy.ndarray of shape (L_q, L_k)
        The exact normalised attention matrix :math:`P = D^{-1}A`.
    bias : numpy.ndarray of shape (L_q, L_k)
        First-order bias of :math:`\hat P`.
    mse : numpy.ndarray of shape (L_q, L_k)
        First-order MSE of :math:`\hat P`.
    """
    q = np.asarray(queries, dtype=np.float64)
    k = np.asarray(keys, dtype=np.float64)
    s = q.shape[-1] ** -0.25
    q, k = s * q, s * k
    m = float(_m(n_components))
    a = np.exp(q @ k.T)  # (Lq, Lk)
    qq = _sq(q)[:, None, None]
    kk = _sq(k)
    z = 2 * q[:, None, None, :] + k[None, :, None, :] + k[None, None, :, :]
    second = np.exp(-qq - (kk[None, :, None] + kk[None, None, :]) / 2 + _sq(z) / 2)
    cov = (second - a[:, :, None] * a[:, None, :]) / m  # (Lq, Lk, Lk)
    dsum = a.sum(-1)
    p = a / dsum[:, None]
    var_d = cov.sum((-1, -2))
    cov_ad = cov.sum(-1)
    diag = np.einsum("ijj->ij", cov)
    bias = (p * var_d[:, None] - cov_ad) / dsum[:, None] ** 2
    mse = (diag - 2 * p * cov_ad + p**2 * var_d[:, None]) / dsum[:, None] ** 2
    return p, bias, mse
