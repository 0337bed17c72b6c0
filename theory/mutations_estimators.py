r"""Mutations of the newer estimators: couplings, kernels' spectral laws, GERF and hybrid maps.

Part of the catalogue of :mod:`theory.mutations` (the hook, the runner and the table are
there). Each bug is injected as the engine would meet it: samplers through
``favor.registry.register_sampler`` (what :func:`favor.sampling.draw_projection`,
attention and :class:`favor.FavorSampler` draw from), spectral laws through
``favor.registry.register_kernel`` (the kernel's ``rows`` hook, drawn by
:meth:`favor.registry.Kernel.draw_rows`), and the GERF and hybrid maps by replacing, for
the duration of the mutation, the public module functions their callers look up at call
time (:func:`favor.gerf.oprf_a`, the hybrid map's feature assembly in :mod:`favor.hybrid`) or
the map's attention hook through ``favor.registry.register_feature_map``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from theory._patching import enter, patch

__all__ = ["ESTIMATOR_CATALOGUE"]


def _hooks() -> Any:
    from theory import mutations

    return mutations


def _coupling(name: str, draw: Callable[[int, int, Any], np.ndarray]) -> Callable[[], None]:
    """A mutation replacing sampler ``name``'s ``draw(m, d, rng)`` in the registry."""

    def apply() -> None:
        from favor import registry

        spec = registry.SAMPLERS[name]
        enter(registry.register_sampler(dataclasses.replace(spec, draw=draw), replace=True))

    return apply


def _qmc_unscrambled(m: int, d: int, rng: Any) -> np.ndarray:
    from favor.couplings import qmc_projection

    return qmc_projection(m, d, scramble=False)


def _qmc_fixed_seed(m: int, d: int, rng: Any) -> np.ndarray:
    # Scrambled, but from a constant seed: every draw is the same point set.
    from favor.couplings import qmc_projection

    return qmc_projection(m, d, rng=0)


def _simplex(**options: Any) -> Callable[[int, int, Any], np.ndarray]:
    def draw(m: int, d: int, rng: Any) -> np.ndarray:
        from favor.couplings import simplex_projection

        return simplex_projection(m, d, rng=rng, **options)

    return draw


def _structured_unsigned(m: int, d: int, rng: Any) -> np.ndarray:
    from favor.couplings import structured_projection

    return structured_projection(m, d, random_signs=False, rng=rng)


def _spectral(name: str, rows: Callable[..., np.ndarray]) -> Callable[[], None]:
    """A mutation replacing kernel ``name``'s spectral-law ``rows`` hook in the registry."""

    def apply() -> None:
        from favor import registry

        spec = registry.KERNELS[name]
        enter(registry.register_kernel(dataclasses.replace(spec, rows=rows), replace=True))

    return apply


def _laplacian_gaussian(
    projection: str, m: int, d: int, rng: np.random.Generator, nu: float
) -> np.ndarray:
    # The Gaussian kernel's rows under the same coupling (Cauchy coordinates forgotten).
    from favor.sampling import draw_projection

    return draw_projection(projection, m, d, rng=rng)


def _matern_nu_dof(
    projection: str, m: int, d: int, rng: np.random.Generator, nu: float
) -> np.ndarray:
    # Student factors sqrt(nu / chi^2_nu): nu degrees of freedom instead of 2 nu.
    from favor.sampling import draw_projection

    w = draw_projection(projection, m, d, rng=rng)
    return w * np.sqrt(nu / rng.chisquare(nu, size=m))[:, None]


def _oprf_a_over_8() -> None:
    # A* with denominator 8 instead of 16 (the slip of a secondary summary; formulas §7).
    import favor.gerf as gerf

    def oprf_a(rho: Any) -> np.ndarray:
        rho = np.maximum(np.asarray(rho, dtype=np.float64), 0.0)
        return (1 - 2 * rho - np.sqrt((2 * rho + 1) ** 2 + 8 * rho)) / 8

    patch(gerf, "oprf_a", oprf_a)


def _saderf_psi_on_keys() -> None:
    # SADERF attention rescales the keys by Psi (like the queries) instead of Psi^-1: the
    # attention hook's key projection Psi^-1 w becomes Psi w, its key norm weights
    # psi^-2 become psi^2.
    from favor import registry

    spec = registry.FEATURE_MAPS["saderf"]
    original = spec.attention_prepare()

    def prepare(*args: Any) -> tuple[Any, ...]:
        w_queries, w_keys, index, params, norm_weights = original(*args)
        if norm_weights.size == 0:  # no Psi (oprf)
            return w_queries, w_keys, index, params, norm_weights
        return w_queries, w_queries, index, params, 1.0 / norm_weights

    enter(registry.register_feature_map(dataclasses.replace(spec, prepare=prepare), replace=True))


def _hybrid_weight_on_trig() -> None:
    # The angular weight theta/pi multiplies the trigonometric estimate, not the hyperbolic.
    import favor.hybrid as hybrid

    original = hybrid._hybrid

    def assemble(x: np.ndarray, w: np.ndarray, w2: np.ndarray, is_query: bool) -> np.ndarray:
        phi = original(x, w, w2, is_query)
        if not is_query:
            return phi
        # Query blocks (a_Q (x) h, b (x) t) -> (b (x) h, a_Q (x) t): negate the sign tails.
        k = w2.shape[0] + 1
        blocks = phi.reshape(*phi.shape[:-1], 2, k, -1).copy()
        blocks[..., 1:, :] *= -1
        return blocks.reshape(phi.shape)

    patch(hybrid, "_hybrid", assemble)


def _scale(name: str) -> Callable[[], None]:
    def apply() -> None:
        _hooks()._sampler_scale(name)()

    return apply


#: (name, description, apply, caught_by) rows appended to theory.mutations' catalogue.
ESTIMATOR_CATALOGUE: list[tuple[str, str, Callable[[], None], tuple[str, ...]]] = [
    ("qmc-unscrambled", "the qmc sampler returns unscrambled Sobol points (not randomised)",
     _coupling("qmc", _qmc_unscrambled), ("S3", "K1", "K7")),
    ("qmc-fixed-seed", "the qmc sampler scrambles from a constant seed, ignoring rng",
     _coupling("qmc", _qmc_fixed_seed), ("S3", "K1", "K7")),
    ("qmc-scale-1%", "the qmc sampler's rows are 1% too long", _scale("qmc"), ("S3",)),
    ("simplex-unrotated", "simplex blocks without their Haar rotation",
     _coupling("simplex", _simplex(rotate=False)), ("S4", "K2", "K8", "W3")),
    ("simplex-fixed-norms", "simplex rows get length sqrt(d) instead of chi norms",
     _coupling("simplex", _simplex(norms="fixed")), ("S4", "K2", "K8", "W3")),
    ("simplex-scale-1%", "the simplex sampler's rows are 1% too long", _scale("simplex"), ("S4",)),
    ("simplex+-unrotated", "simplex+ blocks without their Haar rotation",
     _coupling("simplex+", _simplex(rotate=False, norm_dependent=True)), ("S5", "K9")),
    ("simplex+-scale-1%", "the simplex+ sampler's rows are 1% too long", _scale("simplex+"), ("S5",)),
    ("structured-unsigned", "the structured (SORF) sampler without its random sign diagonals",
     _coupling("structured", _structured_unsigned), ("W4", "W6")),
    ("laplacian-gaussian-rows", "Laplacian-kernel rows drawn Gaussian instead of Cauchy",
     _spectral("laplacian", _laplacian_gaussian), ("K3", "K4", "W1")),
    ("matern-student-nu-dof", "Matern Student factors with nu instead of 2 nu degrees of freedom",
     _spectral("matern", _matern_nu_dof), ("K5", "K6", "K7", "K8", "W2")),
    ("oprf-a-over-8", "oprf's A* with denominator 8 instead of 16", _oprf_a_over_8, ("E9", "G3", "G4")),
    ("saderf-psi-on-keys", "saderf attention rescales keys by Psi instead of Psi^-1",
     _saderf_psi_on_keys, ("E13",)),
    ("hybrid-weight-on-trig", "hybrid features put the angular weight theta/pi on the "
     "trigonometric estimate instead of the hyperbolic one", _hybrid_weight_on_trig, ("E13", "H1", "H2")),
]  # fmt: skip
