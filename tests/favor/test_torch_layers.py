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

from favor.torch import FavorAttention, favor_attention, performerize  # noqa: E402

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
