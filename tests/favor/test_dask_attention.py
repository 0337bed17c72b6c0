"""FAVOR+ attention on Dask arrays: the chunk kernels against loop twins, and the Dask
result against the in-memory engine on a 2-process LocalCluster (float64 to 1e-12), with
the causal path free of future leakage to the last bit."""

from __future__ import annotations

import math

import numpy as np
import pytest

import favor
from favor._jit import chunked
from favor.registry import FEATURE_MAPS
from tests.dask_support import compute
from tests.reference import BUILTIN_MAPS, favor_attention_reference, feature_rows_reference
from tests.tiers import covering_product

da = pytest.importorskip("dask.array")

DTYPES = [np.float32, np.float64]
TOL = {np.float32: 2e-5, np.float64: 1e-12}


def _groups(rng, dtype, n_groups=3, n_tokens=13, d=4, d_v=3, m=5, n_proj=2):
    q = (0.5 * rng.standard_normal((n_groups, n_tokens, d))).astype(dtype)
    k = (0.5 * rng.standard_normal((n_groups, n_tokens, d))).astype(dtype)
    v = rng.standard_normal((n_groups, n_tokens, d_v)).astype(dtype)
    w = rng.standard_normal((n_proj, m, d))
    proj_index = np.arange(n_groups, dtype=np.int64) % n_proj
    padded = rng.random((n_groups, n_tokens)) < 0.25
    padded[0, :] = False
    padded[1, :4] = True  # a group whose first chunk is all padding
    return q, k, v, w, proj_index, padded


def _scaled(w, d, dtype):
    return np.ascontiguousarray(np.swapaxes(w * d**-0.25, -1, -2), dtype=dtype)


def _map(kind, w):
    # The jit arguments of a registered map: split form, (empty) parameters, width.
    spec = FEATURE_MAPS[kind]
    return spec.jit_rows(), spec.fit_params(None, w), spec.width(w.shape[1])


def _state(k, v, w, proj_index, padded, kind, chunk):
    g, _, d = k.shape
    rows, params, width = _map(kind, w)
    s = np.zeros((g, width, v.shape[-1]), dtype=k.dtype)
    z = np.zeros((g, width), dtype=k.dtype)
    c = np.empty(g)
    chunked.key_states(
        k, v, _scaled(w, d, k.dtype), proj_index, padded, 0.5 / math.sqrt(d), rows, params,
        width, chunk, s, z, c,
    )  # fmt: skip
    return s, z, c


def _state_reference(k, v, w, proj_index, padded, kind):
    # S = sum_j e^{r_j - c} e_j v_j^T, z = sum_j e^{r_j - c} e_j, c = max r_j, by loops.
    d = k.shape[-1]
    scale = d**-0.25
    out = []
    for g in range(k.shape[0]):
        kg = k[g].astype(np.float64)
        logits = kg @ (w[proj_index[g]] * scale).T
        hsq = 0.5 * scale**2 * (kg**2).sum(1)
        e, r = feature_rows_reference(logits, hsq, kind)
        keep = [j for j in range(len(kg)) if not padded[g, j]]
        c = max((r[j] for j in keep), default=-math.inf)
        s = np.zeros((e.shape[1], v.shape[-1]))
        z = np.zeros(e.shape[1])
        for j in keep:
            s += math.exp(r[j] - c) * np.outer(e[j], v[g, j])
            z += math.exp(r[j] - c) * e[j]
        out.append((s, z, c))
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", BUILTIN_MAPS)
def test_key_states_match_loop_twin(kind, dtype, rng):
    _, k, v, w, proj_index, padded = _groups(rng, dtype)
    s, z, c = _state(k, v, w, proj_index, padded, kind, chunk=4)
    for g, (s_ref, z_ref, c_ref) in enumerate(_state_reference(k, v, w, proj_index, padded, kind)):
        assert c[g] == pytest.approx(c_ref, rel=TOL[dtype], abs=TOL[dtype])
        np.testing.assert_allclose(s[g], s_ref, rtol=TOL[dtype], atol=TOL[dtype])
        np.testing.assert_allclose(z[g], z_ref, rtol=TOL[dtype], atol=TOL[dtype])


def test_key_states_of_all_padded_group_is_empty(rng):
    _, k, v, w, proj_index, padded = _groups(rng, np.float64)
    padded[:] = True
    s, z, c = _state(k, v, w, proj_index, padded, "positive", chunk=4)
    assert np.all(c == -np.inf)
    assert not s.any()
    assert not z.any()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", BUILTIN_MAPS)
@pytest.mark.parametrize("chunk", [1, 5, 32])
def test_key_states_then_query_outputs_is_bidirectional_attention(chunk, kind, dtype, rng):
    q, k, v, w, proj_index, padded = _groups(rng, dtype)
    s, z, _ = _state(k, v, w, proj_index, padded, kind, chunk)
    out = np.empty((*q.shape[:2], v.shape[-1]), dtype=dtype)
    rows, params, width = _map(kind, w)
    chunked.query_outputs(
        q, _scaled(w, 4, dtype), proj_index, 0.25, rows, params, width, chunk, s, z, out
    )
    expected = favor_attention_reference(q, k, v, w, kind, padded=padded, proj_index=proj_index)
    np.testing.assert_allclose(out, expected, rtol=10 * TOL[dtype], atol=10 * TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", BUILTIN_MAPS)
@pytest.mark.parametrize("split", [0, 5, 13])
def test_causal_attention_from_carried_state_is_causal_attention(split, kind, dtype, rng):
    # The prefix [0, split) summarised as a state, then the scan over [split, L) from it,
    # gives rows split.. of causal attention over the whole sequence.
    q, k, v, w, proj_index, padded = _groups(rng, dtype)
    s, z, c = _state(
        np.ascontiguousarray(k[:, :split]), np.ascontiguousarray(v[:, :split]), w, proj_index,
        np.ascontiguousarray(padded[:, :split]), kind, chunk=3,
    )  # fmt: skip
    rest = [np.ascontiguousarray(a[:, split:]) for a in (q, k, v, padded)]
    out = np.empty((q.shape[0], q.shape[1] - split, v.shape[-1]), dtype=dtype)
    rows, params, width = _map(kind, w)
    chunked.causal_attention_from(
        rest[0], rest[1], rest[2], _scaled(w, 4, dtype), proj_index, rest[3], 0.25, rows,
        params, width, 4, s, z, c, out,
    )  # fmt: skip
    expected = favor_attention_reference(
        q, k, v, w, kind, causal=True, padded=padded, proj_index=proj_index
    )
    np.testing.assert_allclose(out, expected[:, split:], rtol=10 * TOL[dtype], atol=10 * TOL[dtype])
    # ... and leaves the state of the whole sequence behind.
    s_all, z_all, c_all = _state(k, v, w, proj_index, padded, kind, chunk=7)
    np.testing.assert_allclose(c, c_all, rtol=TOL[dtype])
    np.testing.assert_allclose(s, s_all, rtol=TOL[dtype], atol=TOL[dtype])
    np.testing.assert_allclose(z, z_all, rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("kind", BUILTIN_MAPS)
def test_combine_states_is_state_of_union(kind, rng):
    from favor._dask.attention import combine_states, empty_state

    _, k, v, w, proj_index, padded = _groups(rng, np.float64, n_tokens=12)
    parts = [
        _state(*(np.ascontiguousarray(a[:, i : i + 4]) for a in (k, v)), w, proj_index,
               np.ascontiguousarray(padded[:, i : i + 4]), kind, chunk=4)
        for i in (0, 4, 8)
    ]  # fmt: skip
    whole = _state(k, v, w, proj_index, padded, kind, chunk=12)
    empty = empty_state(3, whole[1].shape[1], v.shape[-1], np.float64)
    for combined in (combine_states(*parts), combine_states(parts[2], empty, parts[0], parts[1])):
        for got, want in zip(combined, whole, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)
    s, z, c = combine_states(empty, empty)
    assert np.all(c == -np.inf)
    assert not s.any()
    assert not z.any()


# --- the Dask backend against the in-memory engine, on the cluster -----------------------


def _inputs(rng, dtype, shape=(2, 3, 70, 8), d_v=5):
    q = (0.4 * rng.standard_normal(shape)).astype(dtype)
    k = (0.4 * rng.standard_normal(shape)).astype(dtype)
    v = rng.standard_normal((*shape[:-1], d_v)).astype(dtype)
    mask = rng.random((shape[0], 1, shape[-2])) < 0.2
    return q, k, v, mask


CHUNKINGS = {
    "sequence": ((2, 3, 16, 8), (2, 3, 9, 8), (2, 3, 23, 5)),
    "mixed": ((1, 2, 17, 4), (2, 1, 13, 8), (1, 3, 70, 5)),
    "one-chunk": ((2, 3, 70, 8),) * 3,
}


@pytest.mark.parametrize(
    ("chunking", "causal", "features", "dtype"),
    covering_product(list(CHUNKINGS), [False, True], BUILTIN_MAPS, DTYPES),
)
def test_dask_equals_in_memory(chunking, causal, features, dtype, rng, dask_client):
    q, k, v, mask = _inputs(rng, dtype)
    kw = {"n_components": 16, "rng": 7, "causal": causal, "features": features,
          "per_head": True, "key_padding_mask": mask}  # fmt: skip
    expected = favor.favor_attention(q, k, v, **kw)
    cq, ck, cv = CHUNKINGS[chunking]
    lazy = favor.favor_attention(
        da.from_array(q, chunks=cq), da.from_array(k, chunks=ck), da.from_array(v, chunks=cv),
        **kw,
    )  # fmt: skip
    assert isinstance(lazy, da.Array)
    assert lazy.dtype == dtype
    assert lazy.chunks[:-1] == da.from_array(q, chunks=cq).chunks[:-1]
    got = compute(dask_client, lazy)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, expected, rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize(
    "features", ["positive", pytest.param("trigonometric", marks=pytest.mark.slow)]
)
def test_dask_bidirectional_different_lengths_and_a_shared_projection(features, rng, dask_client):
    q = 0.4 * rng.standard_normal((3, 29, 6))
    k = 0.4 * rng.standard_normal((3, 41, 6))
    v = rng.standard_normal((3, 41, 2))
    w = favor.sampling.draw_projection("orthogonal", 12, 6, rng=rng)
    mask = np.zeros((3, 41), dtype=bool)
    mask[:, 30:] = True
    mask[2, :] = True  # no visible key: a zero row, as in memory
    kw = {"projection": w, "features": features, "key_padding_mask": mask}
    expected = favor.favor_attention(q, k, v, **kw)
    # 11 key chunks: a tree reduction of three levels; the mask arrives as a Dask array.
    lazy = favor.favor_attention(
        da.from_array(q, chunks=(2, 10, 6)), da.from_array(k, chunks=(1, 4, 6)), v,
        key_padding_mask=da.from_array(mask, chunks=(3, 7)), projection=w, features=features,
    )  # fmt: skip
    got = compute(dask_client, lazy)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    assert not got[2].any()


@pytest.mark.parametrize(
    "features",
    [BUILTIN_MAPS[0], *(pytest.param(name, marks=pytest.mark.slow) for name in BUILTIN_MAPS[1:])],
)
def test_dask_causal_is_free_of_future_leakage_bit_exactly(features, rng, dask_client):
    q, k, v, _ = _inputs(rng, np.float64, shape=(2, 2, 60, 8))
    chunks = (1, 2, 16, 8)
    kw = {"n_components": 16, "rng": 3, "causal": True, "features": features}

    def run(keys, values):
        lazy = favor.favor_attention(
            da.from_array(q, chunks=chunks), da.from_array(keys, chunks=chunks),
            da.from_array(values, chunks=(1, 2, 16, 5)), **kw,
        )  # fmt: skip
        return compute(dask_client, lazy)

    base = run(k, v)
    for t in (0, 15, 16, 37, 59):  # chunk boundaries and positions inside chunks
        k2, v2 = k.copy(), v.copy()
        k2[..., t + 1 :, :] = 5.0 * rng.standard_normal(k2[..., t + 1 :, :].shape)
        v2[..., t + 1 :, :] = 100.0 * rng.standard_normal(v2[..., t + 1 :, :].shape)
        changed = run(k2, v2)
        assert np.array_equal(changed[..., : t + 1, :], base[..., : t + 1, :])
        if t < 59:  # the control: a later output does see the change
            assert not np.array_equal(changed[..., t + 1 :, :], base[..., t + 1 :, :])


def test_dask_result_is_lazy_and_checks_finiteness_per_chunk(rng, dask_client):
    q, k, v, _ = _inputs(rng, np.float64)
    k[1, 2, 50, 0] = np.nan
    lazy = favor.favor_attention(
        da.from_array(q, chunks=(1, 3, 35, 8)), da.from_array(k, chunks=(1, 3, 35, 8)), v,
        n_components=8, rng=0,
    )  # fmt: skip
    with pytest.raises(ValueError, match="keys must contain only finite values"):
        compute(dask_client, lazy)


def test_dask_inputs_are_checked_before_any_computation(rng):
    q, k, v, mask = _inputs(rng, np.float64)
    dq = da.from_array(q, chunks=(1, 3, 35, 8))
    with pytest.raises(ValueError, match="share one dtype"):
        favor.favor_attention(dq, k.astype(np.float32), v)
    with pytest.raises(ValueError, match="queries must be a float32 or float64"):
        favor.favor_attention(dq.astype(int), k, v)
    with pytest.raises(ValueError, match="same length"):
        favor.favor_attention(dq, k[..., :30, :], v[..., :30, :], causal=True)
    with pytest.raises(ValueError, match="key_padding_mask must be a boolean"):
        favor.favor_attention(dq, k, v, key_padding_mask=mask.astype(int))
    with pytest.raises(ValueError, match="key_padding_mask must have shape"):
        favor.favor_attention(dq, k, v, key_padding_mask=mask[:, 0])
    with pytest.raises(ValueError, match="features must be one of"):
        favor.favor_attention(dq, k, v, features="cosh")
    with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
        favor.favor_attention(dq, k, v, chunk_size=0)
    unknown = dq[dq[:, 0, 0, 0] > 0]  # unknown chunk sizes along the batch axis
    with pytest.raises(ValueError, match="queries must have known chunk sizes"):
        favor.favor_attention(unknown, k, v)
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match=r"queries must be a torch.Tensor, got Array"):
        favor.favor_attention(dq, torch.from_numpy(k), v)  # a tensor: the torch backend
    from favor._dask.attention import favor_attention as dask_attention

    with pytest.raises(ValueError, match="keys must be a Dask or NumPy array"):
        dask_attention(dq, torch.from_numpy(k), v)


def test_dask_same_projection_as_in_memory_for_a_seed(rng):
    # One rng gives one projection on both backends: run with the local
    # synchronous scheduler (no cluster needed) and compare.
    q, k, v, _ = _inputs(rng, np.float64, shape=(1, 2, 20, 8))
    for per_head in (False, True):
        kw = {"rng": 11, "n_components": 8, "per_head": per_head}
        expected = favor.favor_attention(q, k, v, **kw)
        got = favor.favor_attention(da.from_array(q, chunks=(1, 1, 7, 8)), k, v, **kw)
        np.testing.assert_allclose(got.compute(scheduler="sync"), expected, rtol=1e-12, atol=1e-12)
