r"""The masks of ``nn.MultiheadAttention``, read the way FAVOR+ can honour them.

FAVOR+ factorises attention as :math:`\varphi(Q)\,(\varphi(K)^T V)`: it never forms the
``L x S`` matrix, so it can apply exactly two kinds of mask (formulas §1.3):

* a **key padding mask** (a key removed from every query's numerator and normaliser), given
  as PyTorch gives it: boolean (True marks a padded key) or additive float (``0`` keeps a
  key, ``-inf`` removes it; the standard Transformer layers convert boolean masks to this
  form before calling their attention module);
* the **causal mask** (query :math:`t` sees keys :math:`j \le t`), computed by a prefix
  scan; an ``attn_mask`` is accepted only when it is exactly causal, boolean
  (``triu(ones, 1)``, True = not allowed) or float (``0`` on and below the diagonal,
  ``-inf`` above, as :meth:`torch.nn.Transformer.generate_square_subsequent_mask`).

Anything else (an arbitrary attention pattern, finite additive biases) would need the
matrix, so it is refused with a ValueError rather than approximated.

Every check that depends on tensor *values* goes through :func:`require`: a ValueError in
eager mode, and under :func:`torch.compile` an asynchronous assertion inside the compiled
graph (``torch._assert_async``; a RuntimeError with the same message), so a compiled model
keeps the checks without graph breaks. Decisions never depend on values: a given
``attn_mask`` always means "causal", and the assertion proves it is.
"""

from __future__ import annotations

from typing import Any

import torch

from favor.torch._checks import is_compiling

__all__ = ["causal_from_attn_mask", "padding_mask", "require"]


def require(condition: torch.Tensor, message: str) -> None:
    """Raise ``ValueError(message)`` unless the 0-d boolean tensor ``condition`` is True.

    Under :func:`torch.compile` the check is an in-graph ``torch._assert_async``: it fails
    the call with a RuntimeError carrying ``message`` instead of breaking the graph.
    """
    if is_compiling():
        torch._assert_async(condition, message)
    elif not bool(condition):
        raise ValueError(message)


def padding_mask(
    mask: Any, batch: int, n_keys: int, device: torch.device, *, name: str = "key_padding_mask"
) -> torch.Tensor | None:
    """Return a key padding mask as a boolean ``(batch, n_keys)`` tensor (True = padded).

    Parameters
    ----------
    mask : None or tensor of shape (batch, n_keys)
        Boolean (True marks a padded key) or float with entries ``0`` (keep) and ``-inf``
        (padded). Finite nonzero entries are additive biases, which FAVOR+ cannot apply
        exactly, so they are refused.
    batch, n_keys : int
        The expected shape.
    device : torch.device
        Where the result goes.
    name : str, default="key_padding_mask"
        The argument name used in error messages.
    """
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor):
        raise ValueError(f"{name} must be a boolean or float tensor, got {type(mask).__name__}")
    if tuple(mask.shape) != (batch, n_keys):
        raise ValueError(
            f"{name} must have shape (batch, source length) = ({batch}, {n_keys}), "
            f"got {tuple(mask.shape)}"
        )
    if mask.dtype == torch.bool:
        return mask.to(device)
    if not mask.is_floating_point():
        raise ValueError(
            f"{name} must be a boolean tensor (True marks a padded key) or a float tensor of "
            f"0 and -inf, got dtype {mask.dtype}"
        )
    removed = mask == float("-inf")
    require(
        (removed | (mask == 0)).all(),
        f"{name} as a float tensor must contain only 0 (keep) and -inf (padded key): FAVOR+ "
        "supports padding and causal masks, not additive attention biases",
    )
    return removed.to(device)


def causal_from_attn_mask(attn_mask: Any, n_queries: int, n_keys: int, n_batch_heads: int) -> bool:
    """Check that ``attn_mask`` is exactly causal; return whether a mask was given.

    Parameters
    ----------
    attn_mask : None or tensor of shape (L, S) or (n_batch_heads, L, S)
        Boolean (True = not allowed) or float (additive) attention mask.
    n_queries, n_keys : int
        ``L`` and ``S``; a causal mask needs ``L == S``.
    n_batch_heads : int
        ``batch * num_heads`` (``num_heads`` for unbatched inputs): the leading size a 3-D
        mask must have, as in ``nn.MultiheadAttention``.

    Returns
    -------
    bool
        True when a (causal) mask was given, False for None.

    Raises
    ------
    ValueError
        For a mask of another shape or dtype, or one that is not exactly causal (under
        :func:`torch.compile` the value check is an in-graph assertion, see :func:`require`).
    """
    if attn_mask is None:
        return False
    if not isinstance(attn_mask, torch.Tensor):
        raise ValueError(f"attn_mask must be None or a tensor, got {type(attn_mask).__name__}")
    shape = tuple(attn_mask.shape)
    if shape not in ((n_queries, n_keys), (n_batch_heads, n_queries, n_keys)):
        raise ValueError(
            f"attn_mask must have shape (L, S) = ({n_queries}, {n_keys}) or (batch * "
            f"num_heads, L, S) = ({n_batch_heads}, {n_queries}, {n_keys}), got {shape}"
        )
    unsupported = (
        "attn_mask must be exactly causal (True or -inf above the diagonal, False or 0 on "
        "and below it, as nn.Transformer.generate_square_subsequent_mask): FAVOR+ supports "
        "only causal and key padding masks (use key_padding_mask for padding)"
    )
    if n_queries != n_keys:
        raise ValueError(
            f"{unsupported}; a causal mask needs L == S, got L={n_queries}, S={n_keys}"
        )
    if attn_mask.dtype != torch.bool and not attn_mask.is_floating_point():
        raise ValueError(
            f"attn_mask must be a boolean or float tensor, got dtype {attn_mask.dtype}"
        )
    future = torch.ones(n_queries, n_keys, dtype=torch.bool, device=attn_mask.device).triu_(1)
    if attn_mask.dtype == torch.bool:
        exact = attn_mask == future
    else:
        exact = torch.where(future, attn_mask == float("-inf"), attn_mask == 0)
    require(exact.all(), unsupported)
    return True
