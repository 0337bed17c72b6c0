"""favor.torch.FavorAttention: equivalence to the functional form, decoding, state, redraws."""

from __future__ import annotations

import io

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from favor.sampling import draw_projection  # noqa: E402
from favor.torch import DecodingState, FavorAttention, favor_attention  # noqa: E402

pytestmark = pytest.mark.torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny tensors: one intra-op thread (a thread pool only adds wake-ups, which cost
    seconds per call on a loaded machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _x(*shape, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype)


def _functional(layer, query, key, value, **kwargs):
    """The layer written out by hand with favor_attention."""
    e, h = layer.embed_dim, layer.num_heads
    if layer._qkv_same_embed_dim:
        w_q, w_k, w_v = layer.in_proj_weight.split(e)
    else:
        w_q, w_k, w_v = layer.q_proj_weight, layer.k_proj_weight, layer.v_proj_weight
    b_q, b_k, b_v = layer.in_proj_bias.split(e)

    def heads(x, w, b):
        return torch.nn.functional.linear(x, w, b).unflatten(-1, (h, e // h)).transpose(1, 2)

    y = favor_attention(
        heads(query, w_q, b_q),
        heads(key, w_k, b_k),
        heads(value, w_v, b_v),
        projection=layer.projection,
        features=layer.features,
        per_head=layer.per_head,
        **kwargs,
    )
    return layer.out_proj(y.transpose(1, 2).flatten(-2))


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("features", ["positive", "hyperbolic"])
@pytest.mark.parametrize("per_head", [False, True])
def test_self_attention_equals_functional_form(causal, features, per_head):
    layer = FavorAttention(
        12,
        3,
        batch_first=True,
        n_components=8,
        causal=causal,
        features=features,
        per_head=per_head,
        random_state=0,
    ).double()
    x = _x(2, 10, 12)
    mask = torch.zeros(2, 10, dtype=torch.bool)
    mask[1, 7:] = True
    out, weights = layer(x, x, x, key_padding_mask=mask, need_weights=False)
    expected = _functional(layer, x, x, x, causal=causal, key_padding_mask=mask[:, None, :])
    assert weights is None
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    out_default, _ = layer(x, key_padding_mask=mask)  # key and value default to query
    assert torch.equal(out_default, out)


def test_cross_attention_with_kdim_vdim_and_seq_first():
    layer = FavorAttention(8, 2, n_components=6, kdim=5, vdim=3, batch_first=False, random_state=1)
    layer = layer.double()
    query, key, value = _x(7, 2, 8, seed=1), _x(4, 2, 5, seed=2), _x(4, 2, 3, seed=3)
    out, _ = layer(query, key, value)
    expected = _functional(layer, query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1))
    assert out.shape == (7, 2, 8)
    torch.testing.assert_close(out, expected.transpose(0, 1), rtol=1e-12, atol=1e-12)


def test_parameters_match_multihead_attention_layout():
    for options in ({}, {"bias": False}, {"add_bias_kv": True}, {"kdim": 5, "vdim": 3}):
        mha = torch.nn.MultiheadAttention(8, 2, **options)
        layer = FavorAttention(8, 2, n_components=4, random_state=0, **options)
        ours = [(name, p.shape) for name, p in layer.named_parameters()]
        theirs = [(name, p.shape) for name, p in mha.named_parameters()]
        assert ours == theirs  # names, shapes and order (optimizer state stays aligned)
        # A MultiheadAttention state dict loads strictly and keeps the layer's projection.
        projection = layer.projection.clone()
        layer.load_state_dict(mha.state_dict(), strict=True)
        assert torch.equal(layer.projection, projection)
        assert torch.equal(layer.out_proj.weight, mha.out_proj.weight)


@pytest.mark.parametrize("features", ["positive", "trigonometric"])
def test_decoding_equals_causal_forward(features):
    layer = FavorAttention(
        8, 2, batch_first=True, n_components=6, causal=True, features=features, random_state=3
    )
    layer = layer.double()
    x = _x(3, 17, 8, seed=4)
    mask = torch.zeros(3, 17, dtype=torch.bool)
    mask[0, [0, 5, 6]] = True
    full, _ = layer(x, key_padding_mask=mask)
    state, pieces = None, []
    for start, stop in [(0, 1), (1, 2), (2, 9), (9, 10), (10, 17)]:
        out, state = layer.decode(x[:, start:stop], state, key_padding_mask=mask[:, start:stop])
        pieces.append(out)
    torch.testing.assert_close(torch.cat(pieces, 1), full, rtol=1e-11, atol=1e-12)
    assert isinstance(state, DecodingState)
    assert state.position == 17
    assert state.kv.shape == (3, 2, layer.init_state(1).kv.shape[2], 5)


def test_decoding_state_has_fixed_size_and_float32_for_half_layers():
    layer = FavorAttention(8, 2, batch_first=True, n_components=6, causal=True, random_state=3).to(
        torch.bfloat16
    )
    x = _x(2, 5, 8, dtype=torch.bfloat16)
    _, state = layer.decode(x)
    out2, state2 = layer.decode(x, state)
    assert state.kv.dtype == torch.float32
    assert state2.kv.shape == state.kv.shape
    assert out2.dtype == torch.bfloat16
    assert torch.isfinite(out2).all()


def test_decode_needs_a_causal_layer_and_a_matching_state():
    with pytest.raises(ValueError, match="decode needs a causal layer"):
        FavorAttention(8, 2, batch_first=True, n_components=4, random_state=0).decode(
            _x(1, 2, 8, dtype=torch.float32)
        )
    layer = FavorAttention(8, 2, batch_first=True, n_components=4, causal=True, random_state=0)
    with pytest.raises(ValueError, match="state must be a DecodingState for batch size 2"):
        layer.decode(_x(2, 1, 8, dtype=torch.float32), layer.init_state(3))


# ------------------------------------------------------------------- randomness and state


def test_construction_and_calls_leave_the_global_torch_generator_alone():
    before = torch.random.get_rng_state()
    layer = FavorAttention(
        8, 2, batch_first=True, n_components=4, redraw_interval=1, random_state=0
    )
    layer.train()
    x = _x(1, 3, 8, dtype=torch.float32)
    for _ in range(3):
        layer(x)
    layer.redraw()
    assert torch.equal(torch.random.get_rng_state(), before)


def test_same_random_state_same_layer_and_projection_is_drawn_from_sampling():
    a = FavorAttention(8, 2, batch_first=True, n_components=5, random_state=9)
    b = FavorAttention(8, 2, batch_first=True, n_components=5, random_state=9)
    c = FavorAttention(8, 2, batch_first=True, n_components=5, random_state=10)
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        if name != "_extra_state":
            assert torch.equal(pa, pb), name
    assert not torch.equal(a.projection, c.projection)
    a.redraw(rng=4)
    expected = draw_projection("orthogonal", 5, 4, rng=np.random.default_rng(4))
    np.testing.assert_array_equal(a.projection.numpy(), expected.astype(np.float32))


def test_redraw_interval_counts_training_calls_only():
    layer = FavorAttention(
        8, 2, batch_first=True, n_components=4, redraw_interval=2, random_state=0
    )
    x = _x(1, 3, 8, dtype=torch.float32)
    seen = []
    layer.train()
    for _ in range(5):
        layer(x)
        seen.append(layer.projection.clone())
    # calls 0, 1 use the initial draw; 2, 3 the second; 4 the third
    assert torch.equal(seen[0], seen[1])
    assert not torch.equal(seen[1], seen[2])
    assert torch.equal(seen[2], seen[3])
    assert not torch.equal(seen[3], seen[4])
    layer.eval()
    for _ in range(3):
        layer(x)
    assert torch.equal(layer.projection, seen[4])
    assert layer.training_calls == 5


def test_no_redraw_without_interval():
    layer = FavorAttention(8, 2, batch_first=True, n_components=4, random_state=0).train()
    before = layer.projection.clone()
    for _ in range(3):
        layer(_x(1, 3, 8, dtype=torch.float32))
    assert torch.equal(layer.projection, before)


def test_state_dict_round_trip_restores_outputs_and_redraw_schedule():
    layer = FavorAttention(
        8, 2, batch_first=True, n_components=4, redraw_interval=2, causal=True, random_state=0
    )
    x = _x(2, 6, 8, dtype=torch.float32)
    layer.train()
    layer(x)
    buffer = io.BytesIO()
    torch.save(layer.state_dict(), buffer)
    buffer.seek(0)
    clone = FavorAttention(
        8, 2, batch_first=True, n_components=4, redraw_interval=2, causal=True, random_state=99
    )
    clone.load_state_dict(torch.load(buffer, weights_only=True))
    clone.train()
    for _ in range(3):  # crosses a redraw: both layers draw the same next projection
        assert torch.equal(layer(x)[0], clone(x)[0])
    assert torch.equal(layer.projection, clone.projection)


def test_half_conversion_keeps_a_float32_projection():
    layer = FavorAttention(8, 2, batch_first=True, n_components=4, random_state=0)
    exact = layer.projection.clone()
    half = layer.half()
    assert half.projection.dtype == torch.float32
    assert torch.equal(half.projection, exact)
    assert half.in_proj_weight.dtype == torch.float16
    assert FavorAttention(
        8, 2, batch_first=True, n_components=4, random_state=0
    ).double().projection.dtype == (torch.float64)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_layer_forward_and_backward_are_finite(dtype):
    layer = FavorAttention(
        16, 2, batch_first=True, n_components=16, causal=True, random_state=0
    ).to(dtype)
    x = (_x(2, 20, 16, dtype=torch.float32) * 4).to(dtype)
    out, _ = layer(x)
    assert out.dtype == dtype
    assert torch.isfinite(out).all()
    out.float().square().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in layer.parameters())


# ---------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"embed_dim": 10, "num_heads": 3}, "embed_dim must be divisible by num_heads"),
        ({"embed_dim": 0, "num_heads": 1}, "embed_dim must be a positive integer"),
        ({"embed_dim": 8, "num_heads": 2, "features": "gelu"}, "features must be one of"),
        ({"embed_dim": 8, "num_heads": 2, "projection": "qr"}, "projection must be one of"),
        ({"embed_dim": 8, "num_heads": 2, "redraw_interval": 0}, "redraw_interval must be"),
        ({"embed_dim": 8, "num_heads": 2, "n_components": -3}, "n_components must be"),
    ],
)
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FavorAttention(**kwargs)


def test_bad_call_arguments():
    layer = FavorAttention(8, 2, batch_first=True, n_components=4, causal=True, random_state=0)
    x = _x(2, 5, 8, dtype=torch.float32)
    with pytest.raises(ValueError, match="need_weights must be True or False"):
        layer(x, x, x, need_weights="no")
    with pytest.raises(ValueError, match="attn_mask must be exactly causal"):
        layer(x, x, x, attn_mask=torch.zeros(5, 5))
    with pytest.raises(ValueError, match=r"query must have shape \(batch, seq, 8\)"):
        layer(x[..., :7])
    with pytest.raises(ValueError, match="key_padding_mask must have shape"):
        layer(x, key_padding_mask=torch.zeros(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="key_padding_mask as a float tensor must contain only 0"):
        layer(x, key_padding_mask=torch.ones(2, 5))
    with pytest.raises(ValueError, match="key_padding_mask must be a boolean tensor"):
        layer(x, key_padding_mask=torch.zeros(2, 5, dtype=torch.int64))
    with pytest.raises(ValueError, match="causal attention needs query and key"):
        layer(x, x[:, :3])
    with pytest.raises(ValueError, match="query must contain only finite"):
        layer(x.index_fill(1, torch.tensor([1]), float("nan")))


@pytest.mark.slow
# torch's own internals warn here: importing inductor (torch.jit.script_method), and dynamo
# instantiating autograd.Function classes while tracing (our code only calls .apply).
@pytest.mark.filterwarnings("ignore:.torch.jit.script_method. is deprecated:DeprecationWarning")
@pytest.mark.filterwarnings("ignore:.*should not be instantiated:DeprecationWarning")
@pytest.mark.parametrize("causal", [False, True])
def test_torch_compile_matches_eager(causal):
    layer = FavorAttention(16, 2, batch_first=True, n_components=8, causal=causal, random_state=0)
    x = _x(2, 12, 16, dtype=torch.float32)
    compiled = torch.compile(layer)
    out, _ = compiled(x)
    torch.testing.assert_close(out, layer(x)[0], rtol=1e-5, atol=1e-6)
    out.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in layer.parameters())
