"""Run every claim, print the table, write ``report.md`` and the figures (``python -m theory``).

The run is deterministic: every claim has its own fixed root seed (:mod:`theory.registry`).
Progress goes to stderr, the table to stdout; the exit status is non-zero if any claim
fails (a skipped attention claim counts as a failure, so a missing
``favor.favor_attention`` cannot pass silently).
"""

from __future__ import annotations

import base64
import dataclasses
import html
import platform
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from theory.registry import CLAIMS, ClaimSpec, run_claim
from theory.results import ClaimCheck

__all__ = [
    "claim_runner",
    "extra_fields",
    "format_table",
    "print_table",
    "run_all",
    "write_report",
]

#: ``runner(specs, profile)`` yields ``(ClaimCheck, seconds)`` per claim, in ``specs`` order,
#: computed anywhere (:mod:`theory.cluster` runs whole claims on a Dask cluster); None: here.
ClaimRunner = Callable[[Sequence[ClaimSpec], str], Iterator[tuple[ClaimCheck, float]]]
_CLAIM_RUNNER: ClaimRunner | None = None

#: Widest results table printed to the terminal (the report has every detail).
TABLE_WIDTH = 100
_BASE_FIELDS = frozenset(
    {
        "name",
        "source",
        "estimate",
        "interval",
        "alpha",
        "n_trials",
        "seed",
        "passed",
        "statistic",
        "target",
        "data",
    }
)


def extra_fields(result: ClaimCheck) -> dict[str, Any]:
    """Scalar fields of ``result`` beyond the basic evidence (e.g. a resolving power).

    Parameters
    ----------
    result : ClaimCheck
        The evidence.

    Returns
    -------
    dict
        Field name -> value, for every dataclass field (or ``resolving_power`` attribute)
        that is a number or a string and not ``None``, in declaration order.
    """
    extras: dict[str, Any] = {}
    names = [f.name for f in dataclasses.fields(result) if f.name not in _BASE_FIELDS]
    if "resolving_power" not in names and hasattr(result, "resolving_power"):
        names.append("resolving_power")
    for name in names:
        value = getattr(result, name, None)
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            continue
        extras[name] = value
    return extras


def _progress_console(stream: TextIO) -> Any:
    try:
        from rich.console import Console
    except ImportError:  # pragma: no cover - rich is a core dependency
        return None
    console = Console(file=stream)
    return console if console.is_terminal else None


@contextmanager
def claim_runner(runner: ClaimRunner) -> Iterator[None]:
    """Run the claims of every :func:`run_all` call through ``runner`` inside the context.

    ``runner(specs, profile)`` must yield ``(run_claim(spec, profile=profile), seconds)``
    for each spec, in order; where it computes them does not change a result (each claim
    draws from its own root seed).
    """
    global _CLAIM_RUNNER
    previous, _CLAIM_RUNNER = _CLAIM_RUNNER, runner
    try:
        yield
    finally:
        _CLAIM_RUNNER = previous


def _serial(specs: Sequence[ClaimSpec], profile: str) -> Iterator[tuple[ClaimCheck, float]]:
    for spec in specs:
        start = time.perf_counter()
        result = run_claim(spec, profile=profile)
        yield result, time.perf_counter() - start


def run_all(
    *,
    profile: str = "quick",
    claims: Iterable[ClaimSpec] | None = None,
    stream: TextIO | None = None,
) -> tuple[list[ClaimCheck], list[float]]:
    """Run the claims in order, reporting progress to ``stream``.

    On a terminal the progress is a bar (``rich``); otherwise (CI logs, pipes) one line
    per claim: ``[ i/n] ID statement ... PASS (1.2 s)``.

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
        Wall time of each (where it ran: on a cluster, claims run concurrently).
    """
    stream = sys.stderr if stream is None else stream
    specs = list(CLAIMS if claims is None else claims)
    runner = _CLAIM_RUNNER if _CLAIM_RUNNER is not None and len(specs) > 1 else _serial
    if not specs:
        return [], []
    results: list[ClaimCheck] = []
    seconds: list[float] = []
    console = _progress_console(stream)
    if console is not None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        columns = (
            TextColumn("{task.description}"),
            BarColumn(bar_width=30),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task("theory", total=len(specs))
            bar.update(task, description=f"{specs[0].claim_id:4s} {specs[0].statement[:40]}")
            for i, (result, took) in enumerate(runner(specs, profile)):
                results.append(result)
                seconds.append(took)
                bar.advance(task)
                if i + 1 < len(specs):
                    upcoming = specs[i + 1]
                    bar.update(
                        task, description=f"{upcoming.claim_id:4s} {upcoming.statement[:40]}"
                    )
        return results, seconds
    outcomes = runner(specs, profile)
    for i, spec in enumerate(specs, start=1):
        print(
            f"[{i:2d}/{len(specs)}] {spec.claim_id:4s} {spec.statement[:60]} ...",
            end="",
            file=stream,
            flush=True,
        )
        result, took = next(outcomes)
        seconds.append(took)
        results.append(result)
        print(f" {result.verdict} ({took:.1f} s)", file=stream, flush=True)
    return results, seconds


def _fmt(v: float) -> str:
    return f"{v:.4g}" if np.isfinite(v) else "nan"


def _fmt_extra(value: Any) -> str:
    if isinstance(value, float):
        return _fmt(value)
    return str(value)


def _title(result: ClaimCheck) -> str:
    """The name without its id (``"U1 positive x iid ..."`` -> ``"positive x iid ..."``)."""
    parts = result.name.split(maxsplit=1)
    return parts[1] if len(parts) > 1 else ""


def _extra_names(results: Sequence[ClaimCheck]) -> list[str]:
    names: list[str] = []
    for r in results:
        names += [n for n in extra_fields(r) if n not in names]
    return names


def _details(
    results: Sequence[ClaimCheck], seconds: Sequence[float] | None
) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """Header and rows of the full table (every field, for the report)."""
    extras = _extra_names(results)
    head = (
        "claim",
        "statement",
        "source",
        "statistic",
        "estimate [interval]",
        *[e.replace("_", " ") for e in extras],
        "alpha",
        "trials",
        "seed",
        *(("seconds",) if seconds is not None else ()),
        "verdict",
    )
    rows = []
    for i, r in enumerate(results):
        more = extra_fields(r)
        rows.append(
            (
                r.claim_id,
                _title(r),
                r.source,
                r.statistic,
                f"{_fmt(r.estimate)} [{_fmt(r.interval[0])}, {_fmt(r.interval[1])}]",
                *[_fmt_extra(more[e]) if e in more else "" for e in extras],
                f"{r.alpha:g}",
                str(r.n_trials),
                str(r.seed),
                *((f"{seconds[i]:.2f}",) if seconds is not None else ()),
                r.verdict,
            )
        )
    return head, rows


def format_table(
    results: Sequence[ClaimCheck],
    *,
    markdown: bool = False,
    seconds: Sequence[float] | None = None,
) -> str:
    """Every detail of the results as a Markdown (or plain fixed-width) table.

    Columns: claim, statement, source, decision statistic, estimate and interval, any extra
    fields of the results (:func:`extra_fields`, e.g. a resolving power), false-alarm rate,
    trials, seed, seconds (when given) and verdict. The terminal gets the narrower
    :func:`print_table`.

    Parameters
    ----------
    results : sequence of ClaimCheck
        The evidence.
    markdown : bool, default=False
        Markdown pipe table instead of fixed-width text.
    seconds : sequence of float, optional
        Wall time per claim.

    Returns
    -------
    str
        The table.
    """
    head, rows = _details(results, seconds)
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(str(x[i])) for x in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def print_table(
    results: Sequence[ClaimCheck],
    seconds: Sequence[float],
    *,
    file: TextIO | None = None,
    width: int | None = None,
) -> None:
    """Print the results table, at most :data:`TABLE_WIDTH` columns wide.

    Columns: claim id, what it claims, estimate, interval, extra fields (e.g. a resolving
    power) when the results carry them, seconds, verdict. Long statements wrap inside their
    column; the source and decision statistic are in the report (:func:`write_report`).

    Parameters
    ----------
    results : sequence of ClaimCheck
        The evidence.
    seconds : sequence of float
        Wall time per claim.
    file : file-like, optional
        Where to print (default ``sys.stdout``).
    width : int, optional
        Table width (default: the terminal's, at most :data:`TABLE_WIDTH`; exactly that
        when not printing to a terminal).
    """
    from rich import box
    from rich.console import Console
    from rich.table import Table

    file = sys.stdout if file is None else file
    console = Console(file=file, highlight=False, soft_wrap=False)
    if width is None:
        width = min(console.width, TABLE_WIDTH) if console.is_terminal else TABLE_WIDTH
    console.width = min(width, TABLE_WIDTH)
    extras = _extra_names(results)
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    table.add_column("claim", no_wrap=True)
    table.add_column("what", ratio=1, overflow="fold")
    table.add_column("estimate", justify="right", no_wrap=True)
    table.add_column("interval", no_wrap=True)
    for name in extras:
        table.add_column(name.replace("_", " "), justify="right", overflow="fold")
    table.add_column("s", justify="right", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    for r, s in zip(results, seconds, strict=True):
        more = extra_fields(r)
        table.add_row(
            r.claim_id,
            _title(r),
            _fmt(r.estimate),
            f"[{_fmt(r.interval[0])}, {_fmt(r.interval[1])}]",
            *[_fmt_extra(more[e]) if e in more else "" for e in extras],
            f"{s:.1f}",
            "[yellow]INFO[/]"
            if getattr(r, "informational", False)
            else ("[green]PASS[/]" if r.passed else "[bold red]FAIL[/]"),
        )
    console.print(table)


def _header(results: Sequence[ClaimCheck], profile: str, total_seconds: float | None) -> str:
    import favor

    n_fail = sum(not r.passed for r in results)
    return (
        f"Profile `{profile}`; favor {favor.__version__}; NumPy {np.__version__}; "
        f"Python {platform.python_version()}; {len(results)} claims, {n_fail} failed"
        + (f"; {total_seconds:.1f} s wall time." if total_seconds is not None else ".")
    )


_INTRO = (
    "Every check is seeded (root seed per claim) and decides at a declared false-alarm rate "
    "(alpha, per check; see `theory._stats`). Intervals are simultaneous at that rate."
)


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
    """Write ``report.md`` and ``report.html`` (figures inline) into ``out_dir``.

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
        Figure files (PNG) to show: linked from the Markdown, embedded in the HTML.
    throughput : dict, optional
        Monte Carlo throughput measurements to include.
    total_seconds : float, optional
        Wall time of the whole run.

    Returns
    -------
    Path
        The Markdown report (the HTML one is beside it, same stem).
    """
    from theory.uniform_bounds import CONSTANT_PROVENANCE

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    header = _header(results, profile, total_seconds)
    lines = [
        "# favor theory report",
        "",
        header,
        "",
        _INTRO,
        "",
        format_table(results, markdown=True, seconds=seconds),
    ]
    throughput_rows = []
    if throughput:
        for key, t in throughput.items():
            sampler, pairs = key.split(":")
            throughput_rows.append(
                (
                    sampler,
                    pairs,
                    f"{t['trials_per_second']:.3g}",
                    f"{t['estimates_per_second']:.3g}",
                )
            )
        lines += [
            "",
            "## Monte Carlo throughput (d = 16, m = 64, positive features)",
            "",
            "| sampler | pairs per trial | trials/s | kernel estimates/s |",
            "|---|---|---|---|",
        ]
        lines += ["| " + " | ".join(row) + " |" for row in throughput_rows]
    if figures:
        lines += ["", "## Figures", ""]
        lines += [f"![{f.stem}]({f.name})" for f in figures]
    lines += ["", "## Provenance of the uniform-convergence constants", ""]
    lines += [f"- `{k}`: {v}" for k, v in CONSTANT_PROVENANCE.items()]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    head, rows = _details(results, seconds)
    page = _html_page(
        header, head, rows, throughput_rows, figures, dict(CONSTANT_PROVENANCE), results
    )
    path.with_suffix(".html").write_text(page, encoding="utf-8")
    return path


_CSS = """
body { font-family: system-ui, sans-serif; max-width: 80rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; line-height: 1.45; }
table { border-collapse: collapse; font-size: 0.9rem; margin: 1rem 0; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3rem 0.6rem; text-align: left;
         vertical-align: top; }
th { background: #f4f4f4; }
td.pass { color: #1a7f37; font-weight: 600; }
td.fail { color: #cf222e; font-weight: 700; }
figure { display: inline-block; margin: 1rem; }
figure img { max-width: 36rem; width: 100%; border: 1px solid #eee; }
code { background: #f4f4f4; padding: 0 0.2rem; }
"""


def _html_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["<table>", "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for row in rows:
        cells = []
        for h, c in zip(head, row, strict=True):
            css = f' class="{c.lower()}"' if h == "verdict" else ""
            cells.append(f"<td{css}>{html.escape(c)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return out


def _html_page(
    header: str,
    head: Sequence[str],
    rows: Sequence[Sequence[str]],
    throughput_rows: Sequence[Sequence[str]],
    figures: Sequence[Path],
    provenance: dict[str, str],
    results: Sequence[ClaimCheck],
) -> str:
    n_fail = sum(not r.passed for r in results)
    status = "all claims passed" if n_fail == 0 else f"{n_fail} claim(s) FAILED"
    body = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>favor theory report</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>favor theory report: {html.escape(status)}</h1>",
        f"<p>{html.escape(header.replace('`', ''))}</p>",
        f"<p>{html.escape(_INTRO.replace('`', ''))}</p>",
        *_html_table(head, rows),
    ]
    if throughput_rows:
        body += ["<h2>Monte Carlo throughput (d = 16, m = 64, positive features)</h2>"]
        body += _html_table(
            ("sampler", "pairs per trial", "trials/s", "kernel estimates/s"), throughput_rows
        )
    if figures:
        body.append("<h2>Figures</h2>")
        for f in figures:
            data = base64.b64encode(Path(f).read_bytes()).decode("ascii")
            name = html.escape(Path(f).stem)
            body.append(
                f'<figure><img alt="{name}" src="data:image/png;base64,{data}">'
                f"<figcaption>{name}</figcaption></figure>"
            )
    body.append("<h2>Provenance of the uniform-convergence constants</h2><ul>")
    body += [
        f"<li><code>{html.escape(k)}</code>: {html.escape(v)}</li>" for k, v in provenance.items()
    ]
    body += ["</ul>", "</body></html>"]
    return "\n".join(body) + "\n"
