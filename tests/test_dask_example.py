"""The out-of-core example (examples/dask_out_of_core.py) runs at a small size on a cluster."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("dask_ml")

_PATH = Path(__file__).resolve().parents[1] / "examples" / "dask_out_of_core.py"


def _example():
    spec = importlib.util.spec_from_file_location("dask_out_of_core", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_data_is_reproducible_block_by_block():
    example = _example()
    X, y = example.make_data(1000, 300, 4, seed=3, part=0)
    assert X.chunks == ((300, 300, 300, 100), (4,))
    first = X.compute(scheduler="sync")
    again = X.rechunk(1000).compute(scheduler="sync")  # the same blocks, whatever runs them
    assert (first == again).all()
    other = example.make_data(1000, 300, 4, seed=3, part=1)[0].compute(scheduler="sync")
    assert not (first == other).any()
    labels = y.compute(scheduler="sync")
    assert 0.4 < labels.mean() < 0.6  # split at the median radius


@pytest.mark.slow
def test_out_of_core_classifier_beats_linear(dask_client):
    result = _example().run(
        dask_client, n_samples=40_000, chunk_rows=4000, n_features=4, n_components=128
    )
    # Random features learn the radial boundary; a linear model on x is at chance.
    assert result["accuracy"] > 0.9
    assert result["baseline"] < 0.65


@pytest.mark.slow
def test_command_line_small_run(capsys):
    assert (
        _example().main(
            [
                "--n-samples",
                "20000",
                "--chunk-rows",
                "5000",
                "--n-components",
                "64",
                "--n-features",
                "4",
                "--workers",
                "1",
            ]
        )
        == 0
    )
    assert "accuracy" in capsys.readouterr().out
