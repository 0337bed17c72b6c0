"""The catalogue of bad inputs: each gets a clear error (or warning) naming what is wrong.

Every case calls one public entry point -- the NumPy functions of ``favor``,
:class:`favor.FavorSampler`, the ``favor.torch`` functions and
:class:`favor.torch.FavorAttention`, and ``python -m theory`` -- with one bad argument,
and states the exact exception type and a pattern its message must match (usually the
argument's name and what was expected). No case may crash obscurely (a message from deep
inside NumPy, Numba or torch), run for long before failing, or return garbage silently:
results that are not finite, or not meaningful, from finite inputs raise with the reason,
and inputs for which FAVOR+ is predicted to be useless warn
(:class:`favor.FavorAccuracyWarning`). The number of cases is quoted in the user guide.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import favor
from favor import FavorAccuracyWarning, FavorSampler, sampling
from favor import features as feature_maps

HAS_TORCH = importlib.util.find_spec("torch") is not None
#: A size no machine has: the memory checks must refuse it before allocating.
HUGE = 10**12
#: Float64 values whose squares overflow.
BIG = 1e200


@dataclass(frozen=True)
class Case:
    """One bad input: the call, what it must raise (or warn), a pattern of the message."""

    id: str
    call: Callable[[], Any]
    error: type[BaseException] | type[Warning]
    match: str
    torch: bool = False


def _data(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    q = 0.3 * rng.standard_normal((2, 16, 8))
    return {
        "q": q,
        "k": 0.3 * rng.standard_normal((2, 16, 8)),
        "v": rng.standard_normal((2, 16, 8)),
        "x": rng.standard_normal((20, 4)),
        "w": sampling.iid_projection(16, 4, rng=0),
    }


D = _data()
Q, K, V, X, W = D["q"], D["k"], D["v"], D["x"], D["w"]


def _with_nan(a: np.ndarray) -> np.ndarray:
    b = a.copy()
    b.flat[3] = np.nan
    return b


def _with_inf(a: np.ndarray) -> np.ndarray:
    b = a.copy()
    b.flat[5] = -np.inf
    return b


#: Bad versions of a float array argument: (label, transform, pattern with {name}).
ARRAY_DEFECTS: list[tuple[str, Callable[[np.ndarray], Any], str]] = [
    (
        "int",
        lambda a: a.astype(np.int64),
        r"{name} must be a float32 or float64 array, got dtype int64",
    ),
    ("bool", lambda a: a > 0, r"{name} must be a float32 or float64 array, got dtype bool"),
    (
        "float16",
        lambda a: a.astype(np.float16),
        r"{name} must be a float32 or float64 array, got dtype float16",
    ),
    (
        "complex",
        lambda a: a.astype(np.complex128),
        r"{name} must be a float32 or float64 array, got dtype complex128",
    ),
    ("str", lambda a: "abc", r"{name} must be a float32 or float64 array, got dtype <U3"),
    ("none", lambda a: None, r"{name} must be a float32 or float64 array, got dtype object"),
    ("nan", _with_nan, r"{name} must contain only finite values \(no NaN or inf\)"),
    ("inf", _with_inf, r"{name} must contain only finite values \(no NaN or inf\)"),
    ("empty", lambda a: a[..., :0, :], r"{name} must not be empty"),
    ("scalar", lambda a: np.float64(1.0), r"{name} must have at least \d dimension"),
]


def _array_cases(
    function: str, call: Callable[..., Any], args: dict[str, np.ndarray]
) -> list[Case]:
    """One case per (argument, defect) of a function taking float arrays."""
    cases = []
    for name in args:
        for label, transform, pattern in ARRAY_DEFECTS:

            def bad(name: str = name, transform: Callable = transform) -> Any:
                return call(**{**args, name: transform(args[name])})

            cases.append(
                Case(f"{function}-{name}-{label}", bad, ValueError, pattern.format(name=name))
            )
    return cases


CASES: list[Case] = []

# -- favor.favor_attention ---------------------------------------------------------------
CASES += _array_cases(
    "favor_attention",
    lambda queries, keys, values: favor.favor_attention(queries, keys, values, rng=0),
    {"queries": Q, "keys": K, "values": V},
)
FA = favor.favor_attention
CASES += [
    Case(
        "favor_attention-dtype-mix",
        lambda: FA(Q.astype(np.float32), K, V),
        ValueError,
        r"must share one dtype",
    ),
    Case(
        "favor_attention-d-mismatch",
        lambda: FA(Q, K[..., :4], V),
        ValueError,
        r"queries and keys must have the same last axis d, got 8 and 4",
    ),
    Case(
        "favor_attention-length-mismatch",
        lambda: FA(Q, K, V[:, :8]),
        ValueError,
        r"keys and values must have the same length L_k, got 16 and 8",
    ),
    Case(
        "favor_attention-batch-mismatch",
        lambda: FA(Q, K[:1], V[:1]),
        ValueError,
        r"same leading \(batch/head\) axes",
    ),
    Case(
        "favor_attention-causal-lengths",
        lambda: FA(Q[:, :8], K, V, causal=True),
        ValueError,
        r"causal attention needs queries and keys of the same length",
    ),
    Case(
        "favor_attention-causal-int",
        lambda: FA(Q, K, V, causal=1),
        ValueError,
        r"causal must be True or False, got 1",
    ),
    Case(
        "favor_attention-causal-str",
        lambda: FA(Q, K, V, causal="yes"),
        ValueError,
        r"causal must be True or False, got 'yes'",
    ),
    Case(
        "favor_attention-per_head-str",
        lambda: FA(Q, K, V, per_head="yes"),
        ValueError,
        r"per_head must be True or False",
    ),
    Case(
        "favor_attention-n_components-0",
        lambda: FA(Q, K, V, n_components=0),
        ValueError,
        r"n_components must be a positive integer, got 0",
    ),
    Case(
        "favor_attention-n_components-negative",
        lambda: FA(Q, K, V, n_components=-4),
        ValueError,
        r"n_components must be a positive integer, got -4",
    ),
    Case(
        "favor_attention-n_components-float",
        lambda: FA(Q, K, V, n_components=16.5),
        ValueError,
        r"n_components must be a positive integer, got 16.5",
    ),
    Case(
        "favor_attention-n_components-bool",
        lambda: FA(Q, K, V, n_components=True),
        ValueError,
        r"n_components must be a positive integer, got True",
    ),
    Case(
        "favor_attention-n_components-str",
        lambda: FA(Q, K, V, n_components="64"),
        ValueError,
        r"n_components must be a positive integer, got '64'",
    ),
    Case(
        "favor_attention-n_components-huge",
        lambda: FA(Q, K, V, n_components=HUGE),
        MemoryError,
        r"would need .* \(n_components=1000000000000\), more than the .* of memory available",
    ),
    Case(
        "favor_attention-features-unknown",
        lambda: FA(Q, K, V, features="softmax"),
        ValueError,
        r"features must be one of .*'positive'.*, got 'softmax'",
    ),
    Case(
        "favor_attention-features-type",
        lambda: FA(Q, K, V, features=3),
        ValueError,
        r"features must be one of .*got 3",
    ),
    Case(
        "favor_attention-projection-name",
        lambda: FA(Q, K, V, projection="bogus"),
        ValueError,
        r"projection must be one of .*'orthogonal'.*got 'bogus'",
    ),
    Case(
        "favor_attention-projection-shape",
        lambda: FA(Q, K, V, projection=np.ones((4, 5))),
        ValueError,
        r"projection must have shape",
    ),
    Case(
        "favor_attention-projection-nan",
        lambda: FA(Q, K, V, projection=np.full((4, 8), np.nan)),
        ValueError,
        r"projection must contain only finite values",
    ),
    Case(
        "favor_attention-projection-int",
        lambda: FA(Q, K, V, projection=np.ones((4, 8), dtype=int)),
        ValueError,
        r"projection must be a float32 or float64 array",
    ),
    Case(
        "favor_attention-projection-huge-values",
        lambda: FA(Q, K, V, projection=np.full((4, 8), BIG)),
        ValueError,
        r"too large",
    ),
    Case(
        "favor_attention-rng-negative",
        lambda: FA(Q, K, V, rng=-1),
        ValueError,
        r"rng must be a non-negative integer seed, got -1",
    ),
    Case(
        "favor_attention-rng-str",
        lambda: FA(Q, K, V, rng="seed"),
        ValueError,
        r"rng must be None, an int, a numpy.random.SeedSequence or a numpy.random.Generator, got str",
    ),
    Case(
        "favor_attention-rng-float",
        lambda: FA(Q, K, V, rng=1.5),
        ValueError,
        r"rng must be None, an int.*got float",
    ),
    Case(
        "favor_attention-chunk_size-0",
        lambda: FA(Q, K, V, causal=True, chunk_size=0),
        ValueError,
        r"chunk_size must be a positive integer, got 0",
    ),
    Case(
        "favor_attention-chunk_size-float",
        lambda: FA(Q, K, V, causal=True, chunk_size=2.5),
        ValueError,
        r"chunk_size must be a positive integer, got 2.5",
    ),
    Case(
        "favor_attention-mask-float",
        lambda: FA(Q, K, V, key_padding_mask=np.zeros((2, 16))),
        ValueError,
        r"key_padding_mask must be a boolean array",
    ),
    Case(
        "favor_attention-mask-shape",
        lambda: FA(Q, K, V, key_padding_mask=np.zeros((2, 8), bool)),
        ValueError,
        r"key_padding_mask must have shape \(2, 16\)",
    ),
    Case(
        "favor_attention-mask-rank",
        lambda: FA(Q, K, V, key_padding_mask=np.zeros(16, bool)),
        ValueError,
        r"key_padding_mask must have shape",
    ),
    Case(
        "favor_attention-queries-overflow",
        lambda: FA(Q * 1e307, K, V),
        ValueError,
        r"queries: values too large, their squared norms overflow float64",
    ),
    Case(
        "favor_attention-keys-overflow",
        lambda: FA(Q, K * BIG, V),
        ValueError,
        r"keys: values too large, their squared norms overflow float64",
    ),
    Case(
        "favor_attention-float32-overflow",
        lambda: FA(
            *(a.astype(np.float32) * np.float32(1e30) for a in (Q, K)), V.astype(np.float32)
        ),
        ValueError,
        r"queries: values too large, their squared norms overflow float32",
    ),
    Case(
        "favor_attention-variance-regime",
        lambda: FA(Q * 30, K * 30, V, rng=0),
        FavorAccuracyWarning,
        r"predicted to be inaccurate .* relative error about",
    ),
    Case(
        "favor_attention-variance-regime-causal",
        lambda: FA(Q * 10, K * 10, V, causal=True, rng=0),
        FavorAccuracyWarning,
        r"predicted to be inaccurate",
    ),
]

# -- favor.estimate_attention_error --------------------------------------------------------
CASES += _array_cases(
    "estimate_attention_error",
    lambda queries, keys: favor.estimate_attention_error(queries, keys),
    {"queries": Q, "keys": K},
)
EA = favor.estimate_attention_error
CASES += [
    Case(
        "estimate_attention_error-features-relu",
        lambda: EA(Q, K, features="relu"),
        ValueError,
        r"features must be one of 'positive', 'hyperbolic', 'trigonometric'.*, got 'relu'",
    ),
    Case(
        "estimate_attention_error-n_components-0",
        lambda: EA(Q, K, n_components=0),
        ValueError,
        r"n_components must be a positive integer, got 0",
    ),
    Case(
        "estimate_attention_error-causal-lengths",
        lambda: EA(Q[:, :4], K, causal=True),
        ValueError,
        r"causal attention needs queries and keys of the same length",
    ),
    Case(
        "estimate_attention_error-causal-str",
        lambda: EA(Q, K, causal="no"),
        ValueError,
        r"causal must be True or False",
    ),
    Case(
        "estimate_attention_error-d-mismatch",
        lambda: EA(Q, K[..., :3]),
        ValueError,
        r"same last axis d",
    ),
    Case(
        "estimate_attention_error-mask-shape",
        lambda: EA(Q, K, key_padding_mask=np.zeros((3, 16), bool)),
        ValueError,
        r"key_padding_mask must have shape",
    ),
    Case(
        "estimate_attention_error-overflow",
        lambda: EA(Q * 1e307, K),
        ValueError,
        r"queries: values too large",
    ),
    Case(
        "estimate_attention_error-variance-regime",
        lambda: EA(Q * 30, K * 30),
        FavorAccuracyWarning,
        r"relative error about .* with n_components=256",
    ),
    Case(
        "estimate_attention_error-few-components",
        lambda: EA(Q * 3, K * 3, n_components=1),
        FavorAccuracyWarning,
        r"n_components=1 ",
    ),
]

# -- favor.softmax_attention ---------------------------------------------------------------
CASES += _array_cases(
    "softmax_attention",
    lambda queries, keys, values: favor.softmax_attention(queries, keys, values),
    {"queries": Q, "keys": K, "values": V},
)
SA = favor.softmax_attention
CASES += [
    Case(
        "softmax_attention-overflow",
        lambda: SA(Q * 1e307, K * 1e307, V),
        FloatingPointError,
        r"softmax_attention produced non-finite values from finite inputs: .*overflow",
    ),
    Case(
        "softmax_attention-values-overflow",
        lambda: SA(Q, K, np.full_like(V, 1e308)),
        FloatingPointError,
        r"softmax_attention produced non-finite values",
    ),
    Case(
        "softmax_attention-causal-lengths",
        lambda: SA(Q[:, :3], K, V, causal=True),
        ValueError,
        r"causal attention needs",
    ),
    Case(
        "softmax_attention-mask-float",
        lambda: SA(Q, K, V, key_padding_mask=np.ones((2, 16))),
        ValueError,
        r"key_padding_mask must be a boolean array",
    ),
]

# -- exact kernels -------------------------------------------------------------------------
for kernel_name in ("softmax_kernel", "rbf_kernel", "arccos_kernel"):
    kernel = getattr(favor, kernel_name)
    CASES += _array_cases(kernel_name, lambda x, y, kernel=kernel: kernel(x, y), {"x": X, "y": X})
    CASES.append(
        Case(
            f"{kernel_name}-d-mismatch",
            lambda kernel=kernel: kernel(X, X[:, :3]),
            ValueError,
            r"x and y must have the same last axis, got 4 and 3",
        )
    )
for kernel_name in ("softmax_kernel", "rbf_kernel"):
    kernel = getattr(favor, kernel_name)
    CASES += [
        Case(
            f"{kernel_name}-gamma-0",
            lambda kernel=kernel: kernel(X, X, gamma=0),
            ValueError,
            r"gamma must be a positive finite float, got 0",
        ),
        Case(
            f"{kernel_name}-gamma-negative",
            lambda kernel=kernel: kernel(X, X, gamma=-1.0),
            ValueError,
            r"gamma must be a positive finite float, got -1",
        ),
        Case(
            f"{kernel_name}-gamma-nan",
            lambda kernel=kernel: kernel(X, X, gamma=np.nan),
            ValueError,
            r"gamma must be a positive finite float, got nan",
        ),
        Case(
            f"{kernel_name}-gamma-inf",
            lambda kernel=kernel: kernel(X, X, gamma=np.inf),
            ValueError,
            r"gamma must be a positive finite float, got inf",
        ),
        Case(
            f"{kernel_name}-gamma-str",
            lambda kernel=kernel: kernel(X, X, gamma="scale"),
            ValueError,
            r"gamma must be a positive .*float, got 'scale'",
        ),
    ]
CASES += [
    Case(
        "softmax_kernel-overflow",
        lambda: favor.softmax_kernel(X * 1e3, X),
        FloatingPointError,
        r"softmax_kernel produced non-finite values from finite inputs: .*overflow",
    ),
    Case(
        "softmax_kernel-gamma-overflow",
        lambda: favor.softmax_kernel(X, X, gamma=1e300),
        FloatingPointError,
        r"softmax_kernel produced non-finite values",
    ),
    Case(
        "rbf_kernel-overflow",
        lambda: favor.rbf_kernel(X * BIG, X),
        FloatingPointError,
        r"rbf_kernel produced non-finite values from finite inputs",
    ),
    Case(
        "arccos_kernel-overflow",
        lambda: favor.arccos_kernel(X * 1e307, X),
        FloatingPointError,
        r"arccos_kernel produced non-finite values from finite inputs",
    ),
]

# -- feature maps --------------------------------------------------------------------------
for map_name in ("positive", "hyperbolic", "trigonometric", "relu"):
    CASES += _array_cases(
        f"random_features[{map_name}]",
        lambda x, projection, map_name=map_name: favor.random_features(
            x, projection, features=map_name
        ),
        {"x": X, "projection": W},
    )
CASES += [
    Case(
        "random_features-features-unknown",
        lambda: favor.random_features(X, W, features="cosine"),
        ValueError,
        r"features must be one of .*got 'cosine'",
    ),
    Case(
        "random_features-kernel-mismatch",
        lambda: favor.random_features(X, W, features="relu", kernel="softmax"),
        ValueError,
        r"kernel must be one of 'arccos', got 'softmax'",
    ),
    Case(
        "random_features-kernel-unknown",
        lambda: favor.random_features(X, W, kernel="laplace"),
        ValueError,
        r"kernel must be one of .*got 'laplace'",
    ),
    Case(
        "random_features-projection-width",
        lambda: favor.random_features(X, W[:, :3]),
        ValueError,
        r"projection must have shape \(n_components, 4\)",
    ),
    Case(
        "random_features-projection-1d",
        lambda: favor.random_features(X, W[0]),
        ValueError,
        r"projection must have at least 2 dimension",
    ),
    Case(
        "positive_features-overflow",
        lambda: feature_maps.positive_features(X * BIG, W),
        ValueError,
        r"x: values too large, their squared norms overflow float64",
    ),
    Case(
        "hyperbolic_features-overflow",
        lambda: feature_maps.hyperbolic_features(X * BIG, W),
        ValueError,
        r"x: values too large",
    ),
    Case(
        "trigonometric_features-overflow",
        lambda: feature_maps.trigonometric_features(X * 1e150, W * 1e200),
        FloatingPointError,
        r"the 'trigonometric' feature map produced non-finite values from finite inputs",
    ),
    Case(
        "relu_features-overflow",
        lambda: feature_maps.relu_features(X * 1e307, W * 10),
        FloatingPointError,
        r"the 'relu' feature map produced non-finite values from finite inputs",
    ),
    Case(
        "positive_features-kernel",
        lambda: feature_maps.positive_features(X, W, kernel="arccos"),
        ValueError,
        r"kernel must be one of 'softmax', 'rbf', got 'arccos'",
    ),
]

# -- sampling ------------------------------------------------------------------------------
for sampler_name in ("iid_projection", "orthogonal_projection"):
    sampler = getattr(sampling, sampler_name)
    CASES += [
        Case(
            f"{sampler_name}-n_components-0",
            lambda sampler=sampler: sampler(0, 4),
            ValueError,
            r"n_components must be a positive integer, got 0",
        ),
        Case(
            f"{sampler_name}-n_features-0",
            lambda sampler=sampler: sampler(4, 0),
            ValueError,
            r"n_features must be a positive integer, got 0",
        ),
        Case(
            f"{sampler_name}-n_features-float",
            lambda sampler=sampler: sampler(4, 2.0),
            ValueError,
            r"n_features must be a positive integer, got 2.0",
        ),
        Case(
            f"{sampler_name}-rng-bad",
            lambda sampler=sampler: sampler(4, 4, rng=[1, 2]),
            ValueError,
            r"rng must be None, an int",
        ),
        Case(
            f"{sampler_name}-huge",
            lambda sampler=sampler: sampler(HUGE, 64),
            MemoryError,
            r"would need 466 TiB \(shape \(1000000000000, 64\)\)",
        ),
    ]
CASES += [
    Case(
        "orthogonal_projection-norms",
        lambda: sampling.orthogonal_projection(4, 4, norms="unit"),
        ValueError,
        r"norms must be one of 'chi', 'fixed', got 'unit'",
    ),
    Case(
        "draw_projection-name",
        lambda: sampling.draw_projection("sobol", 4, 4),
        ValueError,
        r"projection must be one of .*got 'sobol'",
    ),
]

# -- decoding ------------------------------------------------------------------------------
STATE = favor.init_decoding_state(8, 8, batch_shape=(2,), rng=0)
IDS = favor.init_decoding_state
CASES += [
    Case(
        "init_decoding_state-n_features-0",
        lambda: IDS(0, 4),
        ValueError,
        r"n_features must be a positive integer, got 0",
    ),
    Case(
        "init_decoding_state-n_values-0",
        lambda: IDS(4, 0),
        ValueError,
        r"n_values must be a positive integer, got 0",
    ),
    Case(
        "init_decoding_state-dtype",
        lambda: IDS(4, 4, dtype=np.int32),
        ValueError,
        r"dtype must be float32 or float64, got int32",
    ),
    Case(
        "init_decoding_state-batch_shape",
        lambda: IDS(4, 4, batch_shape=(-1,)),
        ValueError,
        r"batch_shape must be a tuple of positive ints, got \(-1,\)",
    ),
    Case(
        "init_decoding_state-features",
        lambda: IDS(4, 4, features="rbf"),
        ValueError,
        r"features must be one of .*got 'rbf'",
    ),
    Case(
        "init_decoding_state-huge",
        lambda: IDS(4, 4, n_components=HUGE),
        MemoryError,
        r"would need .* more than the .* of memory available",
    ),
    Case(
        "decode_step-state",
        lambda: favor.decode_step("state", Q[:, 0], K[:, 0], V[:, 0]),
        ValueError,
        r"state must be a DecodingState .*got str",
    ),
    Case(
        "decode_step-query-shape",
        lambda: favor.decode_step(STATE, Q[:, 0, :4], K[:, 0], V[:, 0]),
        ValueError,
        r"query must have shape \(2, 8\) to match the state, got \(2, 4\)",
    ),
    Case(
        "decode_step-value-shape",
        lambda: favor.decode_step(STATE, Q[:, 0], K[:, 0], V[:1, 0]),
        ValueError,
        r"value must have shape \(2, 8\)",
    ),
    Case(
        "decode_step-query-nan",
        lambda: favor.decode_step(STATE, _with_nan(Q[:, 0]), K[:, 0], V[:, 0]),
        ValueError,
        r"query must contain only finite values",
    ),
    Case(
        "decode_step-key-int",
        lambda: favor.decode_step(STATE, Q[:, 0], K[:, 0].astype(int), V[:, 0]),
        ValueError,
        r"key must be a float32 or float64 array",
    ),
    Case(
        "decode_step-query-overflow",
        lambda: favor.decode_step(STATE, Q[:, 0] * 1e307, K[:, 0], V[:, 0]),
        ValueError,
        r"query: values too large",
    ),
]

# -- FavorSampler --------------------------------------------------------------------------
CASES += [
    Case("FavorSampler-kernel", lambda: FavorSampler(kernel="poly").fit(X), ValueError, r"kernel"),
    Case("FavorSampler-gamma-0", lambda: FavorSampler(gamma=0).fit(X), ValueError, r"gamma"),
    Case(
        "FavorSampler-gamma-negative", lambda: FavorSampler(gamma=-0.5).fit(X), ValueError, r"gamma"
    ),
    Case("FavorSampler-gamma-nan", lambda: FavorSampler(gamma=np.nan).fit(X), ValueError, r"gamma"),
    Case("FavorSampler-gamma-inf", lambda: FavorSampler(gamma=np.inf).fit(X), ValueError, r"gamma"),
    Case("FavorSampler-gamma-str", lambda: FavorSampler(gamma="auto").fit(X), ValueError, r"gamma"),
    Case(
        "FavorSampler-gamma-absurd-rbf",
        lambda: FavorSampler(gamma=1e300).fit(X),
        ValueError,
        r"gamma=1e\+300 is too large for this data: .*underflow to 0 for every two distinct points",
    ),
    Case(
        "FavorSampler-gamma-absurd-softmax",
        lambda: FavorSampler(kernel="softmax", gamma=1e300).fit(X),
        ValueError,
        r"gamma=1e\+300 is too large for this data",
    ),
    Case(
        "FavorSampler-X-overflow",
        lambda: FavorSampler().fit(X * BIG),
        ValueError,
        r"X is too large: its squared row norms overflow float64",
    ),
    Case(
        "FavorSampler-features",
        lambda: FavorSampler(features="cosine").fit(X),
        ValueError,
        r"features",
    ),
    Case(
        "FavorSampler-features-kernel",
        lambda: FavorSampler(kernel="rbf", features="relu").fit(X),
        ValueError,
        r"features",
    ),
    Case(
        "FavorSampler-projection",
        lambda: FavorSampler(projection="sobol").fit(X),
        ValueError,
        r"projection",
    ),
    Case(
        "FavorSampler-n_components-0",
        lambda: FavorSampler(n_components=0).fit(X),
        ValueError,
        r"n_components",
    ),
    Case(
        "FavorSampler-n_components-float",
        lambda: FavorSampler(n_components=2.5).fit(X),
        ValueError,
        r"n_components",
    ),
    Case(
        "FavorSampler-n_components-huge",
        lambda: FavorSampler(n_components=HUGE).fit(X),
        MemoryError,
        r"would need .*more than the .* of memory available",
    ),
    Case(
        "FavorSampler-transform-huge",
        lambda: FavorSampler(n_components=2**20).fit(X).transform(np.zeros((2**22, 4))),
        MemoryError,
        r"would need .* \(shape \(4194304, ",
    ),
    Case(
        "FavorSampler-random_state",
        lambda: FavorSampler(random_state="seed").fit(X),
        ValueError,
        r"random_state",
    ),
    Case(
        "FavorSampler-X-nan",
        lambda: FavorSampler().fit(_with_nan(X)),
        ValueError,
        r"Input X contains NaN",
    ),
    Case(
        "FavorSampler-X-inf",
        lambda: FavorSampler().fit(_with_inf(X)),
        ValueError,
        r"Input X contains infinity",
    ),
    Case(
        "FavorSampler-X-1d",
        lambda: FavorSampler().fit(X[0]),
        ValueError,
        r"Expected 2D array, got 1D array",
    ),
    Case(
        "FavorSampler-X-3d",
        lambda: FavorSampler().fit(X[None]),
        ValueError,
        r"Found array with dim 3",
    ),
    Case("FavorSampler-X-empty", lambda: FavorSampler().fit(X[:0]), ValueError, r"0 sample\(s\)"),
    Case(
        "FavorSampler-X-str",
        lambda: FavorSampler().fit(np.array([["a", "b"]])),
        ValueError,
        r"could not convert string to float",
    ),
    Case(
        "FavorSampler-X-complex",
        lambda: FavorSampler().fit(X.astype(complex)),
        ValueError,
        r"Complex data not supported",
    ),
    Case(
        "FavorSampler-transform-not-fitted",
        lambda: FavorSampler().transform(X),
        __import__("sklearn.exceptions", fromlist=["NotFittedError"]).NotFittedError,
        r"not fitted yet",
    ),
    Case(
        "FavorSampler-transform-features",
        lambda: FavorSampler().fit(X).transform(X[:, :3]),
        ValueError,
        r"X has 3 features, but FavorSampler is expecting 4 features",
    ),
    Case(
        "FavorSampler-transform-nan",
        lambda: FavorSampler().fit(X).transform(_with_nan(X)),
        ValueError,
        r"Input X contains NaN",
    ),
    Case(
        "FavorSampler-transform-overflow",
        lambda: FavorSampler(kernel="softmax", features="positive").fit(X).transform(X * BIG),
        ValueError,
        r"too large",
    ),
]


# -- favor.torch -------------------------------------------------------------------------
def _torch_cases() -> list[Case]:
    import torch

    import favor.torch as ft

    tq, tk, tv = (torch.tensor(a) for a in (Q, K, V))
    cases = []
    for function in ("favor_attention", "softmax_attention"):
        call = getattr(ft, function)
        for name in ("queries", "keys", "values"):
            args = {"queries": tq, "keys": tk, "values": tv}
            cases += [
                Case(
                    f"torch.{function}-{name}-int",
                    lambda call=call, args=args, name=name: call(
                        **{**args, name: args[name].long()}
                    ),
                    ValueError,
                    rf"{name} must be a float16, bfloat16, float32 or float64 tensor, got dtype torch.int64",
                ),
                Case(
                    f"torch.{function}-{name}-numpy",
                    lambda call=call, args=args, name=name: call(
                        **{**args, name: args[name].numpy()}
                    ),
                    ValueError,
                    rf"{name} must be a torch.Tensor, got ndarray",
                ),
                Case(
                    f"torch.{function}-{name}-nan",
                    lambda call=call, args=args, name=name: call(
                        **{**args, name: args[name] * float("nan")}
                    ),
                    ValueError,
                    rf"{name} must contain only finite values",
                ),
            ]
    FT = ft.favor_attention
    cases += [
        Case(
            "torch.favor_attention-d-mismatch",
            lambda: FT(tq, tk[..., :4], tv),
            ValueError,
            r"queries and keys must have the same last axis d",
        ),
        Case(
            "torch.favor_attention-n_components-0",
            lambda: FT(tq, tk, tv, n_components=0),
            ValueError,
            r"n_components must be a positive integer, got 0",
        ),
        Case(
            "torch.favor_attention-n_components-huge",
            lambda: FT(tq, tk, tv, n_components=HUGE),
            MemoryError,
            r"would need .*more than the .* of memory available",
        ),
        Case(
            "torch.favor_attention-features",
            lambda: FT(tq, tk, tv, features="softmax"),
            ValueError,
            r"features must be one of .*got 'softmax'",
        ),
        Case(
            "torch.favor_attention-causal-lengths",
            lambda: FT(tq[:, :4], tk, tv, causal=True),
            ValueError,
            r"causal attention needs queries and keys of the same length",
        ),
        Case(
            "torch.favor_attention-mask-shape",
            lambda: FT(tq, tk, tv, key_padding_mask=torch.zeros(2, 8, dtype=torch.bool)),
            ValueError,
            r"key_padding_mask must have shape",
        ),
        Case(
            "torch.favor_attention-chunk_size",
            lambda: FT(tq, tk, tv, causal=True, chunk_size=0),
            ValueError,
            r"chunk_size must be a positive integer",
        ),
        Case(
            "torch.favor_attention-overflow",
            lambda: FT(tq * 1e307, tk, tv),
            ValueError,
            r"queries: values too large, their squared norms overflow",
        ),
        Case(
            "torch.softmax_attention-overflow",
            lambda: ft.softmax_attention(tq * 1e307, tk * 1e307, tv),
            FloatingPointError,
            r"softmax_attention produced non-finite values from finite inputs",
        ),
        Case(
            "torch.random_features-features",
            lambda: ft.random_features(torch.tensor(X), torch.tensor(W), features="cosine"),
            ValueError,
            r"features must be one of .*got 'cosine'",
        ),
        Case(
            "torch.random_features-overflow",
            lambda: ft.random_features(torch.tensor(X * BIG), torch.tensor(W)),
            ValueError,
            r"x: values too large",
        ),
        Case(
            "torch.FavorAttention-embed_dim",
            lambda: ft.FavorAttention(0, 1),
            ValueError,
            r"embed_dim must be a positive integer, got 0",
        ),
        Case(
            "torch.FavorAttention-heads",
            lambda: ft.FavorAttention(8, 3),
            ValueError,
            r"embed_dim must be divisible by num_heads, got 8 and 3",
        ),
        Case(
            "torch.FavorAttention-n_components-0",
            lambda: ft.FavorAttention(8, 2, n_components=0),
            ValueError,
            r"n_components must be a positive integer, got 0",
        ),
        Case(
            "torch.FavorAttention-n_components-huge",
            lambda: ft.FavorAttention(8, 2, n_components=HUGE),
            MemoryError,
            r"would need .*more than the .* of memory available",
        ),
        Case(
            "torch.FavorAttention-features",
            lambda: ft.FavorAttention(8, 2, features="relu6"),
            ValueError,
            r"features must be one of",
        ),
        Case(
            "torch.FavorAttention-projection",
            lambda: ft.FavorAttention(8, 2, projection="bogus"),
            ValueError,
            r"projection must be one of",
        ),
        Case(
            "torch.FavorAttention-forward-width",
            lambda: ft.FavorAttention(8, 2)(
                torch.zeros(2, 5, 4), torch.zeros(2, 5, 4), torch.zeros(2, 5, 4)
            ),
            ValueError,
            r"query must have shape \(seq, batch, 8\), got \(2, 5, 4\)",
        ),
    ]
    return [Case(c.id, c.call, c.error, c.match, torch=True) for c in cases]


if HAS_TORCH:
    CASES += _torch_cases()


# -- python -m theory --------------------------------------------------------------------
def _cli(*args: str) -> Callable[[], Any]:
    """Run ``python -m theory`` in process; a usage error becomes ``SystemExit("2: <line>")``."""

    def run() -> Any:
        import contextlib
        import io

        from theory.__main__ import main

        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            status = main(list(args))
        lines = err.getvalue().strip().splitlines()
        if status == 2 and len(lines) == 1:
            raise SystemExit(f"2: {lines[0]}")
        return status, lines

    return run


CLI_CASES = [
    ("claims-unknown", ("--claims", "ZZ9"), r"unknown claim id ZZ9 \(known: .*U1-U14"),
    ("claims-lowercase", ("--claims", "u1"), r"unknown claim id u1"),
    ("claims-empty", ("--claims", ""), r"--claims is empty"),
    ("claims-commas", ("--claims", ",,"), r"--claims is empty"),
    ("claims-blank-entry", ("--claims", "U1,,U2"), r"--claims 'U1,,U2' has an empty entry"),
    ("claims-duplicate", ("--claims", "U1,U1"), r"--claims lists U1 more than once"),
    ("no-figures-without-out", ("--no-figures",), r"--no-figures needs --out"),
    (
        "out-unwritable",
        ("--out", "/unwritable/path"),
        r"--out /unwritable/path: its parent directory /unwritable does not exist",
    ),
    ("out-is-a-file", ("--out", __file__), r"exists and is not a directory"),
    ("out-empty", ("--out", ""), r"--out is empty"),
    (
        "profiles-exclusive",
        ("--quick", "--full"),
        r"argument --full: not allowed with argument --quick",
    ),
    ("unknown-option", ("--bogus",), r"unrecognized arguments: --bogus"),
]
CASES += [
    Case(
        f"theory-cli-{label}", _cli(*args), SystemExit, r"^2: python -m theory: error: .*" + pattern
    )
    for label, args, pattern in CLI_CASES
]


def test_the_catalogue_is_large_and_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), [i for i in ids if ids.count(i) > 1]
    assert len(CASES) >= 150, len(CASES)


def test_the_docs_quote_the_count() -> None:
    from pathlib import Path

    page = Path(__file__).resolve().parent.parent / "docs" / "guide" / "errors.md"
    match = re.search(r"\*\*(\d+) cases\*\* \(with PyTorch installed\)", page.read_text())
    assert match, "docs/guide/errors.md does not quote the number of cases"
    quoted = int(match.group(1))
    if HAS_TORCH:
        assert quoted == len(CASES)
    else:
        assert quoted > len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case) -> None:
    if case.torch:
        pytest.importorskip("torch")
    if issubclass(case.error, Warning):
        with pytest.warns(case.error, match=case.match):
            out = case.call()
        assert not np.isnan(np.asarray(out)).any()  # noisy (or a predicted inf), not NaN
        return
    with pytest.raises(case.error, match=case.match):
        case.call()
