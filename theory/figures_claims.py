r"""Figures for the claim families without one in :mod:`theory.figures` (C, U, S, E, R, G, H, K, W).

* :func:`figure_sup_error_rate` -- C1: median sup error of the Gram estimate against ``m``
  (log-log) with the fitted slope and its interval, against the :math:`m^{-1/2}` claim;
* :func:`figure_unbiasedness` -- U: mean / kernel with the claim intervals for every
  (map, sampler, kernel) claim;
* :func:`figure_sampler_moments` -- S: :math:`E\lVert\omega_r\rVert^2/d` per row position
  for each sampler (m = 20, d = 8: the partial block is rows 16-19);
* :func:`figure_engine_paths` -- E: relative deviation of every engine path from the
  collapsed-form oracle, against the tolerances;
* :func:`figure_error_prediction` -- R1: measured against predicted relative RMS error
  of the normaliser, per regime;
* :func:`figure_claim_estimates` -- G, H (FAVOR++, SADERF, hybrid) and K, W (couplings
  and kernels): each claim's own estimate relative to its target with its interval at the
  declared rate, and the exact checks' deviations against their tolerances.

Every point is measured in the same call (the checks' own evidence is plotted).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from theory.figures import _pyplot, _save
from theory.results import ClaimCheck

__all__ = [
    "by_claim_id",
    "figure_claim_estimates",
    "figure_engine_paths",
    "figure_error_prediction",
    "figure_sampler_moments",
    "figure_sup_error_rate",
    "figure_unbiasedness",
    "write_claim_figures",
]

_Z95 = 1.959963984540054

Results = Mapping[str, ClaimCheck] | None


def _result(claim_id: str, results: Results, profile: str = "quick") -> ClaimCheck:
    """The run's own result for ``claim_id`` if it has one, else the claim run now."""
    if results is not None and claim_id in results:
        return results[claim_id]
    from theory.registry import run_claim

    return run_claim(claim_id, profile=profile)


def by_claim_id(results: Iterable[ClaimCheck]) -> dict[str, ClaimCheck]:
    """Index results by claim id (the first word of their names; controls are skipped).

    Parameters
    ----------
    results : iterable of ClaimCheck
        As returned by :func:`theory.report.run_all`.

    Returns
    -------
    dict
        ``{"U3": result, ...}``.
    """
    return {r.name.split()[0]: r for r in results if "[" not in r.name.split()[0]}


def figure_sup_error_rate(
    path: str | Path, *, n_trials: int = 200, results: Results = None
) -> Path:
    """C1: sup error against ``m`` with the fitted log-log slope.

    Parameters
    ----------
    path : str or Path
        Output PNG.
    n_trials : int, default=200
        Trials per ``m`` when C1 is not in ``results``.
    results : mapping of claim id to ClaimCheck, optional
        The run's results: C1's own evidence is plotted when it is there.

    Returns
    -------
    Path
        The written file.
    """
    if results is not None and "C1" in results:
        res = results["C1"]
    else:
        from theory.uniform_convergence import check_sup_error_rate

        res = check_sup_error_rate(n_trials=n_trials)
    n_trials = len(res.data["sup_errors"][0])
    m = res.data["components"]
    errors = res.data["sup_errors"]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ax.boxplot(list(errors), positions=np.log2(m), widths=0.3, showfliers=False)
    grid = np.log2(np.geomspace(m.min(), m.max(), 50))
    centre = np.exp(np.mean(np.log(errors)) - res.estimate * np.mean(np.log(m)))
    ax.plot(grid, centre * (2.0**grid) ** res.estimate, "C1",
            label=f"fit: slope {res.estimate:.3f} [{res.interval[0]:.3f}, {res.interval[1]:.3f}]")  # fmt: skip
    ax.plot(grid, centre * m.min() ** (res.estimate + 0.5) * (2.0**grid) ** -0.5, "k--",
            label="slope -1/2 (claim C1)")  # fmt: skip
    ax.set_yscale("log")
    ax.set_xticks(np.log2(m), [str(int(v)) for v in m])
    ax.set_xlabel("number of projections m")
    ax.set_ylabel("sup |K_hat - K| over the point set")
    ax.set_title(f"C1: uniform convergence (trig, orthogonal, d = 16), {n_trials} draws per m")
    ax.legend()
    return _save(plt, fig, path)


def figure_unbiasedness(path: str | Path, *, scale: int = 1, results: Results = None) -> Path:
    """U: the worst ratio mean / kernel of every U claim with its interval.

    Parameters
    ----------
    path : str or Path
        Output PNG.
    scale : int, default=1
        1: the claims' quick sizes; more: their ``--full`` sizes (for claims not in
        ``results``).
    results : mapping of claim id to ClaimCheck, optional
        The run's results, plotted where they are there.

    Returns
    -------
    Path
        The written file.
    """
    from theory.registry import current_claims

    specs = [s for s in current_claims() if s.claim_id.startswith("U")]
    profile = "full" if scale > 1 else "quick"
    checks = [_result(spec.claim_id, results, profile) for spec in specs]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 0.32 * len(specs) + 1.2))
    y = np.arange(len(specs))[::-1]
    est = np.array([r.estimate for r in checks])
    lo = np.array([r.interval[0] for r in checks])
    hi = np.array([r.interval[1] for r in checks])
    ax.errorbar(est, y, xerr=[est - lo, hi - est], fmt="o", ms=4, capsize=2)
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_yticks(y, [f"{s.claim_id} {r.name}" for s, r in zip(specs, checks, strict=True)])
    ax.set_xlabel("mean / exact kernel (worst pair), interval at alpha = 1e-6")
    ax.set_title("U: unbiasedness of every map and sampler")
    return _save(plt, fig, path)


def figure_sampler_moments(
    path: str | Path, *, n_trials: int = 4000, results: Results = None
) -> Path:
    r"""S: :math:`E\lVert\omega_r\rVert^2/d` per row position for every sampler.

    Parameters
    ----------
    path : str or Path
        Output PNG.
    n_trials : int, default=4000
        Projections per sampler without an S claim in ``results``.
    results : mapping of claim id to ClaimCheck, optional
        The run's results: a sampler's S claim evidence is plotted when it is there.

    Returns
    -------
    Path
        The written file.
    """
    import favor
    from favor.sampling import draw_projection
    from theory.registry import _S_TRIALS, current_claims

    m, d = 20, 8
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    rng = np.random.default_rng(12)
    own = {
        spec.kwargs.get("sampler"): results[spec.claim_id].data
        for spec in current_claims()
        if spec.claim_id.startswith("S") and results is not None and spec.claim_id in results
        and "row_scale" in results[spec.claim_id].data
    }  # fmt: skip
    for i, name in enumerate(favor.registry.SAMPLERS):
        if name in own:
            mean, se = own[name]["row_scale"], own[name]["row_scale_se"]
            label = f"{name} (its S claim)"
        else:
            # Costly samplers (a Sobol engine per draw) get their S claim's share of draws.
            n = max(100, n_trials * _S_TRIALS.get(name, 4000) // 4000)
            w = np.stack([draw_projection(name, m, d, rng=rng) for _ in range(n)])
            sq = (w**2).sum(-1) / d
            mean, se, label = sq.mean(0), sq.std(0) / np.sqrt(n), f"{name} ({n} draws)"
        ax.errorbar(np.arange(m) + 0.1 * i, mean, yerr=_Z95 * se, fmt="o", ms=4, capsize=2,
                    label=label)  # fmt: skip
    ax.axhline(1.0, color="k", lw=0.8)
    ax.axvspan((m // d) * d - 0.5, m - 0.5, color="0.9", label="partial block")
    ax.set_xlabel("row position r")
    ax.set_ylabel("E |w_r|^2 / d (95% intervals)")
    ax.set_title(f"S: row scale per position (m = {m}, d = {d})")
    ax.legend()
    return _save(plt, fig, path)


def figure_engine_paths(path: str | Path, *, results: Results = None) -> Path:
    """E: every engine path's relative deviation from the oracle, against its tolerance.

    Parameters
    ----------
    path : str or Path
        Output PNG.
    results : mapping of claim id to ClaimCheck, optional
        The run's results, plotted where they are there.

    Returns
    -------
    Path
        The written file.
    """
    from theory.registry import current_claims

    rows = []  # (label, deviations of its paths, tolerances)
    for spec in current_claims():
        if not spec.claim_id.startswith("E"):
            continue
        res = _result(spec.claim_id, results)
        raw = res.data.get("raw") or {
            key: (value, res.resolving_power) for key, value in res.data["deviations"].items()
        }
        values = np.array([max(value, 1e-17) for value, _ in raw.values()])
        tols = np.array([tol if tol else np.nan for _, tol in raw.values()])
        rows.append((f"{spec.claim_id} ({len(raw)} paths)", values, tols))
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.0, 0.3 * len(rows) + 1.6))
    jitter = np.random.default_rng(0)
    for i, (_, values, tols) in enumerate(rows):
        y = len(rows) - 1 - i
        ax.scatter(values, y + 0.25 * (jitter.random(values.size) - 0.5), s=8, color="C0",
                   alpha=0.6, label="paths" if i == 0 else None)  # fmt: skip
        if np.isfinite(tols).any():
            ax.scatter(np.unique(tols[np.isfinite(tols)]), [y] * np.unique(
                tols[np.isfinite(tols)]).size, marker="|", s=120, color="C3",
                label="tolerance" if i == 0 else None)  # fmt: skip
    ax.set_xscale("log")
    ax.set_yticks(np.arange(len(rows))[::-1], [label for label, _, _ in rows], fontsize=7)
    ax.set_xlabel("|engine - oracle| / output scale per path (1e-17: exact; bit-exact claims: 0)")
    ax.set_title("E: engine paths against the collapsed-form oracle")
    ax.legend(loc="lower right", fontsize=7)
    return _save(plt, fig, path)


def figure_error_prediction(
    path: str | Path, *, n_trials: int = 2000, results: Results = None
) -> Path:
    """R1: measured against predicted normaliser error, per regime.

    Parameters
    ----------
    path : str or Path
        Output PNG.
    n_trials : int, default=2000
        Trials per regime when R1 is not in ``results``.
    results : mapping of claim id to ClaimCheck, optional
        The run's results: R1's own evidence is plotted when it is there.

    Returns
    -------
    Path
        The written file.
    """
    if results is not None and "R1" in results:
        res = results["R1"]
        n_trials = int(res.n_trials // len(res.data["regimes"]))
    else:
        from theory.error_prediction import check_error_prediction

        res = check_error_prediction(n_trials=n_trials)
    pred = np.array(res.data["predicted_rms"])
    ratio = np.array(res.data["ratios"])
    se = np.array(res.data["std_errors"])
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 4.4))
    measured = pred * np.sqrt(ratio)
    half = pred * _Z95 * se / (2 * np.sqrt(ratio))
    ax.errorbar(pred, measured, yerr=half, fmt="o", ms=4, capsize=2)
    for x, y, label in zip(pred, measured, res.data["regimes"], strict=True):
        ax.annotate(label, (x, y), fontsize=6, xytext=(3, -8), textcoords="offset points")
    grid = np.array([pred.min() * 0.8, pred.max() * 1.2])
    ax.plot(grid, grid, "k--", lw=0.8, label="measured = predicted")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("estimate_attention_error (RMS over queries)")
    ax.set_ylabel("measured relative RMS error of D_hat")
    ax.set_title(f"R1: error prediction, m = 64, {n_trials} draws per regime")
    ax.legend()
    return _save(plt, fig, path)


def figure_claim_estimates(
    path: str | Path, families: str, *, scale: int = 1, results: Results = None
) -> Path:
    """Claims of the given families: estimate / target with intervals; exact deviations.

    Parameters
    ----------
    path : str or Path
        Output PNG.
    families : str
        Claim id prefixes, e.g. ``"GH"``.
    scale : int, default=1
        1: the claims' quick sizes; more: their ``--full`` sizes (for claims not in
        ``results``).
    results : mapping of claim id to ClaimCheck, optional
        The run's results, plotted where they are there.

    Returns
    -------
    Path
        The written file.
    """
    from theory.registry import current_claims

    specs = [s for s in current_claims() if s.claim_id[0] in families and not s.informational]
    profile = "full" if scale > 1 else "quick"
    checks = [_result(spec.claim_id, results, profile) for spec in specs]
    ratio = [(s, r) for s, r in zip(specs, checks, strict=True) if r.target]
    exact = [(s, r) for s, r in zip(specs, checks, strict=True) if not r.target]
    plt = _pyplot()
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(10.0, 0.3 * max(len(ratio), len(exact)) + 1.6),
        gridspec_kw={"width_ratios": (2, 1)},
    )  # fmt: skip
    y = np.arange(len(ratio))[::-1]
    est = np.array([r.estimate / r.target for _, r in ratio])
    lo = np.array([r.interval[0] / r.target for _, r in ratio])
    hi = np.array([r.interval[1] / r.target for _, r in ratio])
    colours = ["C0" if r.passed else "C3" for _, r in ratio]
    for i, colour in enumerate(colours):
        left.errorbar(est[i], y[i], xerr=[[est[i] - lo[i]], [hi[i] - est[i]]], fmt="o", ms=4,
                      color=colour, capsize=2)  # fmt: skip
    left.axvline(1.0, color="k", lw=0.8)
    left.set_yticks(y, [f"{s.claim_id} {s.statement[:48]}" for s, _ in ratio], fontsize=6)
    left.set_xlabel("estimate / target (a bound for one-sided claims), interval at alpha")
    left.set_title(f"{', '.join(families)}: Monte Carlo claims ({profile} sizes)", fontsize=9)
    if exact:
        ye = np.arange(len(exact))[::-1]
        dev = [max(abs(r.estimate), 1e-17) for _, r in exact]
        tol = [r.resolving_power or np.nan for _, r in exact]
        right.scatter(dev, ye, s=14, label="deviation")
        right.scatter(tol, ye, marker="|", s=60, color="C3", label="tolerance")
        right.set_xscale("log")
        right.set_yticks(ye, [s.claim_id for s, _ in exact])
        right.set_xlabel("exact checks: deviation")
        right.legend(fontsize=7)
    else:
        right.set_axis_off()
    return _save(plt, fig, path)


def write_claim_figures(
    out_dir: str | Path, *, scale: int = 1, results: Results = None
) -> list[Path]:
    """Write the C, U, S, E, R, G/H and K/W figures into ``out_dir``.

    Parameters
    ----------
    out_dir : str or Path
        Directory (created if needed).
    scale : int, default=1
        Multiplier of the Monte Carlo sizes (10 for ``--full``).
    results : mapping of claim id to ClaimCheck, optional
        The run's results (see :func:`by_claim_id`): a figure about claims plots their
        own evidence instead of running them again; claims not there are run.

    Returns
    -------
    list of Path
        The files written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return [
        figure_sup_error_rate(out / "sup_error_rate.png", n_trials=100 * scale, results=results),
        figure_unbiasedness(out / "unbiasedness.png", scale=scale, results=results),
        figure_sampler_moments(
            out / "sampler_moments.png", n_trials=2000 * scale, results=results
        ),
        figure_engine_paths(out / "engine_paths.png", results=results),
        figure_error_prediction(
            out / "error_prediction.png", n_trials=1000 * scale, results=results
        ),
        figure_claim_estimates(
            out / "gerf_hybrid_claims.png", "GH", scale=scale, results=results
        ),
        figure_claim_estimates(out / "coupling_claims.png", "KW", scale=scale, results=results),
    ]
