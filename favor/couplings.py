r"""Coupled random projections: structured (SORF), randomised quasi-Monte Carlo, simplex.

Like :mod:`favor.sampling`, every sampler returns a ``(n_components, n_features)`` float64
array drawn on the host from a :class:`numpy.random.Generator`. A feature map is unbiased
for its kernel when every row is *marginally* distributed as the kernel's spectral law;
couplings change only the joint law of the rows, to lower the variance.

Structured projections (SORF; Yu et al. 2016, Sec. 4; formulas §3.3)
    With ``p`` the next power of two at or above ``d``, each block of ``p`` rows is
    :math:`\operatorname{diag}(\ell)\,H D_1 H D_2 H D_3`, :math:`H` the normalised
    Walsh-Hadamard matrix and :math:`D_i` independent diagonal matrices of Rademacher
    signs; its rows are orthonormal. **Padding:** an input with ``d < p`` features is
    treated as the ``p``-vector with ``p - d`` trailing zeros, which is the same as keeping
    the first ``d`` columns of each ``p``-column block; that is what the returned
    ``(m, d)`` matrix holds. Lengths :math:`\ell` are independent :math:`\chi_p` variables
    (``norms="chi"``, so each row has the second moments of :math:`\mathcal N(0, I)`) or
    :math:`\sqrt p` (``norms="fixed"``, the paper's choice). **Bias:** SORF directions take
    finitely many values, so no SORF estimator is exactly unbiased, whatever the lengths.
    Averaging :math:`D_1` exactly gives :math:`E\cos\omega^T\Delta = E\prod_j \cos(t u_j)`
    with :math:`u = H D_2 H D_3 \Delta` and length :math:`t \sqrt p`, from which (formulas
    §3.3 [W6]), at unit scale with :math:`z = \lVert x - y\rVert`: trigonometric
    :math:`|\text{bias}| \le z^4/(4p)` with ``norms="fixed"`` and :math:`\le (1 + 1/p)
    z^4/(2p)` with ``"chi"`` (for :math:`z^4 \le 4p`); positive and hyperbolic (relative,
    :math:`r = \lVert x + y\rVert`): in :math:`[-r^4/(4p), 0]` with ``"fixed"``. Yu et al.
    (Theorem 3) bound the ``"fixed"`` trigonometric bias by :math:`6z/\sqrt p`. Measured at
    :math:`p = 64`, :math:`z = 1.5`: :math:`-6.6 \cdot 10^{-3}` (``"fixed"``) and
    :math:`-1.5 \cdot 10^{-4}` (``"chi"``, the default: second order in :math:`1/p`). Other
    maps (``relu``, ``oprf``, ``saderf``) have no bound and the sampler refuses them
    (:func:`favor.registry.check_compatible`). The transform can be applied
    in :math:`O(p \log p)` per block with :func:`favor._jit.hadamard.sorf_project`
    (see :func:`structured_factors`). When ``d`` is not a power of two, prefer
    ``n_components`` a multiple of ``p``: a cut block of ``r < p`` rows restricted to ``d``
    columns is not orthogonal in :math:`\mathbb R^d` (measured at ``d = 48``: 48 rows had
    1.5x the squared error of orthogonal rows, 64 rows 0.75x).

Randomised quasi-Monte Carlo (formulas §6.7; Avron et al. 2016)
    The rows are :math:`\Phi^{-1}(u_i)` coordinate-wise, where :math:`u_1, \dots, u_m` are
    the first ``m`` points of a Sobol sequence in :math:`[0, 1)^d`
    (:class:`scipy.stats.qmc.Sobol`) **randomised by scrambling**: a random linear matrix
    scramble plus a random digital shift. The digital shift makes every point marginally
    uniform, so every row is marginally :math:`\mathcal N(0, I_d)` and every map stays
    unbiased; the points stay jointly low-discrepancy. Points are taken on a grid of
    :math:`2^{-52}` shifted by half a cell, so :math:`\Phi^{-1}` never sees 0 or 1.
    Choose ``m`` a power of two: Sobol nets are balanced only for :math:`2^k` points (any
    ``m`` is accepted and stays unbiased; the first ``m`` of :math:`2^{\lceil \log_2 m
    \rceil}` points are used). ``d`` is at most 21201 (Sobol direction numbers).

Simplex projections (SimRF; Reid et al. 2023; formulas §6.2)
    Each block of ``d`` rows starts from the unit vectors of a regular simplex,
    :math:`s_i^T s_j = -1/(d-1)` for :math:`i \ne j` (:math:`s_i \propto e_i - \tfrac1d
    \mathbf 1`), rotates the whole block by one Haar-random rotation and gives each row an
    independent :math:`\chi_d` length, so each row is marginally :math:`\mathcal N(0, I_d)`.
    ``m`` not a multiple of ``d``: the last block keeps its first ``m mod d`` rows.

Norm-dependent simplex projections (SimRF+; Reid et al. 2023; formulas §6.2 [E8])
    The same rotations and lengths, then :data:`SIMPLEX_PLUS_SWEEPS` sweeps of
    :math:`s_i \leftarrow -r_i / \lVert r_i\rVert`, :math:`r_i = \sum_{j \ne i} \ell_j s_j`
    over the rows of each (possibly cut) block, which drive the block sum
    :math:`\sum_i \ell_i s_i` to zero. The sweep commutes with rotations, so it is applied
    to the rotated block; given the lengths, each direction is still uniform (the Haar
    rotation is independent of them), so each row stays marginally
    :math:`\mathcal N(0, I_d)` and every map stays unbiased. The zero block sum removes the
    first-order term of the positive (FAVOR+) estimate: measured MSE 0.33, 0.70, 0.90 and
    0.96 times the simplex coupling's at :math:`\lVert x\rVert = \lVert y\rVert` = 0.2,
    0.4, 0.7 and 1 (``d = m = 16``; 0.34 to 0.98 at ``d = 64``). The hyperbolic and
    trigonometric estimates are even in :math:`\omega`, have no such term, and get
    1.03-1.28 times *worse* (formulas §6.2 [E8]): use ``"simplex+"`` with positive features.

Every coupling here is rotation invariant except the quasi-Monte Carlo one, which is
coordinate-wise: it is the only one that also serves product laws such as the Laplacian
kernel's independent Cauchy coordinates (see :mod:`favor.kernels`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from favor._validation import as_generator, check_choice, check_positive_int
from favor.sampling import haar_orthogonal

__all__ = [
    "MAX_QMC_FEATURES",
    "SIMPLEX_PLUS_SWEEPS",
    "SORF_DENSE_MAX_FEATURES",
    "draw_qmc",
    "draw_simplex",
    "draw_simplex_plus",
    "draw_structured",
    "hadamard_matrix",
    "next_power_of_two",
    "qmc_projection",
    "qmc_uniform",
    "simplex_directions",
    "simplex_projection",
    "sorf_matrix",
    "structured_factors",
    "structured_projection",
]

#: Largest padded dimension ``p`` for which a structured projection is applied as one dense
#: GEMM with the materialised matrix; above it :func:`favor._jit.hadamard.sorf_project`
#: (three fast transforms per block) is faster. One-thread measurements, ``m = p``: the
#: fast transform takes 0.97-1.07x the GEMM's time at ``p = 512`` in float32 and 0.5x in
#: float64, 0.3-0.5x at ``p = 1024`` and 0.11x (float32) at ``p = 4096``.
SORF_DENSE_MAX_FEATURES = {"float32": 512, "float64": 256}
#: Entries (blocks x p x d) from which :func:`sorf_matrix` uses the jit transform.
_SORF_JIT_MATERIALISE = 1 << 16
#: Largest dimension :class:`scipy.stats.qmc.Sobol` has direction numbers for.
MAX_QMC_FEATURES = 21201
_QMC_BITS = 52
#: Sweeps of the norm-dependent simplex update (the block sum is below 1e-15 of the
#: lengths after three at d = 8 and 16; one sweep leaves about 3e-7 on average at d = 8).
SIMPLEX_PLUS_SWEEPS = 3


def next_power_of_two(n: int) -> int:
    """Return the smallest power of two ``>= n`` (``n >= 1``).

    Parameters
    ----------
    n : int
        A positive integer.

    Returns
    -------
    int
        ``2**ceil(log2(n))``.
    """
    return 1 << (int(n) - 1).bit_length()


def hadamard_matrix(p: int) -> np.ndarray:
    r"""The normalised ``p x p`` Walsh-Hadamard matrix (Sylvester order), :math:`H^2 = I`.

    Parameters
    ----------
    p : int
        A power of two.

    Returns
    -------
    numpy.ndarray of shape (p, p), float64
        :math:`H_{jk} = p^{-1/2} (-1)^{\mathrm{popcount}(j \,\&\, k)}`.
    """
    p = check_positive_int("p", p)
    if p & (p - 1):
        raise ValueError(f"p must be a power of two, got {p}")
    h = np.ones((1, 1))
    while h.shape[0] < p:
        h = np.block([[h, h], [h, -h]])
    return h / np.sqrt(p)


def structured_factors(
    n_components: int,
    n_features: int,
    *,
    norms: str = "chi",
    random_signs: bool = True,
    rng: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Draw the factors of a stacked SORF projection: sign diagonals and row lengths.

    Parameters
    ----------
    n_components : int
        Number of rows :math:`m`; ``ceil(m / p)`` blocks of ``p = next_power_of_two(d)``.
    n_features : int
        Input dimension :math:`d`.
    norms : {"chi", "fixed"}, default="chi"
        Row lengths: independent :math:`\chi_p` or :math:`\sqrt p`.
    random_signs : bool, default=True
        ``False`` sets every :math:`D_i = I`; then every block is the same deterministic
        matrix (a negative control, never an estimator).
    rng : None, int, SeedSequence or numpy.random.Generator, default=None
        Source of randomness.

    Returns
    -------
    signs : numpy.ndarray of shape (n_blocks, 3, p), float64
        Row ``b`` holds :math:`(D_1, D_2, D_3)` of block ``b`` (entries +-1).
    lengths : numpy.ndarray of shape (n_components,), float64
        Row lengths :math:`\ell`.
    """
    n_components = check_positive_int("n_components", n_components)
    n_features = check_positive_int("n_features", n_features)
    check_choice("norms", norms, ("chi", "fixed"))
    rng = as_generator(rng)
    p = next_power_of_two(n_features)
    n_blocks = -(-n_components // p)
    if random_signs:
        signs = 1.0 - 2.0 * rng.integers(0, 2, size=(n_blocks, 3, p)).astype(np.float64)
    else:
        signs = np.ones((n_blocks, 3, p))
    if norms == "chi":
        lengths = np.sqrt(rng.chisquare(p, size=n_components))
    else:
        lengths = np.full(n_components, np.sqrt(p))
    return signs, lengths


def sorf_matrix(signs: np.ndarray, lengths: np.ndarray, n_features: int) -> np.ndarray:
    r"""Materialise a SORF projection from its factors (see :func:`structured_factors`).

    Parameters
    ----------
    signs : ndarray of shape (n_blocks, 3, p)
        Sign diagonals :math:`(D_1, D_2, D_3)` per block.
    lengths : ndarray of shape (m,)
        Row lengths, ``(n_blocks - 1) p < m <= n_blocks p``.
    n_features : int
        The input dimension ``d <= p``: the first ``d`` columns are kept (zero padding).

    Returns
    -------
    numpy.ndarray of shape (m, n_features), float64
        Rows :math:`\ell_i (H D_1 H D_2 H D_3)_{i, :d}` block by block.
    """
    signs = np.asarray(signs, dtype=np.float64)
    n_blocks, _, p = signs.shape
    d = int(n_features)
    lengths = np.asarray(lengths, dtype=np.float64)
    if n_blocks * p * d >= _SORF_JIT_MATERIALISE:
        # Large: W^T = I_d W^T, the fast jit transform of the identity's rows.
        from favor._jit.hadamard import sorf_project
        from favor._threads import jit_threads, run_ranges

        out = np.empty((d, len(lengths)))
        eye, signs, lengths = np.eye(d), np.ascontiguousarray(signs), lengths * p**-1.5

        def rows(start: int, stop: int) -> None:
            sorf_project(eye[start:stop], signs, lengths, out[start:stop])

        with jit_threads(d) as n_threads:
            run_ranges(rows, d, n_threads)
        return np.ascontiguousarray(out.T)
    # Columns of block b restricted to the first d: H D1 H D2 H D3[:, :d], built by three
    # vectorised fast transforms of D3's first d columns (all blocks at once).
    a = np.zeros((n_blocks, p, d))
    a[:, np.arange(d), np.arange(d)] = signs[:, 2, :d]
    a = _fwht_axis1(a)
    a *= signs[:, 1, :, None]
    a = _fwht_axis1(a)
    a *= signs[:, 0, :, None]
    a = _fwht_axis1(a) * p**-1.5
    m = len(lengths)
    return a.reshape(n_blocks * p, d)[:m] * lengths[:, None]


def _fwht_axis1(a: np.ndarray) -> np.ndarray:
    """Unnormalised Walsh-Hadamard transform (Sylvester order) along axis 1 of ``(b, p, k)``."""
    n_blocks, p, k = a.shape
    h = 1
    while h < p:
        pairs = a.reshape(n_blocks, p // (2 * h), 2, h, k)
        a = np.concatenate(
            (pairs[:, :, 0] + pairs[:, :, 1], pairs[:, :, 0] - pairs[:, :, 1]), axis=2
        )
        h *= 2
    return a.reshape(n_blocks, p, k)


def structured_projection(
    n_components: int,
    n_features: int,
    *,
    norms: str = "chi",
    random_signs: bool = True,
    rng: Any = None,
) -> np.ndarray:
    r"""Draw a structured orthogonal (SORF) projection, materialised.

    Parameters
    ----------
    n_components : int
        Number of rows :math:`m` (any positive integer; blocks of ``p`` rows).
    n_features : int
        Input dimension :math:`d`; blocks have ``p = next_power_of_two(d)`` columns, of
        which the first ``d`` are returned (zero padding of the inputs).
    norms : {"chi", "fixed"}, default="chi"
        Row lengths: independent :math:`\chi_p` or :math:`\sqrt p`.
    random_signs : bool, default=True
        ``False`` only as a negative control (see :func:`structured_factors`).
    rng : None, int, SeedSequence or numpy.random.Generator, default=None
        Source of randomness.

    Returns
    -------
    numpy.ndarray of shape (n_components, n_features), float64
        The projection; rows within a block of ``p`` are orthogonal when ``d = p``.

    Notes
    -----
    Directions are not Haar, so estimators have a small bias: trigonometric
    :math:`|\text{bias}| \le z^4/(4p)` (``norms="fixed"``) and :math:`\le (1 + 1/p)
    z^4/(2p)` (``"chi"``, :math:`z^4 \le 4p`) at :math:`z = \lVert x - y\rVert` (unit scale),
    measured far smaller with ``"chi"`` (formulas §3.3 [W6]). :func:`structured_factors` followed by :func:`sorf_matrix` gives the
    same matrix from the same generator state.

    Examples
    --------
    >>> import numpy as np
    >>> from favor.couplings import structured_projection
    >>> w = structured_projection(4, 4, norms="fixed", rng=0)
    >>> bool(np.allclose(w @ w.T, 4 * np.eye(4)))
    True
    """
    signs, lengths = structured_factors(
        n_components, n_features, norms=norms, random_signs=random_signs, rng=rng
    )
    return sorf_matrix(signs, lengths, n_features)


def qmc_uniform(
    n_components: int, n_features: int, *, scramble: bool = True, rng: Any = None
) -> np.ndarray:
    r"""The first ``m`` points of a (scrambled) Sobol sequence, strictly inside ``(0, 1)^d``.

    Parameters
    ----------
    n_components : int
        Number of points :math:`m` (powers of two keep the net balanced).
    n_features : int
        Dimension :math:`d \le 21201`.
    scramble : bool, default=True
        Linear matrix scramble plus random digital shift (each point then marginally
        uniform). ``False`` gives the deterministic sequence: a negative control only.
    rng : None, int, SeedSequence or numpy.random.Generator, default=None
        Source of randomness for the scramble.

    Returns
    -------
    numpy.ndarray of shape (n_components, n_features), float64
        Points :math:`u_i = (k_i + 1/2)\, 2^{-52}` with integer :math:`k_i`.
    """
    n_components = check_positive_int("n_components", n_components)
    n_features = check_positive_int("n_features", n_features)
    if n_features > MAX_QMC_FEATURES:
        raise ValueError(
            f"n_features must be at most {MAX_QMC_FEATURES} for projection='qmc' "
            f"(Sobol direction numbers), got {n_features}"
        )
    from scipy.stats import qmc

    rng = as_generator(rng)
    engine = qmc.Sobol(n_features, scramble=scramble, bits=_QMC_BITS, rng=rng)
    k = max(0, (n_components - 1).bit_length())
    points = engine.random_base2(k)[:n_components]
    return points + 2.0 ** -(_QMC_BITS + 1)


def qmc_projection(
    n_components: int, n_features: int, *, scramble: bool = True, rng: Any = None
) -> np.ndarray:
    r"""Draw a randomised quasi-Monte Carlo Gaussian projection (scrambled Sobol).

    Parameters
    ----------
    n_components : int
        Number of rows :math:`m`; use a power of two (see the module notes).
    n_features : int
        Input dimension :math:`d \le 21201`.
    scramble : bool, default=True
        ``False`` only as a negative control (deterministic, biased points).
    rng : None, int, SeedSequence or numpy.random.Generator, default=None
        Source of randomness.

    Returns
    -------
    numpy.ndarray of shape (n_components, n_features), float64
        :math:`\Phi^{-1}(u_i)` coordinate-wise; each row marginally
        :math:`\mathcal N(0, I_d)` when scrambled.

    Examples
    --------
    >>> from favor.couplings import qmc_projection
    >>> qmc_projection(8, 3, rng=0).shape
    (8, 3)
    """
    from scipy.special import ndtri

    return ndtri(qmc_uniform(n_components, n_features, scramble=scramble, rng=rng))


def simplex_directions(n_features: int) -> np.ndarray:
    r"""Unit vectors of a regular simplex in :math:`\mathbb R^d`: ``d`` rows, pairwise cosine ``-1/(d-1)``.

    Parameters
    ----------
    n_features : int
        The dimension :math:`d`; ``d = 1`` gives the single direction ``[1]``.

    Returns
    -------
    numpy.ndarray of shape (d, d), float64
        Rows :math:`s_i = (e_i - \tfrac1d \mathbf 1) / \lVert e_i - \tfrac1d \mathbf 1\rVert`.
    """
    d = check_positive_int("n_features", n_features)
    if d == 1:
        return np.ones((1, 1))
    s = np.eye(d) - 1.0 / d
    return s / np.linalg.norm(s, axis=1, keepdims=True)


def simplex_projection(
    n_components: int,
    n_features: int,
    *,
    norms: str = "chi",
    rotate: bool = True,
    norm_dependent: bool = False,
    rng: Any = None,
) -> np.ndarray:
    r"""Draw simplex random features (SimRF): Haar-rotated regular simplex blocks, chi lengths.

    Parameters
    ----------
    n_components : int
        Number of rows :math:`m`; blocks of ``d`` rows, the last one cut to ``m mod d``.
    n_features : int
        Input dimension :math:`d`.
    norms : {"chi", "fixed"}, default="chi"
        Row lengths: independent :math:`\chi_d` (unbiased) or :math:`\sqrt d`.
    rotate : bool, default=True
        ``False`` skips the Haar rotation (every block the same fixed simplex): a negative
        control only.
    norm_dependent : bool, default=False
        SimRF+: make each block's directions depend on its lengths so that the block sum
        :math:`\sum_i \ell_i s_i` vanishes (module notes; the same rotations and lengths
        as ``False`` from the same generator state). Needs ``norms="chi"`` (with equal
        lengths the regular simplex already sums to zero).
    rng : None, int, SeedSequence or numpy.random.Generator, default=None
        Source of randomness.

    Returns
    -------
    numpy.ndarray of shape (n_components, n_features), float64
        The projection.

    Notes
    -----
    For positive features the equiangular simplex minimises the total pair covariance
    among couplings of unit directions drawn independently of the norms (Reid et al.
    2023); for trigonometric features it can be *worse* than orthogonal coupling
    (formulas §6.2 [E5]).

    Examples
    --------
    >>> import numpy as np
    >>> from favor.couplings import simplex_projection
    >>> w = simplex_projection(3, 3, norms="fixed", rng=0)
    >>> bool(np.allclose(w @ w.T, 3 * (1.5 * np.eye(3) - 0.5)))
    True
    """
    n_components = check_positive_int("n_components", n_components)
    d = check_positive_int("n_features", n_features)
    check_choice("norms", norms, ("chi", "fixed"))
    if norm_dependent and norms != "chi":
        raise ValueError(
            f"norm_dependent=True needs norms='chi' (equal lengths already sum to zero), "
            f"got norms={norms!r}"
        )
    rng = as_generator(rng)
    base = simplex_directions(d)
    n_blocks = -(-n_components // d)
    # Only the kept rows of the last block are rotated (m < d costs m d^2, not d^3).
    kept = [min(d, n_components - b * d) for b in range(n_blocks)]
    if rotate:
        blocks = [base[:k] @ haar_orthogonal(d, rng) for k in kept]
    else:
        blocks = [base[:k] for k in kept]
    directions = np.concatenate(blocks)
    if norms == "chi":
        lengths = np.sqrt(rng.chisquare(d, size=n_components))
    else:
        lengths = np.full(n_components, np.sqrt(d))
    if norm_dependent:
        full = (n_components // d) * d
        directions = directions.copy()
        if full:
            directions[:full] = _zero_sum_directions(
                directions[:full].reshape(-1, d, d), lengths[:full].reshape(-1, d)
            ).reshape(full, d)
        if full < n_components:
            directions[full:] = _zero_sum_directions(directions[None, full:], lengths[None, full:])[
                0
            ]
    return directions * lengths[:, None]


def _zero_sum_directions(directions: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Sweeps of ``s_i <- -r_i / |r_i|``, ``r_i = sum_{j != i} l_j s_j``, per block.

    ``directions`` has shape ``(blocks, k, d)`` and ``lengths`` ``(blocks, k)``; every
    block is swept at once (formulas §6.2 [E8]).
    """
    s = np.array(directions, dtype=np.float64)
    total = np.einsum("bk,bkd->bd", lengths, s)
    for _ in range(SIMPLEX_PLUS_SWEEPS):
        for i in range(s.shape[1]):
            rest = total - lengths[:, i, None] * s[:, i]
            norm = np.linalg.norm(rest, axis=1, keepdims=True)
            s[:, i] = np.where(norm > 0, -rest / np.where(norm > 0, norm, 1.0), s[:, i])
            total = rest + lengths[:, i, None] * s[:, i]
    return s


def draw_structured(n_components: int, n_features: int, rng: np.random.Generator) -> np.ndarray:
    """Unchecked draw of the ``"structured"`` sampler (:func:`structured_projection`, chi lengths)."""
    return structured_projection(n_components, n_features, rng=rng)


def draw_qmc(n_components: int, n_features: int, rng: np.random.Generator) -> np.ndarray:
    """Unchecked draw of the ``"qmc"`` sampler (:func:`qmc_projection`, scrambled)."""
    return qmc_projection(n_components, n_features, rng=rng)


def draw_simplex(n_components: int, n_features: int, rng: np.random.Generator) -> np.ndarray:
    """Unchecked draw of the ``"simplex"`` sampler (:func:`simplex_projection`, chi lengths)."""
    return simplex_projection(n_components, n_features, rng=rng)


def draw_simplex_plus(n_components: int, n_features: int, rng: np.random.Generator) -> np.ndarray:
    """Unchecked draw of the ``"simplex+"`` sampler (:func:`simplex_projection`, norm-dependent)."""
    return simplex_projection(n_components, n_features, norm_dependent=True, rng=rng)
