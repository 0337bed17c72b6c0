"""Incremental decoding equals the causal engine."""

from __future__ import annotations

import numpy as np
import pytest

from favor import decode_step, favor_attention, init_decoding_state
from favor.registry import FEATURE_MAPS
from favor.sampling import draw_projection


def _decode_all(state, q, k, v, mask=None):
    rows = []
    for t in range(q.shape[-2]):
        out, state = decode_step(
            state,
            q[..., t, :],
            k[..., t, :],
            v[..., t, :],
            key_padding_mask=None if mask is None else mask[..., t],
        )
        rows.append(out)
    return np.stack(rows, axis=-2), state


@pytest.mark.parametrize(
    "features", [n for n, s in FEATURE_MAPS.items() if s.prepare is None]
)  # oprf/saderf: tests/favor/test_gerf_attention.py
def test_decoding_equals_causal(features, rng):
    q, k, v = (0.5 * rng.standard_normal((2, 3, 9, 6)) for _ in range(3))
    state = init_decoding_state(6, 6, batch_shape=(2, 3), n_components=8, rng=4, features=features)
    decoded, final = _decode_all(state, q, k, v)
    full = favor_attention(
        q, k, v, causal=True, n_components=8, rng=4, features=features, chunk_size=4
    )
    np.testing.assert_allclose(decoded, full, rtol=0, atol=1e-12)
    assert final.position == 9


def test_decoding_equals_causal_with_growing_log_scale_and_padding(rng):
    q, k, v = (0.5 * rng.standard_normal((2, 12, 8)) for _ in range(3))
    k[:, 5] *= 12.0  # a key with a huge norm: the running log-scale jumps
    k[:, 9] *= 6.0
    mask = np.zeros((2, 12), dtype=bool)
    mask[0, :2] = True  # first keys padded: the state starts empty
    mask[1, 7] = True
    w = rng.standard_normal((16, 8))
    state = init_decoding_state(8, 8, batch_shape=(2,), projection=w)
    decoded, _ = _decode_all(state, q, k, v, mask)
    full = favor_attention(q, k, v, causal=True, projection=w, key_padding_mask=mask)
    np.testing.assert_allclose(decoded, full, rtol=1e-12, atol=1e-12)
    assert np.all(decoded[0, :2] == 0)


def test_decoding_per_head_and_float32(rng):
    q, k, v = (0.5 * rng.standard_normal((2, 3, 7, 4)).astype(np.float32) for _ in range(3))
    state = init_decoding_state(
        4, 4, batch_shape=(2, 3), n_components=5, rng=2, per_head=True, dtype=np.float32
    )
    np.testing.assert_array_equal(
        state.projection,
        draw_projection("orthogonal", 5, 4, rng=np.random.default_rng(2), n_heads=3),
    )
    decoded, _ = _decode_all(state, q, k, v)
    assert decoded.dtype == np.float32
    full = favor_attention(q, k, v, causal=True, n_components=5, rng=2, per_head=True)
    np.testing.assert_allclose(decoded, full, rtol=1e-5, atol=1e-5)


def test_decode_step_does_not_modify_the_state(rng):
    state = init_decoding_state(4, 3, n_components=4, rng=0)
    out, new = decode_step(
        state, rng.standard_normal(4), rng.standard_normal(4), rng.standard_normal(3)
    )
    assert not state.kv.any()
    assert state.position == 0
    assert new.kv.any()
    assert out.shape == (3,)


def test_state_size_is_constant(rng):
    state = init_decoding_state(4, 3, batch_shape=(2,), n_components=4, rng=0)
    sizes = set()
    for _ in range(5):
        _, state = decode_step(state, *(rng.standard_normal((2, n)) for n in (4, 4, 3)))
        sizes.add((state.kv.shape, state.log_scale.shape))
    assert sizes == {((2, 4, 4), (2,))}


def test_bad_decoding_arguments_raise(rng):
    with pytest.raises(ValueError, match="per_head"):
        init_decoding_state(4, 3, per_head=True)
    with pytest.raises(ValueError, match="batch_shape"):
        init_decoding_state(4, 3, batch_shape=[2])
    with pytest.raises(ValueError, match="dtype"):
        init_decoding_state(4, 3, dtype=np.int32)
    with pytest.raises(ValueError, match="features"):
        init_decoding_state(4, 3, features="cos")
    state = init_decoding_state(4, 3, batch_shape=(2,), rng=0)
    good = [rng.standard_normal((2, n)) for n in (4, 4, 3)]
    with pytest.raises(ValueError, match="query"):
        decode_step(state, good[0][:, :3], good[1], good[2])
    with pytest.raises(ValueError, match="value"):
        decode_step(state, good[0], good[1], good[2].astype(np.float32))
    with pytest.raises(ValueError, match="key_padding_mask"):
        decode_step(state, *good, key_padding_mask=np.zeros(3, dtype=bool))
    bad = good[1].copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        decode_step(state, good[0], bad, good[2])
    with pytest.raises(ValueError, match="state"):
        decode_step(None, *good)
