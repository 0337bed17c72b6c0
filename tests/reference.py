"""Slow, loop-based, obviously correct twins of the jit functions and of the estimators.

Nothing here is clever: scalar ``math`` functions, explicit loops over rows, groups and
keys, and the feature maps of :mod:`favor.features` applied one vector at a time. Tests
compare the fast code against these on small inputs (float32 and float64).
"""

from __future__ import annotations

import math

import numpy as np

from favor.registry import FEATURE_MAPS

#: The built-in maps whose split form the loop twin below spells out.
BUILTIN_MAPS = ("positive", "hyperbolic", "trigonometric", "relu")


def exp_nonpositive_reference(x: np.ndarray) -> np.ndarray:
    """``math.exp`` per element, in float64 (the jit version flushes below its range)."""
    return np.array([math.exp(float(t)) for t in np.ravel(x)]).reshape(np.shape(x))


def feature_rows_reference(
    logits: np.ndarray, half_sq_norms: np.ndarray, name: str
) -> tuple[np.ndarray, np.ndarray]:
    """Shape rows ``e`` and log-scales ``r`` (table of :mod:`favor._jit.feature_rows`), by loops."""
    n, m = logits.shape
    width = 2 * m if name in ("hyperbolic", "trigonometric") else m
    out = np.zeros((n, width))
    log_scale = np.zeros(n)
    for i in range(n):
        row = [float(t) for t in logits[i]]
        h = float(half_sq_norms[i])
        if name == "positive":
            top = max(row)
            for r in range(m):
                out[i, r] = math.exp(row[r] - top)
            log_scale[i] = top - h - 0.5 * math.log(m)
        elif name == "hyperbolic":
            top = max(abs(t) for t in row)
            for r in range(m):
                out[i, r] = math.exp(row[r] - top)
                out[i, m + r] = math.exp(-row[r] - top)
            log_scale[i] = top - h - 0.5 * math.log(2 * m)
        elif name == "trigonometric":
            for r in range(m):
                out[i, r] = math.cos(row[r])
                out[i, m + r] = math.sin(row[r])
            log_scale[i] = h - 0.5 * math.log(m)
        else:
            for r in range(m):
                out[i, r] = max(row[r], 0.0)
            log_scale[i] = -0.5 * math.log(m)
    return out, log_scale


def hybrid_rows_reference(
    logits: np.ndarray, half_sq_norms: np.ndarray, n_signs: int, is_key: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Shape rows and log-scales of the hybrid map (:mod:`favor._jit.hybrid_rows`), by loops.

    Written from the definition in :mod:`favor.hybrid`: weights ``a = (1/sqrt 2,
    -+sgn(w'x)/sqrt(2k))`` on the hyperbolic features ``exp(+-l - h)/sqrt(2m)`` and
    ``b = (1/sqrt 2, sgn/sqrt(2k))`` on the trigonometric ones ``exp(h) (cos, sin)/sqrt m``,
    each row divided by ``exp(r)`` with ``r`` the larger of the two parts' log-scales.
    """
    n, total = logits.shape
    m = total - n_signs
    out = np.zeros((n, 4 * m * (n_signs + 1)))
    log_scale = np.zeros(n)
    for i in range(n):
        row = [float(t) for t in logits[i, :m]]
        signs = [1.0 if float(t) >= 0 else -1.0 for t in logits[i, m:]]
        h = float(half_sq_norms[i])
        top = max(abs(t) for t in row)
        r_hyp = top - h - 0.5 * math.log(2 * m)
        r_trig = h - 0.5 * math.log(m)
        r = max(r_hyp, r_trig)
        hyp = [math.exp(t - top + r_hyp - r) for t in row]
        hyp += [math.exp(-t - top + r_hyp - r) for t in row]
        trig = [math.cos(t) * math.exp(r_trig - r) for t in row]
        trig += [math.sin(t) * math.exp(r_trig - r) for t in row]
        side = 1.0 if is_key else -1.0
        a = [math.sqrt(0.5)] + [side * s / math.sqrt(2 * n_signs) for s in signs]
        b = [math.sqrt(0.5)] + [s / math.sqrt(2 * n_signs) for s in signs]
        column = 0
        for weights, part in ((a, hyp), (b, trig)):
            for weight in weights:
                for value in part:
                    out[i, column] = weight * value
                    column += 1
        log_scale[i] = r
    return out, log_scale


def causal_state_update_reference(
    state: np.ndarray,
    normaliser: np.ndarray,
    log_scale: float,
    e: np.ndarray,
    r: np.ndarray,
    v: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, float]:
    """New ``(S, z, c)``: everything re-expressed at ``c' = max(c, max r)``, by loops."""
    new = max([log_scale, *[float(t) for t in r]])
    if new == -math.inf:
        return state.astype(np.float64), normaliser.astype(np.float64), new
    old = 0.0 if log_scale == -math.inf else math.exp(log_scale - new)
    s_new = np.array(state, dtype=np.float64) * old
    z_new = np.array(normaliser, dtype=np.float64) * old
    for j in range(e.shape[0]):
        if r[j] == -math.inf:
            continue
        weight = math.exp(float(r[j]) - new)
        for a in range(e.shape[1]):
            z_new[a] += weight * float(e[j, a])
            for b in range(v.shape[1]):
                s_new[a, b] += weight * float(e[j, a]) * float(v[j, b])
    return s_new, z_new, new


def favor_attention_reference(
    queries: np.ndarray,
    keys: np.ndarray,
    values: np.ndarray,
    projections: np.ndarray,
    features: str,
    *,
    causal: bool = False,
    padded: np.ndarray | None = None,
    proj_index: np.ndarray | None = None,
) -> np.ndarray:
    """The normalised estimator, one (query, key) pair at a time, in float64.

    ``queries`` (G, L_q, d), ``keys`` (G, L_k, d), ``values`` (G, L_k, d_v) unscaled;
    ``projections`` (P, m, d) unscaled; group ``g`` uses ``projections[proj_index[g]]``.
    Features are the public maps of :mod:`favor.features` on ``d**-0.25``-scaled vectors,
    with no stabiliser at all (so use moderate norms); keys use the key-side map
    (``is_key``) of maps whose queries and keys differ. A normaliser <= 0 gives a zero row
    (exactly 0: no visible key; negative: the sign rule for signed features).
    """
    spec = FEATURE_MAPS[features]
    n_groups, n_queries, d = queries.shape
    n_keys = keys.shape[1]
    scale = d**-0.25
    if proj_index is None:
        proj_index = np.zeros(n_groups, dtype=int)
    out = np.zeros((n_groups, n_queries, values.shape[2]))
    for g in range(n_groups):
        w = np.asarray(projections[proj_index[g]], dtype=np.float64)
        phi_k = [
            spec(np.asarray(keys[g, j], dtype=np.float64) * scale, w, is_key=True)
            for j in range(n_keys)
        ]
        for i in range(n_queries):
            phi_q = spec(np.asarray(queries[g, i], dtype=np.float64) * scale, w)
            numer = np.zeros(values.shape[2])
            denom = 0.0
            for j in range(n_keys):
                if (causal and j > i) or (padded is not None and padded[g, j]):
                    continue
                a = float(phi_q @ phi_k[j])
                numer += a * np.asarray(values[g, j], dtype=np.float64)
                denom += a
            out[g, i] = numer / denom if denom > 0 else 0.0
    return out


def attention_error_reference(
    queries: np.ndarray,
    keys: np.ndarray,
    n_components: int,
    features: str,
    *,
    causal: bool = False,
) -> np.ndarray:
    """Predicted relative RMS error of each normaliser, by the double sum over keys.

    ``sqrt((sum_jj' p_j p_j' (f(u_j . u_j') - 1)) / m)`` with ``f = exp`` and
    ``u_j = s(q + k_j)`` for positive features, ``f = cosh`` for hyperbolic (same ``u``) and
    trigonometric (``u_j = s(q - k_j)``), for inputs of shape (L_q, d), (L_k, d).
    """
    d = queries.shape[-1]
    scale = d**-0.25
    out = np.zeros(queries.shape[0])
    for i in range(queries.shape[0]):
        q = np.asarray(queries[i], dtype=np.float64) * scale
        visible = [j for j in range(keys.shape[0]) if not (causal and j > i)]
        logits = [float(q @ (np.asarray(keys[j], dtype=np.float64) * scale)) for j in visible]
        top = max(logits)
        weights = [math.exp(t - top) for t in logits]
        total_w = sum(weights)
        p = [t / total_w for t in weights]
        sign = -1.0 if features == "trigonometric" else 1.0
        u = [q + sign * np.asarray(keys[j], dtype=np.float64) * scale for j in visible]
        f = math.exp if features == "positive" else math.cosh
        acc = 0.0
        for a in range(len(visible)):
            for b in range(len(visible)):
                acc += p[a] * p[b] * (f(float(u[a] @ u[b])) - 1.0)
        out[i] = math.sqrt(max(acc, 0.0) / n_components)
    return out
