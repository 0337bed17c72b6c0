"""favor.torch functional attention: parity with the NumPy engine, autograd, causality, masks.

Everything here runs on CPU in a few seconds; CUDA checks live in test_torch_gpu.py.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import favor  # noqa: E402
from favor.registry import FEATURE_MAPS  # noqa: E402
from favor.sampling import draw_projection  # noqa: E402
from favor.torch import favor_attention, random_features, softmax_attention  # noqa: E402
from favor.torch._causal import (  # noqa: E402
    FLOOR,
    CausalLinearAttention,
    causal_linear_attention,
)
from favor.torch.attention import resolve_projection  # noqa: E402

pytestmark = pytest.mark.torch

# Maps fitted per group ("oprf", "saderf"): tests/favor/test_gerf_torch.py.
FEATURES = [name for name, spec in FEATURE_MAPS.items() if spec.prepare is None]
NONNEGATIVE = [name for name in FEATURES if FEATURE_MAPS[name].nonnegative]


def _data(rng, shape=(2, 3, 40, 8), d_v=5, scale=0.7):
    q, k = (rng.standard_normal(shape) * scale for _ in range(2))
    v = rng.standard_normal((*shape[:-1], d_v))
    mask = rng.random((shape[0], 1, shape[-2])) < 0.3
    return q, k, v, mask


def _t(*arrays):
    return [None if a is None else torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]


def _rel(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


def _reference(q, k, v, w, name, causal, mask=None):
    """D^-1 A_hat V with favor.features maps, explicit (float64)."""
    spec = FEATURE_MAPS[name]
    scale = q.shape[-1] ** -0.25
    phi_q = spec(q * scale, w)
    phi_k = spec(k * scale, w, is_key=True)
    a = phi_q @ np.swapaxes(phi_k, -1, -2)
    if causal:
        a = np.tril(a)
    if mask is not None:
        a = a * ~mask[..., None, :]
    num, den = a @ v, a.sum(-1, keepdims=True)
    return np.where(den > 0, num / np.where(den > 0, den, 1), 0)  # the normaliser sign rule


# ------------------------------------------------------------------------------- parity


@pytest.mark.parametrize("name", FEATURES)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_parity_float64_with_numpy_engine(rng, name, causal, masked):
    q, k, v, mask = _data(rng)
    mask = mask if masked else None
    kw = {"n_components": 16, "causal": causal, "rng": 7, "features": name}
    expected = favor.favor_attention(q, k, v, key_padding_mask=mask, **kw)
    tq, tk, tv, tm = _t(q, k, v, mask)
    got = favor_attention(tq, tk, tv, key_padding_mask=tm, chunk_size=8, **kw)
    assert got.dtype == torch.float64
    assert _rel(got.numpy(), expected) <= 1e-10


@pytest.mark.parametrize("name", NONNEGATIVE)
@pytest.mark.parametrize("causal", [False, True])
def test_parity_float32_with_numpy_engine(rng, name, causal):
    # Nonnegative maps only: trigonometric normalisers are signed sums that can nearly
    # cancel, so two float32 roundings legitimately differ by more than 1e-5 there
    # (the float64 test above covers that map).
    q, k, v, mask = (x.astype(np.float32) for x in _data(rng))
    mask = mask.astype(bool)
    kw = {"n_components": 32, "causal": causal, "rng": 1, "features": name}
    expected = favor.favor_attention(q, k, v, key_padding_mask=mask, **kw)
    tq, tk, tv, tm = _t(q, k, v, mask)
    got = favor_attention(tq, tk, tv, key_padding_mask=tm, **kw)
    assert got.dtype == torch.float32
    assert _rel(got.numpy(), expected) <= 1e-5


@pytest.mark.parametrize("name", FEATURES)
@pytest.mark.parametrize("causal", [False, True])
def test_matches_explicit_reference(rng, name, causal):
    q, k, v, mask = _data(rng, shape=(2, 2, 21, 4))
    w = draw_projection("orthogonal", 12, 4, rng=rng)
    expected = _reference(q, k, v, w, name, causal, mask)
    tq, tk, tv, tm = _t(q, k, v, mask)
    got = favor_attention(
        tq, tk, tv, projection=w, features=name, causal=causal, key_padding_mask=tm, chunk_size=5
    )
    assert _rel(got.numpy(), expected) <= 1e-10


def test_per_head_parity_with_numpy_engine(rng):
    q, k, v, _ = _data(rng)
    kw = {"n_components": 8, "rng": 2, "per_head": True, "causal": True}
    expected = favor.favor_attention(q, k, v, **kw)
    got = favor_attention(*_t(q, k, v), **kw)
    assert _rel(got.numpy(), expected) <= 1e-10


def test_per_head_prebuilt_projection_parity_and_shape_check(rng):
    q, k, v, mask = _data(rng)
    w = draw_projection("iid", 8, 8, rng=rng, n_heads=3)
    kw = {"per_head": True, "causal": True, "projection": w}
    expected = favor.favor_attention(q, k, v, key_padding_mask=mask, **kw)
    tq, tk, tv, tm = _t(q, k, v, mask)
    got = favor_attention(tq, tk, tv, key_padding_mask=tm, **kw)
    assert _rel(got.numpy(), expected) <= 1e-10
    with pytest.raises(
        ValueError, match=r"projection must have shape \(n_heads, n_components, d\)"
    ):
        favor_attention(tq, tk, tv, per_head=True, projection=w[:2])


def test_projection_equals_numpy_draw_for_a_seed():
    for per_head in (None, 3):
        expected = draw_projection(
            "orthogonal", 20, 6, rng=np.random.default_rng(11), n_heads=per_head
        )
        got = resolve_projection(
            None, 20, 6, 11, per_head, dtype=torch.float64, device=torch.device("cpu")
        )
        np.testing.assert_array_equal(got.numpy(), expected)
    got32 = resolve_projection(
        "iid", None, 6, 4, None, dtype=torch.float32, device=torch.device("cpu")
    )
    expected32 = draw_projection("iid", 256, 6, rng=np.random.default_rng(4)).astype(np.float32)
    np.testing.assert_array_equal(got32.numpy(), expected32)


def test_top_level_dispatch_returns_tensors(rng):
    q, k, v, mask = _data(rng, shape=(2, 1, 9, 4))
    tq, tk, tv, tm = _t(q, k, v, mask)
    got = favor.favor_attention(tq, tk, tv, key_padding_mask=tm, rng=0, causal=True)
    direct = favor_attention(tq, tk, tv, key_padding_mask=tm, rng=0, causal=True)
    assert isinstance(got, torch.Tensor)
    assert torch.equal(got, direct)
    exact = favor.softmax_attention(tq, tk, tv, causal=True)
    assert isinstance(exact, torch.Tensor)


@pytest.mark.parametrize("name", FEATURES)
def test_feature_maps_match_numpy(rng, name):
    x = rng.standard_normal((3, 5, 6)) * 0.5
    w = draw_projection("iid", 7, 6, rng=rng)
    for kernel in FEATURE_MAPS[name].kernels:
        expected = FEATURE_MAPS[name](x, w, kernel=kernel)
        got = random_features(*_t(x, w), features=name, kernel=kernel)
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("causal", [False, True])
def test_exact_softmax_attention_parity(rng, causal):
    q, k, v, mask = _data(rng, shape=(2, 2, 12, 4))
    mask[0, 0, :] = True  # a batch entry with every key padded: zero rows
    expected = favor.softmax_attention(q, k, v, causal=causal, key_padding_mask=mask)
    got = softmax_attention(*_t(q, k, v, mask)[:3], causal=causal, key_padding_mask=_t(mask)[0])
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-14)
    assert not got[0].any()


def test_approximates_exact_attention(rng):
    q, k, v, _ = _data(rng, shape=(1, 2, 64, 8), scale=0.5)
    tq, tk, tv = _t(q, k, v)
    exact = softmax_attention(tq, tk, tv)
    err = (favor_attention(tq, tk, tv, n_components=1024, rng=0) - exact).abs().max()
    bad = (
        (favor_attention(tq, tk, tv, n_components=1024, rng=0) - tv.mean(-2, keepdim=True))
        .abs()
        .max()
    )
    assert err < 0.1 < bad  # close to softmax attention, not to uniform attention


# ------------------------------------------------------------------------------ autograd


def _grad_inputs(shape=(1, 2, 9, 3), seed=0):
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randn(*shape, dtype=torch.float64, generator=g, requires_grad=True) for _ in range(3)
    ]


@pytest.mark.parametrize("name", ["positive", "trigonometric", "hyperbolic", "relu"])
@pytest.mark.parametrize("causal", [False, True])
def test_gradcheck_with_mask(name, causal):
    q, k, v = _grad_inputs()
    w = torch.from_numpy(draw_projection("orthogonal", 5, 3, rng=1)).requires_grad_(True)
    mask = torch.zeros(1, 1, 9, dtype=torch.bool)
    mask[..., [0, 4]] = True

    def fn(q, k, v, w):
        return favor_attention(
            q, k, v, projection=w, features=name, causal=causal, key_padding_mask=mask, chunk_size=4
        )

    # fast_mode compares J u with autograd's v^T J along random directions (still exact to
    # finite-difference accuracy); the full Jacobian is checked once below.
    assert torch.autograd.gradcheck(fn, (q, k, v, w), fast_mode=True)


@pytest.mark.slow
def test_gradcheck_full_jacobian_causal_positive():
    q, k, v = _grad_inputs(shape=(1, 1, 7, 3))
    mask = torch.tensor([[[True, False, False, False, True, False, False]]])

    def fn(q, k, v):
        return favor_attention(
            q,
            k,
            v,
            n_components=4,
            causal=True,
            key_padding_mask=mask,
            rng=0,
            chunk_size=3,
        )

    assert torch.autograd.gradcheck(fn, (q, k, v))


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize(("length", "chunk"), [(13, 4), (8, 8), (5, 16)])
def test_gradcheck_causal_function(parallel, length, chunk):
    g = torch.Generator().manual_seed(length)
    qf, kf = (torch.rand(2, length, 4, dtype=torch.float64, generator=g) for _ in range(2))
    u = torch.randn(2, length, 3, dtype=torch.float64, generator=g)
    a = torch.randn(2, length, dtype=torch.float64, generator=g) * 3
    a[0, :3] = float("-inf")  # leading padded keys: running scale starts at FLOOR
    r = torch.cummax(a, -1).values.clamp_min(FLOOR)
    args = [x.requires_grad_(True) for x in (qf, kf, u)]

    def fn(qf, kf, u):
        return CausalLinearAttention.apply(qf, kf, a, r, u, chunk, parallel)

    assert torch.autograd.gradcheck(fn, args, fast_mode=True)


def test_sequential_and_parallel_chunk_paths_agree(rng):
    g = torch.Generator().manual_seed(3)
    qf, kf = (torch.rand(3, 50, 6, generator=g, dtype=torch.float64) for _ in range(2))
    u = torch.randn(3, 50, 4, generator=g, dtype=torch.float64)
    a = torch.randn(3, 50, generator=g, dtype=torch.float64) * 4
    y1, _ = causal_linear_attention(qf, kf, a, u, chunk=8, parallel=False)
    y2, _ = causal_linear_attention(qf, kf, a, u, chunk=8, parallel=True)
    y3, _ = causal_linear_attention(qf, kf, a, u, chunk=50, parallel=False)
    torch.testing.assert_close(y1, y2, rtol=1e-12, atol=0)
    torch.testing.assert_close(y1, y3, rtol=1e-12, atol=0)


def test_fully_padded_rows_have_zero_output_and_finite_gradients():
    q, k, v = _grad_inputs(shape=(2, 1, 6, 3))
    mask = torch.zeros(2, 1, 6, dtype=torch.bool)
    mask[0] = True  # every key of batch 0 padded
    mask[1, 0, :2] = True  # causal: the first two queries of batch 1 see nothing
    for causal in (False, True):
        out = favor_attention(q, k, v, key_padding_mask=mask, causal=causal, rng=0)
        assert not out[0].any()
        if causal:
            assert not out[1, :, :2].any()
        out.sum().backward()
        for x in (q, k, v):
            assert torch.isfinite(x.grad).all()
            x.grad = None


@pytest.mark.parametrize("parallel", [False, True])
def test_causal_backward_saves_only_linear_memory(parallel):
    # The autograd graph of the causal path keeps O(L (m + d_v)) bytes: doubling L
    # doubles what is saved, and nothing of size L x m x d_v (or L/C chunk states) is kept.
    def saved_bytes(length):
        sizes = []

        def pack(t):
            sizes.append(t.numel() * t.element_size())
            return t

        g = torch.Generator().manual_seed(0)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            qf = torch.rand(2, length, 32, generator=g, requires_grad=True)
            kf = torch.rand(2, length, 32, generator=g, requires_grad=True)
            u = torch.rand(2, length, 9, generator=g, requires_grad=True)
            a = torch.zeros(2, length)
            causal_linear_attention(qf, kf, a, u, chunk=16, parallel=parallel)[0].sum()
        return sum(sizes)

    small, large = saved_bytes(256), saved_bytes(512)
    inputs_512 = 4 * 2 * 512 * (32 + 32 + 9 + 2)  # qf, kf, u, a, r in float32
    assert large == 2 * small
    assert large <= inputs_512


# ------------------------------------------------------------------------------ causality


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("name", ["positive", "trigonometric"])
def test_no_future_leak_to_the_last_bit(rng, parallel, name):
    q, k, v, mask = _data(rng, shape=(2, 2, 48, 8))
    cut = 21  # inside a chunk of 8: later keys in the same chunk must not matter either
    q2, k2, v2 = q.copy(), k.copy(), v.copy()
    q2[..., cut:, :] = rng.standard_normal(q2[..., cut:, :].shape) * 5
    k2[..., cut:, :] = rng.standard_normal(k2[..., cut:, :].shape) * 5  # larger log-scales
    v2[..., cut:, :] = rng.standard_normal(v2[..., cut:, :].shape)
    mask2 = mask.copy()
    mask2[..., cut:] = ~mask2[..., cut:]
    outs = []
    for qq, kk, vv, mm in ((q, k, v, mask), (q2, k2, v2, mask2)):
        tq, tk, tv, tm = _t(qq, kk, vv, mm)
        tq, tk, tv = (x.float() for x in (tq, tk, tv))
        if parallel:
            outs.append(_causal_via_parallel(tq, tk, tv, tm, name))
        else:
            outs.append(
                favor_attention(
                    tq,
                    tk,
                    tv,
                    causal=True,
                    key_padding_mask=tm,
                    rng=5,
                    chunk_size=8,
                    features=name,
                )
            )
    assert torch.equal(outs[0][..., :cut, :], outs[1][..., :cut, :])
    assert not torch.equal(outs[0][..., cut:, :], outs[1][..., cut:, :])


def _causal_via_parallel(q, k, v, mask, name):
    from favor.torch.attention import normalise
    from favor.torch.features import key_features, query_features

    w = resolve_projection(None, 16, q.shape[-1], 5, None, dtype=q.dtype, device=q.device)
    scale = q.shape[-1] ** -0.25
    qf = query_features(name, q, w, scale)
    kf, a = key_features(name, k, w, mask, scale)
    u = torch.cat([v, torch.ones_like(v[..., :1])], -1)
    b = q.shape[0] * q.shape[1]
    y, _ = causal_linear_attention(
        qf.reshape(b, q.shape[2], -1),
        kf.reshape(b, q.shape[2], -1),
        a.expand(*q.shape[:3]).reshape(b, -1),
        u.reshape(b, q.shape[2], -1),
        chunk=8,
        parallel=True,
    )
    y = y.reshape(*q.shape[:3], -1)
    return normalise(y[..., :-1], y[..., -1:])


def test_huge_future_key_does_not_underflow_the_past(rng):
    # A global key maximum would push early keys to exp(-1000) = 0 (0/0 rows); the running
    # log-scale keeps early outputs equal to those of the truncated sequence.
    q, k, v, _ = _data(rng, shape=(1, 1, 32, 8))
    k[..., 30, :] *= 300.0
    tq, tk, tv = _t(q, k, v)
    full = favor_attention(tq, tk, tv, causal=True, rng=0)
    head = favor_attention(tq[..., :30, :], tk[..., :30, :], tv[..., :30, :], causal=True, rng=0)
    torch.testing.assert_close(full[..., :30, :], head, rtol=1e-12, atol=1e-12)
    assert torch.isfinite(full).all()


# ---------------------------------------------------------------------------------- masks


@pytest.mark.parametrize("causal", [False, True])
def test_padding_equals_truncation(rng, causal):
    q, k, v, _ = _data(rng, shape=(2, 2, 30, 4))
    keep = 19
    mask = np.zeros((2, 1, 30), dtype=bool)
    mask[..., keep:] = True
    tq, tk, tv, tm = _t(q, k, v, mask)
    padded = favor_attention(tq, tk, tv, key_padding_mask=tm, causal=causal, rng=3)
    if causal:
        short = favor_attention(
            tq[..., :keep, :], tk[..., :keep, :], tv[..., :keep, :], causal=True, rng=3
        )
        torch.testing.assert_close(padded[..., :keep, :], short, rtol=1e-12, atol=1e-12)
    else:
        short = favor_attention(tq, tk[..., :keep, :], tv[..., :keep, :], rng=3)
        torch.testing.assert_close(padded, short, rtol=1e-12, atol=1e-12)


def test_padded_keys_leave_the_normaliser(rng):
    # Huge values on padded keys would show up if only the values were masked.
    q, k, v, _ = _data(rng, shape=(1, 1, 10, 4))
    mask = np.zeros((1, 1, 10), dtype=bool)
    mask[..., 3] = True
    tq, tk, tv, tm = _t(q, k, v, mask)
    tk2 = tk.clone()
    tk2[..., 3, :] *= 50
    tv2 = tv.clone()
    tv2[..., 3, :] = 1e6
    a = favor_attention(tq, tk, tv, key_padding_mask=tm, rng=0)
    b = favor_attention(tq, tk2, tv2, key_padding_mask=tm, rng=0)
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------ half precision


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("causal", [False, True])
def test_half_precision_is_finite_and_close(dtype, causal):
    g = torch.Generator().manual_seed(0)
    # Logits around 40: exp overflows float16 (max 65504 ~ e^11) if computed in half.
    q, k = (torch.randn(2, 2, 64, 16, generator=g) * 4 for _ in range(2))
    v = torch.randn(2, 2, 64, 16, generator=g)
    ref = favor_attention(q, k, v, causal=causal, rng=0)
    got = favor_attention(q.to(dtype), k.to(dtype), v.to(dtype), causal=causal, rng=0)
    assert torch.isfinite(ref).all()
    assert got.dtype == dtype
    assert torch.isfinite(got).all()
    # The gap comes from rounding the inputs to half precision, not from the arithmetic.
    ref_rounded = favor_attention(
        q.to(dtype).float(), k.to(dtype).float(), v.to(dtype).float(), causal=causal, rng=0
    )
    tol = 2.0**-7 if dtype == torch.bfloat16 else 2.0**-10
    assert (got.float() - ref_rounded).abs().max() <= tol * ref_rounded.abs().max()


def test_half_precision_gradients_are_finite():
    g = torch.Generator().manual_seed(1)
    q, k, v = (
        (torch.randn(1, 2, 40, 8, generator=g) * 3).to(torch.bfloat16).requires_grad_(True)
        for _ in range(3)
    )
    favor_attention(q, k, v, causal=True, rng=0).float().square().sum().backward()
    for x in (q, k, v):
        assert x.grad.dtype == torch.bfloat16
        assert torch.isfinite(x.grad).all()


# ----------------------------------------------------------------------------- validation


def _ok(shape=(2, 5, 4)):
    g = torch.Generator().manual_seed(0)
    return [torch.randn(*shape, generator=g) for _ in range(3)]


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda q, k, v: (q.long(), k, v), "queries must be a float16"),
        (lambda q, k, v: (q, k.double(), v), "share one dtype"),
        (lambda q, k, v: (q, k[..., :3], v), "same last axis"),
        (lambda q, k, v: (q, k, v[:, :4]), "same length"),
        (lambda q, k, v: (q[None], k, v), "same leading"),
        (lambda q, k, v: (q.numpy(), k, v), "must be a torch.Tensor"),
        (
            lambda q, k, v: (q, k.index_fill(1, torch.tensor([2]), float("nan")), v),
            "keys must contain only finite",
        ),
        (
            lambda q, k, v: (q, k, v.index_fill(1, torch.tensor([0]), float("inf"))),
            "values must contain only finite",
        ),
        (lambda q, k, v: (q[0, 0], k, v), "queries must have at least 2"),
    ],
)
def test_bad_inputs_raise_value_errors(mutate, match):
    with pytest.raises(ValueError, match=match):
        favor_attention(*mutate(*_ok()))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"features": "cosine"}, "features must be one of"),
        ({"projection": "sorf"}, "projection must be one of"),
        ({"n_components": 0}, "n_components must be a positive integer"),
        ({"chunk_size": 0}, "chunk_size must be a positive integer"),
        ({"per_head": True}, None),
        ({"projection": np.zeros((4, 3))}, "projection must have shape"),
        ({"projection": np.ones((4, 4)), "n_components": 5}, "n_components must be None or equal"),
        ({"key_padding_mask": torch.zeros(2, 5)}, "key_padding_mask must be a boolean"),
        (
            {"key_padding_mask": torch.zeros(5, dtype=torch.bool)},
            "key_padding_mask must have shape",
        ),
        (
            {"key_padding_mask": torch.zeros(3, 5, dtype=torch.bool)},
            "key_padding_mask must have shape",
        ),
        ({"rng": -1}, "rng must be a non-negative"),
    ],
)
def test_bad_options_raise_value_errors(kwargs, match):
    q, k, v = _ok()
    if match is None:  # per_head needs a head axis: 3-d inputs have one, 2-d do not
        favor_attention(q, k, v, **kwargs)
        with pytest.raises(ValueError, match="per_head=True needs inputs with a head axis"):
            favor_attention(q[0], k[0], v[0], **kwargs)
        return
    with pytest.raises(ValueError, match=match):
        favor_attention(q, k, v, **kwargs)


def test_causal_needs_equal_lengths():
    q, k, v = _ok()
    with pytest.raises(ValueError, match="causal attention needs"):
        favor_attention(q[:, :3], k, v, causal=True)
