r"""Claim E13: the attention paths of the maps beyond FAVOR+ (oprf, saderf, hybrid) are exact.

The claims E1-E8 compare the engine with :mod:`theory.collapsed_forms`, whose maps need no
parameters. The GERF maps (formulas §6.3-6.4) and the angular hybrid (formulas §6.5) have
collapsed forms too, given their parameters:

* ``oprf`` / ``saderf`` at :math:`A` and :math:`\Psi` (:math:`\Psi = I` for oprf):
  :math:`\hat K(x, y) = \frac{(1-4A)^{d/2}}{m}\sum_r e^{2A\lVert\omega_r\rVert^2 +
  \sqrt{1-4A}\,\omega_r^T(\Psi x + \Psi^{-1} y) - \lVert\Psi x\rVert^2/2 -
  \lVert\Psi^{-1}y\rVert^2/2}`;
* ``hybrid`` with sign rows :math:`\omega'_i`: :math:`\hat K = \hat\lambda\hat K_{hyp} +
  (1-\hat\lambda)\hat K_{trig}`, :math:`\hat\lambda = \frac12 - \frac1{2m_\lambda}\sum_i
  \mathrm{sgn}(\omega_i'^Tx)\,\mathrm{sgn}(\omega_i'^Ty)` (:math:`\mathrm{sgn}(0) = 1`), and
  attention's normaliser sign rule: a row whose estimated normaliser is :math:`\le 0` is
  zero.

:func:`check_parametrised_map_paths` evaluates these in float64 (NumPy only, nothing from
``favor`` but the parameters it is handed: :math:`A` and :math:`\Psi` from the public
:func:`favor.gerf.fit_feature_params`) and compares ``favor.favor_attention`` with them on
every path: bidirectional, causal, padding masks, per head, the parameters given or
fitted inside the engine; and the public hybrid feature function's dot products. Any
deviation above rounding is a bug (the same tolerance as E1-E4). Whether the fitted
parameters are *good* is not this claim's business: any :math:`A < 1/8` and
:math:`\Psi > 0` keep the estimator unbiased; G3 checks :math:`A^*`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from theory.collapsed_forms import gerf_log_kernel
from theory.engine_paths import FLOAT64_TOLERANCE, _deviation, _exact, engine_inputs
from theory.results import ClaimCheck

__all__ = ["PARAMETRISED_MAPS", "check_parametrised_map_paths", "parametrised_attention"]

#: The maps this claim covers (each with its collapsed form below).
PARAMETRISED_MAPS = ("oprf", "saderf", "hybrid")
_N_SIGNS = 4  # the hybrid map's sign rows (favor's registry entry ``sign_rows``)


def _sq(x: np.ndarray) -> np.ndarray:
    return np.einsum("...i,...i->...", x, x)


def _hybrid_kernel(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``K_hat(x_i, y_j)`` of the angular hybrid; ``w`` holds the base rows, then the sign rows."""
    base, signs_rows = w[:-_N_SIGNS], w[-_N_SIGNS:]
    m = base.shape[0]
    sx = np.where(x @ signs_rows.T >= 0, 1.0, -1.0)
    sy = np.where(y @ signs_rows.T >= 0, 1.0, -1.0)
    lam = 0.5 - (sx @ sy.T) / (2 * _N_SIGNS)
    a, c = x @ base.T, y @ base.T
    half = 0.5 * (_sq(x)[:, None] + _sq(y)[None, :])
    cosh = 0.5 * (np.exp(a) @ np.exp(c).T + np.exp(-a) @ np.exp(-c).T) / m
    cos = (np.cos(a) @ np.cos(c).T + np.sin(a) @ np.sin(c).T) / m
    return lam * np.exp(-half) * cosh + (1 - lam) * np.exp(half) * cos


def parametrised_attention(
    feature_map: str,
    queries: np.ndarray,
    keys: np.ndarray,
    values: np.ndarray,
    projection: np.ndarray,
    *,
    a: np.ndarray | None = None,
    psi: np.ndarray | None = None,
    causal: bool = False,
    key_padding_mask: np.ndarray | None = None,
) -> np.ndarray:
    r"""FAVOR attention :math:`\hat D^{-1}\hat A V` of oprf, saderf or hybrid, collapsed form.

    Parameters
    ----------
    feature_map : {"oprf", "saderf", "hybrid"}
        The map.
    queries, keys : numpy.ndarray of shape (..., L, d)
        Unscaled inputs (:math:`s = d^{-1/4}` applied here, after :math:`\Psi^{\pm1}`).
    values : numpy.ndarray of shape (..., L_k, d_v)
        Values.
    projection : numpy.ndarray of shape (m, d) or (H, m, d)
        One projection or one per head (hybrid: base rows then its 4 sign rows).
    a, psi : numpy.ndarray, optional
        GERF :math:`A` of shape ``lead`` and :math:`\Psi` of shape ``lead + (d,)``.
    causal : bool, default=False
        Query ``t`` sees keys ``<= t`` only.
    key_padding_mask : numpy.ndarray of shape (..., L_k), optional
        True marks a padded key.

    Returns
    -------
    numpy.ndarray of shape (..., L_q, d_v)
        The output, float64; zero rows where no key is visible or (hybrid) where the
        estimated normaliser is not positive.
    """
    q = np.asarray(queries, dtype=np.float64)
    k = np.asarray(keys, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    w = np.asarray(projection, dtype=np.float64)
    lead, (n_q, d), n_k = q.shape[:-2], q.shape[-2:], k.shape[-2]
    s = d**-0.25
    mask = np.zeros((*lead, n_k), bool) if key_padding_mask is None else key_padding_mask
    qg, kg = q.reshape(-1, n_q, d), k.reshape(-1, n_k, d)
    vg, mg = v.reshape(-1, n_k, v.shape[-1]), np.broadcast_to(mask, (*lead, n_k)).reshape(-1, n_k)
    groups = qg.shape[0]
    ag = None if a is None else np.broadcast_to(a, lead).reshape(groups)
    pg = np.ones((groups, d)) if psi is None else np.broadcast_to(psi, (*lead, d)).reshape(-1, d)
    heads = w.shape[0] if w.ndim == 3 else 1
    visible_base = np.tril(np.ones((n_q, n_k), bool)) if causal else np.ones((n_q, n_k), bool)
    out = np.zeros((groups, n_q, v.shape[-1]))
    for g in range(groups):
        wg = w[g % heads] if w.ndim == 3 else w
        visible = visible_base & ~mg[g][None, :]
        if feature_map == "hybrid":
            weights = np.where(visible, _hybrid_kernel(s * qg[g], s * kg[g], wg), 0.0)
            keep = weights.sum(1, keepdims=True) > 0
        else:
            log_k = gerf_log_kernel(s * qg[g] * pg[g], s * kg[g] / pg[g], wg, float(ag[g]))
            log_k = np.where(visible, log_k, -np.inf)
            top = log_k.max(1, keepdims=True)
            weights = np.where(visible, np.exp(log_k - np.where(np.isfinite(top), top, 0.0)), 0)
            keep = weights.sum(1, keepdims=True) != 0
        den = weights.sum(1, keepdims=True)
        out[g] = np.where(keep, (weights @ vg[g]) / np.where(keep, den, 1.0), 0.0)
    return out.reshape((*lead, n_q, v.shape[-1]))


def check_parametrised_map_paths(
    *,
    tolerance: float = FLOAT64_TOLERANCE,
    attention: Callable[..., Any] | None = None,
    name: str | None = None,
) -> ClaimCheck:
    r"""Every float64 attention path of oprf, saderf and hybrid equals the collapsed form.

    Inputs of :func:`theory.engine_paths.engine_inputs` (:math:`m = 20`, :math:`d = 8`, a
    partial block). GERF parameters: :func:`favor.gerf.fit_feature_params` on the inputs
    (with the padding mask where one is used), passed as ``feature_params``, and once left
    to the engine's own fit. Hybrid: the base rows followed by 4 i.i.d. sign rows.

    Parameters
    ----------
    tolerance : float, default=FLOAT64_TOLERANCE
        Relative tolerance.
    attention : callable, optional
        Attention under test (default ``favor.favor_attention``).
    name : str, optional
        Claim name.

    Returns
    -------
    ClaimCheck
        The largest relative deviation over the paths.
    """
    import favor
    from favor.gerf import fit_feature_params
    from favor.hybrid import hybrid_features

    att = attention or favor.favor_attention
    x = engine_inputs()
    q, k, v, mask, w = x["queries"], x["keys"], x["values"], x["mask"], x["projection"]
    signs = np.random.default_rng(12).standard_normal((x["projections"].shape[0], _N_SIGNS, 8))
    dev: dict[str, float] = {}
    for fmap in ("oprf", "saderf"):
        for causal, masked in ((False, False), (True, False), (True, True), (False, True)):
            m_arg = mask if masked else None
            params = fit_feature_params(q, k, features=fmap, key_padding_mask=m_arg)
            ref = parametrised_attention(fmap, q, k, v, w, a=params.a, psi=params.psi,
                                         causal=causal, key_padding_mask=m_arg)  # fmt: skip
            label = f"{fmap} {'causal' if causal else 'bidirectional'}" + (
                ", masked" if masked else ""
            )
            out = att(q, k, v, projection=w, features=fmap, feature_params=params,
                      causal=causal, key_padding_mask=m_arg)  # fmt: skip
            dev[label] = _deviation(out, ref)
            if not causal:
                out = att(q, k, v, projection=w, features=fmap, key_padding_mask=m_arg)
                dev[label + ", fitted by the engine"] = _deviation(out, ref)
        params = fit_feature_params(q, k, features=fmap, key_padding_mask=mask)
        ref = parametrised_attention(fmap, q, k, v, x["projections"], a=params.a,
                                     psi=params.psi, causal=True, key_padding_mask=mask)  # fmt: skip
        out = att(q, k, v, projection=x["projections"], per_head=True, features=fmap,
                  feature_params=params, causal=True, key_padding_mask=mask)  # fmt: skip
        dev[f"{fmap} causal, masked, per head"] = _deviation(out, ref)
    wh = np.concatenate([w, signs[0]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", favor.FavorAccuracyWarning)
        for causal, masked in ((False, False), (True, True)):
            m_arg = mask if masked else None
            ref = parametrised_attention("hybrid", q, k, v, wh, causal=causal,
                                         key_padding_mask=m_arg)  # fmt: skip
            out = att(q, k, v, projection=wh, features="hybrid", causal=causal,
                      key_padding_mask=m_arg)  # fmt: skip
            dev[f"hybrid {'causal, masked' if causal else 'bidirectional'}"] = _deviation(out, ref)
        wph = np.concatenate([x["projections"], signs], axis=1)
        ref = parametrised_attention("hybrid", q, k, v, wph, causal=True, key_padding_mask=mask)
        out = att(q, k, v, projection=wph, per_head=True, features="hybrid", causal=True,
                  key_padding_mask=mask)  # fmt: skip
        dev["hybrid causal, masked, per head"] = _deviation(out, ref)
    s = q.shape[-1] ** -0.25
    pts, other = s * q[0, 0, :12], s * k[0, 0, :12]
    est = (
        hybrid_features(pts, w, signs[0], role="query")
        @ hybrid_features(other, w, signs[0], role="key").T
    )
    dev["hybrid feature function"] = _deviation(est, _hybrid_kernel(pts, other, wh))
    return _exact(
        name or "oprf, saderf, hybrid: every float64 attention path = collapsed form",
        dev,
        tolerance,
        note=f"m = {w.shape[0]}, d = {w.shape[1]} (partial block)",
    )
