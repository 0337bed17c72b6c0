"""FavorAttention inside torch's standard Transformer layers, in every mode.

Each model (encoder layer, encoder stack, decoder layer, ``nn.Transformer``) is run with
FavorAttention in train / eval / no_grad / inference_mode, with every supported mask form
and both layouts, and compared with the *same* model whose attention is written out with
:func:`favor.torch.favor_attention` on the same projection (torch's fused path disabled
for that reference, which is not an attention module torch knows). Padding must equal
truncation, and torch's fused inference path must never compute softmax in our place.
"""

from __future__ import annotations

import contextlib
import copy

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from favor.torch import (  # noqa: E402
    FavorAttention,
    favor_attention,
    performerize,
    restore_softmax,
)

pytestmark = [
    pytest.mark.torch,
    # torch's own warnings: nn.TransformerEncoder builds (prototype) nested tensors in
    # inference, and says so when its layers cannot use them.
    pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors:UserWarning"),
    pytest.mark.filterwarnings("ignore:enable_nested_tensor is True:UserWarning"),
]

E, H, M = 8, 2, 16
BATCH, L_SRC, L_TGT = 3, 6, 5
KINDS = ("encoder_layer", "encoder", "decoder_layer", "transformer")
MODES = ("train", "eval", "no_grad", "inference_mode")
MASKS = (
    "none",
    "pad_bool",
    "pad_float",
    "causal_float_hint",
    "causal_float",
    "causal_bool",
    "causal_pad",
)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny tensors: one intra-op thread (a thread pool only adds wake-ups, which cost
    seconds per call on a loaded machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _x(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64)


def _padding(length, seed=0):
    pad = torch.zeros(BATCH, length, dtype=torch.bool)
    pad[0, length - 2 :] = True
    pad[2, length - 1 :] = True
    return pad


def _float(mask):
    return torch.zeros(mask.shape, dtype=torch.float64).masked_fill(mask, float("-inf"))


def _causal(length, kind):
    float_mask = nn.Transformer.generate_square_subsequent_mask(length, dtype=torch.float64)
    return float_mask.isinf() if kind == "bool" else float_mask


def _build(kind, batch_first):
    torch.manual_seed(0)  # torch's initialisation of the softmax model (test data only)
    common = {"dim_feedforward": 16, "dropout": 0.0, "batch_first": batch_first}
    common["dtype"] = torch.float64
    if kind == "encoder_layer":
        model = nn.TransformerEncoderLayer(E, H, **common)
    elif kind == "encoder":
        layer = nn.TransformerEncoderLayer(E, H, **common)
        model = nn.TransformerEncoder(layer, 2, enable_nested_tensor=batch_first)
    elif kind == "decoder_layer":
        model = nn.TransformerDecoderLayer(E, H, **common)
    else:
        model = nn.Transformer(E, H, 1, 1, **common)
    return model


_MODELS: dict = {}


def _models(kind, batch_first):
    """(softmax model, FAVOR+ model, reference model), built once per configuration."""
    key = (kind, batch_first)
    if key not in _MODELS:
        softmax = _build(kind, batch_first)
        favor = performerize(copy.deepcopy(softmax), n_components=M, random_state=0)
        reference = copy.deepcopy(favor)
        for parent in list(reference.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, FavorAttention):
                    setattr(parent, name, Reference(child))
        _MODELS[key] = softmax, favor, reference
    return _MODELS[key]


class Reference(nn.Module):
    """A FavorAttention layer's attention written out with favor.torch.favor_attention."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer
        self.batch_first = layer.batch_first

    def forward(self, query, key, value, key_padding_mask=None, need_weights=False,
                attn_mask=None, is_causal=False):  # fmt: skip
        layer = self.layer
        if not self.batch_first:
            query, key, value = (x.transpose(0, 1) for x in (query, key, value))
        mask = key_padding_mask
        if mask is not None and mask.dtype != torch.bool:
            mask = mask == float("-inf")
        w_q, w_k, w_v = layer.in_proj_weight.split(E)
        b_q, b_k, b_v = layer.in_proj_bias.split(E)

        def heads(x, w, b):
            return nn.functional.linear(x, w, b).unflatten(-1, (H, E // H)).transpose(1, 2)

        y = favor_attention(
            heads(query, w_q, b_q),
            heads(key, w_k, b_k),
            heads(value, w_v, b_v),
            projection=layer.projection,
            causal=bool(is_causal) or attn_mask is not None,
            key_padding_mask=None if mask is None else mask[:, None, :],
        )
        out = layer.out_proj(y.transpose(1, 2).flatten(-2))
        return (out if self.batch_first else out.transpose(0, 1)), None


@contextlib.contextmanager
def _fastpath(enabled):
    before = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(enabled)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(before)


def _mode_context(mode):
    if mode == "no_grad":
        return torch.no_grad()
    if mode == "inference_mode":
        return torch.inference_mode()
    return contextlib.nullcontext()


def _inputs(kind, mask_kind, batch_first):
    """Positional inputs, keyword masks, and the query rows that must match (not padded)."""
    length = L_TGT if kind in ("decoder_layer", "transformer") else L_SRC
    src = _x(BATCH, L_SRC, E, seed=1)
    tgt = _x(BATCH, L_TGT, E, seed=2)
    padded = mask_kind in ("pad_bool", "pad_float", "causal_pad")
    pad = _padding(length) if padded else None
    src_pad = _padding(L_SRC) if padded else None
    if mask_kind == "pad_float" or (mask_kind == "causal_pad"):
        pad = _float(pad)
        src_pad = _float(src_pad)
    causal = None
    if mask_kind.startswith("causal"):
        causal = _causal(length, "bool" if mask_kind == "causal_bool" else "float")
    hint = {"is_causal": True} if mask_kind == "causal_float_hint" else {}
    rows = torch.ones(BATCH, length, dtype=torch.bool)
    if padded:
        rows = ~_padding(length)

    def layout(x):
        return x if batch_first else x.transpose(0, 1)

    if kind == "encoder_layer":
        args = (layout(src),)
        kwargs = {"src_mask": causal, "src_key_padding_mask": pad, **hint}
    elif kind == "encoder":
        args = (layout(src),)
        kwargs = {"mask": causal, "src_key_padding_mask": pad, **hint}
    elif kind == "decoder_layer":
        # Self-attention on tgt (masks as given), cross-attention to a padded memory.
        args = (layout(tgt), layout(src))
        kwargs = {"tgt_mask": causal, "tgt_key_padding_mask": pad}
        kwargs["memory_key_padding_mask"] = src_pad
        kwargs.update({"tgt_is_causal": True} if hint else {})
    else:
        args = (layout(src), layout(tgt))
        kwargs = {"tgt_mask": causal, "tgt_key_padding_mask": pad}
        kwargs.update(src_key_padding_mask=src_pad, memory_key_padding_mask=src_pad)
        kwargs.update({"tgt_is_causal": True} if hint else {})
    return args, kwargs, rows


def _rows(out, rows, batch_first):
    return (out if batch_first else out.transpose(0, 1))[rows]


def _matrix():
    """Every (layer, mode, mask, layout); a covering subset (each layer with each mask,
    each mode and both layouts) runs in the fast tier, the full product is ``slow``."""
    params = []
    for k, kind in enumerate(KINDS):
        for i, mask_kind in enumerate(MASKS):
            for mode in MODES:
                for batch_first in (True, False):
                    fast = mode == MODES[(i + k) % 4] and batch_first == ((i + k) % 2 == 0)
                    marks = () if fast else (pytest.mark.slow,)
                    ident = (
                        f"{kind}-{mode}-{mask_kind}-{'batch_first' if batch_first else 'seq_first'}"
                    )
                    params.append(
                        pytest.param(kind, mode, mask_kind, batch_first, marks=marks, id=ident)
                    )
    return params


@pytest.mark.parametrize(("kind", "mode", "mask_kind", "batch_first"), _matrix())
def test_standard_layers_compute_favor_attention(kind, mode, mask_kind, batch_first):
    _, favor, reference = _models(kind, batch_first)
    args, kwargs, rows = _inputs(kind, mask_kind, batch_first)
    for model in (favor, reference):
        model.train(mode == "train")
    with _mode_context(mode):
        out = favor(*args, **kwargs)
        with _fastpath(False):
            expected = reference(*args, **kwargs)
    assert out.shape == expected.shape
    assert torch.isfinite(out).all()
    torch.testing.assert_close(
        _rows(out, rows, batch_first), _rows(expected, rows, batch_first), rtol=1e-10, atol=1e-12
    )
    if mode == "train":
        out.square().sum().backward()
        grads = [p.grad for p in favor.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        favor.zero_grad(set_to_none=True)


@pytest.mark.parametrize("kind", ["encoder_layer", "encoder"])
@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
def test_fused_inference_path_never_computes_softmax(kind, mode):
    """The configuration in which torch runs its fused softmax kernel for nn.MultiheadAttention."""
    softmax, favor, reference = _models(kind, True)
    args, kwargs, rows = _inputs(kind, "pad_bool", True)
    for model in (softmax, favor, reference):
        model.eval()
    assert torch.backends.mha.get_fastpath_enabled()
    with _mode_context(mode):
        out = favor(*args, **kwargs)
        exact = softmax(*args, **kwargs)  # the fused path, for nn.MultiheadAttention
        with _fastpath(False):
            expected = reference(*args, **kwargs)
    torch.testing.assert_close(out[rows], expected[rows], rtol=1e-10, atol=1e-12)
    # FAVOR+ with m = 16 differs visibly from softmax: the comparison above can fail.
    assert (out[rows] - exact[rows]).abs().max() > 1e-3


def test_without_its_hook_the_fused_path_fails_loudly_instead_of_computing_softmax():
    """Negative control: the pre-hook is what keeps torch's fused path away, and without
    it torch's fused path stops at the missing ``merge_masks`` instead of reading the
    weights and computing softmax."""
    _, favor, _ = _models("encoder_layer", True)
    layer = copy.deepcopy(favor).eval()
    layer.self_attn._forward_pre_hooks.clear()
    args, kwargs, _ = _inputs("encoder_layer", "pad_bool", True)
    with torch.no_grad(), pytest.raises(AttributeError, match="merge_masks"):
        layer(*args, **kwargs)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("mode", ["train", "no_grad"])
@pytest.mark.parametrize("kind", KINDS)
def test_padding_equals_truncation_through_the_layers(kind, mode, causal):
    _, favor, _ = _models(kind, True)
    favor.train(mode == "train")
    args, kwargs, rows = _inputs(kind, "causal_pad" if causal else "pad_bool", True)
    with _mode_context(mode):
        out = favor(*args, **kwargs)
        for b in range(BATCH):
            n = int(rows[b].sum())
            n_src = int((~_padding(L_SRC)[b]).sum())
            single = {}
            if kind in ("encoder_layer", "encoder"):
                inputs = (args[0][b : b + 1, :n],)
            elif kind == "decoder_layer":
                inputs = (args[0][b : b + 1, :n], args[1][b : b + 1, :n_src])
            else:
                inputs = (args[0][b : b + 1, :n_src], args[1][b : b + 1, :n])
            if causal:
                name = "src_mask" if kind == "encoder_layer" else "mask"
                name = "tgt_mask" if kind in ("decoder_layer", "transformer") else name
                single[name] = _causal(n, "float")
            alone = favor(*inputs, **single)
            torch.testing.assert_close(out[b, :n], alone[0], rtol=1e-10, atol=1e-12)


def test_nested_tensor_input_equals_padded_input():
    layer = FavorAttention(E, H, batch_first=True, n_components=M, random_state=0).double()
    x = _x(BATCH, L_SRC, E)
    pad = _padding(L_SRC)
    nested = torch.nested.as_nested_tensor([x[b][~pad[b]] for b in range(BATCH)])
    with torch.no_grad():
        out, _ = layer(nested, nested, nested, need_weights=False)
        padded, _ = layer(x, x, x, key_padding_mask=pad, need_weights=False)
    for b, piece in enumerate(out.unbind()):
        torch.testing.assert_close(piece, padded[b][~pad[b]], rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="need_weights False"):
        layer(nested, nested, nested)


# ------------------------------------------------------------------ checkpoints and swaps


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for name in sa:
        assert torch.equal(sa[name], sb[name]), name


@pytest.mark.parametrize(
    "options",
    [{}, {"bias": False}, {"add_bias_kv": True, "add_zero_attn": True}, {"kdim": 5, "vdim": 3}],
)
def test_multihead_round_trip_keeps_every_weight(options):
    torch.manual_seed(1)
    mha = nn.MultiheadAttention(E, H, dropout=0.25, batch_first=True, **options).double()
    mha.in_proj_bias is None or mha.in_proj_bias.data.normal_()
    mha.out_proj.weight.requires_grad_(False)
    layer = FavorAttention.from_multihead(mha, n_components=M, random_state=3)
    assert (layer.dropout, layer.batch_first, layer.add_zero_attn) == (
        mha.dropout,
        mha.batch_first,
        mha.add_zero_attn,
    )
    assert layer.projection.dtype == torch.float64
    assert layer.out_proj.weight is not mha.out_proj.weight  # copied, not shared
    assert not layer.out_proj.weight.requires_grad
    back = layer.to_multihead()
    _same_weights(mha, back)
    assert not back.out_proj.weight.requires_grad
    # Strict loads both ways through the documented paths.
    fresh = FavorAttention(E, H, 0.25, batch_first=True, n_components=M, random_state=4, **options)
    fresh.double().load_state_dict(mha.state_dict(), strict=True)
    for name, value in mha.state_dict().items():
        assert torch.equal(fresh.state_dict()[name], value), name


def test_strict_load_of_a_whole_softmax_model_and_incomplete_favor_state():
    softmax, favor, _ = _models("transformer", True)
    target = copy.deepcopy(favor)
    projections = [m.projection.clone() for m in target.modules() if isinstance(m, FavorAttention)]
    target.load_state_dict(softmax.state_dict(), strict=True)  # MHA keys: projections kept
    after = [m.projection for m in target.modules() if isinstance(m, FavorAttention)]
    assert all(torch.equal(a, b) for a, b in zip(projections, after, strict=True))
    for name, value in softmax.state_dict().items():
        assert torch.equal(target.state_dict()[name], value), name
    # A FavorAttention state dict missing only one of its own entries is incomplete.
    state = favor.state_dict()
    del state["encoder.layers.0.self_attn.projection"]
    with pytest.raises(RuntimeError, match=r"Missing key.*encoder.layers.0.self_attn.projection"):
        copy.deepcopy(favor).load_state_dict(state, strict=True)


@pytest.mark.slow
def test_performerize_converts_transformer_keeps_weights_and_trains():
    torch.manual_seed(0)
    model = nn.Transformer(E, H, 1, 1, 16, dropout=0.0, batch_first=True)
    before = copy.deepcopy(model)
    performerize(model, n_components=M, random_state=0, redraw_interval=5)
    layers = [m for m in model.modules() if isinstance(m, FavorAttention)]
    assert len(layers) == 3
    assert not any(isinstance(m, nn.MultiheadAttention) for m in model.modules())
    assert len({tuple(m.projection.flatten().tolist()) for m in layers}) == 3
    for name, value in before.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name
    # It trains: copy the source sequence (teacher forcing), loss falls.
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    src = _x(16, 6, E, seed=5).float()
    causal = nn.Transformer.generate_square_subsequent_mask(6)
    losses = []
    for _ in range(30):
        out = model(src, src, tgt_mask=causal, tgt_is_causal=True)
        loss = (out - src).square().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses[::10]
    assert layers[0].training_calls == 30
    restored = restore_softmax(copy.deepcopy(model))
    for name, value in restored.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name


# ----------------------------------------------------------------- weights, dropout, extras


def _quadratic(layer, query, key, value, causal):
    """FAVOR+ written quadratically from the public feature map (batch-first, float64)."""
    from favor.torch import positive_features

    e, h, d = layer.embed_dim, layer.num_heads, layer.head_dim
    if layer._qkv_same_embed_dim:
        w_q, w_k, w_v = layer.in_proj_weight.split(e)
    else:
        w_q, w_k, w_v = layer.q_proj_weight, layer.k_proj_weight, layer.v_proj_weight
    b_q, b_k, b_v = layer.in_proj_bias.split(e)

    def heads(x, w, b):
        return nn.functional.linear(x, w, b).unflatten(-1, (h, d)).transpose(1, 2)

    q, k, v = heads(query, w_q, b_q), heads(key, w_k, b_k), heads(value, w_v, b_v)
    n_keys = k.shape[2]
    extra_k, extra_v = [], []
    if layer.bias_k is not None:
        extra_k.append(layer.bias_k.reshape(1, h, 1, d).expand(k.shape[0], h, 1, d))
        extra_v.append(layer.bias_v.reshape(1, h, 1, d).expand(k.shape[0], h, 1, d))
    if layer.add_zero_attn:
        extra_k.append(torch.zeros_like(k[:, :, :1]))
        extra_v.append(torch.zeros_like(v[:, :, :1]))
    k, v = torch.cat([k, *extra_k], 2), torch.cat([v, *extra_v], 2)
    s = d**-0.25
    a = positive_features(q * s, layer.projection) @ positive_features(k * s, layer.projection).mT
    if causal:
        hidden = torch.ones(q.shape[2], n_keys, dtype=torch.bool).triu(1)
        hidden = torch.cat(
            [hidden, torch.zeros(q.shape[2], k.shape[2] - n_keys, dtype=torch.bool)], 1
        )
        a = a.masked_fill(hidden, 0.0)
    a = a / a.sum(-1, keepdim=True)
    out = layer.out_proj((a @ v).transpose(1, 2).flatten(-2))
    return out, a


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("extras", [(False, False), (True, False), (True, True)])
def test_outputs_and_weights_equal_the_quadratic_form(causal, extras):
    layer = FavorAttention(
        E, H, 0.0, True, *extras, batch_first=True, n_components=M, random_state=2
    ).double()
    with torch.no_grad():
        layer.in_proj_bias.normal_(generator=torch.Generator().manual_seed(0))
    x = _x(BATCH, L_SRC, E, seed=3)
    out, weights = layer(x, x, x, is_causal=causal, average_attn_weights=False)
    expected, a = _quadratic(layer, x, x, x, causal)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(weights, a, rtol=1e-10, atol=1e-12)
    _, averaged = layer(x, x, x, is_causal=causal)
    torch.testing.assert_close(averaged, a.mean(1), rtol=1e-10, atol=1e-12)
    # Unbatched (L, E) inputs give the first batch entry.
    single, single_weights = layer(x[0], x[0], x[0], is_causal=causal, average_attn_weights=False)
    torch.testing.assert_close(single, out[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(single_weights, weights[0], rtol=1e-12, atol=1e-12)
    if extras[0]:
        # The decoding state starts with the extra tokens: pieces equal the causal forward.
        causal_layer = copy.deepcopy(layer)
        causal_layer.causal = True
        full, _ = causal_layer(x, need_weights=False)
        first, state = causal_layer.decode(x[:, :2])
        rest, _ = causal_layer.decode(x[:, 2:], state)
        torch.testing.assert_close(torch.cat([first, rest], 1), full, rtol=1e-10, atol=1e-12)


def test_cross_attention_weights_with_padding_and_seq_first_layout():
    layer = FavorAttention(E, H, kdim=5, vdim=3, n_components=M, random_state=1).double()
    query, key, value = _x(4, 2, E, seed=1), _x(7, 2, 5, seed=2), _x(7, 2, 3, seed=3)
    pad = torch.zeros(2, 7, dtype=torch.bool)
    pad[1, 5:] = True
    out, weights = layer(query, key, value, key_padding_mask=_float(pad))
    assert out.shape == (4, 2, E)
    assert weights.shape == (2, 4, 7)
    assert torch.all(weights[1, :, 5:] == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, dtype=torch.float64))


def test_dropout_drops_keys_per_head_and_scales_the_rest():
    p = 0.5
    layer = FavorAttention(E, H, p, batch_first=True, n_components=M, random_state=0).double()
    x = _x(BATCH, 12, E, seed=4)
    layer.eval()
    _, clean = layer(x, x, x, average_attn_weights=False)
    torch.testing.assert_close(layer(x, x, x)[0], layer(x, x, x)[0])  # eval: no dropout
    layer.train()
    torch.manual_seed(7)
    out, dropped = layer(x, x, x, average_attn_weights=False)
    ratio = dropped / clean
    # One keep/drop decision per (sequence, head, key), shared by all queries.
    torch.testing.assert_close(ratio, ratio[:, :, :1, :].expand_as(ratio), rtol=1e-12, atol=0)
    values = set(torch.round(ratio[:, :, 0, :], decimals=9).unique().tolist())
    assert values == {0.0, 1.0 / (1.0 - p)}
    # The output is the dropped weights applied to the values.
    w_v, b_v = layer.in_proj_weight[2 * E :], layer.in_proj_bias[2 * E :]
    v = nn.functional.linear(x, w_v, b_v).unflatten(-1, (H, E // H)).transpose(1, 2)
    expected = layer.out_proj((dropped @ v).transpose(1, 2).flatten(-2))
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("call", "match"),
    [
        ({"is_causal": "yes"}, "is_causal must be True or False, got 'yes'"),
        ({"is_causal": 1}, "is_causal must be True or False"),
        ({"need_weights": None}, "need_weights must be True or False"),
        ({"average_attn_weights": "no"}, "average_attn_weights must be True or False"),
        ({"attn_mask": torch.zeros(L_SRC, L_SRC)}, "attn_mask must be exactly causal"),
        (
            {"attn_mask": torch.full((L_SRC, L_SRC), -1e9).triu(1)},
            "attn_mask must be exactly causal",
        ),
        ({"attn_mask": torch.ones(L_SRC, L_SRC, dtype=torch.bool).triu(2)}, "exactly causal"),
        ({"attn_mask": torch.zeros(2, L_SRC, L_SRC)}, r"attn_mask must have shape \(L, S\)"),
        ({"key_padding_mask": torch.full((BATCH, L_SRC), -1e4)}, "only 0 \\(keep\\) and -inf"),
    ],
)
def test_bad_calls_are_refused_with_clear_errors(call, match):
    layer = FavorAttention(E, H, batch_first=True, n_components=M, random_state=0)
    x = _x(BATCH, L_SRC, E).float()
    with pytest.raises(ValueError, match=match):
        layer(x, x, x, **call)


def test_flags_are_validated_like_the_numpy_engine():
    import numpy as np

    from favor import favor_attention as numpy_favor_attention

    q = np.zeros((3, 4))
    with pytest.raises(ValueError, match="causal must be True or False, got 'yes'"):
        numpy_favor_attention(q, q, q, causal="yes")
    for name in ("bias", "add_bias_kv", "add_zero_attn", "batch_first", "causal", "per_head"):
        with pytest.raises(ValueError, match=f"{name} must be True or False, got 'yes'"):
            FavorAttention(E, H, **{name: "yes"})
    with pytest.raises(ValueError, match="dropout must be a probability"):
        FavorAttention(E, H, 1.5)
    # np.bool_ is a flag in both.
    layer = FavorAttention(E, H, batch_first=np.True_, n_components=4, random_state=0)
    assert layer.batch_first is True


def test_every_causal_mask_form_gives_the_same_output():
    layer = FavorAttention(E, H, batch_first=True, n_components=M, random_state=0).double()
    x = _x(BATCH, L_SRC, E)
    float_mask = _causal(L_SRC, "float")
    expected, _ = layer(x, x, x, is_causal=True, need_weights=False)
    per_head = float_mask.expand(BATCH * H, -1, -1)
    for call in (
        {"attn_mask": float_mask},
        {"attn_mask": float_mask, "is_causal": True},
        {"attn_mask": float_mask.isinf()},
        {"attn_mask": per_head},
    ):
        out, _ = layer(x, x, x, need_weights=False, **call)
        assert torch.equal(out, expected), call


def test_prebuilt_projection_and_sampler_names():
    from favor.sampling import draw_projection

    w = draw_projection("iid", M, E // H, rng=0)
    layer = FavorAttention(E, H, projection=w, random_state=0)
    assert layer.sampler is None
    assert layer.n_components == M
    assert torch.equal(layer.projection, torch.as_tensor(w, dtype=torch.float32))
    with pytest.raises(ValueError, match="no sampler to redraw from"):
        layer.redraw()
    layer.sampler = "orthogonal"
    layer.redraw(rng=1)
    assert not torch.equal(layer.projection, torch.as_tensor(w, dtype=torch.float32))
    with pytest.raises(ValueError, match="n_components must be None or equal"):
        FavorAttention(E, H, projection=w, n_components=M + 1)


@pytest.mark.slow
# torch's own internals warn here: importing inductor (torch.jit.script_method), and dynamo
# instantiating autograd.Function classes while tracing (our code only calls .apply).
@pytest.mark.filterwarnings("ignore:.torch.jit.script_method. is deprecated:DeprecationWarning")
@pytest.mark.filterwarnings("ignore:.*should not be instantiated:DeprecationWarning")
def test_checks_hold_under_torch_compile():
    layer = FavorAttention(E, H, batch_first=True, n_components=M, random_state=0)
    x = _x(BATCH, L_SRC, E).float()
    pad = _float(_padding(L_SRC)).float()
    causal = _causal(L_SRC, "float").float()

    def call(x, attn_mask, key_padding_mask):
        out, _ = layer(
            x, x, x, key_padding_mask=key_padding_mask, attn_mask=attn_mask, need_weights=False
        )
        return out

    compiled = torch.compile(call)
    torch.testing.assert_close(compiled(x, causal, pad), call(x, causal, pad), rtol=1e-5, atol=1e-6)
    # Value checks become in-graph assertions: same message, RuntimeError.
    with pytest.raises(RuntimeError, match="query must contain only finite values"):
        compiled(x.index_fill(1, torch.tensor([2]), float("nan")), causal, pad)
    with pytest.raises(RuntimeError, match="attn_mask must be exactly causal"):
        compiled(x, torch.zeros_like(causal), pad)
    with pytest.raises(RuntimeError, match="only 0 \\(keep\\) and -inf"):
        compiled(x, causal, torch.full_like(pad, -1e4))
    # Argument checks do not depend on values: ValueError as in eager mode.
    with pytest.raises(ValueError, match="is_causal must be True or False"):
        torch.compile(lambda x: layer(x, x, x, is_causal="yes"))(x)
