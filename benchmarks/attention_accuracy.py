"""Accuracy of the attention estimators (FAVOR+, FAVOR++ "oprf", FAVOR#-style "saderf", "hybrid").

For each input regime, seed, number of projections m, coupling and direction, the relative
output error ``||O_hat - O||_F / ||O||_F`` against exact softmax attention, with uniform
attention (each query averages the visible values) as the reference every estimator
should beat. L = 512 tokens, values N(0, 1) with d_v = d, one head.

Regimes (each seed draws a fresh "model" -- centres, per-coordinate scales -- and tokens):

* ``gauss05``: queries and keys N(0, 0.5^2), d = 64 (small logits: FAVOR+'s good regime);
* ``clustered``: d = 16, 8 centres uniform on the sphere of radius 2, each query and key
  its own random centre plus N(0, 0.1^2) noise (peaked attention);
* ``anisotropic``: d = 64, N(0, 0.5^2) entries, queries scaled per coordinate by
  exp(g), keys by exp(-g), g ~ N(0, I) drawn once per model (dot products keep their
  scale, norms do not);
* ``gauss1``: queries and keys N(0, 1), d = 64 (logits of unit scale).

Estimators run through ``favor.favor_attention`` with the same projection for every map
of one (seed, m, coupling) -- paired comparisons; ``hybrid`` gets the same base rows plus
its 4 independent i.i.d. sign rows (m base rows, 20 m features). Couplings: "orthogonal"
and, where the sampler registry has it, "simplex". Bidirectional ``oprf``/``saderf`` fit
their parameters on the sequence; causal ones take parameters fitted on a separate
calibration sample of 512 tokens from the same model (the sequence itself may not be
used: outputs would depend on the future). Summary statistic: the median over seeds;
ratios are ratios of medians. For ``hybrid`` the JSON also records, per seed, the
fraction of query rows zeroed by the normaliser sign rule (estimated normaliser <= 0).

Usage: ``python benchmarks/attention_accuracy.py [--seeds 24] [--quick] [--out DIR]``
writes ``attention_accuracy.json`` and ``attention_accuracy.png`` to DIR (default
``benchmarks/results``, not versioned). The measurement quoted in
``docs/guide/choosing_features.md`` is kept in ``benchmarks/recorded/`` (run with
``--out benchmarks/recorded``).

``--timing L`` instead times each map at the shapes of ``benchmarks/attention.py``
(8 groups, d = d_v = 64, m = 256, float32, N(0, 1/4) entries) at length L, both
directions: rounds of one call per map in turn (interleaved, so a load change on a
shared machine hits every map alike), reported as medians over rounds and as same-run
ratios to FAVOR+ ("positive"), in wall time and in process CPU time (all threads; the
steadier measure when other processes compete for the cores). Fitting the parameters is
included in the bidirectional times; causal calls take parameters fitted once beforehand.
``hybrid`` is timed at equal width (``hybrid@W``: the fewest projection rows whose width W
is at least 256), since its width is about 20 times its number of rows.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import favor
from favor import favor_attention, softmax_attention

N_TOKENS = 512
COMPONENTS = (64, 256, 1024)
REGIMES = ("gauss05", "clustered", "anisotropic", "gauss1")


def _model(name: str, rng: np.random.Generator) -> Callable[[np.random.Generator, int], tuple]:
    """A token sampler for one regime: ``sample(rng, L) -> (q, k)``."""
    if name in ("gauss05", "gauss1"):
        sd = 0.5 if name == "gauss05" else 1.0
        return lambda r, n: (sd * r.standard_normal((n, 64)), sd * r.standard_normal((n, 64)))
    if name == "clustered":
        centres = rng.standard_normal((8, 16))
        centres *= 2.0 / np.linalg.norm(centres, axis=1, keepdims=True)

        def clustered(r: np.random.Generator, n: int) -> tuple:
            q = centres[r.integers(0, 8, n)] + 0.1 * r.standard_normal((n, 16))
            k = centres[r.integers(0, 8, n)] + 0.1 * r.standard_normal((n, 16))
            return q, k

        return clustered
    if name == "anisotropic":
        gain = np.exp(rng.standard_normal(64))
        return lambda r, n: (
            0.5 * r.standard_normal((n, 64)) * gain,
            0.5 * r.standard_normal((n, 64)) / gain,
        )
    raise ValueError(f"regime must be one of {REGIMES}, got {name!r}")


def _uniform(v: np.ndarray, causal: bool) -> np.ndarray:
    if not causal:
        return np.broadcast_to(v.mean(axis=-2, keepdims=True), v.shape)
    return np.cumsum(v, axis=-2) / np.arange(1, v.shape[-2] + 1)[:, None]


def _rel(out: np.ndarray, exact: np.ndarray) -> float:
    return float(np.linalg.norm(out - exact) / np.linalg.norm(exact))


def available_features() -> list[str]:
    """The estimators favor_attention offers here, FAVOR+ first."""
    wanted = ["positive", "oprf", "saderf", "hybrid"]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 8))
    have = []
    for name in wanted:
        try:
            favor_attention(x, x, x, n_components=8, features=name, rng=0)
        except ValueError:
            continue
        have.append(name)
    return have


def available_couplings() -> list[str]:
    """Orthogonal, plus simplex where the sampler registry has it."""
    from favor.registry import SAMPLERS

    return ["orthogonal"] + (["simplex"] if "simplex" in SAMPLERS else [])


def _fit(features: str, q_cal: np.ndarray, k_cal: np.ndarray):
    fit = getattr(favor, "fit_feature_params", None)
    if fit is not None:
        return fit(q_cal, k_cal, features=features)
    from favor.gerf import fit_gerf_parameters

    return fit_gerf_parameters(q_cal, k_cal, features, scale=q_cal.shape[-1] ** -0.25)


def run(seeds: int, components: tuple[int, ...], regimes: tuple[str, ...]) -> dict[str, object]:
    """All errors: ``errors[regime][direction][estimator][m]`` lists over seeds."""
    from favor.registry import FEATURE_MAPS
    from favor.sampling import draw_projection

    features = available_features()
    couplings = available_couplings()
    errors: dict = {}
    zeroed: dict = {}
    for regime in regimes:
        for seed in range(seeds):
            root = np.random.SeedSequence([13, REGIMES.index(regime), seed])
            model_rng, token_rng, cal_rng, proj_rng = (
                np.random.default_rng(s) for s in root.spawn(4)
            )
            sample = _model(regime, model_rng)
            q, k = sample(token_rng, N_TOKENS)
            v = token_rng.standard_normal(q.shape)
            q_cal, k_cal = sample(cal_rng, N_TOKENS)
            d = q.shape[-1]
            for causal in (False, True):
                direction = "causal" if causal else "bidirectional"
                table = errors.setdefault(regime, {}).setdefault(direction, {})
                exact = softmax_attention(q, k, v, causal=causal)
                table.setdefault("uniform", []).append(_rel(_uniform(v, causal), exact))
                for m in components:
                    for coupling in couplings:
                        w = draw_projection(
                            coupling, m, d, rng=np.random.default_rng(proj_rng.integers(2**63))
                        )
                        sign_rng = np.random.default_rng(proj_rng.integers(2**63))
                        for name in features:
                            params = None
                            if causal and name in ("oprf", "saderf"):
                                params = _fit(name, q_cal, k_cal)
                            kwargs = {"feature_params": params} if params is not None else {}
                            proj = w
                            n_signs = FEATURE_MAPS[name].sign_rows
                            if n_signs:  # independent sign rows after the shared base rows
                                proj = np.concatenate([w, sign_rng.standard_normal((n_signs, d))])
                            with warnings.catch_warnings():
                                warnings.simplefilter("ignore", favor.FavorAccuracyWarning)
                                out = favor_attention(
                                    q, k, v, projection=proj, features=name, causal=causal,
                                    **kwargs,
                                )  # fmt: skip
                            key = f"{name}/{coupling}/m={m}"
                            table.setdefault(key, []).append(_rel(out, exact))
                            if not FEATURE_MAPS[name].nonnegative:
                                rows = zeroed.setdefault(regime, {}).setdefault(direction, {})
                                fraction = float(np.mean(~out.any(axis=-1)))
                                rows.setdefault(key, []).append(fraction)
    return {
        "n_tokens": N_TOKENS,
        "seeds": seeds,
        "components": list(components),
        "features": features,
        "couplings": couplings,
        "errors": errors,
        "zeroed_rows": zeroed,
    }


def summarise(result: dict) -> dict:
    """Medians over seeds and ratios of medians to FAVOR+ with the same coupling and m."""
    summary: dict = {}
    for regime, directions in result["errors"].items():
        for direction, table in directions.items():
            med = {key: float(np.median(vals)) for key, vals in table.items()}
            ratios = {}
            for key, value in med.items():
                if key == "uniform" or key.startswith("positive/"):
                    continue
                base = "positive/" + key.split("/", 1)[1]
                ratios[key] = value / med[base]
            summary.setdefault(regime, {})[direction] = {"median": med, "ratio_to_favor+": ratios}
    return summary


def table(summary: dict, m: int = 256) -> str:
    """A Markdown table of the medians at one m (orthogonal coupling) and the ratios."""
    lines = []
    for regime, directions in summary.items():
        for direction, entry in directions.items():
            med, ratio = entry["median"], entry["ratio_to_favor+"]
            cells = [f"uniform {med['uniform']:.3f}"]
            for key, value in med.items():
                if key.endswith(f"/m={m}"):
                    r = ratio.get(key)
                    cells.append(
                        f"{key.rsplit('/', 1)[0]} {value:.3f}" + (f" ({r:.3f}x)" if r else "")
                    )
            lines.append(f"| {regime} | {direction} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def figure(result: dict, summary: dict, path: Path) -> None:
    """Median error against m per regime (bidirectional solid, causal dashed), uniform dotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    regimes = list(summary)
    fig, axes = plt.subplots(1, len(regimes), figsize=(4.2 * len(regimes), 3.6), squeeze=False)
    ms = result["components"]
    for ax, regime in zip(axes[0], regimes, strict=True):
        for direction, style in (("bidirectional", "-"), ("causal", "--")):
            med = summary[regime][direction]["median"]
            for i, name in enumerate(result["features"]):
                for coupling in result["couplings"]:
                    xs = [m for m in ms if f"{name}/{coupling}/m={m}" in med]
                    ys = [med[f"{name}/{coupling}/m={m}"] for m in xs]
                    label = f"{name} {coupling}" if direction == "bidirectional" else None
                    marker = "o" if coupling == "orthogonal" else "s"
                    ax.plot(xs, ys, style, marker=marker, color=f"C{i}", label=label)
            ax.axhline(med["uniform"], color="k", ls=":" if direction == "bidirectional" else "-.")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(regime)
        ax.set_xlabel("m (random projections)")
    axes[0][0].set_ylabel("median relative output error")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(
        f"L = {result['n_tokens']}, {result['seeds']} seeds; solid: bidirectional, dashed: "
        "causal; black: uniform attention",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def timing(n_tokens: int, rounds: int) -> dict:
    """Median seconds per call and ratios to FAVOR+, interleaved rounds (module docstring)."""
    rng = np.random.default_rng(0)
    q, k, v = ((0.5 * rng.standard_normal((8, n_tokens, 64))).astype(np.float32) for _ in range(3))
    w = np.random.default_rng(1).standard_normal((256, 64))
    # The hybrid map's width is about 20x its number of projection rows: it is timed at the
    # smallest number of rows whose width is at least FAVOR+'s (equal cost per feature).
    from favor.registry import feature_map

    hybrid_spec = feature_map("hybrid")
    hybrid_rows = next(r for r in range(5, 257) if hybrid_spec.width_for_rows(r) >= 256)
    features = {f: w for f in available_features() if f != "hybrid"}
    if "hybrid" in available_features():
        features[f"hybrid@{hybrid_spec.width_for_rows(hybrid_rows)}"] = w[:hybrid_rows]
    calls = {}
    for causal in (False, True):
        for label, projection in features.items():
            name = label.split("@")[0]
            kwargs = {}
            if causal and name in ("oprf", "saderf"):
                kwargs["feature_params"] = _fit(name, q, k)

            def call(name=name, causal=causal, kwargs=kwargs, projection=projection) -> None:
                with warnings.catch_warnings():  # the hybrid map's sign-rule warning
                    warnings.simplefilter("ignore", favor.FavorAccuracyWarning)
                    favor_attention(
                        q, k, v, projection=projection, features=name, causal=causal, **kwargs
                    )

            calls[("causal" if causal else "bidirectional", label)] = call
    for call in calls.values():
        call()  # compile and warm up
    wall: dict = {key: [] for key in calls}
    cpu: dict = {key: [] for key in calls}
    for _ in range(rounds):
        for key, call in calls.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            call()
            wall[key].append(time.perf_counter() - start)
            cpu[key].append(time.process_time() - start_cpu)
    out: dict = {"n_tokens": n_tokens, "rounds": rounds}
    for label, times in (("wall", wall), ("cpu", cpu)):
        med = {f"{d}/{n}": float(np.median(v)) for (d, n), v in times.items()}
        out[f"median_{label}_seconds"] = med
        out[f"{label}_ratio"] = {
            key: value / med[key.split("/")[0] + "/positive"] for key, value in med.items()
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=24)
    parser.add_argument("--quick", action="store_true", help="3 seeds, m = 64 and 256")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--regimes", nargs="+", default=list(REGIMES), choices=REGIMES)
    parser.add_argument("--timing", type=int, default=None, metavar="L")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    if args.timing is not None:
        result = timing(args.timing, args.rounds)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"attention_timing_L{args.timing}.json").write_text(
            json.dumps(result, indent=1)
        )
        for key, med in result["median_wall_seconds"].items():
            cpu = result["median_cpu_seconds"][key]
            print(
                f"{key}: wall {med * 1e3:.0f} ms ({result['wall_ratio'][key]:.3f}x FAVOR+), "
                f"CPU {cpu * 1e3:.0f} ms ({result['cpu_ratio'][key]:.3f}x)"
            )
        return 0
    seeds = 3 if args.quick else args.seeds
    components = (64, 256) if args.quick else COMPONENTS
    start = time.perf_counter()
    result = run(seeds, components, tuple(args.regimes))
    result["summary"] = summarise(result)
    result["wall_seconds"] = time.perf_counter() - start
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "attention_accuracy.json").write_text(json.dumps(result, indent=1))
    figure(result, result["summary"], args.out / "attention_accuracy.png")
    m = 256 if 256 in components else components[-1]
    print(table(result["summary"], m))
    print(f"wall {result['wall_seconds']:.0f} s; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
