"""Run every claim, print the table, write ``report.md`` and the figures (``python -m theory``).

The run is deterministic: every claim has its own fixed root seed (:mod:`theory.registry`).
Progress goes to stderr, the table to stdout; the exit status is non-zero if any claim
fails (a skipped attention claim counts as a failure, so a missing
``favor.favor_attention`` cannot pass silently).
"""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TextIO

import numpy as np

from theory.registry import CLAIMS, ClaimSpec, run_claim
from theory.results import ClaimCheck

__all__ = ["format_table", "run_all", "write_report"]


def run_all(
    *,
    profile: str = "quick",
    claims: Iterable[ClaimSpec] | None = None,
    stream: TextIO | None = None,
) -> tuple[list[ClaimCheck], list[float]]:
    """Run the claims in order, reporting progress to ``stream``.

    Parameters
    ----------
    profile : {"quick", "full"}, default="quick"
        Sizes.
    claims : iterable of ClaimSpec, optional
        Subset to run (default: all of :data:`theory.registry.CLAIMS`).
    stream : file-like, optional
        Progress output (default: ``sys.stderr``).

    Returns
    -------
    results : list of ClaimCheck
        One per claim.
    seconds : list of float
        Wall time of each.
    """
    stream = sys.stderr if stream is None else stream
    specs = list(CLAIMS if claims is None else claims)
    results, seconds = [], []
    for i, spec in enumerate(specs, start=1):
        print(
            f"[{i:2d}/{len(specs)}] {spec.claim_id:4s} {spec.statement[:70]} ...",
            end="",
            file=stream,
            flush=True,
        )
        start = time.perf_counter()
        result = run_claim(spec, profile=profile)
        seconds.append(time.perf_counter() - start)
        results.append(result)
        print(f" {result.verdict} ({seconds[-1]:.1f} s)", file=stream, flush=True)
    return results, seconds


def _fmt(v: float) -> str:
    return f"{v:.4g}" if np.isfinite(v) else "nan"


def format_table(results: Sequence[ClaimCheck], *, markdown: bool = False) -> str:
    """The results as a text (or Markdown) table: claim, source, statistic, interval, verdict.

    Parameters
    ----------
    results : sequence of ClaimCheck
        The evidence.
    markdown : bool, default=False
        Markdown pipe table instead of fixed-width text.

    Returns
    -------
    str
        The table.
    """
    rows = [
        (
            r.name,
            r.source,
            r.statistic,
            f"{_fmt(r.estimate)} [{_fmt(r.interval[0])}, {_fmt(r.interval[1])}]",
            r.verdict,
        )
        for r in results
    ]
    head = ("claim", "source", "statistic", "estimate [interval]", "verdict")
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [min(60, max(len(str(x[i])) for x in [head, *rows])) for i in range(len(head))]

    def cut(s: str, w: int) -> str:
        return s if len(s) <= w else s[: w - 3] + "..."

    lines = ["  ".join(cut(h, w).ljust(w) for h, w in zip(head, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += [
        "  ".join(cut(c, w).ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows
    ]
    return "\n".join(lines)


def write_report(
    results: Sequence[ClaimCheck],
    seconds: Sequence[float],
    out_dir: str | Path,
    *,
    profile: str,
    figures: Sequence[Path] = (),
    throughput: dict[str, dict[str, float]] | None = None,
    total_seconds: float | None = None,
) -> Path:
    """Write ``report.md`` into ``out_dir``.

    Parameters
    ----------
    results : sequence of ClaimCheck
        The evidence.
    seconds : sequence of float
        Wall time per claim.
    out_dir : str or Path
        Directory (created if needed).
    profile : str
        The profile that was run.
    figures : sequence of Path
        Figure files to link.
    throughput : dict, optional
        Monte Carlo throughput measurements to include.
    total_seconds : float, optional
        Wall time of the whole run.

    Returns
    -------
    Path
        The report file.
    """
    import favor

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n_fail = sum(not r.passed for r in results)
    lines = [
        "# favor theory report",
        "",
        f"Profile `{profile}`; favor {favor.__version__}; NumPy {np.__version__}; "
        f"Python {platform.python_version()}; {len(results)} claims, {n_fail} failed"
        + (f"; {total_seconds:.1f} s wall time." if total_seconds is not None else "."),
        "",
        "Every check is seeded (root seed per claim) and decides at a declared false-alarm rate "
        "(alpha, per check; see `theory._stats`). Intervals are simultaneous at that rate.",
        "",
        format_table(results, markdown=True),
        "",
        "## Time per claim",
        "",
        "| claim | seconds | trials |",
        "|---|---|---|",
    ]
    lines += [
        f"| {r.claim_id} | {s:.2f} | {r.n_trials} |" for r, s in zip(results, seconds, strict=True)
    ]
    if throughput:
        lines += [
            "",
            "## Monte Carlo throughput (d = 16, m = 64, positive features)",
            "",
            "| sampler | pairs per trial | trials/s | kernel estimates/s |",
            "|---|---|---|---|",
        ]
        for key, t in throughput.items():
            sampler, pairs = key.split(":")
            lines.append(
                f"| {sampler} | {pairs} | {t['trials_per_second']:.3g} | {t['estimates_per_second']:.3g} |"
            )
    if figures:
        lines += ["", "## Figures", ""]
        lines += [f"![{f.stem}]({f.name})" for f in figures]
    from theory.closed_forms import CONSTANT_PROVENANCE

    lines += ["", "## Provenance of the uniform-convergence constants", ""]
    lines += [f"- `{k}`: {v}" for k, v in CONSTANT_PROVENANCE.items()]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
