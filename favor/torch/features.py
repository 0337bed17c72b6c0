r"""Random feature maps on tensors, and their stabilised split form for attention.

The public maps are the tensor twins of :mod:`favor.features` (same formulas, constants,
widths and kernels; formulas §2, Performers Sec. 2.3, Lemma 1): for a projection ``W`` of
shape ``(m, d)`` (or ``(H, m, d)`` broadcast against a head axis) they return
:math:`\varphi(x)` with :math:`\varphi(x)^T\varphi(y)` unbiased for the kernel.

Attention uses the *split form* instead. Every map factors as

.. math::
    \varphi(x) = c\, e^{a(x)}\, \psi(x), \qquad \max_i |\psi_i(x)| \le 1 \text{ (exponential maps)},

with a constant :math:`c` and a per-row log-scale :math:`a(x)`. In normalised attention the
constant cancels, and so does any factor common to one query row; so queries need only
:math:`\psi`, and keys need :math:`\psi` and :math:`a` (combined across keys with a shift
that cancels: one maximum per (batch, head) bidirectionally, a running maximum causally).
The log-scale is returned detached; its gradient is carried by :math:`\psi` through the
factor :math:`e^{a - \operatorname{stop}(a)}` (exactly 1 in value), so autograd sees the
true derivative of :math:`\varphi` while the values stay bounded.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from favor._validation import check_choice
from favor.torch._checks import check_float_tensor

__all__ = [
    "FEATURE_MAP_NAMES",
    "finite_or",
    "hyperbolic_features",
    "key_exponent",
    "key_features",
    "positive_features",
    "query_features",
    "random_features",
    "relu_features",
    "trigonometric_features",
]

FEATURE_MAP_NAMES = ("positive", "hyperbolic", "trigonometric", "relu")
EXPONENTIAL = ("positive", "hyperbolic")
_KERNELS = {
    "positive": ("softmax", "gaussian"),
    "hyperbolic": ("softmax", "gaussian"),
    "trigonometric": ("softmax", "gaussian"),
    "relu": ("arccos",),
}


def _logits(x: torch.Tensor, projection: torch.Tensor) -> torch.Tensor:
    # (..., d) @ (d, m), or (..., H, L, d) @ (H, d, m) for per-head projections.
    return torch.matmul(x, projection.transpose(-1, -2))


def _half_sq_norm(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (x * x).sum(dim=-1, keepdim=True)


# --------------------------------------------------------------------------- public maps


def _full(name: str, x: torch.Tensor, projection: torch.Tensor, kernel: str) -> torch.Tensor:
    m = projection.shape[-2]
    wx = _logits(x, projection)
    if name == "relu":
        return torch.relu(wx) * (1.0 / math.sqrt(m))
    half = _half_sq_norm(x)
    if name == "trigonometric":
        scale = torch.exp(half) if kernel == "softmax" else torch.ones_like(half)
        return torch.cat([torch.cos(wx), torch.sin(wx)], dim=-1) * (scale / math.sqrt(m))
    shift = half if kernel == "softmax" else 2 * half
    if name == "positive":
        return torch.exp(wx - shift - 0.5 * math.log(m))
    return torch.exp(torch.cat([wx, -wx], dim=-1) - shift - 0.5 * math.log(2 * m))


def _public(name: str) -> Callable[..., torch.Tensor]:
    default = _KERNELS[name][0]

    def feature_map(x: Any, projection: Any, *, kernel: str = default) -> torch.Tensor:
        x = check_float_tensor("x", x)
        projection = check_float_tensor("projection", projection, min_ndim=2)
        if projection.shape[-1] != x.shape[-1]:
            raise ValueError(
                f"projection must have shape (n_components, {x.shape[-1]}) to match x's last "
                f"axis, got shape {tuple(projection.shape)}"
            )
        check_choice("kernel", kernel, _KERNELS[name])
        projection = projection.to(device=x.device, dtype=x.dtype)
        return _full(name, x, projection, kernel)

    feature_map.__name__ = f"{name}_features"
    return feature_map


positive_features = _public("positive")
positive_features.__doc__ = r"""Positive random features (FAVOR+, Performers Lemma 1) on tensors.

:math:`\varphi(x) = m^{-1/2}\exp(Wx - \lVert x\rVert^2/2)` (``kernel="softmax"``) or with
:math:`\lVert x\rVert^2` subtracted (``kernel="gaussian"``); the twin of
:func:`favor.features.positive_features`.

Parameters
----------
x : torch.Tensor of shape (..., d)
    Inputs.
projection : torch.Tensor of shape (m, d)
    Projection rows, cast to ``x``'s dtype and device.
kernel : {"softmax", "gaussian"}, default="softmax"
    Which kernel the dot products estimate.

Returns
-------
torch.Tensor of shape (..., m)
    The features, differentiable in ``x`` and ``projection``.
"""

hyperbolic_features = _public("hyperbolic")
hyperbolic_features.__doc__ = r"""Hyperbolic features :math:`(2m)^{-1/2} e^{\pm Wx - \lVert x\rVert^2/2}` on tensors.

The twin of :func:`favor.features.hyperbolic_features` (Performers Sec. 2.3).

Parameters
----------
x : torch.Tensor of shape (..., d)
    Inputs.
projection : torch.Tensor of shape (m, d)
    Projection rows.
kernel : {"softmax", "gaussian"}, default="softmax"
    Which kernel the dot products estimate.

Returns
-------
torch.Tensor of shape (..., 2m)
    The features.
"""

trigonometric_features = _public("trigonometric")
trigonometric_features.__doc__ = r"""Trigonometric features :math:`h(x) m^{-1/2} (\cos Wx, \sin Wx)` on tensors.

The twin of :func:`favor.features.trigonometric_features`; :math:`h = e^{\lVert x\rVert^2/2}`
for the softmax kernel, 1 for the Gaussian kernel.

Parameters
----------
x : torch.Tensor of shape (..., d)
    Inputs.
projection : torch.Tensor of shape (m, d)
    Projection rows.
kernel : {"softmax", "gaussian"}, default="softmax"
    Which kernel the dot products estimate.

Returns
-------
torch.Tensor of shape (..., 2m)
    The features (possibly negative).
"""

relu_features = _public("relu")
relu_features.__doc__ = r"""ReLU features :math:`m^{-1/2}\mathrm{relu}(Wx)` (arc-cosine kernel) on tensors.

The twin of :func:`favor.features.relu_features`.

Parameters
----------
x : torch.Tensor of shape (..., d)
    Inputs.
projection : torch.Tensor of shape (m, d)
    Projection rows.
kernel : {"arccos"}, default="arccos"
    The only kernel these features estimate.

Returns
-------
torch.Tensor of shape (..., m)
    The non-negative features.
"""

_PUBLIC = {
    "positive": positive_features,
    "hyperbolic": hyperbolic_features,
    "trigonometric": trigonometric_features,
    "relu": relu_features,
}


def random_features(
    x: Any, projection: Any, *, feature_map: str = "positive", kernel: str | None = None
) -> torch.Tensor:
    """Apply the tensor feature map named ``feature_map`` (twin of :func:`favor.features.random_features`).

    Parameters
    ----------
    x : torch.Tensor of shape (..., d)
        Inputs.
    projection : torch.Tensor of shape (m, d)
        Projection rows.
    feature_map : {"positive", "hyperbolic", "trigonometric", "relu"}, default="positive"
        Which map.
    kernel : str, optional
        Which kernel to estimate; defaults to the map's first kernel.

    Returns
    -------
    torch.Tensor
        The features.
    """
    name = check_choice("feature_map", feature_map, FEATURE_MAP_NAMES)
    return _PUBLIC[name](x, projection, kernel=_KERNELS[name][0] if kernel is None else kernel)


# ----------------------------------------------------------------- split form for attention


def _directions(name: str, projection: torch.Tensor, scale: float) -> torch.Tensor:
    """``scale * W^T`` (``(d, m)`` or ``(H, d, m)``); hyperbolic stacks ``(W, -W)`` so one
    product gives both halves."""
    w = projection.transpose(-1, -2) * scale
    return torch.cat([w, -w], dim=-1) if name == "hyperbolic" else w


def _with_norm(
    x: torch.Tensor, w: torch.Tensor, coeff: float, out: torch.Tensor | None = None
) -> torch.Tensor:
    """``x @ w + coeff * |x|^2`` as one GEMM: ``[x, |x|^2] @ [w; coeff * 1]``.

    Appending the squared norm as an extra input column folds the per-row term into the
    product (no extra pass over the ``L x m`` result, no broadcast copy).
    """
    sq = torch.linalg.vecdot(x, x)[..., None]
    row = torch.full_like(w[..., :1, :], coeff)
    operands = (torch.cat([x, sq], dim=-1), torch.cat([w, row], dim=-2))
    return torch.matmul(*operands) if out is None else torch.matmul(*operands, out=out)


def query_features(
    name: str,
    x: torch.Tensor,
    projection: torch.Tensor,
    scale: float = 1.0,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Query features of ``scale * x`` up to a positive per-row factor (which cancels in attention).

    Exponential maps return :math:`\exp(\ell - \max_i \ell_i)` with :math:`\ell = W x'` (or
    :math:`(Wx', -Wx')`), :math:`x' = \text{scale}\cdot x`: a positive per-row multiple of
    :math:`\varphi(x')` (the row maximum is detached and the factor
    :math:`e^{-\lVert x'\rVert^2/2}` dropped), so attention outputs and their gradients are
    those of :math:`\varphi`;
    trigonometric returns :math:`(\cos Wx', \sin Wx')` and relu :math:`\mathrm{relu}(Wx')`.
    Unchecked (trusted inputs in the compute dtype). The scale is applied to the small
    projection, not to ``x``. ``out`` (no autograd) receives the product of an exponential
    map, so a caller can reuse a buffer instead of faulting in fresh pages.
    """
    w = _directions(name, projection, scale)
    wx = (
        torch.matmul(x, w)
        if out is None or name not in EXPONENTIAL
        else torch.matmul(x, w, out=out)
    )
    if name == "relu":
        return torch.relu(wx)
    if name == "trigonometric":
        return torch.cat([torch.cos(wx), torch.sin(wx)], dim=-1)
    # In place on the fresh product (autograd-safe: nothing saved is overwritten); on CPU
    # this measured faster than a fused softmax, which also pays for the row sums.
    return wx.sub_(wx.amax(dim=-1, keepdim=True).detach()).exp_()


def finite_or(x: torch.Tensor, fill: float) -> torch.Tensor:
    """``x`` with non-finite entries (``-inf`` log-scales of fully padded rows) set to ``fill``."""
    return torch.where(torch.isfinite(x), x, torch.full_like(x, fill))


def key_exponent(
    name: str,
    x: torch.Tensor,
    projection: torch.Tensor,
    mask: torch.Tensor | None,
    scale: float = 1.0,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""The exponent :math:`\ell - \lVert x'\rVert^2/2` of an exponential map, per key.

    :math:`\varphi(x') = c \exp(\ell - \lVert x'\rVert^2/2)` with :math:`x' = \text{scale}
    \cdot x` and :math:`\ell = Wx'` or :math:`(Wx', -Wx')` (positive, hyperbolic); one fused
    GEMM (into ``out`` when given; no autograd then). Rows of padded keys are ``-inf``.
    Unchecked.
    """
    exponent = _with_norm(x, _directions(name, projection, scale), -0.5 * scale * scale, out)
    if mask is not None:
        exponent = exponent.masked_fill_(mask[..., None], float("-inf"))
    return exponent


def key_features(
    name: str,
    x: torch.Tensor,
    projection: torch.Tensor,
    mask: torch.Tensor | None,
    scale: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Key features of ``scale * x`` in split form :math:`\varphi_j = c\, e^{a_j}\psi_j`: ``(psi, a)``.

    ``a`` of shape ``(..., L)`` is detached and ``-inf`` for a padded key. Exponential maps:
    :math:`a_j` is the row maximum of the exponent :math:`\ell_j - \lVert x'_j\rVert^2/2`,
    so :math:`0 < \psi \le 1`; trigonometric: :math:`a_j = \lVert x'_j\rVert^2/2` (softmax
    kernel) and :math:`\psi_j = e^{a_j - \operatorname{stop}(a_j)} (\cos, \sin)`; relu:
    :math:`a_j = 0`. ``psi`` carries the full gradient of
    :math:`\varphi / (c\,e^{\operatorname{stop}(a)})`. Unchecked (trusted inputs).
    """
    if name in EXPONENTIAL:
        exponent = key_exponent(name, x, projection, mask, scale)
        log_scale = exponent.amax(dim=-1).detach()
        return exponent.sub_(finite_or(log_scale, 0.0)[..., None]).exp_(), log_scale
    wx = torch.matmul(x, _directions(name, projection, scale))
    if name == "relu":
        psi, log_scale = torch.relu(wx), wx.new_zeros(wx.shape[:-1])
    else:
        half = (0.5 * scale * scale) * x.square().sum(dim=-1, keepdim=True)
        stop = half.detach()
        psi = torch.cat([torch.cos(wx), torch.sin(wx)], dim=-1) * torch.exp(half - stop)
        log_scale = stop.squeeze(-1)
    if mask is not None:
        log_scale = log_scale.masked_fill(mask, float("-inf"))
    return psi, log_scale
