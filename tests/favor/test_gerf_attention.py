"""OPRF and SADERF in favor_attention: identities against the explicit estimator, masks, causality."""

from __future__ import annotations

import numpy as np
import pytest

from favor import favor_attention
from favor.gerf import GerfParameters, fit_gerf_parameters, gerf_features
from favor.sampling import orthogonal_projection
from tests.conftest import readonly

MAPS = ["oprf", "saderf"]


def _inputs(rng, shape=(2, 3), n=13, d=8, d_v=5, scale=0.5, dtype=np.float64):
    q = (scale * rng.standard_normal((*shape, n, d))).astype(dtype)
    k = (scale * rng.standard_normal((*shape, n, d)) + 0.2).astype(dtype)
    v = rng.standard_normal((*shape, n, d_v)).astype(dtype)
    return readonly(q), readonly(k), readonly(v)


def _explicit(q, k, v, w, params, *, causal=False, mask=None):
    """D^-1 A_hat V with A_hat from gerf_features per group, float64."""
    s = q.shape[-1] ** -0.25
    lead = q.shape[:-2]
    a = np.broadcast_to(params.a, lead)
    psi = None if params.psi is None else np.broadcast_to(params.psi, (*lead, q.shape[-1]))
    out = np.empty((*lead, q.shape[-2], v.shape[-1]))
    for idx in np.ndindex(*lead):
        scale_q = s if psi is None else s * psi[idx]
        scale_k = s if psi is None else s / psi[idx]
        fq = gerf_features(q[idx] * scale_q, w, a=float(a[idx]))
        fk = gerf_features(k[idx] * scale_k, w, a=float(a[idx]))
        a_hat = fq @ fk.T
        if causal:
            a_hat = np.tril(a_hat)
        if mask is not None:
            a_hat = a_hat * ~np.broadcast_to(mask, (*lead, k.shape[-2]))[idx][None, :]
        out[idx] = (a_hat @ v[idx]) / a_hat.sum(axis=-1, keepdims=True)
    return out


@pytest.mark.parametrize("features", MAPS)
@pytest.mark.parametrize("chunk_size", [None, 1, 5])
def test_bidirectional_equals_explicit_estimator(features, chunk_size, rng):
    q, k, v = _inputs(rng)
    w = rng.standard_normal((7, 8))
    out = favor_attention(q, k, v, projection=w, features=features, chunk_size=chunk_size)
    params = fit_gerf_parameters(q, k, features, scale=8**-0.25)
    np.testing.assert_allclose(out, _explicit(q, k, v, w, params), rtol=0, atol=1e-12)


@pytest.mark.parametrize("features", MAPS)
@pytest.mark.parametrize("chunk_size", [None, 1, 5])
def test_causal_with_fixed_parameters_equals_explicit_estimator(features, chunk_size, rng):
    q, k, v = _inputs(rng)
    w = rng.standard_normal((7, 8))
    cal_q, cal_k, _ = _inputs(rng, shape=(3,), n=40)
    params = fit_gerf_parameters(cal_q, cal_k, features, scale=8**-0.25)  # per head
    out = favor_attention(
        q, k, v, projection=w, features=features, causal=True, chunk_size=chunk_size,
        feature_params=params,
    )  # fmt: skip
    expected = _explicit(q, k, v, w, params, causal=True)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("features", MAPS)
@pytest.mark.parametrize("causal", [False, True])
def test_masked_equals_explicit_estimator(features, causal, rng):
    q, k, v = _inputs(rng)
    w = rng.standard_normal((7, 8))
    mask = rng.random((2, 1, 13)) < 0.3
    mask[..., 0] = False
    params = None
    if causal:
        params = fit_gerf_parameters(q[0], k[0], features, scale=8**-0.25)
    out = favor_attention(
        q, k, v, projection=w, features=features, causal=causal, key_padding_mask=mask,
        feature_params=params,
    )  # fmt: skip
    if params is None:
        # Padded keys take no part in the fit either.
        weights = np.broadcast_to(~mask, (2, 3, 13)).astype(float)
        params = fit_gerf_parameters(q, k, features, weights, scale=8**-0.25)
    expected = _explicit(q, k, v, w, params, causal=causal, mask=mask)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("chunk_size", [1, 3, 4, 64])
@pytest.mark.parametrize("features", MAPS)
def test_causal_outputs_do_not_depend_on_the_future(features, chunk_size, rng):
    q, k, v = _inputs(rng, shape=(2,), n=12)
    w = rng.standard_normal((6, 8))
    params = fit_gerf_parameters(q, k, features, scale=8**-0.25)
    kwargs = {"projection": w, "features": features, "causal": True, "chunk_size": chunk_size}
    base = favor_attention(q, k, v, feature_params=params, **kwargs)
    for t in (0, 4, 7, 10):
        q2, k2, v2 = q.copy(), k.copy(), v.copy()
        q2[:, t + 1 :] = 6.0 * rng.standard_normal(q2[:, t + 1 :].shape)
        k2[:, t + 1 :] = 6.0 * rng.standard_normal(k2[:, t + 1 :].shape)
        v2[:, t + 1 :] = 100.0 * rng.standard_normal(v2[:, t + 1 :].shape)
        out = favor_attention(q2, k2, v2, feature_params=params, **kwargs)
        np.testing.assert_array_equal(out[:, : t + 1], base[:, : t + 1])
        assert not np.array_equal(out[:, t + 1 :], base[:, t + 1 :])


@pytest.mark.parametrize("features", MAPS)
def test_causal_refuses_to_fit_on_the_sequence(features, rng):
    q, k, v = _inputs(rng, shape=(2,))
    with pytest.raises(ValueError, match="feature_params fixed in advance"):
        favor_attention(q, k, v, features=features, causal=True, n_components=8)


def test_feature_params_must_match(rng):
    q, k, v = _inputs(rng, shape=(2,))
    oprf = fit_gerf_parameters(q, k, "oprf")
    with pytest.raises(ValueError, match="fitted for features='saderf'"):
        favor_attention(q, k, v, features="saderf", feature_params=oprf, n_components=8)
    bad = GerfParameters("oprf", np.zeros(5))
    with pytest.raises(ValueError, match="broadcast"):
        favor_attention(q, k, v, features="oprf", feature_params=bad, n_components=8)
    with pytest.raises(ValueError, match="feature_params applies"):
        favor_attention(q, k, v, features="positive", feature_params=oprf, n_components=8)


@pytest.mark.parametrize("features", MAPS)
@pytest.mark.parametrize("causal", [False, True])
def test_float32_close_to_float64_and_finite(features, causal, rng):
    q, k, v = _inputs(rng, scale=3.0)
    w = orthogonal_projection(16, 8, rng=rng)
    params = fit_gerf_parameters(q, k, features, scale=8**-0.25) if causal else None
    kw = {"projection": w, "features": features, "causal": causal, "feature_params": params}
    out64 = favor_attention(q, k, v, **kw)
    out32 = favor_attention(*(a.astype(np.float32) for a in (q, k, v)), **kw)
    assert out32.dtype == np.float32
    assert np.all(np.isfinite(out32))
    np.testing.assert_allclose(out32, out64, rtol=0, atol=2e-4)


def test_attention_error_at_a_zero_is_the_positive_formula(rng):
    from favor import estimate_attention_error
    from favor.gerf import attention_error_terms

    q, k, _ = _inputs(rng, shape=(), n=6)
    s2 = 8**-0.5
    visible = np.ones((1, 6, 6), dtype=bool)
    linear, gram, offset = attention_error_terms(q[None], k[None], visible, np.zeros(1), None)
    # A = 0: g_jj' = u_j.u_j' with u_j = s(q + k_j), p_j the softmax weights.
    logits = (q @ k.T) * s2
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    for i in range(6):
        u = (q[i] + k) * 8**-0.25
        g = linear[0, i][:, None] + linear[0, i][None, :] + gram[0] + offset[0, i]
        expected = np.log(p[i])[:, None] + np.log(p[i])[None, :] + u @ u.T
        np.testing.assert_allclose(g, expected, rtol=1e-10, atol=1e-10)
    got = estimate_attention_error(q, k, n_components=32, features="oprf")
    assert np.all(np.isfinite(got))


@pytest.mark.statistical
@pytest.mark.parametrize("features", MAPS)
def test_estimate_attention_error_matches_monte_carlo(features):
    """Relative variance of one normaliser over 200000 iid projections vs the prediction.

    Rule as for FAVOR+ (tests/favor/test_attention.py): |log(empirical / predicted)| below
    5 standard errors from the sample kurtosis; negative control: the prediction for m/2.
    """
    from favor import estimate_attention_error

    rng = np.random.default_rng(1320)
    d, m, n = 8, 4, 200_000
    q = 0.6 * rng.standard_normal((1, d)) * np.exp(0.5 * rng.standard_normal(d))
    k = 0.6 * rng.standard_normal((5, d))
    s = d**-0.25
    params = fit_gerf_parameters(q, k, features, scale=s)
    psi = np.ones(d) if params.psi is None else params.psi
    w = rng.standard_normal((n * m, d))
    fq = gerf_features(s * q * psi, w, a=float(params.a)).reshape(n, m)
    fk = gerf_features(s * k / psi, w, a=float(params.a)).reshape(5, n, m)
    d_hat = n * np.einsum("nm,jnm->n", fq, fk) / np.exp((s * q) @ (s * k).T).sum()
    centred = d_hat - 1.0
    empirical = np.mean(centred**2)
    se = np.sqrt((np.mean(centred**4) - empirical**2) / n) / empirical
    predicted = estimate_attention_error(q, k, n_components=m, features=features)[0] ** 2
    assert abs(np.log(empirical / predicted)) < 5 * se
    wrong = estimate_attention_error(q, k, n_components=m // 2, features=features)[0] ** 2
    assert abs(np.log(empirical / wrong)) >= 5 * se


def test_estimate_attention_error_causal_needs_parameters(rng):
    from favor import estimate_attention_error

    q, k, _ = _inputs(rng, shape=(2,))
    with pytest.raises(ValueError, match="feature_params fixed in advance"):
        estimate_attention_error(q, k, features="oprf", causal=True)
    params = fit_gerf_parameters(q, k, "oprf")
    out = estimate_attention_error(q, k, features="oprf", causal=True, feature_params=params)
    assert out.shape == (2, 13)
    assert np.all(np.isfinite(out))


@pytest.mark.parametrize("features", MAPS)
@pytest.mark.parametrize("per_head", [False, True])
def test_decoding_equals_causal(features, per_head, rng):
    from favor import decode_step, init_decoding_state
    from favor.gerf import fit_feature_params

    q, k, v = _inputs(rng, n=9)
    w = rng.standard_normal((3, 16, 8))
    w = w if per_head else w[0]
    cal_q, cal_k, _ = _inputs(rng, shape=(3,), n=30)
    params = fit_feature_params(cal_q, cal_k, features=features)  # one set per head
    kwargs = {"projection": w, "features": features, "feature_params": params}
    full = favor_attention(q, k, v, causal=True, per_head=per_head, **kwargs)
    state = init_decoding_state(8, 5, batch_shape=(2, 3), per_head=per_head, **kwargs)
    rows = []
    for t in range(9):
        out, state = decode_step(state, q[..., t, :], k[..., t, :], v[..., t, :])
        rows.append(out)
    np.testing.assert_allclose(np.stack(rows, axis=-2), full, rtol=0, atol=1e-12)


def test_decoding_needs_fixed_parameters():
    from favor import init_decoding_state

    with pytest.raises(ValueError, match="feature_params fixed in advance"):
        init_decoding_state(8, 4, features="saderf", n_components=8)
    with pytest.raises(ValueError, match="feature_params applies"):
        init_decoding_state(
            8, 4, n_components=8, feature_params=GerfParameters("oprf", np.zeros(()))
        )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("stride", [1, 3])
@pytest.mark.parametrize("weighted", [False, True])
def test_column_moments_match_their_loop_twin(weighted, stride, dtype, rng):
    """favor._jit.gerf_rows.column_moments against plain float64 loops over the rows."""
    from favor._jit.gerf_rows import column_moments

    x = rng.standard_normal((3, 10, 4)).astype(dtype)
    w = (rng.random((3, 10)) < 0.6).astype(np.float64) if weighted else np.zeros((0, 0))
    sums, squares, counts = np.empty((3, 4)), np.empty((3, 4)), np.empty(3)
    column_moments(x, stride, w, sums, squares, counts)
    for g in range(3):
        rows = range(0, 10, stride)
        weight = [float(w[g, i]) if weighted else 1.0 for i in rows]
        assert counts[g] == sum(weight)
        for j in range(4):
            values = [float(x[g, i, j]) for i in rows]
            expected = sum(a * b for a, b in zip(weight, values, strict=True))
            assert sums[g, j] == pytest.approx(expected, rel=1e-13, abs=1e-13)
            expected = sum(a * b * b for a, b in zip(weight, values, strict=True))
            assert squares[g, j] == pytest.approx(expected, rel=1e-13, abs=1e-13)


def test_attention_fit_uses_evenly_spaced_positions(rng):
    """Above FIT_POSITIONS per group the fit reads every (L // FIT_POSITIONS)-th position:
    the same parameters as fitting the strided sample itself."""
    from favor.gerf import FIT_POSITIONS, resolve_parameters

    n = 2 * FIT_POSITIONS + 5
    q, k = rng.standard_normal((2, 2, n, 3)), rng.standard_normal((2, 2, n, 3)) + 0.3
    weights = (rng.random((2, n)) < 0.8).astype(np.float64)
    for features in MAPS:
        a, psi = resolve_parameters(features, None, q, k, weights, False, 0.7)
        ref = fit_gerf_parameters(q[..., ::2, :], k[..., ::2, :], features, weights[..., ::2], 0.7)
        np.testing.assert_allclose(a, ref.a.reshape(-1), rtol=1e-12)
        if psi is not None:
            np.testing.assert_allclose(psi, ref.psi.reshape(-1, 3), rtol=1e-12)
