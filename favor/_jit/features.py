r"""Jit functions for the element-wise part of trigonometric feature maps.

Why this exists (measured with NumPy 2.4 and Numba 0.68 on 2 cores):
NumPy's float64 ``cos`` and ``sin`` are not vectorised and cost about 15-30 ns per
element depending on the argument size, while the float32 ufuncs are SIMD and cost
about 0.6 ns. The fused ``(cos, sin) * scale`` loop below, run in parallel over rows,
takes about 5-11 ns per output element in float64, 2-3x faster than the NumPy
sequence ``cos``, ``sin``, ``*=``. In float32 NumPy wins (Numba calls the scalar libm
there), so the trigonometric map (:func:`favor.features.trigonometric`) uses this function
for float64 only.

Contract of every function here (``favor._jit`` rules): no validation, no RNG, NumPy
arrays in and out, the preconditions listed in each docstring. The slow, obviously
correct twin lives in the tests (``tests/favor/test_features.py``).
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["scaled_cos_sin", "scaled_cos_sin_serial"]


@numba.njit("void(float64[:, ::1], float64[::1])", parallel=True, cache=True)
def scaled_cos_sin(features: np.ndarray, row_scale: np.ndarray) -> None:
    r"""In place: ``features[i] = row_scale[i] * (cos(t_i), sin(t_i))``, ``t_i = features[i, :m]``.

    This is the trigonometric feature map of formulas §2.2 after the projection GEMM: the
    caller writes the logits :math:`t_{ij} = \omega_j^T x_i` into the first half of the
    output buffer (so no separate logits array is allocated), and ``row_scale`` holds
    :math:`h(x_i)/\sqrt m`.

    Parameters
    ----------
    features : float64 ndarray of shape (n, 2 m), C-contiguous
        On entry, columns ``[0, m)`` hold the logits (columns ``[m, 2m)`` are ignored).
        On exit, columns ``[0, m)`` hold the scaled cosines and ``[m, 2m)`` the scaled
        sines.
    row_scale : float64 ndarray of shape (n,)
        Per-row factor.

    See Also
    --------
    scaled_cos_sin_serial : The same loop on one thread, bit-for-bit identical output
        (no reductions), for inputs too small to repay waking the thread pool.
    """
    n, width = features.shape
    m = width // 2
    for i in numba.prange(n):
        s = row_scale[i]
        for j in range(m):
            v = features[i, j]
            features[i, j] = np.cos(v) * s
            features[i, m + j] = np.sin(v) * s


@numba.njit("void(float64[:, ::1], float64[::1])", cache=True)
def scaled_cos_sin_serial(features: np.ndarray, row_scale: np.ndarray) -> None:
    """Single-threaded :func:`scaled_cos_sin`: same contract, bit-for-bit identical output.

    Used for inputs below ``favor.features._PARALLEL_MIN_SIZE`` elements, where waking
    the thread pool costs more than the loop.

    Parameters
    ----------
    features : float64 ndarray of shape (n, 2 m), C-contiguous
        Logits in columns ``[0, m)`` on entry; scaled cosines and sines on exit.
    row_scale : float64 ndarray of shape (n,)
        Per-row factor.

    See Also
    --------
    scaled_cos_sin : The parallel loop.
    """
    n, width = features.shape
    m = width // 2
    for i in range(n):
        s = row_scale[i]
        for j in range(m):
            v = features[i, j]
            features[i, j] = np.cos(v) * s
            features[i, m + j] = np.sin(v) * s
