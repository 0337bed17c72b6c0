"""Timing helpers shared by the benchmarks: medians, stall probes, peak memory.

Timings vary with the other load on the machine: every case
is timed several times and summarised as median (min - max, n); a tiny multithreaded
probe runs before and after each case, and a case whose probe shows the occasional
"every parallel op takes 8 ms longer" stall is rerun. Peak memory is read in a fresh
subprocess from ``VmHWM`` (never ``ru_maxrss``, which inherits the parent's resident set
across fork+exec), after resetting the high-water mark with ``/proc/self/clear_refs``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

#: Probe limits in milliseconds. On an idle 2-core machine the probes take under 1 ms
#: (NumPy sgemm) and under 0.8 ms (torch); a stalled process adds several ms to each.
NUMPY_PROBE_LIMIT_MS = 2.5
TORCH_PROBE_LIMIT_MS = 1.5

_PROBE = np.random.default_rng(0).standard_normal((192, 192)).astype(np.float32)


def numpy_probe_ms() -> float:
    """Median of 5 small multithreaded sgemms (OpenBLAS pthreads), in ms."""
    times = []
    for _ in range(5):
        t = time.perf_counter()
        _PROBE @ _PROBE
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))


def torch_probe_ms() -> float:
    """Median of 5 small multithreaded torch matmuls (OpenMP), in ms."""
    import torch

    x = torch.from_numpy(_PROBE)
    times = []
    for _ in range(5):
        t = time.perf_counter()
        x @ x
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))


@dataclass
class Timing:
    """Times of one case in seconds, with the stall-probe record."""

    times: list[float]
    probes_ms: list[float] = field(default_factory=list)
    reruns: int = 0

    @property
    def median(self) -> float:
        return float(np.median(self.times))

    def describe(self) -> str:
        """``median (min - max, n=...)`` with adaptive units."""
        if len(self.times) == 1:
            return f"{fmt_seconds(self.times[0])} (n=1)"
        return (
            f"{fmt_seconds(self.median)} ({fmt_seconds(min(self.times))} - "
            f"{fmt_seconds(max(self.times))}, n={len(self.times)})"
        )

    def as_dict(self) -> dict:
        return {**asdict(self), "median": self.median}


def fmt_seconds(t: float) -> str:
    """Format seconds as ms or s with three significant digits."""
    if t < 1.0:
        return f"{1e3 * t:.3g} ms"
    return f"{t:.3g} s"


def time_case(
    fn: Callable[[], object],
    *,
    repeats: int,
    warmup: int = 1,
    probe: Callable[[], float] = numpy_probe_ms,
    probe_limit_ms: float = NUMPY_PROBE_LIMIT_MS,
    max_reruns: int = 2,
) -> Timing:
    """Time ``fn`` ``repeats`` times after ``warmup`` calls; rerun on a stalled probe.

    Parameters
    ----------
    fn : callable
        The case, called with no arguments.
    repeats : int
        Timed calls.
    warmup : int, default=1
        Untimed calls first (compilation, caches, allocator).
    probe : callable
        Returns the probe time in ms; run before and after the timed calls.
    probe_limit_ms : float
        A probe above this marks the process as stalled and the case is rerun.
    max_reruns : int, default=2
        Give up rerunning after this many (the record keeps the count).

    Returns
    -------
    Timing
        The times of the last (unstalled, if any) attempt.
    """
    for _ in range(warmup):
        fn()
    reruns = 0
    while True:
        before = probe()
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        after = probe()
        stalled = max(before, after) > probe_limit_ms
        if not stalled or reruns >= max_reruns:
            return Timing(times, [before, after], reruns)
        reruns += 1


def _status_kib(field_name: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field_name} not found in /proc/self/status")


def reset_peak() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux >= 4.0); False if not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def measure_peak_here(run: Callable[[], object]) -> dict:
    """Peak RSS growth of ``run()`` in this process (call in a fresh subprocess)."""
    reset = reset_peak()
    base = _status_kib("VmRSS")
    run()
    peak = _status_kib("VmHWM")
    return {"base_kib": base, "peak_kib": peak, "extra_kib": peak - base, "hwm_reset": reset}


def measure_peak_subprocess(argv: list[str], timeout: float = 1800.0) -> dict:
    """Run ``python argv...`` and parse the last stdout line as the JSON of a peak record."""
    env = dict(os.environ)
    env.setdefault("PYTHONPATH", os.getcwd())
    proc = subprocess.run(
        [sys.executable, *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1:] or ["failed"]}
    return json.loads(proc.stdout.strip().splitlines()[-1])
