"""Evidence records returned by every claim check (never assertions).

A check returns a :class:`ClaimCheck`: what was estimated, the interval at the declared
false-alarm rate, the decision and everything needed to reproduce it (root seed, number
of trials). Tests assert ``.passed``; notebooks and the report plot ``.estimate`` and
``.interval``; figures read the arrays in ``.data``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ClaimCheck", "MonteCarloSummary"]


@dataclass(frozen=True)
class MonteCarloSummary:
    """Mean and standard error of a Monte Carlo statistic.

    Attributes
    ----------
    mean : float
        Sample mean.
    std_error : float
        Standard error of the mean (sample standard deviation / sqrt(n)).
    n_trials : int
        Number of independent trials.
    root_seed : int
        The root of the :class:`numpy.random.SeedSequence` the trials were spawned from.
    """

    mean: float
    std_error: float
    n_trials: int
    root_seed: int

    def __str__(self) -> str:
        return f"{self.mean:.6g} +- {self.std_error:.3g} (n={self.n_trials}, seed={self.root_seed})"


@dataclass(frozen=True)
class ClaimCheck:
    """The evidence for one claim.

    Attributes
    ----------
    name : str
        Claim id and short title, e.g. ``"U1 positive x iid unbiased (softmax)"``.
    source : str
        Where the claim comes from (paper lemma / ``docs/formulas.md`` section).
    estimate : float
        The headline estimate (e.g. worst ratio empirical/closed form).
    interval : tuple of float
        Simultaneous confidence interval for ``estimate`` at level ``1 - alpha``.
    alpha : float
        Declared false-alarm rate of the decision (probability that a correct
        implementation fails this check for a random seed).
    n_trials : int
        Number of independent Monte Carlo trials (0 for exact checks).
    seed : int
        Root seed (``SeedSequence(seed)``), or -1 for exact checks.
    passed : bool
        The decision.
    statistic : str
        Human-readable decision statistic, e.g. ``"max|z| = 1.3 (crit 5.1)"``.
    target : float or None
        What ``estimate`` is compared with (e.g. 1 for a ratio), if any.
    data : Mapping
        Arrays and numbers for figures and notebooks.
    resolving_power : float or None
        The smallest relative error of the checked quantity (see ``resolves``) that the
        decision detects with probability at least 0.99 at its declared ``alpha``
        (:func:`theory._stats.resolving_power`); for an exact check, its relative
        tolerance. None where the notion does not apply.
    resolves : str
        What ``resolving_power`` is a relative error of (e.g. ``"kernel mean"``).
    informational : bool
        True for a reported bound that is not a verdict (it cannot fail on a plausible
        bug at its size); it never fails the run and its verdict reads ``INFO``.
    """

    name: str
    source: str
    estimate: float
    interval: tuple[float, float]
    alpha: float
    n_trials: int
    seed: int
    passed: bool
    statistic: str
    target: float | None = None
    data: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    resolving_power: float | None = None
    resolves: str = ""
    informational: bool = False

    @property
    def claim_id(self) -> str:
        """The id (first word of ``name``)."""
        return self.name.split()[0]

    @property
    def verdict(self) -> str:
        """``"PASS"``, ``"FAIL"`` or ``"INFO"`` (informational bound, never a failure)."""
        if self.informational:
            return "INFO"
        return "PASS" if self.passed else "FAIL"

    @property
    def power_text(self) -> str:
        """The resolving power as text, e.g. ``"1.2% (kernel mean)"`` (empty if none)."""
        if self.resolving_power is None:
            return ""
        v = self.resolving_power
        text = f"{100 * v:.2g}%" if v >= 1e-4 else f"{v:.1e}"
        return f"{text} ({self.resolves})" if self.resolves else text

    def __str__(self) -> str:
        lo, hi = self.interval
        return (
            f"{self.name}: {self.verdict}  estimate {self.estimate:.4g} in [{lo:.4g}, {hi:.4g}]"
            f"  {self.statistic}  (alpha {self.alpha:g}, n={self.n_trials}, seed={self.seed};"
            + (f" resolves {self.power_text};" if self.power_text else "")
            + f" {self.source})"
        )
