"""Kernel approximation: FavorSampler against scikit-learn's RBFSampler and Nystroem.

At equal output width ``D`` (FavorSampler's paired maps use ``n_components = D / 2``
projections) this measures, for float32 and float64:

* the relative Frobenius error ``||Z Z^T - K||_F / ||K||_F`` of the Gaussian kernel
  matrix ``K = rbf_kernel(X, gamma)`` (features cast to float64 before the product, so
  the figure is the approximation error, not float32 rounding), over several seeds;
* the time of ``fit(X).transform(X)`` and of ``transform(X)`` alone, as medians of
  several interleaved runs (the methods of a case alternate, so a slow minute hits all
  of them), with a small multithreaded probe before and after each case and a rerun when
  the probe shows a stall (``benchmarks/_timing.py``).

Data: scikit-learn's digits, standardised (1797 x 64), and standard normal data
(20000 x 64 for timing; the error uses the first 2000 rows with the model fitted on all).
Two bandwidths: ``gamma = 1 / (n_features * X.var())`` ("scale", SVC's default) and the
median heuristic ``gamma = 1 / median ||x - y||^2`` ("median"). Ratios (ours / RBFSampler)
are computed within one run: per seed for errors, then the median; medians for times.

Usage::

    python benchmarks/kernel_approximation.py            # full run, several minutes
    python benchmarks/kernel_approximation.py --quick    # smoke test, seconds
    python benchmarks/kernel_approximation.py --out results/ka.json
    python benchmarks/kernel_approximation.py --threads 1   # BLAS and Numba on one thread
    python benchmarks/kernel_approximation.py --suite couplings   # couplings and kernels

``--suite couplings`` runs the comparison of couplings (i.i.d., orthogonal, structured,
quasi-Monte Carlo, simplex) and kernels (RBF, Laplacian, Matérn) described in
``benchmarks/_couplings_suite.py``: kernel error against the exact kernel, against the
reference coupling, RBFSampler and Nystroem, downstream ridge accuracy, and float32
transform time against RBFSampler.

It prints a Markdown table and writes JSON (default ``benchmarks/results/``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for _timing when run as a script
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # favor from a source checkout

from _timing import NUMPY_PROBE_LIMIT_MS, Timing, numpy_probe_ms

WIDTHS = (256, 1024, 4096)
DTYPES = ("float32", "float64")
METHODS = ("favor-orf", "favor-iid", "rbfsampler", "nystroem")
METHOD_LABELS = {
    "favor-orf": "FavorSampler trig orthogonal",
    "favor-iid": "FavorSampler trig iid",
    "rbfsampler": "RBFSampler",
    "nystroem": "Nystroem",
}


def load_datasets(quick: bool) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Name -> (timing data, error data): standardised digits and standard normal data."""
    from sklearn.datasets import load_digits
    from sklearn.preprocessing import StandardScaler

    digits = StandardScaler().fit_transform(load_digits().data)
    rng = np.random.default_rng(20261128)
    if quick:
        digits = digits[:300]
        random = rng.standard_normal((600, 16))
        return {"digits": (digits, digits), "random": (random, random[:300])}
    random = rng.standard_normal((20000, 64))
    return {"digits": (digits, digits), "random": (random, random[:2000])}


def choose_gamma(rule: str, x: np.ndarray) -> float:
    """``"scale"``: 1 / (d * var(X)); ``"median"``: 1 / median squared distance."""
    if rule == "scale":
        return 1.0 / (x.shape[1] * x.var())
    from sklearn.metrics.pairwise import euclidean_distances

    sub = x[:2000]
    d2 = euclidean_distances(sub, squared=True)[np.triu_indices(len(sub), 1)]
    return 1.0 / float(np.median(d2))


def make_estimator(method: str, width: int, gamma: float, seed: int):
    """The estimator of ``method`` with output width ``width``."""
    from sklearn.kernel_approximation import Nystroem, RBFSampler

    from favor import FavorSampler

    if method == "favor-orf":
        return FavorSampler(gamma=gamma, n_components=width // 2, random_state=seed)
    if method == "favor-iid":
        return FavorSampler(
            gamma=gamma, n_components=width // 2, projection="iid", random_state=seed
        )
    if method == "rbfsampler":
        return RBFSampler(gamma=gamma, n_components=width, random_state=seed)
    return Nystroem(gamma=gamma, n_components=width, random_state=seed)


def relative_error(features: np.ndarray, exact: np.ndarray) -> float:
    z = features.astype(np.float64)
    return float(np.linalg.norm(z @ z.T - exact) / np.linalg.norm(exact))


def time_interleaved(
    cases: dict[str, Callable[[], object]], repeats: int, max_reruns: int = 2
) -> dict[str, Timing]:
    """Median-ready times of each case, alternating the cases within every repeat.

    One warm-up call each (Numba compilation, allocator); a NumPy stall probe before
    and after; the whole block is rerun (up to ``max_reruns``) if either probe exceeds
    ``NUMPY_PROBE_LIMIT_MS``.
    """
    for fn in cases.values():
        fn()
    reruns = 0
    while True:
        before = numpy_probe_ms()
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(repeats):
            for name, fn in cases.items():
                t = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t)
        after = numpy_probe_ms()
        if max(before, after) <= NUMPY_PROBE_LIMIT_MS or reruns >= max_reruns:
            return {name: Timing(ts, [before, after], reruns) for name, ts in times.items()}
        reruns += 1


def run_case(
    data_name: str,
    x_time: np.ndarray,
    x_err: np.ndarray,
    gamma_rule: str,
    width: int,
    dtype: str,
    seeds: int,
    repeats: int,
    skip_nystroem: bool,
) -> list[dict]:
    """All methods on one (data, gamma, width, dtype); returns one record per method."""
    from sklearn.metrics.pairwise import rbf_kernel

    gamma = choose_gamma(gamma_rule, x_time)
    xt = x_time.astype(dtype)
    xe = x_err.astype(dtype)
    exact = rbf_kernel(x_err.astype(np.float64), gamma=gamma)
    methods = [m for m in METHODS if not (m == "nystroem" and skip_nystroem)]

    errors = {m: [] for m in methods}
    for seed in range(seeds):
        for m in methods:
            est = make_estimator(m, width, gamma, seed).fit(xt)
            errors[m].append(relative_error(est.transform(xe), exact))

    fitted = {m: make_estimator(m, width, gamma, 0).fit(xt) for m in methods}
    fit_transform = time_interleaved(
        {
            m: (lambda m=m: make_estimator(m, width, gamma, 0).fit(xt).transform(xt))
            for m in methods
        },
        repeats,
    )
    transform = time_interleaved(
        {m: (lambda m=m: fitted[m].transform(xt)) for m in methods}, repeats
    )
    out_dtype = {m: str(fitted[m].transform(xt[:2]).dtype) for m in methods}

    records = []
    for m in methods:
        ratios = np.array(errors[m]) / np.array(errors["rbfsampler"])
        records.append(
            {
                "data": data_name,
                "n_time": int(xt.shape[0]),
                "n_error": int(xe.shape[0]),
                "n_features": int(xt.shape[1]),
                "gamma_rule": gamma_rule,
                "gamma": gamma,
                "width": width,
                "dtype": dtype,
                "out_dtype": out_dtype[m],
                "method": m,
                "errors": errors[m],
                "error_median": float(np.median(errors[m])),
                "error_ratio_per_seed": ratios.tolist(),
                "error_ratio_median": float(np.median(ratios)),
                "fit_transform": fit_transform[m].as_dict(),
                "transform": transform[m].as_dict(),
                "fit_transform_ratio": fit_transform[m].median / fit_transform["rbfsampler"].median,
                "transform_ratio": transform[m].median / transform["rbfsampler"].median,
                "transform_ns_per_element": 1e9 * transform[m].median / (xt.shape[0] * width),
            }
        )
    return records


def markdown_table(records: list[dict]) -> str:
    head = (
        "| data | gamma | D | dtype | method | error median (min - max) | error / RBFSampler "
        "| fit+transform | transform | ns/elem | transform / RBFSampler |\n"
        "|---|---|---:|---|---|---|---:|---|---|---:|---:|\n"
    )
    rows = []
    for r in records:
        err = r["errors"]
        ft = Timing(r["fit_transform"]["times"])
        tr = Timing(r["transform"]["times"])
        rows.append(
            f"| {r['data']} | {r['gamma_rule']} ({r['gamma']:.4g}) | {r['width']} | {r['dtype']} "
            f"| {METHOD_LABELS[r['method']]} | {np.median(err):.4f} ({min(err):.4f} - "
            f"{max(err):.4f}) | {r['error_ratio_median']:.3f} | {ft.describe()} "
            f"| {tr.describe()} | {r['transform_ns_per_element']:.2f} "
            f"| {r['transform_ratio']:.2f} |"
        )
    return head + "\n".join(rows) + "\n"


def environment() -> dict:
    """Versions, cores and thread settings recorded with the results."""
    import numba
    import sklearn
    from threadpoolctl import threadpool_info

    return {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "sklearn": sklearn.__version__,
        "numba": numba.__version__,
        "numba_threads": numba.get_num_threads(),
        "favor_jit_threads": _favor_jit_threads(),
        "numba_threading_layer": numba.config.THREADING_LAYER,
        "cpu_count": os.cpu_count(),
        "threadpools": [
            {k: v for k, v in info.items() if k in ("internal_api", "num_threads", "version")}
            for info in threadpool_info()
        ],
    }


def _favor_jit_threads() -> int:
    from favor._threads import jit_thread_count

    return jit_thread_count()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one width (smoke test)")
    parser.add_argument("--out", type=Path, default=None, help="JSON file or directory")
    parser.add_argument("--seeds", type=int, default=None, help="seeds for the error (default 5)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs (default 5)")
    parser.add_argument(
        "--widths", type=int, nargs="+", default=None, help=f"output widths (default {WIDTHS})"
    )
    parser.add_argument(
        "--data",
        nargs="+",
        default=["digits", "random"],
        help="datasets (default: both; --suite couplings: digits diabetes random-64 "
        "random-512 random-4096, all by default)",
    )
    parser.add_argument(
        "--gamma",
        nargs="+",
        default=["scale", "median"],
        choices=["scale", "median"],
        help="bandwidth rules (default: both)",
    )
    parser.add_argument(
        "--suite",
        default="rbf",
        choices=["rbf", "couplings"],
        help="rbf: the RBF table above (default); couplings: couplings and kernels",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="limit BLAS (threadpoolctl) and Numba to this many threads; single-thread "
        "figures are steadier when other processes load the cores",
    )
    args = parser.parse_args(argv)
    if args.threads is not None:
        import numba
        from threadpoolctl import threadpool_limits

        numba.set_num_threads(args.threads)
        with threadpool_limits(limits=args.threads):
            return _run(args)
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    """The benchmark proper (``main`` sets the thread limits around it)."""
    if args.suite == "couplings":
        return _run_couplings(args)

    seeds = args.seeds or (2 if args.quick else 5)
    repeats = args.repeats or (2 if args.quick else 5)
    widths = args.widths or ((64,) if args.quick else WIDTHS)
    datasets = load_datasets(args.quick)
    unknown = set(args.data) - set(datasets)
    if unknown:
        raise SystemExit(f"--data must be among {sorted(datasets)}, got {sorted(unknown)}")

    records = []
    started = time.perf_counter()
    for data_name, (x_time, x_err) in datasets.items():
        if data_name not in args.data:
            continue
        for gamma_rule in args.gamma:
            for width in widths:
                for dtype in DTYPES:
                    # Nystroem needs width <= n_samples; at 4096 on 20000 rows its SVD takes
                    # ~30 s per fit on 2 cores, so it is skipped.
                    skip = width > x_time.shape[0] or width > 1024
                    records += run_case(
                        data_name, x_time, x_err, gamma_rule, width, dtype, seeds, repeats, skip
                    )
                    print(f"done {data_name} {gamma_rule} D={width} {dtype}", file=sys.stderr)
    elapsed = time.perf_counter() - started

    table = markdown_table(records)
    print(table)
    out = args.out or Path(__file__).resolve().parent / "results"
    if out.suffix != ".json":
        out.mkdir(parents=True, exist_ok=True)
        stem = "kernel_approximation" + ("_quick" if args.quick else "")
        stem += f"_threads{args.threads}" if args.threads is not None else ""
        out = out / f"{stem}.json"
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": "kernel_approximation",
        "quick": args.quick,
        "seeds": seeds,
        "repeats": repeats,
        "threads_limit": args.threads,
        "data": args.data,
        "gamma_rules": args.gamma,
        "elapsed_s": elapsed,
        "environment": environment(),
        "records": records,
        "table_markdown": table,
    }
    out.write_text(json.dumps(payload, indent=1))
    print(f"wrote {out}", file=sys.stderr)
    return 0


def _run_couplings(args: argparse.Namespace) -> int:
    """``--suite couplings``: errors, downstream scores and timings in one JSON file."""
    import _couplings_suite as suite

    seeds = args.seeds or (1 if args.quick else 3)
    repeats = args.repeats or (2 if args.quick else 5)
    width = (args.widths or ((32,) if args.quick else (512,)))[0]
    started = time.perf_counter()
    out = args.out or Path(__file__).resolve().parent / "results"
    if out.suffix != ".json":
        out.mkdir(parents=True, exist_ok=True)
        out = out / ("kernel_approximation_couplings" + ("_quick" if args.quick else "") + ".json")
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
    names = None if args.data == ["digits", "random"] else args.data  # the rbf suite's default
    # One JSON line per error record as it is made (a long run keeps what it measured).
    errors = suite.error_table(args.quick, seeds, width, names, out.with_suffix(".jsonl"))
    downstream = suite.downstream_table(args.quick, width)
    timings = suite.timing_table(args.quick, repeats, time_interleaved)
    table = suite.markdown(errors, downstream, timings)
    print(table)
    payload = {
        "benchmark": "kernel_approximation/couplings",
        "quick": args.quick,
        "seeds": seeds,
        "repeats": repeats,
        "width": width,
        "threads_limit": args.threads,
        "elapsed_s": time.perf_counter() - started,
        "environment": environment(),
        "errors": errors,
        "downstream": downstream,
        "timings": timings,
        "table_markdown": table,
    }
    out.write_text(json.dumps(payload, indent=1))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
