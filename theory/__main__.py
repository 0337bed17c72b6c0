"""``python -m theory``: run every claim check, print the table, optionally write the report.

Usage::

    python -m theory [--quick | --full | --smoke] [--out DIR] [--claims U1,V2,...]
                     [--no-figures] [--throughput]

Exit status 0 only if every claim passes.
"""

from __future__ import annotations

import argparse
import sys
import time


def main(argv: list[str] | None = None) -> int:
    """Run the claim checks and return the process exit status.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0 if every selected claim passed, 1 otherwise.
    """
    parser = argparse.ArgumentParser(prog="python -m theory", description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--quick",
        action="store_const",
        dest="profile",
        const="quick",
        help="default: sized for about 20-40 s on 2 cores",
    )
    group.add_argument(
        "--full",
        action="store_const",
        dest="profile",
        const="full",
        help="paper-scale sizes (10x trials; minutes)",
    )
    group.add_argument(
        "--smoke",
        action="store_const",
        dest="profile",
        const="smoke",
        help="only the cheap claims U1, V2, O2 (for tests of the CLI)",
    )
    parser.add_argument("--out", metavar="DIR", help="write report.md and the PNG figures here")
    parser.add_argument("--claims", help="comma-separated claim ids to run (default: all)")
    parser.add_argument("--no-figures", action="store_true", help="with --out: skip the figures")
    parser.add_argument(
        "--throughput",
        action="store_true",
        help="also measure Monte Carlo throughput (d = 16, m = 64)",
    )
    args = parser.parse_args(argv)
    profile = args.profile or "quick"

    from theory.registry import CLAIMS, get_claim
    from theory.report import format_table, run_all, write_report

    if args.claims:
        specs = [get_claim(c.strip()) for c in args.claims.split(",") if c.strip()]
    elif profile == "smoke":
        specs = [get_claim(c) for c in ("U1", "V2", "O2")]
    else:
        specs = list(CLAIMS)
    run_profile = "quick" if profile == "smoke" else profile
    start = time.perf_counter()
    print(f"theory: {len(specs)} claims, profile {profile}", file=sys.stderr)
    results, seconds = run_all(profile=run_profile, claims=specs)
    throughput = None
    if args.throughput:
        from theory.montecarlo import measure_throughput

        throughput = {
            f"{s}:{p}": measure_throughput(sampler=s, n_pairs=p)
            for s in ("iid", "orthogonal")
            for p in (1, 8)
        }
    figures = []
    if args.out and not args.no_figures and profile != "smoke":
        from theory.figures import write_figures

        print("theory: figures ...", file=sys.stderr, flush=True)
        figures = write_figures(args.out, scale=10 if profile == "full" else 1)
    total = time.perf_counter() - start
    print(format_table(results))
    n_fail = sum(not r.passed for r in results)
    print(f"\n{len(results) - n_fail}/{len(results)} claims passed in {total:.1f} s")
    if throughput:
        for key, t in throughput.items():
            print(
                f"throughput {key}: {t['trials_per_second']:.3g} trials/s, "
                f"{t['estimates_per_second']:.3g} kernel estimates/s"
            )
    if args.out:
        path = write_report(
            results,
            seconds,
            args.out,
            profile=profile,
            figures=figures,
            throughput=throughput,
            total_seconds=total,
        )
        print(f"report: {path}")
    return 1 if n_fail else 0


if __name__ == "__main__":
    sys.exit(main())
