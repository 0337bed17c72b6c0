r"""Claim E12: the Dask backend computes exactly the FAVOR estimator (exact identities).

Distributed attention cuts the engine's scans at chunk boundaries and adds key states of
different chunks at a common log-scale (formulas §1.3: FAVOR+ is linear in the keys), and
the distributed ``FavorSampler`` maps blocks of rows. Both must give what the collapsed
form (:mod:`theory.collapsed_forms`) and the in-memory transformer give, whatever the
chunking:

* ``favor.favor_attention`` on Dask arrays, split into several chunks along the sequence
  (and the batch), for every map the Dask backend offers, bidirectional and causal, with
  padding masks (and without, for the positive map), against the collapsed-form oracle (float64, relative
  tolerance :data:`theory.engine_paths.FLOAT64_TOLERANCE`);
* ``FavorSampler`` fitted and applied on a Dask array (``gamma="scale"`` reduced over the
  blocks) against the same transformer on the NumPy array.

Passes as not applicable when Dask is not installed (it is an optional extra).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from theory.collapsed_forms import COLLAPSED_MAPS, collapsed_attention
from theory.engine_paths import FLOAT64_TOLERANCE, _deviation, _exact, engine_inputs
from theory.results import ClaimCheck

__all__ = ["check_dask_backend", "dask_available"]


def dask_available() -> bool:
    """Whether Dask arrays can be imported (the ``dask`` extra).

    Returns
    -------
    bool
        True if ``import dask.array`` works.
    """
    import importlib.util

    return importlib.util.find_spec("dask") is not None


def check_dask_backend(
    *, tolerance: float = FLOAT64_TOLERANCE, name: str | None = None
) -> ClaimCheck:
    """The Dask backend's attention and transformer equal the oracle / in-memory results.

    Parameters
    ----------
    tolerance : float, default=FLOAT64_TOLERANCE
        Relative tolerance.
    name : str, optional
        Claim name.

    Returns
    -------
    ClaimCheck
        Estimate: the largest relative deviation over the paths.
    """
    name = name or "Dask backend = collapsed form (attention) and in-memory FavorSampler"
    if not dask_available():
        return _exact(name, {"dask not installed": 0.0}, 1.0, note="SKIPPED: no Dask")
    import dask
    import dask.array as da

    import favor

    x = engine_inputs()
    q, k, v, mask, w = x["queries"], x["keys"], x["values"], x["mask"], x["projection"]
    chunks = (1, q.shape[1], 5, q.shape[-1])  # several chunks along the batch and sequence
    dev: dict[str, float] = {}
    with dask.config.set(scheduler="synchronous"):
        for fmap in (f for f in favor.registry.FEATURE_MAPS if f in COLLAPSED_MAPS):
            for causal in (False, True):
                for masked in (False, True) if fmap == "positive" else (True,):
                    m_arg = mask if masked else None
                    ref = collapsed_attention(fmap, q, k, v, w, causal=causal,
                                              key_padding_mask=m_arg)  # fmt: skip
                    lazy = favor.favor_attention(
                        da.from_array(q, chunks=chunks), da.from_array(k, chunks=chunks),
                        da.from_array(v, chunks=(*chunks[:-1], v.shape[-1])), projection=w,
                        features=fmap, causal=causal,
                        key_padding_mask=None if m_arg is None else da.from_array(
                            m_arg, chunks=chunks[:-1]),
                    )  # fmt: skip
                    label = f"attention {fmap} {'causal' if causal else 'bidirectional'}"
                    dev[label + (", masked" if masked else "")] = _deviation(lazy.compute(), ref)
        rng = np.random.default_rng(15)
        data = 0.5 * rng.standard_normal((40, 6))
        for kernel in ("rbf", "softmax", "laplacian"):
            projection = "iid" if kernel == "laplacian" else "orthogonal"
            kw: dict[str, Any] = {"kernel": kernel, "projection": projection,
                                  "n_components": 20, "random_state": 4}  # fmt: skip
            memory = favor.FavorSampler(**kw).fit(data)
            lazy_est = favor.FavorSampler(**kw).fit(da.from_array(data, chunks=(13, 6)))
            got = np.asarray(lazy_est.transform(da.from_array(data, chunks=(7, 6))).compute())
            dev[f"FavorSampler {kernel} transform"] = _deviation(got, memory.transform(data))
            dev[f"FavorSampler {kernel} gamma='scale'"] = abs(
                lazy_est.gamma_ - memory.gamma_
            ) / memory.gamma_
    return _exact(name, dev, tolerance, note="chunks of 5 positions; synchronous scheduler")
