r"""FAVOR+ attention and exact softmax attention on tensors (the torch twins of the NumPy engine).

:func:`favor_attention` implements the public contract of :func:`favor.favor_attention`
on ``torch.Tensor`` inputs, on any device, with autograd:

.. math::
    \mathrm{out}_i = \frac{\sum_j \varphi(q_i)^T \varphi(k_j)\, v_j}{\sum_j \varphi(q_i)^T \varphi(k_j)},
    \qquad q_i \leftarrow d^{-1/4} q_i,\ k_j \leftarrow d^{-1/4} k_j,

with ``j <= i`` when causal and padded keys removed from both sums (Performers Eqs. 10-12,
Sec. 2.6); a query that sees no key gets a zero row; no epsilon anywhere.

Stabilisers cancel exactly: queries use the split form of
:mod:`favor.torch.features` (a per-row shift); keys carry a log-scale :math:`a_j`, combined
through one maximum per (batch, head) bidirectionally, and through a running maximum over
positions ``<= t`` causally (:mod:`favor.torch._causal`), so no output depends on later keys.

Projections are drawn on the host by :func:`favor.sampling.draw_projection` in float64,
then cast and moved, so one ``rng`` gives the same projection as the NumPy engine.
float16/bfloat16 inputs are computed in float32 and the output is cast back; float32 and
float64 inputs are computed in their own dtype.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch

from favor._guards import FavorAccuracyWarning
from favor._validation import RandomLike
from favor.registry import feature_map
from favor.sampling import check_projection_shape
from favor.sampling import resolve_projection as numpy_resolve_projection
from favor.torch._causal import FLOOR, causal_linear_attention, default_chunk_size
from favor.torch._checks import (
    check_attention_tensors,
    check_chunk_size,
    check_finite_output,
    check_float_tensor,
    check_tensor_norms,
    compute_dtype,
    is_compiling,
)
from favor.torch.features import key_exponent, key_features, map_params, query_features

__all__ = ["favor_attention", "resolve_projection", "softmax_attention"]


def resolve_projection(
    projection: Any,
    n_components: Any,
    n_features: int,
    rng: RandomLike,
    n_heads: int | None,
    *,
    dtype: torch.dtype,
    device: torch.device,
    features: str | None = None,
) -> torch.Tensor:
    """Return the projection as a tensor of ``dtype`` on ``device``: drawn, or a checked prebuilt one.

    ``projection`` is None (orthogonal), a sampler name, or a prebuilt ``(m, d)`` array or
    tensor (``(H, m, d)`` when ``n_heads`` is given). Drawing uses
    :func:`favor.sampling.resolve_projection` on the host in float64 (the NumPy engine's
    rule), then casts and moves.
    """
    if isinstance(projection, torch.Tensor):
        w = check_float_tensor("projection", projection, min_ndim=2)
        sign_rows = 0 if features is None else feature_map(features).sign_rows
        check_projection_shape(tuple(w.shape), n_features, n_heads, n_components, sign_rows)
        return w.to(device=device, dtype=dtype)
    # Names and NumPy arrays: the NumPy engine's resolution (host draw in float64).
    w = numpy_resolve_projection(
        projection, n_components, n_features, rng=rng, n_heads=n_heads, features=features
    )
    return torch.as_tensor(w if n_heads is not None else w[0], dtype=dtype, device=device)


def normalise(num: torch.Tensor, den: torch.Tensor, features: str | None = None) -> torch.Tensor:
    """``num / den`` by rows, with a zero row where ``den <= 0``.

    ``den == 0``: no visible key (0/0). ``den < 0`` happens only for signed features
    (trigonometric, hybrid): the normaliser sign rule of :func:`favor.favor_attention`
    zeroes such a row, and a map named in ``features`` with signed features warns
    (:class:`favor.FavorAccuracyWarning`) with their number. The denominator is replaced
    by 1 before dividing, so neither the value nor the gradient ever sees a division by
    zero; the explicit zeroing runs only when such a row exists.
    """
    empty = den <= 0
    out = num / den.masked_fill(empty, 1.0)
    if is_compiling() or bool(empty.any()):
        out = out.masked_fill_(empty, 0.0)
        if features is not None and not is_compiling() and not feature_map(features).nonnegative:
            negative = int((den < 0).sum())
            if negative:
                warnings.warn(
                    f"features={features!r}: {negative} of {den.numel()} query rows had an "
                    "estimated normaliser <= 0 (signed features; the true one is positive) "
                    "and were set to zero (the normaliser sign rule); raise n_components or "
                    "use a positive map",
                    FavorAccuracyWarning,
                    stacklevel=4,
                )
    return out


def default_block_rows(lead: tuple[int, ...], width: int, device: torch.device) -> int:
    """Rows per block of the bidirectional path.

    On CPU, about 2**24 feature entries (64 MiB in float32) per block; the whole sequence
    on accelerators. Fewer, larger blocks pay fewer thread-pool round trips per call;
    the cap bounds the working set at long L (fresh buffers above glibc's mmap threshold
    cost page faults on every call, so without autograd one buffer is reused by all
    blocks).
    """
    if device.type != "cpu":
        return 1 << 62
    return max(256, (1 << 24) // max(1, math.prod(lead) * width))


def _bidirectional(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    projection: torch.Tensor,
    mask: torch.Tensor | None,
    features: str,
    block: int,
    scale: float,
    params: torch.Tensor,
) -> torch.Tensor:
    r"""Bidirectional FAVOR+ in row blocks (``scale`` is the :math:`d^{-1/4}` temperature).

    Keys are folded block by block into :math:`S = \sum_j e^{a_j - A}\psi_j (v_j, 1)^T`
    with one running shift :math:`A` per (batch, head) (the maximum so far; the sum is
    rescaled by :math:`e^{A_{old} - A_{new}}` when it grows), then each query block is
    :math:`\psi(q) S` normalised by its last column. The shift cancels exactly.
    """
    u = torch.cat([v, torch.ones_like(v[..., :1])], dim=-1)
    # Without autograd, one feature buffer serves every key and query block: a fresh
    # L x m buffer costs more in page faults on CPU than the GEMM that fills it.
    reuse = not torch.is_grad_enabled() or not any(t.requires_grad for t in (q, k, v, projection))
    spare: torch.Tensor | None = None

    spec = feature_map(features)
    exponential = spec.exponent_signs is not None

    def buffer_for(x: torch.Tensor, width: int) -> torch.Tensor | None:
        if not reuse or spare is None or not exponential:
            return None
        return spare if spare.shape == (*x.shape[:-1], width) else None

    width = spec.width_for_rows(projection.shape[-2])
    state, top = None, None
    for start in range(0, k.shape[-2], block):
        rows = slice(start, start + block)
        k_blk = k[..., rows, :]
        m_blk = None if mask is None else mask[..., rows]
        if exponential:
            out = buffer_for(k_blk, width)
            exponent = key_exponent(features, k_blk, projection, m_blk, scale, out)
            block_top = exponent.detach().amax(dim=(-2, -1))
        else:
            psi, log_scale = key_features(features, k_blk, projection, m_blk, scale, params)
            block_top = log_scale.amax(dim=-1)
        new_top = block_top.clamp_min(FLOOR) if top is None else torch.maximum(top, block_top)
        if exponential:
            kf = exponent.sub_(new_top[..., None, None]).exp_()
        else:
            kf = psi * torch.exp(log_scale - new_top[..., None])[..., None]
        part = torch.matmul(kf.transpose(-1, -2), u[..., rows, :])
        if state is None:
            state = part
        else:
            state = state * torch.exp(top - new_top)[..., None, None] + part
        top = new_top
        spare = kf if reuse else None
    outs = []
    for start in range(0, q.shape[-2], block):
        q_blk = q[..., start : start + block, :]
        qf = query_features(features, q_blk, projection, scale, buffer_for(q_blk, width), params)
        y = torch.matmul(qf, state)
        outs.append(normalise(y[..., :-1], y[..., -1:], features))
    return outs[0] if len(outs) == 1 else torch.cat(outs, dim=-2)


def favor_core(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    projection: torch.Tensor,
    mask: torch.Tensor | None,
    features: str,
    causal: bool,
    chunk: int | None,
    feature_params: Any = None,
) -> torch.Tensor:
    """FAVOR+ on trusted inputs already in the compute dtype (see :func:`favor_attention`).

    ``chunk`` is the causal chunk length, or the bidirectional block length (None: the
    device defaults :func:`default_chunk_size` / :func:`default_block_rows`). Maps fitted
    per group ("oprf", "saderf") are rewritten by :func:`favor.torch.gerf.prepare` into
    the positive map on augmented inputs.
    """
    scale = q.shape[-1] ** -0.25  # the d^(-1/4) temperature, applied to the projection
    spec = feature_map(features)
    if spec.prepare is not None:
        from favor.torch.gerf import prepare

        q, k, projection = prepare(q, k, projection, mask, features, causal, feature_params, scale)
        features = "positive"
        spec = feature_map(features)
    elif feature_params is not None:
        raise ValueError(
            f"feature_params applies to maps fitted per group (oprf, saderf), not {features!r}"
        )
    if not causal:
        # Data-fitted parameters may use the inputs bidirectionally, never causally.
        data = None if spec.params is None else torch.cat([q, k], dim=-2) * scale
        params = map_params(spec, data, projection, q)
        width = spec.width_for_rows(projection.shape[-2])
        block = default_block_rows(q.shape[:-2], width, q.device) if chunk is None else chunk
        return _bidirectional(q, k, v, projection, mask, features, block, scale, params)
    params = map_params(spec, None, projection, q)
    qf = query_features(features, q, projection, scale, params=params)
    kf, log_scale = key_features(features, k, projection, mask, scale, params)
    lead, length = q.shape[:-2], q.shape[-2]
    batch = math.prod(lead)
    width = qf.shape[-1]
    u = torch.cat([v, torch.ones_like(v[..., :1])], dim=-1)
    y, _ = causal_linear_attention(
        qf.reshape(batch, length, width),
        kf.reshape(batch, length, width),
        log_scale.expand(*lead, length).reshape(batch, length),
        u.reshape(batch, length, u.shape[-1]),
        chunk=default_chunk_size(q.device) if chunk is None else chunk,
    )
    y = y.reshape(*lead, length, u.shape[-1])
    return normalise(y[..., :-1], y[..., -1:], features)


def favor_attention(
    queries: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    *,
    n_components: int | None = None,
    causal: bool = False,
    rng: RandomLike = None,
    key_padding_mask: torch.Tensor | None = None,
    projection: Any = None,
    features: str = "positive",
    per_head: bool = False,
    chunk_size: int | None = None,
    feature_params: Any = None,
) -> torch.Tensor:
    r"""FAVOR+ attention on tensors: the contract of :func:`favor.favor_attention`.

    Parameters
    ----------
    queries : torch.Tensor of shape (..., L, d)
        Queries; float16, bfloat16, float32 or float64.
    keys : torch.Tensor of shape (..., L_k, d)
        Keys, same leading axes, dtype and device.
    values : torch.Tensor of shape (..., L_k, d_v)
        Values, same leading axes, dtype and device.
    n_components : int, optional
        Number of random projections ``m``; 256 when drawing. With a prebuilt projection it
        must be None or equal its row count.
    causal : bool, default=False
        Query ``t`` sees keys ``j <= t`` only (needs ``L == L_k``).
    rng : None, int, SeedSequence or numpy.random.Generator, default=None
        Seed for the host-side projection draw (ignored for a prebuilt projection).
    key_padding_mask : bool tensor of shape (..., L_k), optional
        True marks a padded key, removed from numerator and normaliser; leading axes equal
        the inputs' or are 1.
    projection : None, str, array or tensor, default=None
        None draws ``"orthogonal"``; a sampler name (:data:`favor.registry.SAMPLERS`)
        draws that; a prebuilt ``(m, d)`` (or ``(H, m, d)`` with
        ``per_head``) array or tensor is used as given (cast and moved; a tensor that
        requires grad receives gradients).
    features : str, default="positive"
        The feature map (:data:`favor.registry.FEATURE_MAPS`; softmax-kernel forms, "relu"
        gives generalised attention).
    per_head : bool, default=False
        One projection per head, the head axis being ``queries.shape[-3]``.
    chunk_size : int, optional
        Rows per chunk: the causal chunk length (default 128) or the
        bidirectional block length (default about 2**24 feature entries per block on CPU,
        the whole sequence on GPU); changes speed and memory, not the result beyond
        rounding.
    feature_params : favor.gerf.GerfParameters, optional
        Fixed parameters of "oprf"/"saderf", required with ``causal=True``
        (:func:`favor.favor_attention`). Fitted ones are computed from detached inputs
        and carry no gradient (:mod:`favor.torch.gerf`).

    Returns
    -------
    torch.Tensor of shape (..., L, d_v)
        Same dtype and device as ``queries``.

    Raises
    ------
    ValueError
        For bad shapes, dtypes, devices, masks, non-finite values or options.

    Notes
    -----
    Bidirectional cost :math:`O(L m (d + d_v))`; causal adds :math:`O(L C (m + d_v))` for the
    in-chunk products; memory is :math:`O(L (m + d_v))` in both directions of autograd.
    Verified by: ``tests/favor/test_torch.py`` (parity with the NumPy engine, gradcheck,
    future-leak, masks).

    Examples
    --------
    >>> import torch
    >>> from favor.torch import favor_attention
    >>> q = k = v = torch.zeros(2, 5, 8)
    >>> favor_attention(q, k, v, causal=True, rng=0).shape
    torch.Size([2, 5, 8])
    """
    q, k, v, mask = check_attention_tensors(
        queries, keys, values, key_padding_mask, causal=bool(causal)
    )
    name = feature_map(features).name
    chunk = check_chunk_size(chunk_size)
    n_heads = None
    if per_head:
        if q.ndim < 3:
            raise ValueError(
                "per_head=True needs inputs with a head axis (..., H, L, d), got shape "
                f"{tuple(q.shape)}"
            )
        n_heads = q.shape[-3]
    work = compute_dtype(q.dtype)
    check_tensor_norms("queries", q.to(work), q.shape[-1] ** -0.25)
    check_tensor_norms("keys", k.to(work), k.shape[-1] ** -0.25)
    w = resolve_projection(
        projection,
        n_components,
        q.shape[-1],
        rng,
        n_heads,
        dtype=work,
        device=q.device,
        features=name,
    )
    # A per-head (H, m, d) projection broadcasts against (..., H, L, d) inputs in matmul.
    out = favor_core(
        q.to(work), k.to(work), v.to(work), w, mask, name, bool(causal), chunk, feature_params
    )
    return out.to(q.dtype)


def softmax_attention(
    queries: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    *,
    causal: bool = False,
    key_padding_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Exact softmax attention :math:`D^{-1}\exp(QK^T/\sqrt d)V` on tensors (the reference).

    The twin of :func:`favor.softmax_attention`: same masking rules, a zero row for a query
    with no visible key, half-precision inputs computed in float32.

    Parameters
    ----------
    queries : torch.Tensor of shape (..., L_q, d)
        Queries.
    keys : torch.Tensor of shape (..., L_k, d)
        Keys.
    values : torch.Tensor of shape (..., L_k, d_v)
        Values.
    causal : bool, default=False
        Lower-triangular attention (needs ``L_q == L_k``).
    key_padding_mask : bool tensor of shape (..., L_k), optional
        True marks a padded key.

    Returns
    -------
    torch.Tensor of shape (..., L_q, d_v)
        Same dtype and device as ``queries``. Materialises ``L_q x L_k`` logits.
    """
    q, k, v, mask = check_attention_tensors(
        queries, keys, values, key_padding_mask, causal=bool(causal)
    )
    work = compute_dtype(q.dtype)
    qw, kw, vw = q.to(work), k.to(work), v.to(work)
    logits = torch.matmul(qw, kw.transpose(-1, -2)) * (1.0 / math.sqrt(q.shape[-1]))
    hidden = torch.zeros(logits.shape[-2:], dtype=torch.bool, device=q.device)
    if causal:
        hidden = torch.ones_like(hidden).triu_(1)
    if mask is not None:
        hidden = hidden | mask[..., None, :]
    logits = logits.masked_fill(hidden, float("-inf"))
    row_max = logits.amax(dim=-1, keepdim=True).detach()
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
    weights = torch.exp(logits - row_max)
    out = normalise(torch.matmul(weights, vw), weights.sum(dim=-1, keepdim=True))
    check_finite_output(
        "softmax_attention",
        out,
        "overflow: the logits q.k / sqrt(d) or the weighted sums of values exceed the "
        f"{out.dtype} range",
    )
    return out.to(q.dtype)
