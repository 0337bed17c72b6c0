r"""The registry: every feature map, sampler and kernel of favor, each defined once.

Every consumer is generated from these tables: :mod:`favor.features` (the NumPy maps),
:class:`favor.FavorSampler`, :func:`favor.favor_attention` (bidirectional and causal jit
scans), :mod:`favor.decoding`, :mod:`favor.torch` (functional attention, the public tensor
maps and :class:`favor.torch.FavorAttention`) and the shared contract tests, which are
parametrised over :data:`FEATURE_MAPS` and :data:`SAMPLERS`. The public tables are
read-only views; tests add or replace entries only through :func:`register_feature_map`,
:func:`register_sampler` and :func:`register_kernel` (context managers that restore the
tables on exit).

How to add a feature map
------------------------
A map :math:`\varphi(x; W)` is one :class:`FeatureMap`; its formula is written once per
backend, and every backend function sees the *scaled* input :math:`x' = s x` (``scale``
:math:`s` is the attention temperature :math:`d^{-1/4}` or the kernel bandwidth factor of
:class:`favor.FavorSampler`), through the logits :math:`\ell = W x'` and the half squared
norm :math:`h = \lVert x'\rVert^2 / 2`:

1. **NumPy** (``numpy``): ``f(x, projection, kernel, scale, params, is_key) -> phi``, the
   full features of ``scale * x`` for each kernel the map estimates, shape
   ``(..., width)``; ``x`` may be a SciPy CSR matrix (use
   :func:`favor.features.project` and :func:`favor.features.half_sq_norms`). Put it in
   :mod:`favor.features`.
2. **Jit split form** (``jit``): a function decorated with
   :func:`favor._jit.feature_rows.jit_rows`,
   ``f(logits, half_sq_norms, params, is_key, out, log_scale, shifted, scratch)``, that
   writes, for each of the ``n = logits.shape[0]`` rows, a *shape row* ``out[i]`` with
   entries of modest size and a *log-scale* ``log_scale[i]`` such that
   :math:`\varphi(x_i) = e^{r_i} e_i` exactly (constants included) for the map's first
   kernel. ``shifted`` and ``scratch`` are work arrays of length ``width``. Put it in
   :mod:`favor._jit.feature_rows`. Attention and decoding combine keys as
   :math:`e^{r_j - c} e_j` with a running maximum :math:`c`, and drop the query's
   :math:`e^{r_i}` (it cancels in the normalisation).
3. **Torch split form** (``torch``): ``f(logits, half_sq_norms, params, is_key) -> (psi,
   log_scale)`` on tensors with the same contract (:math:`\varphi = e^{a}\psi`), differentiable.
   Put it in :mod:`favor.torch.features`.
4. One ``FeatureMap(...)`` entry in ``_BUILTIN_FEATURE_MAPS`` below, naming the three
   functions as ``"module:attribute"`` strings (loaded on first use, so ``import favor``
   stays NumPy-only) or passing the callables themselves (as tests do).

That is all: the NumPy functions, ``FavorSampler`` (for symmetric maps of a kernel it
offers), ``favor_attention`` in both directions, decoding and ``favor.torch`` pick the entry
up, and ``tests/favor/test_registry_contract.py`` checks every backend against the NumPy
formula. Add closed forms to ``theory.closed_forms`` and list their names in
``closed_forms``.

Maps with sign rows (``sign_rows`` :math:`k > 0`, the angular ``"hybrid"``): every
projection of the map has :math:`m + k` rows, the :math:`m` base rows drawn by the
sampler and then :math:`k` independent i.i.d. :math:`\mathcal N(0, I_d)` rows
(:func:`favor.sampling.resolve_projection`); ``n_components`` counts the base rows, the
width is ``outputs_per_projection * m * (k + 1)``, the logits handed to the split forms
have :math:`m + k` columns, and the parameter vector starts with :math:`k`
(:meth:`FeatureMap.fit_params`), so the backend functions know where the base rows end.

Maps that fit parameters from data (``params``): ``params(x, projection)`` returns a 1-D
float64 array handed to every backend function. ``x`` is the pooled, scaled data (queries
and keys for bidirectional attention, the training data for ``FavorSampler.fit``) or
``None`` where the data may not be used: causal attention and decoding, whose output at
position :math:`t` must not depend on later positions, call ``params(None, projection)``,
so the map must then return parameters that depend on the projection only (or refuse
with a ValueError that says so).

How to add a sampler
--------------------
A sampler is one :class:`Sampler`: ``draw(n_components, n_features, rng)`` returns a
``(n_components, n_features)`` float64 array from a :class:`numpy.random.Generator` (no
other randomness), plus its documented marginal law, coupling and handling of
``n_components`` not a multiple of ``n_features``. Put ``draw`` in
:mod:`favor.sampling` and add the entry to ``_BUILTIN_SAMPLERS``; list in ``unbiased_for``
the maps it keeps unbiased (``None``: every map) and, for a sampler whose rows are only
approximately the spectral law, in ``bounded_bias_for`` the maps whose bias has a proven
bound; :func:`check_compatible` refuses the others with a clear error.

How to add a kernel
-------------------
A :class:`Kernel` names the exact kernel (a function of :mod:`favor.exact`), the factor
:math:`c(\gamma)` by which :class:`favor.FavorSampler` scales its inputs so that the
kernel becomes the unit-scale kernel the maps estimate, and the default map.

Vocabulary (one name each): ``features`` names a map, ``projection`` names a sampler (or
is a prebuilt array), ``kernel`` names a kernel: ``"softmax"`` :math:`\exp(x^T y)`,
``"rbf"`` :math:`\exp(-\lVert x-y\rVert^2/2)` at unit scale (scikit-learn's RBF with
:math:`\gamma = 1/2`) and ``"arccos"`` (order-1 arc-cosine).
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from favor._guards import check_finite_result, check_memory, check_norms
from favor._validation import (
    as_generator,
    check_choice,
    check_float_array,
    check_positive_int,
    check_projection,
)

__all__ = [
    "FEATURE_MAPS",
    "KERNELS",
    "SAMPLERS",
    "FeatureMap",
    "Kernel",
    "Sampler",
    "check_compatible",
    "feature_map",
    "kernel",
    "register_feature_map",
    "register_kernel",
    "register_sampler",
    "sampler",
]

_LOADED: dict[str, Any] = {}


def _load(ref: str | Callable[..., Any] | None) -> Any:
    """Resolve a ``"module:attribute"`` reference (imported on first use); pass callables."""
    if ref is None or callable(ref):
        return ref
    if ref not in _LOADED:
        module, _, attribute = ref.partition(":")
        _LOADED[ref] = getattr(importlib.import_module(module), attribute)
    return _LOADED[ref]


@dataclass(frozen=True)
class FeatureMap:
    r"""One feature map :math:`\varphi(x; W)`: its formula per backend and its facts.

    Attributes
    ----------
    name : str
        Registry key (the value of ``features=``).
    numpy : str or callable
        ``f(x, projection, kernel, scale, params, is_key)``: the full features of
        ``scale * x`` (module docstring, step 1).
    outputs_per_projection : int
        Features per base projection row: the width is this times ``m`` (times
        ``sign_rows + 1``).
    kernels : tuple of str
        The kernels its dot products are unbiased for; the first is the default and the
        one the split forms (attention) compute.
    nonnegative : bool
        Whether every feature is >= 0 (attention normalisers then cannot vanish).
    jit : str or callable, optional
        The jit split form (step 2); None: no attention or decoding with this map.
    torch : str or callable, optional
        The torch split form (step 3); None: no :mod:`favor.torch` support.
    exponent_signs : tuple of int, optional
        For maps :math:`\varphi(x) = c \exp(\sigma W x - \lVert x\rVert^2/2)` stacked over
        the signs :math:`\sigma` (positive: ``(1,)``, hyperbolic: ``(1, -1)``): lets the
        torch engine use its fused-exponent path. None for other maps.
    symmetric : bool, default=True
        Whether queries and keys use the same map (``is_key`` is then ignored). Only
        symmetric maps are offered by :class:`favor.FavorSampler`.
    params : str or callable, optional
        ``params(x, projection) -> 1-D float64 array`` for maps with data-fitted
        parameters (module docstring); None: no parameters.
    closed_forms : tuple of str, default=()
        Names of its exact formulas in ``theory.closed_forms`` (MSE, variance).
    prepare : str or callable, optional
        Attention-input hook for maps whose parameters are fitted per (batch..., head)
        group or differ between queries and keys (``"oprf"``, ``"saderf"``):
        ``prepare(features, feature_params, q, k, qg, kg, w, proj_index, padded, causal,
        scale) -> (qg', kg', params)`` rewrites the grouped inputs where the map rescales
        them and returns one row of this map's packed parameters per group, which the
        scans pass to its split form (:func:`favor.gerf.prepare_attention`); ``params``
        then serves only the single-projection uses (the NumPy map, ``FavorSampler``).
        None: no hook.
    sign_rows : int, default=0
        Independent rows appended after the ``m`` base rows of every projection (the
        angular weight's sign rows of ``"hybrid"``; module docstring). The width becomes
        ``outputs_per_projection * m * (sign_rows + 1)``.
    """

    name: str
    numpy: str | Callable[..., np.ndarray]
    outputs_per_projection: int
    kernels: tuple[str, ...]
    nonnegative: bool
    jit: str | Callable[..., None] | None = None
    torch: str | Callable[..., Any] | None = None
    exponent_signs: tuple[int, ...] | None = None
    symmetric: bool = True
    params: str | Callable[..., np.ndarray] | None = None
    closed_forms: tuple[str, ...] = field(default=())
    prepare: str | Callable[..., Any] | None = None
    sign_rows: int = 0

    def width(self, n_components: int) -> int:
        """Output width for ``n_components`` base projection rows."""
        return self.outputs_per_projection * n_components * (self.sign_rows + 1)

    def projection_rows(self, n_components: int) -> int:
        """Rows of a projection with ``n_components`` base rows (plus the sign rows)."""
        return n_components + self.sign_rows

    def width_for_rows(self, rows: int) -> int:
        """Output width for a projection of ``rows`` rows in total (sign rows included)."""
        if rows <= self.sign_rows:
            raise ValueError(
                f"features={self.name!r} needs a projection with more than {self.sign_rows} "
                f"rows (n_components base rows, then {self.sign_rows} sign rows), got {rows}"
            )
        return self.width(rows - self.sign_rows)

    def numpy_formula(self) -> Callable[..., np.ndarray]:
        """The unchecked NumPy formula (step 1)."""
        return _load(self.numpy)

    def jit_rows(self) -> Callable[..., None]:
        """The jit split form (step 2); raises ValueError if the map has none."""
        rows = _load(self.jit)
        if rows is None:
            raise ValueError(f"features={self.name!r} has no attention form")
        return rows

    def torch_split(self) -> Callable[..., Any]:
        """The torch split form (step 3); raises ValueError if the map has none."""
        split = _load(self.torch)
        if split is None:
            raise ValueError(f"features={self.name!r} has no torch form")
        return split

    def attention_prepare(self) -> Callable[..., Any] | None:
        """The attention-input hook, or None (see ``prepare``)."""
        return _load(self.prepare)

    def fit_params(self, x: np.ndarray | None, projection: np.ndarray) -> np.ndarray:
        """Parameters from data ``x`` (None where the data may not be used), float64 1-D.

        Maps with sign rows get ``[sign_rows, *fitted]`` (module docstring).
        """
        fit = _load(self.params)
        fitted = np.zeros(0) if fit is None else np.asarray(fit(x, projection), dtype=np.float64)
        if self.sign_rows:
            fitted = np.concatenate([[float(self.sign_rows)], fitted.reshape(-1)])
        return np.ascontiguousarray(fitted, dtype=np.float64).reshape(-1)

    def __call__(
        self,
        x: Any,
        projection: Any,
        *,
        kernel: str | None = None,
        params: Any = None,
        is_key: bool = False,
    ) -> np.ndarray:
        """Evaluate the map on checked inputs (see :func:`favor.features.random_features`).

        ``is_key`` selects the key-side map of a map whose queries and keys differ
        (``symmetric=False``); symmetric maps ignore it.
        """
        x = check_float_array("x", x, min_ndim=1)
        projection = check_projection(projection, x.shape[-1])
        kernel = check_choice("kernel", self.kernels[0] if kernel is None else kernel, self.kernels)
        if kernel != "arccos":  # the exponential maps use |x|^2 (formulas §2.4)
            check_norms("x", x)
        width = self.width_for_rows(projection.shape[0])
        check_memory(
            "the feature matrix",
            (*x.shape[:-1], width),
            x.dtype,
            because=f"{x.shape[:-1]} inputs x {width} features",
        )
        if params is None:
            params = self.fit_params(x.reshape(-1, x.shape[-1]), projection)
        else:
            params = np.ascontiguousarray(params, dtype=np.float64).reshape(-1)
        with np.errstate(over="ignore", invalid="ignore"):
            out = self.numpy_formula()(x, projection, kernel, 1.0, params, bool(is_key))
        check_finite_result(
            f"the {self.name!r} feature map",
            out,
            f"the projections W x or their exponentials overflow {out.dtype} (largest "
            f"|x| entry {np.max(np.abs(x)):.3g}, largest |W| entry "
            f"{np.max(np.abs(projection)):.3g})",
        )
        return out


@dataclass(frozen=True)
class Sampler:
    r"""One projection sampler: how the rows :math:`\omega_i` of ``W`` are drawn.

    Attributes
    ----------
    name : str
        Registry key (the value of ``projection=``).
    draw : str or callable
        ``draw(n_components, n_features, rng) -> (n_components, n_features)`` float64,
        from the :class:`numpy.random.Generator` ``rng`` only.
    marginal : str
        The marginal law of each row (e.g. ":math:`\mathcal N(0, I_d)`").
    coupling : str
        How rows depend on each other.
    remainder : str
        What happens when ``n_components`` is not a multiple of ``n_features``.
    unbiased_for : tuple of str, optional
        The feature maps this sampler keeps unbiased; None means every map.
    bounded_bias_for : tuple of str, default=()
        Further maps it is allowed for although their estimates are *not* exactly
        unbiased, because the bias has a proven bound (stated in ``bias``).
        :func:`check_compatible` refuses every map in neither list.
    bias : str, default=""
        The bias of the maps in ``bounded_bias_for`` (empty for exact samplers).
    """

    name: str
    draw: str | Callable[..., np.ndarray]
    marginal: str
    coupling: str
    remainder: str
    unbiased_for: tuple[str, ...] | None = None
    bounded_bias_for: tuple[str, ...] = ()
    bias: str = ""

    def __call__(self, n_components: int, n_features: int, *, rng: Any = None) -> np.ndarray:
        """Draw ``(n_components, n_features)`` float64 rows from ``rng`` (checked)."""
        n_components = check_positive_int("n_components", n_components)
        n_features = check_positive_int("n_features", n_features)
        check_memory(
            "the projection",
            (n_components, n_features),
            np.float64,
            because=f"n_components={n_components}",
        )
        return _load(self.draw)(n_components, n_features, as_generator(rng))


@dataclass(frozen=True)
class Kernel:
    r"""One kernel :math:`k(x, y)` and how :class:`favor.FavorSampler` reaches it.

    Attributes
    ----------
    name : str
        Registry key (the value of ``kernel=``).
    exact : str or callable
        The exact kernel ``k(x, y, *, gamma)`` (:mod:`favor.exact`).
    input_scale : callable
        ``gamma -> c``: ``FavorSampler`` maps ``c * x`` with the unit-scale form of the
        kernel (``rbf``: :math:`\sqrt{2\gamma}`, ``softmax``: :math:`\sqrt\gamma`).
    feature_kernel : str
        The unit-scale kernel name passed to the feature maps.
    default_features : str
        The map ``FavorSampler(features="auto")`` uses.
    rows : str or callable, optional
        Spectral law of the rows when it is not :math:`\mathcal N(0, I_d)`:
        ``rows(projection, n_components, n_features, rng, nu) -> (m, d)`` float64 rows,
        marginally the unit-scale kernel's spectral law under the named coupling. None:
        the sampler's Gaussian rows.
    features : tuple of str, optional
        The maps valid for this kernel (None: every map whose kernels include
        ``feature_kernel``).
    projections : tuple of str, optional
        The couplings valid for this kernel (None: every sampler).
    reason : str
        Why other maps or couplings are refused (quoted in the error).
    """

    name: str
    exact: str | Callable[..., np.ndarray]
    input_scale: Callable[[float], float]
    feature_kernel: str
    default_features: str
    rows: str | Callable[..., np.ndarray] | None = None
    features: tuple[str, ...] | None = None
    projections: tuple[str, ...] | None = None
    reason: str = ""

    def exact_function(self) -> Callable[..., np.ndarray]:
        """The exact kernel function."""
        return _load(self.exact)

    def draw_rows(
        self,
        projection: str,
        n_components: int,
        n_features: int,
        rng: Any = None,
        nu: float | None = None,
    ) -> np.ndarray:
        r"""Draw unit-scale rows from this kernel's spectral law under the coupling ``projection``.

        The one way :class:`favor.FavorSampler` (and ``theory``) draws a kernel's rows:
        the kernel's ``rows`` hook when it has one, otherwise the sampler registered as
        ``projection`` (:math:`\mathcal N(0, I_d)` rows; the same draw as
        :func:`favor.sampling.draw_projection`).

        Parameters
        ----------
        projection : str
            A registered sampler name (the coupling).
        n_components, n_features : int
            Shape :math:`(m, d)`.
        rng : None, int, SeedSequence or numpy.random.Generator, default=None
            Source of randomness.
        nu : float, optional
            Matérn smoothness (passed to the ``rows`` hook; ignored by the others).

        Returns
        -------
        numpy.ndarray of shape (n_components, n_features), float64
            The rows.
        """
        rng = as_generator(rng)
        if self.rows is None:
            return sampler(projection)(n_components, n_features, rng=rng)
        n_components = check_positive_int("n_components", n_components)
        n_features = check_positive_int("n_features", n_features)
        return _load(self.rows)(projection, n_components, n_features, rng, nu)


_BUILTIN_FEATURE_MAPS = (
    FeatureMap(
        "positive",
        "favor.features:positive",
        1,
        ("softmax", "rbf"),
        nonnegative=True,
        jit="favor._jit.feature_rows:positive",
        torch="favor.torch.features:positive_split",
        exponent_signs=(1,),
        closed_forms=("mse_positive",),
    ),
    FeatureMap(
        "hyperbolic",
        "favor.features:hyperbolic",
        2,
        ("softmax", "rbf"),
        nonnegative=True,
        jit="favor._jit.feature_rows:hyperbolic",
        torch="favor.torch.features:hyperbolic_split",
        exponent_signs=(1, -1),
        closed_forms=("mse_hyperbolic",),
    ),
    FeatureMap(
        "trigonometric",
        "favor.features:trigonometric",
        2,
        ("softmax", "rbf"),
        nonnegative=False,
        jit="favor._jit.feature_rows:trigonometric",
        torch="favor.torch.features:trigonometric_split",
        closed_forms=("mse_trigonometric",),
    ),
    FeatureMap(
        "oprf",
        "favor.gerf:registry_formula",
        1,
        ("softmax", "rbf"),
        nonnegative=True,
        jit="favor._jit.gerf_rows:gerf",
        torch="favor.torch.gerf:gerf_split",
        params="favor.gerf:registry_params",
        closed_forms=("gerf_single_variance", "mse_favorpp"),
        prepare="favor.gerf:prepare_attention",
    ),
    FeatureMap(
        "saderf",
        "favor.gerf:registry_formula",
        1,
        ("softmax",),
        nonnegative=True,
        jit="favor._jit.gerf_rows:gerf",
        torch="favor.torch.gerf:gerf_split",
        symmetric=False,
        params="favor.gerf:registry_params",
        closed_forms=("gerf_single_variance", "saderf_psi"),
        prepare="favor.gerf:prepare_attention",
    ),
    FeatureMap(
        "hybrid",
        "favor.hybrid:registry_formula",
        4,
        ("softmax",),
        nonnegative=False,
        jit="favor._jit.hybrid_rows:hybrid",
        torch="favor.torch.hybrid:hybrid_split",
        symmetric=False,
        closed_forms=("mse_hybrid",),
        sign_rows=4,
    ),
    FeatureMap(
        "relu",
        "favor.features:relu",
        1,
        ("arccos",),
        nonnegative=True,
        jit="favor._jit.feature_rows:relu",
        torch="favor.torch.features:relu_split",
    ),
)

_BUILTIN_SAMPLERS = (
    Sampler(
        "orthogonal",
        "favor.sampling:draw_orthogonal",
        marginal=r"N(0, I_d): Haar direction times an independent chi_d length",
        coupling="exactly orthogonal directions within each block of d consecutive rows; "
        "blocks independent",
        remainder="ceil(m / d) blocks are drawn and the first m rows kept (the last block "
        "is truncated)",
    ),
    Sampler(
        "iid",
        "favor.sampling:draw_iid",
        marginal="N(0, I_d)",
        coupling="independent rows",
        remainder="no blocks: any m",
    ),
    Sampler(
        "structured",
        "favor.couplings:draw_structured",
        marginal="approximately N(0, I_d): chi_p length times a SORF direction (first d of "
        "p = next power of two coordinates); not Haar, so estimates carry a small, bounded "
        "bias (see bias)",
        coupling="blocks sqrt(p) H D1 H D2 H D3 with Rademacher diagonals: orthogonal rows "
        "within a block of p when d = p; inputs are zero-padded to p features",
        remainder="ceil(m / p) blocks, the last one truncated (prefer m a multiple of p)",
        unbiased_for=(),
        bounded_bias_for=("trigonometric", "positive", "hyperbolic"),
        bias="not exactly unbiased for any map (the directions take finitely many values). "
        "Proven bounds (formulas §3.3 [W6]) at unit scale, z = ||x - y||, r = ||x + y||: "
        "trigonometric |bias| <= z^4 / (4p) with sqrt(p) lengths, <= (1 + 1/p) z^4 / (2p) "
        "with chi lengths when z^4 <= 4p (measured -1.5e-4 at p = 64, z = 1.5: second "
        "order in 1/p); positive and "
        "hyperbolic: relative bias in [-r^4 / (4p), 0] with sqrt(p) lengths, and a "
        "chi-length interval of width about r^4 / (4p). Other maps have no bound and are "
        "refused",
    ),
    Sampler(
        "qmc",
        "favor.couplings:draw_qmc",
        marginal="N(0, I_d) exactly: inverse normal CDF of a scrambled (randomly shifted) "
        "Sobol point",
        coupling="the first m points of one scrambled Sobol sequence (low discrepancy); "
        "balanced when m is a power of two; d <= 21201",
        remainder="no blocks: any m (powers of two recommended)",
    ),
    Sampler(
        "simplex",
        "favor.couplings:draw_simplex",
        marginal="N(0, I_d): Haar direction times an independent chi_d length",
        coupling="regular-simplex directions (pairwise cosine -1/(d-1)) under one Haar "
        "rotation per block of d rows; blocks independent",
        remainder="ceil(m / d) blocks, the last one truncated",
    ),
    Sampler(
        "simplex+",
        "favor.couplings:draw_simplex_plus",
        marginal="N(0, I_d): chi_d lengths drawn first; the directions depend on them, but "
        "one Haar rotation per block keeps each direction uniform and independent of its "
        "length",
        coupling="norm-dependent simplex (SimRF+): from the rotated regular simplex, sweeps "
        "of s_i <- -r_i / |r_i|, r_i = sum over j != i of l_j s_j, so that each block's rows "
        "sum to zero; lower positive-feature MSE than simplex (0.33x at |x| = |y| = 0.2, "
        "0.96x at 1), higher hyperbolic and trigonometric MSE (1.03-1.28x; formulas §6.2 "
        "[E8])",
        remainder="ceil(m / d) blocks, the last one cut to m mod d rows before the sweeps",
    ),
)


def _rbf_scale(gamma: float) -> float:
    return float(np.sqrt(2.0 * gamma))


def _softmax_scale(gamma: float) -> float:
    return float(np.sqrt(gamma))


def _laplacian_scale(gamma: float) -> float:
    return float(gamma)


_BUILTIN_KERNELS = (
    Kernel("rbf", "favor.exact:rbf_kernel", _rbf_scale, "rbf", "trigonometric"),
    Kernel("softmax", "favor.exact:softmax_kernel", _softmax_scale, "softmax", "hyperbolic"),
    Kernel(
        "laplacian",
        "favor.kernels:laplacian_kernel",
        _laplacian_scale,
        "rbf",
        "trigonometric",
        rows="favor.kernels:laplacian_rows",
        features=("trigonometric",),
        projections=("iid", "qmc"),
        reason="its spectral law has independent Cauchy coordinates: no moment generating "
        "function (so no exponential maps) and not rotation invariant (so no direction "
        "couplings)",
    ),
    Kernel(
        "matern",
        "favor.kernels:matern_kernel_gamma",
        _rbf_scale,
        "rbf",
        "trigonometric",
        rows="favor.kernels:matern_rows",
        features=("trigonometric",),
        reason="its spectral law (multivariate Student t) has no moment generating function",
    ),
)

_FEATURE_MAPS: dict[str, FeatureMap] = {spec.name: spec for spec in _BUILTIN_FEATURE_MAPS}
_SAMPLERS: dict[str, Sampler] = {spec.name: spec for spec in _BUILTIN_SAMPLERS}
_KERNELS: dict[str, Kernel] = {spec.name: spec for spec in _BUILTIN_KERNELS}

#: Feature maps by name (read-only; extend with :func:`register_feature_map`).
FEATURE_MAPS: MappingProxyType[str, FeatureMap] = MappingProxyType(_FEATURE_MAPS)
#: Projection samplers by name (read-only; extend with :func:`register_sampler`).
SAMPLERS: MappingProxyType[str, Sampler] = MappingProxyType(_SAMPLERS)
#: Kernels offered by :class:`favor.FavorSampler` (read-only; see :func:`register_kernel`).
KERNELS: MappingProxyType[str, Kernel] = MappingProxyType(_KERNELS)


def feature_map(name: Any, *, argument: str = "features") -> FeatureMap:
    """Return the registered map ``name``; a ValueError naming ``argument`` lists the choices."""
    return _FEATURE_MAPS[check_choice(argument, name, _FEATURE_MAPS)]


def sampler(name: Any, *, argument: str = "projection") -> Sampler:
    """Return the registered sampler ``name``; a ValueError naming ``argument`` lists the choices."""
    return _SAMPLERS[check_choice(argument, name, _SAMPLERS)]


def kernel(name: Any, *, argument: str = "kernel") -> Kernel:
    """Return the registered kernel ``name``; a ValueError naming ``argument`` lists the choices."""
    return _KERNELS[check_choice(argument, name, _KERNELS)]


def check_compatible(sampler_name: str, features: str) -> None:
    """Refuse a sampler that neither keeps ``features`` unbiased nor bounds its bias (ValueError)."""
    spec = sampler(sampler_name)
    if spec.unbiased_for is None or features in spec.unbiased_for:
        return
    if features in spec.bounded_bias_for:
        return
    allowed = ", ".join(repr(n) for n in (*spec.unbiased_for, *spec.bounded_bias_for))
    if spec.bounded_bias_for:
        raise ValueError(
            f"projection={sampler_name!r} is not unbiased for features={features!r} and its "
            f"bias has no proven bound for that map; it supports features {allowed} (with a "
            "bounded bias: formulas §3.3); use projection='orthogonal' for an unbiased map"
        )
    raise ValueError(
        f"projection={sampler_name!r} is not unbiased for features={features!r}; "
        f"it supports features {allowed}"
    )


@contextlib.contextmanager
def _registered(table: dict[str, Any], entry: Any, replace: bool) -> Iterator[Any]:
    name = entry.name
    if not isinstance(name, str) or not name:
        raise ValueError(f"a registry entry needs a non-empty str name, got {name!r}")
    if name in table and not replace:
        raise ValueError(f"{name!r} is already registered (pass replace=True to shadow it)")
    previous = table.get(name)
    table[name] = entry
    try:
        yield entry
    finally:
        if previous is None:
            table.pop(name, None)
        else:
            table[name] = previous


def register_feature_map(spec: FeatureMap, *, replace: bool = False) -> Any:
    """Context manager: ``spec`` is registered inside the ``with`` block only.

    The supported extension hook for tests and experiments (the public tables are
    read-only). ``replace=True`` temporarily shadows an existing entry, e.g. a broken
    variant for a negative control.

    Examples
    --------
    >>> from favor import registry
    >>> spec = registry.FEATURE_MAPS["relu"]
    >>> from dataclasses import replace
    >>> with registry.register_feature_map(replace(spec, name="relu2")):
    ...     "relu2" in registry.FEATURE_MAPS
    True
    >>> "relu2" in registry.FEATURE_MAPS
    False
    """
    if not isinstance(spec, FeatureMap):
        raise ValueError(f"spec must be a FeatureMap, got {type(spec).__name__}")
    return _registered(_FEATURE_MAPS, spec, replace)


def register_sampler(spec: Sampler, *, replace: bool = False) -> Any:
    """Context manager: ``spec`` is registered inside the ``with`` block only (see
    :func:`register_feature_map`)."""
    if not isinstance(spec, Sampler):
        raise ValueError(f"spec must be a Sampler, got {type(spec).__name__}")
    return _registered(_SAMPLERS, spec, replace)


def register_kernel(spec: Kernel, *, replace: bool = False) -> Any:
    """Context manager: ``spec`` is registered inside the ``with`` block only (see
    :func:`register_feature_map`)."""
    if not isinstance(spec, Kernel):
        raise ValueError(f"spec must be a Kernel, got {type(spec).__name__}")
    return _registered(_KERNELS, spec, replace)
