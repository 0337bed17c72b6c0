r"""Claims K and W: the newer couplings and kernels (formulas §3.3, 6.2, 6.6, 6.7).

K (unbiasedness). For every valid (kernel, coupling) pair, every feature map the kernel
admits is unbiased: :math:`E[\varphi(x)^T\varphi(y)] = k(x, y)` at the three fixed pairs of
:func:`theory._cases.default_pairs`. The rule: each row must be marginally the kernel's
spectral law. Gaussian and softmax kernels: rows :math:`\mathcal N(0, I)`, maps
trigonometric, positive and hyperbolic; couplings ``qmc`` (scrambled Sobol through
:math:`\Phi^{-1}`) and ``simplex`` (Haar-rotated simplex, chi lengths). Laplacian kernel:
independent Cauchy coordinates, trigonometric map only, couplings ``iid`` and ``qmc`` (a
product law is not rotation invariant, so direction couplings are refused). Matérn
kernels (:math:`\nu = 1/2, 3/2, 5/2`): a Gaussian-marginal coupling times independent
Student factors :math:`\sqrt{2\nu/\chi^2_{2\nu}}`, trigonometric map only, couplings
``iid``, ``orthogonal``, ``qmc``, ``simplex``; K9: the Gaussian kernel with norm-dependent
``simplex+`` rows. ``structured`` (SORF) is *not* claimed
unbiased (its directions take finitely many values; formulas §3.3): claim W6 bounds its
bias and W4 its error instead.

W (variances and comparisons).

* W1-W2: the i.i.d. (cos, sin) variance :math:`(1 + k(2\Delta) - 2k(\Delta)^2)/D` holds for
  the Laplacian and Matérn kernels (formulas §6.6 [I1]).
* W3: the simplex positive-feature MSE equals the exact pair integral (formulas §6.2
  [E2-mse]).
* W4: structured (SORF) trigonometric MSE is at most 1.15 times the exact orthogonal MSE
  (no closed form exists for SORF; Yu et al. 2016, Sec. 4).
* W5: randomised QMC at :math:`m = 2^k` has less than half the i.i.d. MSE for the
  Gaussian kernel (Avron et al. 2016; formulas §6.7 [J1]).
* W6: the structured (SORF) trigonometric bias is within its proven bound
  (:mod:`theory.coupling_bias`; formulas §3.3 [W6]).
* W7: norm-dependent simplex rows (SimRF+) have under 0.6 times the simplex
  positive-feature MSE for small inputs (:mod:`theory.coupling_simplex_plus`; formulas §6.2 [E8]).

Estimates use the collapsed forms of the maps' dot products (formulas §2.2-2.4, checked
exactly against :mod:`favor.features` by favor's tests): trigonometric
:math:`h\,\frac1m\sum_i\cos(\omega_i^T\Delta)`, positive
:math:`\Lambda\frac1m\sum_i e^{\omega_i^T z}`, hyperbolic with :math:`\cosh`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from theory._cases import default_pairs
from theory._evidence import ratio_check
from theory._stats import FALSE_ALARM, critical_z, resolving_power
from theory.results import ClaimCheck

__all__ = [
    "KERNEL_COUPLINGS",
    "check_coupling_unbiased",
    "check_mse_below",
    "check_simplex_mse",
    "check_trig_variance",
    "claim_specs",
    "coupling_sampler",
]

Sampler = Callable[..., np.ndarray]

#: Valid couplings per kernel (the claims K enumerate these). The softmax kernel needs no
#: claims of its own: at the same rows its three estimates divided by the kernel are the
#: Gaussian kernel's (both reduce to :math:`E[e^{\omega^T z}] / e^{\lVert z\rVert^2/2}`
#: and :math:`E[\cos \omega^T\Delta] / e^{-\lVert\Delta\rVert^2/2}`).
KERNEL_COUPLINGS = {
    "rbf": ("qmc", "simplex"),
    "laplacian": ("iid", "qmc"),
    "matern": ("iid", "orthogonal", "qmc", "simplex"),
}
_NUS = (0.5, 1.5, 2.5)


_PROJECTIONS = ("iid", "orthogonal", "structured", "qmc", "simplex", "simplex+")


def _base(projection: str) -> Sampler:
    """``sampler(m, d, *, rng)``: the registered sampler, through the engine's draw."""
    if projection not in _PROJECTIONS:
        raise ValueError(f"projection must be one of {sorted(_PROJECTIONS)}, got {projection!r}")

    def draw(m: int, d: int, *, rng: Any) -> np.ndarray:
        import favor.sampling

        return favor.sampling.draw_projection(projection, m, d, rng=rng)

    return draw


def coupling_sampler(projection: str, kernel: str, *, nu: float | None = None) -> Sampler:
    """``sampler(m, d, *, rng)`` drawing rows from ``kernel``'s spectral law with a coupling.

    The rows come from the path the engine uses: Gaussian-law kernels through
    :func:`favor.sampling.draw_projection` (the registered sampler), the Laplacian and
    Matérn kernels through the registered kernel's ``rows`` hook
    (:meth:`favor.registry.Kernel.draw_rows`, as :class:`favor.FavorSampler` draws them),
    so a bug injected through the registry is what the claims see.

    Parameters
    ----------
    projection : str
        The coupling (``"iid"``, ``"orthogonal"``, ``"structured"``, ``"qmc"``,
        ``"simplex"``, ``"simplex+"``).
    kernel : {"rbf", "softmax", "laplacian", "matern"}
        The kernel whose spectral law the rows follow (unit scale).
    nu : float, optional
        Matérn smoothness.

    Returns
    -------
    callable
        The sampler.
    """
    if kernel in ("laplacian", "matern"):

        def rows(m: int, d: int, *, rng: Any) -> np.ndarray:
            import favor.registry

            return favor.registry.KERNELS[kernel].draw_rows(projection, m, d, rng, nu)

        return rows
    return _base(projection)


def _kernel_value(kernel: str, x: np.ndarray, y: np.ndarray, nu: float | None) -> np.ndarray:
    from theory.coupling_forms import laplacian_kernel_value, matern_kernel_value

    if kernel == "rbf":
        return np.exp(-0.5 * np.sum((x - y) ** 2, axis=-1))
    if kernel == "softmax":
        return np.exp(np.sum(x * y, axis=-1))
    if kernel == "laplacian":
        return laplacian_kernel_value(x - y)
    return matern_kernel_value(x - y, nu)


def _estimates(w: np.ndarray, x: np.ndarray, y: np.ndarray, kernel: str, fmap: str) -> np.ndarray:
    """Collapsed dot products per pair for one projection ``w`` (formulas §2.2-2.4)."""
    sq = np.sum(x * x, axis=-1) + np.sum(y * y, axis=-1)
    if fmap == "trigonometric":
        scale = np.exp(sq / 2) if kernel == "softmax" else 1.0
        return scale * np.cos((x - y) @ w.T).mean(axis=-1)
    lam = np.exp(-sq / 2) if kernel == "softmax" else np.exp(-sq)
    logits = (x + y) @ w.T
    inner = np.exp(logits) if fmap == "positive" else np.cosh(logits)
    return lam * inner.mean(axis=-1)


def _maps(kernel: str) -> tuple[str, ...]:
    return (
        ("trigonometric", "positive", "hyperbolic")
        if kernel in ("rbf", "softmax")
        else ("trigonometric",)
    )


def check_coupling_unbiased(
    kernel: str = "rbf",
    projection: str = "qmc",
    *,
    n_features: int = 4,
    n_components: int = 8,
    n_trials: int = 2000,
    seed: int = 700,
    alpha: float = FALSE_ALARM,
    sampler: Sampler | None = None,
    name: str | None = None,
) -> ClaimCheck:
    r"""Check unbiasedness of every map ``kernel`` admits under one coupling (claims K).

    Matérn claims cover :math:`\nu = 1/2, 3/2, 5/2` at once (one set of cases each).

    Parameters
    ----------
    kernel : {"rbf", "softmax", "laplacian", "matern"}, default="rbf"
        The kernel (unit scale).
    projection : str, default="qmc"
        The claimed coupling.
    n_features, n_components, n_trials, seed : int
        Sizes and root seed (trial ``t`` uses ``SeedSequence(seed).spawn``).
    alpha : float, default=FALSE_ALARM
        Family-wise false-alarm rate.
    sampler : callable, optional
        ``sampler(m, d, *, rng)`` or, for Matérn, ``sampler(m, d, *, rng, nu)``; a broken
        variant for negative controls.
    name : str, optional
        Claim name.

    Returns
    -------
    ClaimCheck
        Worst ratio of mean estimate to kernel, max-:math:`|z|` decision.
    """
    x, y = default_pairs(n_features)
    nus = _NUS if kernel == "matern" else (None,)
    if sampler is None:
        samplers = [coupling_sampler(projection, kernel, nu=nu) for nu in nus]
    else:
        samplers = [
            (lambda m, d, *, rng, nu=nu: sampler(m, d, rng=rng, nu=nu))
            if kernel == "matern"
            else sampler
            for nu in nus
        ]
    maps = _maps(kernel)
    children = np.random.SeedSequence(seed).spawn(n_trials)
    values = np.empty((n_trials, len(nus), len(maps), x.shape[0]))
    for t, child in enumerate(children):
        rng = np.random.default_rng(child)
        for a, draw in enumerate(samplers):
            w = draw(n_components, n_features, rng=rng)
            for b, fmap in enumerate(maps):
                values[t, a, b] = _estimates(w, x, y, kernel, fmap)
    targets = np.stack(
        [np.broadcast_to(_kernel_value(kernel, x, y, nu), (len(maps), x.shape[0])) for nu in nus]
    )
    means = values.mean(0).ravel()
    se = (values.std(0, ddof=1) / np.sqrt(n_trials)).ravel()
    return ratio_check(
        name or f"{'/'.join(maps)} x {projection} unbiased ({kernel})",
        "formulas §6.2 (simplex), §6.7 (qmc), §6.6; spectral laws: favor.kernels",
        means,
        se,
        targets.ravel(),
        alpha=alpha,
        n_trials=n_trials,
        seed=seed,
    )


def _squared_errors(
    draw: Sampler,
    estimate: Callable[[np.ndarray], float],
    exact: float,
    n_components: int,
    n_features: int,
    n_trials: int,
    seed: int,
    batch: int = 1,
) -> np.ndarray:
    """Squared errors of ``n_trials`` independent projections.

    ``batch > 1`` draws ``batch`` trials with one call of ``batch * n_components`` rows,
    valid only when ``n_components`` is a multiple of the sampler's block size (blocks
    are independent, so consecutive groups of ``n_components`` rows are independent trials).
    """
    n_calls = -(-n_trials // batch)
    children = np.random.SeedSequence(seed).spawn(n_calls)
    out = np.empty(n_calls * batch)
    for t, child in enumerate(children):
        w = draw(batch * n_components, n_features, rng=np.random.default_rng(child))
        for b in range(batch):
            out[t * batch + b] = (
                estimate(w[b * n_components : (b + 1) * n_components]) - exact
            ) ** 2
    return out[:n_trials]


def _equality(
    name: str, source: str, sq: np.ndarray, target: float, alpha: float, seed: int
) -> ClaimCheck:
    return ratio_check(
        name,
        source,
        [sq.mean()],
        [sq.std(ddof=1) / np.sqrt(sq.size)],
        [target],
        alpha=alpha,
        n_trials=sq.size,
        seed=seed,
    )


def check_trig_variance(
    kernel: str = "laplacian",
    *,
    n_features: int = 4,
    n_components: int = 8,
    n_trials: int = 20_000,
    seed: int = 800,
    alpha: float = FALSE_ALARM,
    features: str = "cos-sin",
    name: str | None = None,
    batch: int = 1,
) -> ClaimCheck:
    r"""Check :math:`\mathrm{Var} = (1 + k(2\Delta) - 2k(\Delta)^2)/D` for i.i.d. rows (W1-W2).

    Parameters
    ----------
    kernel : {"laplacian", "matern"}, default="laplacian"
        Matérn covers :math:`\nu = 1/2, 3/2, 5/2` (three cases).
    n_features, n_components, n_trials, seed : int
        Sizes (output width :math:`D = 2m`) and root seed.
    alpha : float, default=FALSE_ALARM
        Family-wise false-alarm rate.
    features : {"cos-sin", "phase"}, default="cos-sin"
        ``"phase"`` is the negative control: :math:`\sqrt{2/D}\cos(\omega^T x + b)` with
        :math:`D` frequencies (scikit-learn's ``RBFSampler`` form), whose variance is
        :math:`(1 + k(2\Delta)/2 - k(\Delta)^2)/D` instead (formulas §6.6 [I2]).
    name : str, optional
        Claim name.
    batch : int, default=1
        Trials per sampler call (the rows are i.i.d., so consecutive groups of rows are
        independent trials).

    Returns
    -------
    ClaimCheck
        Worst ratio of Monte Carlo variance to the closed form.
    """
    from theory.coupling_forms import trig_variance

    # A moderate difference (kernel values 0.6-0.8), where the (cos, sin) and phase-shifted
    # forms differ most clearly (formulas §6.6 [I3]).
    x = np.zeros((1, n_features))
    y = np.zeros((1, n_features))
    y[0, :2] = (0.15, -0.1)
    x, y = x[0], y[0]
    delta = x - y
    nus = _NUS if kernel == "matern" else (None,)
    width = 2 * n_components
    means, ses, targets = [], [], []
    for k, nu in enumerate(nus):
        draw = coupling_sampler("iid", kernel, nu=nu)
        params = {"nu": nu} if nu is not None else {}
        exact = float(_kernel_value(kernel, delta[None], np.zeros((1, n_features)), nu)[0])
        if features == "cos-sin":

            def estimate(w: np.ndarray) -> float:
                return float(np.cos(w @ delta).mean())

            m = n_components
        else:
            phase_rng = np.random.default_rng(seed + 1 + k)

            def estimate(w: np.ndarray, phase_rng: np.random.Generator = phase_rng) -> float:
                b = phase_rng.uniform(0, 2 * np.pi, w.shape[0])
                return float(2 * np.mean(np.cos(w @ x + b) * np.cos(w @ y + b)))

            m = width
        sq = _squared_errors(draw, estimate, exact, m, n_features, n_trials, seed + 10 * k, batch)
        means.append(sq.mean())
        ses.append(sq.std(ddof=1) / np.sqrt(n_trials))
        targets.append(float(trig_variance(delta, width, kernel, **params)))
    return ratio_check(
        name or f"(cos, sin) variance (1 + k(2D) - 2k(D)^2)/D ({kernel})",
        "formulas §6.6 [I1]",
        means,
        ses,
        targets,
        alpha=alpha,
        n_trials=n_trials,
        seed=seed,
    )


def check_simplex_mse(
    *,
    n_features: int = 6,
    n_components: int = 9,
    n_trials: int = 20_000,
    seed: int = 810,
    alpha: float = FALSE_ALARM,
    sampler: Sampler | None = None,
    name: str | None = None,
) -> ClaimCheck:
    r"""Check the simplex positive-feature MSE against the exact pair integral (W3).

    Parameters
    ----------
    n_features, n_components, n_trials, seed : int
        Sizes (default: one full block of 6 and a cut block of 3) and root seed.
    alpha : float, default=FALSE_ALARM
        False-alarm rate.
    sampler : callable, optional
        Implementation under test (default: the registered ``"simplex"`` sampler).
    name : str, optional
        Claim name.

    Returns
    -------
    ClaimCheck
        Ratio of Monte Carlo MSE to :func:`theory.coupling_forms.mse_simplex`.
    """
    from theory.coupling_forms import mse_simplex

    x = np.array([0.3, -0.2, 0.1, 0.25, 0.0, -0.1, 0.2, 0.0])[:n_features]
    y = np.array([0.2, 0.1, -0.3, 0.05, 0.2, 0.1, 0.0, -0.1])[:n_features]
    z = x + y
    lam = np.exp(-(x @ x + y @ y) / 2)
    draw = sampler or _base("simplex")
    sq = _squared_errors(
        draw,
        lambda w: float(lam * np.exp(w @ z).mean()),
        float(np.exp(x @ y)),
        n_components,
        n_features,
        n_trials,
        seed,
    )
    return _equality(
        name or "simplex positive MSE = exact pair integral (softmax)",
        "Reid et al. 2023; formulas §6.2 [E2-mse], §3.2",
        sq,
        mse_simplex(x, y, n_components),
        alpha,
        seed,
    )


def check_mse_below(
    projection: str = "structured",
    *,
    reference: str = "orthogonal",
    factor: float = 1.15,
    n_features: int = 64,
    n_components: int = 64,
    n_trials: int = 4000,
    seed: int = 820,
    alpha: float = FALSE_ALARM,
    sampler: Sampler | None = None,
    batch: int = 1,
    name: str | None = None,
) -> ClaimCheck:
    r"""Show :math:`\mathrm{MSE}_{coupling} < \text{factor} \times \mathrm{MSE}_{reference}` (W4, W5).

    Gaussian kernel, trigonometric features, at :math:`\Delta = 1.5 e_1` (the axis-aligned
    difference that is hardest for Hadamard structure). The reference MSE is exact:
    :func:`theory.orthogonal_forms.mse_orthogonal` (``"orthogonal"``) or
    :math:`(1 - e^{-\lVert\Delta\rVert^2})^2 / (2m)` (``"iid"``, formulas §3.3 Lemma 1).
    The claim passes when the upper confidence limit of the Monte Carlo MSE (one-sided,
    level ``alpha``) is below ``factor`` times the reference.

    Parameters
    ----------
    projection : str, default="structured"
        The coupling under test.
    reference : {"orthogonal", "iid"}, default="orthogonal"
        The exact reference.
    factor : float, default=1.15
        The claimed bound on the ratio.
    n_features, n_components, n_trials, seed : int
        Sizes and root seed.
    alpha : float, default=FALSE_ALARM
        False-alarm rate.
    sampler : callable, optional
        Implementation under test (a broken one for the negative control).
    batch : int, default=1
        Trials per sampler call; only for block couplings with ``n_components`` a multiple
        of the block size (independent blocks).
    name : str, optional
        Claim name.

    Returns
    -------
    ClaimCheck
        Ratio MSE / reference MSE with its one-sided interval.
    """
    from theory.orthogonal_forms import mse_orthogonal

    delta = np.zeros(n_features)
    delta[0] = 1.5
    exact = float(np.exp(-(delta @ delta) / 2))
    if reference == "orthogonal":
        ref = mse_orthogonal(delta, np.zeros(n_features), n_components, feature="trigonometric")
    elif reference == "iid":
        ref = float((1 - np.exp(-(delta @ delta))) ** 2 / (2 * n_components))
    else:
        raise ValueError(f"reference must be 'orthogonal' or 'iid', got {reference!r}")
    draw = sampler or _base(projection)
    sq = _squared_errors(
        draw,
        lambda w: float(np.cos(w @ delta).mean()),
        exact,
        n_components,
        n_features,
        n_trials,
        seed,
        batch,
    )
    crit = critical_z(alpha, 1, two_sided=False)
    ratio = sq.mean() / ref
    half = crit * sq.std(ddof=1) / np.sqrt(n_trials) / ref
    return ClaimCheck(
        name=name or f"MSE({projection}) < {factor} MSE({reference}) (trig, rbf)",
        source="Yu et al. 2016 Sec. 4 (SORF); Avron et al. 2016 (QMC); formulas §3.3, 6.7",
        estimate=float(ratio),
        interval=(float(ratio - half), float(ratio + half)),
        alpha=alpha,
        n_trials=n_trials,
        seed=seed,
        passed=bool(ratio + half < factor),
        statistic=f"upper limit {ratio + half:.3f} vs {factor} (one-sided z {crit:.2f})",
        target=factor,
        resolving_power=resolving_power(
            sq.std(ddof=1) / np.sqrt(n_trials) / ref / ratio, alpha, two_sided=False
        ),
        resolves="MSE ratio",
        data={"mse": sq.mean(), "reference_mse": ref},
    )


def _unscrambled(m: int, d: int, *, rng: Any, nu: float | None = None) -> np.ndarray:
    import favor.couplings

    w = favor.couplings.qmc_projection(m, d, scramble=False)
    return w if nu is None else w * _t_scales(m, nu, rng)


def _unscrambled_cauchy(m: int, d: int, *, rng: Any) -> np.ndarray:
    import favor.couplings

    return np.tan(np.pi * (favor.couplings.qmc_uniform(m, d, scramble=False) - 0.5))


def _unrotated(m: int, d: int, *, rng: Any, nu: float | None = None) -> np.ndarray:
    import favor.couplings

    w = favor.couplings.simplex_projection(m, d, rotate=False, rng=rng)
    return w if nu is None else w * _t_scales(m, nu, rng)


def _unrotated_plus(m: int, d: int, *, rng: Any) -> np.ndarray:
    import favor.couplings

    return favor.couplings.simplex_projection(m, d, rotate=False, norm_dependent=True, rng=rng)


def _t_scales(m: int, nu: float, rng: Any) -> np.ndarray:
    from favor.kernels import student_t_row_scales

    return student_t_row_scales(m, nu, rng=rng)[:, None]


def _gaussian_norms(base: str) -> Sampler:
    def draw(m: int, d: int, *, rng: Any, nu: float) -> np.ndarray:
        return _base(base)(m, d, rng=rng)

    return draw


def _rotated_cauchy(m: int, d: int, *, rng: Any) -> np.ndarray:
    """Haar directions with the lengths of Cauchy rows: rotation invariant, so biased."""
    import favor.sampling

    lengths = np.linalg.norm(rng.standard_cauchy((m, d)), axis=1)
    unit = favor.sampling.orthogonal_projection(m, d, norms="fixed", rng=rng) / np.sqrt(d)
    return unit * lengths[:, None]


def _unsigned_structured(m: int, d: int, *, rng: Any) -> np.ndarray:
    import favor.couplings

    return favor.couplings.structured_projection(m, d, random_signs=False, rng=rng)


def claim_specs(spec: Callable[..., Any]) -> list[Any]:
    """The K and W claims, built with the claim registry's ``ClaimSpec`` class.

    Parameters
    ----------
    spec : callable
        ``theory.registry.ClaimSpec``.

    Returns
    -------
    list
        One ``ClaimSpec`` per claim, each with its negative controls.
    """
    import favor.sampling
    from theory import coupling_bias, coupling_simplex_plus

    specs = []
    i = 0
    for kernel, couplings in KERNEL_COUPLINGS.items():
        for coupling in couplings:
            i += 1
            # A Sobol engine costs ~7 ms; Matern claims draw three projections per trial.
            quick = (150 if kernel == "matern" else 300) if coupling == "qmc" else 1000
            if coupling == "qmc":
                bad = _unscrambled_cauchy if kernel == "laplacian" else _unscrambled
                controls = {"unscrambled Sobol": lambda bad=bad: {"sampler": bad}}
            elif coupling == "simplex":
                controls = {"simplex without rotation": lambda: {"sampler": _unrotated}}
            elif kernel == "laplacian":
                controls = {"Haar-rotated Cauchy rows": lambda: {"sampler": _rotated_cauchy}}
            else:
                controls = {}
            if kernel == "matern" and coupling in ("iid", "orthogonal"):
                controls["Gaussian norms"] = lambda c=coupling: {"sampler": _gaussian_norms(c)}
            maps = "trigonometric, positive and hyperbolic" if kernel == "rbf" else "trigonometric"
            specs.append(
                spec(
                    f"K{i}",
                    f"{maps} features with {coupling} rows from the {kernel} kernel's spectral "
                    f"law are unbiased for it"
                    + (" (nu = 1/2, 3/2, 5/2)" if kernel == "matern" else ""),
                    check_coupling_unbiased,
                    {"kernel": kernel, "projection": coupling, "seed": 700 + i, "n_trials": quick},
                    {"n_trials": 10 * quick},
                    controls,
                )
            )
    specs.append(
        spec(
            "K9",
            "trigonometric, positive and hyperbolic features with norm-dependent simplex "
            "(simplex+) rows from the rbf kernel's spectral law are unbiased for it",
            check_coupling_unbiased,
            {"kernel": "rbf", "projection": "simplex+", "seed": 709, "n_trials": 1000},
            {"n_trials": 10_000},
            {"simplex+ without rotation": lambda: {"sampler": _unrotated_plus}},
        )
    )
    phase = {"phase-shifted cos (RBFSampler form)": lambda: {"features": "phase"}}
    specs += [
        spec(
            "W1",
            "i.i.d. (cos, sin) Laplacian-kernel features have variance (1 + k(2D) - 2k(D)^2)/D",
            check_trig_variance,
            {"kernel": "laplacian", "seed": 801, "batch": 500},
            {"n_trials": 200_000},
            phase,
        ),
        spec(
            "W2",
            "i.i.d. (cos, sin) Matern features (nu = 1/2, 3/2, 5/2) have variance "
            "(1 + k(2D) - 2k(D)^2)/D",
            check_trig_variance,
            {"kernel": "matern", "seed": 802, "n_trials": 8000, "batch": 500},
            {"n_trials": 80_000},
            phase,
        ),
        spec(
            "W3",
            "the MSE of simplex positive features equals the exact pair integral at cosine "
            "-1/(d-1)",
            check_simplex_mse,
            {"seed": 803, "n_trials": 3000},
            {"n_trials": 30_000},
            {"orthogonal rows": lambda: {"sampler": favor.sampling.orthogonal_projection}},
        ),
        spec(
            "W4",
            "structured (SORF) trigonometric features have MSE below 1.15x the exact "
            "orthogonal MSE (d = m = 64, axis-aligned difference)",
            check_mse_below,
            {"projection": "structured", "seed": 804, "n_trials": 10_000, "batch": 250},
            {"n_trials": 100_000},
            {"SORF without random signs": lambda: {"sampler": _unsigned_structured}},
        ),
        spec(
            "W5",
            "scrambled-Sobol trigonometric features at m = 16 have less than half the i.i.d. "
            "MSE (d = 4)",
            check_mse_below,
            {
                "projection": "qmc",
                "reference": "iid",
                "factor": 0.5,
                "n_features": 4,
                "n_components": 16,
                "n_trials": 600,
                "seed": 805,
            },
            {"n_trials": 6000},
            {"i.i.d. rows": lambda: {"sampler": favor.sampling.iid_projection}},
        ),
        spec(
            "W6",
            "structured (SORF) trigonometric features: the bias for the Gaussian kernel is "
            "within its proven bound (chi and sqrt(p) lengths; d = 64 and padded d = 48; "
            "axis-aligned difference, z = 1.5)",
            coupling_bias.check_structured_bias,
            {"seed": 806},
            {"n_blocks": 20_000},
            {
                "one HD block instead of three": lambda: {
                    "sampler": coupling_bias.one_block_structured
                },
                "SORF without random signs": lambda: {"sampler": coupling_bias.unsigned_structured},
            },
        ),
        spec(
            "W7",
            "norm-dependent simplex (simplex+) positive features have MSE below 0.6 times the "
            "exact simplex MSE for small inputs (d = m = 16, |x| = |y| = 0.2)",
            coupling_simplex_plus.check_simplex_plus_mse,
            {"seed": 807},
            {"n_trials": 20_000},
            {"simplex rows": lambda: {"sampler": coupling_simplex_plus.simplex_rows}},
        ),
    ]
    return specs
