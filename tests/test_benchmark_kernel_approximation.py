"""Smoke test of benchmarks/kernel_approximation.py at tiny sizes (runs in seconds)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "kernel_approximation.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("kernel_approximation_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_run_writes_a_complete_table_and_json(tmp_path, capsys):
    bench = _load_script()
    out = tmp_path / "ka.json"
    argv = ["--quick", "--widths", "16", "--seeds", "1", "--repeats", "1", "--threads", "1"]
    assert bench.main([*argv, "--out", str(out)]) == 0

    payload = json.loads(out.read_text())
    records = payload["records"]
    cases = {(r["data"], r["gamma_rule"], r["dtype"]) for r in records}
    assert len(cases) == 2 * 2 * 2  # datasets x gamma rules x dtypes
    assert {r["method"] for r in records} == set(bench.METHODS)
    for r in records:
        assert r["width"] == 16
        assert r["out_dtype"] == r["dtype"]  # every method keeps float32
        assert 0 < r["error_median"] < 2
        assert np.isfinite(r["transform_ratio"])
        assert r["transform"]["median"] > 0
        if r["method"] == "rbfsampler":
            assert r["error_ratio_median"] == 1.0
    table = capsys.readouterr().out
    assert table.count("\n| ") == len(records)  # one row per record after the header
    assert "FavorSampler trig orthogonal" in table


def test_quick_couplings_suite_writes_errors_scores_and_timings(tmp_path, capsys):
    bench = _load_script()
    out = tmp_path / "couplings.json"
    argv = ["--suite", "couplings", "--quick", "--seeds", "1", "--repeats", "1", "--threads", "1"]
    assert bench.main([*argv, "--out", str(out)]) == 0
    payload = json.loads(out.read_text())
    methods = {(r["kernel"], r["method"]) for r in payload["errors"]}
    for coupling in ("iid", "orthogonal", "structured", "qmc", "simplex", "nystroem"):
        assert ("matern", coupling) in methods
    assert ("laplacian", "orthogonal") not in methods  # refused: not unbiased for it
    assert ("rbf", "rbfsampler") in methods
    for r in payload["errors"]:
        assert 0 <= r["error_median"] < 2
    assert {r["data"] for r in payload["downstream"]} == {"digits", "diabetes"}
    assert all(np.isfinite(r["ratio"]) for r in payload["timings"])
    assert "| structured |" in capsys.readouterr().out
