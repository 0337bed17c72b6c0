r"""Claims A: error of FAVOR+ attention (``favor.favor_attention``) against its expansion in 1/m.

With i.i.d. positive features every entry :math:`\hat A_{ij}` of the unnormalised
attention matrix is unbiased (Performers Lemma 1; claims U), but the normalised output
:math:`\hat P = \hat D^{-1}\hat A` is a ratio and is only "nearly unbiased" (formulas §1.3).
:func:`theory.attention_forms.normalised_attention_second_order` gives its bias and MSE to
*second* order in :math:`1/m` from exact moments (derived here). The checks call
``favor.favor_attention(Q, K, I_L, projection=W, per_head=True)``: with the identity as
values the output *is* :math:`\hat P`, and stacking ``n_trials`` independent projections
as heads runs all trials in one call.

Bands. The prediction is first + second order; the omitted remainder is
:math:`O(m^{-3})`, and the band is the size of the last term kept,
:math:`\tau = |T_2| / |T_1 + T_2|` (the usual rule for an asymptotic series whose terms
decrease), computed per input -- not a fixed percentage. A check passes iff the Monte
Carlo estimate is within :math:`\tau` of the prediction up to its own interval at the
declared false-alarm rate. The inputs (entries :math:`\mathcal N(0, 0.3^2)`, ``d = 8``)
keep :math:`\lVert s(q + k)\rVert^2 \approx 0.5`, where the fourth cumulant's
contribution is small at these ``m`` (for larger inputs the lognormal tails make the
series converge only for much larger ``m``).

Variance reduction from theory alone. For each trial the projection ``W`` is known, so
theory evaluates :math:`\hat A` from the collapsed formula
(:mod:`theory.collapsed_forms`, no ``favor`` code), hence
:math:`\varepsilon = \hat A - A`, :math:`t` and :math:`u` (see the expansion). Exactly
:math:`E\sum u^2 = T_1^{MSE}` and :math:`E[u - ut] = T_1^{bias}`, so
:math:`\lVert\hat P - P\rVert^2 - \sum u^2 + T_1` and
:math:`(\hat P - P) - (u - ut) + T_1` are unbiased for the engine's MSE and bias with a
far smaller variance (the engine's :math:`\hat P` is the only code under test).

* :func:`check_attention_mse`: :math:`E\lVert\hat P - P\rVert_F^2` for L = 16 and 64 at
  ``m = 256``.
* :func:`check_attention_bias`: the projection of :math:`E\hat P - P` on the first-order
  bias direction, L = 16, ``m = 128``. An epsilon in the engine's features or
  normaliser shifts it (the negative control is the engine itself with an epsilon).

Both checks skip (return a failing record whose statistic says so) only if
``favor.favor_attention`` is missing.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from theory import attention_forms
from theory._stats import FALSE_ALARM, critical_z, resolving_power
from theory.montecarlo import draw_projections, run_blocks
from theory.results import ClaimCheck

__all__ = [
    "attention_error_samples",
    "attention_inputs",
    "check_attention_bias",
    "check_attention_mse",
    "favor_attention_available",
]


def favor_attention_available() -> bool:
    """Whether ``favor.favor_attention`` exists (the attention claims need it).

    Returns
    -------
    bool
        True if the public name is present.
    """
    import favor

    return callable(getattr(favor, "favor_attention", None))


def attention_inputs(
    n_tokens: int, n_features: int = 8, scale: float = 0.3, seed: int = 11
) -> tuple[np.ndarray, np.ndarray]:
    r"""Fixed queries and keys with entries :math:`\mathcal N(0, \text{scale}^2)`.

    With ``scale = 0.3`` and ``d = 8`` the rescaled :math:`\lVert\tilde q + \tilde k\rVert^2`
    is about 0.5, inside the CLT-friendly range of formulas §8.2.

    Parameters
    ----------
    n_tokens : int
        ``L``.
    n_features : int, default=8
        ``d``.
    scale : float, default=0.3
        Entry standard deviation.
    seed : int, default=11
        Seed of the fixed inputs.

    Returns
    -------
    tuple of numpy.ndarray of shape (n_tokens, n_features)
        ``(queries, keys)``.
    """
    rng = np.random.default_rng(seed)
    return (
        scale * rng.standard_normal((n_tokens, n_features)),
        scale * rng.standard_normal((n_tokens, n_features)),
    )


def attention_error_trials(
    queries: np.ndarray,
    keys: np.ndarray,
    n_components: int,
    n_trials: int,
    seed: int,
    *,
    sampler: str | Callable[..., np.ndarray] = "iid",
    attention: Callable[..., np.ndarray] | None = None,
    block_size: int = 2000,
) -> dict[str, np.ndarray]:
    r"""Per-trial errors of the engine's :math:`\hat P`, raw and with theory's control variates.

    Parameters
    ----------
    queries, keys : numpy.ndarray of shape (L, d)
        Inputs (unscaled).
    n_components : int
        ``m``.
    n_trials : int
        Independent projections.
    seed : int
        Root seed.
    sampler : str or callable, default="iid"
        Projection sampler.
    attention : callable, optional
        Attention under test; defaults to ``favor.favor_attention``.
    block_size : int, default=2000
        Trials per call (capped so one call's output stays near 160 MB).

    Returns
    -------
    dict of numpy.ndarray of shape (n_trials,)
        ``mse`` :math:`\lVert\hat P - P\rVert_F^2`; ``mse_cv`` the same minus
        :math:`\sum u^2` plus its exact mean; ``bias`` :math:`\langle\hat P - P, b\rangle /
        \langle b, b\rangle` with ``b`` the first-order bias; ``bias_cv`` the same with
        :math:`u - ut` subtracted and its exact mean added back.
    """
    import favor

    att = attention or favor.favor_attention
    n, d = queries.shape
    ex = attention_forms.normalised_attention_second_order(queries, keys, n_components)
    p, b = ex["attention"], ex["bias1"]
    bb = float((b * b).sum())
    mse1 = float(ex["mse1"].sum())
    eye = np.eye(n)
    s = d**-0.25
    qs, ks = s * queries, s * keys
    a = np.exp(qs @ ks.T)
    row_sums = a.sum(-1)
    log_lam = -0.5 * ((qs * qs).sum(1)[:, None] + (ks * ks).sum(1)[None, :])

    def work(rng: np.random.Generator, r: int) -> np.ndarray:
        w = draw_projections(sampler, n_components, d, r, rng)
        out = att(
            np.broadcast_to(queries, (r, n, d)),
            np.broadcast_to(keys, (r, n, d)),
            np.broadcast_to(eye, (r, n, n)),
            projection=w,
            per_head=True,
            features="positive",
        )
        err = np.asarray(out, dtype=np.float64) - p
        # Theory's own A_hat for the same projections (collapsed form, formulas §2.3).
        lq = np.einsum("ld,rmd->rlm", qs, w)
        lk = np.einsum("ld,rmd->rlm", ks, w)
        tq, tk = lq.max(-1, keepdims=True), lk.max(-1, keepdims=True)
        a_hat = np.exp(
            np.log(np.exp(lq - tq) @ np.exp(lk - tk).transpose(0, 2, 1))
            + tq + tk.transpose(0, 2, 1) + log_lam - np.log(n_components)
        )  # fmt: skip
        eps = a_hat - a
        t = eps.sum(-1) / row_sums
        u = (eps - p * eps.sum(-1, keepdims=True)) / row_sums[:, None]
        sq = (err**2).sum((1, 2))
        proj = (err * b).sum((1, 2)) / bb
        lin = ((u - u * t[..., None]) * b).sum((1, 2)) / bb
        return np.stack([sq, sq - (u * u).sum((1, 2)) + mse1, proj, proj - lin + 1.0], axis=1)

    # Keep one block's (r, L, max(L, m)) work arrays near 32 MB each.
    block = max(1, min(block_size, 4_000_000 // (n * max(n, n_components))))
    res = run_blocks(work, n_trials, seed, block_size=block)
    return {"mse": res[:, 0], "mse_cv": res[:, 1], "bias": res[:, 2], "bias_cv": res[:, 3]}


def attention_error_samples(
    queries: np.ndarray,
    keys: np.ndarray,
    n_components: int,
    n_trials: int,
    seed: int,
    *,
    sampler: str | Callable[..., np.ndarray] = "iid",
    attention: Callable[..., np.ndarray] | None = None,
    block_size: int = 2000,
    control_variate: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Per-trial MSE ratio to the first-order term, bias projection and its linear part.

    A thin view of :func:`attention_error_trials` (used by the figures): returns
    :math:`\lVert\hat P - P\rVert^2 / T_1` (with theory's control variate if
    ``control_variate``), :math:`\langle\hat P - P, b\rangle/\langle b, b\rangle` and the
    control-variate correction subtracted from it.

    Parameters
    ----------
    queries, keys, n_components, n_trials, seed, sampler, attention, block_size
        As in :func:`attention_error_trials`.
    control_variate : bool, default=True
        Use the variance-reduced MSE.

    Returns
    -------
    tuple of numpy.ndarray of shape (n_trials,)
        ``(mse_ratio, bias_projection, linear_projection)``.
    """
    trials = attention_error_trials(
        queries, keys, n_components, n_trials, seed, sampler=sampler, attention=attention,
        block_size=block_size,
    )  # fmt: skip
    mse1 = attention_forms.normalised_attention_first_order(queries, keys, n_components)[2].sum()
    mse = trials["mse_cv" if control_variate else "mse"] / mse1
    return mse, trials["bias"], trials["bias"] - trials["bias_cv"] + 1.0


def _missing(name: str, source: str) -> ClaimCheck:
    return ClaimCheck(
        name=name,
        source=source,
        estimate=float("nan"),
        interval=(float("nan"), float("nan")),
        alpha=FALSE_ALARM,
        n_trials=0,
        seed=-1,
        passed=False,
        statistic="SKIPPED: favor.favor_attention is missing",
        target=1.0,
        data={"skipped": True},
    )


def _banded(
    estimates: np.ndarray, ses: np.ndarray, bands: np.ndarray, alpha: float
) -> tuple[bool, np.ndarray, float, float]:
    """Pass iff every |estimate - 1| <= band + crit * se; also return the resolving power."""
    crit = critical_z(alpha, len(estimates))
    halves = crit * ses
    passed = bool(np.all(np.abs(estimates - 1.0) <= bands + halves))
    # Smallest relative error detected with power 0.99 by the best-resolved case.
    power = float(
        np.min(bands + np.array([resolving_power(s, alpha, n_tests=len(estimates)) for s in ses]))
    )
    return passed, halves, crit, power


def check_attention_mse(
    *,
    tokens: tuple[int, ...] = (16, 64),
    n_components: int = 256,
    n_trials: int = 1000,
    seed: int = 901,
    alpha: float = FALSE_ALARM,
    sampler: str | Callable[..., np.ndarray] | None = None,
    attention: Callable[..., np.ndarray] | None = None,
    name: str | None = None,
) -> ClaimCheck:
    r"""Check :math:`E\lVert\hat P - P\rVert_F^2` against its second-order expansion.

    Parameters
    ----------
    tokens : tuple of int, default=(16, 64)
        Sequence lengths ``L``.
    n_components : int, default=256
        ``m``.
    n_trials : int, default=1000
        Independent projections per ``L``.
    seed : int, default=901
        Root seed (``seed + i`` for the i-th ``L``).
    alpha : float, default=FALSE_ALARM
        Declared false-alarm rate.
    sampler : str or callable, optional
        Sampler under test (default i.i.d.).
    attention : callable, optional
        Attention under test (default ``favor.favor_attention``).
    name : str, optional
        Claim name.

    Returns
    -------
    ClaimCheck
        The worst ratio MC / (first + second order) and its interval.
    """
    name = name or "normalised attention MSE = its expansion to second order in 1/m"
    source = "Performers Sec. 2.2, Eq. 4; formulas §1.3 + second-order delta method (derived)"
    if attention is None and not favor_attention_available():
        return _missing(name, source)
    ratios, ses, bands = [], [], []
    for i, n in enumerate(tokens):
        q, k = attention_inputs(n)
        ex = attention_forms.normalised_attention_second_order(q, k, n_components)
        t1, t2 = float(ex["mse1"].sum()), float(ex["mse2"].sum())
        trials = attention_error_trials(
            q, k, n_components, n_trials, seed + i, sampler=sampler or "iid", attention=attention
        )
        x = trials["mse_cv"] / (t1 + t2)
        ratios.append(x.mean())
        ses.append(x.std(ddof=1) / np.sqrt(n_trials))
        bands.append(abs(t2) / abs(t1 + t2))
    ratios, ses, bands = np.array(ratios), np.array(ses), np.array(bands)
    passed, halves, crit, power = _banded(ratios, ses, bands, alpha)
    worst = int(np.argmax(np.abs(ratios - 1) - bands - halves))
    return ClaimCheck(
        name=name,
        source=source,
        estimate=float(ratios[worst]),
        interval=(float(ratios[worst] - halves[worst]), float(ratios[worst] + halves[worst])),
        alpha=alpha,
        n_trials=n_trials * len(tokens),
        seed=seed,
        passed=passed,
        statistic=(
            "MC/(T1+T2) = " + ", ".join(f"{r:.4f}" for r in ratios) + f" for L = {tokens} at "
            f"m = {n_components}; bands |T2/(T1+T2)| = "
            + ", ".join(f"{b:.2%}" for b in bands)
            + f" (+ {crit:.2f} se)"
        ),
        target=1.0,
        data={"tokens": np.array(tokens), "ratios": ratios, "half_widths": halves, "bands": bands},
        resolving_power=power,
        resolves="attention MSE",
    )


def check_attention_bias(
    *,
    n_tokens: int = 16,
    n_components: int = 128,
    n_trials: int = 4000,
    seed: int = 951,
    alpha: float = FALSE_ALARM,
    sampler: str | Callable[..., np.ndarray] | None = None,
    attention: Callable[..., np.ndarray] | None = None,
    name: str | None = None,
) -> ClaimCheck:
    r"""Check the bias of :math:`\hat P` against its second-order expansion.

    The statistic is the projection :math:`s = \langle E\hat P - P, b_1\rangle / \langle b_1,
    b_1\rangle` on the first-order bias :math:`b_1`; the prediction is
    :math:`1 + \langle b_2, b_1\rangle/\langle b_1, b_1\rangle`.

    Parameters
    ----------
    n_tokens : int, default=16
        ``L``.
    n_components : int, default=128
        ``m``.
    n_trials : int, default=4000
        Independent projections.
    seed : int, default=951
        Root seed.
    alpha : float, default=FALSE_ALARM
        Declared false-alarm rate.
    sampler : str or callable, optional
        Sampler under test (default i.i.d.).
    attention : callable, optional
        Attention under test (default ``favor.favor_attention``).
    name : str, optional
        Claim name.

    Returns
    -------
    ClaimCheck
        The ratio MC / (first + second order) of the bias projection, with its interval.
    """
    name = name or "normalised attention bias = its expansion to second order in 1/m"
    source = "Performers Sec. 2.2 ('nearly unbiased'); formulas §1.3 [A6] + second-order delta method (derived)"
    if attention is None and not favor_attention_available():
        return _missing(name, source)
    q, k = attention_inputs(n_tokens)
    ex = attention_forms.normalised_attention_second_order(q, k, n_components)
    b1 = ex["bias1"]
    t2 = float((ex["bias2"] * b1).sum() / (b1 * b1).sum())
    trials = attention_error_trials(
        q, k, n_components, n_trials, seed, sampler=sampler or "iid", attention=attention
    )
    x = trials["bias_cv"] / (1.0 + t2)
    est, se = np.array([x.mean()]), np.array([x.std(ddof=1) / np.sqrt(n_trials)])
    band = np.array([abs(t2) / abs(1.0 + t2)])
    passed, halves, crit, power = _banded(est, se, band, alpha)
    return ClaimCheck(
        name=name,
        source=source,
        estimate=float(est[0]),
        interval=(float(est[0] - halves[0]), float(est[0] + halves[0])),
        alpha=alpha,
        n_trials=n_trials,
        seed=seed,
        passed=passed,
        statistic=(
            f"bias projection MC/(T1+T2) = {est[0]:.4f} at L = {n_tokens}, m = {n_components}; "
            f"band |T2/(T1+T2)| = {band[0]:.2%} (+ {crit:.2f} se); uncorrected "
            f"{trials['bias'].mean() / (1 + t2):.3f}"
        ),
        target=1.0,
        data={"s": est, "std_errors": se, "band": band},
        resolving_power=power,
        resolves="attention bias",
    )
