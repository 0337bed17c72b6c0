"""favor.torch on CUDA: the same results as on CPU, the chunk-parallel causal path, bf16."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from favor.torch import FavorAttention, favor_attention  # noqa: E402
from favor.torch.attention import resolve_projection  # noqa: E402

pytestmark = [
    pytest.mark.torch,
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _data(shape=(2, 3, 150, 16), dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(*shape, generator=g, dtype=dtype) for _ in range(3))
    mask = torch.rand(shape[0], 1, shape[2], generator=g) < 0.25
    return q, k, v, mask


def test_projection_is_identical_on_cuda():
    cpu = resolve_projection(None, 40, 16, 3, None, dtype=torch.float64, device=torch.device("cpu"))
    gpu = resolve_projection(
        None, 40, 16, 3, None, dtype=torch.float64, device=torch.device("cuda")
    )
    assert torch.equal(cpu, gpu.cpu())


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("features", ["positive", "trigonometric"])
def test_cuda_matches_cpu_in_float64(causal, features):
    q, k, v, mask = _data()
    kw = {"causal": causal, "features": features, "n_components": 24, "rng": 1}
    ref = favor_attention(q, k, v, key_padding_mask=mask, **kw)
    got = favor_attention(q.cuda(), k.cuda(), v.cuda(), key_padding_mask=mask.cuda(), **kw)
    assert got.device.type == "cuda"
    assert ((got.cpu() - ref).abs().max() / ref.abs().max()) <= 1e-10


def test_no_future_leak_on_the_parallel_path():
    q, k, v, _ = (x.float().cuda() if x.dtype != torch.bool else x for x in _data())
    k2, v2 = k.clone(), v.clone()
    k2[..., 77:, :] *= 5
    v2[..., 77:, :] -= 2
    a = favor_attention(q, k, v, causal=True, rng=0)
    b = favor_attention(q, k2, v2, causal=True, rng=0)
    assert torch.equal(a[..., :77, :], b[..., :77, :])


@pytest.mark.parametrize("causal", [False, True])
def test_gradcheck_on_cuda(causal):
    g = torch.Generator().manual_seed(2)
    q, k, v = (
        torch.randn(1, 2, 13, 4, generator=g, dtype=torch.float64).cuda().requires_grad_(True)
        for _ in range(3)
    )
    mask = torch.zeros(1, 1, 13, dtype=torch.bool, device="cuda")
    mask[..., 2] = True

    def fn(q, k, v):
        return favor_attention(
            q,
            k,
            v,
            n_components=6,
            causal=causal,
            key_padding_mask=mask,
            rng=0,
            chunk_size=4,
        )

    assert torch.autograd.gradcheck(fn, (q, k, v), fast_mode=True)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_finite_on_cuda(dtype):
    q, k, v, _ = _data(shape=(2, 4, 512, 32), dtype=torch.float32)
    q, k, v = (x.cuda() * 4 for x in (q, k, v))
    for causal in (False, True):
        ref = favor_attention(q, k, v, causal=causal, rng=0)
        got = favor_attention(q.to(dtype), k.to(dtype), v.to(dtype), causal=causal, rng=0)
        assert got.dtype == dtype
        assert torch.isfinite(ref).all()
        assert torch.isfinite(got).all()


def test_module_on_cuda_decodes_like_the_forward_pass():
    layer = FavorAttention(32, 4, batch_first=True, n_components=16, causal=True, random_state=0)
    layer = layer.cuda().double()
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 40, 32, generator=g, dtype=torch.float64).cuda()
    full, _ = layer(x)
    state, pieces = None, []
    for start in range(0, 40, 7):
        out, state = layer.decode(x[:, start : start + 7], state)
        pieces.append(out)
    torch.testing.assert_close(torch.cat(pieces, 1), full, rtol=1e-10, atol=1e-12)
