r"""Figures: closed-form curves over Monte Carlo points with intervals (matplotlib, Agg).

* :func:`figure_mse_vs_kernel` -- MSE of trigonometric, positive and hyperbolic features
  against the softmax kernel value (Performers Lemma 2 / Fig. 2 style comparison);
* :func:`figure_orthogonal_vs_iid` -- positive-feature MSE against ``m``: i.i.d. (Lemma 2),
  orthogonal (exact quadrature, formulas §3.2) and the Theorem 2 bound;
* :func:`figure_attention_error` -- MSE of the normalised FAVOR+ attention matrix against
  ``m`` for several ``L``, with the first-order delta-method curves;
* :mod:`theory.figures_claims` -- one figure for each other claim family (C1's sup error
  against ``m`` with the fitted slope, U, S, E, R1, G and H together, K and W together).

Every point is measured by the public API in the same call (nothing is pasted in);
error bars are 95% CLT intervals (a display choice; the claims use 1e-6 rules).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from theory import attention_forms, closed_forms, orthogonal_forms
from theory.montecarlo import kernel_estimates

__all__ = [
    "figure_attention_error",
    "figure_mse_vs_kernel",
    "figure_orthogonal_vs_iid",
    "write_figures",
]

_Z95 = 1.959963984540054


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, fig: Any, path: str | Path) -> Path:
    """Lay out, write ``fig`` as a PNG at ``path`` and close it."""
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def _mc_mse(est: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    e = (est - target) ** 2
    return e.mean(0), _Z95 * e.std(0, ddof=1) / np.sqrt(e.shape[0])


def figure_mse_vs_kernel(path: str | Path, *, n_trials: int = 4000, seed: int = 11) -> Path:
    r"""MSE against :math:`\mathrm{SM}(x, y)` for the three softmax maps (d = 4, m = 8).

    ``x = r e_1``, ``y = r(\cos\theta e_1 + \sin\theta e_2)`` with ``r = 0.8`` and the angle
    sweeping :math:`(0, \pi)`, so the kernel runs from :math:`e^{-r^2}` to :math:`e^{r^2}`.

    Parameters
    ----------
    path : str or Path
        Output PNG.
    n_trials : int, default=4000
        Trials per Monte Carlo point.
    seed : int, default=11
        Root seed.

    Returns
    -------
    Path
        The written file.
    """
    plt = _pyplot()
    d, m, r = 4, 8, 0.8

    def pairs(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.zeros((theta.size, d))
        y = np.zeros((theta.size, d))
        x[:, 0] = r
        y[:, 0], y[:, 1] = r * np.cos(theta), r * np.sin(theta)
        return x, y

    grid = np.linspace(0.05, np.pi - 0.01, 200)
    gx, gy = pairs(grid)
    sm = closed_forms.softmax_kernel_value(gx, gy)
    pts = np.linspace(0.3, np.pi - 0.1, 7)
    px, py = pairs(pts)
    psm = closed_forms.softmax_kernel_value(px, py)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    forms = {
        "trigonometric": closed_forms.mse_trigonometric,
        "positive": closed_forms.mse_positive,
        "hyperbolic": closed_forms.mse_hyperbolic,
    }
    for i, (name, form) in enumerate(forms.items()):
        line = ax.plot(sm, form(gx, gy, m), label=f"{name} (Lemma 2)")[0]
        est = kernel_estimates(
            px,
            py,
            feature_map=name,
            sampler="iid",
            n_components=m,
            n_trials=n_trials,
            seed=seed + i,
        )
        mse, half = _mc_mse(est, psm)
        ax.errorbar(psm, mse, yerr=half, fmt="o", color=line.get_color(), ms=4, capsize=2)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("softmax kernel SM(x, y)")
    ax.set_ylabel(f"MSE (m = {m}, iid, d = {d})")
    ax.set_title("Positive features win where the kernel is small")
    ax.legend()
    return _save(plt, fig, path)


def figure_orthogonal_vs_iid(path: str | Path, *, n_trials: int = 4000, seed: int = 21) -> Path:
    r"""Positive-feature MSE against ``m``: i.i.d. vs orthogonal (d = 8, one pair).

    Parameters
    ----------
    path : str or Path
        Output PNG.
    n_trials : int, default=4000
        Trials per Monte Carlo point.
    seed : int, default=21
        Root seed.

    Returns
    -------
    Path
        The written file.
    """
    plt = _pyplot()
    d = 8
    x = np.zeros((1, d))
    y = np.zeros((1, d))
    x[0, :2], y[0, :2] = (0.5, 0.3), (0.5, -0.3)
    sm = closed_forms.softmax_kernel_value(x, y)
    ms = np.arange(1, 4 * d + 1)
    iid = closed_forms.mse_positive(x[0], y[0], ms)
    ort = np.array([orthogonal_forms.mse_orthogonal(x[0], y[0], int(m)) for m in ms])
    bound = np.array([orthogonal_forms.theorem2_mse_bound(x[0], y[0], int(m)) for m in ms[ms <= d]])
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ax.plot(ms, iid, label="iid (Lemma 2)")
    ax.plot(ms, ort, label="orthogonal (exact quadrature)")
    ax.plot(ms[ms <= d], bound, "--", label="Theorem 2 bound (m <= d)")
    pts = np.array([2, 4, 8, 16, 32])
    for j, sampler in enumerate(("iid", "orthogonal")):
        mse, half = np.zeros(pts.size), np.zeros(pts.size)
        for i, m in enumerate(pts):
            est = kernel_estimates(
                x,
                y,
                sampler=sampler,
                n_components=int(m),
                n_trials=n_trials,
                seed=seed + 10 * j + i,
            )
            a, b = _mc_mse(est, sm)
            mse[i], half[i] = a[0], b[0]
        ax.errorbar(
            pts,
            mse,
            yerr=half,
            fmt="o",
            ms=4,
            capsize=2,
            color=f"C{j}",
            label=f"{sampler} Monte Carlo",
        )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("number of projections m")
    ax.set_ylabel("MSE of positive features")
    ax.set_title(f"Orthogonal vs iid projections (d = {d}, |x+y|^2 = 1)")
    ax.legend()
    return _save(plt, fig, path)


def figure_attention_error(
    path: str | Path,
    *,
    n_trials: int = 300,
    seed: int = 31,
    tokens: tuple[int, ...] = (16, 32, 64),
    components: tuple[int, ...] = (16, 64, 256),
) -> Path | None:
    r"""Per-row MSE of the normalised attention matrix against ``m`` for several ``L``.

    Parameters
    ----------
    path : str or Path
        Output PNG.
    n_trials : int, default=300
        Trials per Monte Carlo point.
    seed : int, default=31
        Root seed.
    tokens : tuple of int
        Sequence lengths.
    components : tuple of int
        Values of ``m``.

    Returns
    -------
    Path or None
        The written file, or None if ``favor.favor_attention`` is missing.
    """
    from theory.attention_error import (
        attention_error_samples,
        attention_inputs,
        favor_attention_available,
    )

    if not favor_attention_available():
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    grid = np.geomspace(min(components), max(components), 50)
    for i, n in enumerate(tokens):
        q, k = attention_inputs(n)
        first = np.array([attention_forms.normalised_attention_first_order(q, k, 1)[2].sum() / n])
        ax.plot(grid, first / grid, color=f"C{i}", label=f"L = {n}, first order")
        mse, half = [], []
        for j, m in enumerate(components):
            ratio, _, _ = attention_error_samples(
                q, k, m, n_trials, seed + 10 * i + j, control_variate=False
            )
            scale = attention_forms.normalised_attention_first_order(q, k, m)[2].sum() / n
            mse.append(ratio.mean() * scale)
            half.append(_Z95 * ratio.std(ddof=1) / np.sqrt(n_trials) * scale)
        ax.errorbar(components, mse, yerr=half, fmt="o", ms=4, capsize=2, color=f"C{i}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("number of projections m")
    ax.set_ylabel("E ||row of P_hat - P||^2 (mean over rows)")
    ax.set_title("FAVOR+ normalised attention error (positive, iid)")
    ax.legend()
    return _save(plt, fig, path)


def write_figures(
    out_dir: str | Path, *, scale: int = 1, results: Mapping[str, Any] | None = None
) -> list[Path]:
    """Write every figure into ``out_dir``.

    Parameters
    ----------
    out_dir : str or Path
        Directory (created if needed).
    scale : int, default=1
        Multiplier of the Monte Carlo sizes (10 for ``--full``).
    results : mapping of claim id to ClaimCheck, optional
        The run's results: figures about claims plot the claims' own evidence.

    Returns
    -------
    list of Path
        The files written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = [
        figure_mse_vs_kernel(out / "mse_vs_kernel.png", n_trials=2000 * scale),
        figure_orthogonal_vs_iid(out / "orthogonal_vs_iid.png", n_trials=2000 * scale),
        figure_attention_error(out / "attention_error.png", n_trials=200 * scale),
    ]
    from theory.figures_claims import write_claim_figures

    files += write_claim_figures(out, scale=scale, results=results)
    return [f for f in files if f is not None]
