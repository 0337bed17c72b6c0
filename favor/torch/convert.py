"""Swap every attention layer of a model between softmax and FAVOR+, keeping the weights.

:func:`performerize` replaces each :class:`torch.nn.MultiheadAttention` in a model by a
:class:`~favor.torch.FavorAttention` with the same weights (Performers Sec. 4: a trained
Transformer's weights carry over to FAVOR+, which then recovers accuracy in a short
fine-tuning); :func:`restore_softmax` does the reverse. A round trip leaves every weight
bit for bit; only the random projections are new.
"""

from __future__ import annotations

from typing import Any, TypeVar

from torch import nn

from favor._validation import as_generator
from favor.torch.module import FavorAttention

__all__ = ["performerize", "restore_softmax"]

M = TypeVar("M", bound=nn.Module)


def _replace(model: nn.Module, kind: type, convert: Any) -> nn.Module:
    """Replace every submodule of type ``kind`` (found in ``named_modules`` order) by
    ``convert(module, index)``; a module shared by several parents is converted once."""
    if isinstance(model, kind):
        return convert(model, 0)
    done: dict[int, nn.Module] = {}
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, kind):
                if id(child) not in done:
                    done[id(child)] = convert(child, len(done))
                setattr(parent, name, done[id(child)])
    return model


def performerize(model: M, *, random_state: Any = None, **options: Any) -> M:
    """Replace every ``nn.MultiheadAttention`` in ``model`` by ``FavorAttention``, in place.

    Parameters
    ----------
    model : torch.nn.Module
        Any model (``nn.Transformer``, encoder/decoder stacks, custom modules). A bare
        ``nn.MultiheadAttention`` cannot be replaced in place; it is converted and the new
        layer returned.
    random_state : None, int, SeedSequence or numpy.random.Generator, default=None
        Seeds the projections: layer ``i`` (in ``model.named_modules()`` order) gets the
        ``i``-th generator spawned from it, so one seed gives the same model every time.
    **options
        FavorAttention's FAVOR+ options (``n_components``, ``features``, ``projection``,
        ``per_head``, ``redraw_interval``, ``chunk_size``, ``causal``), the same for every
        layer.

    Returns
    -------
    torch.nn.Module
        ``model`` itself (or the converted layer), with each attention layer replaced by
        :meth:`FavorAttention.from_multihead`: weights, ``requires_grad`` flags,
        train/eval mode, device and dtype kept.

    Notes
    -----
    The standard layers pass their masks through unchanged (padding masks, the causal
    mask idiom); a layer given any other ``attn_mask`` raises. An optimizer built before
    the swap holds the old parameter objects: build it after.

    Examples
    --------
    >>> import torch
    >>> from favor.torch import performerize
    >>> model = torch.nn.Transformer(16, 2, 1, 1, 32, batch_first=True)
    >>> model = performerize(model, n_components=32, random_state=0)
    >>> type(model.encoder.layers[0].self_attn).__name__
    'FavorAttention'
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    rng = as_generator(random_state, "random_state")

    def convert(mha: nn.MultiheadAttention, index: int) -> FavorAttention:
        (seed,) = rng.spawn(1)
        return FavorAttention.from_multihead(mha, random_state=seed, **options)

    return _replace(model, nn.MultiheadAttention, convert)


def restore_softmax(model: M) -> M:
    """Replace every ``FavorAttention`` in ``model`` by ``nn.MultiheadAttention``, in place.

    The inverse of :func:`performerize` for the weights: each layer becomes
    :meth:`FavorAttention.to_multihead` (weights, ``requires_grad`` flags, mode, device and
    dtype kept; the projection and redraw state dropped). A bare ``FavorAttention`` is
    converted and the new layer returned.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return _replace(model, FavorAttention, lambda layer, index: layer.to_multihead())
