"""Argument checks for tensors, in the message style of :mod:`favor._validation`.

Every public function of :mod:`favor.torch` validates here, once, at its boundary; the
private compute functions trust their inputs. Errors are ``ValueError`` naming the
argument and saying what was expected.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from favor._validation import check_attention_shapes, check_mask_shape, check_positive_int

__all__ = [
    "FLOAT_DTYPES",
    "check_attention_tensors",
    "check_chunk_size",
    "check_float_tensor",
    "check_key_padding_mask",
    "compute_dtype",
]

#: Accepted input dtypes; half types are computed in float32 (see :func:`compute_dtype`).
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Return the dtype the attention arithmetic runs in: float64 stays, all else float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def is_compiling() -> bool:
    # Data-dependent checks (finiteness) would break a torch.compile graph; skip them there.
    compiler = getattr(torch, "compiler", None)
    return compiler is not None and compiler.is_compiling()


def _all_finite(x: torch.Tensor) -> bool:
    """Whether every entry is finite, in one cheap reduction for the common case.

    A finite sum proves every entry finite (a NaN or inf entry makes the sum NaN or inf);
    only when the sum is not finite (a bad entry, or an overflow of finite values) does
    the exact test, the minimum and maximum, run.
    """
    if bool(torch.isfinite(x.sum())):
        return True
    low, high = torch.aminmax(x)
    return bool(torch.isfinite(low) & torch.isfinite(high))


def check_float_tensor(name: str, x: Any, *, min_ndim: int = 1) -> torch.Tensor:
    """Check that ``x`` is a non-empty, finite floating tensor with at least ``min_ndim`` axes."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise ValueError(
            f"{name} must be a float16, bfloat16, float32 or float64 tensor, got dtype {x.dtype}"
        )
    if x.ndim < min_ndim:
        raise ValueError(
            f"{name} must have at least {min_ndim} dimension(s), got shape {tuple(x.shape)}"
        )
    if x.numel() == 0:
        raise ValueError(f"{name} must not be empty, got shape {tuple(x.shape)}")
    message = f"{name} must contain only finite values (no NaN or inf)"
    if is_compiling():
        # No data-dependent branch in a compiled graph: an in-graph assertion instead
        # (the call fails with a RuntimeError carrying the same message).
        torch._assert_async(torch.isfinite(x).all(), message)
    elif not _all_finite(x):
        raise ValueError(message)
    return x


def check_key_padding_mask(
    key_padding_mask: Any, lead: tuple[int, ...], n_keys: int, device: torch.device
) -> torch.Tensor | None:
    """Check a boolean ``(..., L_k)`` mask whose leading axes equal ``lead`` or are 1."""
    if key_padding_mask is None:
        return None
    mask = key_padding_mask
    if isinstance(mask, np.ndarray):
        mask = torch.from_numpy(mask)
    if not isinstance(mask, torch.Tensor):
        raise ValueError(
            f"key_padding_mask must be a boolean tensor, got {type(key_padding_mask).__name__}"
        )
    if mask.dtype != torch.bool:
        raise ValueError(
            "key_padding_mask must be a boolean tensor (True marks a padded key), got "
            f"dtype {mask.dtype}"
        )
    check_mask_shape(tuple(mask.shape), lead, n_keys)
    return mask.to(device)


def check_attention_tensors(
    queries: Any, keys: Any, values: Any, key_padding_mask: Any = None, *, causal: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Validate tensor attention inputs with the rules of :func:`favor._validation.check_attention_inputs`.

    Queries ``(..., L_q, d)``, keys ``(..., L_k, d)``, values ``(..., L_k, d_v)``: one float
    dtype, one device, identical leading axes, ``L_q == L_k`` when causal, finite values;
    the mask is boolean ``(..., L_k)`` with the inputs' number of leading axes, each equal or 1.
    """
    q = check_float_tensor("queries", queries, min_ndim=2)
    k = check_float_tensor("keys", keys, min_ndim=2)
    v = check_float_tensor("values", values, min_ndim=2)
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(
            f"queries, keys and values must share one dtype, got {q.dtype}, {k.dtype} and {v.dtype}"
        )
    if not (q.device == k.device == v.device):
        raise ValueError(
            "queries, keys and values must be on one device, got "
            f"{q.device}, {k.device} and {v.device}"
        )
    check_attention_shapes(tuple(q.shape), tuple(k.shape), tuple(v.shape), causal=causal)
    mask = check_key_padding_mask(key_padding_mask, tuple(k.shape[:-2]), k.shape[-2], k.device)
    return q, k, v, mask


def check_chunk_size(chunk_size: Any) -> int | None:
    """Return ``chunk_size`` as a positive int, or None for the device default."""
    if chunk_size is None:
        return None
    return check_positive_int("chunk_size", chunk_size)


def check_tensor_norms(name: str, x: torch.Tensor, scale: float = 1.0) -> None:
    """Refuse a tensor whose squared norms (times ``scale**2``) overflow its dtype.

    The torch twin of :func:`favor._guards.check_norms` (same message); skipped while
    compiling (no data-dependent branches in a graph).
    """
    if is_compiling():
        return
    sq = (x * scale).square().sum(dim=-1)
    if not bool(torch.isfinite(sq).all()):
        largest = float(x.abs().max())
        raise ValueError(
            f"{name}: values too large, their squared norms overflow {x.dtype} (largest "
            f"entry {largest:.3g}); rescale them (FAVOR+ is accurate only for norms of "
            "order d**0.25 or less)"
        )


def check_finite_output(function: str, out: torch.Tensor, reason: str) -> None:
    """Raise :class:`FloatingPointError` if ``out`` (from finite inputs) is not finite."""
    if not is_compiling() and not bool(torch.isfinite(out).all()):
        raise FloatingPointError(
            f"{function} produced non-finite values from finite inputs: {reason}"
        )
