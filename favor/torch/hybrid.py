r"""The angular hybrid features (``"hybrid"``) on tensors: the registry's torch split form.

The tensor twin of :mod:`favor._jit.hybrid_rows` (same shape rows and log-scales, see
there; formulas §6.5): logits with :math:`m + k` columns (base rows, then the
:math:`k` = ``params[0]`` sign rows), :math:`\varphi = e^{a}\psi`. Differentiable in the
logits; the signs :math:`\mathrm{sgn}(\omega'^T x)` are piecewise constant, so they
carry no gradient (their derivative is zero almost everywhere).
"""

from __future__ import annotations

import math

import torch

__all__ = ["hybrid_split"]


def hybrid_split(
    logits: torch.Tensor, half_sq_norms: torch.Tensor, params: torch.Tensor, is_key: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Hybrid map: :math:`\psi` of width :math:`4m(k+1)` and log-scale :math:`\max(r_{hyp}, r_{trig})`."""
    k = int(params[0])
    m = logits.shape[-1] - k
    base, angular = logits[..., :m], logits[..., m:]
    top = base.abs().amax(dim=-1, keepdim=True)
    h = half_sq_norms[..., None]
    r_hyp = top - h - 0.5 * math.log(2 * m)
    r_trig = h - 0.5 * math.log(m)
    best = torch.maximum(r_hyp, r_trig)
    hyp = torch.exp(torch.cat([base - top, -base - top], dim=-1) + (r_hyp - best))
    trig = torch.cat([torch.cos(base), torch.sin(base)], dim=-1) * torch.exp(r_trig - best)
    signs = torch.where(angular >= 0, 1.0, -1.0).to(logits.dtype) / math.sqrt(2.0 * k)
    head = torch.full_like(signs[..., :1], math.sqrt(0.5))
    coef_hyp = torch.cat([head, signs if is_key else -signs], dim=-1)
    coef_trig = torch.cat([head, signs], dim=-1)

    def outer(coef: torch.Tensor, part: torch.Tensor) -> torch.Tensor:
        return (coef[..., :, None] * part[..., None, :]).flatten(-2)

    psi = torch.cat([outer(coef_hyp, hyp), outer(coef_trig, trig)], dim=-1)
    return psi, best[..., 0]
