r"""theory: closed forms, seeded Monte Carlo and statistical checks of favor's claims.

Part of the favor distribution. It uses only favor's public API (``favor``,
``favor.sampling``, ``favor.features``, ``favor.favor_attention``), so every claim is
checked against what users call; :mod:`theory.closed_forms` imports nothing from favor,
so the oracle cannot inherit a bug from the code under test. ``python -m theory`` runs
every claim (``--quick`` by default, ``--full`` for paper scale, ``--out DIR`` for
``report.md`` and figures) and exits non-zero if any fails.

Every check returns a :class:`~theory.results.ClaimCheck` (estimate, interval, alpha,
n_trials, seed, passed, statistic) and never asserts. Each decides at a declared
false-alarm rate of at most :math:`10^{-6}` (:mod:`theory._stats`), has a fixed root seed
(:mod:`theory.registry`), and has at least one negative control -- the same check fed a
broken sampler, feature map or attention (:mod:`theory.controls`) -- that must fail.

Claims table
------------
Check functions live in the module named; tests are
``tests/theory/test_claims.py::test_claim_passes_with_its_fixed_seed[<id>]`` and
``tests/theory/test_negative_controls.py::test_negative_control_fails[<id>-<control>]``.
References: Performers = Choromanski et al., ICLR 2021, arXiv:2009.14794v4; "formulas §N" =
the formula reference in ``docs/formulas.md`` (sections and bracketed ids).

====  ==========================================================  ==========================================  =====================================================  ==========================
id    statement (assumptions)                                     source                                      check                                                  negative control(s)
====  ==========================================================  ==========================================  =====================================================  ==========================
E1    positive: features + every float64 attention path           Performers Eq. 4; formulas §1.3, §2.3       engine_paths.check_feature_map_paths                   engine epsilon 1e-4
E2    the same, hyperbolic features                               formulas §1.3, §2.3 (exact)                 engine_paths.check_feature_map_paths                   engine epsilon 1e-4
E3    the same, trigonometric features                            formulas §1.3, §2.2 (exact)                 engine_paths.check_feature_map_paths                   engine epsilon 1e-4
E4    the same, ReLU features                                     formulas §1.3, §5 (exact)                   engine_paths.check_feature_map_paths                   engine epsilon 1e-4
E5    float32 paths within 1.2e-5 of the float64 oracle           formulas §1.3 (stated float32 bound)        engine_paths.check_float32_paths                       engine epsilon 1e-4
E6    projections drawn by name = draw_projection's               design contract (exact)                     engine_paths.check_default_projection                  default iid
E7    decoding step by step = causal attention                    formulas §1.3 [A2] (exact)                  engine_paths.check_decoding                            decoding epsilon
E8    torch backend = collapsed form (if installed)               formulas §1.3 (exact)                       engine_paths.check_torch_backend                       torch ignores masks
E9    FavorSampler = collapsed form of its convention             formulas §2.2-2.4, §6.3 (exact)             transformer_paths.check_transformer_paths              rbf scale; wrong A*
E10   exact kernels and softmax attention = formulas              formulas §1.1-1.2, §5 (exact)               transformer_paths.check_exact_references               rbf gamma/2; 1/sqrt(d)
E11   causal outputs bit-exact under any later change             formulas §1.3 [A2] (exact)                  causality.check_causal_future_independence             global stabiliser
E12   Dask backend = collapsed form / in-memory sampler           formulas §1.3 (exact)                       dask_paths.check_dask_backend                          Dask ignores masks
E13   oprf/saderf/hybrid attention = collapsed form               formulas §6.3-6.5, §1.3 (exact)             engine_maps.check_parametrised_map_paths               Psi on keys; trig weight
S1    iid rows marginally N(0, I) at every position               formulas §3.1                               sampler_moments.check_sampler_marginals                rows x 1.01
S2    orthogonal rows N(0, I) incl. the partial block             Performers Sec. 2.4; formulas §3.1          sampler_moments.check_sampler_marginals                x 1.01; QR; partial
S3    qmc rows N(0, I) at every position                          formulas §6.7                               sampler_moments.check_sampler_marginals                rows x 1.01
S4    simplex rows N(0, I); block cosines -1/(d-1)                formulas §6.2                               sampler_moments.check_sampler_marginals                x 1.01; orthogonal blocks
S5    simplex+ rows N(0, I) at every position                     formulas §6.2                               sampler_moments.check_sampler_marginals                rows x 1.01
R1    estimate_attention_error = measured error                   Performers Lemma 2; formulas §2.4           error_prediction.check_error_prediction                estimate x 2
U1    positive x iid unbiased for SM (d=4, m=8, 3 pairs)          Performers Lemma 1; formulas §2.3           unbiasedness.check_unbiased                            features x 1.05
U2    positive x iid unbiased for the Gaussian kernel             Lemma 1 + formulas §1.1                     unbiasedness.check_unbiased                            features x 1.05
U3    positive x orthogonal (chi norms) unbiased for SM           Performers Sec. 2.4; formulas §3.1          unbiasedness.check_unbiased                            QR w/o sign fix; fixed norms
U4    positive x orthogonal unbiased for the Gaussian kernel      formulas §3.1                               unbiasedness.check_unbiased                            QR w/o sign fix; fixed norms
U5    hyperbolic x iid unbiased for SM                            Performers Sec. 2.3                         unbiasedness.check_unbiased                            features x 1.05
U6    hyperbolic x iid unbiased for the Gaussian kernel           Performers Sec. 2.3                         unbiasedness.check_unbiased                            features x 1.05
U7    hyperbolic x orthogonal unbiased for SM                     formulas §3.1                               unbiasedness.check_unbiased                            fixed norms
U8    hyperbolic x orthogonal unbiased for the Gaussian kernel    formulas §3.1                               unbiasedness.check_unbiased                            fixed norms
U9    trigonometric x iid unbiased for SM                         Performers Sec. 2.3; formulas §2.2          unbiasedness.check_unbiased                            features x 1.05
U10   trigonometric x iid unbiased for the Gaussian kernel        Rahimi & Recht 2007                         unbiasedness.check_unbiased                            features x 1.05
U11   trigonometric x orthogonal unbiased for SM                  Yu et al. 2016; formulas §3.3               unbiasedness.check_unbiased                            fixed norms (Bessel-J)
U12   trigonometric x orthogonal unbiased, Gaussian kernel        Yu et al. 2016; formulas §3.3               unbiasedness.check_unbiased                            fixed norms (Bessel-J)
U13   relu x iid unbiased for the arc-cosine kernel               Cho & Saul 2009; formulas §5 [K1-mean]      unbiasedness.check_unbiased                            features x 1.05
U14   relu x orthogonal unbiased for the arc-cosine kernel        formulas §5                                 unbiasedness.check_unbiased                            QR w/o sign fix (*)
V1    trigonometric iid MSE = Lemma 2                             Performers Lemma 2, Eq. 8                   variance.check_mse                                     features x 1.05
V2    positive iid MSE = Lemma 2                                  Performers Lemma 2, Eq. 8                   variance.check_mse                                     features x 1.05
V3    hyperbolic iid MSE = Lemma 2                                Performers Lemma 2, Eq. 8                   variance.check_mse                                     features x 1.05
V4    relu iid MSE = derived arc-cosine variance                  formulas §5 [K1-var]                        variance.check_mse                                     features x 1.05
V5    positive orthogonal MSE = exact pair-covariance quadrature  formulas §3.2 [C1-mse]                      variance.check_mse                                     QR w/o sign fix
V6    trig orthogonal MSE (Gaussian) = exact quadrature           formulas §3.2-3.3 [C5-var]                  variance.check_mse                                     fixed norms
P1    where SM is small, MSE+ / MSEtrig is tiny, = Lemma 2 ratio  Performers Lemma 2, Sec. 3                  variance.check_positive_beats_trigonometric            positive x 1.05
P2    MSE_hyp(m) = (1-e^{-\|z\|^2})/2 MSE_+(m) < MSE_+(2m)        Performers Lemma 2 [B-hyp<pos2m]            variance.check_hyperbolic_vs_positive                  hyperbolic x 1.05
O1    one block: MSE = quadrature <= Thm 2 bound < iid MSE        Performers Theorem 2, Eq. 10                orthogonality.check_theorem2                           iid rows; features x 1.05
O2    Thm 2 pair form exact on a grid + sampler pair moment       Performers Thm 2/6; formulas §3.2 [C2]      orthogonality.check_theorem2_exact                     cosine 0.3; iid; QR
O3    fixed sqrt(d)-norm rows estimate SMREG, not SM              Performers Thm 1; formulas §2.5             orthogonality.check_fixed_norms_estimate_smreg         chi norms
C1    sup error over a point set decays like m^{-1/2}             Performers Thm 4; formulas §4.2 [L1]        uniform_convergence.check_sup_error_rate               fixed norms; features x 1.05
C2    (info) P[sup error >= delta] vs Rahimi-Recht bound          Rahimi & Recht 2007 (from memory)           uniform_convergence.check_failure_frequency            none (informational)
A1    normalised attention MSE = 2nd-order expansion in 1/m       Performers Eq. 4; formulas §1.3             attention_error.check_attention_mse                    fixed norms
A2    normalised attention bias = 2nd-order expansion in 1/m      Performers Sec. 2.2; formulas §1.3 [A6]     attention_error.check_attention_bias                   engine epsilon 1e-4
====  ==========================================================  ==========================================  =====================================================  ==========================

The S claims are generated from ``favor.registry.SAMPLERS`` (one per sampler documented
as marginally N(0, I_d); :func:`theory.registry.sampler_claims`): a registered sampler
gets its claim without other edits.

(*) Fixed norms do *not* bias ReLU features: the arc-cosine kernel is homogeneous of
degree 2 in :math:`\omega` and :math:`E\lVert\omega\rVert^2 = d` for both norm laws, so
only a direction defect (the QR sign) can break U14.

Public API
----------
Checks: :func:`check_unbiased`, :func:`check_mse`,
:func:`check_positive_beats_trigonometric`, :func:`check_hyperbolic_vs_positive`,
:func:`check_theorem2`, :func:`check_theorem2_exact`,
:func:`check_fixed_norms_estimate_smreg`, :func:`check_sup_error_rate`,
:func:`check_failure_frequency`, :func:`check_attention_mse`,
:func:`check_attention_bias`; registry: :data:`CLAIMS`, :func:`run_claim`; records:
:class:`ClaimCheck`, :class:`MonteCarloSummary`; modules :mod:`theory.closed_forms`,
:mod:`theory.montecarlo`, :mod:`theory.controls`, :mod:`theory.figures`,
:mod:`theory.report`.
"""

from __future__ import annotations

from theory.attention_error import check_attention_bias, check_attention_mse
from theory.mutations import apply_from_environment as _apply_mutation_from_environment
from theory.orthogonality import (
    check_fixed_norms_estimate_smreg,
    check_theorem2,
    check_theorem2_exact,
)
from theory.registry import CLAIMS, run_claim
from theory.results import ClaimCheck, MonteCarloSummary
from theory.unbiasedness import check_unbiased
from theory.uniform_convergence import check_failure_frequency, check_sup_error_rate
from theory.variance import (
    check_hyperbolic_vs_positive,
    check_mse,
    check_positive_beats_trigonometric,
)

__all__ = [
    "CLAIMS",
    "ClaimCheck",
    "MonteCarloSummary",
    "check_attention_bias",
    "check_attention_mse",
    "check_failure_frequency",
    "check_fixed_norms_estimate_smreg",
    "check_hyperbolic_vs_positive",
    "check_mse",
    "check_positive_beats_trigonometric",
    "check_sup_error_rate",
    "check_theorem2",
    "check_theorem2_exact",
    "check_unbiased",
    "run_claim",
]

# The mutation-suite hook (theory.mutations): FAVOR_THEORY_MUTATION=<name> injects one
# plausible bug into favor before any claim runs.
_apply_mutation_from_environment()
