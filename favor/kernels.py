r"""Laplacian and Matérn kernels: exact values and spectral laws for random Fourier features.

Both kernels are shift invariant, :math:`k(x, y) = \kappa(x - y)`, so by Bochner's theorem
:math:`\kappa(\Delta) = E_{\omega \sim P}[\cos(\omega^T \Delta)]` for a spectral law
:math:`P`, and the trigonometric map :math:`m^{-1/2}(\cos Wx, \sin Wx)` is unbiased
whenever every row of :math:`W` is marginally :math:`P` (Rahimi & Recht 2007). Neither law
has a moment generating function, so the exponential (positive, hyperbolic) maps do not
exist for these kernels: only ``features="trigonometric"`` is valid.

Laplacian kernel (scikit-learn's :func:`sklearn.metrics.pairwise.laplacian_kernel`)
    :math:`k(x, y) = \exp(-\gamma \lVert x - y\rVert_1) = \prod_j e^{-\gamma |\Delta_j|}`,
    a product over coordinates, so :math:`P` has independent Cauchy coordinates of scale
    :math:`\gamma`. This law is **not** rotation invariant: orthogonal, structured and
    simplex couplings, which couple *directions* assuming a Haar-distributed direction,
    are not unbiased for it and are refused. Valid couplings: ``"iid"`` and ``"qmc"``
    (coordinate-wise inverse Cauchy CDF :math:`\tan(\pi(u - 1/2))` of scrambled Sobol
    points, each row marginally product-Cauchy).

Matérn kernel (scikit-learn's :class:`sklearn.gaussian_process.kernels.Matern`)
    Isotropic in the Euclidean distance :math:`r = \lVert x - y\rVert / \ell`:
    :math:`\nu = 1/2`: :math:`e^{-r}`; :math:`\nu = 3/2`: :math:`(1 + \sqrt3 r)e^{-\sqrt3 r}`;
    :math:`\nu = 5/2`: :math:`(1 + \sqrt5 r + 5r^2/3)e^{-\sqrt5 r}`. Its spectral density is
    proportional to :math:`(2\nu/\ell^2 + \lVert\omega\rVert^2)^{-(\nu + d/2)}`, the
    multivariate Student t law with :math:`2\nu` degrees of freedom and scale
    :math:`1/\ell` (Rasmussen & Williams 2006, Eq. 4.15): :math:`\omega = g \sqrt{2\nu / s}
    / \ell` with :math:`g \sim \mathcal N(0, I_d)` and an independent
    :math:`s \sim \chi^2_{2\nu}`. This law is rotation invariant (Haar direction times a
    radial law), so **every** coupling whose rows are marginally Gaussian becomes a valid
    Matérn coupling by multiplying each row by its own independent factor
    :math:`\sqrt{2\nu/s}` (:func:`student_t_row_scales`): the directions keep their
    coupling, the lengths get the Matérn radial law. The bandwidth mapping used by
    :class:`favor.FavorSampler` is :math:`\ell = 1/\sqrt{2\gamma}`, so that
    :math:`\nu \to \infty` recovers ``kernel="rbf"`` with the same ``gamma``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from favor._validation import as_generator, check_float_array, check_positive_int

__all__ = [
    "LAPLACIAN_COUPLINGS",
    "MATERN_NUS",
    "cauchy_projection",
    "check_nu",
    "laplacian_kernel",
    "laplacian_rows",
    "matern_kernel",
    "matern_kernel_gamma",
    "matern_profile",
    "matern_rows",
    "student_t_row_scales",
]

#: The half-integer smoothness values offered (closed forms above).
MATERN_NUS = (0.5, 1.5, 2.5)
#: Couplings under which every row is marginally product-Cauchy.
LAPLACIAN_COUPLINGS = ("iid", "qmc")
#: Rows of x processed at once by the exact kernels (bounds the n_x x n_y x d temporary).
_CHUNK_ELEMENTS = 1 << 22


def _check_pair(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    x = check_float_array("x", x, min_ndim=2)
    y = check_float_array("y", y, min_ndim=2)
    if x.ndim != 2 or y.ndim != 2:
        raise ValueError(f"x and y must be 2-D (n, d) arrays, got {x.ndim}-D and {y.ndim}-D")
    if x.shape[-1] != y.shape[-1]:
        raise ValueError(
            f"x and y must have the same last axis, got {x.shape[-1]} and {y.shape[-1]}"
        )
    dtype = np.result_type(x.dtype, y.dtype, np.float64)
    return x.astype(dtype, copy=False), y.astype(dtype, copy=False)


def _check_positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"{name} must be a positive finite float, got {value!r}")
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite float, got {value!r}")
    return float(value)


def check_nu(nu: Any) -> float:
    """Validate the Matérn smoothness: one of 0.5, 1.5, 2.5.

    Parameters
    ----------
    nu : float
        The smoothness :math:`\\nu`.

    Returns
    -------
    float
        ``nu`` as a float.
    """
    if isinstance(nu, bool) or not isinstance(nu, (int, float, np.floating, np.integer)):
        raise ValueError(f"nu must be one of {MATERN_NUS}, got {nu!r}")
    if float(nu) not in MATERN_NUS:
        raise ValueError(f"nu must be one of {MATERN_NUS}, got {nu!r}")
    return float(nu)


def _pairwise(x: np.ndarray, y: np.ndarray, reduce: Any) -> np.ndarray:
    """``reduce(x[:, None, :] - y[None, :, :])`` over the last axis, in row chunks of x."""
    out = np.empty((x.shape[0], y.shape[0]), dtype=x.dtype)
    step = max(1, _CHUNK_ELEMENTS // max(1, y.shape[0] * x.shape[1]))
    for start in range(0, x.shape[0], step):
        diff = x[start : start + step, None, :] - y[None, :, :]
        out[start : start + step] = reduce(diff)
    return out


def laplacian_kernel(x: Any, y: Any, *, gamma: float = 1.0) -> np.ndarray:
    r"""Exact Laplacian kernel matrix :math:`\exp(-\gamma \lVert x_i - y_j\rVert_1)`.

    The same definition and ``gamma`` as :func:`sklearn.metrics.pairwise.laplacian_kernel`.

    Parameters
    ----------
    x : array_like of shape (n_x, d)
        Left points.
    y : array_like of shape (n_y, d)
        Right points.
    gamma : float, default=1.0
        Positive inverse length scale of the L1 distance.

    Returns
    -------
    numpy.ndarray of shape (n_x, n_y), float64
        The kernel matrix.

    Examples
    --------
    >>> import numpy as np
    >>> from favor.kernels import laplacian_kernel
    >>> float(laplacian_kernel(np.zeros((1, 2)), np.ones((1, 2)))[0, 0]) == float(np.exp(-2.0))
    True
    """
    x, y = _check_pair(x, y)
    gamma = _check_positive("gamma", gamma)
    dist = _pairwise(x, y, lambda diff: np.abs(diff).sum(axis=-1))
    return np.exp(-gamma * dist)


def matern_profile(r: Any, nu: float) -> np.ndarray:
    r"""The Matérn profile :math:`\kappa_\nu(r)` of the scaled distance :math:`r = \lVert\Delta\rVert/\ell`.

    Parameters
    ----------
    r : array_like
        Non-negative scaled distances.
    nu : {0.5, 1.5, 2.5}
        Smoothness.

    Returns
    -------
    numpy.ndarray
        :math:`e^{-r}`, :math:`(1 + \sqrt3 r)e^{-\sqrt3 r}` or
        :math:`(1 + \sqrt5 r + 5 r^2/3) e^{-\sqrt5 r}`.
    """
    nu = check_nu(nu)
    r = np.asarray(r, dtype=np.float64)
    if nu == 0.5:
        return np.exp(-r)
    if nu == 1.5:
        k = r * np.sqrt(3.0)
        return (1.0 + k) * np.exp(-k)
    k = r * np.sqrt(5.0)
    return (1.0 + k + k**2 / 3.0) * np.exp(-k)


def matern_kernel(x: Any, y: Any, *, nu: float = 1.5, length_scale: float = 1.0) -> np.ndarray:
    r"""Exact isotropic Matérn kernel matrix, as :class:`sklearn.gaussian_process.kernels.Matern`.

    Parameters
    ----------
    x : array_like of shape (n_x, d)
        Left points.
    y : array_like of shape (n_y, d)
        Right points.
    nu : {0.5, 1.5, 2.5}, default=1.5
        Smoothness.
    length_scale : float, default=1.0
        Positive length scale :math:`\ell` of the Euclidean distance.

    Returns
    -------
    numpy.ndarray of shape (n_x, n_y), float64
        :math:`\kappa_\nu(\lVert x_i - y_j\rVert / \ell)` (:func:`matern_profile`).

    Notes
    -----
    Distances are computed from the differences directly (not from the Gram matrix), so
    close points keep full relative accuracy.

    Examples
    --------
    >>> import numpy as np
    >>> from favor.kernels import matern_kernel
    >>> float(matern_kernel(np.zeros((1, 1)), np.ones((1, 1)), nu=0.5)[0, 0]) == float(np.exp(-1.0))
    True
    """
    x, y = _check_pair(x, y)
    nu = check_nu(nu)
    length_scale = _check_positive("length_scale", length_scale)
    dist = _pairwise(x, y, lambda diff: np.sqrt(np.einsum("...i,...i->...", diff, diff)))
    return matern_profile(dist / length_scale, nu)


def student_t_row_scales(n_components: int, nu: float, *, rng: Any = None) -> np.ndarray:
    r"""Independent factors :math:`\sqrt{2\nu / s_i}`, :math:`s_i \sim \chi^2_{2\nu}`.

    Multiplying a row that is marginally :math:`\mathcal N(0, I_d)` by one of these turns
    it into a multivariate Student t row with :math:`2\nu` degrees of freedom, the
    spectral law of the unit-length-scale Matérn kernel (module notes).

    Parameters
    ----------
    n_components : int
        Number of rows.
    nu : {0.5, 1.5, 2.5}
        Matérn smoothness.
    rng : None, int, SeedSequence or numpy.random.Generator, default=None
        Source of randomness.

    Returns
    -------
    numpy.ndarray of shape (n_components,), float64
        The factors.
    """
    n_components = check_positive_int("n_components", n_components)
    nu = check_nu(nu)
    s = as_generator(rng).chisquare(2.0 * nu, size=n_components)
    return np.sqrt(2.0 * nu / s)


def cauchy_projection(
    n_components: int, n_features: int, *, projection: str = "iid", rng: Any = None
) -> np.ndarray:
    r"""Draw rows with independent standard Cauchy coordinates (the unit Laplacian kernel's law).

    Parameters
    ----------
    n_components : int
        Number of rows :math:`m`.
    n_features : int
        Input dimension :math:`d`.
    projection : {"iid", "qmc"}, default="iid"
        ``"iid"``: independent draws; ``"qmc"``: :math:`\tan(\pi(u - 1/2))` of scrambled
        Sobol points (:func:`favor.couplings.qmc_uniform`). Other couplings are refused:
        they couple directions assuming a rotation-invariant law.
    rng : None, int, SeedSequence or numpy.random.Generator, default=None
        Source of randomness.

    Returns
    -------
    numpy.ndarray of shape (n_components, n_features), float64
        Rows :math:`\omega` with :math:`E[\cos(\omega^T\Delta)] = e^{-\lVert\Delta\rVert_1}`.
    """
    n_components = check_positive_int("n_components", n_components)
    n_features = check_positive_int("n_features", n_features)
    if projection not in LAPLACIAN_COUPLINGS:
        raise ValueError(
            f"projection={projection!r} is not unbiased for the Laplacian kernel: its spectral "
            "law has independent Cauchy coordinates, which is not rotation invariant, so only "
            f"couplings that keep each coordinate's marginal law are valid: {LAPLACIAN_COUPLINGS}"
        )
    rng = as_generator(rng)
    if projection == "iid":
        return rng.standard_cauchy((n_components, n_features))
    from favor.couplings import qmc_uniform

    return np.tan(np.pi * (qmc_uniform(n_components, n_features, rng=rng) - 0.5))


def matern_kernel_gamma(x: Any, y: Any, *, gamma: float = 0.5, nu: float = 1.5) -> np.ndarray:
    r"""Matérn kernel in :class:`favor.FavorSampler`'s convention, :math:`\ell = 1/\sqrt{2\gamma}`.

    Parameters
    ----------
    x : array_like of shape (n_x, d)
        Left points.
    y : array_like of shape (n_y, d)
        Right points.
    gamma : float, default=0.5
        Positive scale; ``length_scale = 1 / sqrt(2 gamma)`` (``gamma = 0.5``: unit length).
    nu : {0.5, 1.5, 2.5}, default=1.5
        Smoothness.

    Returns
    -------
    numpy.ndarray of shape (n_x, n_y), float64
        :func:`matern_kernel` with that length scale.
    """
    gamma = _check_positive("gamma", gamma)
    return matern_kernel(x, y, nu=nu, length_scale=1.0 / np.sqrt(2.0 * gamma))


def laplacian_rows(
    projection: str, n_components: int, n_features: int, rng: np.random.Generator, nu: float
) -> np.ndarray:
    """Registry hook: unit-scale Laplacian rows under ``projection`` (:func:`cauchy_projection`).

    Parameters
    ----------
    projection : {"iid", "qmc"}
        The coupling.
    n_components, n_features : int
        Shape.
    rng : numpy.random.Generator
        Source of randomness.
    nu : float
        Ignored (the Matérn smoothness).

    Returns
    -------
    numpy.ndarray of shape (n_components, n_features), float64
        Rows with independent standard Cauchy coordinates.
    """
    return cauchy_projection(n_components, n_features, projection=projection, rng=rng)


def matern_rows(
    projection: str, n_components: int, n_features: int, rng: np.random.Generator, nu: float
) -> np.ndarray:
    r"""Registry hook: unit-length-scale Matérn rows, Gaussian coupling times Student factors.

    Parameters
    ----------
    projection : str
        Any registered sampler with Gaussian marginals; its rows keep their coupling.
    n_components, n_features : int
        Shape.
    rng : numpy.random.Generator
        Source of randomness (the sampler's draw first, then the factors).
    nu : {0.5, 1.5, 2.5}
        Smoothness.

    Returns
    -------
    numpy.ndarray of shape (n_components, n_features), float64
        Rows :math:`\omega_i \sqrt{2\nu/s_i}`, :math:`s_i \sim \chi^2_{2\nu}`.
    """
    from favor.sampling import draw_projection

    nu = check_nu(nu)
    rows = draw_projection(projection, n_components, n_features, rng=rng)
    return rows * student_t_row_scales(n_components, nu, rng=rng)[:, None]
