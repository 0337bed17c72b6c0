"""``python -m theory``: the smoke profile, the report, the figures, the exit status."""

from __future__ import annotations

import subprocess
import sys

from theory.__main__ import main


def test_smoke_run_passes(capsys):
    assert main(["--smoke"]) == 0
    out = capsys.readouterr()
    assert "3/3 claims passed" in out.out
    assert "[ 1/3] U1" in out.err  # progress goes to stderr


def test_report_is_written_with_the_table(tmp_path, capsys):
    assert main(["--claims", "U1,O2", "--out", str(tmp_path), "--no-figures"]) == 0
    text = (tmp_path / "report.md").read_text()
    assert "| U1 positive x iid unbiased (softmax)" in text
    assert "QUOTED FROM MEMORY" in text
    assert "report:" in capsys.readouterr().out


def test_figures_are_written(tmp_path):
    from theory.figures import figure_mse_vs_kernel, figure_orthogonal_vs_iid

    a = figure_mse_vs_kernel(tmp_path / "a.png", n_trials=200)
    b = figure_orthogonal_vs_iid(tmp_path / "b.png", n_trials=200)
    assert a.stat().st_size > 10_000
    assert b.stat().st_size > 10_000


def test_module_entry_point_exit_status():
    ok = subprocess.run(
        [sys.executable, "-m", "theory", "--claims", "O2"], capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    assert "PASS" in ok.stdout
