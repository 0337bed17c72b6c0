r"""Causal linear attention in O(L (m + d_v)) memory, forward and backward.

Inputs are the split-form features of :mod:`favor.torch.features`, flattened to one
batch axis: query features :math:`q_t \in \mathbb R^m`, key features :math:`k_j`, their
detached log-scales :math:`a_j` (``-inf`` for a padded key) and augmented values
:math:`u_j = (v_j, 1) \in \mathbb R^{e}`. With the running log-scale
:math:`r_t = \max_{j \le t} a_j` (a running maximum: it never looks past ``t``), the op
returns

.. math::
    y_t = \sum_{j \le t} (q_t^T k_j)\, e^{a_j - r_t}\, u_j ,

whose last column is the normaliser; every weight :math:`e^{a_j - r_t} \le 1`, and the
factor :math:`e^{-r_t}` is common to numerator and normaliser, so it cancels exactly
(formulas §1.3 [A2] and §1.4: prefix sums, running maximum; Performers Sec. 2.6 / Eq. 12).

Chunked evaluation with chunks of ``C`` positions (``N = L / C`` chunks):

* inside a chunk, the masked product :math:`((Q K^T) \odot F) U` with
  :math:`F_{tj} = e^{a_j - r_t}[j \le t]`;
* across chunks, the carried ``m x e`` state
  :math:`P_c = \sum_{c' < c} \hat U_{c'} e^{R_{c'} - R_{c-1}}`, where :math:`R_c` is the
  running log-scale at the end of chunk ``c`` and :math:`\hat U_c = \sum_{j \in c} k_j
  e^{a_j - R_c} u_j^T`; it enters as :math:`e^{R_{c-1} - r_t} q_t^T P_c`.

The prefix over chunks is a sequential loop on CPU and a Hillis-Steele scan (log2 N
whole-tensor steps) on CUDA; both give every chunk a state built from earlier chunks only,
so outputs at ``t`` never depend on positions after ``t``, to the last bit. Memory is
``O(B L (m + e + C) + B (L/C) m e)``, linear in ``L`` (the chunk states total
``L m e / C``, no ``L x m x e`` tensor). The backward pass (:class:`CausalLinearAttention`)
saves only the inputs and *recomputes* the chunk states, then runs the reverse scan
:math:`\partial\hat U_c = \sum_{c' > c} e^{R_c - R_{c'-1}} \partial P_{c'}`; it never rebuilds
states by subtracting from a final sum (research note F5: that drifts in low precision).
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["FLOOR", "CausalLinearAttention", "causal_linear_attention", "default_chunk_size"]

#: Stand-in for ``-inf`` in running log-scales (no visible key yet); keeps exp() finite.
FLOOR = -1.0e30


def default_chunk_size(device: torch.device) -> int:
    """Chunk length used when ``chunk_size=None``: 128 on CPU and on accelerators.

    Every chunk of the sequential CPU loop costs a few thread-pool round trips, so longer
    chunks amortise them (at the price of a larger in-chunk product, batched over all
    chunks either way); the chunk length changes speed and memory, not the result beyond
    rounding.
    """
    return 128


def _decays(end_scale: torch.Tensor) -> torch.Tensor:
    """:math:`e^{R_{c-1} - R_c}` per chunk ``(B, N)`` (with :math:`R_{-1}` = FLOOR): at most 1."""
    start = torch.cat([torch.full_like(end_scale[:, :1], FLOOR), end_scale[:, :-1]], dim=1)
    return torch.exp(start - end_scale)


def _prefix_states(u_hat: torch.Tensor, end_scale: torch.Tensor, parallel: bool) -> torch.Tensor:
    r"""Exclusive prefix :math:`P_c = \sum_{c'<c} \hat U_{c'} e^{R_{c'} - R_{c-1}}`, ``(B, N, m, e)``.

    ``u_hat`` is ``(B, N, m, e)``, ``end_scale`` is :math:`R` of shape ``(B, N)``
    (non-decreasing along N). Sequential: one fused op per chunk,
    :math:`P_{c+1} = \hat U_c + e^{R_{c-1} - R_c} P_c`. Parallel: Hillis-Steele, log2 N
    whole-tensor steps. Either way :math:`P_c` is computed from chunks before ``c`` only,
    in an order that does not depend on later chunks.
    """
    n = u_hat.shape[1]
    if not parallel:
        decay = _decays(end_scale)
        out = torch.empty_like(u_hat)
        out[:, 0].zero_()
        for c in range(n - 1):
            torch.addcmul(u_hat[:, c], out[:, c], decay[:, c, None, None], out=out[:, c + 1])
        return out
    incl = u_hat.clone()
    step = 1
    while step < n:
        decay = torch.exp(end_scale[:, :-step] - end_scale[:, step:])
        incl[:, step:] += incl[:, :-step] * decay[:, :, None, None]
        step *= 2
    return torch.cat([torch.zeros_like(incl[:, :1]), incl[:, :-1]], dim=1)


def _suffix_grads(d_prefix: torch.Tensor, end_scale: torch.Tensor, parallel: bool) -> torch.Tensor:
    r"""Adjoint of :func:`_prefix_states`: :math:`\partial\hat U_c = \sum_{c'>c} e^{R_c - R_{c'-1}} \partial P_{c'}`.

    Sequential: :math:`\partial\hat U_{c-1} = \partial P_c + e^{R_{c-1} - R_c}\,\partial\hat U_c`
    from the last chunk down; parallel: the mirrored Hillis-Steele scan.
    """
    n = d_prefix.shape[1]
    if not parallel:
        decay = _decays(end_scale)
        out = torch.empty_like(d_prefix)
        out[:, n - 1].zero_()
        for c in range(n - 1, 0, -1):
            torch.addcmul(d_prefix[:, c], out[:, c], decay[:, c, None, None], out=out[:, c - 1])
        return out
    start_scale = torch.cat([torch.full_like(end_scale[:, :1], FLOOR), end_scale[:, :-1]], dim=1)
    incl = d_prefix.clone()
    step = 1
    while step < n:
        decay = torch.exp(start_scale[:, :-step] - start_scale[:, step:])
        incl[:, :-step] += incl[:, step:] * decay[:, :, None, None]
        step *= 2
    return torch.cat([incl[:, 1:], torch.zeros_like(incl[:, :1])], dim=1)


def _chunk_view(
    qf: torch.Tensor,
    kf: torch.Tensor,
    a: torch.Tensor,
    r: torch.Tensor,
    u: torch.Tensor,
    chunk: int,
) -> tuple[torch.Tensor, ...]:
    """Pad the length to a multiple of ``chunk`` and view every input as ``(B, N, C, ...)``."""
    b, length, _ = qf.shape
    pad = (-length) % chunk
    if pad:
        qf = torch.nn.functional.pad(qf, (0, 0, 0, pad))
        kf = torch.nn.functional.pad(kf, (0, 0, 0, pad))
        u = torch.nn.functional.pad(u, (0, 0, 0, pad))
        a = torch.nn.functional.pad(a, (0, pad), value=float("-inf"))
        r = torch.cat([r, r[:, -1:].expand(b, pad)], dim=1)
    n = (length + pad) // chunk
    return (
        qf.reshape(b, n, chunk, -1),
        kf.reshape(b, n, chunk, -1),
        a.reshape(b, n, chunk),
        r.reshape(b, n, chunk),
        u.reshape(b, n, chunk, -1),
    )


def _pad_chunks(x: torch.Tensor, chunk: int) -> torch.Tensor:
    """Zero-pad ``(B, L, e)`` to a multiple of ``chunk`` positions and view it as ``(B, N, C, e)``."""
    pad = (-x.shape[1]) % chunk
    if pad:
        x = torch.nn.functional.pad(x, (0, 0, 0, pad))
    return x.reshape(x.shape[0], -1, chunk, x.shape[-1])


def _scales(ac: torch.Tensor, rc: torch.Tensor) -> tuple[torch.Tensor, ...]:
    r"""Every stabilising factor, each at most 1, computed once for all chunks.

    Returns ``f`` :math:`(B, N, C, C)`: :math:`F_{tj} = e^{a_j - r_t}[j \le t]` inside a chunk;
    ``carry`` :math:`(B, N, C)`: :math:`e^{R_{c-1} - r_t}`, the weight of the carried state
    at ``t``; ``key_scale`` :math:`(B, N, C)`: :math:`e^{a_j - R_c}`, the weight of key ``j``
    in its chunk's state; ``end`` :math:`(B, N)`: :math:`R_c`.
    """
    chunk = ac.shape[-1]
    end = rc[..., -1]
    start = torch.cat([torch.full_like(end[:, :1], FLOOR), end[:, :-1]], dim=1)
    upper = torch.ones(chunk, chunk, dtype=torch.bool, device=ac.device).triu_(1)
    f = torch.exp((ac[..., None, :] - rc[..., :, None]).masked_fill_(upper, float("-inf")))
    carry = torch.exp(start[..., None] - rc)
    key_scale = torch.exp(ac - end[..., None])
    return f, carry, key_scale, end


class CausalLinearAttention(torch.autograd.Function):
    """Chunked causal linear attention with a recomputing backward (see the module notes).

    ``apply(qf, kf, a, r, u, chunk, parallel)`` with ``qf, kf`` of shape ``(B, L, m)``,
    ``a, r`` of shape ``(B, L)`` (non-differentiable log-scales), ``u`` of shape
    ``(B, L, e)``; returns ``y`` of shape ``(B, L, e)``. In-chunk products and the chunk
    sums run for all chunks at once (a few large batched GEMMs); only the carried state's
    recurrence runs over chunks, as one fused op per chunk (``parallel=False``, CPU) or
    as a Hillis-Steele scan (accelerators).
    """

    @staticmethod
    def forward(
        ctx: Any,
        qf: torch.Tensor,
        kf: torch.Tensor,
        a: torch.Tensor,
        r: torch.Tensor,
        u: torch.Tensor,
        chunk: int,
        parallel: bool,
    ) -> torch.Tensor:
        ctx.save_for_backward(qf, kf, a, r, u)
        ctx.chunk, ctx.parallel = chunk, parallel
        b, length, e = u.shape
        qc, kc, ac, rc, uc = _chunk_view(qf, kf, a, r, u, chunk)
        f, carry, key_scale, end = _scales(ac, rc)
        y = torch.matmul(torch.matmul(qc, kc.transpose(-1, -2)).mul_(f), uc)
        del f
        u_hat = torch.matmul((kc * key_scale[..., None]).transpose(-1, -2), uc)
        prefix = _prefix_states(u_hat, end, parallel)
        del u_hat
        y.addcmul_(torch.matmul(qc, prefix), carry[..., None])
        return y.reshape(b, -1, e)[:, :length]

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        qf, kf, a, r, u = ctx.saved_tensors
        chunk, parallel = ctx.chunk, ctx.parallel
        b, length, e = u.shape
        m = qf.shape[-1]
        qc, kc, ac, rc, uc = _chunk_view(qf, kf, a, r, u, chunk)
        gc = _pad_chunks(grad, chunk)
        f, carry, key_scale, end = _scales(ac, rc)
        # Inside chunks: y = (Q K^T * F) U.
        weights = torch.matmul(qc, kc.transpose(-1, -2)).mul_(f)
        d_u = torch.matmul(weights.transpose(-1, -2), gc)
        del weights
        d_w = torch.matmul(gc, uc.transpose(-1, -2)).mul_(f)
        del f
        d_q = torch.matmul(d_w, kc)
        d_k = torch.matmul(d_w.transpose(-1, -2), qc)
        del d_w
        # Across chunks: y_t += carry_t q_t^T P_c, with the states recomputed, not stored.
        g_carry = gc * carry[..., None]
        k_hat = kc * key_scale[..., None]
        prefix = _prefix_states(torch.matmul(k_hat.transpose(-1, -2), uc), end, parallel)
        d_q += torch.matmul(g_carry, prefix.transpose(-1, -2))
        del prefix
        d_u_hat = _suffix_grads(torch.matmul(qc.transpose(-1, -2), g_carry), end, parallel)
        d_u += torch.matmul(k_hat, d_u_hat)
        d_k.addcmul_(torch.matmul(uc, d_u_hat.transpose(-1, -2)), key_scale[..., None])
        return (
            d_q.reshape(b, -1, m)[:, :length],
            d_k.reshape(b, -1, m)[:, :length],
            None,
            None,
            d_u.reshape(b, -1, e)[:, :length],
            None,
            None,
        )


def causal_linear_attention(
    qf: torch.Tensor,
    kf: torch.Tensor,
    a: torch.Tensor,
    u: torch.Tensor,
    *,
    chunk: int,
    initial: tuple[torch.Tensor, torch.Tensor] | None = None,
    return_state: bool = False,
    parallel: bool | None = None,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
    r"""Causal :math:`y_t = \sum_{j \le t} (q_t^T k_j) e^{a_j - r_t} u_j`, optionally continuing a state.

    Parameters
    ----------
    qf, kf : torch.Tensor of shape (B, L, m)
        Split-form query and key features (compute dtype).
    a : torch.Tensor of shape (B, L)
        Detached key log-scales, ``-inf`` for padded keys.
    u : torch.Tensor of shape (B, L, e)
        Augmented values ``(v, 1)`` (zero rows for padded keys are not required).
    chunk : int
        Chunk length ``C``.
    initial : tuple of (torch.Tensor (B, m, e), torch.Tensor (B,)), optional
        A carried state :math:`S_0` at log-scale :math:`R_0` from earlier positions
        (token-by-token decoding); ``None`` means no earlier positions.
    return_state : bool, default=False
        Also return the state after the last position.
    parallel : bool, optional
        Use the whole-tensor chunk-parallel form (scan over chunks) instead of the
        sequential chunk loop; default: parallel on accelerators, sequential on CPU.

    Returns
    -------
    y : torch.Tensor of shape (B, L, e)
        The scaled numerator and (last column) normaliser; each row shares the factor
        :math:`e^{-r_t}`.
    state : tuple or None
        ``(S, R)`` after position ``L - 1`` when ``return_state``.
    """
    a = a.detach()
    r = torch.cummax(a, dim=-1).values.clamp_min(FLOOR)
    if initial is not None:
        r = torch.maximum(r, initial[1][:, None])
    if parallel is None:
        parallel = qf.device.type != "cpu"
    y = CausalLinearAttention.apply(qf, kf, a, r, u, chunk, parallel)
    if initial is not None:
        carry = torch.exp(initial[1][:, None] - r)[..., None]
        y = y + carry * torch.matmul(qf, initial[0])
    state = None
    if return_state:
        end = r[:, -1]
        k_hat = kf * torch.exp(a - end[:, None])[..., None]
        s = torch.matmul(k_hat.transpose(-1, -2), u)
        if initial is not None:
            s = s + initial[0] * torch.exp(initial[1] - end)[:, None, None]
        state = (s, end)
    return y, state
