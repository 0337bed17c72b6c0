"""oprf and saderf on tensors: parity with the NumPy engine, autograd, causality."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from favor import favor_attention  # noqa: E402
from favor.gerf import fit_feature_params  # noqa: E402

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
