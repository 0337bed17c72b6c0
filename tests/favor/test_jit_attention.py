"""Every jit function of favor._jit.attention and favor._jit.feature_rows against its loop twin."""

from __future__ import annotations

import numpy as np
import pytest

from favor._jit import attention as jit
from favor._jit import feature_rows as rows_jit
from favor.registry import FEATURE_MAPS
from tests.reference import (
    BUILTIN_MAPS,
    causal_state_update_reference,
    exp_nonpositive_reference,
    favor_attention_reference,
    feature_rows_reference,
)

DTYPES = [np.float32, np.float64]
# Relative tolerances for comparing a float computation with its float64 loop twin.
RTOL = {np.float32: 2e-5, np.float64: 1e-12}


@pytest.mark.parametrize("dtype", DTYPES)
def test_exp_nonpositive_matches_math_exp(dtype, rng):
    x = np.concatenate(
        [-rng.exponential(5.0, 300), [0.0, -1e-30, -0.5, -86.9, -707.0], -rng.uniform(0, 80, 50)]
    ).astype(dtype)
    out = np.empty_like(x)
    rows_jit.exp_nonpositive(x, out, np.empty_like(x))
    expected = exp_nonpositive_reference(x)
    # Below the normal range the jit version returns exactly 0 by design.
    floor = -87.0 if dtype == np.float32 else -708.0
    expected[x < floor] = 0.0
    ulp = np.finfo(dtype).eps
    np.testing.assert_allclose(out, expected, rtol=4 * ulp, atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_exp_nonpositive_flushes_below_normal_range(dtype):
    x = np.array([-88.0, -100.0, -800.0, -np.inf], dtype=dtype)
    out = np.empty_like(x)
    rows_jit.exp_nonpositive(x, out, np.empty_like(x))
    if dtype == np.float32:
        assert np.all(out == 0)
    else:
        np.testing.assert_allclose(out[:2], np.exp(x[:2].astype(np.float64)), rtol=1e-15)
        assert np.all(out[2:] == 0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", BUILTIN_MAPS)
def test_feature_rows_matches_reference(name, dtype, rng):
    n, m = 5, 6
    logits = (3 * rng.standard_normal((n, m))).astype(dtype)
    hsq = rng.uniform(0, 2, n).astype(dtype)
    width = FEATURE_MAPS[name].width(m)
    out = np.empty((n, width), dtype=dtype)
    log_scale = np.empty(n, dtype=dtype)
    work = np.empty(width, dtype), np.empty(width, dtype)
    FEATURE_MAPS[name].jit_rows()(logits, hsq, np.zeros(0), True, out, log_scale, *work)
    expected, expected_scale = feature_rows_reference(logits, hsq, name)
    np.testing.assert_allclose(out, expected, rtol=RTOL[dtype], atol=RTOL[dtype])
    np.testing.assert_allclose(log_scale, expected_scale, rtol=RTOL[dtype], atol=RTOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("start_empty", [True, False])
def test_causal_state_update_matches_reference(start_empty, dtype, rng):
    width, d_v, n = 6, 3, 4
    state = np.zeros((width, d_v), dtype) if start_empty else rng.random((width, d_v)).astype(dtype)
    normaliser = np.zeros(width, dtype) if start_empty else rng.random(width).astype(dtype)
    log_scale = -np.inf if start_empty else 0.5
    e = rng.random((n, width)).astype(dtype)
    r = np.array([0.1, 2.0, -np.inf, 1.0], dtype=dtype)  # grows past 0.5; one padded key
    e[2] = 0
    v = rng.standard_normal((n, d_v)).astype(dtype)
    s_ref, z_ref, c_ref = causal_state_update_reference(state, normaliser, log_scale, e, r, v)
    new = jit.causal_state_update(state, normaliser, log_scale, e, r, v)
    assert new == c_ref
    np.testing.assert_allclose(state, s_ref, rtol=RTOL[dtype])
    np.testing.assert_allclose(normaliser, z_ref, rtol=RTOL[dtype])


def test_causal_state_update_all_padded_keeps_empty_state():
    state = np.zeros((2, 2))
    normaliser = np.zeros(2)
    new = jit.causal_state_update(
        state, normaliser, -np.inf, np.zeros((3, 2)), np.full(3, -np.inf), np.ones((3, 2))
    )
    assert new == -np.inf
    assert not state.any()
    assert not normaliser.any()


def _group_inputs(rng, dtype, n_groups=3, n_queries=11, n_keys=11, d=4, d_v=3, m=5, n_proj=2):
    q = (0.5 * rng.standard_normal((n_groups, n_queries, d))).astype(dtype)
    k = (0.5 * rng.standard_normal((n_groups, n_keys, d))).astype(dtype)
    v = rng.standard_normal((n_groups, n_keys, d_v)).astype(dtype)
    w = rng.standard_normal((n_proj, m, d))
    proj_index = np.arange(n_groups, dtype=np.int64) % n_proj
    padded = rng.random((n_groups, n_keys)) < 0.25
    padded[0, :] = False
    return q, k, v, w, proj_index, padded


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", BUILTIN_MAPS)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("chunk", [1, 4, 16])
def test_attention_scans_match_reference(chunk, causal, kind, dtype, rng):
    n_keys = 11
    n_queries = 11 if causal else 7
    q, k, v, w, proj_index, padded = _group_inputs(rng, dtype, n_queries=n_queries, n_keys=n_keys)
    d = q.shape[-1]
    scale = d**-0.25
    wt = np.ascontiguousarray(np.swapaxes(w * scale, -1, -2), dtype=dtype)
    out = np.empty((q.shape[0], n_queries, v.shape[-1]), dtype=dtype)
    kernel = jit.causal_attention if causal else jit.bidirectional_attention
    spec = FEATURE_MAPS[kind]
    rows, width = spec.jit_rows(), spec.width(w.shape[1])
    kernel(q, k, v, wt, wt, proj_index, padded, 0.5 * scale**2, np.zeros((1, 0)), rows,
           np.zeros((1, 0)), width, chunk, out)  # fmt: skip
    expected = favor_attention_reference(
        q, k, v, w, kind, causal=causal, padded=padded, proj_index=proj_index
    )
    tol = 2e-4 if dtype == np.float32 else 1e-11
    np.testing.assert_allclose(out, expected, rtol=tol, atol=tol)
