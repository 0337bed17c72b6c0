"""features="hybrid" in attention: jit twin, scans, sign rule, projections, decoding, torch."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from favor import (
    FavorAccuracyWarning,
    decode_step,
    favor_attention,
    init_decoding_state,
)
from favor._jit import attention as jit
from favor.hybrid import DEFAULT_ANGULAR, hybrid_features
from favor.registry import FEATURE_MAPS
from favor.sampling import draw_projection
from tests.reference import favor_attention_reference, hybrid_rows_reference

SPEC = FEATURE_MAPS["hybrid"]
K = SPEC.sign_rows
DTYPES = [np.float32, np.float64]
RTOL = {np.float32: 2e-5, np.float64: 1e-12}


def _explicit(q, k, v, w, *, causal=False):
    """The hybrid estimate from favor.hybrid's full features, and its normalisers (float64)."""
    s = q.shape[-1] ** -0.25
    m = w.shape[0] - K
    fq = hybrid_features(q * s, w[:m], w[m:], role="query")
    fk = hybrid_features(k * s, w[:m], w[m:], role="key")
    a_hat = fq @ np.swapaxes(fk, -1, -2)
    if causal:
        a_hat = np.tril(a_hat)
    denom = a_hat.sum(axis=-1, keepdims=True)
    out = (a_hat @ v) / np.where(denom > 0, denom, 1.0) * (denom > 0)
    return out, denom[..., 0]


def test_registry_entry_and_width_model():
    assert K == DEFAULT_ANGULAR == 4
    assert SPEC.width(16) == 4 * 16 * (K + 1)
    assert SPEC.projection_rows(16) == 16 + K
    assert SPEC.width_for_rows(16 + K) == SPEC.width(16)
    assert not SPEC.symmetric
    assert not SPEC.nonnegative
    np.testing.assert_array_equal(SPEC.fit_params(None, np.zeros((20, 3))), [float(K)])
    with pytest.raises(ValueError, match="more than 4 rows"):
        SPEC.width_for_rows(4)
    for name, spec in FEATURE_MAPS.items():  # the other maps keep their width
        if name != "hybrid":
            assert spec.width_for_rows(7) == spec.width(7) == spec.outputs_per_projection * 7


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("is_key", [False, True])
@pytest.mark.parametrize("spread", [0.3, 3.0, 12.0])
def test_jit_rows_match_loop_twin_and_the_features(is_key, dtype, spread, rng):
    """The jit split form against its slow twin, and exp(r) e against hybrid_features."""
    n, m, d = 5, 6, 4
    x = (spread * rng.standard_normal((n, d)) / np.sqrt(d)).astype(dtype)
    w = rng.standard_normal((m + K, d))
    logits = np.ascontiguousarray((x.astype(np.float64) @ w.T).astype(dtype))
    hsq = (0.5 * np.einsum("nd,nd->n", x, x)).astype(dtype)
    width = SPEC.width(m)
    out = np.empty((n, width), dtype=dtype)
    log_scale = np.empty(n, dtype=dtype)
    work = np.empty(width, dtype), np.empty(width, dtype)
    SPEC.jit_rows()(logits, hsq, SPEC.fit_params(None, w), is_key, out, log_scale, *work)
    expected, expected_scale = hybrid_rows_reference(logits, hsq, K, is_key)
    np.testing.assert_allclose(out, expected, rtol=RTOL[dtype], atol=RTOL[dtype])
    np.testing.assert_allclose(log_scale, expected_scale, rtol=RTOL[dtype], atol=RTOL[dtype])
    assert np.abs(out).max() <= np.sqrt(0.5) * (1 + 1e-6)
    if spread < 10:  # both parts representable: the full features are finite
        full = hybrid_features(
            x.astype(np.float64), w[:m], w[m:], role="key" if is_key else "query"
        )
        rebuilt = np.exp(log_scale.astype(np.float64))[:, None] * out
        np.testing.assert_allclose(rebuilt, full, rtol=10 * RTOL[dtype], atol=1e-300)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("chunk", [1, 4, 16])
def test_scans_match_the_loop_reference(chunk, causal, dtype, rng):
    """Both jit scans with the hybrid rows against favor_attention_reference (loops)."""
    n_groups, n_keys, d, m = 3, 11, 4, 5
    n_queries = 11 if causal else 7
    q = (0.5 * rng.standard_normal((n_groups, n_queries, d))).astype(dtype)
    k = (0.5 * rng.standard_normal((n_groups, n_keys, d))).astype(dtype)
    v = rng.standard_normal((n_groups, n_keys, 3)).astype(dtype)
    w = rng.standard_normal((2, m + K, d))
    proj_index = np.arange(n_groups, dtype=np.int64) % 2
    padded = rng.random((n_groups, n_keys)) < 0.25
    padded[0] = False
    scale = d**-0.25
    wt = np.ascontiguousarray(np.swapaxes(w * scale, -1, -2), dtype=dtype)
    out = np.empty((n_groups, n_queries, 3), dtype=dtype)
    scan = jit.causal_attention if causal else jit.bidirectional_attention
    params = SPEC.fit_params(None, w[0])[None, :]
    scan(q, k, v, wt, wt, proj_index, padded, 0.5 * scale**2, np.zeros((1, 0)), SPEC.jit_rows(), params,
         SPEC.width(m), chunk, out)  # fmt: skip
    expected = favor_attention_reference(
        q, k, v, w, "hybrid", causal=causal, padded=padded, proj_index=proj_index
    )
    tol = 2e-4 if dtype == np.float32 else 1e-11
    np.testing.assert_allclose(out, expected, rtol=tol, atol=tol)


def _negative_case(rng, n=40, d=8):
    """Inputs with few components and large norms: some estimated normalisers are < 0."""
    q, k = (1.5 * rng.standard_normal((2, n, d)) for _ in range(2))
    v = rng.standard_normal((2, n, 3))
    w = rng.standard_normal((2 + K, d))
    return q, k, v, w


@pytest.mark.parametrize("causal", [False, True])
def test_normaliser_sign_rule_zeroes_and_warns(causal, rng):
    q, k, v, w = _negative_case(rng)
    expected, denom = _explicit(q, k, v, w, causal=causal)
    bad = int((denom <= 0).sum())
    assert 0 < bad < denom.size  # the case exercises both kinds of rows
    with pytest.warns(FavorAccuracyWarning, match=f"{bad} of {denom.size} query rows"):
        out = favor_attention(q, k, v, projection=w, features="hybrid", causal=causal)
    assert np.isfinite(out).all()
    assert (out[denom <= 0] == 0).all()
    np.testing.assert_allclose(out, expected, rtol=1e-9, atol=1e-9)
    # Negative control: a positive map never triggers the rule.
    with warnings.catch_warnings():
        warnings.simplefilter("error", FavorAccuracyWarning)
        warnings.filterwarnings("ignore", "FAVOR", FavorAccuracyWarning)  # noise warning
        favor_attention(q, k, v, projection=w[:2], features="positive", causal=causal)


def test_no_warning_when_every_normaliser_is_positive(rng):
    q, k, v = (0.2 * rng.standard_normal((2, 9, 8)) for _ in range(3))
    w = rng.standard_normal((64 + K, 8))
    _, denom = _explicit(q, k, v, w)
    assert (denom > 0).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error", FavorAccuracyWarning)
        favor_attention(q, k, v, projection=w, features="hybrid")


def test_decoding_applies_the_sign_rule_like_the_causal_engine(rng):
    q, k, v, w = _negative_case(rng, n=20)
    full = favor_attention(q, k, v, projection=w, features="hybrid", causal=True)
    state = init_decoding_state(8, 3, batch_shape=(2,), projection=w, features="hybrid")
    rows = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FavorAccuracyWarning)
        for t in range(q.shape[1]):
            out, state = decode_step(state, q[:, t], k[:, t], v[:, t])
            rows.append(out)
    np.testing.assert_allclose(np.stack(rows, axis=1), full, rtol=1e-9, atol=1e-9)
    assert any("normaliser sign rule" in str(w.message) for w in caught)


def test_drawn_projection_has_independent_sign_rows_after_the_base_rows(rng):
    q, k, v = (0.3 * rng.standard_normal((2, 3, 6, 8)) for _ in range(3))
    generator = np.random.default_rng(5)
    base = draw_projection("simplex", 16, 8, rng=generator, n_heads=3)
    signs = generator.standard_normal((3, K, 8))
    w = np.concatenate([base, signs], axis=1)
    kw = {"features": "hybrid", "per_head": True}
    drawn = favor_attention(q, k, v, n_components=16, rng=5, projection="simplex", **kw)
    np.testing.assert_array_equal(drawn, favor_attention(q, k, v, projection=w, **kw))
    state = init_decoding_state(8, 8, batch_shape=(2, 3), n_components=16, rng=5,
                                projection="simplex", **kw)  # fmt: skip
    np.testing.assert_array_equal(state.projection, w)


def test_prebuilt_projection_rows_are_checked(rng):
    q = k = v = 0.3 * rng.standard_normal((5, 8))
    with pytest.raises(ValueError, match="followed by 4 sign rows"):
        favor_attention(q, k, v, projection=rng.standard_normal((4, 8)), features="hybrid")
    with pytest.raises(ValueError, match=r"base row count \(rows - 4 sign rows\) 6, got 10"):
        favor_attention(
            q, k, v, projection=rng.standard_normal((10, 8)), n_components=10, features="hybrid"
        )
    favor_attention(
        q, k, v, projection=rng.standard_normal((10, 8)), n_components=6, features="hybrid"
    )


def test_symmetric_kernel_transformer_refuses_hybrid():
    from favor import FavorSampler

    with pytest.raises(ValueError, match="hybrid"):
        FavorSampler("softmax", features="hybrid", n_components=8).fit(np.ones((3, 2)))


# --------------------------------------------------------------------------- torch


@pytest.mark.torch
@pytest.mark.parametrize("causal", [False, True])
def test_torch_equals_numpy_with_the_sign_rule_and_gradients(causal, rng):
    torch = pytest.importorskip("torch")
    from favor.torch import favor_attention as torch_attention

    q, k, v, w = _negative_case(rng, n=24)
    mask = np.zeros((2, 24), dtype=bool)
    mask[1, 20:] = True
    kw = {"projection": w, "features": "hybrid", "causal": causal}
    with pytest.warns(FavorAccuracyWarning, match="normaliser sign rule"):
        expected = favor_attention(q, k, v, key_padding_mask=mask, **kw)
    tensors = [torch.from_numpy(a).requires_grad_() for a in (q, k, v)]
    with pytest.warns(FavorAccuracyWarning, match="normaliser sign rule"):
        got = torch_attention(*tensors, key_padding_mask=torch.from_numpy(mask), **kw)
    np.testing.assert_allclose(got.detach().numpy(), expected, rtol=1e-9, atol=1e-10)
    got.square().sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in tensors)


@pytest.mark.slow
@pytest.mark.torch
def test_torch_gradcheck():
    torch = pytest.importorskip("torch")
    from favor.torch import favor_attention as torch_attention

    rng = np.random.default_rng(1)
    q, k, v = (torch.from_numpy(0.3 * rng.standard_normal((2, 5, 4))).requires_grad_()
               for _ in range(3))  # fmt: skip
    w = torch.from_numpy(rng.standard_normal((6 + K, 4)))
    for causal in (False, True):

        def fn(qq, kk, vv, causal=causal):
            return torch_attention(qq, kk, vv, projection=w, features="hybrid", causal=causal)

        assert torch.autograd.gradcheck(fn, (q, k, v))


@pytest.mark.torch
def test_layer_hybrid_forward_decode_and_prebuilt_projection():
    torch = pytest.importorskip("torch")
    from favor.torch import FavorAttention

    layer = FavorAttention(8, 2, batch_first=True, n_components=6, causal=True,
                           features="hybrid", random_state=0).double()  # fmt: skip
    assert layer.projection.shape == (6 + K, 4)
    x = torch.from_numpy(0.5 * np.random.default_rng(2).standard_normal((3, 9, 8)))
    full, _ = layer(x, x, x, need_weights=False)
    state, pieces = None, []
    for start, stop in [(0, 1), (1, 5), (5, 9)]:
        out, state = layer.decode(x[:, start:stop], state)
        pieces.append(out)
    torch.testing.assert_close(torch.cat(pieces, 1), full, rtol=1e-10, atol=1e-12)
    assert state.kv.shape == (3, 2, SPEC.width(6), 5)
    layer.redraw(rng=1)
    assert layer.projection.shape == (6 + K, 4)
    prebuilt = FavorAttention(8, 2, features="hybrid", projection=np.ones((3 + K, 4)))
    assert prebuilt.n_components == 3


# --------------------------------------------------------------------------- dask


@pytest.mark.parametrize("causal", [False, True])
def test_dask_equals_in_memory_with_the_sign_rule(causal, rng, dask_client):
    da = pytest.importorskip("dask.array")
    from tests.dask_support import compute

    q, k, v, w = _negative_case(rng, n=24)
    kw = {"projection": w, "features": "hybrid", "causal": causal}
    with pytest.warns(FavorAccuracyWarning, match="normaliser sign rule"):
        expected = favor_attention(q, k, v, **kw)
    lazy = favor_attention(*(da.from_array(a, chunks=(1, 8, a.shape[-1])) for a in (q, k, v)), **kw)
    got = compute(dask_client, lazy)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-10)


@pytest.mark.torch
def test_torch_prebuilt_tensor_projection_counts_base_rows(rng):
    torch = pytest.importorskip("torch")
    from favor.torch import favor_attention as torch_attention

    q = torch.from_numpy(0.3 * rng.standard_normal((5, 8)))
    w = torch.from_numpy(rng.standard_normal((6 + K, 8)))
    out = torch_attention(q, q, q, projection=w, n_components=6, features="hybrid")
    expected = favor_attention(q.numpy(), q.numpy(), q.numpy(), projection=w.numpy(),
                               features="hybrid")  # fmt: skip
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="followed by 4 sign rows"):
        torch_attention(q, q, q, projection=w[:K], features="hybrid")
