"""Throughput of favor on a local Dask cluster: 1 worker against 2 (same-run ratio).

Three workloads, each run on a ``LocalCluster`` of single-threaded worker processes on
127.0.0.1 (``threads_per_worker=1``; BLAS at one thread, distributed's default for its
workers), first with 1 worker and then with 2, in the same process:

* ``transform``: ``FavorSampler.transform`` of a Dask array generated on the workers
  (``--rows`` x 16 float64, chunks of ``--chunk-rows`` rows, m = 256 trigonometric,
  512 features per row), reduced to column sums so only a vector comes back;
* ``attention``: bidirectional and causal ``favor_attention`` of (2, 4, ``--seq``, 64)
  float64 inputs in sequence chunks of ``--seq-chunk`` (m = 256), reduced to a sum;
* ``theory``: :func:`theory.report.run_all` of the ``--profile`` profile (default
  ``full``, as ``python -m theory --full``) inside :func:`theory.cluster.distributed`,
  with the statistics of both runs compared for equality.

Each case is run once as a warm-up (imports, jit cache loads on the workers) and then
``--repeat`` times; the table gives the median seconds, the throughput ratio
``t(1 worker) / t(2 workers)`` and the 1-minute load average before and after (other
processes on the machine share the cores). Usage::

    python benchmarks/dask_scaling.py [--quick] [--skip theory] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _median_time(fn: Callable[[], object], repeat: int) -> tuple[float, list[float]]:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), times


def _transform_case(client, rows: int, chunk_rows: int) -> Callable[[], object]:
    import dask.array as da

    from favor import FavorSampler

    X = da.random.default_rng(0).standard_normal((rows, 16), chunks=(chunk_rows, 16))
    sampler = FavorSampler(gamma=0.05, n_components=256, random_state=0).fit(X)
    total = sampler.transform(X).sum(axis=0)
    return lambda: client.compute(total).result()


def _attention_case(client, seq: int, seq_chunk: int, causal: bool) -> Callable[[], object]:
    import dask.array as da

    import favor

    rng = da.random.default_rng(1)
    shape, chunks = (2, 4, seq, 64), (2, 4, seq_chunk, 64)
    q, k, v = (0.3 * rng.standard_normal(shape, chunks=chunks) for _ in range(3))
    out = favor.favor_attention(q, k, v, n_components=256, causal=causal, rng=0)
    total = out.sum()
    return lambda: client.compute(total).result()


def _theory_case(client, profile: str, claims: list[str] | None, sink: list):
    from theory.cluster import distributed
    from theory.registry import CLAIMS, get_claim
    from theory.report import run_all

    specs = [get_claim(c) for c in claims] if claims else list(CLAIMS)

    def run() -> None:
        with distributed(client=client), open(os.devnull, "w") as quiet:
            results, _ = run_all(profile=profile, claims=specs, stream=quiet)
        sink.append([(r.estimate, r.interval, r.passed, r.statistic) for r in results])

    return run


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--chunk-rows", type=int, default=50_000)
    parser.add_argument("--seq", type=int, default=32_768)
    parser.add_argument("--seq-chunk", type=int, default=2048)
    parser.add_argument("--profile", default="full", choices=["quick", "full"])
    parser.add_argument("--claims", help="comma-separated claim ids (default: all)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--skip", action="append", default=[], choices=["transform", "attention", "theory"]
    )
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.chunk_rows, args.seq, args.seq_chunk = 200_000, 20_000, 4096, 512
        args.profile, args.repeat = "quick", 1
        args.claims = args.claims or "U1,C1,C2"
    claims = [c.strip() for c in args.claims.split(",")] if args.claims else None

    from distributed import Client, LocalCluster

    cases = {
        "transform": lambda c: _transform_case(c, args.rows, args.chunk_rows),
        "attention (bidirectional)": lambda c: _attention_case(c, args.seq, args.seq_chunk, False),
        "attention (causal)": lambda c: _attention_case(c, args.seq, args.seq_chunk, True),
    }
    theory_results: dict[int, list] = {1: [], 2: []}
    cases = {name: build for name, build in cases.items() if name.split(" ")[0] not in args.skip}
    times: dict[str, dict[int, dict]] = {name: {} for name in cases}
    if "theory" not in args.skip:
        times[f"theory --{args.profile}"] = {}
    for n_workers in (1, 2):
        with (
            LocalCluster(
                n_workers=n_workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address="127.0.0.1:0",  # loopback, any free port
            ) as cluster,
            Client(cluster) as client,
        ):
            for name, build in cases.items():
                load = os.getloadavg()[0]
                median, all_times = _median_time(build(client), args.repeat)
                times[name][n_workers] = {
                    "median": median,
                    "times": all_times,
                    "load": (load, os.getloadavg()[0]),
                }
                print(f"{name}: {n_workers} worker(s) {median:.2f} s", file=sys.stderr)
            if "theory" not in args.skip:
                name = f"theory --{args.profile}"
                run = _theory_case(client, args.profile, claims, theory_results[n_workers])
                load = os.getloadavg()[0]
                start = time.perf_counter()
                run()  # minutes: timed once (the trials are the warm-up of nothing else)
                seconds = time.perf_counter() - start
                times[name][n_workers] = {
                    "median": seconds,
                    "times": [seconds],
                    "load": (load, os.getloadavg()[0]),
                }
                print(f"{name}: {n_workers} worker(s) {seconds:.2f} s", file=sys.stderr)
    if "theory" not in args.skip:
        same = theory_results[1] == theory_results[2]
        print(f"theory statistics identical with 1 and 2 workers: {same}")
    print(
        f"\n{platform.node()}, {os.cpu_count()} logical CPUs; medians of {args.repeat} "
        "(theory: one run each)"
    )
    print("| workload | 1 worker (s) | 2 workers (s) | throughput ratio | load avg (1 / 2) |")
    print("|---|---|---|---|---|")
    for name, by_workers in times.items():
        t1, t2 = by_workers[1]["median"], by_workers[2]["median"]
        loads = "{:.1f}-{:.1f} / {:.1f}-{:.1f}".format(
            *by_workers[1]["load"], *by_workers[2]["load"]
        )
        print(f"| {name} | {t1:.2f} | {t2:.2f} | {t1 / t2:.2f}x | {loads} |")
    if args.out:
        Path(args.out).write_text(json.dumps({"args": vars(args), "times": times}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
