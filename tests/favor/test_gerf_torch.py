"""oprf and saderf on tensors: parity with the NumPy engine, autograd, causality."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from favor import favor_attention  # noqa: E402
from favor.gerf import fit_feature_params  # noqa: E402
from favor.torch._heads import merge, project  # noqa: E402

pytestmark = pytest.mark.torch
MAPS = ["oprf", "saderf"]


def _inputs(seed=0, shape=(2, 3), n=12, d=8):
    rng = np.random.default_rng(seed)
    q = 0.5 * rng.standard_normal((*shape, n, d)) * np.exp(0.3 * rng.standard_normal(d))
    k = 0.5 * rng.standard_normal((*shape, n, d)) + 0.1
    v = rng.standard_normal((*shape, n, 5))
    return q, k, v, rng


@pytest.mark.parametrize("features", MAPS)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("per_head", [False, True])
def test_torch_equals_numpy_engine(features, causal, per_head):
    q, k, v, rng = _inputs()
    w = rng.standard_normal((3, 16, 8)) if per_head else rng.standard_normal((16, 8))
    mask = np.zeros((2, 1, 12), dtype=bool)
    mask[0, 0, 9:] = True
    params = fit_feature_params(q[0], k[0], features=features) if causal else None
    kw = {"features": features, "projection": w, "per_head": per_head, "causal": causal}
    expected = favor_attention(q, k, v, key_padding_mask=mask, feature_params=params, **kw)
    got = favor_attention(
        *(torch.from_numpy(a) for a in (q, k, v)),
        key_padding_mask=torch.from_numpy(mask),
        feature_params=params,
        **kw,
    )
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("features", MAPS)
def test_gradcheck(features):
    q, k, v, rng = _inputs(shape=(2,), n=5, d=4)
    w = torch.from_numpy(rng.standard_normal((6, 4)))
    params = fit_feature_params(q, k, features=features)
    args = [torch.from_numpy(a).requires_grad_() for a in (q, k, v)]
    for causal in (False, True):

        def fn(qq, kk, vv, causal=causal):
            return favor_attention(
                qq, kk, vv, projection=w, features=features, causal=causal,
                feature_params=params,
            )  # fmt: skip

        assert torch.autograd.gradcheck(fn, args)


@pytest.mark.parametrize("features", MAPS)
def test_fitted_parameters_carry_no_gradient(features):
    """Fitting inside the call gives the values and gradients of passing the same parameters
    fixed: A and Psi are constants for autograd (stop-gradient, as in the official code)."""
    q, k, v, rng = _inputs()
    w = rng.standard_normal((16, 8))
    fixed = fit_feature_params(q, k, features=features)
    grads = []
    for params in (None, fixed):
        tq, tk, tv = (torch.from_numpy(a).requires_grad_() for a in (q, k, v))
        out = favor_attention(tq, tk, tv, projection=w, features=features, feature_params=params)
        out.square().sum().backward()
        grads.append([t.grad for t in (tq, tk, tv)])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("features", MAPS)
def test_causal_outputs_do_not_depend_on_the_future(features):
    q, k, v, rng = _inputs(shape=(2,))
    w = rng.standard_normal((16, 8))
    params = fit_feature_params(q, k, features=features)
    kw = {"projection": w, "features": features, "causal": True, "feature_params": params}
    base = favor_attention(*(torch.from_numpy(a) for a in (q, k, v)), **kw)
    for t in (0, 5, 10):
        k2, v2 = k.copy(), v.copy()
        k2[:, t + 1 :] = 6.0 * rng.standard_normal(k2[:, t + 1 :].shape)
        v2[:, t + 1 :] = 100.0 * rng.standard_normal(v2[:, t + 1 :].shape)
        out = favor_attention(*(torch.from_numpy(a) for a in (q, k2, v2)), **kw)
        assert torch.equal(out[:, : t + 1], base[:, : t + 1])
        assert not torch.equal(out[:, t + 1 :], base[:, t + 1 :])
    with pytest.raises(ValueError, match="feature_params fixed in advance"):
        favor_attention(*(torch.from_numpy(a) for a in (q, k, v)), features=features, causal=True)


def test_float32_close_to_float64():
    q, k, v, rng = _inputs()
    w = rng.standard_normal((16, 8))
    out64 = favor_attention(
        *(torch.from_numpy(a) for a in (q, k, v)), projection=w, features="saderf"
    )
    out32 = favor_attention(
        *(torch.from_numpy(a).float() for a in (q, k, v)), projection=w, features="saderf"
    )
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32.double(), out64, rtol=0, atol=2e-5)


# ------------------------------------------------------------- FavorAttention (the layer)


def _layer(features, causal=True, seed=3, **kw):
    from favor.torch import FavorAttention

    layer = FavorAttention(
        8, 2, batch_first=True, n_components=6, causal=causal, features=features,
        random_state=seed, **kw,
    )  # fmt: skip
    return layer.double()


def _tokens(seed, *shape):
    return torch.from_numpy(0.7 * np.random.default_rng(seed).standard_normal(shape))


@pytest.mark.parametrize("features", MAPS)
def test_layer_causal_needs_calibration_then_equals_the_functional_form(features):
    layer = _layer(features)
    x = _tokens(1, 3, 11, 8)
    with pytest.raises(ValueError, match=r"call layer\.calibrate"):
        layer(x, x, x)
    params = layer.calibrate(_tokens(2, 4, 20, 8))
    assert params is layer.feature_params
    assert params.a.shape == (2,)
    assert (params.psi is not None) == (features == "saderf")
    # Per head, pooled over the calibration batch: fit_feature_params on the layer's heads.
    calib = _tokens(2, 4, 20, 8)
    with torch.no_grad():
        q, k, _ = project(layer, calib, calib, calib, torch.float64)
    pooled = [t.transpose(0, 1).reshape(2, -1, 4).numpy() for t in (q, k)]
    expected_params = fit_feature_params(*pooled, features=features)
    np.testing.assert_allclose(params.a, expected_params.a, rtol=1e-12)
    out, _ = layer(x, x, x, need_weights=False)
    with torch.no_grad():
        q, k, v = project(layer, x, x, x, torch.float64)
    heads = favor_attention(
        q.numpy(), k.numpy(), v.numpy(), projection=layer.projection.numpy(),
        features=features, causal=True, feature_params=params,
    )  # fmt: skip
    expected = merge(layer, torch.from_numpy(heads), torch.float64)
    torch.testing.assert_close(out, expected, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("features", MAPS)
def test_layer_causal_future_leak_decoding_and_gradients(features):
    layer = _layer(features)
    layer.calibrate(_tokens(2, 4, 20, 8))
    x = _tokens(1, 3, 11, 8)
    base, _ = layer(x, x, x, need_weights=False)
    for t in (0, 4, 8):
        x2 = x.clone()
        x2[:, t + 1 :] = 5.0 * _tokens(t, 3, 10 - t, 8)
        out, _ = layer(x2, x2, x2, need_weights=False)
        assert torch.equal(out[:, : t + 1], base[:, : t + 1])
        assert not torch.equal(out[:, t + 1 :], base[:, t + 1 :])
    state, pieces = None, []
    for start, stop in [(0, 1), (1, 5), (5, 6), (6, 11)]:
        out, state = layer.decode(x[:, start:stop], state)
        pieces.append(out)
    torch.testing.assert_close(torch.cat(pieces, 1), base, rtol=1e-11, atol=1e-12)
    # Gradients reach the layer's weights; A and Psi stay NumPy constants.
    xg = x.clone().requires_grad_()
    layer(xg, xg, xg, need_weights=False)[0].square().sum().backward()
    assert torch.isfinite(xg.grad).all()
    assert layer.in_proj_weight.grad.abs().sum() > 0
    assert isinstance(layer.feature_params.a, np.ndarray)


@pytest.mark.parametrize("features", MAPS)
def test_layer_feature_params_travel_in_the_state_dict(features):
    import io

    layer = _layer(features)
    layer.calibrate(_tokens(2, 4, 20, 8))
    buffer = io.BytesIO()
    torch.save(layer.state_dict(), buffer)
    buffer.seek(0)
    other = _layer(features, seed=9)
    other.load_state_dict(torch.load(buffer, weights_only=False))
    np.testing.assert_array_equal(other.feature_params.a, layer.feature_params.a)
    x = _tokens(1, 2, 7, 8)
    torch.testing.assert_close(other(x, x, x)[0], layer(x, x, x)[0], rtol=0, atol=0)


def test_layer_feature_params_are_checked():
    params = fit_feature_params(np.ones((3, 5, 4)), np.ones((3, 5, 4)), features="oprf")
    with pytest.raises(ValueError, match="one set per head"):
        _layer("oprf", feature_params=params)  # 3 sets for 2 heads
    with pytest.raises(ValueError, match="fitted for features='saderf'"):
        _layer("saderf", feature_params=fit_feature_params(np.ones((5, 4)), np.ones((5, 4))))
    with pytest.raises(ValueError, match="maps fitted per group"):
        _layer("positive", feature_params=params)
    with pytest.raises(ValueError, match="calibrate applies"):
        _layer("positive").calibrate(_tokens(0, 1, 3, 8))
