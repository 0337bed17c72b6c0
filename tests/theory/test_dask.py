"""Theory on a Dask cluster: every trial, statistic, interval and verdict equals the serial
run for the same root seed (trials keyed by spawned seeds, not by worker order)."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest

from theory import montecarlo
from theory.cluster import distributed
from theory.registry import run_claim

pytest.importorskip("distributed")


def _work(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.stack([rng.standard_normal(n), rng.random(n)], axis=1)


def test_run_blocks_on_the_cluster_equals_serial(dask_client):
    serial = montecarlo.run_blocks(_work, 1000, 5, block_size=64)  # 16 blocks
    with distributed(client=dask_client):
        spread = montecarlo.run_blocks(_work, 1000, 5, block_size=64)
    assert montecarlo._BLOCK_MAP is None  # the context restores the serial runner
    np.testing.assert_array_equal(spread, serial)


def test_block_order_matters_so_the_equality_test_can_fail():
    # The control: a runner that returns blocks in another order gives other trials.
    def reversed_runner(work, children, sizes):
        out = [work(np.random.default_rng(c), n) for c, n in zip(children, sizes, strict=True)]
        return out[::-1]

    serial = montecarlo.run_blocks(_work, 256, 5, block_size=64)
    with montecarlo.block_map(reversed_runner):
        shuffled = montecarlo.run_blocks(_work, 256, 5, block_size=64)
    assert not np.array_equal(shuffled, serial)


def _fields_equal(a, b) -> None:
    for field in dataclasses.fields(a):
        x, y = getattr(a, field.name), getattr(b, field.name)
        if isinstance(x, dict):
            assert x.keys() == y.keys(), field.name
            for key in x:
                np.testing.assert_array_equal(np.asarray(x[key]), np.asarray(y[key]), err_msg=key)
        else:
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=field.name)


# Claims whose trials span several blocks, through every Monte Carlo path: kernel
# estimates (iid and orthogonal), Gram matrices, and favor_attention on the workers.
@pytest.mark.slow
@pytest.mark.parametrize("claim", ["U1", "U3", "V5", "O3", "C1", "A2"])
def test_claim_on_the_cluster_is_identical_to_serial(claim, dask_client):
    serial = run_claim(claim)
    with distributed(client=dask_client):
        spread = run_claim(claim)
    _fields_equal(spread, serial)
    assert spread.passed


def test_run_all_sends_whole_claims_to_the_cluster_with_the_serial_results(
    dask_client, monkeypatch
):
    import theory.report
    from theory.registry import get_claim

    specs = [get_claim(c) for c in ("V2", "U1", "E1")]
    with open(os.devnull, "w") as quiet:
        serial, _ = theory.report.run_all(claims=specs, stream=quiet)

    def not_here(specs, profile):
        raise AssertionError("a claim ran on the client")

    monkeypatch.setattr(theory.report, "_serial", not_here)
    with distributed(client=dask_client), open(os.devnull, "w") as quiet:
        spread, seconds = theory.report.run_all(claims=specs, stream=quiet)
    assert theory.report._CLAIM_RUNNER is None  # the context restores the serial runner
    assert [r.claim_id for r in spread] == ["V2", "U1", "E1"]  # in order
    assert len(seconds) == 3
    for a, b in zip(spread, serial, strict=True):
        _fields_equal(a, b)


def test_distributed_arguments_are_checked():
    with (
        pytest.raises(ValueError, match="workers must be a positive integer"),
        distributed(workers=0),
    ):
        pass
    with (
        pytest.raises(ValueError, match="at most one of workers, scheduler and client"),
        distributed(workers=1, scheduler="tcp://127.0.0.1:1"),
    ):
        pass
    with distributed() as client:
        assert client is None


@pytest.mark.slow
def test_cli_workers_gives_the_serial_results(capsys, monkeypatch):
    import theory.report
    from theory.__main__ import main

    printed = []
    original = theory.report.print_table

    def record(results, seconds, **kwargs):
        printed.append(results)
        original(results, seconds, **kwargs)

    monkeypatch.setattr(theory.report, "print_table", record)
    assert main(["--claims", "U1,V2,C1"]) == 0
    capsys.readouterr()
    assert main(["--claims", "U1,V2,C1", "--workers", "2"]) == 0
    err = capsys.readouterr().err
    assert "Dask cluster (2 local workers)" in err
    assert "[ 3/3] C1" in err  # progress still shows, claim by claim
    serial, spread = printed
    assert [r.claim_id for r in spread] == ["U1", "V2", "C1"]
    for a, b in zip(spread, serial, strict=True):
        _fields_equal(a, b)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--workers", "0"], "--workers must be a positive integer, got 0"),
        (["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "not allowed with argument"),
        (["--scheduler", " "], "--scheduler is empty"),
    ],
)
def test_cli_rejects_bad_cluster_options(argv, message, capsys):
    from theory.__main__ import EXIT_USAGE, main

    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert message in err[0]


def test_cli_unreachable_scheduler_is_a_usage_error(capsys, monkeypatch):
    import theory.cluster
    from theory.__main__ import EXIT_USAGE, main

    monkeypatch.setattr(theory.cluster, "CONNECT_TIMEOUT", 2)
    assert main(["--claims", "V2", "--scheduler", "tcp://127.0.0.1:9"]) == EXIT_USAGE
    assert "no Dask cluster at tcp://127.0.0.1:9" in capsys.readouterr().err
