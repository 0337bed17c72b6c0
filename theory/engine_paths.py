r"""Claims E: every public engine path computes exactly the FAVOR estimator (exact identities).

Given the projection, FAVOR attention is a deterministic function of the inputs,
:math:`\hat D^{-1}\hat A V` (Performers Eq. 4; formulas §1.3), and
:mod:`theory.collapsed_forms` evaluates it from the collapsed kernel formulas without any
feature vector and without ``favor``. These checks compare every public path with that
oracle, so no statistics are needed and any deviation above rounding is a bug:

* :func:`check_feature_map_paths` -- one feature map: its public feature function (dot
  products, softmax and Gaussian kernels) and ``favor.favor_attention`` bidirectional,
  causal, with padding masks, in several chunks and with one projection per head, float64,
  with ``m`` not a multiple of ``d`` (a partial last block).
  Causal row ``t`` of the oracle *is* bidirectional attention over the prefix ``t``, and
  masked attention *is* attention over the unmasked keys, so these identities are the
  ones of formulas §1.3 [A1, A2].
* :func:`check_float32_paths` -- float32 inputs give float32 outputs within a stated
  bound of the float64 oracle on every map and mode.
* :func:`check_default_projection` -- a projection drawn by name inside the engine (the
  default ``"orthogonal"``, ``"iid"``, per head, and the decoding state's) is the one
  ``favor.sampling.draw_projection`` draws from the same seed, so the sampler claims (S)
  cover the default path.
* :func:`check_decoding` -- token-by-token ``favor.decode_step`` equals causal attention.
* :func:`check_torch_backend` -- ``favor.favor_attention`` on torch tensors equals the
  NumPy engine (float64) and the oracle (float32) when PyTorch is installed.

Tolerances: float64 paths must agree to :data:`FLOAT64_TOLERANCE` relative to the output
scale (rounding gives about 1e-15); float32 paths to :data:`FLOAT32_TOLERANCE` (about
200 units of float32 roundoff; rounding gives a few 1e-7). An epsilon of 1e-4 in a
feature or the normaliser moves outputs by about 1e-5 relative, far above both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from theory.collapsed_forms import COLLAPSED_MAPS, collapsed_attention, collapsed_kernel
from theory.results import ClaimCheck

__all__ = [
    "FLOAT32_TOLERANCE",
    "FLOAT64_TOLERANCE",
    "check_decoding",
    "check_default_projection",
    "check_feature_map_paths",
    "check_float32_paths",
    "check_torch_backend",
    "engine_inputs",
    "one_torch_thread",
]

#: Relative tolerance of the float64 identities (rounding: ~1e-15).
FLOAT64_TOLERANCE = 1e-10
#: Relative tolerance of float32 paths against the float64 oracle (rounding: ~3e-7).
FLOAT32_TOLERANCE = 1.2e-5

_SOURCE = "Performers Eq. 4 and Sec. 2.3; formulas §1.3 [A1, A2], §2.2-2.3 (exact identity)"


def engine_inputs(
    *,
    batch: int = 2,
    heads: int = 3,
    n_tokens: int = 37,
    n_features: int = 8,
    n_values: int = 5,
    seed: int = 3,
) -> dict[str, np.ndarray]:
    """Fixed inputs with varied token norms, a padding mask and a projection (m = 20, d = 8).

    The mask pads about 30% of the keys and always the first one, so a causal query sees
    no key at position 0 (a zero output row).

    Parameters
    ----------
    batch, heads, n_tokens, n_features, n_values : int
        Shapes ``(batch, heads, L, d)`` and ``d_v``.
    seed : int, default=3
        Seed of the fixed inputs.

    Returns
    -------
    dict
        ``queries``, ``keys``, ``values``, ``mask`` and ``projection`` (20 x d, one
        orthogonal block plus a partial one, drawn by NumPy) and ``projections``
        (heads x 20 x d).
    """
    rng = np.random.default_rng(seed)
    shape = (batch, heads, n_tokens, n_features)
    norms = rng.uniform(0.3, 1.2, size=(*shape[:-1], 1))
    m = 20
    return {
        "queries": 0.5 * rng.standard_normal(shape) * norms,
        "keys": 0.5 * rng.standard_normal(shape) * norms[..., ::-1, :],
        "values": rng.standard_normal((*shape[:-1], n_values)),
        "mask": np.concatenate(
            [np.ones((batch, heads, 1), bool), rng.random((batch, heads, n_tokens - 1)) < 0.3],
            axis=-1,
        ),
        "projection": rng.standard_normal((m, n_features)),
        "projections": rng.standard_normal((heads, m, n_features)),
    }


def _deviation(out: Any, ref: np.ndarray) -> float:
    out = np.asarray(out, dtype=np.float64)
    if out.shape != ref.shape or not np.all(np.isfinite(out)):
        return float("inf")
    return float(np.abs(out - ref).max() / max(np.abs(ref).max(), 1e-300))


def _exact(
    name: str,
    deviations: dict[str, float],
    tolerance: float,
    *,
    passed: bool = True,
    note: str = "",
    resolves: str = "output (relative to its scale)",
    data: dict[str, Any] | None = None,
    power: float | None = None,
) -> ClaimCheck:
    worst_path = max(deviations, key=deviations.get) if deviations else "none"
    worst = deviations.get(worst_path, 0.0)
    ok = passed and bool(deviations) and all(v <= tolerance for v in deviations.values())
    return ClaimCheck(
        name=name,
        source=_SOURCE,
        estimate=worst,
        interval=(worst, worst),
        alpha=0.0,
        n_trials=0,
        seed=-1,
        passed=ok,
        statistic=(
            f"max relative deviation {worst:.2e} ({worst_path}) over {len(deviations)} paths; "
            f"tolerance {tolerance:.1e}" + (f"; {note}" if note else "")
        ),
        target=0.0,
        data={"deviations": dict(deviations), **(data or {})},
        resolving_power=tolerance if power is None else power,
        resolves=resolves,
    )


def _attention_fn(attention: Callable[..., Any] | None) -> Callable[..., Any]:
    import favor

    return attention or favor.favor_attention


def check_feature_map_paths(
    feature_map: str = "positive",
    *,
    tolerance: float = FLOAT64_TOLERANCE,
    attention: Callable[..., Any] | None = None,
    name: str | None = None,
) -> ClaimCheck:
    r"""Every float64 path of one feature map equals the collapsed-form oracle.

    Parameters
    ----------
    feature_map : str, default="positive"
        A ``favor.registry.FEATURE_MAPS`` key with a collapsed form
        (:data:`theory.collapsed_forms.COLLAPSED_MAPS`).
    tolerance : float, default=FLOAT64_TOLERANCE
        Relative tolerance.
    attention : callable, optional
        Attention under test (default ``favor.favor_attention``).
    name : str, optional
        Claim name.

    Returns
    -------
    ClaimCheck
        Estimate: the largest relative deviation over the paths.
    """

    att = _attention_fn(attention)
    x = engine_inputs()
    q, k, v, mask, w = x["queries"], x["keys"], x["values"], x["mask"], x["projection"]
    dev: dict[str, float] = {}
    # The feature function: dot products against the collapsed kernel.
    from favor.features import random_features

    def fn(x: np.ndarray, w: np.ndarray, kernel: str) -> np.ndarray:
        return random_features(x, w, features=feature_map, kernel=kernel)

    pts = q[0, 0, :12]
    other = k[0, 0, :12]
    kernels = ("arccos",) if feature_map == "relu" else ("softmax", "rbf")
    for kern in kernels:
        est = fn(pts, w, kern) @ fn(other, w, kern).T
        ref = collapsed_kernel(feature_map, pts, other, w, kernel=kern)
        dev[f"features ({kern})"] = _deviation(est, ref)
    for causal in (False, True):
        for masked in (False, True):
            label = ("causal" if causal else "bidirectional") + (", masked" if masked else "")
            m_arg = mask if masked else None
            ref = collapsed_attention(
                feature_map, q, k, v, w, causal=causal, key_padding_mask=m_arg
            )
            out = att(q, k, v, projection=w, features=feature_map, causal=causal,
                      key_padding_mask=m_arg)  # fmt: skip
            dev[label] = _deviation(out, ref)
            out = att(q, k, v, projection=w, features=feature_map, causal=causal,
                      key_padding_mask=m_arg, chunk_size=8)  # fmt: skip
            dev[label + ", chunks of 8"] = _deviation(out, ref)
    ref = collapsed_attention(feature_map, q, k, v, x["projections"], causal=True,
                              key_padding_mask=mask)  # fmt: skip
    out = att(q, k, v, projection=x["projections"], per_head=True, features=feature_map,
              causal=True, key_padding_mask=mask)  # fmt: skip
    dev["causal, masked, per head"] = _deviation(out, ref)
    return _exact(
        name or f"{feature_map}: features and every float64 attention path = collapsed form",
        dev,
        tolerance,
        note=f"m = {w.shape[0]}, d = {w.shape[1]} (partial block)",
    )


def check_float32_paths(
    *,
    tolerance: float = FLOAT32_TOLERANCE,
    attention: Callable[..., Any] | None = None,
    name: str | None = None,
) -> ClaimCheck:
    """Float32 inputs: float32 outputs within ``tolerance`` of the float64 oracle, every map.

    Parameters
    ----------
    tolerance : float, default=FLOAT32_TOLERANCE
        Relative tolerance.
    attention : callable, optional
        Attention under test.
    name : str, optional
        Claim name.

    Returns
    -------
    ClaimCheck
        The largest relative deviation; fails also if an output dtype is wrong.
    """
    import favor

    att = _attention_fn(attention)
    x = engine_inputs()
    q, k, v, mask, w = x["queries"], x["keys"], x["values"], x["mask"], x["projection"]
    q32, k32, v32 = (a.astype(np.float32) for a in (q, k, v))
    dev: dict[str, float] = {}
    dtypes_ok = True
    for fmap in (f for f in favor.registry.FEATURE_MAPS if f in COLLAPSED_MAPS):
        for causal in (False, True):
            m_arg = mask if causal else None
            ref = collapsed_attention(fmap, q32, k32, v32, w, causal=causal, key_padding_mask=m_arg)
            out = att(q32, k32, v32, projection=w, features=fmap, causal=causal,
                      key_padding_mask=m_arg)  # fmt: skip
            dtypes_ok &= np.asarray(out).dtype == np.float32
            dev[f"{fmap} {'causal, masked' if causal else 'bidirectional'}"] = _deviation(out, ref)
    out64 = att(q, k, v, projection=w)
    dtypes_ok &= np.asarray(out64).dtype == np.float64
    return _exact(
        name or "float32 paths within the float32 bound of the float64 oracle",
        dev,
        tolerance,
        passed=bool(dtypes_ok),
        note="output dtypes " + ("kept" if dtypes_ok else "WRONG"),
    )


def check_default_projection(
    *,
    tolerance: float = FLOAT64_TOLERANCE,
    attention: Callable[..., Any] | None = None,
    name: str | None = None,
) -> ClaimCheck:
    """Projections drawn by name inside the engine are ``draw_projection``'s from the same seed.

    Parameters
    ----------
    tolerance : float, default=FLOAT64_TOLERANCE
        Relative tolerance.
    attention : callable, optional
        Attention under test.
    name : str, optional
        Claim name.

    Returns
    -------
    ClaimCheck
        The largest relative deviation.
    """
    import favor
    from favor.sampling import draw_projection

    att = _attention_fn(attention)
    x = engine_inputs()
    q, k, v = x["queries"], x["keys"], x["values"]
    d, heads = q.shape[-1], q.shape[-3]
    dev: dict[str, float] = {}
    w = draw_projection("orthogonal", 256, d, rng=np.random.default_rng(5))
    ref = collapsed_attention("positive", q, k, v, w)
    dev["default (orthogonal, m = 256)"] = _deviation(att(q, k, v, rng=5), ref)
    for sampler in favor.registry.SAMPLERS:
        w = draw_projection(sampler, 20, d, rng=np.random.default_rng(6))
        ref = collapsed_attention("positive", q, k, v, w, causal=True)
        out = att(q, k, v, projection=sampler, n_components=20, rng=6, causal=True)
        dev[f"{sampler}, m = 20, causal"] = _deviation(out, ref)
        # Per head: independent projections drawn in head order from one generator.
        g = np.random.default_rng(7)
        w = np.stack([draw_projection(sampler, 20, d, rng=g) for _ in range(heads)])
        ref = collapsed_attention("hyperbolic", q, k, v, w)
        out = att(q, k, v, projection=sampler, n_components=20, rng=7, per_head=True,
                  features="hyperbolic")  # fmt: skip
        dev[f"{sampler}, per head"] = _deviation(out, ref)
    state = favor.init_decoding_state(d, v.shape[-1], n_components=20, rng=8)
    w = draw_projection("orthogonal", 20, d, rng=np.random.default_rng(8))
    dev["decoding state"] = _deviation(np.asarray(state.projection).reshape(w.shape), w)
    return _exact(
        name or "projections drawn inside the engine are draw_projection's",
        dev,
        tolerance,
    )


def check_decoding(
    *,
    tolerance: float = FLOAT64_TOLERANCE,
    name: str | None = None,
) -> ClaimCheck:
    """Token-by-token decoding equals the causal oracle (every map, padding, per head).

    Parameters
    ----------
    tolerance : float, default=FLOAT64_TOLERANCE
        Relative tolerance.
    name : str, optional
        Claim name.

    Returns
    -------
    ClaimCheck
        The largest relative deviation.
    """
    import favor

    x = engine_inputs(n_tokens=12)
    q, k, v, mask = x["queries"], x["keys"], x["values"], x["mask"]
    dev: dict[str, float] = {}
    for fmap in (f for f in favor.registry.FEATURE_MAPS if f in COLLAPSED_MAPS):
        for per_head in (False, True):
            w = x["projections"] if per_head else x["projection"]
            state = favor.init_decoding_state(
                q.shape[-1], v.shape[-1], batch_shape=q.shape[:-2], projection=w,
                features=fmap, per_head=per_head,
            )  # fmt: skip
            rows = []
            for t in range(q.shape[-2]):
                out, state = favor.decode_step(
                    state, q[..., t, :], k[..., t, :], v[..., t, :],
                    key_padding_mask=mask[..., t],
                )  # fmt: skip
                rows.append(out)
            ref = collapsed_attention(fmap, q, k, v, w, causal=True, key_padding_mask=mask)
            dev[f"{fmap}{', per head' if per_head else ''}"] = _deviation(np.stack(rows, -2), ref)
    return _exact(name or "decoding step by step = causal attention", dev, tolerance)


def torch_available() -> bool:
    """Whether PyTorch can be imported (the torch backend is an optional extra).

    Returns
    -------
    bool
        True if ``import torch`` works.
    """
    import importlib.util

    return importlib.util.find_spec("torch") is not None


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch on one intra-op thread inside the block (PyTorch must be installed).

    The claims' tensors are small: waking torch's thread pool costs more than their ops.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def check_torch_backend(
    *,
    tolerance: float = FLOAT64_TOLERANCE,
    tolerance32: float = FLOAT32_TOLERANCE,
    name: str | None = None,
) -> ClaimCheck:
    """``favor.favor_attention`` on torch tensors equals the oracle (float64 and float32).

    Passes (as not applicable) when PyTorch is not installed.

    Parameters
    ----------
    tolerance, tolerance32 : float
        Relative tolerances for float64 and float32.
    name : str, optional
        Claim name.

    Returns
    -------
    ClaimCheck
        The largest relative deviation divided by its path's tolerance (so <= 1 passes).
    """

    name = name or "torch backend = collapsed form (float64 and float32)"
    if not torch_available():
        return _exact(name, {"torch not installed": 0.0}, 1.0, note="SKIPPED: no PyTorch")
    import torch

    x = engine_inputs()
    q, k, v, mask, w = x["queries"], x["keys"], x["values"], x["mask"], x["projection"]
    dev: dict[str, float] = {}
    raw: dict[str, tuple[float, float]] = {}
    with one_torch_thread():
        _torch_deviations(torch, q, k, v, mask, w, tolerance, tolerance32, dev, raw)
    return _exact(
        name,
        dev,
        1.0,
        note=f"deviations in units of the tolerance ({tolerance:.0e} float64, "
        f"{tolerance32:.1e} float32)",
        resolves=f"output; float32: {tolerance32:.1e}",
        power=tolerance,
        data={"raw": raw},
    )


def _torch_deviations(
    torch: Any,
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    mask: np.ndarray,
    w: np.ndarray,
    tolerance: float,
    tolerance32: float,
    dev: dict[str, float],
    raw: dict[str, tuple[float, float]],
) -> None:
    import favor

    for fmap in (f for f in favor.registry.FEATURE_MAPS if f in COLLAPSED_MAPS):
        for causal in (False, True):
            for masked in (False, True):
                m_arg = mask if masked else None
                ref = collapsed_attention(fmap, q, k, v, w, causal=causal, key_padding_mask=m_arg)
                for dtype, tol in ((torch.float64, tolerance), (torch.float32, tolerance32)):
                    t = [torch.from_numpy(a).to(dtype) for a in (q, k, v)]
                    tm = None if m_arg is None else torch.from_numpy(m_arg)
                    out = favor.favor_attention(*t, projection=w, features=fmap, causal=causal,
                                                key_padding_mask=tm)  # fmt: skip
                    ok_type = isinstance(out, torch.Tensor) and out.dtype == dtype
                    label = (
                        f"{fmap} {'causal' if causal else 'bidirectional'}"
                        f"{', masked' if masked else ''} {str(dtype)[6:]}"
                    )
                    value = _deviation(out.detach().numpy(), ref) if ok_type else float("inf")
                    dev[label] = value / tol
                    raw[label] = (value, tol)
