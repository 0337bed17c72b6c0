r"""Mutation suite: plausible bugs injected into ``favor`` at import time, which theory must catch.

A claim suite proves something only if it fails on wrong code. Each :class:`Mutation`
below monkeypatches ``favor`` in memory (no file is edited) with one plausible bug, the
kind found in published implementations or easy to make: an epsilon in the features or
the normaliser, a flag or mask ignored, a wrong constant, a projection scale error, QR
without the sign fix, a float32 downcast, a wrong error estimate. ``tests/theory/
test_mutations.py`` asserts that ``python -m theory`` exits non-zero under every one.

How to use the hook
-------------------
* ``FAVOR_THEORY_MUTATION=<name> python -m theory`` -- importing :mod:`theory` applies
  the mutation (:func:`apply_from_environment`) before any claim runs and says so on
  stderr; names are the keys of :data:`MUTATIONS`.
* ``with mutated("<name>"): ...`` -- in-process, restored on exit (negative controls).
* ``python -m theory.mutations`` lists the catalogue; ``python -m theory.mutations NAME``
  runs the claims listed as catching it, under the mutation, and exits 1 if any fails;
  ``python -m theory.mutations --scan [--workers N] [NAME ...]`` runs *every* claim
  under each mutation (:func:`scan`) and prints the claims that catch it (exit 1 if a
  bug is not caught or a listed claim passes): the source of the catalogue's
  ``caught_by`` lists and of the table in ``docs/theory.md``.

Where the patches go: the registry's extension hooks (``favor.registry.register_feature_map``,
``register_sampler``)
and public functions where possible; bugs inside the attention engine replace the
engine's compiled kernels (``favor._jit.attention.bidirectional_attention`` /
``causal_attention``, looked up at call time) by a wrapper around the original, or by
:func:`numpy_kernel`, a plain NumPy kernel with the same contract and the bug switched in.
These targets are collected in :func:`_engine` so a refactor of ``favor`` needs one
edit here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from theory._patching import ACTIVE as _ACTIVE
from theory._patching import enter as _enter
from theory._patching import patch as _set
from theory.mutations_estimators import ESTIMATOR_CATALOGUE

__all__ = [
    "ENVIRONMENT_VARIABLE",
    "MUTATIONS",
    "Mutation",
    "apply_from_environment",
    "apply_mutation",
    "mutated",
    "numpy_kernel",
    "scan",
]

#: The environment variable read when :mod:`theory` is imported.
ENVIRONMENT_VARIABLE = "FAVOR_THEORY_MUTATION"


def _engine() -> Any:
    """The module holding the attention kernels the engine looks up at call time."""
    from favor._jit import attention as kernels

    return kernels


# --------------------------------------------------------------------------------------
# A NumPy kernel with the compiled kernels' contract (see favor._jit.attention).


def _rows(rows: Any, x: np.ndarray, w: np.ndarray, half: np.ndarray, params: Any, is_key: bool):
    """Shape rows e and log-scales r of the map's jit split form (favor._jit.feature_rows)."""
    logits = np.ascontiguousarray(x @ w)
    n, width = x.shape[0], int(rows.width)
    e = np.empty((n, width), dtype=x.dtype)
    r = np.empty(n, dtype=x.dtype)
    work = np.empty(width, dtype=x.dtype), np.empty(width, dtype=x.dtype)
    rows.function(logits, np.ascontiguousarray(half, dtype=x.dtype), params, is_key, e, r, *work)
    return e.astype(np.float64), r.astype(np.float64)


class _Rows:
    def __init__(self, function: Any, width: int) -> None:
        self.function, self.width = function, width


def numpy_kernel(causal: bool, **bug: Any) -> Callable[..., None]:
    r"""A NumPy attention kernel with the engine scans' signature and optional bugs.

    It calls the map's own split form (the ``rows`` argument) for the feature rows and
    combines them as the compiled scans do; without ``bug`` it agrees with them to
    rounding. Bugs: ``feature_epsilon`` (added to every stabilised feature of queries and
    keys, as the official code's ``numerical_stabilizer``), ``normaliser_epsilon`` (added
    to :math:`\hat D`), ``half_factor`` (multiplies the :math:`s^2\lVert k\rVert^2/2`
    term of the keys).

    Parameters
    ----------
    causal : bool
        Causal or bidirectional.
    **bug
        The bug switches above.

    Returns
    -------
    callable
        ``scan(q, k, v, wt, wt_keys, proj_index, padded, half_factor, norm_weights, rows,
        params, width, chunk, out)``.
    """
    feps = float(bug.get("feature_epsilon", 0.0))
    deps = float(bug.get("normaliser_epsilon", 0.0))
    hf = float(bug.get("half_factor", 1.0))

    def kernel(q, k, v, wt, wt_keys, proj_index, padded, half_factor, norm_weights, rows,
               params, width, chunk, out):  # fmt: skip
        split = _Rows(rows, width)
        for g in range(q.shape[0]):
            p = params[g] if params.shape[0] > 1 else params[0]
            u = norm_weights[g] if norm_weights.shape[1] > 0 else 1.0
            qg, kg = q[g], k[g]
            hk = hf * half_factor * np.einsum("ld,ld->l", kg, kg * u)
            hq = half_factor * np.einsum("ld,ld->l", qg, qg)
            ek, rk = _rows(split, kg, wt_keys[proj_index[g]], hk, p, True)
            eq, _ = _rows(split, qg, wt[proj_index[g]], hq, p, False)
            rk = np.where(padded[g], -np.inf, rk)
            top = rk.max() if np.isfinite(rk.max()) else 0.0
            ek = np.where(padded[g][:, None], 0.0, ek * np.exp(rk - top)[:, None] + feps)
            scores = (eq + feps) @ ek.T
            if causal:
                scores = np.tril(scores)
            num = scores @ v[g].astype(np.float64)
            den = scores.sum(-1) + deps
            safe = np.where(den != 0, den, 1.0)
            out[g] = np.where(den[:, None] != 0, num / safe[:, None], 0.0).astype(out.dtype)

    return kernel


# --------------------------------------------------------------------------------------
# The catalogue.


@dataclass(frozen=True)
class Mutation:
    """One plausible bug and how to inject it.

    Attributes
    ----------
    name : str
        Key in :data:`MUTATIONS`.
    description : str
        The bug, as a reviewer would describe it.
    apply : callable
        Patches ``favor`` in place (undo with :func:`mutated`'s exit).
    caught_by : tuple of str
        Claim ids that fail under it (verified by ``tests/theory/test_mutations.py``).
    """

    name: str
    description: str
    apply: Callable[[], None]
    caught_by: tuple[str, ...]


def _kernels(bidirectional: Callable | None = None, causal: Callable | None = None) -> None:
    eng = _engine()
    if bidirectional is not None:
        _set(eng, "bidirectional_attention", bidirectional)
    if causal is not None:
        _set(eng, "causal_attention", causal)


def _wrap_both(make: Callable[[Callable], Callable]) -> None:
    eng = _engine()
    _kernels(make(eng.bidirectional_attention), make(eng.causal_attention))


def _feature_epsilon() -> None:
    _kernels(numpy_kernel(False, feature_epsilon=1e-4), numpy_kernel(True, feature_epsilon=1e-4))


def _normaliser_epsilon() -> None:
    _kernels(
        numpy_kernel(False, normaliser_epsilon=1e-4), numpy_kernel(True, normaliser_epsilon=1e-4)
    )


def _normaliser_epsilon_1e3() -> None:
    _kernels(
        numpy_kernel(False, normaliser_epsilon=1e-3, feature_epsilon=1e-6),
        numpy_kernel(True, normaliser_epsilon=1e-3, feature_epsilon=1e-6),
    )


def _key_norm_factor() -> None:
    _kernels(numpy_kernel(False, half_factor=2.0), numpy_kernel(True, half_factor=2.0))


def _causal_global_stabiliser() -> None:
    # Causal keys stabilised by the largest log-scale of the whole sequence (the official
    # code's habit): equal in exact arithmetic, but later keys change earlier outputs'
    # rounding.
    _kernels(causal=numpy_kernel(True))


def _dask_mask_ignored() -> None:
    # Attention on Dask arrays drops the mask (public entry point; NumPy calls unchanged).
    import favor

    original = favor.favor_attention

    def favor_attention(*args: Any, key_padding_mask: Any = None, **kwargs: Any) -> Any:
        if any(type(a).__module__.startswith("dask") for a in args):
            key_padding_mask = None
        return original(*args, key_padding_mask=key_padding_mask, **kwargs)

    _set(favor, "favor_attention", favor_attention)


def _causal_ignored() -> None:
    eng = _engine()
    _set(eng, "causal_attention", eng.bidirectional_attention)


def _mask_ignored() -> None:
    def make(kernel: Callable) -> Callable:
        def wrapped(q, k, v, wt, wt_keys, proj_index, padded, *rest):
            return kernel(q, k, v, wt, wt_keys, proj_index, np.zeros_like(padded), *rest)

        return wrapped

    _wrap_both(make)


def _downcast() -> None:
    def make(kernel: Callable) -> Callable:
        def wrapped(q, k, v, wt, wt_keys, proj_index, padded, half, norm_weights, rows, params,
                    width, chunk, out):  # fmt: skip
            rest = (proj_index, padded, half, norm_weights, rows, params, width, chunk)
            if out.dtype != np.float64:
                return kernel(q, k, v, wt, wt_keys, *rest, out)
            f32 = [np.ascontiguousarray(a, dtype=np.float32) for a in (q, k, v, wt, wt_keys)]
            tmp = np.empty(out.shape, dtype=np.float32)
            kernel(*f32, *rest, tmp)
            out[...] = tmp
            return None

        return wrapped

    _wrap_both(make)


def _engine_projection_scale() -> None:
    def make(kernel: Callable) -> Callable:
        def wrapped(q, k, v, wt, wt_keys, *rest):
            factor = wt.dtype.type(1.01)
            return kernel(q, k, v, np.ascontiguousarray(wt * factor),
                          np.ascontiguousarray(wt_keys * factor), *rest)  # fmt: skip

        return wrapped

    _wrap_both(make)


def _temperature() -> None:
    # 1/sqrt(d) applied to queries and keys (instead of d^-1/4 each): logits q.k/d.
    def make(kernel: Callable) -> Callable:
        def wrapped(q, k, v, wt, wt_keys, proj_index, padded, half, *rest):
            d = q.shape[-1]
            s = wt.dtype.type(d**-0.25)
            return kernel(q, k, v, np.ascontiguousarray(wt * s),
                          np.ascontiguousarray(wt_keys * s), proj_index, padded,
                          half * d**-0.5, *rest)  # fmt: skip

        return wrapped

    _wrap_both(make)


def _replace_map(name: str, transform: Callable[[np.ndarray, np.ndarray, str], np.ndarray]) -> None:
    """Shadow a map's NumPy formula through the registry hook (its attention form is kept)."""
    from favor import registry

    spec = registry.FEATURE_MAPS[name]
    formula = spec.numpy_formula()

    def numpy(x: Any, projection: Any, kernel: str, scale: float, params: Any, is_key: bool):
        phi = formula(x, projection, kernel, scale, params, is_key)
        return transform(phi, scale * np.asarray(x), kernel)

    _enter(registry.register_feature_map(dataclasses.replace(spec, numpy=numpy), replace=True))


def _sq_half(x: np.ndarray) -> np.ndarray:
    return 0.5 * np.einsum("...i,...i->...", x, x)[..., None]


def _positive_constant() -> None:
    # h(x) = exp(-|x|^2) (the Gaussian-kernel factor) used for the softmax kernel.
    _replace_map(
        "positive",
        lambda f, x, k: f * np.exp(-_sq_half(x)).astype(f.dtype) if k == "softmax" else f,
    )


def _hyperbolic_constant() -> None:
    # 1/sqrt(m) instead of 1/sqrt(2m).
    _replace_map("hyperbolic", lambda f, x, k: f * f.dtype.type(np.sqrt(2.0)))


def _trigonometric_constant() -> None:
    # sqrt(2/m), the cos(wx + b) convention, with (cos, sin) pairs.
    _replace_map("trigonometric", lambda f, x, k: f * f.dtype.type(np.sqrt(2.0)))


def _relu_constant() -> None:
    # 1/m instead of 1/sqrt(m): relu(Wx)/m.
    _replace_map("relu", lambda f, x, k: f / f.dtype.type(np.sqrt(f.shape[-1])))


def _features_epsilon() -> None:
    _replace_map("positive", lambda f, x, k: f + f.dtype.type(1e-4))


def _replace_sampler(name: str, sampler: Callable[..., np.ndarray]) -> None:
    """Shadow a sampler's ``draw(n_components, n_features, rng)`` through the registry hook."""
    from favor import registry

    spec = registry.SAMPLERS[name]

    def draw(n_components: int, n_features: int, rng: Any) -> np.ndarray:
        return sampler(n_components, n_features, rng=rng)

    _enter(registry.register_sampler(dataclasses.replace(spec, draw=draw), replace=True))


def _orthogonal(variant: Callable[[np.ndarray, np.ndarray, int, int, Any], np.ndarray]) -> None:
    from favor import registry

    original = registry.SAMPLERS["orthogonal"]

    def orthogonal_projection(n_components: int, n_features: int, *, rng: Any = None):
        rng = np.random.default_rng(rng)
        w = original(n_components, n_features, rng=rng)
        return variant(w, n_components, n_features, rng)

    _replace_sampler("orthogonal", orthogonal_projection)


def _partial_block_fixed() -> None:
    def variant(w: np.ndarray, m: int, d: int, rng: Any) -> np.ndarray:
        full = (m // d) * d
        w = w.copy()
        w[full:] *= np.sqrt(d) / np.linalg.norm(w[full:], axis=1, keepdims=True)
        return w

    _orthogonal(variant)


def _partial_block_dof() -> None:
    # The partial block's chi norms drawn with the block's row count as degrees of freedom.
    def variant(w: np.ndarray, m: int, d: int, rng: Any) -> np.ndarray:
        full = (m // d) * d
        r = m - full
        if r == 0:
            return w
        w = w.copy()
        w[full:] *= (np.sqrt(rng.chisquare(r, size=r)) / np.linalg.norm(w[full:], axis=1))[:, None]
        return w

    _orthogonal(variant)


def _chi_dof() -> None:
    # chi_{d-1} norms instead of chi_d.
    def variant(w: np.ndarray, m: int, d: int, rng: Any) -> np.ndarray:
        lengths = np.sqrt(rng.chisquare(d - 1, size=m))
        return w * (lengths / np.linalg.norm(w, axis=1))[:, None]

    _orthogonal(variant)


def _fixed_norms() -> None:
    _orthogonal(lambda w, m, d, rng: w * (np.sqrt(d) / np.linalg.norm(w, axis=1))[:, None])


def _shared_blocks() -> None:
    # Every block built from the same Gaussian matrix (one seed reused per block).
    def variant(w: np.ndarray, m: int, d: int, rng: Any) -> np.ndarray:
        u = w[:d] / np.linalg.norm(w[:d], axis=1, keepdims=True)
        dirs = np.tile(u, (-(-m // d), 1))[:m]
        return dirs * np.sqrt(rng.chisquare(d, size=m))[:, None]

    _orthogonal(variant)


def _orthogonal_is_iid() -> None:
    # The QR step forgotten: "orthogonal" rows are i.i.d. Gaussian (unbiased, but no gain).
    from favor.sampling import iid_projection

    _replace_sampler("orthogonal", iid_projection)


def _unsigned_qr() -> None:
    from theory.controls import unsigned_orthogonal_projection

    def orthogonal_projection(n_components, n_features, *, rng=None):
        return unsigned_orthogonal_projection(n_components, n_features, rng=rng)

    _replace_sampler("orthogonal", orthogonal_projection)


def _sampler_scale(name: str) -> Callable[[], None]:
    def apply() -> None:
        from favor import registry

        original = registry.SAMPLERS[name]

        def scaled(*args: Any, **kwargs: Any) -> np.ndarray:
            return 1.01 * original(*args, **kwargs)

        _replace_sampler(name, scaled)

    return apply


def _default_iid() -> None:
    import favor.attention as attention
    import favor.sampling as sampling

    original = sampling.resolve_projection

    def resolve(projection: Any, *args: Any, **kwargs: Any) -> np.ndarray:
        return original("iid" if projection is None else projection, *args, **kwargs)

    for module in (attention, sampling):
        if getattr(module, "resolve_projection", None) is original:
            _set(module, "resolve_projection", resolve)


def _heads_share() -> None:
    import favor.sampling as sampling

    original = sampling.draw_projection

    def draw(name: str, n_components: int, n_features: int, *, rng: Any = None,
             n_heads: int | None = None) -> np.ndarray:  # fmt: skip
        w = original(name, n_components, n_features, rng=rng)
        return w if n_heads is None else np.stack([w] * n_heads)

    import favor.attention as attention

    for module in (sampling, attention):
        if getattr(module, "draw_projection", None) is original:
            _set(module, "draw_projection", draw)


def _error_estimate_scaled() -> None:
    import favor
    import favor.attention as attention

    original = attention.estimate_attention_error

    def scaled(*args: Any, **kwargs: Any) -> np.ndarray:
        return 2.0 * original(*args, **kwargs)

    for module in (favor, attention):
        _set(module, "estimate_attention_error", scaled)


def _error_estimate_gerf_as_positive() -> None:
    # The error estimate of oprf/saderf falls back to the positive map's formula.
    import favor
    import favor.attention as attention

    original = attention.estimate_attention_error

    def estimate(*args: Any, features: str = "positive", **kwargs: Any) -> np.ndarray:
        if features in ("oprf", "saderf"):
            kwargs.pop("feature_params", None)
            features = "positive"
        return original(*args, features=features, **kwargs)

    for module in (favor, attention):
        _set(module, "estimate_attention_error", estimate)


def _decoding_mask_ignored() -> None:
    import favor
    import favor.decoding as decoding

    original = decoding.decode_step

    def decode_step(state: Any, query: Any, key: Any, value: Any, *, key_padding_mask: Any = None):
        return original(state, query, key, value)

    for module in (favor, decoding):
        _set(module, "decode_step", decode_step)


def _decoding_feature_epsilon() -> None:
    import favor.decoding as decoding

    original = decoding._feature_rows

    def feature_rows(state: Any, x: np.ndarray, keys: bool) -> tuple[np.ndarray, np.ndarray]:
        rows, log_scale = original(state, x, keys)
        return rows + rows.dtype.type(1e-4), log_scale

    _set(decoding, "_feature_rows", feature_rows)


def _torch_mask_ignored() -> None:
    import favor.torch as favor_torch

    original = favor_torch.favor_attention

    def favor_attention(*args: Any, key_padding_mask: Any = None, **kwargs: Any) -> Any:
        return original(*args, **kwargs)

    _set(favor_torch, "favor_attention", favor_attention)


def _torch_causal_ignored() -> None:
    import favor.torch as favor_torch

    original = favor_torch.favor_attention

    def favor_attention(*args: Any, causal: bool = False, **kwargs: Any) -> Any:
        return original(*args, **kwargs)

    _set(favor_torch, "favor_attention", favor_attention)


def _transformer_rbf_scale() -> None:
    # FavorSampler maps sqrt(gamma) x instead of sqrt(2 gamma) x for the RBF kernel.
    from favor import registry

    spec = registry.KERNELS["rbf"]
    wrong = dataclasses.replace(spec, input_scale=lambda gamma: float(np.sqrt(gamma)))
    _enter(registry.register_kernel(wrong, replace=True))


def _transformer_oprf_wrong_a() -> None:
    # FavorSampler fits oprf's A with the secondary source's formula (formulas §7).
    import favor.gerf as gerf
    from favor import registry
    from theory.gerf_claims import secondary_source_a

    spec = registry.FEATURE_MAPS["oprf"]

    def params(x: Any, projection: np.ndarray) -> np.ndarray:
        packed = np.array(gerf.registry_params(x, projection), dtype=np.float64)
        if x is not None and x.shape[0] > 0:
            x = np.asarray(x, dtype=np.float64)
            mean = x.mean(axis=0)
            rho = 2 * ((x * x).sum() / x.shape[0] + (mean * mean).sum()) / x.shape[1]
            w = projection[0] if projection.ndim == 3 else projection
            packed = gerf.pack_params(float(secondary_source_a(rho, x.shape[1])), w)
        return packed

    _enter(registry.register_feature_map(dataclasses.replace(spec, params=params), replace=True))


def _exact_rbf_half_gamma() -> None:
    import favor
    import favor.exact as exact

    original = exact.rbf_kernel

    def rbf_kernel(x: Any, y: Any, *, gamma: float = 0.5) -> np.ndarray:
        return original(x, y, gamma=gamma / 2)

    for module in (favor, exact):
        _set(module, "rbf_kernel", rbf_kernel)


def _exact_attention_temperature() -> None:
    # Exact softmax attention with logits q.k instead of q.k / sqrt(d).
    import favor
    import favor.exact as exact

    original = exact.softmax_attention

    def softmax_attention(queries: Any, keys: Any, values: Any, **kwargs: Any) -> Any:
        d = np.shape(queries)[-1]
        return original(np.asarray(queries) * d**0.25, np.asarray(keys) * d**0.25, values,
                        **kwargs)  # fmt: skip

    for module in (favor, exact):
        _set(module, "softmax_attention", softmax_attention)


_CATALOGUE: list[tuple[str, str, Callable[[], None], tuple[str, ...]]] = [
    ("feature-epsilon-1e-4", "attention engine adds 1e-4 to every stabilised feature "
     "(the official code's numerical_stabilizer)", _feature_epsilon, ("E1", "E2", "E3", "E4", "E5", "E6", "A2")),
    ("normaliser-epsilon-1e-4", "attention engine adds 1e-4 to the normaliser D_hat",
     _normaliser_epsilon, ("E1", "E2", "E3", "E4", "E5", "E6")),
    ("normaliser-epsilon-1e-3", "attention engine adds 1e-3 to D_hat and 1e-6 to the features "
     "(the habit of the best-known implementations)", _normaliser_epsilon_1e3, ("E1", "E2", "E3", "E4", "E5", "E6")),
    ("key-norm-factor", "key features subtract s^2 |k|^2 instead of s^2 |k|^2 / 2",
     _key_norm_factor, ("E1", "E2", "E3", "E5", "E6", "A1", "A2")),
    ("causal-ignored", "the causal flag is ignored (bidirectional kernel used)",
     _causal_ignored, ("E1", "E2", "E3", "E4", "E5", "E6")),
    ("mask-ignored", "key padding masks are ignored by the attention kernels", _mask_ignored, ("E1", "E2", "E3", "E4", "E5")),
    ("float32-downcast", "float64 attention is computed in float32", _downcast, ("E1", "E2", "E3", "E4", "E6")),
    ("engine-projection-scale-1%", "the engine scales the projection by 1.01",
     _engine_projection_scale, ("E1", "E2", "E3", "E5", "E6", "A1", "A2")),
    ("temperature-1/sqrt(d)", "queries and keys both scaled by d^-1/2 (logits q.k/d)",
     _temperature, ("E1", "E2", "E3", "E5", "E6", "A1", "A2")),
    ("positive-constant", "positive features use exp(-|x|^2) (the Gaussian factor) for softmax",
     _positive_constant, ("E1", "U1", "U3", "V2", "V5", "P1", "P2", "O1", "O3")),
    ("hyperbolic-constant", "hyperbolic features scaled by 1/sqrt(m) instead of 1/sqrt(2m)",
     _hyperbolic_constant, ("E2", "U5", "U6", "U7", "U8", "V3", "P2")),
    ("trigonometric-constant", "trigonometric features scaled by sqrt(2/m) instead of 1/sqrt(m)",
     _trigonometric_constant, ("E3", "U9", "U10", "U11", "U12", "V1", "V6", "P1", "C1")),
    ("relu-constant", "relu features scaled by 1/m instead of 1/sqrt(m)", _relu_constant, ("E4", "U13", "U14", "V4")),
    ("features-epsilon-1e-4", "positive_features adds 1e-4 to every feature",
     _features_epsilon, ("E1", "U1", "U2", "U3", "U4", "V2", "V5", "P1", "P2", "O3")),
    ("qr-without-sign-fix", "orthogonal blocks from QR without the sign(diag R) fix",
     _unsigned_qr, ("S2", "U3", "U4", "U14", "V5", "O1", "O2", "G1", "G5")),
    ("fixed-norms", "orthogonal rows get length sqrt(d) instead of chi norms", _fixed_norms, ("S2", "U3", "U4", "U7", "U8", "U11", "U12", "V5", "V6", "O1", "C1", "G1", "G4", "G5")),
    ("partial-block-fixed-norms", "the partial last orthogonal block gets fixed sqrt(d) norms",
     _partial_block_fixed, ("S2",)),
    ("partial-block-chi-dof", "the partial last block's chi norms use its row count as degrees "
     "of freedom", _partial_block_dof, ("S2",)),
    ("chi-dof-d-1", "orthogonal row norms drawn from chi_{d-1}", _chi_dof, ("S2", "U3", "U4", "U7", "U8", "U11", "U12", "U14", "V5", "V6", "O1", "C1", "G1", "G4", "G5")),
    ("shared-blocks", "every orthogonal block built from the same Gaussian matrix",
     _shared_blocks, ("U3", "U4", "U11", "U14", "V5", "V6", "O1", "O2", "C1", "G1", "G4", "G5")),
    ("orthogonal-scale-1%", "the orthogonal sampler's rows are 1% too long",
     _sampler_scale("orthogonal"), ("S2", "U7", "U8", "U11", "U12", "U14", "V5", "V6", "G1", "G5")),
    ("iid-scale-1%", "the i.i.d. sampler's rows are 1% too long", _sampler_scale("iid"), ("S1", "U5", "U6", "U9", "U10", "U13", "V1", "V2", "V3", "V4", "A1", "A2", "G2")),
    ("default-projection-iid", "the default projection is i.i.d. instead of orthogonal",
     _default_iid, ("E6",)),
    ("heads-share-projection", "per-head draws reuse one projection for every head",
     _heads_share, ("E6",)),
    ("error-estimate-x2", "estimate_attention_error returns twice its value",
     _error_estimate_scaled, ("R1",)),
    ("decoding-mask-ignored", "decode_step ignores key_padding_mask", _decoding_mask_ignored, ("E7",)),
    ("decoding-feature-epsilon", "decode_step adds 1e-4 to every feature row",
     _decoding_feature_epsilon, ("E7",)),
    ("torch-mask-ignored", "the torch backend ignores key_padding_mask", _torch_mask_ignored, ("E8",)),
    ("torch-causal-ignored", "the torch backend ignores the causal flag", _torch_causal_ignored,
     ("E8",)),
    ("causal-global-stabiliser", "causal keys stabilised by the largest log-scale of the "
     "whole sequence (later keys change earlier outputs' rounding)", _causal_global_stabiliser,
     ("E11",)),
    ("error-estimate-gerf-as-positive", "estimate_attention_error uses the positive map's "
     "formula for oprf/saderf", _error_estimate_gerf_as_positive, ("R1",)),
    ("orthogonal-is-iid", "the orthogonal sampler skips its QR step (i.i.d. Gaussian rows: "
     "unbiased, no orthogonality gain)", _orthogonal_is_iid, ("S2", "O1", "O2", "V5", "V6",
     "G4")),
    ("dask-mask-ignored", "the Dask backend ignores key_padding_mask", _dask_mask_ignored,
     ("E12",)),
    ("transformer-rbf-scale", "FavorSampler maps sqrt(gamma) x instead of sqrt(2 gamma) x "
     "for the RBF kernel", _transformer_rbf_scale, ("E9",)),
    ("transformer-oprf-wrong-a", "FavorSampler fits oprf's A* with the secondary source's "
     "formula", _transformer_oprf_wrong_a, ("E9",)),
    ("exact-rbf-half-gamma", "the exact RBF kernel is exp(-gamma |x - y|^2 / 2)",
     _exact_rbf_half_gamma, ("E10",)),
    ("exact-attention-temperature", "exact softmax attention uses logits q.k, not "
     "q.k / sqrt(d)", _exact_attention_temperature, ("E10",)),
    *ESTIMATOR_CATALOGUE,
]  # fmt: skip

#: The catalogue: name -> :class:`Mutation`.
MUTATIONS: dict[str, Mutation] = {
    name: Mutation(name, description, apply, caught_by)
    for name, description, apply, caught_by in _CATALOGUE
}


def apply_mutation(name: str) -> Mutation:
    """Apply one mutation to the running process (until :func:`mutated` restores it).

    Parameters
    ----------
    name : str
        A key of :data:`MUTATIONS`.

    Returns
    -------
    Mutation
        The applied mutation.
    """
    if name not in MUTATIONS:
        raise ValueError(f"mutation must be one of {sorted(MUTATIONS)}, got {name!r}")
    mutation = MUTATIONS[name]
    mutation.apply()
    return mutation


@contextlib.contextmanager
def mutated(name: str) -> Iterator[Mutation]:
    """Context manager: ``favor`` with one mutation applied, restored on exit.

    Parameters
    ----------
    name : str
        A key of :data:`MUTATIONS`.

    Yields
    ------
    Mutation
        The applied mutation.
    """
    depth = len(_ACTIVE)
    try:
        yield apply_mutation(name)
    finally:
        while len(_ACTIVE) > depth:
            _ACTIVE.pop()()


def apply_from_environment() -> str | None:
    """Apply the mutation named by ``$FAVOR_THEORY_MUTATION`` (if set) and say so on stderr.

    Returns
    -------
    str or None
        The mutation's name, or None.
    """
    name = os.environ.get(ENVIRONMENT_VARIABLE, "").strip()
    if not name:
        return None
    mutation = apply_mutation(name)
    print(f"theory: MUTATION ACTIVE: {name} ({mutation.description})", file=sys.stderr)
    return name


def _scan_one(name: str, claim_id: str) -> bool:
    """Whether ``claim_id`` fails (quick profile) with mutation ``name`` applied."""
    from theory.registry import run_claim

    with mutated(name):
        return not run_claim(claim_id).passed


def scan(names: list[str] | None = None, *, workers: int = 1) -> dict[str, tuple[str, ...]]:
    """Run every claim under every mutation (quick profile): which claims catch which bug.

    Parameters
    ----------
    names : list of str, optional
        Mutations to scan (default: the whole catalogue; torch and Dask bugs only with those installed).
    workers : int, default=1
        Worker processes (each runs whole (mutation, claim) tasks; results are identical
        to a serial scan, every claim having its own seed).

    Returns
    -------
    dict
        Mutation name -> ids of the non-informational claims that fail under it, in the
        claim table's order (informational claims never fail a run).
    """
    import importlib.util

    from theory.registry import current_claims

    if names is None:
        has = {m: importlib.util.find_spec(m) is not None for m in ("torch", "dask")}
        names = [n for n in MUTATIONS if all(has[m] or not n.startswith(m) for m in has)]
    ids = [spec.claim_id for spec in current_claims() if not spec.informational]
    tasks = [(name, claim_id) for name in names for claim_id in ids]
    if workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            failed = list(pool.map(_scan_one, *zip(*tasks, strict=True), chunksize=8))
    else:
        failed = [_scan_one(name, claim_id) for name, claim_id in tasks]
    caught: dict[str, list[str]] = {name: [] for name in names}
    for (name, claim_id), fail in zip(tasks, failed, strict=True):
        if fail:
            caught[name].append(claim_id)
    return {name: tuple(found) for name, found in caught.items()}


def _main(argv: list[str]) -> int:
    if not argv:
        width = max(map(len, MUTATIONS))
        for m in MUTATIONS.values():
            print(f"{m.name:{width}s}  {', '.join(m.caught_by) or '-':24s}  {m.description}")
        return 0
    if argv[0] == "--scan":
        workers = 1
        rest = argv[1:]
        if rest[:1] == ["--workers"]:
            workers, rest = int(rest[1]), rest[2:]
        result = scan(rest or None, workers=workers)
        missed = False
        for name, found in result.items():
            listed = set(MUTATIONS[name].caught_by)
            note = (
                ""
                if listed <= set(found)
                else f"  (listed but passing: {sorted(listed - set(found))})"
            )
            missed |= not found or bool(note)
            print(f"{name}: {', '.join(found) or 'NOT CAUGHT'}{note}", flush=True)
        return 1 if missed else 0
    from theory.registry import run_claim

    failed = False
    for name in argv:
        with mutated(name) as mutation:
            for claim_id in mutation.caught_by:
                result = run_claim(claim_id)
                failed |= not result.passed
                print(f"{name}: {result.claim_id} {result.verdict}  {result.statistic}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
