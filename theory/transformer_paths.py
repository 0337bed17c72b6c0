r"""Claims E9-E10: the scikit-learn transformer and the exact references (exact identities).

* :func:`check_transformer_paths` -- :class:`favor.FavorSampler`: for every kernel, map
  and coupling it offers, the dot products of its ``transform`` output equal the
  collapsed FAVOR estimate (:mod:`theory.collapsed_forms`) of the *documented* kernel
  convention, evaluated with the fitted projection ``projection_``: ``rbf``
  :math:`e^{-\gamma\lVert x-y\rVert^2}` (inputs :math:`\sqrt{2\gamma}\,x`), ``softmax``
  :math:`e^{\gamma x^Ty}` (inputs :math:`\sqrt\gamma\,x`), ``laplacian``
  :math:`e^{-\gamma\lVert x-y\rVert_1}` (inputs :math:`\gamma x`), ``matern`` with length
  scale :math:`1/\sqrt{2\gamma}` (inputs :math:`\sqrt{2\gamma}\,x`); ``gamma="scale"`` is
  scikit-learn's :math:`1/(d\,\mathrm{Var}\,X)`. The fitted ``"oprf"`` map must use
  :math:`A^*(\rho)` of :func:`theory.gerf_forms.oprf_optimal_a` with :math:`\rho` the pair
  mean of :math:`\lVert x_i + x_j\rVert^2/d` over the (scaled) training data,
  :math:`2(\overline{\lVert x\rVert^2} + \lVert\bar x\rVert^2)/d`, and the GERF features
  of formulas §6.3. The structured coupling is also run above the crossover where the
  transform switches to fast Walsh-Hadamard products.
* :func:`check_exact_references` -- ``favor``'s exact kernels and exact softmax attention
  (causal, masked) against the formulas written out here.

The spectral laws of the rows (``projection_``) are the sampler and kernel claims'
business (S, K, U); these identities fix everything the transformer does with them.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from theory.collapsed_forms import collapsed_kernel, gerf_log_kernel
from theory.engine_paths import FLOAT64_TOLERANCE, _deviation, _exact
from theory.results import ClaimCheck

__all__ = ["check_exact_references", "check_transformer_paths"]

_GAMMA = 0.7

#: (kernel, features, projection, n_features): every combination the transformer offers
#: (and, for structured, one input width above the fast-transform crossover).
TRANSFORMER_CASES = (
    *(("rbf", f, "orthogonal", 6) for f in ("trigonometric", "positive", "hyperbolic", "oprf")),
    *(("rbf", "trigonometric", p, 6) for p in ("iid", "qmc", "simplex", "structured")),
    ("rbf", "trigonometric", "structured", 300),
    *(("softmax", f, "orthogonal", 6) for f in ("trigonometric", "positive", "hyperbolic", "oprf")),
    ("laplacian", "trigonometric", "iid", 6),
    ("laplacian", "trigonometric", "qmc", 6),
    ("matern", "trigonometric", "orthogonal", 6),
    ("matern", "trigonometric", "structured", 300),
)


def _unit_inputs(kernel: str, gamma: float, x: np.ndarray) -> np.ndarray:
    """The inputs of the unit-scale form, by the documented convention (module docstring)."""
    if kernel == "softmax":
        return np.sqrt(gamma) * x
    if kernel == "laplacian":
        return gamma * x
    return np.sqrt(2.0 * gamma) * x


def check_transformer_paths(
    *,
    n_components: int = 20,
    tolerance: float = FLOAT64_TOLERANCE,
    sampler: Any = None,
    name: str | None = None,
) -> ClaimCheck:
    """``FavorSampler``'s feature dot products equal the collapsed estimate, every case.

    Parameters
    ----------
    n_components : int, default=20
        Projection rows (not a multiple of the input width: a partial last block).
    tolerance : float, default=FLOAT64_TOLERANCE
        Relative tolerance (float64 rounding gives about 1e-15).
    sampler : type, optional
        Transformer class under test (default :class:`favor.FavorSampler`).
    name : str, optional
        Claim name.

    Returns
    -------
    ClaimCheck
        Estimate: the largest relative deviation over the cases.
    """
    import favor
    from theory.gerf_forms import oprf_optimal_a

    cls = sampler or favor.FavorSampler
    rng = np.random.default_rng(9)
    dev: dict[str, float] = {}
    for kernel, features, projection, d in TRANSFORMER_CASES:
        x = 0.5 * rng.standard_normal((12, d)) / np.sqrt(d / 6)
        y = 0.5 * rng.standard_normal((10, d)) / np.sqrt(d / 6)
        nus = (1.5, 2.5) if kernel == "matern" else (1.5,)
        for nu in nus:
            for gamma in (_GAMMA, "scale"):
                est = cls(kernel, gamma=gamma, features=features, projection=projection,
                          n_components=n_components, random_state=3, nu=nu)  # fmt: skip
                z = est.fit(x).transform(np.concatenate([x, y]))
                got = z[:12] @ z[12:].T
                g = 1.0 / (d * np.var(x)) if gamma == "scale" else gamma
                ux, uy = _unit_inputs(kernel, g, x), _unit_inputs(kernel, g, y)
                w = np.asarray(est.projection_, dtype=np.float64)
                form = "softmax" if kernel == "softmax" else "rbf"
                if features == "oprf":
                    rho = 2 * (np.mean(np.sum(ux * ux, 1)) + np.sum(ux.mean(0) ** 2)) / d
                    log_k = gerf_log_kernel(ux, uy, w, float(oprf_optimal_a(rho)))
                    if form == "rbf":  # the Gaussian kernel's extra factor (formulas §1.1)
                        log_k -= 0.5 * (np.sum(ux * ux, 1)[:, None] + np.sum(uy * uy, 1))
                    ref = np.exp(log_k)
                else:
                    ref = collapsed_kernel(features, ux, uy, w, kernel=form)
                label = f"{kernel}/{features}/{projection} d={d} gamma={gamma}" + (
                    f" nu={nu}" if kernel == "matern" else ""
                )
                dev[label] = _deviation(got, ref)
    return _exact(
        name or "FavorSampler (scikit-learn transformer) = collapsed form, every kernel, map "
        "and coupling",
        dev,
        tolerance,
        note=f"m = {n_components}",
    )


def _softmax_attention_reference(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, causal: bool, mask: np.ndarray | None
) -> np.ndarray:
    """softmax(q k^T / sqrt(d)) v over the visible keys (zero rows where none is visible)."""
    logits = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    visible = np.ones(logits.shape, dtype=bool)
    if causal:
        visible &= np.tril(np.ones(logits.shape[-2:], dtype=bool))
    if mask is not None:
        visible &= ~mask[..., None, :]
    logits = np.where(visible, logits, -np.inf)
    top = logits.max(-1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    weights = np.where(visible, np.exp(logits - top), 0.0)
    den = weights.sum(-1, keepdims=True)
    return np.where(den > 0, (weights @ v) / np.where(den > 0, den, 1.0), 0.0)


def check_exact_references(
    *, tolerance: float = FLOAT64_TOLERANCE, name: str | None = None
) -> ClaimCheck:
    """``favor``'s exact kernels and softmax attention equal their formulas.

    Parameters
    ----------
    tolerance : float, default=FLOAT64_TOLERANCE
        Relative tolerance.
    name : str, optional
        Claim name.

    Returns
    -------
    ClaimCheck
        Estimate: the largest relative deviation.
    """
    import favor
    from theory.closed_forms import arccos_kernel_value
    from theory.coupling_forms import laplacian_kernel_value, matern_kernel_value

    rng = np.random.default_rng(10)
    x, y = 0.6 * rng.standard_normal((7, 5)), 0.6 * rng.standard_normal((6, 5))
    diff = x[:, None, :] - y[None, :, :]
    g = _GAMMA
    dev = {
        "rbf_kernel": _deviation(
            favor.rbf_kernel(x, y, gamma=g), np.exp(-g * np.sum(diff**2, -1))
        ),
        "softmax_kernel": _deviation(favor.softmax_kernel(x, y, gamma=g), np.exp(g * x @ y.T)),
        "arccos_kernel": _deviation(
            favor.arccos_kernel(x, y), arccos_kernel_value(x[:, None, :], y[None, :, :])
        ),
    }
    kernels = favor.registry.KERNELS
    dev["laplacian (FavorSampler's exact)"] = _deviation(
        kernels["laplacian"].exact_function()(x, y, gamma=g), laplacian_kernel_value(diff, g)
    )
    for nu in (0.5, 1.5, 2.5):
        dev[f"matern nu={nu} (FavorSampler's exact)"] = _deviation(
            kernels["matern"].exact_function()(x, y, gamma=g, nu=nu),
            matern_kernel_value(diff, nu, 1.0 / np.sqrt(2 * g)),
        )
    q, k, v = (rng.standard_normal((2, 3, 9, 4)) for _ in range(3))
    mask = rng.random((2, 3, 9)) < 0.3
    mask[..., 0] = False
    for causal in (False, True):
        for masked in (False, True):
            m = mask if masked else None
            got = favor.softmax_attention(q, k, v, causal=causal, key_padding_mask=m)
            label = "softmax_attention" + (", causal" if causal else "") + (
                ", masked" if masked else ""
            )
            dev[label] = _deviation(got, _softmax_attention_reference(q, k, v, causal, m))
    result = _exact(name or "exact kernels and softmax attention = their formulas", dev, tolerance)
    return replace(result, source="formulas §1.1-1.2, §5; favor.kernels (exact identity)")
