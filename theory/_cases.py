"""Fixed evaluation points shared by the claim checks (chosen per formulas §8.2).

Exponential estimators are only CLT-friendly for :math:`\\lVert x + y\\rVert^2 \\lesssim 1.2`,
so every pair below respects that; pair 0 lies (almost) along :math:`e_1`, where
un-sign-fixed QR blocks are most biased (formulas §3.1), and pair 1 has a large
:math:`\\lVert x - y\\rVert`, where fixed-norm trigonometric features are most biased.
"""

from __future__ import annotations

import numpy as np

__all__ = ["default_pairs", "small_kernel_pairs"]

_X = np.array([[0.55, 0.0, 0.0, 0.0], [0.6, 0.0, 0.0, 0.0], [0.3, -0.2, 0.4, 0.1]])
_Y = np.array([[0.5, 0.1, 0.0, 0.0], [-0.6, 0.3, 0.0, 0.0], [0.1, 0.3, 0.35, -0.2]])


def _pad(a: np.ndarray, n_features: int) -> np.ndarray:
    if n_features < a.shape[1]:
        raise ValueError(f"n_features must be at least {a.shape[1]}, got {n_features}")
    out = np.zeros((a.shape[0], n_features))
    out[:, : a.shape[1]] = a
    return out


def default_pairs(n_features: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Three pairs with |x + y|^2 = 1.11, 0.09, 0.74 and |x - y|^2 = 0.01, 1.53, 0.38.

    Parameters
    ----------
    n_features : int, default=4
        Dimension (zero-padded beyond 4).

    Returns
    -------
    tuple of numpy.ndarray of shape (3, n_features)
        ``(x, y)``.
    """
    return _pad(_X, n_features), _pad(_Y, n_features)


def small_kernel_pairs(n_features: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Two pairs with a small softmax kernel (0.27 and 0.08) and small |x + y|.

    Parameters
    ----------
    n_features : int, default=4
        Dimension (zero-padded beyond 4).

    Returns
    -------
    tuple of numpy.ndarray of shape (2, n_features)
        ``(x, y)``.
    """
    x = np.array([[1.2, 0.0, 0.0, 0.0], [1.6, 0.0, 0.0, 0.0]])
    y = np.array([[-1.1, 0.2, 0.0, 0.0], [-1.55, 0.0, 0.25, 0.0]])
    return _pad(x, n_features), _pad(y, n_features)
