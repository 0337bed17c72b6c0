r"""Fixed ``"oprf"``/``"saderf"`` parameters for :class:`favor.torch.FavorAttention`.

Causal attention and decoding may not fit :math:`A^*` (and :math:`\Psi`) on the sequence
being attended (an output at position :math:`t` would depend on later positions;
:mod:`favor.gerf`), so a causal layer with these maps holds parameters fitted once on
calibration inputs: the layer's own per-head queries and keys of a calibration batch,
pooled over the batch, one set per head. They are constants of the estimator (NumPy
float64, no autograd): gradients flow through the rescaled queries and keys, not through
:math:`A` or :math:`\Psi`, as in the official FAVOR++ code. They do not follow later
changes of the layer's weights; calibrate again (like :meth:`FavorAttention.redraw`)
when the weights have moved.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from favor.gerf import GerfParameters, broadcast_parameters, fit_feature_params

__all__ = ["calibrated_parameters", "check_layer_params"]


def check_layer_params(features: str, feature_params: Any, num_heads: int, head_dim: int) -> Any:
    """``feature_params`` checked for a layer: None, or GerfParameters of ``features`` per head."""
    if feature_params is None:
        return None
    if not isinstance(feature_params, GerfParameters) or feature_params.features != features:
        raise ValueError(
            f"feature_params must be None or GerfParameters fitted for features={features!r} "
            f"(FavorAttention.calibrate), got {feature_params!r:.120}"
        )
    broadcast_parameters(
        feature_params,
        (num_heads,),
        head_dim,
        f"hold one set per head: a of shape ({num_heads},) or (), psi of shape "
        f"({num_heads}, {head_dim})",
    )
    return feature_params


def calibrated_parameters(
    features: str, q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None
) -> GerfParameters:
    """Per-head parameters from per-head calibration queries and keys ``(B, H, L, d_h)``.

    The batch is pooled: head ``h`` is fitted on all ``B * L`` of its queries and keys
    (padded keys, ``mask`` of shape ``(B, L_k)``, left out).
    """
    _batch, heads, _, d = q.shape

    def pooled(x: torch.Tensor) -> np.ndarray:
        return x.detach().to(torch.float64).transpose(0, 1).reshape(heads, -1, d).cpu().numpy()

    padding = None
    if mask is not None:
        padding = mask.detach().cpu().numpy().reshape(1, -1).repeat(heads, axis=0)
    return fit_feature_params(pooled(q), pooled(k), features=features, key_padding_mask=padding)
