r"""Claims S: every chi-norm sampler's rows are marginally :math:`\mathcal N(0, I_d)`.

All unbiasedness statements for i.i.d. and chi-norm orthogonal projections rest on one
property: each row :math:`\omega_r` of ``draw_projection(name, m, d)`` is marginally
standard Gaussian (formulas §3.1; Performers Sec. 2.4), at *every* row position, including
the rows of a partial last block when ``m`` is not a multiple of ``d``. This check draws
``n_trials`` projections through the public ``favor.sampling.draw_projection`` (the one
place the engine draws from) and tests the Gaussian moments at each position:

* :math:`E\omega = 0` (catches QR without the sign fix: LAPACK's Q has signed diagonals,
  formulas §3.1 [C4a]);
* :math:`E\omega\omega^T = I` (direction or per-coordinate scale errors);
* :math:`E\lVert\omega\rVert^4 = d(d+2)` (fixed :math:`\sqrt d` norms give :math:`d^2`;
  non-Gaussian entries another value);
* pooled over all rows and over each block: :math:`E\lVert\omega\rVert^2/d = 1`, the row
  scale (a 1% scale error moves it by 2%).

Per-position statistics use the exact null standard errors (Gaussian moments,
formulas §8.2 rule (c)); the pooled ones the empirical standard error over independent
trials (rows of one projection may be coupled). Half of the false-alarm rate goes to the
pooled scale tests, half to the per-position battery, each split by Bonferroni. For
block couplings with a fixed geometry (:data:`BLOCK_COSINES`: orthogonal blocks, regular
simplex blocks) the cosines between distinct directions inside each block must also equal
the coupling's value to 1e-12 (an exact part of the claim).

The S claims are generated from ``favor.registry.SAMPLERS`` (:func:`sampler_claims`):
every registered sampler whose documented marginal law is :math:`\mathcal N(0, I_d)`
(its ``marginal`` text starts with ``"N(0, I_d)"``) gets this check, so registering a
sampler gives it its claim; samplers documented as only approximately Gaussian
(``structured``) are not claimed here (their error is bounded by their own claims).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from theory._stats import FALSE_ALARM, critical_z, resolving_power
from theory.montecarlo import run_blocks
from theory.results import ClaimCheck

__all__ = ["BLOCK_COSINES", "check_sampler_marginals", "gaussian_samplers"]

#: Exact block geometry per sampler name: the cosine between two distinct row directions
#: inside one block of ``d`` rows, as a function of ``d`` (formulas §3.1, §6.2).
BLOCK_COSINES: dict[str, Callable[[int], float]] = {
    "orthogonal": lambda d: 0.0,
    "simplex": lambda d: -1.0 / (d - 1),
}


def gaussian_samplers() -> list[str]:
    """Registered samplers whose documented marginal law is N(0, I_d), ``iid`` and
    ``orthogonal`` first, the others in registration order (the S claims' order)."""
    import favor.registry

    names = [n for n in ("iid", "orthogonal") if n in favor.registry.SAMPLERS]
    names += [n for n in favor.registry.SAMPLERS if n not in names]
    return [n for n in names if favor.registry.SAMPLERS[n].marginal.startswith("N(0, I_d)")]


def _draw(sampler: str | Callable[..., np.ndarray], m: int, d: int):
    if callable(sampler):
        return lambda rng: np.asarray(sampler(m, d, rng=rng), dtype=np.float64)
    from favor.sampling import draw_projection

    return lambda rng: np.asarray(draw_projection(sampler, m, d, rng=rng), dtype=np.float64)


def check_sampler_marginals(
    sampler: str | Callable[..., np.ndarray] = "orthogonal",
    *,
    block_cosine: float | None = None,
    n_components: int = 20,
    n_features: int = 8,
    n_trials: int = 4000,
    seed: int = 1001,
    alpha: float = FALSE_ALARM,
    name: str | None = None,
    scale_shape: tuple[int, int] | None = (64, 64),
    scale_trials: int = 200,
) -> ClaimCheck:
    r"""Check that every row position of a sampler is marginally :math:`\mathcal N(0, I_d)`.

    Parameters
    ----------
    sampler : str or callable, default="orthogonal"
        A ``favor.sampling.SAMPLERS`` name (drawn through ``draw_projection``) or a callable
        ``sampler(n_components, n_features, *, rng)`` (negative controls).
    block_cosine : float, optional
        Also require this cosine between distinct directions inside each block of ``d``
        rows; default: :data:`BLOCK_COSINES` of the sampler's name (none if unlisted).
    n_components : int, default=20
        ``m`` (20 = two full blocks of 8 and a partial block of 4).
    n_features : int, default=8
        ``d``.
    n_trials : int, default=4000
        Independent projections.
    seed : int, default=1001
        Root seed.
    alpha : float, default=FALSE_ALARM
        Declared false-alarm rate.
    name : str, optional
        Claim name.
    scale_shape : (int, int) or None, default=(64, 64)
        Shape :math:`(m', d')` of the projections of the row-scale test: ``scale_trials``
        more draws whose per-draw mean :math:`\lVert\omega\rVert^2/d'` must average 1
        (Student-t rule on the draws, so no null variance is assumed). Its power grows
        with the number of coordinates drawn, :math:`m' d'` per draw (the standard error
        of :math:`\chi^2_{d'}/d'` averaged over :math:`m'` independent rows is
        :math:`\sqrt{2/(m'd')}`), cheaply at large :math:`d'`; None: no such test.
    scale_trials : int, default=200
        Draws of the row-scale test.

    Returns
    -------
    ClaimCheck
        Estimate: the pooled :math:`E\lVert\omega\rVert^2/d` of the row-scale test
        (target 1); the statistic names the worst per-position test.
    """
    m, d = n_components, n_features
    if block_cosine is None and isinstance(sampler, str) and sampler in BLOCK_COSINES:
        block_cosine = BLOCK_COSINES[sampler](d)
    draw = _draw(sampler, m, d)

    def work(rng: np.random.Generator, n: int) -> np.ndarray:
        return np.stack([draw(rng) for _ in range(n)])

    w = run_blocks(work, n_trials, seed, block_size=500)  # (N, m, d)
    n = w.shape[0]
    sq = np.einsum("nrd,nrd->nr", w, w)
    # Per-position battery (exact Gaussian null standard errors).
    iu = np.triu_indices(d)
    second = np.einsum("nra,nrb->rab", w, w)[:, iu[0], iu[1]] / n
    second_target = (iu[0] == iu[1]).astype(float)
    second_sd = np.where(iu[0] == iu[1], np.sqrt(2.0), 1.0)
    mean4 = (sq**2).mean(0)
    m4 = d * (d + 2.0)
    sd4 = np.sqrt(d * (d + 2.0) * (d + 4.0) * (d + 6.0) - m4**2)
    z_pos = {
        "mean": np.abs(w.mean(0)) * np.sqrt(n),
        "second moments": np.abs(second - second_target) / second_sd * np.sqrt(n),
        "fourth moment of the norm": np.abs(mean4 - m4) / sd4 * np.sqrt(n),
    }
    k_pos = sum(v.size for v in z_pos.values())
    crit_pos = critical_z(alpha / 2, k_pos)
    worst_kind = max(z_pos, key=lambda key: z_pos[key].max())
    worst_z = float(z_pos[worst_kind].max())
    worst_row = int(np.unravel_index(np.argmax(z_pos[worst_kind]), z_pos[worst_kind].shape)[0])
    # Pooled row scale: all rows, and each block of d rows (empirical SE over trials).
    blocks = [(0, m)] + [(b, min(b + d, m)) for b in range(0, m, d)]
    scale_z, scale_est, scale_se = [], [], []
    for lo, hi in blocks:
        per_trial = sq[:, lo:hi].mean(1) / d
        est = per_trial.mean()
        se = per_trial.std(ddof=1) / np.sqrt(n)
        scale_est.append(est)
        scale_se.append(se)
        # A draw that ignores its generator has se 0: any deviation is then infinite z.
        scale_z.append(abs(est - 1.0) / se if se > 0 else (0.0 if est == 1.0 else np.inf))
    # Half the row-scale budget to the blocks above, half to the large-shape test.
    share = alpha / 2 if scale_shape is None else alpha / 4
    crit_scale = critical_z(share, len(blocks))
    passed = bool(worst_z < crit_pos and max(scale_z) < crit_scale)
    big_note = ""
    if scale_shape is not None:
        from scipy.stats import t as student

        mb, db = scale_shape
        draw_big = _draw(sampler, mb, db)

        def work_big(rng: np.random.Generator, n: int) -> np.ndarray:
            draws = (draw_big(rng) for _ in range(n))
            return np.array([np.einsum("rd,rd->", w, w) / (mb * db) for w in draws])

        r = run_blocks(work_big, scale_trials, seed + 7919, block_size=500)
        big_est = float(r.mean())
        big_se = float(r.std(ddof=1) / np.sqrt(r.size))
        big_z = abs(big_est - 1.0) / big_se if big_se > 0 else (np.inf if big_est != 1.0 else 0.0)
        crit_big = float(student.isf(share / 2, r.size - 1))
        passed = passed and big_z < crit_big
        big_note = (
            f"; row scale^2 at m = {mb}, d = {db}: {big_est:.4f} (|t| {big_z:.2f}, crit "
            f"{crit_big:.2f}, {r.size} draws)"
        )
    note = ""
    if block_cosine is not None:
        dev = 0.0
        u = w / np.linalg.norm(w, axis=-1, keepdims=True)
        for lo in range(0, m, d):
            blk = u[:, lo : min(lo + d, m)]
            gram = np.einsum("nad,nbd->nab", blk, blk)
            k = blk.shape[1]
            want = np.eye(k) + block_cosine * (1.0 - np.eye(k))
            dev = max(dev, float(np.abs(gram - want).max()))
        passed = passed and dev < 1e-12
        note = f"; block direction cosines {block_cosine:.4g} to {dev:.1e} (need < 1e-12)"
    half = crit_scale * scale_se[0]
    power = resolving_power(np.array(scale_se[:1]), share, n_tests=len(blocks))
    estimate = float(scale_est[0])
    if scale_shape is not None:
        half = crit_big * big_se
        estimate = big_est
        power = min(power, (crit_big + 2.326) * big_se)  # z_0.99 = 2.326
    label = sampler if isinstance(sampler, str) else getattr(sampler, "__name__", "sampler")
    return ClaimCheck(
        name=name or f"{label} rows are marginally N(0, I) at every position (m={m}, d={d})",
        source="formulas §3.1 (chi-norm rows, Haar blocks with the QR sign fix); Performers Sec. 2.4",
        estimate=estimate,
        interval=(estimate - half, estimate + half),
        alpha=alpha,
        n_trials=n,
        seed=seed,
        passed=passed,
        statistic=(
            f"worst per-position |z| = {worst_z:.2f} ({worst_kind}, row {worst_row}; crit "
            f"{crit_pos:.2f}, {k_pos} tests); row scale^2 per block "
            + ", ".join(f"{e:.4f}" for e in scale_est[1:])
            + f" (max |z| {max(scale_z):.2f}, crit {crit_scale:.2f})"
            + big_note
            + note
        ),
        target=1.0,
        data={
            "scale": np.array(scale_est),
            "scale_se": np.array(scale_se),
            "z": z_pos,
            # Per row position: E|w_r|^2 / d and its standard error (the S figure).
            "row_scale": sq.mean(0) / d,
            "row_scale_se": sq.std(0, ddof=1) / d / np.sqrt(n),
        },
        # E|w|^2/d moves by 2x the relative row-scale error.
        resolving_power=power / 2,
        resolves="row scale",
    )
