"""favor._validation: every check accepts what it should and names the argument when it refuses."""

from __future__ import annotations

import numpy as np
import pytest

from favor._validation import (
    as_generator,
    check_attention_inputs,
    check_choice,
    check_float_array,
    check_positive_int,
    check_projection,
)


def test_as_generator_accepts_seeds_generators_and_random_states():
    gen = np.random.default_rng(0)
    assert as_generator(gen) is gen
    assert as_generator(3).random() == np.random.default_rng(3).random()
    assert as_generator(np.int64(3)).random() == np.random.default_rng(3).random()
    seq = np.random.SeedSequence(4)
    assert as_generator(seq).random() == np.random.default_rng(np.random.SeedSequence(4)).random()
    assert isinstance(as_generator(None), np.random.Generator)
    a = as_generator(np.random.RandomState(1)).random()
    assert a == as_generator(np.random.RandomState(1)).random()


@pytest.mark.parametrize("bad", [-1, 1.5, "0", True, object()])
def test_as_generator_rejects_other_values_naming_the_argument(bad):
    with pytest.raises(ValueError, match="random_state"):
        as_generator(bad, name="random_state")


@pytest.mark.parametrize("good", [1, 7, np.int32(2)])
def test_check_positive_int_accepts(good):
    assert check_positive_int("n", good) == int(good)


@pytest.mark.parametrize("bad", [0, -3, 2.0, "2", None, True, np.float64(2)])
def test_check_positive_int_rejects_naming_the_argument(bad):
    with pytest.raises(ValueError, match="n_components must be a positive integer"):
        check_positive_int("n_components", bad)


def test_check_choice():
    assert check_choice("kernel", "rbf", ("rbf", "softmax")) == "rbf"
    with pytest.raises(ValueError, match="kernel must be one of 'rbf', 'softmax', got 'poly'"):
        check_choice("kernel", "poly", ("rbf", "softmax"))
    with pytest.raises(ValueError, match="kernel"):
        check_choice("kernel", None, ("rbf",))


def test_check_float_array_keeps_float_dtypes_without_copy():
    a = np.ones((2, 3), dtype=np.float32)
    assert check_float_array("x", a) is a
    assert check_float_array("x", [[1.0]]).dtype == np.float64


@pytest.mark.parametrize(
    ("value", "kwargs", "message"),
    [
        (np.ones(3, dtype=int), {}, "x must be a float32 or float64 array"),
        (np.ones(3, dtype=bool), {}, "x must be a float32 or float64 array"),
        (np.ones(3), {"min_ndim": 2}, "x must have at least 2 dimension"),
        (np.ones((0, 3)), {}, "x must not be empty"),
        (np.array([1.0, np.nan]), {}, "x must contain only finite values"),
        (np.array([1.0, -np.inf]), {}, "x must contain only finite values"),
    ],
)
def test_check_float_array_rejects(value, kwargs, message):
    with pytest.raises(ValueError, match=message):
        check_float_array("x", value, **kwargs)


def test_check_float_array_allow_empty():
    assert check_float_array("x", np.ones((0, 2)), allow_empty=True).shape == (0, 2)


def test_check_projection():
    w = np.ones((4, 3))
    assert check_projection(w, 3) is w
    with pytest.raises(ValueError, match=r"projection must have shape \(n_components, 2\)"):
        check_projection(w, 2)
    with pytest.raises(ValueError, match="projection must have shape"):
        check_projection(np.ones((2, 4, 3)), 3)
    with pytest.raises(ValueError, match="projection must contain only finite"):
        check_projection(np.full((4, 3), np.nan), 3)


def _qkv(lq=3, lk=3, d=2, dv=2, lead=(2,)):
    return np.zeros((*lead, lq, d)), np.zeros((*lead, lk, d)), np.zeros((*lead, lk, dv))


def test_check_attention_inputs_accepts_and_returns_arrays():
    q, k, v = _qkv(lq=4, lk=3)
    mask = np.zeros((1, 3), dtype=bool)
    out = check_attention_inputs(q, k, v, mask)
    assert out[3].dtype == np.bool_
    assert check_attention_inputs(q, k, v)[3] is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda q, k, v: (q.astype(np.float32), k, v), "share one dtype"),
        (lambda q, k, v: (q[None], k, v), "same leading"),
        (lambda q, k, v: (q[..., :1], k, v), "same last axis d"),
        (lambda q, k, v: (q, k, v[:, :2]), "keys and values must have the same length"),
        (lambda q, k, v: (q[:, 0], k, v), "same leading"),
        (lambda q, k, v: (q, k[..., :1, :], v), "keys and values"),
    ],
)
def test_check_attention_inputs_rejects_mismatched_shapes(change, message):
    with pytest.raises(ValueError, match=message):
        check_attention_inputs(*change(*_qkv()))


def test_check_attention_inputs_causal_and_mask_rules():
    q, k, v = _qkv(lq=4, lk=3)
    with pytest.raises(
        ValueError, match="causal attention needs queries and keys of the same length"
    ):
        check_attention_inputs(q, k, v, causal=True)
    with pytest.raises(ValueError, match="key_padding_mask must be a boolean"):
        check_attention_inputs(q, k, v, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="key_padding_mask must have shape"):
        check_attention_inputs(q, k, v, np.zeros((3,), dtype=bool))
    with pytest.raises(ValueError, match="key_padding_mask must have shape"):
        check_attention_inputs(q, k, v, np.zeros((3, 3), dtype=bool))
