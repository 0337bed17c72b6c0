"""``python -m theory``: usage errors, the table, the report, the figures, the exit status."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from theory.__main__ import EXIT_USAGE, main
from theory.report import TABLE_WIDTH

ROOT = Path(__file__).resolve().parents[2]


def _run_module(*args: str, cwd: Path | None = None) -> tuple[subprocess.CompletedProcess, float]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "theory", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
        check=False,
    )
    return proc, time.perf_counter() - start


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "/unwritable/path"], "--out /unwritable/path: its parent directory"),
        (["--claims", "ZZ9"], "unknown claim id ZZ9 (known: "),
    ],
    ids=["unwritable-out", "unknown-claim"],
)
def test_usage_errors_fail_fast_with_one_line(args: list[str], message: str) -> None:
    assert not Path("/unwritable").exists()
    proc, _ = _run_module(*args)
    assert proc.returncode == EXIT_USAGE == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("python -m theory: error: "), lines
    assert message in lines[0], lines
    # Nothing ran before the error: every claim that runs prints a progress line on
    # stderr and the report goes to stdout, so one stderr line and an empty stdout mean
    # the arguments were refused before any claim (a check on what ran, not a timing).
    assert proc.stdout == ""
    assert not Path("/unwritable").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--claims", ""], "--claims is empty"),
        (["--claims", " , "], "--claims is empty"),
        (["--claims", "U1,,V2"], "has an empty entry"),
        (["--claims", "U1,V2,U1"], "lists U1 more than once"),
        (["--claims", "U1,ZZ9,YY1"], "unknown claim ids ZZ9, YY1"),
        (["--claims", "u1"], "unknown claim id u1"),
        (["--no-figures"], "--no-figures needs --out"),
        (["--out", ""], "--out is empty"),
        (["--quick", "--full"], "not allowed with argument"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_usage_errors_in_process(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == EXIT_USAGE
    err = capsys.readouterr()
    assert err.out == ""
    lines = err.err.strip().splitlines()
    assert len(lines) == 1, lines
    assert message in lines[0], lines


def test_out_that_is_a_file_or_under_a_file(tmp_path: Path, capsys) -> None:
    afile = tmp_path / "report.txt"
    afile.write_text("x")
    assert main(["--out", str(afile), "--claims", "O2"]) == EXIT_USAGE
    assert "exists and is not a directory" in capsys.readouterr().err
    assert main(["--out", str(afile / "sub"), "--claims", "O2"]) == EXIT_USAGE
    assert "parent directory" in capsys.readouterr().err


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can write anywhere"
)
def test_out_in_a_read_only_directory(tmp_path: Path, capsys) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert main(["--out", str(locked / "report"), "--claims", "O2"]) == EXIT_USAGE
        assert "cannot write a report there" in capsys.readouterr().err
    finally:
        locked.chmod(0o700)


def test_smoke_run_passes(capsys):
    assert main(["--smoke"]) == 0
    out = capsys.readouterr()
    assert "3/3 claims passed" in out.out
    assert "[ 1/3] U1" in out.err  # progress goes to stderr (one line per claim off a terminal)
    assert max(len(line) for line in out.out.splitlines()) <= TABLE_WIDTH


def test_table_fits_100_columns_and_shows_extra_fields(capsys):
    from dataclasses import replace

    from theory.registry import run_claim
    from theory.report import print_table

    base = run_claim("O2")
    long = replace(base, name="O2 " + "a very long statement " * 8, resolving_power=0.0123)
    print_table([base, long], [0.5, 12.25])
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= TABLE_WIDTH, out
    header = "\n".join(out.splitlines()[:3])
    assert "resolving" in header, out  # the column header may wrap: "resolving / power"
    assert "0.0123" in out
    assert "PASS" in out


def test_report_is_written_with_the_table(tmp_path, capsys):
    assert main(["--claims", "U1,O2", "--out", str(tmp_path), "--no-figures"]) == 0
    text = (tmp_path / "report.md").read_text()
    assert "| U1 | positive x iid unbiased (softmax) |" in text
    assert "Lemma 1" in text  # the source column is in the report
    assert "QUOTED FROM MEMORY" in text
    page = (tmp_path / "report.html").read_text()
    assert "<table>" in page
    assert "positive x iid unbiased (softmax)" in page
    assert "report:" in capsys.readouterr().out
    assert not list(tmp_path.glob(".theory-write-test-*"))


@pytest.mark.slow
def test_html_report_embeds_the_figures(tmp_path):
    from theory.figures import figure_orthogonal_vs_iid
    from theory.registry import run_claim
    from theory.report import write_report

    fig = figure_orthogonal_vs_iid(tmp_path / "orthogonal_vs_iid.png", n_trials=200)
    path = write_report([run_claim("O2")], [0.1], tmp_path, profile="quick", figures=[fig])
    assert "![orthogonal_vs_iid](orthogonal_vs_iid.png)" in path.read_text()
    page = path.with_suffix(".html").read_text()
    assert page.count('<img alt="orthogonal_vs_iid" src="data:image/png;base64,') == 1


def test_figures_are_written(tmp_path):
    from theory.figures import figure_mse_vs_kernel, figure_orthogonal_vs_iid

    a = figure_mse_vs_kernel(tmp_path / "a.png", n_trials=200)
    b = figure_orthogonal_vs_iid(tmp_path / "b.png", n_trials=200)
    assert a.stat().st_size > 10_000
    assert b.stat().st_size > 10_000


def test_list_prints_every_claim(capsys):
    from theory.registry import CLAIMS

    assert main(["--list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == [s.claim_id for s in CLAIMS]


@pytest.mark.slow
def test_module_entry_point_exit_status():
    ok, _ = _run_module("--claims", "O2")
    assert ok.returncode == 0, ok.stderr
    assert "PASS" in ok.stdout
    assert max(len(line) for line in ok.stdout.splitlines()) <= TABLE_WIDTH


def test_a_failed_claim_exits_1(monkeypatch, capsys):
    from dataclasses import replace

    import theory.report
    from theory.registry import run_claim

    def failing(spec, *, profile):
        return replace(run_claim(spec, profile=profile), passed=False)

    monkeypatch.setattr(theory.report, "run_claim", failing)
    assert main(["--claims", "O2"]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_claim_estimate_figure_is_written(tmp_path):
    from theory.figures_claims import figure_claim_estimates

    path = figure_claim_estimates(tmp_path / "h.png", "H")
    assert path.stat().st_size > 10_000


def test_claim_figures_plot_the_runs_own_results(tmp_path, monkeypatch):
    """Given the run's results, a claim figure plots them and runs no claim again."""
    import theory.registry
    from theory.figures_claims import by_claim_id, figure_claim_estimates
    from theory.registry import current_claims, run_claim

    results = by_claim_id(run_claim(s) for s in current_claims() if s.claim_id[0] == "H")

    def no_rerun(*args, **kwargs):
        raise AssertionError("a claim was run again for its figure")

    monkeypatch.setattr(theory.registry, "run_claim", no_rerun)
    path = figure_claim_estimates(tmp_path / "h.png", "H", results=results)
    assert path.stat().st_size > 10_000
    # Control: without the results the figure has to run the claims (and hits the patch).
    with pytest.raises(AssertionError, match="run again"):
        figure_claim_estimates(tmp_path / "h2.png", "H")


def test_every_claim_family_has_a_figure():
    import inspect

    from theory.figures import write_figures
    from theory.figures_claims import write_claim_figures
    from theory.registry import CLAIMS

    source = inspect.getsource(write_figures) + inspect.getsource(write_claim_figures)
    covered = {
        "E": "figure_engine_paths",
        "S": "figure_sampler_moments",
        "R": "figure_error_prediction",
        "U": "figure_unbiasedness",
        "V": "figure_mse_vs_kernel",
        "P": "figure_mse_vs_kernel",
        "O": "figure_orthogonal_vs_iid",
        "C": "figure_sup_error_rate",
        "A": "figure_attention_error",
        "G": '"GH"',
        "H": '"GH"',
        "K": '"KW"',
        "W": '"KW"',
    }
    assert {spec.claim_id[0] for spec in CLAIMS} <= set(covered)
    for family, marker in covered.items():
        assert marker in source, family
