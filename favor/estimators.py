r"""A scikit-learn transformer for random-feature kernel approximation.

:class:`FavorSampler` maps data :math:`X \in \mathbb R^{n \times d}` to random features
:math:`Z = \varphi(X) \in \mathbb R^{n \times r}` such that :math:`Z Z^T` is an unbiased
estimate of a kernel matrix, so that a linear model on :math:`Z` (ridge regression, a
linear SVM, SGD) approximates the corresponding kernel machine at a cost linear in
:math:`n` (Rahimi & Recht 2007).

Two kernels are offered:

* ``kernel="rbf"``: the Gaussian kernel :math:`k(x, y) = \exp(-\gamma \lVert x - y\rVert^2)`,
  the same convention as :func:`sklearn.metrics.pairwise.rbf_kernel`,
  :class:`sklearn.kernel_approximation.RBFSampler` and :class:`sklearn.svm.SVC`;
* ``kernel="softmax"``: the softmax (exponential dot-product) kernel
  :math:`k(x, y) = \exp(\gamma\, x^T y)`, the kernel behind softmax attention.

Both are reduced to the unit-scale kernels of :mod:`favor.features` by rescaling the
inputs: with :math:`x' = \sqrt{2\gamma}\, x` the Gaussian kernel is
:math:`K_{gauss}(x', y') = \exp(-\lVert x' - y'\rVert^2 / 2)`, and with
:math:`x' = \sqrt{\gamma}\, x` the softmax kernel is :math:`\mathrm{SM}(x', y') =
\exp(x'^T y')` (formulas §1.1). The feature maps are those of the Performers paper
(formulas §2.2-2.4; Choromanski et al. 2021, Sec. 2.3, Lemma 1), applied to :math:`x'` with
projection rows :math:`\omega_1, \dots, \omega_m`:

=================  =============  =========================================================
``features``       output width   :math:`\varphi(x)` (Gaussian form; softmax form in brackets)
=================  =============  =========================================================
``trigonometric``  :math:`2m`     :math:`m^{-1/2}\,[e^{\lVert x'\rVert^2/2}]\,(\cos Wx', \sin Wx')`
``positive``       :math:`m`      :math:`m^{-1/2} \exp(Wx' - \lVert x'\rVert^2\ [/2])`
``hyperbolic``     :math:`2m`     :math:`(2m)^{-1/2} \exp(\pm Wx' - \lVert x'\rVert^2\ [/2])`
=================  =============  =========================================================

Every map is unbiased, :math:`E[\varphi(x)^T \varphi(y)] = k(x, y)`, as long as each row
:math:`\omega_i` is marginally :math:`\mathcal N(0, I_d)`. That holds for i.i.d. rows
and for orthogonal rows with independent :math:`\chi_d` lengths, drawn Haar-exactly
(QR with the sign correction; formulas §3.1, :func:`favor.sampling.orthogonal_projection`).
Orthogonal rows lower the variance (Yu et al. 2016; Performers Theorem 2), most where
kernel values are large (small scaled distances). Measured by
``benchmarks/kernel_approximation.py`` at equal output width :math:`D \in \{256, 1024,
4096\}` (median of 5 seeds), the orthogonal trigonometric map has this fraction of
``RBFSampler``'s relative Frobenius error of the Gaussian kernel matrix:

====================  ================================  ======================
data                  median-heuristic :math:`\gamma`   ``gamma="scale"``
====================  ================================  ======================
digits, standardised  0.54 - 0.60                       0.71 - 0.76
standard normal       0.50 - 0.52                       0.82
====================  ================================  ======================

Which map for which job (formulas §2.4, 6.6):

* Gaussian kernel: ``trigonometric`` (the default). The (cos, sin) pair has lower
  variance than ``RBFSampler``'s :math:`\sqrt 2 \cos(\omega^T x + b)` at the same output
  width (Sutherland & Schneider 2015; formulas §6.6 [I3]), and its features are bounded.
* Softmax kernel: ``hyperbolic`` (the default). Positive features keep every estimate
  positive and have small *relative* error where the kernel is tiny; at equal output
  width the hyperbolic pair has strictly smaller variance than the one-sided positive map
  (:math:`\mathrm{MSE}_{hyp}(m) / \mathrm{MSE}_+(2m) = 1 - e^{-\lVert x'+y'\rVert^2}`,
  formulas §2.4 [B-hyp<pos2m]) and it is even in every :math:`\omega_i`.
* ``positive`` is the FAVOR+ map of the Performers paper, one feature per projection.

Bandwidth. ``gamma="scale"`` is scikit-learn's SVC heuristic
:math:`\gamma = 1 / (d \operatorname{Var} X)` (all entries of ``X`` pooled). The softmax
kernel is not shift-invariant, so centre the data (e.g. with
:class:`~sklearn.preprocessing.StandardScaler`) before using it with that heuristic.

Numerics. The exponential maps evaluate one ``exp`` of the combined exponent, which is
at most :math:`\lVert \omega\rVert^2 / 4` (Gaussian) or :math:`\lVert \omega\rVert^2/2`
(softmax) whatever the input, so they stay finite unless that bound itself exceeds the
exponent range (about 709 in float64, 88 in float32; :math:`\lVert\omega\rVert^2 \approx d`);
they underflow to 0 only where the kernel value itself is negligible. The softmax trigonometric features carry the factor
:math:`e^{\gamma\lVert x\rVert^2/2}`, which is their true size; it overflows to ``inf``
once :math:`\gamma \lVert x\rVert^2 / 2` exceeds about 709 (float64) or 88 (float32). No
stabiliser depends on the batch: the transform is computed row by row, so its output for a
row never depends on the other rows passed with it.

References
----------
.. [1] K. Choromanski et al., "Rethinking Attention with Performers", ICLR 2021,
   arXiv:2009.14794 (Sec. 2.3-2.4, Lemmas 1-2, Theorem 2).
.. [2] A. Rahimi and B. Recht, "Random Features for Large-Scale Kernel Machines",
   NIPS 2007.
.. [3] F. X. Yu et al., "Orthogonal Random Features", NeurIPS 2016.
.. [4] D. J. Sutherland and J. Schneider, "On the Error of Random Fourier Features",
   UAI 2015.
"""

from __future__ import annotations

import re
from numbers import Integral, Real
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from favor._dispatch import backend_of, load_backend
from favor._guards import check_finite_result, check_memory
from favor._validation import as_generator
from favor.registry import FEATURE_MAPS, KERNELS, SAMPLERS, check_compatible, kernel

__all__ = ["FavorSampler"]


def _scale_gamma(X: Any) -> float:
    """Return scikit-learn's ``gamma="scale"``: ``1 / (n_features * X.var())`` (1 if var is 0)."""
    if backend_of(X) == "dask":  # one Dask reduction
        return load_backend("dask").estimators.scale_gamma(X)
    if hasattr(X, "multiply"):  # scipy.sparse: the variance over all entries, zeros included
        X64 = X.astype(np.float64)
        variance = float(X64.multiply(X64).mean() - X64.mean() ** 2)
    else:
        variance = float(np.var(X, dtype=np.float64))
    return 1.0 / (X.shape[1] * variance) if variance > 0 else 1.0


def _dense(X: Any) -> Any:
    # The data a map's parameter function sees: dense NumPy, or the Dask array itself.
    if backend_of(X) == "dask":
        return X
    return np.asarray(X.todense() if hasattr(X, "todense") else X)


def _row_sq_norms(X: Any) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        if hasattr(X, "multiply"):  # scipy.sparse
            return np.asarray(X.multiply(X).sum(axis=1), dtype=np.float64).ravel()
        return np.einsum("ij,ij->i", X, X, dtype=np.float64)


def _check_not_too_large(X: Any) -> float:
    """Refuse data whose squared norms overflow float64 (every kernel uses them).

    Returns the largest squared row norm (0.0 for no rows).
    """
    if X.shape[0] == 0:
        return 0.0
    if not hasattr(X, "multiply") and X.dtype == np.float32:
        # In float32 first (a third of the float64 pass's time); a finite maximum there
        # is within float32 rounding (relative 1e-5 at d = 100) of the float64 one.
        with np.errstate(over="ignore", invalid="ignore"):
            largest = float(np.max(np.einsum("ij,ij->i", X, X)))
        if np.isfinite(largest):
            return largest
    largest = float(np.max(_row_sq_norms(X)))
    if not np.isfinite(largest):  # NaN propagates through max
        raise ValueError(
            "X is too large: its squared row norms overflow float64; rescale it "
            "(e.g. with StandardScaler)"
        )
    return largest


def _exponentials_bounded(estimator: Any, largest_sq_norm: float, dtype: np.dtype) -> bool:
    r"""True when the exponential features provably stay finite, so no check is needed.

        For the positive and hyperbolic maps of the softmax and RBF kernels every exponent is
        :math:`\pm\omega^T x' - c\lVert x'
    Vert^2 - 	frac12\log m` with :math:`c \in \{	frac12, 1\}`,
        and :math:`\pm\omega^T x' - c\lVert x'
    Vert^2 \le \lVert\omega
    Vert\lVert x'
    Vert -
            frac12\lVert x'
    Vert^2 \le 	frac12\lVert\omega
    Vert^2` (maximised over
        :math:`\lVert x'
    Vert`). So when :math:`	frac12\max_i\lVert\omega_i
    Vert^2` is well
        below :math:`\log(	ext{dtype max})` and every :math:`\lVert x'
    Vert^2` is finite in the
        output dtype (no ``inf - inf``), the output is finite by construction.
    """
    if estimator.features_ not in ("positive", "hyperbolic"):
        return False
    if KERNELS[estimator.kernel_].feature_kernel not in ("rbf", "softmax"):
        return False
    info = np.finfo(dtype)
    half_max_row = 0.5 * float(
        np.max(np.einsum("ij,ij->i", estimator.projection_, estimator.projection_))
    )
    scaled_sq = estimator.scale_**2 * largest_sq_norm
    return half_max_row < float(np.log(info.max)) - 8.0 and scaled_sq < float(info.max) / 16


#: Largest exponent with a finite float64 exponential, smallest with a nonzero one.
_EXP_MAX, _EXP_MIN = float(np.log(np.finfo(np.float64).max)), 745.0
#: Rows of the training data on which a too-large gamma for the RBF kernel is detected.
_GAMMA_CHECK_ROWS = 256


def _check_gamma_for_data(kernel_name: str, gamma: float, X: Any) -> None:
    r"""Refuse a given ``gamma`` whose kernel values on the training data are not usable.

    softmax: :math:`\exp(\gamma\, x^T y)` must be finite for every training pair; its
    largest value is on the diagonal, :math:`\gamma \max_i \lVert x_i\rVert^2` must stay
    below :math:`\log(\text{float64 max}) \approx 709.8`. rbf: the kernel
    :math:`\exp(-\gamma \lVert x - y\rVert^2)` must not underflow to 0 between every two
    distinct points (checked on the first 256 rows), else the features are noise.
    """
    if X.shape[0] == 0:
        return
    if kernel_name == "softmax":
        exponent = gamma * float(np.max(_row_sq_norms(X)))
        if not exponent < _EXP_MAX:
            raise ValueError(
                f"gamma={gamma:g} is too large for this data: the kernel values "
                f"exp(gamma x.y) on the training data are not finite (gamma |x|^2 reaches "
                f"{exponent:.3g} > {_EXP_MAX:.4g})"
            )
    elif kernel_name == "rbf":
        rows = X[:_GAMMA_CHECK_ROWS]
        rows = np.asarray(rows.toarray() if hasattr(rows, "toarray") else rows, np.float64)
        sq = np.einsum("ij,ij->i", rows, rows)
        dist = sq[:, None] + sq[None, :] - 2.0 * rows @ rows.T
        distinct = dist[dist > 1e-12 * max(float(sq.max()), 1e-300)]
        if distinct.size and not gamma * float(distinct.min()) < _EXP_MIN:
            raise ValueError(
                f"gamma={gamma:g} is too large for this data: the kernel values "
                "exp(-gamma |x - y|^2) on the training data underflow to 0 for every two "
                f"distinct points (checked on the first {rows.shape[0]} rows)"
            )


def _validate_X(estimator: BaseEstimator, X: Any, *, reset: bool) -> Any:
    """``validate_data`` for float32/float64 (dense or CSR) input; every error names ``X``."""
    if backend_of(X) == "dask":  # checked lazily: shape and dtype only
        return load_backend("dask").estimators.check_X(estimator, X, reset=reset)
    try:
        return validate_data(
            estimator, X, accept_sparse="csr", dtype=[np.float64, np.float32], reset=reset
        )
    except ValueError as exc:
        if re.search(r"\bX\b", str(exc)):
            raise
        raise ValueError(f"X is not a valid input: {exc}") from exc


def _transformer_maps() -> list[str]:
    """Maps ``FavorSampler`` offers: symmetric maps estimating a registered kernel's form."""
    forms = {spec.feature_kernel for spec in KERNELS.values()}
    return [
        name
        for name, spec in FEATURE_MAPS.items()
        if spec.symmetric and forms.intersection(spec.kernels)
    ]


def _attention_only_maps() -> list[str]:
    """Maps with different query and key forms: named in ``features`` only to be refused."""
    return [name for name, spec in FEATURE_MAPS.items() if not spec.symmetric]


def _check_kernel_choices(spec: Any, features: str, projection: str) -> None:
    """Refuse a map or coupling that the kernel's spectral law does not allow."""
    if spec.features is not None and features not in spec.features:
        raise ValueError(
            f"features={features!r} is not unbiased for kernel={spec.name!r}: {spec.reason}; "
            f"use features in {spec.features}"
        )
    if spec.projections is not None and projection not in spec.projections:
        raise ValueError(
            f"projection={projection!r} is not unbiased for kernel={spec.name!r}: "
            f"{spec.reason}; use projection in {spec.projections}"
        )


def _draw_rows(
    spec: Any, projection: str, n_components: int, n_features: int, rng: Any, nu: float
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """The projection rows (float64) and, for ``"structured"``, its factors (signs, lengths).

    Rows come from :meth:`favor.registry.Kernel.draw_rows` (the kernel's ``rows`` hook or
    the registered sampler), the path every consumer shares. The one exception keeps the
    fast transform: while ``"structured"`` is the built-in sampler, its rows are drawn
    through :func:`favor.couplings.structured_factors` (the same stream), so the transform
    can apply them by fast Walsh-Hadamard transforms; a Matérn kernel rescales their
    lengths by its Student factors, as its ``rows`` hook does.
    """
    builtin = SAMPLERS["structured"].draw == "favor.couplings:draw_structured"
    if projection == "structured" and builtin and spec.rows in (None, "favor.kernels:matern_rows"):
        from favor.couplings import sorf_matrix, structured_factors

        signs, lengths = structured_factors(n_components, n_features, rng=rng)
        if spec.rows is not None:
            from favor.kernels import student_t_row_scales

            lengths = lengths * student_t_row_scales(n_components, nu, rng=rng)
        return sorf_matrix(signs, lengths, n_features), (signs, lengths)
    return spec.draw_rows(projection, n_components, n_features, rng, nu), None


def _use_fast_sorf(estimator: Any, X: Any, form: str) -> bool:
    """Structured trigonometric features of a shift-invariant kernel, above the crossover."""
    factors = getattr(estimator, "_sorf_factors", None)
    if factors is None or estimator.features_ != "trigonometric" or form != "rbf":
        return False
    if hasattr(X, "multiply"):  # sparse input: the GEMM path
        return False
    from favor.couplings import SORF_DENSE_MAX_FEATURES

    return factors[0].shape[2] > SORF_DENSE_MAX_FEATURES[X.dtype.name]


def _structured_trigonometric(
    X: np.ndarray, factors: tuple[np.ndarray, np.ndarray], scale: float
) -> np.ndarray:
    """Trigonometric features with the logits from :func:`favor._jit.hadamard.sorf_project`."""
    from favor._jit.hadamard import sorf_project
    from favor._threads import jit_threads, run_ranges
    from favor.features import _cos_sin_inplace

    signs, lengths = factors
    p = signs.shape[2]
    m = lengths.shape[0]
    dtype = X.dtype
    out = np.empty((X.shape[0], 2 * m), dtype=dtype)
    row_lengths = (lengths * (scale * p**-1.5)).astype(dtype)
    X = np.ascontiguousarray(X)
    signs = signs.astype(dtype)
    logits = out[:, :m]

    def rows(start: int, stop: int) -> None:
        sorf_project(X[start:stop], signs, row_lengths, logits[start:stop])

    with jit_threads(X.shape[0]) as n_threads:
        run_ranges(rows, X.shape[0], n_threads)
    _cos_sin_inplace(out, 1.0 / np.sqrt(m))
    return out


class FavorSampler(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    r"""Random features for the Gaussian (RBF) or softmax kernel, with orthogonal projections.

    Approximates the feature map of a kernel by random features whose dot products are
    unbiased estimates of the kernel: :math:`E[\varphi(x)^T \varphi(y)] = k(x, y)` with

    * ``kernel="rbf"``: :math:`k(x, y) = \exp(-\gamma \lVert x - y\rVert^2)`;
    * ``kernel="softmax"``: :math:`k(x, y) = \exp(\gamma\, x^T y)`.

    The maths, the choice of defaults and the numerics are described in the
    :mod:`favor.estimators` module notes. In short, with :math:`x' = \sqrt{2\gamma}\,x`
    (rbf) or :math:`x' = \sqrt{\gamma}\,x` (softmax) and projection rows
    :math:`\omega_1, \dots, \omega_m` (the rows of ``projection_``), the maps are the
    Gaussian or softmax forms of :mod:`favor.features` applied to :math:`x'`:
    ``"trigonometric"`` :math:`\propto (\cos \omega_i^T x', \sin \omega_i^T x')`,
    ``"positive"`` :math:`\propto \exp(\omega_i^T x' - c(x'))` and ``"hyperbolic"``
    :math:`\propto \exp(\pm\omega_i^T x' - c(x'))`.

    Parameters
    ----------
    kernel : {"rbf", "softmax"}, default="rbf"
        The kernel to approximate (:data:`favor.registry.KERNELS`).
    gamma : "scale" or float, default="scale"
        Kernel scale :math:`\gamma > 0`. ``"scale"`` uses
        ``1 / (n_features * X.var())`` computed on the training data, as in
        :class:`sklearn.svm.SVC` (1.0 when ``X`` is constant). The value used is stored
        in ``gamma_``.
    features : {"auto", "trigonometric", "positive", "hyperbolic"}, default="auto"
        The feature map. ``"auto"`` means ``"trigonometric"`` for ``kernel="rbf"`` and
        ``"hyperbolic"`` for ``kernel="softmax"`` (the lowest-variance choice for each at a
        given output width); the map used is stored in ``features_``.
    projection : {"orthogonal", "iid", "structured", "qmc", "simplex", "simplex+"}, default="orthogonal"
        How the projection rows are drawn (:data:`favor.registry.SAMPLERS`): Haar-exact orthogonal blocks with independent
        :math:`\chi_d` row lengths, or i.i.d. Gaussian rows
        (:func:`favor.sampling.orthogonal_projection`, :func:`favor.sampling.iid_projection`).
        Both give unbiased estimates; orthogonal ones have lower variance. The couplings
        of :mod:`favor.couplings` are compared in the user guide's couplings page;
        ``"structured"`` is not exactly unbiased (a proven bias bound, formulas §3.3 [W6])
        and is refused for maps without one.
    n_components : int, default=100
        Number of random projections :math:`m`. The number of output features is
        ``2 * n_components`` for ``"trigonometric"`` and ``"hyperbolic"`` (one pair per
        projection, so the default ``features="auto"`` always gives ``2 * n_components``)
        and ``n_components`` for ``"positive"``. To compare with
        :class:`~sklearn.kernel_approximation.RBFSampler` at equal output width ``D``, use
        ``n_components = D // 2`` here.
    random_state : int, numpy.random.Generator, numpy.random.SeedSequence, numpy.random.RandomState or None, default=None
        Seeds the projection drawn in :meth:`fit`. Pass an int for reproducible output
        across calls. The draw is made in float64 and cast to the dtype of ``X``, so
        float32 and float64 fits with one seed use the same projection.

    Attributes
    ----------
    projection_ : ndarray of shape (n_components, ``n_features_in_``)
        The projection rows :math:`\omega_i` (each marginally :math:`\mathcal N(0, I)`),
        before the :math:`\sqrt{2\gamma}` or :math:`\sqrt\gamma` input scaling, in the
        dtype of the training data (float32 or float64).
    kernel_ : str
        The kernel fitted for (``kernel`` at the time of :meth:`fit`).
    gamma_ : float
        The kernel scale :math:`\gamma` used (resolves ``gamma="scale"``).
    scale_ : float
        The input scale :math:`c`: :math:`\sqrt{2\gamma}` (rbf) or :math:`\sqrt\gamma`
        (softmax); the features are those of :math:`c x` for the unit-scale kernel.
    features_ : str
        The feature map used (resolves ``features="auto"``).
    params_ : ndarray of shape (n_params,)
        Data-fitted parameters of the map (empty for the built-in maps).
    n_features_in_ : int
        Number of features seen during :meth:`fit`.
    feature_names_in_ : ndarray of shape (``n_features_in_``,)
        Names of features seen during :meth:`fit`. Defined only when ``X``
        has feature names that are all strings.

    See Also
    --------
    sklearn.kernel_approximation.RBFSampler : I.i.d. random Fourier features with a
        random phase, :math:`\sqrt{2/D}\cos(\omega^T x + b)`.
    sklearn.kernel_approximation.Nystroem : Data-dependent low-rank approximation.
    favor.features : The feature maps as functions.
    favor.sampling : The projection samplers.

    Notes
    -----
    The transform computes ``X @ W.T`` with :math:`W = \sqrt{2\gamma}\,\mathrm{projection\_}`
    (or :math:`\sqrt\gamma`), one BLAS GEMM, then element-wise functions; sparse input is
    accepted and gives dense output. For float64 trigonometric features the element-wise
    part runs in a parallel Numba loop (NumPy's float64 ``cos`` and ``sin`` are scalar
    loops); its thread count is Numba's, capped by NumPy's BLAS thread limit, so
    ``threadpoolctl.threadpool_limits`` controls both. The first float64 trigonometric
    transform in a process loads Numba (about a second).

    For ``kernel="rbf"`` with the default ``features``, the mean squared error of one
    kernel entry with i.i.d. rows is
    :math:`\frac{1}{2m}(1 - e^{-\lVert x' - y'\rVert^2})^2` (formulas §2.4 with the Gaussian
    form, 6.6 [I1]); orthogonal rows reduce it further (Yu et al. 2016).

    References
    ----------
    .. [1] K. Choromanski et al., "Rethinking Attention with Performers", ICLR 2021,
       arXiv:2009.14794.
    .. [2] A. Rahimi and B. Recht, "Random Features for Large-Scale Kernel Machines",
       NIPS 2007.
    .. [3] F. X. Yu et al., "Orthogonal Random Features", NeurIPS 2016.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.linear_model import RidgeClassifier
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from favor import FavorSampler
    >>> X, y = load_digits(return_X_y=True)
    >>> model = make_pipeline(
    ...     StandardScaler(),
    ...     FavorSampler(n_components=512, random_state=0),
    ...     RidgeClassifier(alpha=1e-3),
    ... )
    >>> model.fit(X[:1500], y[:1500]).score(X[1500:], y[1500:]) > 0.9
    True
    >>> model[1].transform(X[:2]).shape
    (2, 1024)
    """

    @property
    def _parameter_constraints(self) -> dict[str, list[Any]]:
        # A property, so that entries registered in favor.registry are accepted.
        return {
            "kernel": [StrOptions(set(KERNELS))],
            "gamma": [StrOptions({"scale"}), Interval(Real, 0, np.inf, closed="neither")],
            "features": [StrOptions({"auto", *_transformer_maps(), *_attention_only_maps()})],
            "projection": [StrOptions(set(SAMPLERS))],
            "n_components": [Interval(Integral, 1, None, closed="left")],
            "random_state": ["random_state", np.random.Generator, np.random.SeedSequence],
            "nu": [Options(Real, {0.5, 1.5, 2.5})],
        }

    def __init__(
        self,
        kernel: str = "rbf",
        *,
        gamma: str | float = "scale",
        features: str = "auto",
        projection: str = "orthogonal",
        n_components: int = 100,
        random_state: Any = None,
        nu: float = 1.5,
    ) -> None:
        self.kernel = kernel
        self.gamma = gamma
        self.features = features
        self.projection = projection
        self.n_components = n_components
        self.random_state = random_state
        self.nu = nu

    def __sklearn_tags__(self) -> Any:
        """Declare sparse input support and float32/float64 preservation.

        Returns
        -------
        sklearn.utils.Tags
            The estimator tags: sparse input accepted, float64 and float32 preserved.
        """
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: ArrayLike, y: Any = None) -> FavorSampler:
        """Draw the random projection and resolve ``gamma`` and ``features``.

        Stores everything :meth:`transform` reads: the kernel (``kernel_``), the input
        scale (``gamma_``, ``scale_``), the map (``features_``) and the projection
        (``projection_``); changing a hyperparameter afterwards has no effect until the
        next :meth:`fit`. The projection is drawn in float64 from ``random_state`` by
        :meth:`favor.registry.Kernel.draw_rows` (the registered sampler, or the kernel's
        spectral-law hook) and stored in the dtype of ``X``; no other
        property of the data is used, except its variance for ``gamma="scale"``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data; only its shape, dtype and (for ``gamma="scale"``) variance
            are used.
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        FavorSampler
            The fitted transformer (``self``).
        """
        if isinstance(self.gamma, (bool, np.bool_)):
            raise ValueError(
                f"gamma must be 'scale' or a positive finite float, got {self.gamma!r}"
            )
        spec = kernel(self.kernel)
        features = spec.default_features if self.features == "auto" else self.features
        if not FEATURE_MAPS[features].symmetric:
            raise ValueError(
                f"features={features!r} uses different maps for queries and keys, so it "
                "estimates attention (favor_attention), not a symmetric kernel; FavorSampler "
                "needs one map for every input: use one of "
                + ", ".join(repr(n) for n in _transformer_maps())
            )
        if spec.feature_kernel not in FEATURE_MAPS[features].kernels:
            raise ValueError(
                f"features={features!r} does not estimate kernel={self.kernel!r}; use one of "
                + ", ".join(
                    repr(n)
                    for n in _transformer_maps()
                    if spec.feature_kernel in FEATURE_MAPS[n].kernels
                )
            )
        check_compatible(self.projection, features)
        _check_kernel_choices(spec, features, self.projection)
        rng = as_generator(self.random_state, name="random_state")
        X = _validate_X(self, X, reset=True)

        self.kernel_ = spec.name
        self.features_ = features
        lazy = backend_of(X) == "dask"  # Dask: no extra passes over the data here
        if not lazy:
            _check_not_too_large(X)
        self.gamma_ = _scale_gamma(X) if self.gamma == "scale" else float(self.gamma)
        if self.gamma != "scale" and not lazy:  # a given gamma; "scale" adapts to the data
            _check_gamma_for_data(spec.name, self.gamma_, X)
        self.scale_ = spec.input_scale(self.gamma_)
        weights, self._sorf_factors = _draw_rows(
            spec, self.projection, self.n_components, X.shape[1], rng, float(self.nu)
        )
        self.projection_ = weights.astype(X.dtype, copy=False)
        fmap = FEATURE_MAPS[features]
        self.params_ = fmap.fit_params(
            None if fmap.params is None else _dense(X) * self.scale_,
            weights,
        )
        self._n_features_out = fmap.width(self.n_components)
        return self

    def transform(self, X: ArrayLike) -> np.ndarray:
        r"""Map ``X`` to random features.

        One GEMM with the rescaled projection, then the element-wise feature map, row by
        row: the output for a row does not depend on the other rows of ``X``. Reads only
        the fitted state (``kernel_``, ``scale_``, ``features_``, ``projection_``).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data to transform. float32 input gives float32 output; other input is
            converted to float64.

        Returns
        -------
        ndarray of shape (n_samples, n_output_features)
            The random features, ``n_output_features`` being ``2 * n_components`` for
            the paired maps and ``n_components`` for ``"positive"``; their dot products
            estimate the kernel. Each row depends only on the same row of ``X``.
        """
        if backend_of(X) == "dask":  # lazy, row block by row block
            return load_backend("dask").estimators.transform(self, X)
        check_is_fitted(self)
        X = _validate_X(self, X, reset=False)
        form = KERNELS[self.kernel_].feature_kernel
        largest_sq_norm = _check_not_too_large(X)
        check_memory(
            "the transformed X",
            (X.shape[0], self._n_features_out),
            X.dtype,
            because=f"{X.shape[0]} samples x {self._n_features_out} features",
        )
        if _use_fast_sorf(self, X, form):
            return _structured_trigonometric(X, self._sorf_factors, self.scale_)
        formula = FEATURE_MAPS[self.features_].numpy_formula()
        # x' = scale_ x is folded into the projection inside the formula (W' = scale_ W).
        with np.errstate(over="ignore", invalid="ignore"):
            out = formula(X, self.projection_, form, self.scale_, self.params_, False)
        if _exponentials_bounded(self, largest_sq_norm, out.dtype):
            return out
        check_finite_result(
            "FavorSampler.transform",
            out,
            f"the scaled projections exceed the {out.dtype} range for these inputs "
            f"(gamma_={self.gamma_:.3g})",
        )
        return out
