"""The registry is the single source: every backend agrees with each map's NumPy formula.

Shared contract tests are parametrised over :data:`favor.registry.FEATURE_MAPS` and
:data:`favor.registry.SAMPLERS`, so a new entry gets them with no edit here. The toy map
below is registered only through the supported hook (``register_feature_map``) and then
works, with no other edit anywhere, in the NumPy maps, the jit attention in both
directions, decoding, ``FavorSampler`` and :mod:`favor.torch`.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

import favor
from favor import registry
from favor._jit.feature_rows import exp_nonpositive, jit_rows
from favor.features import half_sq_norms, project
from tests.conftest import readonly

MAPS = sorted(registry.FEATURE_MAPS)
ATTENTION_MAPS = [name for name in MAPS if registry.FEATURE_MAPS[name].jit is not None]
TORCH_MAPS = [name for name in MAPS if registry.FEATURE_MAPS[name].torch is not None]


# --------------------------------------------------------------------------- the toy map
# "twin": the positive map written twice, (phi+(x), phi+(x)) / sqrt(2). Its dot products
# equal those of positive features exactly, so every backend has an exact expected value;
# it has no exponent_signs, so torch takes the generic split-form path.


def _twin_numpy(x, projection, kernel, scale, params, is_key):
    phi = registry.FEATURE_MAPS["positive"].numpy_formula()(
        x, projection, kernel, scale, params, is_key
    )
    return np.concatenate([phi, phi], axis=-1) * phi.dtype.type(math.sqrt(0.5))


@jit_rows
def _twin_rows(logits, half_sq_norms, params, is_key, out, log_scale, shifted, scratch):
    n, m = logits.shape
    const = 0.5 * np.log(2 * m)
    for i in range(n):
        top = logits[i, 0]
        for r in range(m):
            top = logits[i, r] if logits[i, r] > top else top
        for r in range(m):
            shifted[r] = logits[i, r] - top
            shifted[m + r] = logits[i, r] - top
        exp_nonpositive(shifted, out[i], scratch)
        log_scale[i] = top - half_sq_norms[i] - const


def _twin_torch(logits, half_sq_norms, params, is_key):
    import torch

    m = logits.shape[-1]
    top = logits.amax(dim=-1, keepdim=True)
    psi = torch.exp(logits - top)
    return torch.cat([psi, psi], dim=-1), top[..., 0] - half_sq_norms - 0.5 * math.log(2 * m)


TWIN = registry.FeatureMap(
    "twin",
    _twin_numpy,
    2,
    ("softmax", "rbf"),
    nonnegative=True,
    jit=_twin_rows,
    torch=_twin_torch,
)


@pytest.fixture
def twin():
    with registry.register_feature_map(TWIN):
        yield TWIN


@pytest.fixture
def inputs():
    rng = np.random.default_rng(11)
    q, k, v = (readonly(0.4 * rng.standard_normal((2, 3, 9, 6))) for _ in range(3))
    return q, k, v, rng.standard_normal((8, 6))


# --------------------------------------------------------------------------- the hook


def test_public_tables_are_read_only():
    with pytest.raises(TypeError):
        registry.FEATURE_MAPS["x"] = TWIN  # type: ignore[index]
    with pytest.raises(TypeError):
        registry.SAMPLERS["x"] = registry.SAMPLERS["iid"]  # type: ignore[index]
    assert not hasattr(favor, "FEATURE_MAPS")
    assert not hasattr(favor, "SAMPLERS")


def test_register_is_temporary_and_refuses_silent_shadowing():
    with registry.register_feature_map(TWIN):
        assert registry.FEATURE_MAPS["twin"] is TWIN
        with pytest.raises(ValueError, match="already registered"):
            with registry.register_feature_map(TWIN):
                pass
    assert "twin" not in registry.FEATURE_MAPS
    original = registry.SAMPLERS["iid"]
    shadow = dataclasses.replace(original, marginal="shadow")
    with registry.register_sampler(shadow, replace=True):
        assert registry.SAMPLERS["iid"] is shadow
    assert registry.SAMPLERS["iid"] is original
    with pytest.raises(ValueError, match="FeatureMap"):
        registry.register_feature_map(original)  # type: ignore[arg-type]


def test_unknown_names_list_the_registered_choices():
    with pytest.raises(ValueError, match="features must be one of 'positive'"):
        registry.feature_map("cosine")
    with pytest.raises(ValueError, match="projection must be one of"):
        registry.sampler("sobol-ish")


def test_sampler_refused_for_a_map_it_does_not_keep_unbiased(inputs):
    q, k, v, _ = inputs
    narrow = dataclasses.replace(registry.SAMPLERS["iid"], unbiased_for=("positive",))
    with registry.register_sampler(narrow, replace=True):
        favor.favor_attention(q, k, v, projection="iid", n_components=4, rng=0)
        with pytest.raises(ValueError, match="not unbiased for features='relu'"):
            favor.favor_attention(q, k, v, projection="iid", features="relu", rng=0)


# ----------------------------------------------------------- every map, every backend


@pytest.mark.parametrize("name", MAPS)
def test_entry_is_consistent(name):
    spec = registry.FEATURE_MAPS[name]
    assert spec.name == name
    x = np.random.default_rng(0).standard_normal((3, 4))
    w = np.random.default_rng(1).standard_normal((5, 4))
    for kernel in spec.kernels:
        phi = spec(x, w, kernel=kernel)
        assert phi.shape == (3, spec.width_for_rows(5))
        if spec.nonnegative:
            assert (phi >= 0).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ATTENTION_MAPS)
def test_jit_split_form_equals_numpy_formula(name, dtype):
    """exp(r) e == phi(s x) for the map's attention kernel (module docstring, step 2)."""
    spec = registry.FEATURE_MAPS[name]
    rng = np.random.default_rng(2)
    x = (0.7 * rng.standard_normal((6, 5))).astype(dtype)
    w = rng.standard_normal((7, 5))
    scale = 0.8
    logits = np.empty((6, 7), dtype=dtype)
    project(x, w, scale, logits)
    width = spec.width_for_rows(7)
    e = np.empty((6, width), dtype=dtype)
    r = np.empty(6, dtype=dtype)
    params = spec.fit_params(None, w)
    work = np.empty(width, dtype), np.empty(width, dtype)
    spec.jit_rows()(logits, half_sq_norms(x, scale), params, True, e, r, *work)
    expected = spec.numpy_formula()(x, w, spec.kernels[0], scale, params, True)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(np.exp(r.astype(np.float64))[:, None] * e, expected, rtol=tol)


@pytest.mark.torch
@pytest.mark.parametrize("name", TORCH_MAPS)
def test_torch_public_maps_equal_numpy_formula(name):
    torch = pytest.importorskip("torch")
    from favor.torch import random_features

    spec = registry.FEATURE_MAPS[name]
    rng = np.random.default_rng(3)
    x, w = 0.7 * rng.standard_normal((2, 4, 5)), rng.standard_normal((6, 5))
    for kernel in spec.kernels:
        got = random_features(
            torch.from_numpy(x), torch.from_numpy(w), features=name, kernel=kernel
        )
        np.testing.assert_allclose(got.numpy(), spec(x, w, kernel=kernel), rtol=1e-12)


# --------------------------------------------------- a toy map gets every backend for free


def test_toy_map_numpy(twin, inputs):
    _, _, _, w = inputs
    x = np.random.default_rng(4).standard_normal((5, 6))
    phi = favor.random_features(x, w, features="twin")
    positive = favor.features.positive_features(x, w)
    np.testing.assert_allclose(phi @ phi.T, positive @ positive.T, rtol=1e-12)


@pytest.mark.parametrize("causal", [False, True])
def test_toy_map_jit_attention_and_decoding(twin, inputs, causal):
    q, k, v, w = inputs
    mask = np.zeros((2, 1, 9), dtype=bool)
    mask[1, 0, 5:] = True
    kw = {"projection": w, "causal": causal, "key_padding_mask": mask, "chunk_size": 4}
    got = favor.favor_attention(q, k, v, features="twin", **kw)
    np.testing.assert_allclose(got, favor.favor_attention(q, k, v, **kw), rtol=1e-10, atol=1e-12)
    if causal:
        state = favor.init_decoding_state(6, 6, batch_shape=(2, 3), projection=w, features="twin")
        rows = []
        for t in range(9):
            out, state = favor.decode_step(state, q[..., t, :], k[..., t, :], v[..., t, :])
            rows.append(out)
        full = favor.favor_attention(q, k, v, features="twin", projection=w, causal=True)
        np.testing.assert_allclose(np.stack(rows, axis=-2), full, rtol=1e-10, atol=1e-12)


def test_toy_map_transformer(twin):
    x = np.random.default_rng(5).standard_normal((6, 4))
    est = favor.FavorSampler("softmax", gamma=0.3, features="twin", n_components=8, random_state=0)
    z = est.fit_transform(x)
    assert z.shape == (6, 16)
    ref = favor.FavorSampler(
        "softmax", gamma=0.3, features="positive", n_components=8, random_state=0
    ).fit_transform(x)
    np.testing.assert_allclose(z @ z.T, ref @ ref.T, rtol=1e-12)


@pytest.mark.torch
@pytest.mark.parametrize("causal", [False, True])
def test_toy_map_torch_attention_and_layer(twin, inputs, causal):
    torch = pytest.importorskip("torch")
    from favor.torch import FavorAttention

    q, k, v, w = inputs
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    got = favor.favor_attention(tq, tk, tv, features="twin", projection=w, causal=causal)
    expected = favor.favor_attention(q, k, v, features="twin", projection=w, causal=causal)
    np.testing.assert_allclose(got.detach().numpy(), expected, rtol=1e-10, atol=1e-12)
    got.sum().backward()
    assert torch.isfinite(tq.grad).all()
    layers = [
        FavorAttention(12, 2, n_components=8, causal=causal, features=f, random_state=3)
        for f in ("twin", "positive")
    ]
    x = torch.from_numpy(np.random.default_rng(6).standard_normal((2, 5, 12)))
    with torch.no_grad():
        outs = [layer.double()(x, x, x)[0] for layer in layers]
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-10, atol=1e-12)
