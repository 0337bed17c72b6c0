r"""Attention-level error helpers for FAVOR+ with i.i.d. positive features (formulas §1.2-1.3).

Part of the oracle, with :mod:`theory.closed_forms` (the same rules): NumPy only. Entry
MSEs of the unnormalised attention matrix follow from Lemma 2; the bias and MSE of the
normalised matrix :math:`\hat D^{-1}\hat A` follow, to first order in :math:`1/m`, from
the exact covariances of the entries of one row.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from theory.closed_forms import _m, _sq, mse_positive

__all__ = [
    "attention_entry_mse",
    "normalised_attention_first_order",
    "normalised_attention_second_order",
]


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


def normalised_attention_second_order(queries: Any, keys: Any, n_components: int) -> dict[str, Any]:
    r"""Bias and MSE of the normalised FAVOR+ attention matrix to second order in :math:`1/m`.

    For one query row write :math:`\hat A_j = A_j + \varepsilon_j`, :math:`\eta =
    \sum_j\varepsilon_j`, :math:`t = \eta/D`, :math:`u_j = (\varepsilon_j - P_j\eta)/D`;
    then exactly :math:`\hat P_j - P_j = u_j/(1 + t)`. With i.i.d. positive features
    the single-projection estimates :math:`Y_j = \Lambda_j e^{\omega^T z_j}` have all
    joint moments in closed form, :math:`E\prod_{a \in S} Y_a = \prod_{a\in S}\Lambda_a
    \exp(\lVert\sum_{a \in S} z_a\rVert^2/2)` (Performers Lemma 1), so the covariance
    :math:`C/m` and third central moment :math:`K/m^2` of :math:`\varepsilon` are exact.
    Expanding :math:`(1+t)^{-1}` and :math:`(1+t)^{-2}` and keeping every
    :math:`O(m^{-2})` term (fourth moments by their Gaussian part, exact to that order):

    .. math::
        \mathrm{bias}_j = \underbrace{-E[u_j t]}_{O(1/m)}
            + \underbrace{E[u_j t^2] - 3E[u_j t]E[t^2]}_{O(1/m^2)},
        \qquad
        \mathrm{MSE}_j = \underbrace{E[u_j^2]}_{O(1/m)}
            + \underbrace{-2E[u_j^2 t] + 3(E[u_j^2]E[t^2] + 2E[u_j t]^2)}_{O(1/m^2)},

    with :math:`E[u_j t^2] = (K_{j\cdot\cdot} - P_j K_{\cdot\cdot\cdot})/(m^2D^3)` and
    :math:`E[u_j^2 t] = (K_{jj\cdot} - 2P_jK_{j\cdot\cdot} + P_j^2K_{\cdot\cdot\cdot})/(m^2D^3)`.
    The remainders are :math:`O(m^{-3})`. Derived here (formulas §1.3 states only the
    leading order).

    Parameters
    ----------
    queries : array_like of shape (L_q, d)
        Queries (unscaled).
    keys : array_like of shape (L_k, d)
        Keys (unscaled).
    n_components : int
        :math:`m`.

    Returns
    -------
    dict
        ``attention`` (P), ``bias1``, ``bias2``, ``mse1``, ``mse2`` (each ``(L_q, L_k)``),
        and ``u_t`` -- the exact means ``E[u t]`` (so ``bias1 = -u_t``).
    """
    q = np.asarray(queries, dtype=np.float64)
    k = np.asarray(keys, dtype=np.float64)
    s = q.shape[-1] ** -0.25
    q, k = s * q, s * k
    m = float(_m(n_components))
    n_q, n_k = q.shape[0], k.shape[0]
    out = {name: np.empty((n_q, n_k)) for name in ("bias1", "bias2", "mse1", "mse2", "u_t")}
    a = np.exp(q @ k.T)
    p = a / a.sum(-1, keepdims=True)
    for i in range(n_q):
        z = q[i] + k  # (L_k, d)
        g = z @ z.T
        dg = np.diag(g)
        log_lam = -(q[i] @ q[i] + _sq(k)) / 2
        second = np.exp(log_lam[:, None] + log_lam[None, :] + (dg[:, None] + dg[None, :]) / 2 + g)
        third = np.exp(
            log_lam[:, None, None] + log_lam[None, :, None] + log_lam[None, None, :]
            + (dg[:, None, None] + dg[None, :, None] + dg[None, None, :]) / 2
            + g[:, :, None] + g[:, None, :] + g[None, :, :]
        )  # fmt: skip
        ai = a[i]
        cov = second - np.outer(ai, ai)
        kappa = (
            third
            - ai[:, None, None] * second[None, :, :]
            - ai[None, :, None] * second[:, None, :]
            - ai[None, None, :] * second[:, :, None]
            + 2 * ai[:, None, None] * ai[None, :, None] * ai[None, None, :]
        )
        d_i = ai.sum()
        pi = p[i]
        c_row, c_all = cov.sum(1), cov.sum()
        k_jdd, k_jjd, k_all = kappa.sum((1, 2)), np.einsum("jjc->j", kappa), kappa.sum()
        e_tt = c_all / (m * d_i**2)
        e_ut = (c_row - pi * c_all) / (m * d_i**2)
        e_uu = (np.diag(cov) - 2 * pi * c_row + pi**2 * c_all) / (m * d_i**2)
        e_utt = (k_jdd - pi * k_all) / (m**2 * d_i**3)
        e_uut = (k_jjd - 2 * pi * k_jdd + pi**2 * k_all) / (m**2 * d_i**3)
        out["u_t"][i] = e_ut
        out["bias1"][i] = -e_ut
        out["bias2"][i] = e_utt - 3 * e_ut * e_tt
        out["mse1"][i] = e_uu
        out["mse2"][i] = -2 * e_uut + 3 * (e_uu * e_tt + 2 * e_ut**2)
    out["attention"] = p
    return out
