"""Benchmark favor.torch attention against performer-pytorch's FastAttention and SDPA.

CPU mode (default)
    float32, batch x heads = 8, d = 64, m = 256, L in {1024, 4096, 16384}, bidirectional
    and causal, under ``torch.inference_mode``. Implementations are timed in interleaved
    rounds (one call of each per round), so the two sides of each ratio see the same
    background load; every call is bracketed by a stall probe (a tiny 2-thread
    matmul) and a call whose probe stalled is retried. Reports medians (min - max, n),
    the median of per-round ratios, a Markdown table, and JSON (``--out``).

GPU mode (``--mode gpu``)
    CUDA, bfloat16 and float32, L up to 131072: FAVOR+ (bidirectional and causal), SDPA
    forced to the flash kernel (bf16; the memory-efficient kernel for float32, which flash
    does not support) and performer-pytorch when importable; CUDA-event timing, peak
    memory above the inputs; a memory-linearity sweep of causal FAVOR+ to L = 1M
    (forward; forward + backward while it fits); correctness checks on the device
    (parity with CPU float64, no future leak to the last bit, bf16 finite). A global
    deadline (``--deadline``, default 270 s) bounds the run; JSON is rewritten to
    ``$OUT/torch_attention_gpu.json`` (or ``--out``) after every case. Needs only torch
    and this repository. ``--dry-run`` runs this code path on CPU at tiny sizes.

Usage::

    python benchmarks/torch_attention.py --out bench_cpu.json
    python benchmarks/torch_attention.py --mode gpu            # writes $OUT/torch_attention_gpu.json
    python benchmarks/torch_attention.py --mode gpu --dry-run
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from favor.sampling import draw_projection
from favor.torch import favor_attention

BH, D, M = 8, 64, 256


# ----------------------------------------------------------------------------- helpers


def environment(device: torch.device) -> dict[str, Any]:
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    with contextlib.suppress(OSError):
        info["loadavg_at_start"] = os.getloadavg()
    try:
        from importlib.metadata import version

        import performer_pytorch  # noqa: F401

        info["performer_pytorch"] = version("performer-pytorch")
    except Exception as exc:  # missing or broken install: record why
        info["performer_pytorch"] = f"unavailable ({type(exc).__name__}: {exc})"[:200]
    return info


def inputs(length: int, dtype: torch.dtype, device: torch.device, seed: int = 0):
    g = torch.Generator(device=device).manual_seed(seed)
    return [
        torch.randn(1, BH, length, D, generator=g, device=device, dtype=torch.float32).to(dtype)
        for _ in range(3)
    ]


def projection(device: torch.device) -> torch.Tensor:
    return torch.as_tensor(draw_projection("orthogonal", M, D, rng=0), device=device)


def performer_factory(causal: bool, device: torch.device) -> tuple[Any, str] | None:
    """performer-pytorch's FastAttention (dim_heads=64, nb_features=256), or None."""
    try:
        import io

        with contextlib.redirect_stdout(io.StringIO()):
            from performer_pytorch import FastAttention

            layer = FastAttention(dim_heads=D, nb_features=M, causal=causal).to(device)
    except Exception:
        return None
    path = getattr(layer, "causal_linear_fn", None)
    name = getattr(path, "__name__", type(path).__name__) if causal else "linear_attention"
    if hasattr(path, "func"):  # functools.partial
        name = path.func.__name__
    return layer, name


def sdpa(q, k, v, causal: bool, backend: Any = None) -> torch.Tensor:
    ctx = contextlib.nullcontext()
    if backend is not None:
        from torch.nn.attention import sdpa_kernel

        ctx = sdpa_kernel(backend)
    with ctx:
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)


def summary(samples: list[float]) -> dict[str, Any]:
    return {
        "median_ms": 1e3 * statistics.median(samples),
        "min_ms": 1e3 * min(samples),
        "max_ms": 1e3 * max(samples),
        "n": len(samples),
    }


def fmt(ms: float) -> str:
    return f"{ms / 1e3:.2f} s" if ms >= 1000 else f"{ms:.1f} ms" if ms >= 10 else f"{ms:.2f} ms"


# ------------------------------------------------------------------------------ CPU mode


class Probe:
    """A tiny parallel matmul; a slow probe marks a stretch where other load stalls parallel ops."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(1)
        self.a = torch.randn(256, 256, generator=g)
        runs = sorted(self.once() for _ in range(15))
        self.baseline = runs[len(runs) // 2]
        self.limit = 4 * self.baseline + 5e-4

    def once(self) -> float:
        start = time.perf_counter()
        torch.mm(self.a, self.a)
        return time.perf_counter() - start


def time_cpu(fn: Callable[[], Any], probe: Probe, retries: int = 2) -> tuple[float, float, bool]:
    """One timed call between two probes; retried while a probe stalls."""
    for attempt in range(retries + 1):
        before = probe.once()
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        after = probe.once()
        worst = max(before, after)
        if worst <= probe.limit or attempt == retries:
            return elapsed, worst, worst > probe.limit
    raise AssertionError("unreachable")


def run_cpu(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    probe = Probe()
    result: dict[str, Any] = {
        "mode": "cpu",
        "environment": environment(device),
        "setup": {"batch_x_heads": BH, "d": D, "m": M, "dtype": "float32"},
        "probe_baseline_ms": 1e3 * probe.baseline,
        "probe_limit_ms": 1e3 * probe.limit,
        "cases": [],
    }
    w = projection(device).float()
    for causal in (False, True):
        for length in args.lengths:
            q, k, v = inputs(length, torch.float32, device)
            impls: dict[str, Callable[[], Any]] = {
                "favor": lambda q=q, k=k, v=v, c=causal: favor_attention(
                    q, k, v, projection=w, causal=c
                )
            }
            peer = None if args.no_performer else performer_factory(causal, device)
            if peer is not None:
                layer, path = peer
                impls["performer"] = lambda q=q, k=k, v=v, layer=layer: layer(q, k, v)
            impls["sdpa"] = lambda q=q, k=k, v=v, c=causal: sdpa(q, k, v, c)
            load_before = os.getloadavg()
            case = run_cpu_case(impls, probe, args)
            case.update({"causal": causal, "L": length})
            case["loadavg_before_after"] = [load_before[0], os.getloadavg()[0]]
            if peer is not None:
                case["performer_path"] = path
            result["cases"].append(case)
            print(json.dumps({k: case[k] for k in ("causal", "L")}), flush=True)
            for name, stats in case["impls"].items():
                print(f"  {name:10s} {fmt(stats['median_ms'])} (n={stats['n']})", flush=True)
            if args.out:
                write(result, args.out)
    result["table"] = markdown(result)
    if args.out:
        write(result, args.out)
        Path(args.out).with_suffix(".md").write_text(result["table"] + "\n")
    print(result["table"])
    return result


def run_cpu_case(impls: dict[str, Callable[[], Any]], probe: Probe, args: argparse.Namespace):
    samples: dict[str, list[float]] = {name: [] for name in impls}
    probes: dict[str, float] = dict.fromkeys(impls, 0.0)
    stalls: dict[str, int] = dict.fromkeys(impls, 0)
    heavy = set()
    with torch.inference_mode():
        for name, fn in impls.items():  # warm-up; a call over the threshold is its own sample
            elapsed, worst, stalled = time_cpu(fn, probe)
            if elapsed > args.heavy_s:
                heavy.add(name)
                samples[name].append(elapsed)
                probes[name] = max(probes[name], worst)
                stalls[name] += stalled
        budget = args.case_budget_s
        spent = 0.0
        for _ in range(args.repeats):
            if spent > budget:
                break
            for name, fn in impls.items():
                if name in heavy:
                    continue
                elapsed, worst, stalled = time_cpu(fn, probe)
                samples[name].append(elapsed)
                probes[name] = max(probes[name], worst)
                stalls[name] += stalled
                spent += elapsed
    case: dict[str, Any] = {"impls": {}, "ratios": {}}
    for name in impls:
        case["impls"][name] = summary(samples[name]) | {
            "max_probe_ms": 1e3 * probes[name],
            "stalled_calls": stalls[name],
            "single_cold_call": name in heavy,
        }
    base = samples["favor"]
    for name in impls:
        if name == "favor":
            continue
        other = samples[name]
        paired = [o / f for o, f in zip(other, base, strict=False)]
        case["ratios"][f"{name}/favor"] = {
            "of_medians": statistics.median(other) / statistics.median(base),
            "median_per_round": statistics.median(paired) if paired else None,
        }
    return case


def markdown(result: dict[str, Any]) -> str:
    peer = any("performer" in c["impls"] for c in result["cases"])
    head = "| mode | L | FAVOR+ (favor.torch) |"
    head += " performer-pytorch |" if peer else ""
    head += " SDPA |"
    head += " performer / FAVOR+ |" if peer else ""
    head += " SDPA / FAVOR+ |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for c in result["cases"]:
        cells = [("causal" if c["causal"] else "bidirectional"), str(c["L"])]
        names = ["favor", "performer", "sdpa"] if peer else ["favor", "sdpa"]
        for name in names:
            s = c["impls"].get(name)
            if s is None:
                cells.append("-")
            else:
                cells.append(
                    f"{fmt(s['median_ms'])} ({fmt(s['min_ms'])} - {fmt(s['max_ms'])}, n={s['n']})"
                )
        for name in names[1:]:
            r = c["ratios"].get(f"{name}/favor")
            cells.append("-" if r is None else f"{r['of_medians']:.2f}x")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write(result: dict[str, Any], path: str | os.PathLike) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1, default=str))
    tmp.replace(path)


# ------------------------------------------------------------------------------ GPU mode


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_device(fn: Callable[[], Any], device: torch.device, warmup: int, repeats: int):
    for _ in range(warmup):
        fn()
    sync(device)
    samples = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            stop.record()
            stop.synchronize()
            samples.append(start.elapsed_time(stop) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t0)
    return samples


def peak_memory(fn: Callable[[], Any], device: torch.device) -> int | None:
    """Peak bytes allocated during ``fn`` above what was allocated before it."""
    if device.type != "cuda":
        return None
    sync(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    fn()
    sync(device)
    return torch.cuda.max_memory_allocated(device) - base


def is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def free(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def gpu_checks(device: torch.device) -> dict[str, Any]:
    """Correctness on the device: parity with CPU float64, no future leak, bf16 finite."""
    out: dict[str, Any] = {}
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 300, 16, generator=g, dtype=torch.float64) for _ in range(3))
    mask = torch.rand(2, 1, 300, generator=g) < 0.2
    for causal in (False, True):
        kw = {"causal": causal, "n_components": 32, "rng": 4}
        ref = favor_attention(q, k, v, key_padding_mask=mask, **kw)
        got = favor_attention(
            q.to(device), k.to(device), v.to(device), key_padding_mask=mask.to(device), **kw
        ).cpu()
        out[f"parity_float64_{'causal' if causal else 'bidirectional'}_max_rel"] = float(
            (got - ref).abs().max() / ref.abs().max()
        )
    q32, k32, v32 = (x.float().to(device) for x in (q, k, v))
    k2, v2 = k32.clone(), v32.clone()
    k2[..., 150:, :] *= 4
    v2[..., 150:, :] += 1
    a = favor_attention(q32, k32, v32, causal=True, rng=1)
    b = favor_attention(q32, k2, v2, causal=True, rng=1)
    out["future_leak_bitwise_equal_prefix"] = bool(torch.equal(a[..., :150, :], b[..., :150, :]))
    x = [t.to(torch.bfloat16) * 3 for t in (q32, k32, v32)]
    y16 = favor_attention(*x, causal=True, rng=2)
    y32 = favor_attention(*(t.float() for t in x), causal=True, rng=2)
    out["bf16_finite"] = bool(torch.isfinite(y16).all())
    out["bf16_vs_float32_max_rel"] = float((y16.float() - y32).abs().max() / y32.abs().max())
    return out


def run_gpu(args: argparse.Namespace) -> dict[str, Any]:
    deadline = Deadline(args.deadline)
    if args.dry_run:
        device = torch.device("cpu")
        lengths, sweep = [64, 128], [128, 256, 512]
        dtypes = [torch.bfloat16, torch.float32]
    else:
        if not torch.cuda.is_available():
            raise SystemExit("--mode gpu needs CUDA (use --dry-run to exercise it on CPU)")
        device = torch.device("cuda")
        lengths = args.gpu_lengths
        sweep = args.sweep_lengths
        dtypes = [torch.bfloat16, torch.float32]
    out_path = args.out or os.path.join(os.environ.get("OUT", "."), "torch_attention_gpu.json")
    result: dict[str, Any] = {
        "mode": "gpu-dry-run" if args.dry_run else "gpu",
        "environment": environment(device),
        "setup": {"batch_x_heads": BH, "d": D, "m": M, "deadline_s": args.deadline},
        "checks": {},
        "cases": [],
        "sweep": [],
        "skipped": [],
    }
    result["checks"] = gpu_checks(device)
    print(json.dumps(result["checks"]), flush=True)
    write(result, out_path)
    w = projection(device).float()
    from torch.nn.attention import SDPBackend

    failed: set[tuple[str, str, bool]] = set()  # (impl, dtype, causal) that hit OOM
    for dtype in dtypes:
        if dtype == torch.float32:  # the bf16 cases and the memory sweep come first
            run_sweep(result, sweep, w, device, deadline, args, out_path)
        dname = str(dtype).replace("torch.", "")
        backend = (
            SDPBackend.FLASH_ATTENTION
            if dtype != torch.float32
            else (SDPBackend.EFFICIENT_ATTENTION)
        )
        if device.type == "cpu":
            backend = None  # the dry run uses whatever CPU kernel SDPA picks
        for causal in (True, False):
            for length in lengths:
                q, k, v = inputs(length, dtype, device)
                impls: dict[str, Callable[[], Any]] = {
                    "favor": lambda q=q, k=k, v=v, c=causal: favor_attention(
                        q, k, v, projection=w, causal=c
                    ),
                    "sdpa": lambda q=q, k=k, v=v, c=causal, b=backend: sdpa(q, k, v, c, b),
                }
                peer = performer_factory(causal, device) if not args.no_performer else None
                if peer is not None:
                    layer = peer[0].to(dtype)
                    impls["performer"] = lambda q=q, k=k, v=v, layer=layer: layer(q, k, v)
                for name, fn in impls.items():
                    key = (name, dname, causal)
                    tag = {"impl": name, "dtype": dname, "causal": causal, "L": length}
                    if key in failed:
                        result["skipped"].append(tag | {"why": "OOM at a smaller L"})
                        continue
                    if deadline.left() < args.reserve_s:
                        result["skipped"].append(tag | {"why": "deadline"})
                        continue
                    try:
                        with torch.inference_mode():
                            warm = time_device(fn, device, 1, 1)[0]
                            repeats = 5 if warm < 0.2 else 2 if warm < 2 else 1
                            samples = time_device(fn, device, 1 if warm < 2 else 0, repeats)
                            mem = peak_memory(fn, device)
                        case = tag | summary(samples) | {"peak_extra_bytes": mem}
                        if name == "sdpa":
                            case["backend"] = str(backend)
                        if name == "performer":
                            case["performer_path"] = peer[1]
                    except Exception as exc:  # OOM or unsupported kernel: record and move on
                        if is_oom(exc):
                            failed.add(key)
                        case = tag | {"error": f"{type(exc).__name__}: {exc}"[:300]}
                    free(device)
                    result["cases"].append(case)
                    print(json.dumps(case), flush=True)
                    write(result, out_path)
                del q, k, v, impls
                free(device)
    result["summary"] = gpu_summary(result)
    result["seconds_left_at_end"] = deadline.left()
    write(result, out_path)
    print(result["summary"], flush=True)
    return result


def run_sweep(
    result: dict[str, Any],
    sweep: list[int],
    w: torch.Tensor,
    device: torch.device,
    deadline: Deadline,
    args: argparse.Namespace,
    out_path: str,
) -> None:
    """Memory linearity: causal FAVOR+ in bf16, forward (inference) and forward + backward."""
    for train in (False, True):
        for length in sweep:
            tag = {
                "impl": "favor",
                "dtype": "bfloat16",
                "causal": True,
                "L": length,
                "train": train,
            }
            if deadline.left() < args.reserve_s:
                result["skipped"].append(tag | {"why": "deadline"})
                continue
            try:
                q, k, v = inputs(length, torch.bfloat16, device)
                if train:
                    for t in (q, k, v):
                        t.requires_grad_(True)

                    def fn(q=q, k=k, v=v):
                        favor_attention(q, k, v, projection=w, causal=True).float().sum().backward()

                    samples = time_device(fn, device, 0, 1)
                    mem = peak_memory(fn, device)
                else:
                    with torch.inference_mode():

                        def fn(q=q, k=k, v=v):
                            return favor_attention(q, k, v, projection=w, causal=True)

                        samples = time_device(fn, device, 1, 1)
                        mem = peak_memory(fn, device)
                case = tag | summary(samples) | {"peak_extra_bytes": mem}
                if mem is not None:
                    case["peak_extra_bytes_per_token"] = mem / length
            except Exception as exc:
                case = tag | {"error": f"{type(exc).__name__}: {exc}"[:300]}
                if is_oom(exc):
                    result["sweep"].append(case)
                    free(device)
                    break
            finally:
                q = k = v = None
                free(device)
            result["sweep"].append(case)
            print(json.dumps(case), flush=True)
            write(result, out_path)


def gpu_summary(result: dict[str, Any]) -> str:
    """Markdown: FAVOR+ vs SDPA (and performer) per dtype, direction and L; memory sweep."""
    rows = {}
    for c in result["cases"]:
        if "median_ms" in c:
            rows[(c["dtype"], c["causal"], c["L"], c["impl"])] = c["median_ms"]
    lines = [
        "| dtype | mode | L | FAVOR+ | SDPA | performer | SDPA / FAVOR+ |",
        "|---|---|---|---|---|---|---|",
    ]
    keys = sorted({(d, c, L) for d, c, L, _ in rows})
    for d, c, length in keys:
        f = rows.get((d, c, length, "favor"))
        s = rows.get((d, c, length, "sdpa"))
        p = rows.get((d, c, length, "performer"))
        ratio = f"{s / f:.2f}x" if f and s else "-"
        lines.append(
            f"| {d} | {'causal' if c else 'bidirectional'} | {length} | "
            f"{fmt(f) if f else '-'} | {fmt(s) if s else '-'} | {fmt(p) if p else '-'} | {ratio} |"
        )
    lines += [
        "",
        "| train | L | time | peak extra memory | bytes per token |",
        "|---|---|---|---|---|",
    ]
    for c in result["sweep"]:
        if "median_ms" in c:
            mem = c.get("peak_extra_bytes")
            per = c.get("peak_extra_bytes_per_token")
            lines.append(
                f"| {c['train']} | {c['L']} | {fmt(c['median_ms'])} | "
                f"{'-' if mem is None else f'{mem / 2**30:.2f} GiB'} | "
                f"{'-' if per is None else f'{per:.0f}'} |"
            )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--out", help="JSON path (CPU: also writes a .md table beside it)")
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096, 16384])
    parser.add_argument("--repeats", type=int, default=7, help="CPU rounds per case")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--heavy-s",
        type=float,
        default=3.0,
        help="CPU: a warm-up call slower than this is the only sample",
    )
    parser.add_argument(
        "--case-budget-s",
        type=float,
        default=20.0,
        help="CPU: stop adding rounds after this much timed work",
    )
    parser.add_argument("--no-performer", action="store_true")
    parser.add_argument("--dry-run", action="store_true", help="GPU code path on CPU at tiny sizes")
    parser.add_argument("--deadline", type=float, default=270.0, help="GPU: global time limit (s)")
    parser.add_argument(
        "--reserve-s",
        type=float,
        default=8.0,
        help="GPU: stop starting cases this close to the deadline",
    )
    parser.add_argument(
        "--gpu-lengths", type=int, nargs="+", default=[1024, 4096, 16384, 32768, 65536, 131072]
    )
    parser.add_argument(
        "--sweep-lengths", type=int, nargs="+", default=[65536, 131072, 262144, 524288, 1048576]
    )
    args = parser.parse_args(argv)
    if args.mode == "gpu" or args.dry_run:
        return run_gpu(args)
    return run_cpu(args)


if __name__ == "__main__":
    main()
