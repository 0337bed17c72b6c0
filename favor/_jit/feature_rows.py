r"""Jit split forms of the feature maps: the formula of each map once, for attention and decoding.

Each map of :data:`favor.registry.FEATURE_MAPS` has one function here (its ``jit`` entry),
decorated with :func:`jit_rows`, with the signature

``rows(logits, half_sq_norms, params, is_key, out, log_scale, shifted, scratch)``

For the ``n = logits.shape[0]`` rows, with logits :math:`\ell = W x'` and
:math:`h = \lVert x'\rVert^2/2` of the scaled inputs :math:`x'`, it writes a *shape row*
``out[i]`` (first ``width`` entries) and a *log-scale* ``log_scale[i]`` with
:math:`\varphi(x'_i) = e^{r_i} e_i` exactly, for the map's attention kernel (the first of
its kernels):

==========  =============================================  ===========================================
map         shape row :math:`e`                             log-scale :math:`r`
==========  =============================================  ===========================================
positive    :math:`\exp(\ell - \max \ell)`                  :math:`\max\ell - h - \tfrac12\log m`
hyperbolic  :math:`(e^{\ell - M}, e^{-\ell - M})`, M=max|l|  :math:`M - h - \tfrac12\log 2m`
trig        :math:`(\cos \ell, \sin \ell)`                  :math:`h - \tfrac12\log m`
relu        :math:`\max(\ell, 0)`                           :math:`-\tfrac12\log m`
==========  =============================================  ===========================================

(formulas §2.2-2.4). Exponential shape rows are at most 1, so no exponential ever has a
positive argument. ``params`` holds the map's data-fitted parameters (empty for these
maps), ``is_key`` says whether the rows are keys (for maps whose queries and keys differ),
``out`` has exactly ``width`` columns and ``shifted`` and ``scratch`` exactly ``width``
entries. The slow twin of
every function is ``tests/reference.py::feature_rows_reference``.

Contract of every function here (``favor._jit`` rules): no validation, no RNG, NumPy arrays
in and out, C-contiguous float32 or float64 arrays of one dtype.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types
from numba.extending import overload

__all__ = [
    "ROWS_SIGNATURES",
    "exp_nonpositive",
    "exp_nonpositive_f32",
    "exp_nonpositive_f64",
    "hyperbolic",
    "jit_rows",
    "positive",
    "relu",
    "rows_type",
    "trigonometric",
]

# ``fastmath`` stays off everywhere except the polynomial exponentials below, which enable
# only ``contract`` (fused multiply-add, a single rounding instead of two): it assumes
# nothing about NaN/inf and never reassociates.
_OPTIONS = {"cache": True, "nogil": True}
_EXP_OPTIONS = {"cache": True, "nogil": True, "fastmath": {"contract"}}


def _rows_signature(dtype: types.Type) -> types.Type:
    matrix, vector = dtype[:, ::1], dtype[::1]
    params = types.Array(types.float64, 1, "C", readonly=True)
    return types.void(matrix, vector, params, types.boolean, matrix, vector, vector, vector)


#: The two signatures (float32, float64) every split form is compiled for.
ROWS_SIGNATURES = [_rows_signature(types.float32), _rows_signature(types.float64)]


def rows_type(dtype: types.Type) -> types.Type:
    """The first-class function type of a split form for ``dtype`` (used by the scans)."""
    return types.FunctionType(_rows_signature(dtype))


def jit_rows(function):
    """Compile a split form for float32 and float64 (eagerly, cached on disk).

    The scans of :mod:`favor._jit.attention` take the compiled function as a first-class
    function argument, so a new map needs no change to them (and no recompilation).
    """
    return numba.njit(ROWS_SIGNATURES, **_EXP_OPTIONS)(function)


@numba.njit(**_EXP_OPTIONS)
def exp_nonpositive_f32(x, out, scratch):  # pragma: no cover - compiled
    r"""Vectorisable float32 :math:`e^x` for :math:`x \le 0`, written to ``out``.

    Cody-Waite reduction :math:`x = k \ln 2 + f`, :math:`|f| \le \ln 2 / 2`, a degree-7
    polynomial for :math:`e^f` (Cephes ``expf`` coefficients, error below 1 ulp) and
    :math:`2^k` assembled from its exponent bits in ``scratch`` (viewed as int32).
    Arguments below -87 (where :math:`e^x` leaves the normal range) give exactly 0. Numba's
    scalar ``np.exp`` does not vectorise without SVML (7 ns per element here); this loop
    does (about 0.3 ns).

    Parameters
    ----------
    x : float32 array of shape (n,)
        Arguments, all :math:`\le 0` (not checked; larger values are wrong, not unsafe).
    out : float32 array of shape (n,)
        Destination; must not overlap ``x`` (aliasing would stop vectorisation).
    scratch : float32 array of shape (n,)
        Work space.
    """
    bits = scratch.view(np.int32)
    for i in range(x.size):
        xi = x[i]
        xi = xi if xi > np.float32(-87.0) else np.float32(-87.0)
        k = (xi * np.float32(1.4426950408889634) + np.float32(12582912.0)) - np.float32(12582912.0)
        f = xi - k * np.float32(0.693359375) - k * np.float32(-2.12194440e-4)
        p = np.float32(1.9875691500e-4)
        p = p * f + np.float32(1.3981999507e-3)
        p = p * f + np.float32(8.3334519073e-3)
        p = p * f + np.float32(4.1665795894e-2)
        p = p * f + np.float32(1.6666665459e-1)
        p = p * f + np.float32(5.0000001201e-1)
        out[i] = p * f * f + f + np.float32(1.0)
        bits[i] = (np.int32(k) + np.int32(127)) << np.int32(23)
    for i in range(x.size):
        out[i] = out[i] * scratch[i] if x[i] >= np.float32(-87.0) else np.float32(0.0)


@numba.njit(**_EXP_OPTIONS)
def exp_nonpositive_f64(x, out, scratch):  # pragma: no cover - compiled
    r"""Vectorisable float64 :math:`e^x` for :math:`x \le 0` (see :func:`exp_nonpositive_f32`).

    Cody-Waite reduction with a two-part :math:`\ln 2` and the degree-13 Taylor polynomial
    of :math:`e^f` on :math:`|f| \le \ln 2/2` (truncation error below
    :math:`0.35^{14}/14! \approx 4 \cdot 10^{-18}`, i.e. within about 1 ulp). Arguments
    below -708 give exactly 0.
    """
    bits = scratch.view(np.int64)
    for i in range(x.size):
        xi = x[i]
        xi = xi if xi > -708.0 else -708.0
        k = (xi * 1.4426950408889634 + 6755399441055744.0) - 6755399441055744.0
        f = xi - k * 6.93147180369123816490e-01 - k * 1.90821492927058770002e-10
        p = 1.0 / 6227020800.0
        p = p * f + 1.0 / 479001600.0
        p = p * f + 1.0 / 39916800.0
        p = p * f + 1.0 / 3628800.0
        p = p * f + 1.0 / 362880.0
        p = p * f + 1.0 / 40320.0
        p = p * f + 1.0 / 5040.0
        p = p * f + 1.0 / 720.0
        p = p * f + 1.0 / 120.0
        p = p * f + 1.0 / 24.0
        p = p * f + 1.0 / 6.0
        p = p * f + 0.5
        out[i] = p * f * f + f + 1.0
        bits[i] = (np.int64(k) + np.int64(1023)) << np.int64(52)
    for i in range(x.size):
        out[i] = out[i] * scratch[i] if x[i] >= -708.0 else 0.0


def exp_nonpositive(x, out, scratch):
    """Dispatch to :func:`exp_nonpositive_f32` or :func:`exp_nonpositive_f64` by dtype.

    This body runs only when Numba's JIT is disabled; compiled callers use the
    ``overload`` below, which picks the implementation at typing time.
    """
    if x.dtype == np.float32:
        exp_nonpositive_f32(x, out, scratch)
    else:
        exp_nonpositive_f64(x, out, scratch)


@overload(exp_nonpositive, jit_options={"cache": True})
def _exp_nonpositive_overload(x, out, scratch):  # pragma: no cover - typing only
    if x.dtype == types.float32:
        return lambda x, out, scratch: exp_nonpositive_f32(x, out, scratch)
    return lambda x, out, scratch: exp_nonpositive_f64(x, out, scratch)


_LANES = 16


@numba.njit(**_OPTIONS)
def _row_max(row, absolute, lanes):  # pragma: no cover - compiled
    """max(row) (or max |row|) with 16 independent partial maxima.

    A single running maximum is a serial dependency chain that LLVM cannot vectorise
    without fast-math flags; 16 lane-wise maxima vectorise (element-wise selects, no
    reassociation) and are reduced at the end. ``lanes`` is a work array of 16 entries.
    """
    n = row.size
    full = n - n % _LANES
    for lane in range(_LANES):
        lanes[lane] = abs(row[0]) if absolute else row[0]
    for start in range(0, full, _LANES):
        for lane in range(_LANES):
            a = abs(row[start + lane]) if absolute else row[start + lane]
            lanes[lane] = a if a > lanes[lane] else lanes[lane]
    top = lanes[0]
    for lane in range(1, _LANES):
        top = lanes[lane] if lanes[lane] > top else top
    for r in range(full, n):
        a = abs(row[r]) if absolute else row[r]
        top = a if a > top else top
    return top


@jit_rows
def positive(logits, half_sq_norms, params, is_key, out, log_scale, shifted, scratch):
    """Positive map (table above)."""
    n, m = logits.shape
    lanes = np.empty(_LANES, dtype=logits.dtype)
    const = 0.5 * np.log(m)
    for i in range(n):
        row = logits[i]
        top = _row_max(row, False, lanes)
        for r in range(m):
            shifted[r] = row[r] - top
        exp_nonpositive(shifted[:m], out[i], scratch[:m])
        log_scale[i] = top - half_sq_norms[i] - const


@jit_rows
def hyperbolic(logits, half_sq_norms, params, is_key, out, log_scale, shifted, scratch):
    """Hyperbolic map (table above)."""
    n, m = logits.shape
    lanes = np.empty(_LANES, dtype=logits.dtype)
    const = 0.5 * np.log(2 * m)
    for i in range(n):
        row = logits[i]
        top = _row_max(row, True, lanes)
        for r in range(m):
            shifted[r] = row[r] - top
            shifted[m + r] = -row[r] - top
        exp_nonpositive(shifted, out[i], scratch)
        log_scale[i] = top - half_sq_norms[i] - const


@jit_rows
def trigonometric(logits, half_sq_norms, params, is_key, out, log_scale, shifted, scratch):
    """Trigonometric map (table above)."""
    n, m = logits.shape
    const = 0.5 * np.log(m)
    for i in range(n):
        for r in range(m):
            out[i, r] = np.cos(logits[i, r])
            out[i, m + r] = np.sin(logits[i, r])
        log_scale[i] = half_sq_norms[i] - const


@jit_rows
def relu(logits, half_sq_norms, params, is_key, out, log_scale, shifted, scratch):
    """ReLU map (table above)."""
    n, m = logits.shape
    const = -0.5 * np.log(m)
    for i in range(n):
        for r in range(m):
            v = logits[i, r]
            out[i, r] = v if v > 0 else 0
        log_scale[i] = const
