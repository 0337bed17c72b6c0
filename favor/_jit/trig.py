r"""A branch-free float32 sine-cosine pair for trigonometric features.

Trigonometric features need :math:`(\cos t, \sin t)` of every logit. Both share one range
reduction: :math:`t = k\pi/2 + r` with :math:`k` the nearest integer to :math:`2t/\pi`
and :math:`|r| \le \pi/4`, computed in float32 by the three-part Cody-Waite split of
:math:`\pi/2` (the constants of Cephes' ``sinf``), then the minimax polynomials of Cephes'
``sinf``/``cosf`` on :math:`[-\pi/4, \pi/4]` and a quadrant fix-up
(:math:`q = k \bmod 4`: :math:`(\sin, \cos) = (s, c), (c, -s), (-s, -c), (-c, s)`). Every
step is a multiply, add or select, with no branch and no call, so LLVM vectorises the loop
(8 or 16 lanes), where NumPy evaluates ``sin`` and ``cos`` separately.

Accuracy (tested against ``np.sin``/``np.cos`` of the float64 value of the float32
argument): absolute error at most :math:`1.5 \times 10^{-7}` (about two float32 ulps of
1) for :math:`|t| \le 10^4`. The rounding of :math:`k` uses the :math:`1.5 \cdot 2^{23}`
trick, valid for :math:`|t| < 2^{22}`; beyond :math:`|t| \approx 10^4` the three-part
reduction loses digits gradually (a float32 logit that large already carries an absolute
error near :math:`10^{-3}` from its own rounding).

Contract (``favor._jit`` rules): no validation, no RNG, NumPy arrays in and out. The slow
twin is ``np.cos``/``np.sin`` in ``tests/favor/test_trig.py``.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["scaled_cos_sin_f32", "scaled_cos_sin_f32_serial", "sincos_f32"]

_TWO_OVER_PI = np.float32(0.6366197723675814)
_PIO2_1 = np.float32(1.5703125)
_PIO2_2 = np.float32(4.837512969970703125e-4)
_PIO2_3 = np.float32(7.54978995489188216e-8)
_ROUND = np.float32(12582912.0)  # 1.5 * 2**23: adding and subtracting it rounds to nearest
_S1 = np.float32(-1.6666654611e-1)
_S2 = np.float32(8.3321608736e-3)
_S3 = np.float32(-1.9515295891e-4)
_C1 = np.float32(4.166664568298827e-2)
_C2 = np.float32(-1.388731625493765e-3)
_C3 = np.float32(2.443315711809948e-5)
_HALF = np.float32(0.5)
_ONE = np.float32(1.0)


@numba.njit(inline="always")
def _sincos(t: np.float32) -> tuple[np.float32, np.float32]:
    k = (t * _TWO_OVER_PI + _ROUND) - _ROUND
    r = ((t - k * _PIO2_1) - k * _PIO2_2) - k * _PIO2_3
    z = r * r
    s = r + r * z * (_S1 + z * (_S2 + z * _S3))
    c = _ONE - _HALF * z + z * z * (_C1 + z * (_C2 + z * _C3))
    q = np.int32(k)
    swap = (q & 1) != 0
    sign = np.float32(1 - 2 * ((q >> 1) & 1))
    sin_t = sign * (c if swap else s)
    cos_t = sign * (-s if swap else c)
    return sin_t, cos_t


@numba.njit("void(float32[::1], float32[::1], float32[::1])", cache=True)
def sincos_f32(t: np.ndarray, sin_out: np.ndarray, cos_out: np.ndarray) -> None:
    """``sin_out, cos_out = sin(t), cos(t)`` element-wise (float32, see the module notes).

    Parameters
    ----------
    t : float32 ndarray of shape (n,)
        Arguments.
    sin_out, cos_out : float32 ndarray of shape (n,)
        Receive the sines and cosines.
    """
    for j in range(t.shape[0]):
        s, c = _sincos(t[j])
        sin_out[j] = s
        cos_out[j] = c


@numba.njit(inline="always")
def _row(features: np.ndarray, i: int, m: int, scale: np.float32) -> None:
    for j in range(m):
        s, c = _sincos(features[i, j])
        features[i, j] = c * scale
        features[i, m + j] = s * scale


@numba.njit("void(float32[:, ::1], float32[::1])", parallel=True, cache=True)
def scaled_cos_sin_f32(features: np.ndarray, row_scale: np.ndarray) -> None:
    r"""In place: ``features[i] = row_scale[i] * (cos(t_i), sin(t_i))``, ``t_i = features[i, :m]``.

    The float32 counterpart of :func:`favor._jit.features.scaled_cos_sin` (formulas §2.2),
    parallel over rows.

    Parameters
    ----------
    features : float32 ndarray of shape (n, 2 m), C-contiguous
        Logits in columns ``[0, m)`` on entry; scaled cosines in ``[0, m)`` and sines in
        ``[m, 2m)`` on exit.
    row_scale : float32 ndarray of shape (n,)
        Per-row factor.
    """
    n, width = features.shape
    m = width // 2
    for i in numba.prange(n):
        _row(features, i, m, row_scale[i])


@numba.njit("void(float32[:, ::1], float32[::1])", cache=True)
def scaled_cos_sin_f32_serial(features: np.ndarray, row_scale: np.ndarray) -> None:
    """Single-threaded :func:`scaled_cos_sin_f32`, bit-for-bit identical output.

    Parameters
    ----------
    features : float32 ndarray of shape (n, 2 m), C-contiguous
        Logits in columns ``[0, m)`` on entry; scaled cosines and sines on exit.
    row_scale : float32 ndarray of shape (n,)
        Per-row factor.
    """
    n, width = features.shape
    m = width // 2
    for i in range(n):
        _row(features, i, m, row_scale[i])
