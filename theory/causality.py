r"""Claim E11: causal outputs do not depend on later positions, to the last bit.

Causal attention is :math:`o_t = \hat D_t^{-1}\sum_{j \le t} \hat A_{tj} v_j`
(formulas §1.3 [A2]): nothing after :math:`t` enters :math:`o_t`. An implementation can
agree with that formula to rounding and still leak the future *through rounding*, e.g.
by stabilising every key feature with the largest log-scale of the whole sequence (the
official Performer code's habit): the factor cancels in exact arithmetic but not in
floating point, so a later key changes earlier outputs in their last bits, and a model
trained with such a kernel can read the future. The value identities of claims E1-E8
cannot see that (their tolerance is 1e-10); this check compares bits.

For every registered map (``oprf``/``saderf`` with parameters fixed in advance, as
causal attention requires), float32 and float64, the default chunking and chunks of 4,
with and without padding masks, and the torch backend when installed: the outputs at
positions :math:`\le t` must be *bit-identical* after every query, key, value and mask
entry after :math:`t` is replaced (later keys 3 times larger, so that the running
stabiliser moves), for several cut points :math:`t`; and the outputs after :math:`t`
must change (otherwise the check would be vacuous).
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from typing import Any

import numpy as np

from theory.engine_paths import _exact, one_torch_thread, torch_available
from theory.results import ClaimCheck

__all__ = ["check_causal_future_independence"]

_CUTS = (0, 6, 13)


def _inputs(rng: np.random.Generator) -> dict[str, np.ndarray]:
    shape = (2, 2, 20)
    return {
        "q": 0.6 * rng.standard_normal((*shape, 8)),
        "k": 0.6 * rng.standard_normal((*shape, 8)),
        "v": rng.standard_normal((*shape, 3)),
        "mask": np.concatenate(
            [np.zeros((*shape[:-1], 1), bool), rng.random((*shape[:-1], shape[-1] - 1)) < 0.2],
            axis=-1,
        ),
    }


def _future_changed(x: dict[str, np.ndarray], t: int, rng: np.random.Generator) -> dict:
    y = {key: value.copy() for key, value in x.items()}
    tail = (..., slice(t + 1, None))
    y["q"][(*tail, slice(None))] = 0.6 * rng.standard_normal(y["q"][(*tail, slice(None))].shape)
    y["k"][(*tail, slice(None))] = 1.8 * rng.standard_normal(y["k"][(*tail, slice(None))].shape)
    y["v"][(*tail, slice(None))] = 50.0 * rng.standard_normal(y["v"][(*tail, slice(None))].shape)
    y["mask"][tail] = ~y["mask"][tail]
    return y


def check_causal_future_independence(
    *, attention: Any = None, name: str | None = None
) -> ClaimCheck:
    """Causal outputs at positions <= t are bit-identical whatever comes after t.

    Parameters
    ----------
    attention : callable, optional
        Attention under test (default ``favor.favor_attention``).
    name : str, optional
        Claim name.

    Returns
    -------
    ClaimCheck
        Estimate: the largest relative change of an output at a position <= t (0 passes).
    """
    import favor

    att = attention or favor.favor_attention
    if not torch_available():
        return _check(att, ["numpy"], name)
    with one_torch_thread():
        return _check(att, ["numpy", "torch"], name)


def _check(att: Any, backends: list[str], name: str | None) -> ClaimCheck:
    import favor
    from favor.gerf import fit_feature_params

    rng = np.random.default_rng(12)
    x = _inputs(rng)
    cal = _inputs(np.random.default_rng(13))
    dev: dict[str, float] = {}
    vacuous: list[str] = []
    for fmap, spec in favor.registry.FEATURE_MAPS.items():
        kwargs: dict[str, Any] = {"features": fmap}
        m = 20 + spec.sign_rows
        kwargs["projection"] = np.random.default_rng(14).standard_normal((m, 8))
        if spec.attention_prepare() is not None:
            kwargs["feature_params"] = fit_feature_params(cal["q"], cal["k"], features=fmap)
        for backend in backends:
            for dtype in (np.float32, np.float64):
                for chunk in (None, 4):
                    for masked in (False, True):
                        label = (f"{fmap} {backend} {np.dtype(dtype).name}"
                                 f"{'' if chunk is None else ' chunks of 4'}"
                                 f"{', masked' if masked else ''}")  # fmt: skip
                        run = _runner(att, backend, dtype, masked, chunk, kwargs)
                        with warnings.catch_warnings():
                            # Later keys are large on purpose (accuracy warnings).
                            warnings.simplefilter("ignore", favor.FavorAccuracyWarning)
                            worst = _worst_leak(run, x, rng, label, vacuous)
                        dev[label] = worst
    note = "bit-exact; cuts t = " + ", ".join(map(str, _CUTS))
    if vacuous:
        note += f"; VACUOUS (later outputs unchanged): {', '.join(vacuous[:3])}"
    result = _exact(
        name or "causal outputs do not depend on later positions (bit for bit)",
        dev,
        0.0,
        passed=not vacuous,
        note=note,
        resolves="any change of an earlier output (one bit)",
        power=0.0,
    )
    return replace(result, source="formulas §1.3 [A2] (exact: no later position enters o_t)")


def _worst_leak(run: Any, x: dict, rng: np.random.Generator, label: str, vacuous: list) -> float:
    """Largest relative change of an output at positions <= t over the cuts t."""
    base = run(x)
    worst = 0.0
    for t in _CUTS:
        out = run(_future_changed(x, t, rng))
        past, now = out[..., : t + 1, :], base[..., : t + 1, :]
        if not np.array_equal(past, now):
            scale = max(float(np.abs(now).max()), 1e-300)
            worst = max(worst, float(np.abs(past - now).max()) / scale or 1e-300)
        if np.array_equal(out[..., t + 1 :, :], base[..., t + 1 :, :]):
            vacuous.append(f"{label} t={t}")
    return worst


def _runner(att: Any, backend: str, dtype: Any, masked: bool, chunk: int | None, kwargs: dict):
    def run(x: dict[str, np.ndarray]) -> np.ndarray:
        q, k, v = (x[key].astype(dtype) for key in ("q", "k", "v"))
        mask = x["mask"] if masked else None
        extra = dict(kwargs)
        if chunk is not None:
            extra["chunk_size"] = chunk
        if backend == "torch":
            import torch

            q, k, v = (torch.from_numpy(a) for a in (q, k, v))
            mask = None if mask is None else torch.from_numpy(mask)
        out = att(q, k, v, causal=True, key_padding_mask=mask, **extra)
        if backend == "torch":
            out = out.detach().numpy()
        return np.asarray(out, dtype=np.float64)

    return run
