"""``python -m theory``: run the claim checks, print a results table, optionally write the report.

Usage::

    python -m theory [--quick | --full | --smoke] [--out DIR [--no-figures]]
                     [--claims U1,V2,...] [--throughput] [--list]
                     [--workers N | --scheduler ADDRESS]

Every argument is checked before any claim runs: an unknown claim id, an empty ``--claims``
list or one with an empty or repeated entry, ``--no-figures`` without ``--out``, and an
``--out`` directory that cannot be created or written all end the run at once with one
line on stderr.

Progress goes to stderr (a progress bar on a terminal, one line per claim otherwise), the
results table (at most 100 columns) to stdout; the details (source, decision statistic,
false-alarm rate, trials, seed, time per claim) go to ``DIR/report.md`` and
``DIR/report.html`` (the same report with the figures inline).

Exit status
-----------
0
    Every selected claim passed.
1
    At least one claim failed.
2
    Usage error (nothing was run).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, NoReturn

EXIT_OK, EXIT_CLAIM_FAILED, EXIT_USAGE = 0, 1, 2
SMOKE_CLAIMS = ("U1", "V2", "O2")


class UsageError(Exception):
    """A command-line error: reported in one line, exit status 2, nothing run."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _parser() -> _Parser:
    parser = _Parser(
        prog="python -m theory",
        description=(__doc__ or "").splitlines()[0].split(": ", 1)[-1],
        epilog="Exit status: 0 all claims passed, 1 a claim failed, 2 usage error.",
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--quick",
        action="store_const",
        dest="profile",
        const="quick",
        help="default: sized for well under a minute on 2 cores",
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
        help=f"only the cheap claims {', '.join(SMOKE_CLAIMS)}, no figures (tests of the CLI)",
    )
    parser.add_argument(
        "--out", metavar="DIR", help="write report.md, report.html and the PNG figures here"
    )
    parser.add_argument(
        "--claims", metavar="IDS", help="comma-separated claim ids to run (default: all)"
    )
    parser.add_argument(
        "--no-figures", action="store_true", help="with --out: write the report without figures"
    )
    parser.add_argument(
        "--throughput",
        action="store_true",
        help="also measure Monte Carlo throughput (d = 16, m = 64)",
    )
    parser.add_argument("--list", action="store_true", help="list the claim ids and exit")
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="run the Monte Carlo trials on a local Dask cluster of N worker processes "
        "(needs favor[dask]); the results are identical to the serial run",
    )
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run the Monte Carlo trials on a running Dask cluster, e.g. tcp://host:8786",
    )
    return parser


def _id_ranges(ids: Sequence[str]) -> str:
    """``U1, U2, U3, V1`` -> ``U1-U3, V1`` (for error messages)."""
    groups: list[list[tuple[str, int]]] = []
    for claim_id in ids:
        match = re.fullmatch(r"([A-Za-z]+)(\d+)", claim_id)
        if match is None:
            groups.append([(claim_id, -1)])
            continue
        prefix, number = match.group(1), int(match.group(2))
        last = groups[-1][-1] if groups else None
        if last is not None and last[0] == prefix and last[1] == number - 1:
            groups[-1].append((prefix, number))
        else:
            groups.append([(prefix, number)])

    def name(item: tuple[str, int]) -> str:
        return item[0] if item[1] < 0 else f"{item[0]}{item[1]}"

    return ", ".join(name(g[0]) if len(g) == 1 else f"{name(g[0])}-{name(g[-1])}" for g in groups)


def parse_claims(text: str, known: Sequence[str]) -> list[str]:
    """Check a ``--claims`` value against the known ids.

    Parameters
    ----------
    text : str
        Comma-separated ids, e.g. ``"U1,V2"`` (spaces around ids are allowed).
    known : sequence of str
        The registered claim ids.

    Returns
    -------
    list of str
        The ids, in the order given.

    Raises
    ------
    UsageError
        Empty list, empty entry, repeated id or unknown id.
    """
    items = [c.strip() for c in text.split(",")]
    if not any(items):
        raise UsageError("--claims is empty: give claim ids such as U1,V2 (omit it to run all)")
    if not all(items):
        raise UsageError(f"--claims {text!r} has an empty entry")
    seen: set[str] = set()
    for claim_id in items:
        if claim_id in seen:
            raise UsageError(f"--claims lists {claim_id} more than once")
        seen.add(claim_id)
    unknown = [c for c in items if c not in known]
    if unknown:
        raise UsageError(
            f"--claims: unknown claim id{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(unknown)} (known: {_id_ranges(known)})"
        )
    return items


def check_out_dir(out: str) -> Path:
    """Make sure ``out`` is (or can be made) a writable directory, before anything runs.

    Parameters
    ----------
    out : str
        The ``--out`` value.

    Returns
    -------
    pathlib.Path
        The directory (created if it did not exist; its parent must exist, so that a
        mistyped path is reported instead of created).

    Raises
    ------
    UsageError
        Empty, an existing non-directory, a missing parent, or not creatable / writable.
    """
    if not out.strip():
        raise UsageError("--out is empty: give a directory for the report")
    path = Path(out).expanduser()
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {out}: exists and is not a directory")
    if not path.exists() and not path.parent.is_dir():
        raise UsageError(f"--out {out}: its parent directory {path.parent} does not exist")
    import tempfile

    try:
        path.mkdir(exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".theory-write-test-"):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UsageError(f"--out {out}: cannot write a report there ({reason})") from None
    return path


def _validate(args: argparse.Namespace, known: Sequence[str]) -> tuple[list[str], Path | None]:
    if args.no_figures and args.out is None:
        raise UsageError("--no-figures needs --out (figures are only written with the report)")
    if args.claims is not None:
        ids = parse_claims(args.claims, known)
    elif args.profile == "smoke":
        ids = list(SMOKE_CLAIMS)
    else:
        ids = list(known)
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be a positive integer, got {args.workers}")
    if args.scheduler is not None and not args.scheduler.strip():
        raise UsageError("--scheduler is empty: give an address such as tcp://host:8786")
    if args.workers is not None or args.scheduler is not None:
        import importlib.util

        if importlib.util.find_spec("distributed") is None:
            option = "--workers" if args.workers is not None else "--scheduler"
            raise UsageError(f"{option} needs Dask: pip install 'favor[dask]'")
    out = None if args.out is None else check_out_dir(args.out)
    return ids, out


def main(argv: list[str] | None = None) -> int:
    """Run the claim checks and return the process exit status.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0 if every selected claim passed, 1 if one failed, 2 for a usage error (one line on
        stderr; nothing was run). ``--help`` exits through :class:`SystemExit` as usual.
    """
    from theory.registry import current_claims

    table = {spec.claim_id: spec for spec in current_claims()}
    known = list(table)
    try:
        args = _parser().parse_args(argv)
        ids, out = _validate(args, known)
    except UsageError as exc:
        print(f"python -m theory: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.list:
        for spec in table.values():
            print(f"{spec.claim_id:4s} {spec.statement}")
        return EXIT_OK
    profile = args.profile or "quick"
    return _run(args, [table[c] for c in ids], out, profile)


def _run(args: argparse.Namespace, specs: list[Any], out: Path | None, profile: str) -> int:
    from theory.report import print_table, run_all, write_report

    run_profile = "quick" if profile == "smoke" else profile
    start = time.perf_counter()
    with ExitStack() as cluster:
        if args.workers is not None or args.scheduler is not None:
            from theory.cluster import distributed

            where = f"{args.workers} local workers" if args.workers else args.scheduler
            print(f"theory: Monte Carlo trials on a Dask cluster ({where})", file=sys.stderr)
            try:
                cluster.enter_context(distributed(workers=args.workers, scheduler=args.scheduler))
            except (OSError, TimeoutError) as exc:
                print(
                    f"python -m theory: error: no Dask cluster at {where} ({exc})", file=sys.stderr
                )
                return EXIT_USAGE
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
    if out is not None and not args.no_figures and profile != "smoke":
        from theory.figures import write_figures
        from theory.figures_claims import by_claim_id

        print("theory: figures ...", file=sys.stderr, flush=True)
        figures = write_figures(
            out, scale=10 if profile == "full" else 1, results=by_claim_id(results)
        )
    total = time.perf_counter() - start
    print_table(results, seconds)
    n_fail = sum(not r.passed for r in results)
    print(f"\n{len(results) - n_fail}/{len(results)} claims passed in {total:.1f} s")
    if throughput:
        for key, t in throughput.items():
            print(
                f"throughput {key}: {t['trials_per_second']:.3g} trials/s, "
                f"{t['estimates_per_second']:.3g} kernel estimates/s"
            )
    if out is not None:
        path = write_report(
            results,
            seconds,
            out,
            profile=profile,
            figures=figures,
            throughput=throughput,
            total_seconds=total,
        )
        print(f"report: {path} ({path.with_suffix('.html').name} beside it)")
    return EXIT_CLAIM_FAILED if n_fail else EXIT_OK


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("python -m theory: interrupted", file=sys.stderr)
        sys.exit(130)
