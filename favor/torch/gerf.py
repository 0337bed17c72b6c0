r"""``"oprf"`` and ``"saderf"`` attention on tensors: fitted parameters and the augmented inputs.

The tensor twin of :mod:`favor.gerf`. Per (batch..., head) group, :math:`A^*` (and the
SADERF rescaling :math:`\Psi`) are computed on the device from the moments of the inputs
(bidirectional) or taken from the caller's :class:`favor.gerf.GerfParameters` (causal,
where the sequence may not be used). Queries and keys are then rescaled and given a
constant coordinate 1, and the projection becomes the per-group
:math:`[\sqrt{1-4A}\,W,\ A\lVert\omega_r\rVert^2/s]`: the engine's positive path then
computes the GERF estimator exactly (:func:`favor.gerf.prepare_attention`).

Gradients. The fitted :math:`A` and :math:`\Psi` are computed from detached inputs: they
are constants of the estimator and carry no gradient (as in the official FAVOR++ code,
which applies ``stop_gradient`` to them). Gradients flow through the rescaled inputs and,
for a trainable projection, through :math:`W`.
"""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = ["gerf_split", "prepare"]


def _a_star(rho: torch.Tensor) -> torch.Tensor:
    rho = rho.clamp_min(0)
    return (1 - 2 * rho - torch.sqrt((2 * rho + 1) ** 2 + 8 * rho)) / 16


def _fit(
    q: torch.Tensor, k: torch.Tensor, weights: torch.Tensor | None, features: str, scale: float
) -> tuple[torch.Tensor, torch.Tensor | None]:
    from favor.gerf import FIT_POSITIONS, PSI_RANGE

    q = q.detach()
    k = k.detach()
    sq = max(1, q.shape[-2] // FIT_POSITIONS)
    sk = max(1, k.shape[-2] // FIT_POSITIONS)
    q = q[..., ::sq, :].double()
    k = k[..., ::sk, :].double()
    xx = (q * q).mean(dim=-2)
    mean_q = q.mean(dim=-2)
    if weights is None:
        yy = (k * k).mean(dim=-2)
        mean_k = k.mean(dim=-2)
    else:
        wk = weights[..., ::sk].double()
        count = wk.sum(dim=-1, keepdim=True).clamp_min(1)
        yy = (wk[..., None] * k * k).sum(dim=-2) / count
        mean_k = (wk[..., None] * k).sum(dim=-2) / count
    cross = (mean_q * mean_k).sum(dim=-1)
    psi = None
    if features == "saderf":
        ratio = torch.where(xx > 0, yy / xx.clamp_min(1e-300), torch.where(yy > 0, math.inf, 1.0))
        psi = ratio.pow(0.25).clamp(*PSI_RANGE)
        xx, yy = xx * psi**2, yy / psi**2
    rho = scale**2 * (xx.sum(dim=-1) + yy.sum(dim=-1) + 2 * cross) / q.shape[-1]
    return _a_star(rho), psi


def prepare(
    q: torch.Tensor,
    k: torch.Tensor,
    projection: torch.Tensor,
    mask: torch.Tensor | None,
    features: str,
    causal: bool,
    feature_params: Any,
    scale: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Augmented queries, keys and per-group projection for the positive path.

    Parameters
    ----------
    q, k : torch.Tensor of shape (..., L, d)
        Inputs in the compute dtype.
    projection : torch.Tensor of shape (m, d) or (H, m, d)
        The (unscaled) projection.
    mask : torch.Tensor of shape (..., L_k), optional
        True marks a padded key (left out of the fit).
    features : {"oprf", "saderf"}
        Which map.
    causal : bool
        Causal attention refuses to fit on the sequence.
    feature_params : favor.gerf.GerfParameters or None
        Caller-fixed parameters.
    scale : float
        :math:`s = d^{-1/4}`.

    Returns
    -------
    tuple of torch.Tensor
        ``(q', k', w')`` of shapes (..., L, d+1), (..., L_k, d+1), (..., m, d+1).
    """
    from favor.gerf import GerfParameters

    lead = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2])
    d = q.shape[-1]
    if feature_params is None:
        if causal:
            raise ValueError(
                f"features={features!r} with causal=True needs feature_params fixed in advance "
                "(e.g. favor.gerf.fit_feature_params(calibration_queries, calibration_keys, "
                f"features={features!r})): fitting them on the sequence itself would make "
                "early outputs depend on later positions"
            )
        weights = None
        if mask is not None:
            weights = (~mask).expand(*lead, k.shape[-2])
        a, psi = _fit(
            q.expand(*lead, *q.shape[-2:]), k.expand(*lead, *k.shape[-2:]), weights, features, scale
        )
    else:
        if not isinstance(feature_params, GerfParameters) or feature_params.features != features:
            raise ValueError(
                f"feature_params must be GerfParameters fitted for features={features!r}, "
                f"got {feature_params!r}"
            )
        try:
            a = torch.as_tensor(feature_params.a, device=q.device).expand(lead)
            psi = None
            if feature_params.psi is not None:
                psi = torch.as_tensor(feature_params.psi, device=q.device).expand(*lead, d)
        except RuntimeError:
            raise ValueError(
                f"feature_params must broadcast to the inputs' leading axes {tuple(lead)} "
                f"(and d={d}), got a of shape {feature_params.a.shape}"
            ) from None
    dtype = q.dtype
    a = a.to(dtype)
    ones_q = q.new_ones((*lead, q.shape[-2], 1))
    ones_k = k.new_ones((*lead, k.shape[-2], 1))
    if psi is not None:
        psi = psi.to(dtype)[..., None, :]
        q = q * psi
        k = k / psi
    q_aug = torch.cat([q.expand(*lead, *q.shape[-2:]), ones_q], dim=-1)
    k_aug = torch.cat([k.expand(*lead, *k.shape[-2:]), ones_k], dim=-1)
    ww = (projection * projection).sum(dim=-1)  # (m,) or (H, m)
    slope = torch.sqrt(1 - 4 * a)[..., None, None]
    bias = (a[..., None] * ww / scale)[..., None]
    w_aug = torch.cat([projection * slope, bias], dim=-1)
    return q_aug, k_aug, w_aug


def gerf_split(
    logits: torch.Tensor, half_sq_norms: torch.Tensor, params: torch.Tensor, is_key: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Registry split form: :math:`\psi = e^{t - \max t}`, :math:`t = b\ell + A\lVert\omega\rVert^2`.

    With the packed parameters of :func:`favor.gerf.pack_params`, log-scale
    :math:`a = \max t + \mathrm{log\_const} - h`, so :math:`e^a\psi` is the GERF feature
    vector (single projection; attention uses :func:`prepare` instead).
    """
    m = logits.shape[-1]
    a = params[0]
    exponent = torch.sqrt(1 - 4 * a) * logits + a * params[2 : 2 + m]
    top = exponent.amax(dim=-1, keepdim=True)
    return torch.exp(exponent - top), top[..., 0] + params[1] - half_sq_norms
