"""The claim registry: every claim's id, check, sizes per profile and negative controls.

:data:`CLAIMS` drives ``python -m theory`` (:mod:`theory.report`) and the tests
(``tests/theory``): each claim must pass with its fixed seed, and each of its negative
controls (the same check fed a broken sampler / feature map / attention, see
:mod:`theory.controls`) must fail.

Profiles: ``"quick"`` (default, about 20 s on 2 cores) uses the check defaults, sized by
formulas §8.2 for 5-sigma sensitivity to the controls; ``"full"`` multiplies trials by 10
(paper scale, a few minutes).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from theory import (
    attention_error,
    causality,
    dask_paths,
    engine_maps,
    engine_paths,
    error_prediction,
    gerf_claims,
    hybrid_mse,
    orthogonality,
    sampler_moments,
    transformer_paths,
    unbiasedness,
    uniform_convergence,
    variance,
)
from theory.controls import (
    fixed_norm_sampler,
    scaled_feature_map,
    unsigned_orthogonal_projection,
)
from theory.coupling_claims import claim_specs as coupling_claim_specs
from theory.orthogonal_forms import orthogonal_pair_covariance
from theory.results import ClaimCheck

__all__ = [
    "CLAIMS",
    "PROFILES",
    "ClaimSpec",
    "current_claims",
    "get_claim",
    "run_claim",
    "sampler_claims",
]

PROFILES = ("quick", "full")


@dataclass(frozen=True)
class ClaimSpec:
    """One claim.

    Attributes
    ----------
    claim_id : str
        Short id (``U3``).
    statement : str
        One sentence with its assumptions.
    check : callable
        ``check(**kwargs) -> ClaimCheck``.
    kwargs : dict
        Fixed arguments (what is claimed: map, sampler, kernel).
    full : dict
        Overrides for the ``"full"`` profile.
    controls : dict
        Negative controls: label -> extra kwargs (callables building them lazily). The
        key ``"mutation"`` names a :data:`theory.mutations.MUTATIONS` entry applied to
        ``favor`` while the check runs (the engine itself with a bug).
    informational : bool
        A reported bound, not a verdict (no negative control; never fails the run).
    single_threaded_blas : bool
        Run the check with BLAS limited to one thread (default). Monte Carlo checks make
        many small BLAS calls, for which waking and synchronising BLAS threads costs more
        than the product itself (by orders of magnitude when the cores are shared); the
        engine-path claims of the NumPy engine (E1-E7, E13) keep the caller's settings, so that
        the engine's own thread policy (Numba threads bounded by the BLAS limit) is what
        they exercise.
    """

    claim_id: str
    statement: str
    check: Callable[..., ClaimCheck]
    kwargs: dict[str, Any] = field(default_factory=dict)
    full: dict[str, Any] = field(default_factory=dict)
    controls: dict[str, Callable[[], dict[str, Any]]] = field(default_factory=dict)
    informational: bool = False
    single_threaded_blas: bool = True


def _scaled(name: str, key: str = "features") -> Callable[[], dict[str, Any]]:
    return lambda: {key: scaled_feature_map(name)}


def _fixed(base: str = "orthogonal") -> Callable[[], dict[str, Any]]:
    return lambda: {"sampler": fixed_norm_sampler(base)}


def _unsigned() -> dict[str, Any]:
    return {"sampler": unsigned_orthogonal_projection}


def _unbiased_specs() -> list[ClaimSpec]:
    specs = []
    i = 0
    for fmap in ("positive", "hyperbolic", "trigonometric", "relu"):
        kernels = ("arccos",) if fmap == "relu" else ("softmax", "rbf")
        for proj in ("iid", "orthogonal"):
            for kernel in kernels:
                i += 1
                if proj == "iid":
                    controls = {"features x 1.05": _scaled(fmap)}
                elif fmap in ("positive", "relu"):
                    controls = {"QR without sign fix": _unsigned}
                    if fmap == "positive":
                        controls["fixed sqrt(d) norms"] = _fixed()
                else:
                    controls = {"fixed sqrt(d) norms": _fixed()}
                specs.append(
                    ClaimSpec(
                        f"U{i}",
                        f"{fmap} features with {proj} chi-norm projections are unbiased for the "
                        f"{kernel} kernel",
                        unbiasedness.check_unbiased,
                        {
                            "feature_map": fmap,
                            "projection": proj,
                            "kernel": kernel,
                            "seed": 100 + i,
                            # ReLU features have a 10x larger relative variance.
                            **({"n_trials": 200_000} if fmap == "relu" else {}),
                        },
                        {"n_trials": 200_000},
                        controls,
                    )
                )
    return specs


def _mse_specs() -> list[ClaimSpec]:
    cases = [
        ("trigonometric", "iid", "softmax", {"features x 1.05": _scaled("trigonometric")}),
        ("positive", "iid", "softmax", {"features x 1.05": _scaled("positive")}),
        ("hyperbolic", "iid", "softmax", {"features x 1.05": _scaled("hyperbolic")}),
        ("relu", "iid", "arccos", {"features x 1.05": _scaled("relu")}),
        ("positive", "orthogonal", "softmax", {"QR without sign fix": _unsigned}),
        ("trigonometric", "orthogonal", "rbf", {"fixed sqrt(d) norms": _fixed()}),
    ]
    return [
        ClaimSpec(
            f"V{i}",
            f"the MSE of {fmap} features with {proj} projections ({kernel} kernel) equals its "
            + ("Lemma 2 closed form" if proj == "iid" else "exact quadrature value"),
            variance.check_mse,
            {
                "feature_map": fmap,
                "projection": proj,
                "kernel": kernel,
                "seed": 200 + i,
                "n_trials": 100_000,
            },
            {"n_trials": 1_000_000},
            controls,
        )
        for i, (fmap, proj, kernel, controls) in enumerate(cases, start=1)
    ]


def _mutation(name: str) -> Callable[[], dict[str, Any]]:
    return lambda: {"mutation": name}


def _scaled_sampler(name: str, factor: float = 1.01) -> Callable[[], dict[str, Any]]:
    def build() -> dict[str, Any]:
        from theory.montecarlo import resolve_sampler

        base = resolve_sampler(name)

        def scaled(n_components: int, n_features: int, *, rng: Any = None) -> Any:
            return factor * base(n_components, n_features, rng=rng)

        return {"sampler": scaled}

    return build


def _engine_specs() -> list[ClaimSpec]:
    specs = [
        ClaimSpec(
            f"E{i}",
            f"{fmap} features: the feature function and every float64 attention path "
            "(bidirectional, causal, masked, chunked, per head; m not a multiple of d) equal "
            "the collapsed-form FAVOR estimator",
            engine_paths.check_feature_map_paths,
            {"feature_map": fmap},
            controls={"engine feature epsilon 1e-4": _mutation("feature-epsilon-1e-4")},
            single_threaded_blas=False,
        )
        for i, fmap in enumerate(("positive", "hyperbolic", "trigonometric", "relu"), start=1)
    ]
    specs += [
        ClaimSpec(
            "E5",
            "float32 inputs give float32 outputs within 1.2e-5 (relative) of the float64 "
            "collapsed form, every map, bidirectional and causal-masked",
            engine_paths.check_float32_paths,
            controls={"engine feature epsilon 1e-4": _mutation("feature-epsilon-1e-4")},
            single_threaded_blas=False,
        ),
        ClaimSpec(
            "E6",
            "projections drawn inside the engine (default, by name, per head, decoding "
            "state) are favor.sampling.draw_projection's from the same seed",
            engine_paths.check_default_projection,
            controls={"default projection i.i.d.": _mutation("default-projection-iid")},
            single_threaded_blas=False,
        ),
        ClaimSpec(
            "E7",
            "token-by-token decoding equals causal attention (every map, padding, per head)",
            engine_paths.check_decoding,
            controls={"decoding feature epsilon": _mutation("decoding-feature-epsilon")},
            single_threaded_blas=False,
        ),
        ClaimSpec(
            "E8",
            "the torch backend equals the collapsed form (float64 to 1e-10, float32 to "
            "1.2e-5; every map, causal, masked), when PyTorch is installed",
            engine_paths.check_torch_backend,
            controls={"torch ignores masks": _mutation("torch-mask-ignored")},
        ),
        ClaimSpec(
            "E9",
            "FavorSampler (the scikit-learn transformer) equals the collapsed form of its "
            "documented kernel convention: every kernel, map (oprf with its fitted A*) and "
            "coupling, given and 'scale' gamma",
            transformer_paths.check_transformer_paths,
            controls={
                "rbf input scale sqrt(gamma)": _mutation("transformer-rbf-scale"),
                "oprf A* from the wrong formula": _mutation("transformer-oprf-wrong-a"),
            },
        ),
        ClaimSpec(
            "E10",
            "exact references (rbf, softmax, arc-cosine, Laplacian, Matern kernels; softmax "
            "attention, causal and masked) equal their formulas",
            transformer_paths.check_exact_references,
            controls={
                "rbf kernel exp(-gamma |x-y|^2 / 2)": _mutation("exact-rbf-half-gamma"),
                "softmax attention without 1/sqrt(d)": _mutation("exact-attention-temperature"),
            },
        ),
        ClaimSpec(
            "E11",
            "causal outputs at positions <= t are bit-identical whatever comes after t "
            "(every map, float32 and float64, chunked, masked, torch)",
            causality.check_causal_future_independence,
            controls={"global causal stabiliser": _mutation("causal-global-stabiliser")},
        ),
        ClaimSpec(
            "E12",
            "the Dask backend equals the collapsed form (attention in several chunks, every "
            "map it offers, causal, masked) and the in-memory FavorSampler, when Dask is "
            "installed",
            dask_paths.check_dask_backend,
            controls={"Dask ignores masks": _mutation("dask-mask-ignored")},
        ),
        ClaimSpec(
            "E13",
            "oprf, saderf and hybrid attention (bidirectional, causal, masked, per head; GERF "
            "parameters given or fitted by the engine) and the hybrid feature function equal "
            "the collapsed-form estimator at the maps' parameters",
            engine_maps.check_parametrised_map_paths,
            controls={
                "saderf keys rescaled by Psi": _mutation("saderf-psi-on-keys"),
                "hybrid weight on the trigonometric estimate": _mutation("hybrid-weight-on-trig"),
            },
            single_threaded_blas=False,
        ),
    ]
    return specs


#: Sizes of the generated S claims (default 4000 trials): a Sobol engine costs ~7 ms per
#: draw, a simplex block ~1 ms, a norm-dependent simplex block ~2 ms. The row scale is
#: resolved by the separate test below, so the per-position battery can stay small.
_S_TRIALS = {"qmc": 250, "simplex": 2000, "simplex+": 600}
#: Shape and draws of each S claim's row-scale test (default (64, 64) x 200: about 8e5
#: coordinates, so a 1% row scale gives |t| ~ 13), sized by each sampler's cost per
#: coordinate (a Sobol engine is cheapest at small d, SimRF+ sweeps at d ~ 32).
_S_SCALE = {"qmc": ((1024, 8), 60), "simplex+": ((128, 32), 100)}


def _other_geometry(cosine: float) -> dict[str, Any]:
    # Orthogonal blocks checked against another block geometry's cosine.
    from theory.montecarlo import resolve_sampler

    return {"sampler": resolve_sampler("orthogonal"), "block_cosine": cosine}


def sampler_claims() -> list[ClaimSpec]:
    """The S claims, generated from ``favor.registry.SAMPLERS`` as it is now.

    One claim per registered sampler whose documented marginal law is N(0, I_d)
    (:func:`theory.sampler_moments.gaussian_samplers`; ``S1`` = iid, ``S2`` = orthogonal,
    then registration order), each with the negative control "rows x 1.01"; the
    orthogonal sampler also with an unsigned QR and a partial block with fixed norms, the
    samplers with an exact block geometry with rows of another geometry.

    Returns
    -------
    list of ClaimSpec
        The S claims.
    """
    import favor.registry
    from theory.sampler_moments import BLOCK_COSINES, gaussian_samplers

    specs = []
    for i, name in enumerate(gaussian_samplers(), start=1):
        entry = favor.registry.SAMPLERS[name]
        controls: dict[str, Callable[[], dict[str, Any]]] = {"rows x 1.01": _scaled_sampler(name)}
        if name == "orthogonal":
            controls["QR without sign fix"] = _unsigned
            controls["partial block with fixed norms"] = _mutation("partial-block-fixed-norms")
        elif name in BLOCK_COSINES:
            controls["orthogonal blocks"] = partial(_other_geometry, BLOCK_COSINES[name](8))
        geometry = (
            f"; block direction cosines {BLOCK_COSINES[name](8):.3g}"
            if name in BLOCK_COSINES
            else ""
        )
        trials = _S_TRIALS.get(name, 4000)
        specs.append(
            ClaimSpec(
                f"S{i}",
                f"{name} projections ({entry.coupling.split(';')[0]}): every row position, "
                f"including a partial last block, is marginally N(0, I_d){geometry} "
                "(m = 20, d = 8)",
                sampler_moments.check_sampler_marginals,
                {
                    "sampler": name,
                    "seed": 1000 + i,
                    "n_trials": trials,
                    "scale_shape": _S_SCALE.get(name, ((64, 64), 200))[0],
                    "scale_trials": _S_SCALE.get(name, ((64, 64), 200))[1],
                },
                {"n_trials": 10 * trials},
                controls,
            )
        )
    return specs


CLAIMS: tuple[ClaimSpec, ...] = (
    *_engine_specs(),
    *sampler_claims(),
    ClaimSpec(
        "R1",
        "favor.estimate_attention_error equals the measured relative RMS error of the FAVOR "
        "normaliser (i.i.d. projections; 10 regimes: maps incl. oprf/saderf, scales, causal, masked)",
        error_prediction.check_error_prediction,
        full={"n_trials": 20_000},
        controls={"estimate x 2": _mutation("error-estimate-x2")},
    ),
    *_unbiased_specs(),
    *_mse_specs(),
    ClaimSpec(
        "P1",
        "where SM(x, y) is small, the positive MSE is far below the trigonometric one, "
        "with the Lemma 2 ratio",
        variance.check_positive_beats_trigonometric,
        full={"n_trials": 200_000},
        controls={"positive features x 1.05": _scaled("positive", "positive")},
    ),
    ClaimSpec(
        "P2",
        "MSE_hyp(m) = (1 - exp(-|z|^2))/2 MSE_+(m) < MSE_+(2m) on shared projections",
        variance.check_hyperbolic_vs_positive,
        full={"n_trials": 200_000},
        controls={"hyperbolic features x 1.05": _scaled("hyperbolic", "hyperbolic")},
    ),
    ClaimSpec(
        "O1",
        "one orthogonal chi-norm block (m <= d): the positive-feature MSE equals the exact "
        "quadrature value (two-sided), which is below the Theorem 2 bound, below the iid MSE",
        orthogonality.check_theorem2,
        full={"n_trials": 300_000},
        controls={"iid rows": lambda: {"sampler": "iid"}, "features x 1.05": _scaled("positive")},
    ),
    ClaimSpec(
        "O2",
        "Theorem 2 in pair form, Cov(Y1, Y2) <= -2/(d+2) Lambda^2 (e^{|z|^2/2} - 1)^2, "
        "holds exactly on a (d, |z|) grid, and favor's orthogonal sampler has the pair "
        "moment the quadrature gives",
        orthogonality.check_theorem2_exact,
        full={
            "dims": (3, 4, 6, 8, 16, 32, 64, 128),
            "z_norms": tuple(0.05 * k for k in range(1, 61)),
            "n_trials": 200_000,
        },
        controls={
            "directions at cosine 0.3": lambda: {
                "covariance": partial(orthogonal_pair_covariance, cosine=0.3)
            },
            "iid rows": lambda: {"sampler": "iid"},
            "QR without sign fix": _unsigned,
        },
    ),
    ClaimSpec(
        "O3",
        "fixed sqrt(d)-norm orthogonal rows make positive features estimate SMREG, not SM",
        orthogonality.check_fixed_norms_estimate_smreg,
        full={"n_trials": 200_000},
        controls={"chi norms": lambda: {"sampler": "orthogonal"}},
    ),
    ClaimSpec(
        "C1",
        "the sup error of orthogonal trigonometric Gaussian-kernel estimates over a point set "
        "decays like m^-1/2",
        uniform_convergence.check_sup_error_rate,
        full={"n_trials": 1000, "components": (16, 32, 64, 128, 256, 512, 1024, 2048)},
        controls={"fixed sqrt(d) norms": _fixed(), "features x 1.05": _scaled("trigonometric")},
    ),
    ClaimSpec(
        "C2",
        "(informational) P[sup |K_hat - K| >= delta] against the evaluated Rahimi-Recht "
        "bound (constants quoted from memory); too loose to be a verdict",
        uniform_convergence.check_failure_frequency,
        full={"n_trials": 2000},
        informational=True,
    ),
    ClaimSpec(
        "A1",
        "the MSE of the normalised FAVOR+ attention matrix equals its expansion to second "
        "order in 1/m, within the last term kept (m = 256, L = 16; --full: L = 16, 64, 128)",
        attention_error.check_attention_mse,
        # L = 16 is the best-resolved case (1.2%); L = 64 costs 4x more and resolves 1.4%.
        {"tokens": (16,)},
        {"n_trials": 10_000, "tokens": (16, 64, 128)},
        controls={"fixed sqrt(d) norms": _fixed("iid")},
    ),
    ClaimSpec(
        "A2",
        "the bias of the normalised FAVOR+ output equals its expansion to second order in "
        "1/m, within the last term kept (m = 128, L = 16)",
        attention_error.check_attention_bias,
        full={"n_trials": 40_000},
        controls={"engine feature epsilon 1e-4": _mutation("feature-epsilon-1e-4")},
    ),
)


def _psi_on_both_sides() -> dict[str, Any]:
    return {"key_psi_power": 1.0}


def _wrong_a() -> dict[str, Any]:
    return {"a_function": gerf_claims.secondary_source_a}


#: Claims for the maps beyond FAVOR+ (FAVOR++ / SADERF / hybrid; formulas §6.3-6.5).
GERF_CLAIMS: tuple[ClaimSpec, ...] = (
    ClaimSpec(
        "G1",
        "oprf features (GERF at the fitted A*) with orthogonal chi-norm rows are unbiased "
        "for the softmax kernel",
        gerf_claims.check_gerf_unbiased,
        {"projection": "orthogonal"},
        {"n_trials": 400_000},
        {"fixed sqrt(d) norms": _fixed()},
    ),
    ClaimSpec(
        "G2",
        "saderf (queries by Psi, keys by Psi^-1, then GERF) is unbiased for exp(x.y)",
        gerf_claims.check_gerf_unbiased,
        {"projection": "iid", "rescale": "saderf", "seed": 1306},
        {"n_trials": 400_000},
        {"Psi on both sides": _psi_on_both_sides},
    ),
    ClaimSpec(
        "G3",
        "favor's A*(rho) = (1 - 2 rho - sqrt((2 rho + 1)^2 + 8 rho))/16 is the exact "
        "minimiser of the GERF variance on a (d, rho) grid",
        gerf_claims.check_oprf_optimal_a,
        controls={"secondary-source A* (1/8, rho = |x+y|^2)": _wrong_a},
    ),
    ClaimSpec(
        "G4",
        "the MSE of FAVOR++ (oprf features, one orthogonal block) equals "
        "Var_1(A*)/m + ((m-1)/m) Cov_ORF",
        gerf_claims.check_favorpp_mse,
        full={"n_trials": 600_000},
        controls={"secondary-source A* (1/8, rho = |x+y|^2)": _wrong_a},
    ),
    ClaimSpec(
        "G5",
        "in oprf attention E[numerator]/E[normaliser] is exact softmax attention "
        "(softmax-kernel constants cancel)",
        gerf_claims.check_attention_ratio_of_means,
        full={"n_trials": 600_000},
        controls={
            "Gaussian-kernel constant": lambda: {"features": gerf_claims.gaussian_constant_features}
        },
    ),
    ClaimSpec(
        "H1",
        "angular hybrid features (sign-estimated weight on the hyperbolic estimate) are "
        "unbiased with the derived MSE",
        hybrid_mse.check_hybrid_mse,
        full={"n_trials": 100_000},
        controls={
            "weight on the trigonometric estimate": lambda: {
                "features": gerf_claims.hybrid_trig_weighted
            }
        },
    ),
    ClaimSpec(
        "H2",
        "for equal norms the hybrid estimate is exact at theta = 0 and theta = pi",
        gerf_claims.check_hybrid_exact_ends,
        controls={
            "weight on the trigonometric estimate": lambda: {
                "features": gerf_claims.hybrid_trig_weighted
            }
        },
    ),
)

CLAIMS = (*CLAIMS, *GERF_CLAIMS)
CLAIMS = (*CLAIMS, *coupling_claim_specs(ClaimSpec))


def current_claims() -> tuple[ClaimSpec, ...]:
    """:data:`CLAIMS` with the S claims regenerated from ``favor.registry.SAMPLERS`` now.

    A sampler registered after :mod:`theory` was imported (``favor.registry.
    register_sampler``) gets its S claim here; ``python -m theory`` and :func:`get_claim`
    use this table.

    Returns
    -------
    tuple of ClaimSpec
        The claims, S claims in place.
    """
    generated = sampler_claims()
    out: list[ClaimSpec] = []
    for spec in CLAIMS:
        if spec.check is sampler_moments.check_sampler_marginals:
            out.extend(generated)
            generated = []
        else:
            out.append(spec)
    return tuple(out)


def get_claim(claim_id: str) -> ClaimSpec:
    """Return the claim with this id.

    Parameters
    ----------
    claim_id : str
        E.g. ``"U3"``.

    Returns
    -------
    ClaimSpec
        The claim.
    """
    table = current_claims()
    for spec in table:
        if spec.claim_id == claim_id:
            return spec
    raise ValueError(f"claim_id must be one of {[s.claim_id for s in table]}, got {claim_id!r}")


def run_claim(
    spec: ClaimSpec | str,
    *,
    profile: str = "quick",
    control: str | None = None,
    seed: int | None = None,
) -> ClaimCheck:
    """Run one claim's check (optionally with one of its negative controls).

    Parameters
    ----------
    spec : ClaimSpec or str
        The claim or its id.
    profile : {"quick", "full"}, default="quick"
        Sizes.
    control : str, optional
        A key of ``spec.controls``: run the broken variant instead.
    seed : int, optional
        Another root seed (for false-alarm tests over seeds); default: the claim's own.

    Returns
    -------
    ClaimCheck
        The evidence, named ``"<id> <title>"`` (``"<id>[control] ..."`` for a control).
    """
    if isinstance(spec, str):
        spec = get_claim(spec)
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    kwargs = dict(spec.kwargs)
    if profile == "full":
        kwargs.update(spec.full)
    if seed is not None:
        kwargs["seed"] = int(seed)
    label = spec.claim_id
    mutation = None
    if control is not None:
        if control not in spec.controls:
            raise ValueError(f"control must be one of {sorted(spec.controls)}, got {control!r}")
        extra = dict(spec.controls[control]())
        mutation = extra.pop("mutation", None)
        kwargs.update(extra)
        label = f"{spec.claim_id}[{control}]"
    with ExitStack() as stack:
        if spec.single_threaded_blas:
            from threadpoolctl import threadpool_limits

            stack.enter_context(threadpool_limits(limits=1, user_api="blas"))
        if mutation is not None:
            from theory.mutations import mutated

            stack.enter_context(mutated(mutation))
        result = spec.check(**kwargs)
    from dataclasses import replace

    return replace(result, name=f"{label} {result.name}")
