r"""Deliberately broken variants for negative controls.

A check that cannot fail proves nothing. Each claim's check accepts a sampler or a feature
map (or an attention function), and the tests feed it one of these broken variants and
assert that it *fails*:

* :func:`scaled_feature_map` -- features multiplied by a constant (1.05): the kernel
  estimate is off by :math:`1.05^2`;
* :func:`unsigned_orthogonal_projection` -- orthogonal blocks from QR *without* the
  :math:`\operatorname{sign}(\operatorname{diag} R)` fix (not Haar; biases positive
  features, formulas §3.1 [C4a]);
* :func:`fixed_norm_sampler` -- any sampler's rows rescaled to length :math:`\sqrt d`
  where chi norms are claimed (estimates SMREG / a Bessel-J kernel, formulas §2.5, 3.1);
* :func:`epsilon_attention` -- FAVOR+ attention with :math:`\varphi + \varepsilon` (the
  official code's numerical stabiliser, formulas §1.4): biases attention towards uniform.

These live in :mod:`theory` only; favor itself offers none of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from theory.montecarlo import resolve_feature_map, resolve_sampler

__all__ = [
    "epsilon_attention",
    "fixed_norm_sampler",
    "scaled_feature_map",
    "unsigned_orthogonal_projection",
]


def scaled_feature_map(name: str = "positive", factor: float = 1.05) -> Callable[..., np.ndarray]:
    """Return favor's feature map ``name`` multiplied by ``factor`` (kernel bias ``factor**2``).

    Parameters
    ----------
    name : str, default="positive"
        A ``favor.registry.FEATURE_MAPS`` key.
    factor : float, default=1.05
        The scale.

    Returns
    -------
    callable
        ``f(x, projection, kernel)``.
    """
    base = resolve_feature_map(name)

    def scaled(x: np.ndarray, projection: np.ndarray, kernel: str) -> np.ndarray:
        return factor * base(x, projection, kernel)

    return scaled


def unsigned_orthogonal_projection(
    n_components: int, n_features: int, *, rng: Any = None
) -> np.ndarray:
    """Block-orthogonal chi-norm rows from LAPACK QR **without** the sign fix (not Haar).

    Parameters
    ----------
    n_components : int
        Rows.
    n_features : int
        Columns ``d``.
    rng : numpy.random.Generator or int, optional
        Source of randomness.

    Returns
    -------
    numpy.ndarray of shape (n_components, n_features)
        The (biased) projection.
    """
    rng = np.random.default_rng(rng)
    n_blocks = -(-n_components // n_features)
    gauss = rng.standard_normal((n_blocks, n_features, n_features))
    q = np.linalg.qr(gauss)[0]
    rows = np.swapaxes(q, -1, -2).reshape(-1, n_features)[:n_components]
    return rows * np.sqrt(rng.chisquare(n_features, size=n_components))[:, None]


def fixed_norm_sampler(
    sampler: str | Callable[..., np.ndarray] = "orthogonal",
) -> Callable[..., np.ndarray]:
    r"""Wrap a sampler so every row has length :math:`\sqrt d` (chi norms replaced by fixed).

    Parameters
    ----------
    sampler : str or callable, default="orthogonal"
        The sampler whose directions are kept.

    Returns
    -------
    callable
        ``sampler(n_components, n_features, *, rng)``.
    """
    base = resolve_sampler(sampler)

    def fixed(n_components: int, n_features: int, *, rng: Any = None) -> np.ndarray:
        w = base(n_components, n_features, rng=rng)
        return w * (np.sqrt(n_features) / np.linalg.norm(w, axis=-1, keepdims=True))

    return fixed


def epsilon_attention(epsilon: float = 1e-3) -> Callable[..., np.ndarray]:
    r"""FAVOR+ attention with positive features plus :math:`\varepsilon` (bidirectional, no mask).

    Implements :math:`D^{-1}\hat A V` with :math:`\hat A = (\varphi(\tilde Q) + \varepsilon)
    (\varphi(\tilde K) + \varepsilon)^T`, :math:`\varphi(x) = m^{-1/2}\exp(Wx - \lVert x\rVert^2/2)`,
    :math:`\tilde Q = d^{-1/4} Q`: the official code's stabiliser (formulas §1.4), with the
    calling convention of ``favor.favor_attention`` for a prebuilt projection of shape
    ``(H, m, d)`` (``per_head=True``, heads on axis -3) or ``(m, d)``.

    Parameters
    ----------
    epsilon : float, default=1e-3
        The constant added to every feature.

    Returns
    -------
    callable
        ``attention(queries, keys, values, *, projection, per_head=False, **ignored)``.
    """

    def features(x: np.ndarray, w: np.ndarray) -> np.ndarray:
        logits = np.einsum("...ld,...md->...lm", x, w)
        half = 0.5 * np.einsum("...ld,...ld->...l", x, x)[..., None]
        return np.exp(logits - half) / np.sqrt(w.shape[-2]) + epsilon

    def attention(
        queries: np.ndarray,
        keys: np.ndarray,
        values: np.ndarray,
        *,
        projection: np.ndarray,
        per_head: bool = False,
        **ignored: Any,
    ) -> np.ndarray:
        s = queries.shape[-1] ** -0.25
        w = np.asarray(projection, dtype=np.float64)
        fq = features(s * np.asarray(queries), w)
        fk = features(s * np.asarray(keys), w)
        num = fq @ (np.swapaxes(fk, -1, -2) @ values)
        den = fq @ fk.sum(-2)[..., None]
        return num / den

    return attention
