r"""Random projection matrices :math:`W = (\omega_1, \dots, \omega_m)^T` for random features.

Every sampler returns a ``(n_components, n_features)`` float64 NumPy array drawn on the
host from a :class:`numpy.random.Generator`, so one seed gives the same projection on
every backend (NumPy, torch CPU, torch CUDA): callers cast and move it afterwards.

i.i.d. projections
    Rows :math:`\omega_i \sim \mathcal N(0, I_d)` independently. Every feature map in
    :mod:`favor.features` is unbiased for its kernel with these rows (Performers Lemma 1).

Orthogonal projections (ORF; Yu et al. 2016, Performers Sec. 2.4, formulas §3.1)
    Rows are drawn in blocks of up to ``d`` exactly orthogonal directions. A block is the
    Q factor of the QR decomposition of a ``d x d`` Gaussian matrix, **with its columns
    multiplied by** :math:`\operatorname{sign}(\operatorname{diag} R)`. LAPACK's
    Householder QR fixes the signs of ``diag R`` (it is not Haar), which makes the rows of
    an uncorrected ``Q`` point into a half-space and biases the one-sided positive
    estimator by several percent (formulas §3.1, pitfall C4a); the correction makes ``Q``
    exactly Haar distributed. Blocks are independent; ``n_components > n_features``
    stacks ``ceil(m / d)`` of them and keeps the first ``m`` rows.

    With ``norms="chi"`` (default) each row is rescaled by an independent
    :math:`\chi_d` variable, so every row is marginally :math:`\mathcal N(0, I_d)` and
    every estimator stays unbiased, while the orthogonal coupling lowers its variance
    (Performers Theorem 2). With ``norms="fixed"`` every row has length
    :math:`\sqrt d`: rows are uniform on that sphere, and positive features then estimate
    the regularised softmax kernel SMREG (Performers Sec. 2.3, Theorem 1), **not** the
    softmax kernel; trigonometric features estimate a Bessel-J kernel, not the Gaussian
    kernel (formulas §2.5, 3.1).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike

from favor._guards import check_memory
from favor._validation import (
    RandomLike,
    as_generator,
    check_choice,
    check_float_array,
    check_positive_int,
)
from favor.registry import check_compatible, feature_map, sampler

__all__ = [
    "DEFAULT_N_COMPONENTS",
    "check_projection_shape",
    "draw_projection",
    "draw_sign_rows",
    "haar_blocks",
    "haar_orthogonal",
    "iid_projection",
    "orthogonal_projection",
    "resolve_projection",
]

#: Default number of random projections when one is drawn (attention, decoding, torch).
DEFAULT_N_COMPONENTS = 256


def draw_iid(n_components: int, n_features: int, rng: np.random.Generator) -> np.ndarray:
    """Unchecked draw of the ``"iid"`` sampler (see :func:`iid_projection`)."""
    return rng.standard_normal((n_components, n_features))


def haar_blocks(n_blocks: int, n_features: int, rng: np.random.Generator) -> np.ndarray:
    r"""Draw ``n_blocks`` independent Haar-distributed ``d x d`` orthogonal matrices (rows orthonormal).

    One batched QR of Gaussian blocks :math:`G = QR`, each :math:`Q` multiplied column by
    column by :math:`\operatorname{sign} R_{jj}` (Mezzadri 2007); without the correction the
    result is not Haar (formulas §3.1). The Gaussian stream is drawn in C order, so block
    ``b`` is what the ``b``-th of ``n_blocks`` one-block calls would give.

    Parameters
    ----------
    n_blocks : int
        Number of blocks.
    n_features : int
        The dimension :math:`d`.
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    numpy.ndarray of shape (n_blocks, n_features, n_features)
        Orthogonal matrices whose rows are the projection directions of each block.
    """
    gaussian = rng.standard_normal((n_blocks, n_features, n_features))
    q, r = np.linalg.qr(gaussian)
    signs = np.where(np.diagonal(r, axis1=-2, axis2=-1) < 0, -1.0, 1.0)
    return np.swapaxes(q * signs[:, None, :], -1, -2)


def haar_orthogonal(n_features: int, rng: np.random.Generator) -> np.ndarray:
    """Draw one Haar-distributed ``d x d`` orthogonal matrix (one block of :func:`haar_blocks`).

    Parameters
    ----------
    n_features : int
        The dimension :math:`d`.
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    numpy.ndarray of shape (n_features, n_features)
        An orthogonal matrix whose rows are the projection directions of one block.
    """
    return haar_blocks(1, n_features, rng)[0]


def draw_orthogonal(
    n_components: int, n_features: int, rng: np.random.Generator, norms: str = "chi"
) -> np.ndarray:
    """Unchecked draw of the ``"orthogonal"`` sampler (see :func:`orthogonal_projection`)."""
    n_blocks = -(-n_components // n_features)
    directions = haar_blocks(n_blocks, n_features, rng).reshape(-1, n_features)[:n_components]
    if norms == "chi":
        lengths = np.sqrt(rng.chisquare(n_features, size=n_components))
    else:
        lengths = np.full(n_components, np.sqrt(n_features))
    return directions * lengths[:, None]


def iid_projection(n_components: int, n_features: int, *, rng: RandomLike = None) -> np.ndarray:
    r"""Draw a projection with i.i.d. standard Gaussian rows.

    Parameters
    ----------
    n_components : int
        Number of random projections :math:`m` (rows).
    n_features : int
        Input dimension :math:`d` (columns).
    rng : None, int, SeedSequence or numpy.random.Generator, default=None
        Source of randomness.

    Returns
    -------
    numpy.ndarray of shape (n_components, n_features), float64
        :math:`W` with :math:`W_{ij} \sim \mathcal N(0, 1)` independently.

    Examples
    --------
    >>> from favor.sampling import iid_projection
    >>> iid_projection(4, 3, rng=0).shape
    (4, 3)
    """
    n_components = check_positive_int("n_components", n_components)
    n_features = check_positive_int("n_features", n_features)
    check_memory(
        "the projection",
        (n_components, n_features),
        np.float64,
        because=f"n_components={n_components}",
    )
    return draw_iid(n_components, n_features, as_generator(rng))


def orthogonal_projection(
    n_components: int,
    n_features: int,
    *,
    norms: Literal["chi", "fixed"] = "chi",
    rng: RandomLike = None,
) -> np.ndarray:
    r"""Draw block-orthogonal random projections (ORF) with Haar-exact directions.

    Parameters
    ----------
    n_components : int
        Number of random projections :math:`m` (rows). Values above ``n_features`` stack
        independent orthogonal blocks.
    n_features : int
        Input dimension :math:`d` (columns).
    norms : {"chi", "fixed"}, default="chi"
        Row lengths. ``"chi"``: independent :math:`\chi_d` lengths, so each row is
        marginally :math:`\mathcal N(0, I_d)` and every feature map stays unbiased for its
        kernel. ``"fixed"``: every row has length :math:`\sqrt d`; positive features then
        estimate the regularised softmax kernel SMREG, not SM (Performers Thm 1).
    rng : None, int, SeedSequence or numpy.random.Generator, default=None
        Source of randomness.

    Returns
    -------
    numpy.ndarray of shape (n_components, n_features), float64
        Rows within each block of ``n_features`` consecutive rows are exactly orthogonal.

    Notes
    -----
    Orthogonal coupling never increases the MSE of positive softmax features
    (Performers Theorem 2, formulas §3.2):
    :math:`\mathrm{MSE}_{ort} \le \mathrm{MSE}_{iid} - \frac{2(m-1)}{m(d+2)}(SM - \Lambda)^2`
    for :math:`m \le d`.

    Examples
    --------
    >>> import numpy as np
    >>> from favor.sampling import orthogonal_projection
    >>> w = orthogonal_projection(3, 3, norms="fixed", rng=0)
    >>> bool(np.allclose(w @ w.T, 3 * np.eye(3)))
    True
    """
    n_components = check_positive_int("n_components", n_components)
    n_features = check_positive_int("n_features", n_features)
    check_choice("norms", norms, ("chi", "fixed"))
    check_memory(
        "the projection",
        (n_components, n_features),
        np.float64,
        because=f"n_components={n_components}",
    )
    return draw_orthogonal(n_components, n_features, as_generator(rng), norms)


def draw_projection(
    name: str,
    n_components: int,
    n_features: int,
    *,
    rng: RandomLike = None,
    n_heads: int | None = None,
) -> np.ndarray:
    """Draw a projection with the sampler registered under ``name`` in :data:`favor.registry.SAMPLERS`.

    This is the one place every backend draws from, so one seed gives the same
    projection on NumPy, torch CPU and torch CUDA.

    Parameters
    ----------
    name : str
        The sampler ("orthogonal", "iid", or any registered).
    n_components : int
        Number of rows :math:`m`.
    n_features : int
        Number of columns :math:`d`.
    rng : None, int, SeedSequence or numpy.random.Generator, default=None
        Source of randomness.
    n_heads : int, optional
        If given, draw ``n_heads`` independent projections, in head order, from the same
        generator and stack them.

    Returns
    -------
    numpy.ndarray of shape (n_components, n_features) or (n_heads, n_components, n_features)
        The projection(s), float64.
    """
    spec = sampler(name)
    rng = as_generator(rng)
    if n_heads is None:
        return spec(n_components, n_features, rng=rng)
    n_heads = check_positive_int("n_heads", n_heads)
    return np.stack([spec(n_components, n_features, rng=rng) for _ in range(n_heads)])


def _sign_rows(features: str | None) -> int:
    return 0 if features is None else feature_map(features).sign_rows


def draw_sign_rows(base: np.ndarray, features: str | None, rng: RandomLike) -> np.ndarray:
    r"""``base`` (``(m, d)`` or ``(H, m, d)``) with the map's sign rows appended, if it has any.

    The sign rows of ``"hybrid"`` (:mod:`favor.hybrid`) are i.i.d. :math:`\mathcal N(0, I_d)`,
    drawn from ``rng`` after the base rows (one block per head), so they are independent
    of them whatever the base coupling.
    """
    k = _sign_rows(features)
    if not k:
        return base
    signs = as_generator(rng).standard_normal((*base.shape[:-2], k, base.shape[-1]))
    return np.concatenate([base, signs], axis=-2)


def check_projection_shape(
    shape: tuple[int, ...],
    n_features: int,
    n_heads: int | None,
    n_components: Any,
    sign_rows: int = 0,
) -> None:
    """Check a prebuilt projection's shape, ``(m, d)`` or ``(n_heads, m, d)``, and ``n_components``.

    Shared by the NumPy engine, :mod:`favor.decoding` and :mod:`favor.torch`. For a map
    with ``sign_rows`` :math:`k` (:mod:`favor.registry`) the projection has ``m + k`` rows
    and ``n_components`` counts the ``m`` base rows.
    """
    shape = tuple(shape)
    expected = (n_features,) if n_heads is None else (n_heads, n_features)
    if len(shape) != len(expected) + 1 or (*shape[:-2], shape[-1]) != expected:
        want = "(n_components, d)" if n_heads is None else "(n_heads, n_components, d)"
        raise ValueError(
            f"projection must have shape {want} with d={n_features}"
            + ("" if n_heads is None else f" and n_heads={n_heads}")
            + f", got shape {shape}"
        )
    if shape[-2] <= sign_rows:
        raise ValueError(
            f"projection must have n_components base rows followed by {sign_rows} sign rows "
            f"for this feature map, got {shape[-2]} rows"
        )
    base = shape[-2] - sign_rows
    if n_components is not None and check_positive_int("n_components", n_components) != base:
        counted = "row count" if not sign_rows else f"base row count (rows - {sign_rows} sign rows)"
        raise ValueError(
            f"n_components must be None or equal to the projection's {counted} {base}, got "
            f"{n_components}"
        )


def resolve_projection(
    projection: str | ArrayLike | None,
    n_components: int | None,
    n_features: int,
    *,
    rng: RandomLike,
    n_heads: int | None,
    features: str | None = None,
) -> np.ndarray:
    r"""Return the projection(s) as a float64 array of shape ``(P, m, d)``, P = heads or 1.

    The one resolution rule of ``projection=`` for every backend: ``None`` means
    ``"orthogonal"``; a sampler name draws ``n_components`` rows (default
    :data:`DEFAULT_N_COMPONENTS`) through :func:`draw_projection` from
    ``as_generator(rng)``, one projection per head when ``n_heads`` is given (after checking
    that the sampler keeps ``features`` unbiased); an array is checked against
    ``n_components``, ``n_features`` and the heads. A map with sign rows
    (:mod:`favor.registry`, ``"hybrid"``) gets them after the base rows: drawn as i.i.d.
    :math:`\mathcal N(0, I_d)` rows from the same generator after all base rows
    (:func:`draw_sign_rows`), or the last rows of a given array.
    """
    if projection is None:
        projection = "orthogonal"
    if isinstance(projection, str):
        sampler(projection)
        if features is not None:
            check_compatible(projection, features)
        m = (
            DEFAULT_N_COMPONENTS
            if n_components is None
            else check_positive_int("n_components", n_components)
        )
        generator = as_generator(rng)
        drawn = draw_projection(projection, m, n_features, rng=generator, n_heads=n_heads)
        drawn = draw_sign_rows(drawn, features, generator)
        return drawn if n_heads is not None else drawn[None]
    w = check_float_array("projection", projection, min_ndim=2)
    check_projection_shape(w.shape, n_features, n_heads, n_components, _sign_rows(features))
    w = w.astype(np.float64, copy=False)
    return w if n_heads is not None else w[None]
