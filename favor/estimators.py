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

import functools
import numbers
import re
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.extmath import safe_sparse_dot
from sklearn.utils.validation import check_is_fitted, validate_data

from favor._validation import as_generator, check_choice, check_positive_int
from favor.features import FEATURE_MAPS
from favor.sampling import SAMPLERS, draw_projection

__all__ = ["FavorSampler"]

_KERNELS = ("rbf", "softmax")
_FEATURES = ("auto", "trigonometric", "positive", "hyperbolic")
#: The map ``features="auto"`` resolves to, per kernel (see the module notes).
_DEFAULT_FEATURES = {"rbf": "trigonometric", "softmax": "hyperbolic"}


def _check_gamma(gamma: Any) -> str | float:
    if isinstance(gamma, str):
        if gamma == "scale":
            return gamma
    elif isinstance(gamma, numbers.Real) and not isinstance(gamma, bool):
        if np.isfinite(gamma) and gamma > 0:
            return float(gamma)
    raise ValueError(f"gamma must be 'scale' or a positive finite float, got {gamma!r}")


def _scale_gamma(X: Any) -> float:
    """Return scikit-learn's ``gamma="scale"``: ``1 / (n_features * X.var())`` (1 if var is 0)."""
    if hasattr(X, "multiply"):  # scipy.sparse: the variance over all entries, zeros included
        X64 = X.astype(np.float64)
        variance = float(X64.multiply(X64).mean() - X64.mean() ** 2)
    else:
        variance = float(np.var(X, dtype=np.float64))
    return 1.0 / (X.shape[1] * variance) if variance > 0 else 1.0


def _row_sq_norms(X: Any) -> np.ndarray:
    if hasattr(X, "multiply"):
        return np.asarray(X.multiply(X).sum(axis=1), dtype=X.dtype).reshape(-1)
    return np.einsum("ij,ij->i", X, X)


def _validate_X(estimator: BaseEstimator, X: Any, *, reset: bool) -> Any:
    """``validate_data`` for float32/float64 (dense or CSR) input; every error names ``X``."""
    try:
        return validate_data(
            estimator, X, accept_sparse="csr", dtype=[np.float64, np.float32], reset=reset
        )
    except ValueError as exc:
        if re.search(r"\bX\b", str(exc)):
            raise
        raise ValueError(f"X is not a valid input: {exc}") from exc


@functools.lru_cache(maxsize=1)
def _blas_controller() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController().select(user_api="blas")


def _jit_thread_count() -> int:
    """Threads for the jit region: Numba's setting, capped by NumPy's current BLAS limit.

    The transform is a BLAS GEMM followed by a Numba loop; they run one after the other,
    so they never compete. Capping the Numba threads by the BLAS limit makes one knob,
    ``threadpoolctl.threadpool_limits``, control both (joblib's workers already set
    ``NUMBA_NUM_THREADS`` and the BLAS variables together).
    """
    import numba

    n_threads = numba.get_num_threads()
    blas = [lib.num_threads for lib in _blas_controller().lib_controllers]
    return max(1, min([n_threads, *blas]))


def _project_into(X: Any, weights: np.ndarray, out: np.ndarray) -> None:
    """Write the logits ``X @ weights.T`` into the ``(n, m)`` view ``out`` (one GEMM)."""
    if hasattr(X, "multiply"):  # scipy.sparse: sparse x dense product, then copy
        out[...] = safe_sparse_dot(X, weights.T, dense_output=True)
    else:
        np.matmul(X, weights.T, out=out)


#: Below this many output elements the float64 jit loop runs on one thread: waking the
#: pool costs more than it saves (and on a busy machine a wake-up can stall for ms).
#: Serial and parallel loops give bit-for-bit identical output, so this is not visible.
_PARALLEL_MIN_SIZE = 1 << 16


def _cos_sin_inplace(features: np.ndarray, row_scale: np.ndarray | float) -> None:
    """In place: ``features = row_scale * [cos(t), sin(t)]`` with ``t = features[:, :m]``."""
    m = features.shape[1] // 2
    if features.dtype == np.float64:
        # NumPy's float64 cos/sin are scalar libm loops (~15-30 ns per element here);
        # the fused parallel jit loop is 2-3x faster (measured, see favor._jit.features).
        import numba

        from favor._jit.features import scaled_cos_sin, scaled_cos_sin_serial

        scale = np.empty(features.shape[0], dtype=np.float64)
        scale[...] = row_scale
        if features.size < _PARALLEL_MIN_SIZE:
            scaled_cos_sin_serial(features, scale)
            return
        previous = numba.get_num_threads()
        numba.set_num_threads(_jit_thread_count())
        try:
            scaled_cos_sin(features, scale)
        finally:
            numba.set_num_threads(previous)
        return
    # float32: NumPy's SIMD cos (~0.6 ns per element) beats the jit loop, and one
    # contiguous pass beats two half-row passes: sin(t) = cos(t - pi/2), with t - pi/2
    # rounded to float32 (an absolute error of one float32 ulp of t, the size of the
    # rounding error t already carries from the float32 GEMM).
    np.subtract(features[:, :m], features.dtype.type(np.pi / 2), out=features[:, m:])
    np.cos(features, out=features)
    if np.ndim(row_scale):
        features *= row_scale[:, None]
    else:
        features *= features.dtype.type(row_scale)


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
        The kernel to approximate.
    gamma : "scale" or float, default="scale"
        Kernel scale :math:`\gamma > 0`. ``"scale"`` uses
        ``1 / (n_features * X.var())`` computed on the training data, as in
        :class:`sklearn.svm.SVC` (1.0 when ``X`` is constant). The value used is stored
        in ``gamma_``.
    features : {"auto", "trigonometric", "positive", "hyperbolic"}, default="auto"
        The feature map. ``"auto"`` means ``"trigonometric"`` for ``kernel="rbf"`` and
        ``"hyperbolic"`` for ``kernel="softmax"`` (the lowest-variance choice for each at a
        given output width); the map used is stored in ``features_``.
    projection : {"orthogonal", "iid"}, default="orthogonal"
        How the projection rows are drawn: Haar-exact orthogonal blocks with independent
        :math:`\chi_d` row lengths, or i.i.d. Gaussian rows
        (:func:`favor.sampling.orthogonal_projection`, :func:`favor.sampling.iid_projection`).
        Both give unbiased estimates; orthogonal ones have lower variance.
    n_components : int, default=100
        Number of random projections :math:`m`. The number of output features is
        ``2 * n_components`` for ``"trigonometric"`` and ``"hyperbolic"`` (one pair per
        projection, so the default ``features="auto"`` always gives ``2 * n_components``)
        and ``n_components`` for ``"positive"``. To compare with
        :class:`~sklearn.kernel_approximation.RBFSampler` at equal output width ``D``, use
        ``n_components = D // 2`` here.
    random_state : int, numpy.random.Generator, numpy.random.RandomState or None, default=None
        Seeds the projection drawn in :meth:`fit`. Pass an int for reproducible output
        across calls. The draw is made in float64 and cast to the dtype of ``X``, so
        float32 and float64 fits with one seed use the same projection.

    Attributes
    ----------
    projection_ : ndarray of shape (n_components, ``n_features_in_``)
        The projection rows :math:`\omega_i` (each marginally :math:`\mathcal N(0, I)`),
        before the :math:`\sqrt{2\gamma}` or :math:`\sqrt\gamma` input scaling, in the
        dtype of the training data (float32 or float64).
    gamma_ : float
        The kernel scale :math:`\gamma` used (resolves ``gamma="scale"``).
    features_ : str
        The feature map used (resolves ``features="auto"``).
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

    def __init__(
        self,
        kernel: str = "rbf",
        *,
        gamma: str | float = "scale",
        features: str = "auto",
        projection: str = "orthogonal",
        n_components: int = 100,
        random_state: Any = None,
    ) -> None:
        self.kernel = kernel
        self.gamma = gamma
        self.features = features
        self.projection = projection
        self.n_components = n_components
        self.random_state = random_state

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

    def fit(self, X: Any, y: Any = None) -> FavorSampler:
        """Draw the random projection and resolve ``gamma`` and ``features``.

        The projection is drawn in float64 from ``random_state`` by
        :func:`favor.sampling.draw_projection` and stored in the dtype of ``X``; no other
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
        kernel = check_choice("kernel", self.kernel, _KERNELS)
        features = check_choice("features", self.features, _FEATURES)
        projection = check_choice("projection", self.projection, SAMPLERS)
        n_components = check_positive_int("n_components", self.n_components)
        gamma = _check_gamma(self.gamma)
        rng = as_generator(self.random_state, name="random_state")
        X = _validate_X(self, X, reset=True)

        self.features_ = _DEFAULT_FEATURES[kernel] if features == "auto" else features
        self.gamma_ = _scale_gamma(X) if gamma == "scale" else gamma
        weights = draw_projection(projection, n_components, X.shape[1], rng=rng)
        self.projection_ = weights.astype(X.dtype, copy=False)
        width = FEATURE_MAPS[self.features_].outputs_per_projection * n_components
        self._n_features_out = width
        return self

    def transform(self, X: Any) -> np.ndarray:
        r"""Map ``X`` to random features.

        One GEMM with the rescaled projection, then the element-wise feature map, row by
        row: the output for a row does not depend on the other rows of ``X``.

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
        check_is_fitted(self)
        X = _validate_X(self, X, reset=False)
        dtype = X.dtype.type
        n_samples = X.shape[0]
        # x' = c x with c = sqrt(2 gamma) (rbf -> unit Gaussian kernel) or sqrt(gamma)
        # (softmax -> unit softmax kernel); folded into the projection: W' = c W.
        c2 = 2.0 * self.gamma_ if self.kernel == "rbf" else self.gamma_
        weights = self.projection_.astype(X.dtype, copy=False) * dtype(np.sqrt(c2))
        m = weights.shape[0]
        gaussian = self.kernel == "rbf"

        if self.features_ == "trigonometric":
            out = np.empty((n_samples, 2 * m), dtype=X.dtype)
            _project_into(X, weights, out[:, :m])
            if gaussian:
                _cos_sin_inplace(out, 1.0 / np.sqrt(m))
            else:  # h(x') = exp(|x'|^2 / 2), in log space with the 1/sqrt(m)
                half_sq = 0.5 * c2 * _row_sq_norms(X)
                # The true size of these features: inf where it is not representable
                # (the kernel exp(gamma x.x) itself overflows there), see module notes.
                with np.errstate(over="ignore"):
                    row_scale = np.exp(half_sq - dtype(0.5 * np.log(m))).astype(X.dtype)
                _cos_sin_inplace(out, row_scale)
            return out

        # Exponential maps: exp(+-w'x' - shift(x')), shift = |x'|^2 (gaussian) or
        # |x'|^2 / 2 (softmax), plus the log of the 1/sqrt(m) (or 1/sqrt(2m)) factor.
        sq = c2 * _row_sq_norms(X)
        shift = sq if gaussian else 0.5 * sq
        if self.features_ == "positive":
            out = np.empty((n_samples, m), dtype=X.dtype)
            _project_into(X, weights, out)
            out -= (shift + dtype(0.5 * np.log(m))).astype(X.dtype, copy=False)[:, None]
            return np.exp(out, out=out)
        shift = (shift + dtype(0.5 * np.log(2 * m))).astype(X.dtype, copy=False)[:, None]
        out = np.empty((n_samples, 2 * m), dtype=X.dtype)
        _project_into(X, weights, out[:, :m])
        np.subtract(-out[:, :m], shift, out=out[:, m:])
        out[:, :m] -= shift
        return np.exp(out, out=out)
