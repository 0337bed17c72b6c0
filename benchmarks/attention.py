"""Benchmark favor_attention against its GEMM floor, exact attention and peers (CPU).

Shapes (issue 3): batch x heads = 8, d = d_v = 64, m = 256 random features, float32,
L in {1024, 2048, 4096, 16384, 65536}; bidirectional and causal.

Every time is a median over several calls in this process (median (min - max, n)), with a
stall probe before and after each case and a rerun when it fires (benchmarks/_timing.py).
Ratios are ours divided by the other case from the same run:

* ``/floor``: the GEMM + exp floor of a NumPy FAVOR+ forward of the same shapes:
  the sum of the medians of the two feature GEMMs
  (8L x 64) @ (64 x m), the two ``np.exp`` passes over (8L x m), K'^T V and Q'(K'^T V) as
  batched ``np.matmul`` over the 8 heads, each component timed with the default BLAS
  threads and with one BLAS thread, taking the faster (under load from other processes
  two-thread OpenBLAS can be several times slower than one thread). Causal rows are
  divided by this bidirectional floor too (the issue's target).
* ``/exact``: exact softmax attention in NumPy, one head at a time, materialising L x L
  (skipped where one L x L float32 matrix exceeds 1 GiB).
* ``/SDPA``: ``torch.nn.functional.scaled_dot_product_attention`` (CPU flash kernel),
  under ``inference_mode``; skipped above ``--max-sdpa-L`` (minutes per call).
* ``/performer``: performer-pytorch ``FastAttention(dim_heads=64, nb_features=256)``;
  causal only up to ``--max-performer-causal-L`` (its CPU fallback is very slow).

Peak extra memory of each favor case (and of the floor) is measured in a fresh
subprocess as VmHWM minus the RSS after imports, warm-up and input allocation, and
reported next to the inputs' size (q, k, v).

Usage: ``python benchmarks/attention.py [--quick] [--max-L N] [--out results.json]``.

The favor cases use the default map (``"positive"``, FAVOR+). The newer maps (``"oprf"``,
``"saderf"``, ``"hybrid"``) are timed against it at these same shapes by
``python benchmarks/attention_accuracy.py --timing L`` (interleaved rounds, same-run ratios
to FAVOR+; recorded in ``benchmarks/recorded/attention_timing_L16384.json``).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._timing import (
    TORCH_PROBE_LIMIT_MS,
    Timing,
    measure_peak_here,
    measure_peak_subprocess,
    time_case,
    torch_probe_ms,
)

GROUPS, D, M = 8, 64, 256
FULL_LENGTHS = [1024, 2048, 4096, 16384, 65536]
QUICK_LENGTHS = [256, 1024]
EXACT_MAX_L = 16384  # one L x L float32 matrix is 1 GiB here


def make_inputs(n_tokens: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """q, k, v of shape (8, L, 64) float32 with N(0, 1/4) entries, and the projection."""
    rng = np.random.default_rng(seed)
    q, k, v = (rng.standard_normal((GROUPS, n_tokens, D), dtype=np.float32) for _ in range(3))
    for a in (q, k, v):
        a *= 0.5  # in place: no freed temporaries left resident to hide later allocations
    from favor.sampling import orthogonal_projection

    return q, k, v, orthogonal_projection(M, D, rng=rng)


def favor_case(q, k, v, w, causal):
    from favor import favor_attention

    return lambda: favor_attention(q, k, v, projection=w, causal=causal)


def floor_components(q, k, v, w):
    """The six floor operations as separate callables on preallocated buffers."""
    wt = np.ascontiguousarray((w * D**-0.25).T, dtype=np.float32)
    x = q.reshape(-1, D)
    y = k.reshape(-1, D)
    n = x.shape[0]
    lq = np.empty((n, M), np.float32)
    lk = np.empty((n, M), np.float32)
    np.matmul(x, wt, out=lq)
    np.matmul(y, wt, out=lk)
    fq = np.exp(lq)
    fk = np.exp(lk)
    fq3 = fq.reshape(GROUPS, -1, M)
    fk3 = fk.reshape(GROUPS, -1, M)
    kv = np.swapaxes(fk3, 1, 2) @ v
    out = np.empty_like(v)
    return {
        "features Q": lambda: np.matmul(x, wt, out=lq),
        "features K": lambda: np.matmul(y, wt, out=lk),
        "exp Q": lambda: np.exp(lq, out=fq),
        "exp K": lambda: np.exp(lk, out=fk),
        "K'^T V": lambda: np.matmul(np.swapaxes(fk3, 1, 2), v, out=kv),
        "Q'(K'^T V)": lambda: np.matmul(fq3, kv, out=out),
    }


def floor_chained(q, k, v, w):
    wt = np.ascontiguousarray((w * D**-0.25).T, dtype=np.float32)

    def run():
        fq = np.exp(q.reshape(-1, D) @ wt).reshape(GROUPS, -1, M)
        fk = np.exp(k.reshape(-1, D) @ wt).reshape(GROUPS, -1, M)
        return fq @ (np.swapaxes(fk, 1, 2) @ v)

    return run


def exact_numpy_case(q, k, v, causal):
    scale = np.float32(D**-0.5)
    n = q.shape[1]
    tril = np.tril(np.ones((n, n), dtype=bool)) if causal else None

    def run():
        out = np.empty_like(v)
        for g in range(GROUPS):
            logits = q[g] @ k[g].T
            logits *= scale
            if tril is not None:
                logits[~tril] = -np.inf
            logits -= logits.max(axis=1, keepdims=True)
            np.exp(logits, out=logits)
            out[g] = (logits @ v[g]) / logits.sum(axis=1, keepdims=True)
        return out

    return run


def sdpa_case(q, k, v, causal):
    import torch

    tq, tk, tv = (torch.from_numpy(a)[None] for a in (q, k, v))

    def run():
        with torch.inference_mode():
            return torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=causal)

    return run


def performer_case(q, k, v, causal):
    import torch
    from performer_pytorch import FastAttention

    torch.manual_seed(0)  # performer draws its projection from torch's global generator
    attn = FastAttention(dim_heads=D, nb_features=M, causal=causal)
    tq, tk, tv = (torch.from_numpy(a)[None] for a in (q, k, v))

    def run():
        with torch.inference_mode():
            return attn(tq, tk, tv)

    return run


def available(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def memory_case(case: str, n_tokens: int) -> dict:
    """Run in a fresh process: warm up at a small L, allocate inputs, measure one call."""
    small = make_inputs(64)
    if case.startswith("favor"):
        causal = case == "favor_causal"
        favor_case(*small, causal)()
        q, k, v, w = make_inputs(n_tokens)
        run = favor_case(q, k, v, w, causal)
    else:
        floor_chained(*small)()
        q, k, v, w = make_inputs(n_tokens)
        run = floor_chained(q, k, v, w)
    record = measure_peak_here(run)
    record["inputs_kib"] = (q.nbytes + k.nbytes + v.nbytes) // 1024
    return record


def run_length(n_tokens: int, args: argparse.Namespace, notes: list[str]) -> list[dict]:
    q, k, v, w = make_inputs(n_tokens)
    repeats = args.repeats if n_tokens <= 16384 else max(3, args.repeats // 2)
    heavy = max(1, min(3, repeats))
    timings: dict[str, Timing] = {}
    from threadpoolctl import threadpool_limits

    components = floor_components(q, k, v, w)
    floor_parts = {name: time_case(fn, repeats=repeats) for name, fn in components.items()}
    with threadpool_limits(limits=1, user_api="blas"):
        floor_parts_1t = {name: time_case(fn, repeats=repeats) for name, fn in components.items()}
    # The strictest floor: each component at its better BLAS thread count (all threads when
    # the cores are idle; one thread can win when other processes load the cores).
    floor = sum(min(floor_parts[n].median, floor_parts_1t[n].median) for n in components)
    timings["floor chained"] = time_case(floor_chained(q, k, v, w), repeats=repeats)
    for causal in (False, True):
        timings[f"favor {causal}"] = time_case(favor_case(q, k, v, w, causal), repeats=repeats)
        if n_tokens <= EXACT_MAX_L:
            timings[f"exact {causal}"] = time_case(
                exact_numpy_case(q, k, v, causal), repeats=heavy, warmup=0 if n_tokens > 4096 else 1
            )
        if args.torch and n_tokens <= args.max_sdpa_L:
            timings[f"sdpa {causal}"] = time_case(
                sdpa_case(q, k, v, causal),
                repeats=heavy if n_tokens > 4096 else repeats,
                probe=torch_probe_ms,
                probe_limit_ms=TORCH_PROBE_LIMIT_MS,
            )
        limit = args.max_performer_causal_L if causal else args.max_L
        if args.performer and n_tokens <= limit:
            timings[f"performer {causal}"] = time_case(
                performer_case(q, k, v, causal),
                repeats=heavy if (causal or n_tokens > 16384) else repeats,
                probe=torch_probe_ms,
                probe_limit_ms=TORCH_PROBE_LIMIT_MS,
            )
    rows = []
    for causal in (False, True):
        mode = "causal" if causal else "bidirectional"
        ours = timings[f"favor {causal}"]
        row = {
            "L": n_tokens,
            "mode": mode,
            "favor": ours.as_dict(),
            "favor_text": ours.describe(),
            "floor_s": floor,
            "floor_parts": {n: t.as_dict() for n, t in floor_parts.items()},
            "floor_parts_1_blas_thread": {n: t.as_dict() for n, t in floor_parts_1t.items()},
            "floor_chained": timings["floor chained"].as_dict(),
            "ratio_floor": ours.median / floor,
        }
        for name in ("exact", "sdpa", "performer"):
            other = timings.get(f"{name} {causal}")
            row[name] = None if other is None else other.as_dict()
            row[f"{name}_text"] = "skipped" if other is None else other.describe()
            row[f"ratio_{name}"] = None if other is None else ours.median / other.median
        if args.memory:
            rec = measure_peak_subprocess(
                [
                    __file__,
                    "--memory-case",
                    "favor_causal" if causal else "favor_bi",
                    "--L",
                    str(n_tokens),
                ]
            )
            row["memory"] = rec
            if not causal:
                row["floor_memory"] = measure_peak_subprocess(
                    [__file__, "--memory-case", "floor", "--L", str(n_tokens)]
                )
        rows.append(row)
        print(
            f"  L={n_tokens} {mode}: favor {ours.describe()}, floor {floor * 1e3:.1f} ms",
            flush=True,
        )
    return rows


def markdown(rows: list[dict]) -> str:
    def ratio(x):
        return "-" if x is None else f"{x:.2f}"

    lines = [
        "| L | mode | favor | floor | /floor | exact NumPy | /exact | SDPA | /SDPA | performer | /performer | peak extra MiB | /inputs |",
        "|---:|---|---|---:|---:|---|---:|---|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        mem = r.get("memory") or {}
        extra = mem.get("extra_kib")
        mem_text = "-" if extra is None else f"{extra / 1024:.0f}"
        mem_ratio = "-" if extra is None else f"{extra / mem['inputs_kib']:.2f}"
        lines.append(
            f"| {r['L']} | {r['mode']} | {r['favor_text']} | {r['floor_s'] * 1e3:.1f} ms | "
            f"{ratio(r['ratio_floor'])} | {r['exact_text']} | {ratio(r['ratio_exact'])} | "
            f"{r['sdpa_text']} | {ratio(r['ratio_sdpa'])} | {r['performer_text']} | "
            f"{ratio(r['ratio_performer'])} | {mem_text} | {mem_ratio} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="L in {256, 1024}, fewer repeats")
    parser.add_argument("--max-L", type=int, default=None, help="skip lengths above this")
    parser.add_argument(
        "--lengths", type=int, nargs="+", default=None, help="run exactly these lengths"
    )
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per case")
    parser.add_argument("--max-sdpa-L", type=int, default=16384)
    parser.add_argument("--max-performer-causal-L", type=int, default=4096)
    parser.add_argument("--no-memory", dest="memory", action="store_false")
    parser.add_argument("--no-torch", dest="torch", action="store_false")
    parser.add_argument("--out", type=Path, default=None, help="write JSON results here")
    parser.add_argument("--memory-case", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--L", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_case:
        print(json.dumps(memory_case(args.memory_case, args.L)))
        return 0
    lengths = QUICK_LENGTHS if args.quick else FULL_LENGTHS
    if args.lengths:
        lengths = sorted(args.lengths)
    if args.max_L is not None:
        lengths = [n for n in lengths if n <= args.max_L]
    args.max_L = max(lengths)
    if args.repeats is None:
        args.repeats = 3 if args.quick else 7
    notes = []
    args.torch = args.torch and available("torch")
    if not args.torch:
        notes.append("torch not installed (or --no-torch): SDPA and performer skipped")
    args.performer = args.torch and available("performer_pytorch")
    if args.torch and not args.performer:
        notes.append("performer-pytorch not installed: skipped")
    if args.torch:
        import warnings

        warnings.filterwarnings("ignore", category=DeprecationWarning)  # performer's distutils
        import torch

        notes.append(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if any(n > EXACT_MAX_L for n in lengths):
        notes.append(
            f"exact NumPy attention skipped above L={EXACT_MAX_L} (L x L > 1 GiB per head)"
        )
    if any(n > args.max_sdpa_L for n in lengths):
        notes.append(f"SDPA skipped above L={args.max_sdpa_L} (about a minute per call at 65536)")
    notes.append(
        f"performer causal (CPU fallback) skipped above L={args.max_performer_causal_L} (seconds to minutes per call)"
    )
    started = time.time()
    rows = []
    for n_tokens in lengths:
        rows.extend(run_length(n_tokens, args, notes))
    table = markdown(rows)
    print()
    print(table)
    print()
    for note in notes:
        print(f"- {note}")
    print(f"- total {time.time() - started:.0f} s")
    if args.out:
        from threadpoolctl import threadpool_info

        args.out.write_text(
            json.dumps(
                {
                    "rows": rows,
                    "notes": notes,
                    "table": table,
                    "python": platform.python_version(),
                    "numpy": np.__version__,
                    "threadpools": threadpool_info(),
                    "shapes": {"groups": GROUPS, "d": D, "d_v": D, "m": M, "dtype": "float32"},
                },
                indent=1,
                default=str,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
