r"""``FavorAttention``: a drop-in multi-head attention layer with FAVOR+ inside.

The layer has the parameters of :class:`torch.nn.MultiheadAttention` (``in_proj_weight``
or ``q/k/v_proj_weight``, ``in_proj_bias``, ``out_proj``; same names, shapes and
initialisation scheme) and replaces :math:`\mathrm{softmax}(QK^T/\sqrt{d_h})V` per head by
:func:`favor.torch.favor_attention` with the layer's random projection:

.. math::
    \mathrm{out} = W_o\, \mathrm{concat}_h\ \mathrm{FAVOR}(x W_q^{(h)}, x_k W_k^{(h)}, x_v W_v^{(h)}) + b_o .

Randomness is owned and explicit: the layer spawns its own
:class:`numpy.random.Generator` from ``random_state``; initial weights and every projection
are drawn on the host in float64 from it (never from torch's global generator) and cast
and moved. The projection is a buffer (saved in ``state_dict``, moved by ``.to``); it
changes only through :meth:`FavorAttention.redraw` or, with ``redraw_interval=N``, before
every N-th training-mode forward call. The call counter and the generator state travel in
``state_dict`` as extra state, so a reloaded layer continues the same schedule.

Causal layers decode token by token with :meth:`FavorAttention.decode`, carrying an
``m x (d_h + 1)`` state per head (:class:`DecodingState`) instead of a key/value cache;
the outputs equal those of the causal forward pass on the whole sequence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from favor._validation import as_generator, check_choice, check_positive_int
from favor.attention import DEFAULT_N_COMPONENTS
from favor.sampling import draw_projection
from favor.torch._causal import FLOOR, causal_linear_attention, default_chunk_size
from favor.torch._checks import (
    check_chunk_size,
    check_float_tensor,
    check_key_padding_mask,
    compute_dtype,
)
from favor.torch.attention import favor_core, normalise
from favor.torch.features import FEATURE_MAP_NAMES, key_features, query_features

__all__ = ["DecodingState", "FavorAttention"]


@dataclass
class DecodingState:
    """The carried prefix state of a causal :class:`FavorAttention` during decoding.

    Attributes
    ----------
    kv : torch.Tensor of shape (batch, num_heads, m', head_dim + 1)
        :math:`\\sum_{j<t} e^{a_j - R} \\psi(k_j) (v_j, 1)^T`, the scaled numerator state
        with the normaliser as its last column (``m'`` is the feature width).
    log_scale : torch.Tensor of shape (batch, num_heads)
        The running log-scale :math:`R` (the maximum key log-scale seen so far).
    position : int
        Number of tokens consumed.
    """

    kv: torch.Tensor
    log_scale: torch.Tensor
    position: int = 0


class FavorAttention(nn.Module):
    r"""Multi-head FAVOR+ attention, a drop-in for :class:`torch.nn.MultiheadAttention`.

    Parameters
    ----------
    embed_dim : int
        Model width ``E``; must be divisible by ``num_heads``.
    num_heads : int
        Number of heads ``H``; head width ``d_h = E / H``.
    n_components : int, default=256
        Random projections ``m`` per head.
    causal : bool, default=False
        Causal (autoregressive) attention; enables :meth:`decode`.
    features : {"positive", "hyperbolic", "trigonometric", "relu"}, default="positive"
        Feature map (see :func:`favor.torch.favor_attention`).
    projection : {"orthogonal", "iid"}, default="orthogonal"
        Sampler of the projection (:mod:`favor.sampling`).
    batch_first : bool, default=True
        Inputs are ``(batch, seq, feature)``; False means ``(seq, batch, feature)``.
    kdim, vdim : int, optional
        Widths of keys and values for cross attention (default ``embed_dim``).
    bias : bool, default=True
        Biases on the input and output projections.
    per_head : bool, default=False
        An independent projection per head (buffer ``(H, m, d_h)``) instead of one shared
        ``(m, d_h)`` projection.
    redraw_interval : int, optional
        Redraw the projection before every ``redraw_interval``-th training-mode forward call
        (calls ``redraw_interval``, ``2 * redraw_interval``, ...); None never redraws
        automatically.
    chunk_size : int, optional
        Chunk length of the causal path (default 128).
    random_state : None, int, SeedSequence or numpy.random.Generator, default=None
        Seeds the layer's own generator (initial weights and projections).
    device, dtype : optional
        Factory arguments for parameters and buffers.

    Notes
    -----
    ``forward`` returns ``(output, None)`` like ``nn.MultiheadAttention(need_weights=False)``:
    FAVOR+ never forms the attention matrix, so ``need_weights=True`` and ``attn_mask``
    raise ValueError. Converting the layer to float16/bfloat16 keeps the projection buffer
    in float32 (attention arithmetic runs in float32 for half inputs anyway).
    Verified by: ``tests/favor/test_torch_module.py``.

    Examples
    --------
    >>> import torch
    >>> from favor.torch import FavorAttention
    >>> layer = FavorAttention(16, 2, n_components=32, causal=True, random_state=0)
    >>> x = torch.zeros(3, 5, 16)
    >>> out, _ = layer(x, x, x)
    >>> out.shape
    torch.Size([3, 5, 16])
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        *,
        n_components: int = DEFAULT_N_COMPONENTS,
        causal: bool = False,
        features: str = "positive",
        projection: str = "orthogonal",
        batch_first: bool = True,
        kdim: int | None = None,
        vdim: int | None = None,
        bias: bool = True,
        per_head: bool = False,
        redraw_interval: int | None = None,
        chunk_size: int | None = None,
        random_state: Any = None,
        device: Any = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        embed_dim = check_positive_int("embed_dim", embed_dim)
        num_heads = check_positive_int("num_heads", num_heads)
        if embed_dim % num_heads:
            raise ValueError(
                f"embed_dim must be divisible by num_heads, got {embed_dim} and {num_heads}"
            )
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads
        self.kdim = embed_dim if kdim is None else check_positive_int("kdim", kdim)
        self.vdim = embed_dim if vdim is None else check_positive_int("vdim", vdim)
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.n_components = check_positive_int("n_components", n_components)
        self.causal = bool(causal)
        self.features = check_choice("features", features, FEATURE_MAP_NAMES)
        self.projection_sampler = check_choice("projection", projection, ("orthogonal", "iid"))
        self.batch_first = bool(batch_first)
        self.per_head = bool(per_head)
        self.redraw_interval = (
            None
            if redraw_interval is None
            else check_positive_int("redraw_interval", redraw_interval)
        )
        self.chunk_size = check_chunk_size(chunk_size)
        self.training_calls = 0
        self._rng = as_generator(random_state, "random_state").spawn(1)[0]

        factory = {"device": device, "dtype": dtype}
        if self._qkv_same_embed_dim:
            self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim, **factory))
            self.register_parameter("q_proj_weight", None)
            self.register_parameter("k_proj_weight", None)
            self.register_parameter("v_proj_weight", None)
        else:
            self.q_proj_weight = nn.Parameter(torch.empty(embed_dim, embed_dim, **factory))
            self.k_proj_weight = nn.Parameter(torch.empty(embed_dim, self.kdim, **factory))
            self.v_proj_weight = nn.Parameter(torch.empty(embed_dim, self.vdim, **factory))
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = nn.Parameter(torch.empty(3 * embed_dim, **factory))
        else:
            self.register_parameter("in_proj_bias", None)
        # skip_init: no draw from torch's global generator (we initialise from our own).
        given = {name: value for name, value in factory.items() if value is not None}
        self.out_proj = nn.utils.skip_init(nn.Linear, embed_dim, embed_dim, bias=bias, **given)
        buffer_dtype = torch.float64 if dtype == torch.float64 else torch.float32
        shape = (
            (num_heads, self.n_components, self.head_dim)
            if self.per_head
            else (self.n_components, self.head_dim)
        )
        self.register_buffer("projection", torch.empty(shape, device=device, dtype=buffer_dtype))
        self._reset_parameters()
        self.redraw()

    # ----------------------------------------------------------------- randomness

    def _uniform_(self, tensor: torch.Tensor, bound: float) -> None:
        drawn = self._rng.uniform(-bound, bound, size=tuple(tensor.shape))
        with torch.no_grad():
            tensor.copy_(torch.as_tensor(drawn, dtype=tensor.dtype, device=tensor.device))

    def _reset_parameters(self) -> None:
        """Initialise like ``nn.MultiheadAttention``, drawing from the layer's own generator.

        Xavier-uniform input projections (fan-in ``E``, fan-out ``3E`` for the packed
        weight), zero biases, and ``out_proj.weight`` uniform in :math:`\\pm 1/\\sqrt{E}`.
        """
        if self._qkv_same_embed_dim:
            self._uniform_(self.in_proj_weight, math.sqrt(6.0 / (4 * self.embed_dim)))
        else:
            for w in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                self._uniform_(w, math.sqrt(6.0 / (w.shape[0] + w.shape[1])))
        self._uniform_(self.out_proj.weight, 1.0 / math.sqrt(self.embed_dim))
        with torch.no_grad():
            if self.in_proj_bias is not None:
                self.in_proj_bias.zero_()
            if self.out_proj.bias is not None:
                self.out_proj.bias.zero_()

    def redraw(self, rng: Any = None) -> None:
        """Draw a new projection into the ``projection`` buffer (in place).

        Parameters
        ----------
        rng : None, int, SeedSequence or numpy.random.Generator, default=None
            Source of the draw; None continues the layer's own generator. The draw is
            :func:`favor.sampling.draw_projection` in float64 on the host, then cast to the
            buffer's dtype and device.
        """
        source = self._rng if rng is None else as_generator(rng)
        drawn = draw_projection(
            self.projection_sampler,
            self.n_components,
            self.head_dim,
            rng=source,
            n_heads=self.num_heads if self.per_head else None,
        )
        with torch.no_grad():
            self.projection.copy_(torch.as_tensor(drawn, dtype=self.projection.dtype))

    def get_extra_state(self) -> dict[str, Any]:
        """The redraw counter and the generator state, saved with ``state_dict``."""
        return {"training_calls": self.training_calls, "rng": self._rng.bit_generator.state}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`get_extra_state` saved."""
        self.training_calls = int(state["training_calls"])
        self._rng.bit_generator.state = state["rng"]

    def _apply(self, fn: Any, recurse: bool = True) -> FavorAttention:
        # Keep the projection at >= float32 precision when the layer is cast to half types.
        before = self._buffers["projection"]
        super()._apply(fn, recurse)
        after = self._buffers["projection"]
        if after is not None and after.dtype in (torch.float16, torch.bfloat16):
            self._buffers["projection"] = before.to(device=after.device, dtype=torch.float32)
        return self

    # ----------------------------------------------------------------- projections

    def _weights(self) -> tuple[torch.Tensor, ...]:
        e = self.embed_dim
        if self._qkv_same_embed_dim:
            w_q, w_k, w_v = self.in_proj_weight.split(e)
        else:
            w_q, w_k, w_v = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
        if self.in_proj_bias is None:
            return w_q, w_k, w_v, None, None, None
        b_q, b_k, b_v = self.in_proj_bias.split(e)
        return w_q, w_k, w_v, b_q, b_k, b_v

    def _heads(self, x: torch.Tensor, weight: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        y = nn.functional.linear(x, weight, b)
        return y.unflatten(-1, (self.num_heads, self.head_dim)).transpose(1, 2)

    def _merge(self, y: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        y = y.transpose(1, 2).flatten(-2).to(dtype)
        return self.out_proj(y)

    def _batched(self, name: str, x: Any, width: int) -> torch.Tensor:
        x = check_float_tensor(name, x, min_ndim=3)
        if x.ndim != 3 or x.shape[-1] != width:
            layout = "(batch, seq, " if self.batch_first else "(seq, batch, "
            raise ValueError(f"{name} must have shape {layout}{width}), got {tuple(x.shape)}")
        return x if self.batch_first else x.transpose(0, 1)

    def _check_mask(self, mask: Any, batch: int, length: int, device: torch.device) -> Any:
        mask = check_key_padding_mask(mask, (batch,), length, device)
        return None if mask is None else mask[:, None, :]

    # ----------------------------------------------------------------- forward

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor | None = None,
        value: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None,
        need_weights: bool = False,
        attn_mask: torch.Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[torch.Tensor, None]:
        """Attend from ``query`` to ``key``/``value`` (self-attention when they are omitted).

        Parameters
        ----------
        query : torch.Tensor of shape (batch, L, embed_dim)
            Queries (``(L, batch, embed_dim)`` when ``batch_first=False``).
        key : torch.Tensor of shape (batch, S, kdim), optional
            Keys; defaults to ``query``.
        value : torch.Tensor of shape (batch, S, vdim), optional
            Values; defaults to ``key``.
        key_padding_mask : bool tensor of shape (batch, S), optional
            True marks a padded key, removed from numerator and normaliser.
        need_weights : bool, default=False
            Must be False (no attention matrix exists).
        attn_mask : None
            Must be None (arbitrary masks are not expressible in linear attention).
        average_attn_weights : bool, default=True
            Accepted for signature compatibility; unused.
        is_causal : bool, default=False
            Run this call causally even if the layer is not causal.

        Returns
        -------
        output : torch.Tensor
            Same layout and dtype as ``query``, last axis ``embed_dim``.
        weights : None
            Always None.
        """
        if need_weights:
            raise ValueError("need_weights must be False: FAVOR+ never forms the attention matrix")
        if attn_mask is not None:
            raise ValueError("attn_mask must be None: use causal=True or key_padding_mask instead")
        key = query if key is None else key
        value = key if value is None else value
        q_in = self._batched("query", query, self.embed_dim)
        k_in = self._batched("key", key, self.kdim)
        v_in = self._batched("value", value, self.vdim)
        if k_in.shape[:2] != v_in.shape[:2] or q_in.shape[0] != k_in.shape[0]:
            raise ValueError(
                "query, key and value must share the batch size, and key and value the "
                f"length, got shapes {tuple(query.shape)}, {tuple(key.shape)} and "
                f"{tuple(value.shape)}"
            )
        if not (q_in.dtype == k_in.dtype == v_in.dtype):
            raise ValueError(
                f"query, key and value must share one dtype, got {q_in.dtype}, "
                f"{k_in.dtype} and {v_in.dtype}"
            )
        causal = self.causal or bool(is_causal)
        if causal and q_in.shape[1] != k_in.shape[1]:
            raise ValueError(
                "causal attention needs query and key of the same length, got "
                f"{q_in.shape[1]} and {k_in.shape[1]}"
            )
        mask = self._check_mask(key_padding_mask, k_in.shape[0], k_in.shape[1], k_in.device)
        if self.training and self.redraw_interval is not None:
            if self.training_calls and self.training_calls % self.redraw_interval == 0:
                self.redraw()
            self.training_calls += 1
        w_q, w_k, w_v, b_q, b_k, b_v = self._weights()
        work = compute_dtype(q_in.dtype)
        q = self._heads(q_in, w_q, b_q).to(work)
        k = self._heads(k_in, w_k, b_k).to(work)
        v = self._heads(v_in, w_v, b_v).to(work)
        w = self.projection.to(work)
        y = favor_core(q, k, v, w, mask, self.features, causal, self.chunk_size)
        out = self._merge(y, q_in.dtype)
        return (out if self.batch_first else out.transpose(0, 1)), None

    def init_state(self, batch_size: int, *, device: Any = None) -> DecodingState:
        """An empty :class:`DecodingState` for ``batch_size`` sequences (no token seen)."""
        batch_size = check_positive_int("batch_size", batch_size)
        work = compute_dtype(self.out_proj.weight.dtype)
        device = self.projection.device if device is None else device
        width = self.n_components * (2 if self.features in ("hyperbolic", "trigonometric") else 1)
        kv = torch.zeros(
            batch_size, self.num_heads, width, self.head_dim + 1, dtype=work, device=device
        )
        scale = torch.full((batch_size, self.num_heads), FLOOR, dtype=work, device=device)
        return DecodingState(kv, scale, 0)

    def decode(
        self,
        query: torch.Tensor,
        state: DecodingState | None = None,
        *,
        key_padding_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, DecodingState]:
        """Causal self-attention over new tokens, continuing from ``state``.

        Feeding a sequence in pieces (one token or many at a time) gives the outputs of
        the causal forward pass on the whole sequence, up to rounding; the state has a
        fixed size ``(batch, H, m', d_h + 1)`` however many tokens were consumed.

        Parameters
        ----------
        query : torch.Tensor of shape (batch, T, embed_dim)
            The next ``T`` tokens (``(T, batch, embed_dim)`` when ``batch_first=False``).
        state : DecodingState, optional
            The state returned by the previous call; None starts a new sequence.
        key_padding_mask : bool tensor of shape (batch, T), optional
            True marks a padded token: it attends normally but is never attended to.

        Returns
        -------
        output : torch.Tensor
            Same layout as ``query``.
        state : DecodingState
            The state after these tokens.
        """
        if not self.causal:
            raise ValueError("decode needs a causal layer (construct it with causal=True)")
        x = self._batched("query", query, self.embed_dim)
        batch, length = x.shape[:2]
        if state is None:
            state = self.init_state(batch, device=x.device)
        if not isinstance(state, DecodingState) or state.kv.shape[:2] != (batch, self.num_heads):
            raise ValueError(
                f"state must be a DecodingState for batch size {batch} and "
                f"{self.num_heads} heads, got {state!r:.80}"
            )
        mask = self._check_mask(key_padding_mask, batch, length, x.device)
        w_q, w_k, w_v, b_q, b_k, b_v = self._weights()
        work = state.kv.dtype
        q = self._heads(x, w_q, b_q).to(work)
        k = self._heads(x, w_k, b_k).to(work)
        v = self._heads(x, w_v, b_v).to(work)
        w = self.projection.to(work)
        scale = self.head_dim**-0.25
        qf = query_features(self.features, q, w, scale)
        kf, log_scale = key_features(self.features, k, w, mask, scale)
        u = torch.cat([v, torch.ones_like(v[..., :1])], dim=-1)
        rows = batch * self.num_heads
        y, (kv, top) = causal_linear_attention(
            qf.reshape(rows, length, -1),
            kf.reshape(rows, length, -1),
            log_scale.expand(batch, self.num_heads, length).reshape(rows, length),
            u.reshape(rows, length, -1),
            chunk=self.chunk_size or default_chunk_size(x.device),
            initial=(state.kv.reshape(rows, *state.kv.shape[2:]), state.log_scale.reshape(rows)),
            return_state=True,
        )
        y = y.reshape(batch, self.num_heads, length, -1)
        out = self._merge(normalise(y[..., :-1], y[..., -1:]), x.dtype)
        new_state = DecodingState(
            kv.reshape(state.kv.shape),
            top.reshape(batch, self.num_heads),
            state.position + length,
        )
        return (out if self.batch_first else out.transpose(0, 1)), new_state

    def extra_repr(self) -> str:
        return (
            f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, "
            f"n_components={self.n_components}, causal={self.causal}, "
            f"features={self.features!r}, projection={self.projection_sampler!r}, "
            f"per_head={self.per_head}, redraw_interval={self.redraw_interval}"
        )
