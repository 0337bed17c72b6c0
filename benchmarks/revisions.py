"""Speed of this checkout against an earlier revision, measured in the same run.

A refactoring must not slow the engine. This script times the same cases on two
checkouts of the repository, ``base`` (a git revision, checked out into a temporary
worktree, or a directory) and ``head`` (this checkout by default), each in its own
subprocess that imports ``favor`` from that checkout. The subprocesses alternate
(base, head, head, base, base, ...) for ``--rounds`` rounds so that slow drifts in the
machine's load fall on both sides alike. Every case inside a subprocess is timed with
:func:`_timing.time_case` (warm-up, ``--repeats`` calls, stall probe and rerun).

Cases (the hot paths of ``benchmarks/attention.py`` and
``benchmarks/kernel_approximation.py``):

* ``attention``: ``favor_attention`` of float32 (8, L, 64) queries, keys and values,
  m = 256 positive features, default (orthogonal) projection drawn from a fixed seed,
  bidirectional and causal, L in ``--lengths``;
* ``transform``: ``FavorSampler(kernel="rbf")`` fitted on float32 (20000, 64) data and
  its ``transform`` timed, trigonometric and positive features, m = 256.

The table gives, per case, the median over rounds of each side's median time and the
ratio head / base (below 1: head is faster). Usage::

    python benchmarks/revisions.py --base a36de49 [--rounds 3] [--out results.json]
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _cases(lengths: list[int]) -> dict[str, object]:
    """Build the cases with whichever ``favor`` is importable (base or head)."""
    import favor

    rng = np.random.default_rng(0)
    attention_kwargs = inspect.signature(favor.favor_attention).parameters
    seed_name = "rng" if "rng" in attention_kwargs else "random_state"
    cases: dict[str, object] = {}
    for length in lengths:
        q, k, v = (rng.standard_normal((8, length, 64)).astype(np.float32) * 0.5 for _ in "qkv")
        for causal in (False, True):
            name = f"attention {'causal' if causal else 'bidir'} L={length}"

            def run(q=q, k=k, v=v, causal=causal) -> object:
                return favor.favor_attention(
                    q, k, v, n_components=256, causal=causal, **{seed_name: 0}
                )

            cases[name] = run
    x = rng.standard_normal((20000, 64)).astype(np.float32)
    for features in ("trigonometric", "positive"):
        sampler = favor.FavorSampler(
            kernel="rbf", features=features, n_components=256, random_state=0
        ).fit(x)
        cases[f"transform {features} n=20000 d=64"] = lambda s=sampler: s.transform(x)
    return cases


def _worker(lengths: list[int], repeats: int) -> None:
    sys.path.insert(0, str(HERE))
    from _timing import time_case

    out = {}
    for name, fn in _cases(lengths).items():
        timing = time_case(fn, repeats=repeats)
        out[name] = {"median": timing.median, "reruns": timing.reruns}
    print(json.dumps(out))


def _run_side(checkout: Path, lengths: list[int], repeats: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(checkout))
    argv = [sys.executable, str(Path(__file__).resolve()), "--worker", "--repeats", str(repeats)]
    argv += ["--lengths", *map(str, lengths)]
    done = subprocess.run(argv, env=env, cwd=checkout, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"worker on {checkout} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", help="git revision or directory to compare against")
    parser.add_argument("--head", default=str(ROOT), help="directory of the newer checkout")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--lengths", type=int, nargs="+", default=[4096, 16384])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.lengths, args.repeats)
        return
    if args.base is None:
        parser.error("--base is required (a git revision or a directory)")

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.base)
        worktree = None
        if not base.is_dir():
            worktree = Path(tmp) / "base"
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(worktree), args.base],
                check=True,
                capture_output=True,
            )
            base = worktree
        sides = {"base": base, "head": Path(args.head)}
        results: dict[str, list[dict]] = {"base": [], "head": []}
        try:
            for r in range(args.rounds):
                order = ("base", "head") if r % 2 == 0 else ("head", "base")
                for side in order:
                    results[side].append(_run_side(sides[side], args.lengths, args.repeats))
                    print(f"round {r + 1}/{args.rounds}: {side} done", file=sys.stderr)
        finally:
            if worktree is not None:
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)],
                    check=False,
                )

    rows = []
    print(f"{'case':38s} {'base s':>9s} {'head s':>9s} {'head/base':>9s}")
    for name in results["base"][0]:
        b = float(np.median([run[name]["median"] for run in results["base"]]))
        h = float(np.median([run[name]["median"] for run in results["head"]]))
        rows.append({"case": name, "base_s": b, "head_s": h, "ratio": h / b})
        print(f"{name:38s} {b:9.4f} {h:9.4f} {h / b:9.3f}")
    if args.out:
        record = {
            "base": args.base,
            "head": args.head,
            "rounds": args.rounds,
            "repeats": args.repeats,
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
            "load_after": os.getloadavg()[0],
            "rows": rows,
            "raw": results,
        }
        args.out.write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
