r"""``FavorAttention``: ``nn.MultiheadAttention`` with FAVOR+ inside, as a true drop-in.

The layer has the constructor, the parameters (names, shapes, registration order,
initialisation scheme), the call signature and the return convention of
:class:`torch.nn.MultiheadAttention`, and replaces :math:`\mathrm{softmax}(QK^T/\sqrt{d_h})V`
per head by :func:`favor.torch.favor_attention` with the layer's random projection:

.. math::
    \mathrm{out} = W_o\, \mathrm{concat}_h\ \mathrm{FAVOR}(x W_q^{(h)}, x_k W_k^{(h)}, x_v W_v^{(h)}) + b_o .

It works inside ``nn.TransformerEncoderLayer``, ``nn.TransformerEncoder``,
``nn.TransformerDecoderLayer`` and ``nn.Transformer`` in every mode: key padding masks
(boolean or float ``0``/``-inf``), the causal-mask idiom (:mod:`favor.torch._masks`),
nested-tensor inputs (which ``nn.TransformerEncoder`` builds in inference), and never
torch's fused softmax fast path (see :func:`_no_fused_fast_path`).

Randomness is owned and explicit: the layer spawns its own
:class:`numpy.random.Generator` from ``random_state``; initial weights and every projection
are drawn on the host in float64 from it (never from torch's global generator) and cast
and moved. Dropout, like ``nn.Dropout``, uses torch's generator. The projection is a buffer
(saved in ``state_dict``, moved by ``.to``); it changes only through
:meth:`FavorAttention.redraw` or, with ``redraw_interval=N``, before every N-th
training-mode forward call. The call counter and the generator state travel in
``state_dict`` as extra state, so a reloaded layer continues the same schedule. An
``nn.MultiheadAttention`` state dict (no projection, no extra state) loads strictly and
keeps the layer's own projection (see :meth:`FavorAttention.from_multihead`).

Causal layers decode token by token with :meth:`FavorAttention.decode`, carrying an
``m x (d_h + 1)`` state per head (:class:`DecodingState`) instead of a key/value cache;
the outputs equal those of the causal forward pass on the whole sequence.

This module holds the class, its arguments and its forward pass; the parts it delegates
live in modules named for what they own: :mod:`favor.torch._heads` (the parameters and the
per-head projections), :mod:`favor.torch._layouts` (input layouts, nested tensors),
:mod:`favor.torch._state_dict` (saving, loading, conversion to ``nn.MultiheadAttention``)
and :mod:`favor.torch._layer_decoding` (token-by-token decoding).
"""

from __future__ import annotations

import numbers
from typing import Any

import torch
from torch import nn

from favor._guards import check_memory
from favor._validation import as_generator, check_choice, check_flag, check_positive_int
from favor.decoding import DecodingState
from favor.gerf import GerfParameters
from favor.registry import FEATURE_MAPS, SAMPLERS
from favor.sampling import (
    DEFAULT_N_COMPONENTS,
    check_projection_shape,
    draw_projection,
    draw_sign_rows,
)
from favor.torch import _layer_decoding, _state_dict
from favor.torch._calibrate import calibrated_parameters, check_layer_params
from favor.torch._checks import check_chunk_size, check_float_tensor, compute_dtype
from favor.torch._heads import (
    merge,
    project,
    register_parameters,
    reset_parameters,
    with_extra_tokens,
)
from favor.torch._layouts import check_inputs, forward_nested
from favor.torch._masks import causal_from_attn_mask, padding_mask
from favor.torch._state_dict import (
    extra_state,
    forget_own_missing_keys,
    keep_float32_projection,
    load_extra_state,
    multihead_arguments,
    with_requires_grad_of,
)
from favor.torch.attention import favor_core

__all__ = ["DecodingState", "FavorAttention"]


def _no_fused_fast_path(module: nn.Module, args: Any) -> None:
    """A forward pre-hook that does nothing; its presence keeps torch's fused path away.

    ``nn.TransformerEncoderLayer`` in inference runs a fused kernel that reads its
    attention module's ``in_proj_weight`` and computes *softmax* attention, unless (among
    other conditions) a forward hook is attached to any of its submodules. Every
    :class:`FavorAttention` carries this hook, so the layer always calls
    :meth:`FavorAttention.forward`. As a second line of defence the layer defines no
    ``merge_masks``, so a fused path that ignored the hook would fail loudly, never
    compute softmax silently.
    """
    return None


class FavorAttention(nn.Module):
    r"""Multi-head FAVOR+ attention, a drop-in for :class:`torch.nn.MultiheadAttention`.

    The positional arguments are those of ``nn.MultiheadAttention``, in its order and with
    its defaults; the FAVOR+ options are keyword-only.

    Parameters
    ----------
    embed_dim : int
        Model width ``E``; must be divisible by ``num_heads``.
    num_heads : int
        Number of heads ``H``; head width ``d_h = E / H``.
    dropout : float, default=0.0
        Attention dropout in training mode. Softmax attention drops entries
        :math:`A_{ij}`; linear attention never forms :math:`A`, so each *key* is dropped per
        (sequence, head) with probability ``dropout`` and the kept ones scaled by
        :math:`1/(1-p)`, in the numerator only (normalisation over all keys, as
        ``nn.MultiheadAttention`` drops after the softmax):
        :math:`\mathrm{out}_i = \sum_j A_{ij} \frac{z_j}{1-p} v_j`. The expectation over
        the dropout is the undropped output, as for softmax attention; the mask is shared
        by the queries of one sequence and head instead of drawn per entry.
    bias : bool, default=True
        Biases on the input and output projections.
    add_bias_kv : bool, default=False
        Learned key and value biases ``bias_k``, ``bias_v`` of shape ``(1, 1, E)`` appended
        to the keys and values as one extra token (seen by every query, also when causal).
    add_zero_attn : bool, default=False
        Append a zero key and value (seen by every query), as ``nn.MultiheadAttention``.
    kdim, vdim : int, optional
        Widths of keys and values for cross attention (default ``embed_dim``).
    batch_first : bool, default=False
        Inputs are ``(batch, seq, feature)``; False (``nn.MultiheadAttention``'s default)
        means ``(seq, batch, feature)``. Unbatched ``(seq, feature)`` inputs are accepted
        either way.
    device, dtype : optional
        Factory arguments for parameters and buffers.
    n_components : int, default=256
        Random projections ``m`` per head (ignored with a prebuilt ``projection``, whose
        row count it must equal if given; ``"hybrid"`` projections have ``m`` base rows
        and 4 sign rows after them).
    causal : bool, default=False
        Always attend causally (a call can also ask with ``is_causal`` or a causal
        ``attn_mask``); enables :meth:`decode`.
    features : str, default="positive"
        Feature map (:data:`favor.registry.FEATURE_MAPS`; see
        :func:`favor.torch.favor_attention`).
    projection : str or array of shape (m, d_h) or (H, m, d_h), default="orthogonal"
        As in :func:`favor.favor_attention`: a sampler name (:mod:`favor.sampling`) to
        draw the projection from, or a prebuilt projection to start from. The projection
        in use is the buffer :attr:`projection`; the sampler that :meth:`redraw` uses is
        :attr:`sampler` (None for a prebuilt projection until set).
    per_head : bool, default=False
        An independent projection per head (buffer ``(H, m, d_h)``) instead of one shared
        ``(m, d_h)`` projection.
    redraw_interval : int, optional
        Redraw the projection before every ``redraw_interval``-th training-mode forward call
        (calls ``redraw_interval``, ``2 * redraw_interval``, ...); None never redraws
        automatically.
    chunk_size : int, optional
        Chunk length of the causal path (default 128) and block length of the
        bidirectional one (device default).
    random_state : None, int, SeedSequence or numpy.random.Generator, default=None
        Seeds the layer's own generator (initial weights and projections).
    feature_params : favor.gerf.GerfParameters, optional
        Fixed parameters of ``"oprf"``/``"saderf"``, one set per head (or one for all);
        usually set by :meth:`calibrate`. Required for causal use of these maps (forward
        and :meth:`decode`); bidirectional calls without them fit per (batch, head) from
        the inputs. Either way they carry no gradient (:mod:`favor.torch._calibrate`).

    Attributes
    ----------
    projection : torch.Tensor of shape (m, d_h) or (H, m, d_h)
        The random projection in use (a buffer, float32 or float64).
    sampler : str or None
        The sampler :meth:`redraw` draws from.

    Notes
    -----
    ``forward(..., need_weights=True)`` (``nn.MultiheadAttention``'s default) also returns
    the attention weights FAVOR+ implies, :math:`\hat A = D^{-1}\varphi(Q)\varphi(K)^T`
    (after dropout, so ``output = weights @ values`` per head), which costs
    :math:`O(L S)` memory like softmax attention; pass ``need_weights=False`` (as the
    standard Transformer layers do) for linear cost. Converting the layer to
    float16/bfloat16 keeps the projection buffer in float32 (attention arithmetic runs in
    float32 for half inputs anyway). Verified by: ``tests/favor/test_torch_module.py``,
    ``tests/favor/test_torch_layers.py``.

    Examples
    --------
    >>> import torch
    >>> from favor.torch import FavorAttention
    >>> layer = FavorAttention(16, 2, batch_first=True, n_components=32, random_state=0)
    >>> x = torch.zeros(3, 5, 16)
    >>> out, _ = layer(x, x, x, need_weights=False)
    >>> out.shape
    torch.Size([3, 5, 16])
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        kdim: int | None = None,
        vdim: int | None = None,
        batch_first: bool = False,
        device: Any = None,
        dtype: torch.dtype | None = None,
        *,
        n_components: int | None = None,
        causal: bool = False,
        features: str = "positive",
        projection: Any = "orthogonal",
        per_head: bool = False,
        redraw_interval: int | None = None,
        chunk_size: int | None = None,
        random_state: Any = None,
        feature_params: Any = None,
    ) -> None:
        super().__init__()
        embed_dim = check_positive_int("embed_dim", embed_dim)
        num_heads = check_positive_int("num_heads", num_heads)
        if embed_dim % num_heads:
            raise ValueError(
                f"embed_dim must be divisible by num_heads, got {embed_dim} and {num_heads}"
            )
        if (
            isinstance(dropout, bool)
            or not isinstance(dropout, numbers.Real)
            or not 0.0 <= float(dropout) <= 1.0
        ):
            raise ValueError(f"dropout must be a probability in [0, 1], got {dropout!r}")
        bias = check_flag("bias", bias)
        add_bias_kv = check_flag("add_bias_kv", add_bias_kv)
        self.add_zero_attn = check_flag("add_zero_attn", add_zero_attn)
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = float(dropout)
        self.kdim = embed_dim if kdim is None else check_positive_int("kdim", kdim)
        self.vdim = embed_dim if vdim is None else check_positive_int("vdim", vdim)
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.batch_first = check_flag("batch_first", batch_first)
        self.causal = check_flag("causal", causal)
        self.features = check_choice("features", features, FEATURE_MAPS)
        if feature_params is not None and FEATURE_MAPS[self.features].prepare is None:
            raise ValueError(
                f"feature_params applies to maps fitted per group (oprf, saderf), not "
                f"{self.features!r}"
            )
        self.feature_params = check_layer_params(
            self.features, feature_params, num_heads, embed_dim // num_heads
        )
        self.per_head = check_flag("per_head", per_head)
        if isinstance(projection, str):
            self.sampler: str | None = check_choice("projection", projection, SAMPLERS)
            self.n_components = (
                DEFAULT_N_COMPONENTS
                if n_components is None
                else check_positive_int("n_components", n_components)
            )
            initial = None
        else:
            initial = check_float_tensor(
                "projection", torch.as_tensor(projection), min_ndim=2
            ).detach()
            sign_rows = FEATURE_MAPS[self.features].sign_rows
            check_projection_shape(
                tuple(initial.shape),
                self.head_dim,
                num_heads if self.per_head else None,
                n_components,
                sign_rows,
            )
            self.sampler, self.n_components = None, int(initial.shape[-2]) - sign_rows
        self.redraw_interval = (
            None
            if redraw_interval is None
            else check_positive_int("redraw_interval", redraw_interval)
        )
        self.chunk_size = check_chunk_size(chunk_size)
        self.training_calls = 0
        self._rng = as_generator(random_state, "random_state").spawn(1)[0]

        # Parameters in nn.MultiheadAttention's names, shapes and registration order.
        factory = {"device": device, "dtype": dtype}
        register_parameters(self, bias=bias, add_bias_kv=add_bias_kv, factory=factory)
        buffer_dtype = torch.float64 if dtype == torch.float64 else torch.float32
        rows = FEATURE_MAPS[self.features].projection_rows(self.n_components)
        shape = (num_heads, rows, self.head_dim) if self.per_head else (rows, self.head_dim)
        check_memory(
            "the projection buffer", shape, buffer_dtype, because=f"n_components={n_components}"
        )
        self.register_buffer("projection", torch.empty(shape, device=device, dtype=buffer_dtype))
        self.register_forward_pre_hook(_no_fused_fast_path)
        reset_parameters(self, self._rng)
        if initial is None:
            self.redraw()
        else:
            with torch.no_grad():
                self.projection.copy_(initial)

    # ----------------------------------------------------------------- randomness and state

    def redraw(self, rng: Any = None) -> None:
        """Draw a new projection into the ``projection`` buffer (in place).

        Parameters
        ----------
        rng : None, int, SeedSequence or numpy.random.Generator, default=None
            Source of the draw; None continues the layer's own generator. The draw is
            :func:`favor.sampling.draw_projection` with :attr:`sampler`, in float64 on the
            host, then cast to the buffer's dtype and device.
        """
        if self.sampler is None:
            raise ValueError(
                "this layer was built from a prebuilt projection, so it has no sampler to "
                f"redraw from; set layer.sampler to one of {', '.join(map(repr, SAMPLERS))}"
            )
        source = self._rng if rng is None else as_generator(rng)
        drawn = draw_projection(
            check_choice("sampler", self.sampler, SAMPLERS),
            self.n_components,
            self.head_dim,
            rng=source,
            n_heads=self.num_heads if self.per_head else None,
        )
        drawn = draw_sign_rows(drawn, self.features, source)
        with torch.no_grad():
            self.projection.copy_(torch.as_tensor(drawn, dtype=self.projection.dtype))

    def get_extra_state(self) -> dict[str, Any]:
        """The redraw counter, the generator state and any fixed ``feature_params``."""
        return extra_state(self)

    def set_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`get_extra_state` saved."""
        load_extra_state(self, state)

    def calibrate(
        self, query: Any, key: Any = None, *, key_padding_mask: Any = None
    ) -> GerfParameters:
        r"""Fit and keep fixed ``"oprf"``/``"saderf"`` parameters from calibration inputs.

        The layer's per-head queries and keys of ``query`` and ``key`` (default: ``query``,
        self-attention), inputs laid out as for :meth:`forward`, give :math:`A^*` (and
        :math:`\Psi`) per head, pooled over the batch (:func:`favor.gerf.fit_feature_params`);
        they are stored as :attr:`feature_params` and returned. Needed before causal use
        of these maps; no gradient is recorded.
        """
        if FEATURE_MAPS[self.features].prepare is None:
            raise ValueError(
                f"calibrate applies to maps fitted per group (oprf, saderf), not {self.features!r}"
            )
        key = query if key is None else key
        q_in, k_in, _, _ = check_inputs(self, query, key, key)
        mask = padding_mask(key_padding_mask, k_in.shape[0], k_in.shape[1], k_in.device)
        with torch.no_grad():
            q, k, _ = project(self, q_in, k_in, k_in, compute_dtype(q_in.dtype))
        self.feature_params = calibrated_parameters(self.features, q, k, mask)
        return self.feature_params

    def _fixed_params(self, causal: bool) -> Any:
        if causal and self.feature_params is None and FEATURE_MAPS[self.features].prepare:
            raise ValueError(
                f"causal attention with features={self.features!r} needs parameters fixed in "
                "advance: call layer.calibrate(calibration_inputs) first (fitting them on the "
                "sequence itself would make early outputs depend on later positions)"
            )
        return self.feature_params

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        # An nn.MultiheadAttention state dict loads its weights and keeps this layer's own
        # projection and generator (favor.torch._state_dict).
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
        forget_own_missing_keys(state_dict, prefix, missing_keys)

    def _apply(self, fn: Any, recurse: bool = True) -> FavorAttention:
        # Keep the projection at >= float32 precision when the layer is cast to half types.
        before = self._buffers["projection"]
        super()._apply(fn, recurse)
        keep_float32_projection(self, before)
        return self

    # ----------------------------------------------------------------- conversion

    @classmethod
    def from_multihead(cls, mha: nn.MultiheadAttention, **options: Any) -> FavorAttention:
        """A FavorAttention with the weights, settings and mode of ``mha``.

        Parameters
        ----------
        mha : torch.nn.MultiheadAttention
            The layer to convert (left unchanged).
        **options
            The FAVOR+ keyword options (``n_components``, ``causal``, ``features``,
            ``projection``, ``per_head``, ``redraw_interval``, ``chunk_size``,
            ``random_state``).

        Returns
        -------
        FavorAttention
            Same ``embed_dim``, ``num_heads``, ``dropout``, bias settings, ``kdim``,
            ``vdim``, ``batch_first``, device and dtype; every parameter copied (strict
            load, ``requires_grad`` kept); the projection drawn from ``random_state``.
        """
        if not isinstance(mha, nn.MultiheadAttention):
            raise ValueError(f"mha must be a torch.nn.MultiheadAttention, got {type(mha).__name__}")
        layer = cls(*multihead_arguments(mha), **options)
        layer.load_state_dict(mha.state_dict(), strict=True)
        return with_requires_grad_of(mha, layer)

    def to_multihead(self) -> nn.MultiheadAttention:
        """The ``nn.MultiheadAttention`` with this layer's weights, settings and mode.

        The projection and the redraw state are dropped (softmax attention needs
        neither); every parameter is copied by a strict ``load_state_dict``.
        """
        return _state_dict.to_multihead(self)

    # ----------------------------------------------------------------- forward

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor | None = None,
        value: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None,
        need_weights: bool = True,
        attn_mask: torch.Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend from ``query`` to ``key``/``value``: ``nn.MultiheadAttention.forward``'s contract.

        Parameters
        ----------
        query : torch.Tensor of shape (batch, L, embed_dim)
            Queries (``(L, batch, embed_dim)`` when ``batch_first=False``; ``(L, embed_dim)``
            unbatched; a nested tensor of ``(L_b, embed_dim)`` sequences with
            ``batch_first=True``).
        key : torch.Tensor of shape (batch, S, kdim), optional
            Keys (same layout); defaults to ``query``.
        value : torch.Tensor of shape (batch, S, vdim), optional
            Values (same layout); defaults to ``key``.
        key_padding_mask : tensor of shape (batch, S) or (S,), optional
            Boolean (True marks a padded key) or float (``0`` keep, ``-inf`` padded); a
            padded key is removed from numerator and normaliser.
        need_weights : bool, default=True
            Also return the attention weights FAVOR+ implies (``O(L S)`` memory); False
            keeps the cost linear.
        attn_mask : tensor of shape (L, S) or (batch * num_heads, L, S), optional
            Accepted only when exactly causal (boolean or float, see
            :mod:`favor.torch._masks`); it then makes the call causal.
        average_attn_weights : bool, default=True
            Average the returned weights over heads.
        is_causal : bool, default=False
            Run this call causally. With an ``attn_mask`` it is the hint of
            ``nn.MultiheadAttention`` (the mask is still checked); unlike
            ``nn.MultiheadAttention`` it may also be given without a mask.

        Returns
        -------
        output : torch.Tensor
            Same layout and dtype as ``query``, last axis ``embed_dim``.
        weights : torch.Tensor of shape (batch, L, S) or (batch, num_heads, L, S), or None
            The weights :math:`D^{-1}\\varphi(Q)\\varphi(K)^T` (after dropout; columns for
            ``add_bias_kv``/``add_zero_attn`` last) when ``need_weights``, else None.

        Raises
        ------
        ValueError
            For bad shapes, dtypes, flags, non-finite inputs, a float padding mask with
            values other than ``0``/``-inf``, or an ``attn_mask`` that is not causal.
        """
        need_weights = check_flag("need_weights", need_weights)
        average_attn_weights = check_flag("average_attn_weights", average_attn_weights)
        is_causal = check_flag("is_causal", is_causal)
        key = query if key is None else key
        value = key if value is None else value
        if any(isinstance(x, torch.Tensor) and x.is_nested for x in (query, key, value)):
            return forward_nested(
                self, query, key, value, key_padding_mask, need_weights, attn_mask, is_causal
            )
        q_in, k_in, v_in, batched = check_inputs(self, query, key, value)
        batch, n_queries, n_keys = q_in.shape[0], q_in.shape[1], k_in.shape[1]
        if key_padding_mask is not None and not batched and key_padding_mask.ndim == 1:
            key_padding_mask = key_padding_mask[None]
        mask = padding_mask(key_padding_mask, batch, n_keys, k_in.device)
        masked_causal = causal_from_attn_mask(attn_mask, n_queries, n_keys, batch * self.num_heads)
        causal = self.causal or is_causal or masked_causal
        if causal and n_queries != n_keys:
            raise ValueError(
                "causal attention needs query and key of the same length, got "
                f"{n_queries} and {n_keys}"
            )
        if self.training and self.redraw_interval is not None:
            if self.training_calls and self.training_calls % self.redraw_interval == 0:
                self.redraw()
            self.training_calls += 1
        out, weights = self._attend(q_in, k_in, v_in, mask, causal, need_weights)
        if weights is not None and average_attn_weights:
            weights = weights.mean(dim=1)
        if not batched:
            return out[0], None if weights is None else weights[0]
        return (out if self.batch_first else out.transpose(0, 1)), weights

    def _attend(
        self,
        q_in: torch.Tensor,
        k_in: torch.Tensor,
        v_in: torch.Tensor,
        mask: torch.Tensor | None,
        causal: bool,
        need_weights: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """FAVOR+ on checked ``(B, L, width)`` inputs: the output and, if asked, per-head weights."""
        work = compute_dtype(q_in.dtype)
        q, k, v = project(self, q_in, k_in, v_in, work)
        q, k, v, mask, n_extra = with_extra_tokens(self, q, k, v, mask, causal)
        keep = None
        if self.training and self.dropout > 0.0:
            # One keep/drop draw per (sequence, head, key), scaled by 1/(1-p): see `dropout`.
            keep = nn.functional.dropout(v.new_ones(*v.shape[:-1], 1), self.dropout, training=True)
            v = v * keep
        mask_h = None if mask is None else mask[:, None, :]
        w = self.projection.to(work)
        params = self._fixed_params(causal)
        y = favor_core(q, k, v, w, mask_h, self.features, causal, self.chunk_size, params)
        weights = None
        if need_weights:
            # The weights are FAVOR+ applied to one-hot values: row i of D^-1 phi(Q) phi(K)^T.
            n_keys = k.shape[2]
            eye = torch.eye(n_keys, dtype=work, device=q.device).expand(*k.shape[:2], -1, -1)
            weights = favor_core(
                q, k, eye, w, mask_h, self.features, causal, self.chunk_size, params
            )
            if keep is not None:
                weights = weights * keep.transpose(-1, -2)
            if causal and n_extra:
                weights = weights[..., n_extra:, :]
                weights = torch.cat([weights[..., n_extra:], weights[..., :n_extra]], dim=-1)
            weights = weights.to(q_in.dtype)
        if causal and n_extra:
            y = y[..., n_extra:, :]
        return merge(self, y, q_in.dtype), weights

    # ----------------------------------------------------------------- decoding

    def init_state(self, batch_size: int, *, device: Any = None) -> DecodingState:
        """An empty :class:`DecodingState` for ``batch_size`` sequences (no token seen)."""
        return _layer_decoding.init_state(self, batch_size, device)

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
        fixed size ``(batch, H, m', d_h + 1)`` however many tokens were consumed. The
        ``add_bias_kv``/``add_zero_attn`` tokens enter the state with the first piece.
        Dropout is not applied (decoding is inference).

        Parameters
        ----------
        query : torch.Tensor of shape (batch, T, embed_dim)
            The next ``T`` tokens (``(T, batch, embed_dim)`` when ``batch_first=False``).
        state : DecodingState, optional
            The state returned by the previous call; None starts a new sequence.
        key_padding_mask : tensor of shape (batch, T), optional
            Boolean or float ``0``/``-inf``; a padded token attends normally but is never
            attended to.

        Returns
        -------
        output : torch.Tensor
            Same layout as ``query``.
        state : DecodingState
            The state after these tokens.
        """
        return _layer_decoding.decode(self, query, state, key_padding_mask)

    def extra_repr(self) -> str:
        return (
            f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}, "
            f"batch_first={self.batch_first}, n_components={self.n_components}, "
            f"causal={self.causal}, features={self.features!r}, sampler={self.sampler!r}, "
            f"per_head={self.per_head}, redraw_interval={self.redraw_interval}"
        )
