r"""Random feature maps on tensors, and their stabilised split form for attention.

Each map's tensor formula is written once, as its *split form* (the ``torch`` entry of
:data:`favor.registry.FEATURE_MAPS`): ``split(logits, half_sq_norms, params, is_key) ->
(psi, log_scale)`` with :math:`\varphi(x) = e^{a(x)} \psi(x)` exactly, for logits
:math:`\ell = W x` and :math:`h = \lVert x\rVert^2/2`. The public maps are derived from it:
:math:`\varphi = e^{a}\psi` for the softmax (or arc-cosine) kernel and
:math:`e^{a - h}\psi` for the ``rbf`` kernel (:math:`K(x, y) = e^{-\lVert x\rVert^2/2}
\mathrm{SM}(x, y) e^{-\lVert y\rVert^2/2}`, formulas §1.1); they are the tensor twins of
:mod:`favor.features` (same widths, kernels and values; formulas §2, Performers Sec. 2.3,
Lemma 1). For a projection ``W`` of shape ``(m, d)`` (or ``(H, m, d)`` broadcast against a
head axis) they return :math:`\varphi(x)` with :math:`\varphi(x)^T\varphi(y)` unbiased
for the kernel.

Attention uses the split form directly. Every map factors as

.. math::
    \varphi(x) = c\, e^{a(x)}\, \psi(x), \qquad \max_i |\psi_i(x)| \le 1 \text{ (exponential maps)},

with a constant :math:`c` and a per-row log-scale :math:`a(x)`. In normalised attention the
constant cancels, and so does any factor common to one query row; so queries need only
:math:`\psi`, and keys need :math:`\psi` and :math:`a` (combined across keys with a shift
that cancels: one maximum per (batch, head) bidirectionally, a running maximum causally).
The key log-scale is returned detached; its gradient is carried by :math:`\psi` through the
factor :math:`e^{a - \operatorname{stop}(a)}` (exactly 1 in value), so autograd sees the
true derivative of :math:`\varphi` while the values stay bounded. Maps of the exponential
family (``exponent_signs`` in the registry: positive, hyperbolic) take a fused path: one
GEMM gives the whole exponent :math:`\sigma W x - \lVert x\rVert^2/2` (the same formula,
evaluated without materialising the logits twice).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from favor._validation import check_choice
from favor.registry import FEATURE_MAPS, FeatureMap, feature_map
from favor.torch._checks import check_float_tensor, check_tensor_norms

__all__ = [
    "finite_or",
    "hyperbolic_features",
    "hyperbolic_split",
    "key_exponent",
    "key_features",
    "map_params",
    "positive_features",
    "positive_split",
    "query_features",
    "random_features",
    "relu_features",
    "relu_split",
    "trigonometric_features",
    "trigonometric_split",
]


# ------------------------------------------------------------------ split forms (formulas)


def _exponential_split(
    logits: torch.Tensor, half_sq_norms: torch.Tensor, signs: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    # phi = (2^{|signs|-1} m)^{-1/2} exp(sigma l - h), stacked over sigma; psi = exp(. - max).
    m = logits.shape[-1]
    stacked = logits if signs == (1,) else torch.cat([s * logits for s in signs], dim=-1)
    top = stacked.amax(dim=-1, keepdim=True)
    log_scale = top[..., 0] - half_sq_norms - 0.5 * math.log(len(signs) * m)
    return torch.exp(stacked - top), log_scale


def positive_split(
    logits: torch.Tensor, half_sq_norms: torch.Tensor, params: torch.Tensor, is_key: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Positive map: :math:`\psi = e^{\ell - \max\ell}`, :math:`a = \max\ell - h - \frac12\log m`."""
    return _exponential_split(logits, half_sq_norms, (1,))


def hyperbolic_split(
    logits: torch.Tensor, half_sq_norms: torch.Tensor, params: torch.Tensor, is_key: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Hyperbolic map: :math:`\psi = e^{\pm\ell - M}`, :math:`a = M - h - \frac12\log 2m`."""
    return _exponential_split(logits, half_sq_norms, (1, -1))


def trigonometric_split(
    logits: torch.Tensor, half_sq_norms: torch.Tensor, params: torch.Tensor, is_key: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Trigonometric map: :math:`\psi = (\cos\ell, \sin\ell)`, :math:`a = h - \frac12\log m`."""
    m = logits.shape[-1]
    psi = torch.cat([torch.cos(logits), torch.sin(logits)], dim=-1)
    return psi, half_sq_norms - 0.5 * math.log(m)


def relu_split(
    logits: torch.Tensor, half_sq_norms: torch.Tensor, params: torch.Tensor, is_key: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""ReLU map: :math:`\psi = \mathrm{relu}(\ell)`, :math:`a = -\frac12\log m`."""
    m = logits.shape[-1]
    return torch.relu(logits), torch.full_like(half_sq_norms, -0.5 * math.log(m))


# --------------------------------------------------------------------------- helpers


def _logits(x: torch.Tensor, projection: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    # (..., d) @ (d, m), or (..., H, L, d) @ (H, d, m) for per-head projections.
    w = projection.transpose(-1, -2)
    return torch.matmul(x, w * scale if scale != 1.0 else w)


def _half_sq_norms(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    return (0.5 * scale * scale) * (x * x).sum(dim=-1)


def map_params(
    spec: FeatureMap, x: torch.Tensor | None, projection: torch.Tensor, like: torch.Tensor
) -> torch.Tensor:
    """The map's data-fitted parameters as a tensor (empty for maps without).

    ``x`` is the pooled scaled data, or None where the data may not be used (causal);
    the registry hook computes on the host in float64.
    """
    if spec.params is None and not spec.sign_rows:
        return like.new_zeros(0)
    data = None if x is None else x.detach().reshape(-1, x.shape[-1]).cpu().double().numpy()
    params = spec.fit_params(data, projection.detach().cpu().double().numpy())
    return torch.as_tensor(params, dtype=like.dtype, device=like.device)


# --------------------------------------------------------------------------- public maps


def random_features(
    x: Any,
    projection: Any,
    *,
    features: str = "positive",
    kernel: str | None = None,
) -> torch.Tensor:
    """Apply the map ``features`` to tensors (twin of :func:`favor.features.random_features`).

    Parameters
    ----------
    x : torch.Tensor of shape (..., d)
        Inputs.
    projection : torch.Tensor of shape (m, d)
        Projection rows, cast to ``x``'s dtype and device.
    features : str, default="positive"
        Which map (:data:`favor.registry.FEATURE_MAPS`).
    kernel : str, optional
        Which kernel to estimate; defaults to the map's first kernel.

    Returns
    -------
    torch.Tensor of shape (..., width)
        The features, differentiable in ``x`` and ``projection``.
    """
    spec = feature_map(features)
    x = check_float_tensor("x", x)
    projection = check_float_tensor("projection", projection, min_ndim=2)
    if projection.shape[-1] != x.shape[-1]:
        raise ValueError(
            f"projection must have shape (n_components, {x.shape[-1]}) to match x's last "
            f"axis, got shape {tuple(projection.shape)}"
        )
    kernel = check_choice("kernel", spec.kernels[0] if kernel is None else kernel, spec.kernels)
    projection = projection.to(device=x.device, dtype=x.dtype)
    if kernel != "arccos":  # the exponential maps use |x|^2 (formulas §2.4)
        check_tensor_norms("x", x)
    half = _half_sq_norms(x)
    params = map_params(spec, x, projection, x)
    psi, log_scale = spec.torch_split()(_logits(x, projection), half, params, False)
    if kernel == "rbf":  # K = e^{-|x|^2/2} SM e^{-|y|^2/2} (formulas §1.1)
        log_scale = log_scale - half
    return torch.exp(log_scale)[..., None] * psi


def _public(name: str, kernels: str, doc: str) -> Any:
    def feature_map_function(
        x: Any, projection: Any, *, kernel: str = FEATURE_MAPS[name].kernels[0]
    ) -> torch.Tensor:
        return random_features(x, projection, features=name, kernel=kernel)

    feature_map_function.__name__ = feature_map_function.__qualname__ = f"{name}_features"
    feature_map_function.__doc__ = (
        doc
        + f"""
Parameters
----------
x : torch.Tensor of shape (..., d)
    Inputs.
projection : torch.Tensor of shape (m, d)
    Projection rows, cast to ``x``'s dtype and device.
kernel : {kernels}, default="{FEATURE_MAPS[name].kernels[0]}"
    Which kernel the dot products estimate.

Returns
-------
torch.Tensor
    The features, differentiable in ``x`` and ``projection``.
"""
    )
    return feature_map_function


positive_features = _public(
    "positive",
    '{"softmax", "rbf"}',
    r"""Positive random features (FAVOR+, Performers Lemma 1) on tensors.

:math:`\varphi(x) = m^{-1/2}\exp(Wx - \lVert x\rVert^2/2)` (``kernel="softmax"``) or with
:math:`\lVert x\rVert^2` subtracted (``kernel="rbf"``); the twin of
:func:`favor.features.positive_features`.
""",
)
hyperbolic_features = _public(
    "hyperbolic",
    '{"softmax", "rbf"}',
    r"""Hyperbolic features :math:`(2m)^{-1/2} e^{\pm Wx - \lVert x\rVert^2/2}` on tensors.

The twin of :func:`favor.features.hyperbolic_features` (Performers Sec. 2.3).
""",
)
trigonometric_features = _public(
    "trigonometric",
    '{"softmax", "rbf"}',
    r"""Trigonometric features :math:`h(x) m^{-1/2} (\cos Wx, \sin Wx)` on tensors.

The twin of :func:`favor.features.trigonometric_features`; :math:`h = e^{\lVert x\rVert^2/2}`
for the softmax kernel, 1 for the ``rbf`` kernel.
""",
)
relu_features = _public(
    "relu",
    '{"arccos"}',
    r"""ReLU features :math:`m^{-1/2}\mathrm{relu}(Wx)` (arc-cosine kernel) on tensors.

The twin of :func:`favor.features.relu_features`.
""",
)


# ----------------------------------------------------------------- split form for attention


def _directions(signs: tuple[int, ...], projection: torch.Tensor, scale: float) -> torch.Tensor:
    """``scale * W^T`` stacked over the signs (``(d, m|signs|)`` or ``(H, d, m|signs|)``),
    so one product gives every half of an exponential map."""
    w = projection.transpose(-1, -2) * scale
    return w if signs == (1,) else torch.cat([s * w for s in signs], dim=-1)


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
    params: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Query features of ``scale * x`` up to a positive per-row factor (which cancels in attention).

    The map's :math:`\psi` (its split form with ``is_key=False``): a positive per-row
    multiple of :math:`\varphi(x')`, :math:`x' = \text{scale}\cdot x`, so attention outputs
    and their gradients are those of :math:`\varphi`. Exponential maps take the fused path
    :math:`\exp(\ell - \max_i \ell_i)` (row maximum detached), with the product written into
    ``out`` when given (no autograd), so a caller can reuse a buffer instead of faulting in
    fresh pages. Unchecked (trusted inputs in the compute dtype).
    """
    spec = feature_map(name)
    signs = spec.exponent_signs
    if signs is None:
        params = x.new_zeros(0) if params is None else params
        psi, _ = spec.torch_split()(
            _logits(x, projection, scale), _half_sq_norms(x, scale), params, False
        )
        return psi
    w = _directions(signs, projection, scale)
    wx = torch.matmul(x, w) if out is None else torch.matmul(x, w, out=out)
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
    r"""The exponent :math:`\sigma\ell - \lVert x'\rVert^2/2` of an exponential-family map, per key.

    :math:`\varphi(x') = c \exp(\sigma \ell - \lVert x'\rVert^2/2)` with :math:`x' = \text{scale}
    \cdot x`, :math:`\ell = Wx'`, stacked over the map's ``exponent_signs``; one fused GEMM
    (into ``out`` when given; no autograd then). Rows of padded keys are ``-inf``. Unchecked.
    """
    signs = feature_map(name).exponent_signs
    exponent = _with_norm(x, _directions(signs, projection, scale), -0.5 * scale * scale, out)
    if mask is not None:
        exponent = exponent.masked_fill_(mask[..., None], float("-inf"))
    return exponent


def key_features(
    name: str,
    x: torch.Tensor,
    projection: torch.Tensor,
    mask: torch.Tensor | None,
    scale: float = 1.0,
    params: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Key features of ``scale * x`` in split form :math:`\varphi_j = c\, e^{a_j}\psi_j`: ``(psi, a)``.

    ``a`` of shape ``(..., L)`` is detached and ``-inf`` for a padded key; ``psi`` carries
    the full gradient of :math:`\varphi / (c\,e^{\operatorname{stop}(a)})` through the
    factor :math:`e^{a - \operatorname{stop}(a)}`. Exponential maps: :math:`a_j` is the row
    maximum of the exponent, so :math:`0 < \psi \le 1`. Unchecked (trusted inputs).
    """
    spec = feature_map(name)
    if spec.exponent_signs is not None:
        exponent = key_exponent(name, x, projection, mask, scale)
        log_scale = exponent.amax(dim=-1).detach()
        return exponent.sub_(finite_or(log_scale, 0.0)[..., None]).exp_(), log_scale
    params = x.new_zeros(0) if params is None else params
    psi, log_scale = spec.torch_split()(
        _logits(x, projection, scale), _half_sq_norms(x, scale), params, True
    )
    stop = log_scale.detach()
    psi = psi * torch.exp(log_scale - stop)[..., None]
    if mask is not None:
        stop = stop.masked_fill(mask, float("-inf"))
    return psi, stop
