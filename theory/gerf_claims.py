r"""Claims G and H: FAVOR++ / SADERF (generalised exponential features) and hybrid features.

Every check runs favor's public maps (:mod:`favor.gerf`, :mod:`favor.hybrid`) against the
oracle :mod:`theory.gerf_forms` and returns a :class:`~theory.results.ClaimCheck`:

* :func:`check_gerf_unbiased` -- GERF features at favor's fitted :math:`A` (and SADERF's
  :math:`\Psi` on the query side, :math:`\Psi^{-1}` on the key side) are unbiased for
  :math:`e^{x^T y}` (formulas §6.3-6.4);
* :func:`check_oprf_optimal_a` -- favor's :math:`A^*(\rho)` is the exact minimiser of the
  closed-form GERF variance on a :math:`(d, \rho)` grid (no Monte Carlo) [F2];
* :func:`check_favorpp_mse` -- the Monte Carlo MSE of favor's OPRF features with
  orthogonal chi-norm rows equals the FAVOR++ closed form at the optimal :math:`A` [F3-mse];
* :func:`check_attention_ratio_of_means` -- in attention, the ratio of the expected
  numerator and normaliser of OPRF attention is exact softmax attention (the constants of
  the features cancel only in the softmax-kernel form);
* :func:`check_hybrid_mse` (defined in :mod:`theory.hybrid_mse`: a median-of-means rule,
  valid for the heavy tails of the squared error) -- favor's hybrid features are unbiased
  with the derived MSE [H-mse]; :func:`check_hybrid_exact_ends` -- for equal norms their estimate is exact at
  :math:`\theta \in \{0, \pi\}` [H-mse0].

Statistics as elsewhere (formulas §8.2): per-case z-scores against the closed form with
the Bonferroni critical value at the declared false-alarm rate; pairs with
:math:`\lVert x + y\rVert^2 \le 1.2` so the exponential estimators are CLT-friendly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from theory import gerf_forms
from theory._cases import default_pairs
from theory._evidence import ratio_check
from theory._stats import FALSE_ALARM
from theory.hybrid_mse import check_hybrid_mse
from theory.montecarlo import draw_projections
from theory.results import ClaimCheck

__all__ = [
    "check_attention_ratio_of_means",
    "check_favorpp_mse",
    "check_gerf_unbiased",
    "check_hybrid_exact_ends",
    "check_hybrid_mse",
    "check_oprf_optimal_a",
    "gaussian_constant_features",
    "hybrid_trig_weighted",
    "secondary_source_a",
]

_SOURCE = "Likhosherstov et al. 2022 (CRT); formulas §6.3"


def _gerf(x: np.ndarray, w: np.ndarray, a: float) -> np.ndarray:
    from favor.gerf import gerf_features

    return gerf_features(x, w, a=a)


def _oprf_a(rho: Any) -> np.ndarray:
    from favor.gerf import oprf_a

    return oprf_a(rho)


def secondary_source_a(rho: Any, n_features: int) -> np.ndarray:
    r"""Negative control: the optimal :math:`A` as a secondary summary states it (wrong, formulas §7).

    :math:`(1 - 2\phi - \sqrt{(2\phi + 1)^2 + 8\phi})/8` with :math:`\phi = \lVert x+y\rVert^2
    = d\rho`: denominator 8 instead of 16 and no division by ``d``.
    """
    phi = np.asarray(rho, dtype=np.float64) * n_features
    return (1 - 2 * phi - np.sqrt((2 * phi + 1) ** 2 + 8 * phi)) / 8


def gaussian_constant_features(x: np.ndarray, w: np.ndarray, a: float) -> np.ndarray:
    """Negative control: GERF with the Gaussian-kernel constant, ``exp(... - |x|^2)``.

    Its dot products estimate :math:`e^{-\\lVert x-y\\rVert^2/2}`, whose key factor
    :math:`e^{-\\lVert y\\rVert^2/2}` does not cancel in a row normalisation.
    """
    from favor.gerf import gerf_features

    return gerf_features(x, w, a=a, kernel="rbf")


def _estimates(
    x: np.ndarray,
    y: np.ndarray,
    a: np.ndarray,
    sampler: str | Callable[..., np.ndarray],
    n_components: int,
    n_trials: int,
    seed: int,
    features: Callable[[np.ndarray, np.ndarray, float], np.ndarray],
) -> np.ndarray:
    """(n_trials, n_pairs) estimates f_A(x)^T f_A(y), one stacked projection per pair."""
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    d = x.shape[-1]
    out = np.empty((n_trials, x.shape[0]))
    for p in range(x.shape[0]):
        w = draw_projections(sampler, n_components, d, n_trials, rng).reshape(-1, d)
        fx = features(x[p][None], w, float(a[p]))[0].reshape(n_trials, n_components)
        fy = features(y[p][None], w, float(a[p]))[0].reshape(n_trials, n_components)
        # Each product carries 1/(n_trials m) instead of 1/m.
        out[:, p] = n_trials * np.sum(fx * fy, axis=1)
    return out


def check_gerf_unbiased(
    projection: str = "orthogonal",
    *,
    rescale: str = "none",
    n_features: int = 6,
    n_components: int = 8,
    n_trials: int = 40_000,
    seed: int = 1301,
    alpha: float = FALSE_ALARM,
    sampler: str | Callable[..., np.ndarray] | None = None,
    key_psi_power: float = -1.0,
) -> ClaimCheck:
    r"""Check :math:`E[f_A(\Psi x)^T f_A(\Psi^{-1} y)] = e^{x^T y}` at favor's fitted parameters.

    The parameters are fitted by :func:`favor.gerf.fit_gerf_parameters` on a fixed
    anisotropic calibration set (so :math:`\Psi \ne I` and :math:`A^* < 0`), then applied
    to the three default pairs.

    Parameters
    ----------
    projection : {"iid", "orthogonal"}, default="orthogonal"
        The claimed sampler.
    rescale : {"none", "saderf"}, default="none"
        OPRF (:math:`\Psi = I`) or SADERF.
    n_features, n_components, n_trials, seed, alpha
        Sizes, root seed and declared false-alarm rate.
    sampler : str or callable, optional
        Implementation under test (negative controls).
    key_psi_power : float, default=-1.0
        Keys are multiplied by :math:`\Psi^{p}`; ``+1`` (the same map on both sides) is
        the negative control.

    Returns
    -------
    ClaimCheck
        Worst ratio mean/kernel.
    """
    from favor.gerf import fit_gerf_parameters

    rng = np.random.default_rng(7)
    gain = np.exp(0.8 * rng.standard_normal(n_features))
    cal_x = 0.5 * rng.standard_normal((64, n_features)) * gain
    cal_y = 0.5 * rng.standard_normal((64, n_features)) / gain
    params = fit_gerf_parameters(cal_x, cal_y, "oprf" if rescale == "none" else rescale)
    psi = np.ones(n_features) if params.psi is None else params.psi
    x, y = default_pairs(n_features)
    a = np.full(x.shape[0], float(params.a))
    est = _estimates(
        x * psi,
        y * psi**key_psi_power,
        a,
        projection if sampler is None else sampler,
        n_components,
        n_trials,
        seed,
        _gerf,
    )
    target = np.exp(np.sum(x * y, axis=-1))
    return ratio_check(
        f"{'oprf' if rescale == 'none' else rescale} x {projection} unbiased (softmax)",
        _SOURCE + ("; SADERF formulas §6.4" if rescale == "saderf" else ""),
        est.mean(0),
        est.std(0, ddof=1) / np.sqrt(n_trials),
        target,
        alpha=alpha,
        n_trials=n_trials,
        seed=seed,
        data={"a": float(params.a), "psi": psi},
    )


def check_oprf_optimal_a(
    *,
    dims: tuple[int, ...] = (2, 4, 8, 16, 64, 256),
    rhos: tuple[float, ...] = (0.01, 0.1, 0.5, 1.0, 2.0, 8.0),
    tolerance: float = 1e-6,
    a_function: Callable[[np.ndarray, int], np.ndarray] | None = None,
) -> ClaimCheck:
    r"""Check favor's :math:`A^*(\rho)` against a numerical minimiser of the closed-form variance.

    Exact (no Monte Carlo): at each :math:`(d, \rho)` a bounded scalar minimiser of
    the log second moment (:func:`theory.gerf_forms.gerf_log_second_moment`; the variance
    is the second moment minus :math:`\mathrm{SM}^2`, which does not depend on :math:`A`), pair
    with :math:`\lVert x + y\rVert^2 = d\rho`) over :math:`A < 1/8`; pass iff every
    :math:`|A_{favor} - A_{min}|` is below ``tolerance``.

    Parameters
    ----------
    dims, rhos : tuple
        The grid.
    tolerance : float, default=1e-6
        Allowed difference.
    a_function : callable, optional
        ``a_function(rho, d)`` under test (negative controls); default favor's.

    Returns
    -------
    ClaimCheck
        The largest difference.
    """
    from scipy.optimize import minimize_scalar

    worst = 0.0
    rows = []
    for d in dims:
        for rho in rhos:
            x = np.zeros(d)
            x[0] = np.sqrt(d * rho) / 2
            res = minimize_scalar(
                lambda a, x=x: float(gerf_forms.gerf_log_second_moment(x, x, a)),
                bounds=(-20.0, 0.1249),
                method="bounded",
                options={"xatol": 1e-10},
            )
            ours = float(_oprf_a(rho) if a_function is None else a_function(rho, d))
            worst = max(worst, abs(ours - res.x))
            rows.append((d, rho, ours, float(res.x)))
    return ClaimCheck(
        name="oprf A* is the variance minimiser",
        source=_SOURCE + " [F2]",
        estimate=worst,
        interval=(worst, worst),
        alpha=0.0,
        n_trials=0,
        seed=-1,
        passed=bool(worst < tolerance),
        statistic=f"max |A - argmin| = {worst:.2e} (tol {tolerance:g}, {len(rows)} cases)",
        target=0.0,
        resolving_power=tolerance,
        resolves="A* (absolute)",
        data={"grid": np.array(rows)},
    )


def check_favorpp_mse(
    *,
    n_features: int = 6,
    n_components: int = 6,
    n_trials: int = 60_000,
    seed: int = 1302,
    alpha: float = FALSE_ALARM,
    a_function: Callable[[np.ndarray, int], np.ndarray] | None = None,
    sampler: str | Callable[..., np.ndarray] | None = None,
) -> ClaimCheck:
    r"""Check the MSE of favor's OPRF features with orthogonal rows against the FAVOR++ closed form.

    At each default pair the features use favor's :math:`A^*(\lVert x+y\rVert^2/d)`; the
    target is :func:`theory.gerf_forms.mse_favorpp` at the oracle's optimal :math:`A`
    (:func:`theory.gerf_forms.oprf_optimal_a`), one orthogonal block (:math:`m = d`).
    Statistic: per trial :math:`e = (\hat K - K)^2`, CLT standard error.

    Parameters
    ----------
    n_features, n_components, n_trials, seed, alpha
        Sizes, root seed, declared false-alarm rate.
    a_function : callable, optional
        ``a_function(rho, d)`` used for the features (negative controls).
    sampler : str or callable, optional
        Default "orthogonal".

    Returns
    -------
    ClaimCheck
        Worst ratio MC MSE / closed form.
    """
    x, y = default_pairs(n_features)
    rho = np.sum((x + y) ** 2, axis=-1) / n_features
    a = _oprf_a(rho) if a_function is None else a_function(rho, n_features)
    est = _estimates(
        x, y, np.asarray(a), sampler or "orthogonal", n_components, n_trials, seed, _gerf
    )
    target_k = np.exp(np.sum(x * y, axis=-1))
    err = (est - target_k) ** 2
    a_star = gerf_forms.oprf_optimal_a(rho)
    target = np.array(
        [gerf_forms.mse_favorpp(x[p], y[p], n_components, a_star[p]) for p in range(x.shape[0])]
    )
    return ratio_check(
        "FAVOR++ (oprf x orthogonal) MSE = closed form",
        _SOURCE + " [F3-mse]",
        err.mean(0),
        err.std(0, ddof=1) / np.sqrt(n_trials),
        target,
        alpha=alpha,
        n_trials=n_trials,
        seed=seed,
    )


def check_attention_ratio_of_means(
    *,
    n_features: int = 4,
    n_components: int = 8,
    n_trials: int = 60_000,
    seed: int = 1303,
    alpha: float = FALSE_ALARM,
    features: Callable[[np.ndarray, np.ndarray, float], np.ndarray] | None = None,
) -> ClaimCheck:
    r"""Check that OPRF attention's expected numerator over expected normaliser is softmax attention.

    One query against six keys of different norms (scaled by :math:`d^{-1/4}`), values in
    :math:`\mathbb R^2`, orthogonal rows, :math:`A^*` from the homogeneity heuristic:
    :math:`E[\hat A V]_c / E[\hat D]` must equal the exact output per value coordinate
    :math:`c` (both expectations are unbiased sums, so their ratio is exact; the constant
    factors of the features cancel). Delta-method standard error of the ratio of means.

    Parameters
    ----------
    n_features, n_components, n_trials, seed, alpha
        Sizes, root seed, declared false-alarm rate.
    features : callable, optional
        ``features(x, w, a)`` under test; :func:`gaussian_constant_features` is the
        negative control.

    Returns
    -------
    ClaimCheck
        Worst ratio estimate / exact output.
    """
    from favor.gerf import mean_rho

    features = _gerf if features is None else features
    rng = np.random.default_rng(11)
    s = n_features**-0.25
    q = np.array([0.9, -0.4, 0.5, 0.2])[:n_features]
    keys = rng.standard_normal((6, n_features)) * np.array([0.3, 0.6, 0.9, 1.2, 0.5, 1.5])[:, None]
    values = np.array([[1.0, 0.5], [2.0, -0.5], [0.0, 1.0], [-1.0, 2.0], [0.5, 0.0], [3.0, 1.0]])
    a = float(_oprf_a(mean_rho(q[None], keys, scale=s)))
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    w = draw_projections("orthogonal", n_components, n_features, n_trials, rng).reshape(
        -1, n_features
    )
    fq = features(s * q[None], w, a)[0].reshape(n_trials, n_components)
    fk = features(s * keys, w, a).reshape(len(keys), n_trials, n_components)
    scores = n_trials * np.einsum("tr,jtr->tj", fq, fk)  # (trials, keys), unbiased A_ij
    num = scores @ values
    den = scores.sum(axis=1)
    ratio = num.mean(0) / den.mean()
    resid = num - ratio[None, :] * den[:, None]
    se = resid.std(0, ddof=1) / np.sqrt(n_trials) / abs(den.mean())
    logits = keys @ q / np.sqrt(n_features)
    p = np.exp(logits - logits.max())
    target = (p / p.sum()) @ values
    return ratio_check(
        "oprf attention: E[numerator] / E[normaliser] = softmax attention",
        _SOURCE + "; formulas §1.3",
        ratio,
        se,
        target,
        alpha=alpha,
        n_trials=n_trials,
        seed=seed,
    )


def hybrid_trig_weighted(x: np.ndarray, w: np.ndarray, w2: np.ndarray, *, role: str) -> np.ndarray:
    """Negative control: the hybrid with the weight on the trigonometric estimate (public notebook).

    Built from favor's hybrid features by swapping the two halves of the key features'
    base maps' roles: query ``(b h, a t)``, key ``(b h, b t)`` -- i.e.
    :math:`(1-\\hat\\lambda)\\hat K_{hyp} + \\hat\\lambda\\hat K_{trig}`.
    """
    from favor.features import hyperbolic_features, trigonometric_features

    signs = np.where(x @ w2.T >= 0, 1.0, -1.0)
    n = w2.shape[0]

    def weights(sign: float) -> np.ndarray:
        head = np.full((*signs.shape[:-1], 1), np.sqrt(0.5))
        return np.concatenate([head, sign * signs / np.sqrt(2.0 * n)], axis=-1)

    def outer(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (a[..., :, None] * b[..., None, :]).reshape(*a.shape[:-1], -1)

    lam = weights(-1.0 if role == "query" else 1.0)
    rest = weights(1.0)
    hyp = hyperbolic_features(x, w)
    trig = trigonometric_features(x, w)
    return np.concatenate([outer(rest, hyp), outer(lam, trig)], axis=-1)


def _hybrid_fn(x: np.ndarray, w: np.ndarray, w2: np.ndarray, *, role: str) -> np.ndarray:
    from favor.hybrid import hybrid_features

    return hybrid_features(x, w, w2, role=role)


def check_hybrid_exact_ends(
    *,
    n_features: int = 5,
    n_components: int = 8,
    n_angular: int = 4,
    n_draws: int = 50,
    seed: int = 1305,
    tolerance: float = 1e-12,
    features: Callable[..., np.ndarray] | None = None,
) -> ClaimCheck:
    r"""Check that for equal norms the hybrid estimate is exact at :math:`\theta = 0` and :math:`\pi`.

    For :math:`y = x` and :math:`y = -x` (several norms) and every one of ``n_draws``
    projections, :math:`|\hat K - e^{x^T y}| / e^{x^T y}` must be below ``tolerance``
    (rounding only): the zero-MSE-at-both-ends property of the convention [H-mse0].

    Parameters
    ----------
    n_features, n_components, n_angular, n_draws, seed, tolerance
        Sizes, seed and the rounding tolerance.
    features : callable, optional
        Under test; :func:`hybrid_trig_weighted` is the negative control.

    Returns
    -------
    ClaimCheck
        The largest relative error.
    """
    features = _hybrid_fn if features is None else features
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((4, n_features))
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    x = base * np.array([0.3, 0.7, 1.0, 1.4])[:, None]
    worst = 0.0
    for _ in range(n_draws):
        w = rng.standard_normal((n_components, n_features))
        w2 = rng.standard_normal((n_angular, n_features))
        fq = features(x, w, w2, role="query")
        for y in (x, -x):
            est = np.sum(fq * features(y, w, w2, role="key"), axis=-1)
            exact = np.exp(np.sum(x * y, axis=-1))
            worst = max(worst, float(np.max(np.abs(est - exact) / exact)))
    return ClaimCheck(
        name="hybrid exact at theta = 0 and pi (equal norms)",
        source="Choromanski et al. 2022 (HRF); formulas §6.5 [H-mse0]",
        estimate=worst,
        interval=(worst, worst),
        alpha=0.0,
        n_trials=0,
        seed=seed,
        passed=bool(worst < tolerance),
        statistic=f"max relative error {worst:.2e} (tol {tolerance:g}, {n_draws} draws)",
        target=0.0,
        resolving_power=tolerance,
        resolves="kernel",
    )
