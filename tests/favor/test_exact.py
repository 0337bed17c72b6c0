"""favor.exact: kernels against scikit-learn and direct formulas, attention against a naive loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics.pairwise import rbf_kernel as sklearn_rbf_kernel

from favor import arccos_kernel, rbf_kernel, softmax_attention, softmax_kernel
from tests.conftest import readonly


@pytest.fixture
def points():
    rng = np.random.default_rng(5)
    return readonly(rng.standard_normal((6, 4))), readonly(rng.standard_normal((3, 4)))


@pytest.mark.parametrize("gamma", [0.01, 0.5, 2.0])
def test_rbf_kernel_matches_sklearn(points, gamma):
    x, y = points
    np.testing.assert_allclose(
        rbf_kernel(x, y, gamma=gamma), sklearn_rbf_kernel(x, y, gamma=gamma), rtol=1e-12
    )


def test_kernels_match_direct_formulas(points):
    x, y = points
    gamma = 0.7
    for i, j in np.ndindex(len(x), len(y)):
        xi, yj = x[i], y[j]
        assert softmax_kernel(x, y, gamma=gamma)[i, j] == pytest.approx(
            math.exp(gamma * sum(a * b for a, b in zip(xi, yj, strict=True))), rel=1e-13
        )
        assert rbf_kernel(x, y, gamma=gamma)[i, j] == pytest.approx(
            math.exp(-gamma * sum((a - b) ** 2 for a, b in zip(xi, yj, strict=True))), rel=1e-13
        )
        nx, ny = math.hypot(*xi), math.hypot(*yj)
        theta = math.acos(max(-1.0, min(1.0, float(xi @ yj) / (nx * ny))))
        expected = nx * ny * (math.sin(theta) + (math.pi - theta) * math.cos(theta)) / (2 * math.pi)
        assert arccos_kernel(x, y)[i, j] == pytest.approx(expected, rel=1e-12)


def test_softmax_and_rbf_kernels_are_related_by_the_norm_factors(points):
    # formulas §1.1 [A4]: SM(x, y) = exp(|x|^2/2) K_gauss(x, y) exp(|y|^2/2).
    x, y = points
    hx = np.exp(0.5 * (x**2).sum(1))[:, None]
    hy = np.exp(0.5 * (y**2).sum(1))[None, :]
    np.testing.assert_allclose(softmax_kernel(x, y), hx * rbf_kernel(x, y) * hy, rtol=1e-12)


def test_arccos_kernel_diagonal_and_zero_vector():
    x = np.array([[3.0, 4.0], [0.0, 0.0]])
    k = arccos_kernel(x, x)
    assert k[0, 0] == pytest.approx(25.0 / 2)  # theta = 0: |x|^2 * pi / (2 pi)
    assert k[1, 1] == 0.0
    assert k[0, 1] == 0.0


def test_kernels_support_batch_axes_and_float32(points):
    x, y = points
    xb = np.stack([x, 2 * x]).astype(np.float32)
    yb = np.stack([y, y]).astype(np.float32)
    out = rbf_kernel(xb, yb, gamma=0.3)
    assert out.shape == (2, 6, 3)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[1], rbf_kernel(2 * x, y, gamma=0.3), rtol=1e-5)


def _naive_attention(q, k, v, causal=False, mask=None):
    """One query at a time: exp(q.k/sqrt d) over the visible keys, normalised."""
    out = np.zeros((q.shape[0], v.shape[1]))
    d = q.shape[1]
    for i in range(q.shape[0]):
        weights = []
        rows = []
        for j in range(k.shape[0]):
            if (causal and j > i) or (mask is not None and mask[j]):
                continue
            weights.append(math.exp(float(q[i] @ k[j]) / math.sqrt(d)))
            rows.append(v[j])
        if weights:
            out[i] = np.average(np.array(rows), axis=0, weights=np.array(weights))
    return out


@pytest.mark.parametrize("causal", [False, True])
def test_softmax_attention_matches_naive_loop(causal):
    rng = np.random.default_rng(9)
    q, k, v = rng.standard_normal((3, 2, 5, 4))
    mask = np.zeros((2, 5), dtype=bool)
    mask[1, [0, 3]] = True
    out = softmax_attention(q, k, v, causal=causal, key_padding_mask=mask)
    for b in range(2):
        expected = _naive_attention(q[b], k[b], v[b], causal=causal, mask=mask[b])
        np.testing.assert_allclose(out[b], expected, rtol=1e-12, atol=1e-14)


def test_softmax_attention_fully_masked_query_gets_zero_row_and_keeps_dtype():
    q = k = v = np.eye(3, dtype=np.float32)
    mask = np.array([True, False, False])
    out = softmax_attention(q, k, v, causal=True, key_padding_mask=mask)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out[0], np.zeros(3, dtype=np.float32))


def test_softmax_attention_large_logits_do_not_overflow():
    q = k = np.array([[100.0, 0.0], [0.0, 100.0]])
    v = np.array([[1.0, 0.0], [0.0, 1.0]])
    with np.errstate(over="raise", invalid="raise"):
        out = softmax_attention(q, k, v)
    np.testing.assert_allclose(out, np.eye(2), atol=1e-12)


@pytest.mark.parametrize("fn", [softmax_kernel, rbf_kernel])
@pytest.mark.parametrize("gamma", [0, -1.0, np.inf, np.nan, "1", True])
def test_invalid_gamma_names_the_argument(fn, gamma, points):
    with pytest.raises(ValueError, match="gamma"):
        fn(*points, gamma=gamma)


@pytest.mark.parametrize("fn", [softmax_kernel, rbf_kernel, arccos_kernel])
def test_invalid_points_name_the_argument(fn, points):
    x, y = points
    with pytest.raises(ValueError, match="x and y must have the same last axis"):
        fn(x, y[:, :3])
    with pytest.raises(ValueError, match="x must contain only finite"):
        fn(np.full_like(x, np.inf), y)
    with pytest.raises(ValueError, match="y must have at least 2"):
        fn(x, y[0])


def test_invalid_attention_inputs_name_the_argument():
    q = np.zeros((2, 3, 4))
    with pytest.raises(ValueError, match="causal"):
        softmax_attention(q, q[:, :2], q[:, :2], causal=True)
    with pytest.raises(ValueError, match="key_padding_mask must be a boolean"):
        softmax_attention(q, q, q, key_padding_mask=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="key_padding_mask must have shape"):
        softmax_attention(q, q, q, key_padding_mask=np.zeros((3, 3), dtype=bool))
    with pytest.raises(ValueError, match="values"):
        softmax_attention(q, q, q[:, :2])
    with pytest.raises(ValueError, match="queries must contain only finite"):
        softmax_attention(np.full_like(q, np.nan), q, q)
