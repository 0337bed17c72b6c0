"""Argument checks with one message style, and ``rng`` normalisation.

Every public function validates its arguments here, once, at the public boundary;
private helpers trust their inputs. Messages name the argument and say what was
expected, e.g. ``"n_components must be a positive integer, got 0"``.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Any, Union

import numpy as np

#: What every ``rng`` (functions) and ``random_state`` (scikit-learn estimators and
#: ``nn.Module`` constructors) accepts: a seed, a SeedSequence, a Generator or None.
RandomLike = Union[int, np.random.SeedSequence, np.random.Generator, None]  # noqa: UP007

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "RandomLike",
    "as_generator",
    "check_attention_inputs",
    "check_attention_shapes",
    "check_choice",
    "check_flag",
    "check_float_array",
    "check_mask_shape",
    "check_positive_int",
    "check_projection",
    "heads_of",
]


def as_generator(rng: Any, name: str = "rng") -> np.random.Generator:
    """Return a :class:`numpy.random.Generator` from ``None``, an int, a SeedSequence or a Generator.

    Parameters
    ----------
    rng : None, int, numpy.random.SeedSequence or numpy.random.Generator
        ``None`` draws fresh OS entropy; an int or SeedSequence seeds a new PCG64
        stream; a Generator is returned unchanged (it is shared, not copied).
    name : str, default="rng"
        The argument name used in error messages.

    Returns
    -------
    numpy.random.Generator
        The generator to draw from.
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, np.random.SeedSequence):
        return np.random.default_rng(rng)
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        if int(rng) < 0:
            raise ValueError(f"{name} must be a non-negative integer seed, got {rng}")
        return np.random.default_rng(int(rng))
    if isinstance(rng, np.random.RandomState):
        # scikit-learn style: derive a Generator deterministically from the legacy state.
        return np.random.default_rng(rng.randint(0, 2**31 - 1, size=4, dtype=np.int64))
    raise ValueError(
        f"{name} must be None, an int, a numpy.random.SeedSequence or a "
        f"numpy.random.Generator, got {type(rng).__name__}"
    )


def check_flag(name: str, value: Any) -> bool:
    """Return ``value`` as a bool if it is one (Python or NumPy), else raise ValueError."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_positive_int(name: str, value: Any) -> int:
    """Return ``value`` as an int, or raise ValueError naming ``name`` if it is not >= 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise ValueError listing them."""
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {listed}, got {value!r}")
    return value


def check_float_array(
    name: str,
    x: Any,
    *,
    min_ndim: int = 1,
    allow_empty: bool = False,
    finite: bool = True,
) -> np.ndarray:
    """Return ``x`` as a float32/float64 NumPy array after checking dtype, rank and finiteness.

    Integer and boolean arrays are rejected rather than silently cast: attention and
    feature maps keep the caller's precision, so the caller must choose it.

    Parameters
    ----------
    name : str
        The argument name used in error messages.
    x : array_like
        The input.
    min_ndim : int, default=1
        Minimum number of dimensions.
    allow_empty : bool, default=False
        Whether zero-size arrays are accepted.
    finite : bool, default=True
        Whether to check finiteness here (False: the caller calls :func:`finite_sq_bound`).

    Returns
    -------
    numpy.ndarray
        ``x`` as an array of dtype float32 or float64 (not copied when already one).
    """
    arr = np.asarray(x)
    if arr.dtype not in (np.float32, np.float64):
        raise ValueError(f"{name} must be a float32 or float64 array, got dtype {arr.dtype}")
    if arr.ndim < min_ndim:
        raise ValueError(
            f"{name} must have at least {min_ndim} dimension(s), got shape {arr.shape}"
        )
    if arr.size == 0 and not allow_empty:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    if finite and not np.isfinite(arr).all():
        raise ValueError(f"{name} must contain only finite values (no NaN or inf)")
    return arr


def finite_sq_bound(name: str, arr: np.ndarray) -> float:
    r"""Check that the float array ``arr`` is finite; return :math:`\sum_{ij} x_{ij}^2`.

    One BLAS dot product over the whole array (a single pass, the cost of
    ``isfinite(arr).all()``): NaN and inf propagate into it, and the total bounds every
    row's squared norm (:func:`favor._guards.check_norms`). When the total is not finite
    (a NaN or inf, or finite entries whose squares sum past the dtype's range) the entries
    are checked one by one and ``inf`` (no bound) is returned if they are all finite.
    Non-contiguous arrays get the element-wise check only.
    """
    if arr.size == 0:
        return 0.0
    total = np.inf
    if arr.flags.c_contiguous:
        flat = arr.reshape(-1)
        with np.errstate(over="ignore", invalid="ignore"):
            total = float(np.dot(flat, flat))
        if np.isfinite(total):
            return total
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must contain only finite values (no NaN or inf)")
    return np.inf


def check_projection(projection: Any, n_features: int, name: str = "projection") -> np.ndarray:
    """Check a prebuilt projection matrix of shape ``(n_components, n_features)``."""
    arr = check_float_array(name, projection, min_ndim=2)
    if arr.ndim != 2 or arr.shape[1] != n_features:
        raise ValueError(
            f"{name} must have shape (n_components, {n_features}) to match the inputs' "
            f"last axis, got shape {arr.shape}"
        )
    return arr


def check_attention_inputs(
    queries: Any,
    keys: Any,
    values: Any,
    key_padding_mask: Any = None,
    *,
    causal: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Validate NumPy attention inputs; return them as arrays (mask as bool or None).

    See :func:`check_attention_arrays`, which also returns bounds on the squared norms.
    """
    q, k, v, mask, _ = check_attention_arrays(
        queries, keys, values, key_padding_mask, causal=causal
    )
    return q, k, v, mask


def check_attention_arrays(
    queries: Any,
    keys: Any,
    values: Any,
    key_padding_mask: Any = None,
    *,
    causal: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, tuple[float, float]]:
    """Validate NumPy attention inputs; also return bounds on their squared row norms.

    The bounds are :func:`finite_sq_bound` of queries and keys (``inf`` when unknown).

    Rules: queries ``(..., L_q, d)``, keys ``(..., L_k, d)``, values ``(..., L_k, d_v)``
    with identical leading (batch/head) axes and one float dtype; ``causal`` needs
    ``L_q == L_k``; the mask is boolean with shape ``(..., L_k)``, the same number of
    leading axes as the inputs, each equal to the inputs' or 1 (so a ``(batch, L_k)``
    mask for ``(batch, heads, L, d)`` inputs must be passed as ``mask[:, None, :]``;
    NumPy's right-aligned broadcasting would otherwise silently pair batch with heads).
    """
    q = check_float_array("queries", queries, min_ndim=2, finite=False)
    bound_q = finite_sq_bound("queries", q)
    k = check_float_array("keys", keys, min_ndim=2, finite=False)
    bound_k = finite_sq_bound("keys", k)
    v = check_float_array("values", values, min_ndim=2)
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(
            f"queries, keys and values must share one dtype, got {q.dtype}, {k.dtype} and {v.dtype}"
        )
    check_attention_shapes(q.shape, k.shape, v.shape, causal=causal)
    mask = None
    if key_padding_mask is not None:
        mask = np.asarray(key_padding_mask)
        if mask.dtype != np.bool_:
            raise ValueError(
                f"key_padding_mask must be a boolean array (True marks a padded key), got "
                f"dtype {mask.dtype}"
            )
        check_mask_shape(mask.shape, k.shape[:-2], k.shape[-2])
    return q, k, v, mask, (bound_q, bound_k)


def check_attention_shapes(
    q_shape: tuple[int, ...],
    k_shape: tuple[int, ...],
    v_shape: tuple[int, ...],
    *,
    causal: bool,
) -> None:
    """Check the shape rules of attention inputs, for any array library.

    Queries ``(..., L_q, d)``, keys ``(..., L_k, d)``, values ``(..., L_k, d_v)`` with
    identical leading (batch/head) axes; ``causal`` needs ``L_q == L_k``. Shared by the
    NumPy engine and :mod:`favor.torch`, so both raise the same messages.
    """
    q_shape, k_shape, v_shape = tuple(q_shape), tuple(k_shape), tuple(v_shape)
    if q_shape[:-2] != k_shape[:-2] or k_shape[:-2] != v_shape[:-2]:
        raise ValueError(
            "queries, keys and values must have the same leading (batch/head) axes, got "
            f"shapes {q_shape}, {k_shape} and {v_shape}"
        )
    if q_shape[-1] != k_shape[-1]:
        raise ValueError(
            f"queries and keys must have the same last axis d, got {q_shape[-1]} and {k_shape[-1]}"
        )
    if k_shape[-2] != v_shape[-2]:
        raise ValueError(
            f"keys and values must have the same length L_k, got {k_shape[-2]} and {v_shape[-2]}"
        )
    if causal and q_shape[-2] != k_shape[-2]:
        raise ValueError(
            "causal attention needs queries and keys of the same length, got "
            f"L_q={q_shape[-2]} and L_k={k_shape[-2]}"
        )


def check_mask_shape(mask_shape: tuple[int, ...], lead: tuple[int, ...], n_keys: int) -> None:
    """Check that a key padding mask has shape ``(*lead, n_keys)``, leading axes equal or 1.

    The mask must have the inputs' number of leading axes: NumPy's and torch's
    right-aligned broadcasting would otherwise silently pair a ``(batch, L_k)`` mask's
    batch axis with the heads axis of ``(batch, heads, L, d)`` inputs.
    """
    mask_shape, lead = tuple(mask_shape), tuple(lead)
    if (
        len(mask_shape) != len(lead) + 1
        or mask_shape[-1] != n_keys
        or any(m not in (1, n) for m, n in zip(mask_shape[:-1], lead, strict=True))
    ):
        raise ValueError(
            f"key_padding_mask must have shape {(*lead, n_keys)} (leading axes may "
            f"be 1 to broadcast), got {mask_shape}; for (batch, heads, L, d) inputs "
            "pass a (batch, L_k) mask as mask[:, None, :]"
        )


#: Default rows per chunk of the NumPy engine's scans: bidirectional, causal.
DEFAULT_CHUNK_SIZE = {False: 512, True: 32}


def heads_of(shape: tuple[int, ...], per_head: bool) -> int | None:
    """The number of heads (the axis before ``L``) when ``per_head``, else None."""
    if not per_head:
        return None
    if len(shape) < 3:
        raise ValueError(
            "per_head=True needs inputs of shape (..., heads, L, d) with at least 3 "
            f"dimensions, got queries of shape {tuple(shape)}"
        )
    return int(shape[-3])
