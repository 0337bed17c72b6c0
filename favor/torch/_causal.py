r"""Causal linear attention in O(L (m + d_v)) memory, forward and backward (DESIGN 3).

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
(THEORY 4, causal prefix sums; Performers Sec. 2.6 / Eq. 12).

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
    """Chunk length used when ``chunk_size=None``: 64 on CPU, 128 on accelerators."""
    return 64 if device.type == "cpu" else 128


def _prefix_states(u_hat: torch.Tensor, end_scale: torch.Tensor) -> torch.Tensor:
    """Exclusive prefix :math:`P_c = \\sum_{c'<c} \\hat U_{c'} e^{R_{c'} - R_{c-1}}`.

    ``u_hat`` is ``(B, N, m, e)``, ``end_scale`` is :math:`R` of shape ``(B, N)``
    (non-decreasing along N). Returns ``(B, N, m, e)``.
    """
    n = u_hat.shape[1]
    incl = u_hat.clone()
    step = 1
    while step < n:
        decay = torch.exp(end_scale[:, :-step] - end_scale[:, step:])
        incl[:, step:] += incl[:, :-step] * decay[:, :, None, None]
        step *= 2
    return torch.cat([torch.zeros_like(incl[:, :1]), incl[:, :-1]], dim=1)


def _suffix_grads(d_prefix: torch.Tensor, end_scale: torch.Tensor) -> torch.Tensor:
    """Adjoint of :func:`_prefix_states`: :math:`\\partial\\hat U_c = \\sum_{c'>c} e^{R_c - R_{c'-1}} \\partial P_{c'}`."""
    n = d_prefix.shape[1]
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


def _intra_weights(a: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """:math:`F_{tj} = e^{a_j - r_t}` for ``j <= t`` inside each chunk, else 0: ``(B, N, C, C)``."""
    chunk = a.shape[-1]
    upper = torch.ones(chunk, chunk, dtype=torch.bool, device=a.device).triu_(1)
    return torch.exp((a[..., None, :] - r[..., :, None]).masked_fill(upper, float("-inf")))


def _states(
    kc: torch.Tensor, ac: torch.Tensor, uc: torch.Tensor, end_scale: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-chunk key scaling :math:`e^{a_j - R_c}` and chunk sums :math:`\\hat U_c = \\hat K_c^T U_c`."""
    key_scale = torch.exp(ac - end_scale[..., None])
    k_hat = kc * key_scale[..., None]
    return key_scale, torch.matmul(k_hat.transpose(-1, -2), uc)


def _upper(chunk: int, device: torch.device) -> torch.Tensor:
    return torch.ones(chunk, chunk, dtype=torch.bool, device=device).triu_(1)


def _forward_loop(
    qf: torch.Tensor,
    kf: torch.Tensor,
    a: torch.Tensor,
    r: torch.Tensor,
    u: torch.Tensor,
    chunk: int,
) -> torch.Tensor:
    """Sequential-over-chunks forward (CPU): small per-chunk buffers, one carried state."""
    b, length, e = u.shape
    y = torch.empty_like(u)
    state = u.new_zeros(b, qf.shape[-1], e)
    prev = torch.full_like(r[:, 0], FLOOR)
    upper = _upper(chunk, u.device)
    for start in range(0, length, chunk):
        stop = min(start + chunk, length)
        q_c, k_c, u_c = qf[:, start:stop], kf[:, start:stop], u[:, start:stop]
        a_c, r_c = a[:, start:stop], r[:, start:stop]
        n = stop - start
        f = torch.exp(
            (a_c[:, None, :] - r_c[:, :, None]).masked_fill_(upper[:n, :n], float("-inf"))
        )
        y_c = torch.bmm(torch.bmm(q_c, k_c.transpose(1, 2)).mul_(f), u_c)
        y_c.add_(torch.bmm(q_c, state).mul_(torch.exp(prev[:, None] - r_c)[..., None]))
        y[:, start:stop] = y_c
        end = r_c[:, -1]
        k_hat = k_c * torch.exp(a_c - end[:, None])[..., None]
        state = state.mul_(torch.exp(prev - end)[:, None, None]).baddbmm_(
            k_hat.transpose(1, 2), u_c
        )
        prev = end
    return y


def _backward_loop(
    grad: torch.Tensor,
    qf: torch.Tensor,
    kf: torch.Tensor,
    a: torch.Tensor,
    r: torch.Tensor,
    u: torch.Tensor,
    chunk: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sequential backward (CPU): a forward sweep recomputes the states for the query
    gradients, a reverse sweep carries the state adjoint for key and value gradients."""
    b, length, e = u.shape
    m = qf.shape[-1]
    d_q, d_k, d_u = torch.empty_like(qf), torch.empty_like(kf), torch.empty_like(u)
    starts = list(range(0, length, chunk))
    upper = _upper(chunk, u.device)
    state = u.new_zeros(b, m, e)
    prev = torch.full_like(r[:, 0], FLOOR)
    for start in starts:
        stop = min(start + chunk, length)
        k_c, u_c, a_c, r_c = kf[:, start:stop], u[:, start:stop], a[:, start:stop], r[:, start:stop]
        g_c = grad[:, start:stop] * torch.exp(prev[:, None] - r_c)[..., None]
        d_q[:, start:stop] = torch.bmm(g_c, state.transpose(1, 2))
        end = r_c[:, -1]
        k_hat = k_c * torch.exp(a_c - end[:, None])[..., None]
        state = state.mul_(torch.exp(prev - end)[:, None, None]).baddbmm_(
            k_hat.transpose(1, 2), u_c
        )
        prev = end
    acc = u.new_zeros(b, m, e)
    ends = [r[:, min(s + chunk, length) - 1] for s in starts]
    for i in range(len(starts) - 1, -1, -1):
        start = starts[i]
        stop = min(start + chunk, length)
        n = stop - start
        q_c, k_c, u_c = qf[:, start:stop], kf[:, start:stop], u[:, start:stop]
        a_c, r_c, g_c = a[:, start:stop], r[:, start:stop], grad[:, start:stop]
        end = ends[i]
        begin = ends[i - 1] if i else torch.full_like(end, FLOOR)
        f = torch.exp(
            (a_c[:, None, :] - r_c[:, :, None]).masked_fill_(upper[:n, :n], float("-inf"))
        )
        w = torch.bmm(q_c, k_c.transpose(1, 2)).mul_(f)
        d_w = torch.bmm(g_c, u_c.transpose(1, 2)).mul_(f)
        key_scale = torch.exp(a_c - end[:, None])[..., None]
        d_u[:, start:stop] = torch.bmm(w.transpose(1, 2), g_c).baddbmm_(k_c * key_scale, acc)
        d_q[:, start:stop] += torch.bmm(d_w, k_c)
        d_k[:, start:stop] = torch.bmm(d_w.transpose(1, 2), q_c).addcmul_(
            torch.bmm(u_c, acc.transpose(1, 2)), key_scale
        )
        g_carry = g_c * torch.exp(begin[:, None] - r_c)[..., None]
        acc = acc.mul_(torch.exp(begin - end)[:, None, None]).baddbmm_(q_c.transpose(1, 2), g_carry)
    return d_q, d_k, d_u


class CausalLinearAttention(torch.autograd.Function):
    """Chunked causal linear attention with a recomputing backward (see the module notes).

    ``apply(qf, kf, a, r, u, chunk, parallel)`` with ``qf, kf`` of shape ``(B, L, m)``,
    ``a, r`` of shape ``(B, L)`` (non-differentiable log-scales), ``u`` of shape
    ``(B, L, e)``; returns ``y`` of shape ``(B, L, e)``.
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
        if not parallel:
            return _forward_loop(qf, kf, a, r, u, chunk)
        b, length, e = u.shape
        qc, kc, ac, rc, uc = _chunk_view(qf, kf, a, r, u, chunk)
        end_scale = rc[..., -1]
        start_scale = torch.cat([torch.full_like(end_scale[:, :1], FLOOR), end_scale[:, :-1]], 1)
        weights = torch.matmul(qc, kc.transpose(-1, -2)) * _intra_weights(ac, rc)
        y = torch.matmul(weights, uc)
        del weights
        _, u_hat = _states(kc, ac, uc, end_scale)
        prefix = _prefix_states(u_hat, end_scale)
        del u_hat
        carry = torch.exp(start_scale[..., None] - rc)[..., None]
        y += carry * torch.matmul(qc, prefix)
        return y.reshape(b, -1, e)[:, :length]

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        qf, kf, a, r, u = ctx.saved_tensors
        chunk, parallel = ctx.chunk, ctx.parallel
        if not parallel:
            d_q, d_k, d_u = _backward_loop(grad.contiguous(), qf, kf, a, r, u, chunk)
            return d_q, d_k, None, None, d_u, None, None
        b, length, _ = u.shape
        m = qf.shape[-1]
        qc, kc, ac, rc, uc = _chunk_view(qf, kf, a, r, u, chunk)
        gc = _pad_chunks(grad, chunk)
        end_scale = rc[..., -1]
        start_scale = torch.cat([torch.full_like(end_scale[:, :1], FLOOR), end_scale[:, :-1]], 1)
        # Inside chunks: y = (QK^T * F) U.
        f = _intra_weights(ac, rc)
        weights = torch.matmul(qc, kc.transpose(-1, -2)) * f
        d_u = torch.matmul(weights.transpose(-1, -2), gc)
        del weights
        d_w = torch.matmul(gc, uc.transpose(-1, -2)) * f
        del f
        d_q = torch.matmul(d_w, kc)
        d_k = torch.matmul(d_w.transpose(-1, -2), qc)
        del d_w
        # Across chunks: y += s * (Q P), with the states recomputed, not stored.
        key_scale, u_hat = _states(kc, ac, uc, end_scale)
        prefix = _prefix_states(u_hat, end_scale)
        del u_hat
        g_carry = gc * torch.exp(start_scale[..., None] - rc)[..., None]
        d_q += torch.matmul(g_carry, prefix.transpose(-1, -2))
        del prefix
        d_prefix = torch.matmul(qc.transpose(-1, -2), g_carry)
        d_u_hat = _suffix_grads(d_prefix, end_scale)
        del d_prefix
        k_hat = kc * key_scale[..., None]
        d_u += torch.matmul(k_hat, d_u_hat)
        d_k += torch.matmul(uc, d_u_hat.transpose(-1, -2)) * key_scale[..., None]
        return (
            d_q.reshape(b, -1, m)[:, :length],
            d_k.reshape(b, -1, m)[:, :length],
            None,
            None,
            d_u.reshape(b, -1, u.shape[-1])[:, :length],
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
