r"""Jit functions of the FAVOR+ attention engine (see :mod:`favor.attention`).

Notation (formulas §1.3): a group ``g`` is one (batch..., head) slice; ``q``, ``k`` are its
queries and keys, ``v`` its values; ``wt`` is the transposed projection already multiplied
by the temperature factor :math:`s = d^{-1/4}`, so ``x @ wt`` are the logits
:math:`\omega_r^T (s x)`. Every key feature row is stored as a *shape* row :math:`e_j` and a
*log-scale* :math:`r_j` with :math:`\varphi(k_j) \propto e^{r_j} e_j` (the constant
:math:`m^{-1/2}` of every map cancels in the normalised output):

==========  =============================================  ================================
kind        shape row :math:`e_j`                           log-scale :math:`r_j`
==========  =============================================  ================================
positive    :math:`\exp(l - \max l)`                        :math:`\max l - s^2\lVert k\rVert^2/2`
hyperbolic  :math:`(\exp(l - M), \exp(-l - M))`, M = max|l|  :math:`M - s^2\lVert k\rVert^2/2`
trig        :math:`(\cos l, \sin l)`                        :math:`+s^2\lVert k\rVert^2/2`
relu        :math:`\max(l, 0)`                              0
==========  =============================================  ================================

Query rows use the same shape rows; their log-scale is one factor per output row and
cancels exactly in the normalisation, so it is never formed. Keys are combined with a
stabiliser ``c`` (the largest :math:`r_j` seen so far) as :math:`e^{r_j - c} e_j`, so no
exponential ever has a positive argument. The causal scan keeps ``c`` as a running
maximum over positions :math:`\le t` and rescales the carried state by
:math:`e^{c_{old} - c_{new}}` when it grows (online-softmax style), so an output never
depends on a later key, not even through rounding.

Preconditions (checked by the callers in :mod:`favor.attention`, never here): C-contiguous
float32 or float64 arrays of one dtype, finite inputs, ``0 <= kind <= 3``.

Thread use: the scans are ``prange`` loops over groups, each calling single-threaded BLAS
(``np.dot``) on small chunks; the caller limits BLAS to one thread around them
(threadpoolctl) and sets Numba's thread count, so the two never oversubscribe the cores.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange
from numba.core import types
from numba.extending import overload

__all__ = [
    "HYPERBOLIC",
    "POSITIVE",
    "RELU",
    "TRIGONOMETRIC",
    "bidirectional_attention",
    "causal_attention",
    "causal_state_update",
    "exp_nonpositive",
    "exp_nonpositive_f32",
    "exp_nonpositive_f64",
    "feature_rows",
]

#: Feature kinds (the integer codes the jit functions take).
POSITIVE, HYPERBOLIC, TRIGONOMETRIC, RELU = 0, 1, 2, 3

# One place for the options. ``fastmath`` stays off everywhere except the polynomial
# exponentials below, which enable only ``contract`` (fused multiply-add, a single
# rounding instead of two): it assumes nothing about NaN/inf and never reassociates.
_OPTIONS = {"cache": True, "nogil": True}
_EXP_OPTIONS = {"cache": True, "nogil": True, "fastmath": {"contract"}}


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


@numba.njit(**_OPTIONS)
def feature_rows(logits, half_sq_norms, kind, out, log_scale, shifted, scratch):
    r"""Shape rows and log-scales of the features of ``n`` inputs (module table).

    Parameters
    ----------
    logits : array of shape (n, m)
        :math:`l = W s x` per row.
    half_sq_norms : array of shape (n,)
        :math:`s^2 \lVert x\rVert^2/2` per row (zeros for queries, whose scale cancels).
    kind : int
        One of POSITIVE, HYPERBOLIC, TRIGONOMETRIC, RELU.
    out : array of shape (n, width)
        Shape rows :math:`e` (width m, or 2m for hyperbolic and trigonometric).
    log_scale : array of shape (n,)
        Receives :math:`r` per row.
    shifted, scratch : arrays of shape (2m,)
        Work space.
    """
    n, m = logits.shape
    lanes = np.empty(_LANES, dtype=logits.dtype)
    for i in range(n):
        row = logits[i]
        if kind == POSITIVE or kind == HYPERBOLIC:
            top = _row_max(row, kind == HYPERBOLIC, lanes)
            for r in range(m):
                shifted[r] = row[r] - top
            if kind == HYPERBOLIC:
                for r in range(m):
                    shifted[m + r] = -row[r] - top
                exp_nonpositive(shifted, out[i], scratch)
            else:
                exp_nonpositive(shifted[:m], out[i], scratch[:m])
            log_scale[i] = top - half_sq_norms[i]
        elif kind == TRIGONOMETRIC:
            for r in range(m):
                out[i, r] = np.cos(row[r])
                out[i, m + r] = np.sin(row[r])
            log_scale[i] = half_sq_norms[i]
        else:
            for r in range(m):
                out[i, r] = row[r] if row[r] > 0 else 0
            log_scale[i] = 0


@numba.njit(**_OPTIONS)
def _half_sq_norms(x, factor, out):  # pragma: no cover - compiled
    for i in range(x.shape[0]):
        acc = 0.0
        for j in range(x.shape[1]):
            acc += x[i, j] * x[i, j]
        out[i] = factor * acc


@numba.njit(**_OPTIONS)
def _key_rows(k, wt, half_factor, kind, padded, e, r, hsq, shifted, scratch):
    # Features of one chunk of keys; padded keys get a zero row and r = -inf.
    logits = np.dot(k, wt)
    if kind == RELU:
        hsq[:] = 0
    else:
        _half_sq_norms(k, half_factor, hsq)
    feature_rows(logits, hsq, kind, e, r, shifted, scratch)
    for j in range(k.shape[0]):
        if padded[j]:
            e[j, :] = 0
            r[j] = -np.inf


@numba.njit(**_OPTIONS)
def _query_rows(q, wt, kind, e, zeros, dummy, shifted, scratch):
    feature_rows(np.dot(q, wt), zeros, kind, e, dummy, shifted, scratch)


@numba.njit(**_OPTIONS)
def causal_state_update(state, normaliser, log_scale, e, r, v):
    r"""Fold a chunk of key rows into the carried causal state; return the new log-scale.

    ``state`` :math:`S` (width, d_v) and ``normaliser`` :math:`z` (width,) hold
    :math:`\sum_j e^{r_j - c} e_j v_j^T` and :math:`\sum_j e^{r_j - c} e_j` at log-scale
    ``log_scale`` :math:`c` (``-inf`` while empty). With :math:`c' = \max(c, \max_j r_j)`
    they become :math:`e^{c - c'} S + \sum_j e^{r_j - c'} e_j v_j^T` (in place).

    Parameters
    ----------
    state : array of shape (width, d_v)
    normaliser : array of shape (width,)
    log_scale : float
    e : array of shape (n, width)
        Key shape rows of the chunk.
    r : array of shape (n,)
        Their log-scales (``-inf`` for padded keys).
    v : array of shape (n, d_v)
        Values of the chunk.

    Returns
    -------
    float
        The new log-scale :math:`c'`.
    """
    n = e.shape[0]
    new = log_scale
    for j in range(n):
        if r[j] > new:
            new = r[j]
    if new == -np.inf:
        return new
    if log_scale != -np.inf and new != log_scale:
        factor = np.exp(log_scale - new)
        state *= factor
        normaliser *= factor
    weights = np.empty(n, dtype=e.dtype)
    weighted = np.empty_like(v)
    for j in range(n):
        weights[j] = 0 if r[j] == -np.inf else (1 if r[j] == new else np.exp(r[j] - new))
        weighted[j, :] = v[j, :] * weights[j]
    state += np.dot(e.T, weighted)
    normaliser += np.dot(e.T, weights)
    return new


@numba.njit(**_OPTIONS, parallel=True)
def bidirectional_attention(q, k, v, wt, proj_index, padded, half_factor, kind, chunk, out):
    r"""Normalised FAVOR+ attention over all keys, streamed in chunks, parallel over groups.

    For each group: one pass over the key chunks accumulates
    :math:`S = \sum_j e^{r_j - c} e_j v_j^T` and :math:`z = \sum_j e^{r_j - c} e_j` with
    ``c`` the largest log-scale seen (the state is rescaled when it grows; the final
    ``c`` is the single per-group key stabiliser). A pass over the query chunks then writes
    :math:`(e_i^T S) / (e_i^T z)`, or 0 where the normaliser is exactly 0 (no visible key).
    Extra memory per thread: O(chunk x width + width x d_v), never O(L x m).

    Parameters
    ----------
    q : array of shape (G, L_q, d)
    k : array of shape (G, L_k, d)
    v : array of shape (G, L_k, d_v)
    wt : array of shape (P, d, m)
        Scaled, transposed projections.
    proj_index : int64 array of shape (G,)
        Which projection each group uses.
    padded : bool array of shape (G, L_k)
        True marks a padded key.
    half_factor : float
        :math:`s^2 / 2`.
    kind : int
        Feature kind.
    chunk : int
        Rows per chunk.
    out : array of shape (G, L_q, d_v)
        Output, written in place.
    """
    n_groups, n_queries, _ = q.shape
    n_keys = k.shape[1]
    m = wt.shape[2]
    width = 2 * m if (kind == HYPERBOLIC or kind == TRIGONOMETRIC) else m
    d_v = v.shape[2]
    for g in prange(n_groups):
        w = wt[proj_index[g]]
        e = np.empty((chunk, width), dtype=q.dtype)
        r = np.empty(chunk, dtype=q.dtype)
        hsq = np.empty(chunk, dtype=q.dtype)
        shifted = np.empty(width, dtype=q.dtype)
        scratch = np.empty(width, dtype=q.dtype)
        state = np.zeros((width, d_v), dtype=q.dtype)
        normaliser = np.zeros(width, dtype=q.dtype)
        log_scale = -np.inf
        for t0 in range(0, n_keys, chunk):
            n = min(chunk, n_keys - t0)
            _key_rows(
                k[g, t0 : t0 + n], w, half_factor, kind, padded[g, t0 : t0 + n],
                e[:n], r[:n], hsq[:n], shifted, scratch,
            )  # fmt: skip
            log_scale = causal_state_update(
                state, normaliser, log_scale, e[:n], r[:n], v[g, t0 : t0 + n]
            )
        hsq[:] = 0
        for t0 in range(0, n_queries, chunk):
            n = min(chunk, n_queries - t0)
            _query_rows(q[g, t0 : t0 + n], w, kind, e[:n], hsq[:n], r[:n], shifted, scratch)
            numer = np.dot(e[:n], state)
            denom = np.dot(e[:n], normaliser)
            for i in range(n):
                if denom[i] != 0:
                    out[g, t0 + i, :] = numer[i, :] / denom[i]
                else:
                    out[g, t0 + i, :] = 0


@numba.njit(**_OPTIONS, parallel=True)
def causal_attention(q, k, v, wt, proj_index, padded, half_factor, kind, chunk, out):
    r"""Causal FAVOR+ attention by a chunked prefix scan, parallel over groups.

    Inside a chunk, with running maxima :math:`c_t = \max(c_{prev}, r_{t_0}, ..., r_t)`:

    .. math::
        o_t = \frac{\sum_{j \le t} (e^{q}_t \cdot e_j)\, e^{r_j - c_t} v_j
                    + e^{c_{prev} - c_t}\, e^{q}_t S}
                   {\sum_{j \le t} (e^{q}_t \cdot e_j)\, e^{r_j - c_t}
                    + e^{c_{prev} - c_t}\, e^{q}_t \cdot z},

    a small masked product for the chunk plus the carried state :math:`(S, z)` at
    log-scale :math:`c_{prev}`, which :func:`causal_state_update` then advances. Every
    quantity used for :math:`o_t` depends on positions :math:`\le t` only, so changing later
    keys or values leaves :math:`o_t` bit-identical. An exactly zero normaliser gives a zero
    row. Extra memory per thread: O(chunk x (width + chunk) + width x d_v); no
    L x m x d_v tensor.

    Parameters are those of :func:`bidirectional_attention` (here ``L_q == L_k``).
    """
    n_groups, n_tokens, _ = q.shape
    m = wt.shape[2]
    width = 2 * m if (kind == HYPERBOLIC or kind == TRIGONOMETRIC) else m
    d_v = v.shape[2]
    for g in prange(n_groups):
        w = wt[proj_index[g]]
        eq = np.empty((chunk, width), dtype=q.dtype)
        ek = np.empty((chunk, width), dtype=q.dtype)
        r = np.empty(chunk, dtype=q.dtype)
        running = np.empty(chunk, dtype=q.dtype)
        hsq = np.empty(chunk, dtype=q.dtype)
        zeros = np.zeros(chunk, dtype=q.dtype)
        dummy = np.empty(chunk, dtype=q.dtype)
        shifted = np.empty(width, dtype=q.dtype)
        scratch = np.empty(width, dtype=q.dtype)
        state = np.zeros((width, d_v), dtype=q.dtype)
        normaliser = np.zeros(width, dtype=q.dtype)
        log_scale = -np.inf
        for t0 in range(0, n_tokens, chunk):
            n = min(chunk, n_tokens - t0)
            vc = v[g, t0 : t0 + n]
            _query_rows(q[g, t0 : t0 + n], w, kind, eq[:n], zeros[:n], dummy[:n], shifted, scratch)
            _key_rows(
                k[g, t0 : t0 + n], w, half_factor, kind, padded[g, t0 : t0 + n],
                ek[:n], r[:n], hsq[:n], shifted, scratch,
            )  # fmt: skip
            top = log_scale
            for i in range(n):
                if r[i] > top:
                    top = r[i]
                running[i] = top
            scores = np.dot(eq[:n], ek[:n].T)
            denom = np.zeros(n, dtype=q.dtype)
            for i in range(n):
                for j in range(n):
                    if j > i or r[j] == -np.inf:
                        scores[i, j] = 0
                    elif r[j] != running[i]:
                        scores[i, j] *= np.exp(r[j] - running[i])
                    denom[i] += scores[i, j]
            numer = np.dot(scores, vc)
            if log_scale != -np.inf:
                carried = np.dot(eq[:n], state)
                carried_denom = np.dot(eq[:n], normaliser)
                for i in range(n):
                    factor = 1 if running[i] == log_scale else np.exp(log_scale - running[i])
                    numer[i, :] += factor * carried[i, :]
                    denom[i] += factor * carried_denom[i]
            for i in range(n):
                if denom[i] != 0:
                    out[g, t0 + i, :] = numer[i, :] / denom[i]
                else:
                    out[g, t0 + i, :] = 0
            log_scale = causal_state_update(state, normaliser, log_scale, ek[:n], r[:n], vc)
