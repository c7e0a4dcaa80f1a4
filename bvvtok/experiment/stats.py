"""The statistics of an experiment: the mean over seeds, its 95% interval, and paired differences.

The interval is Student's t with n - 1 degrees of freedom, the right one for the few seeds an experiment
has (t is 4.30 for 3 seeds, 2.26 for 10, where the normal 1.96 would claim far too much). One value gives a
mean and nothing else: no sd, no interval. A difference between two arms is paired by seed (arm - baseline
on each seed both finished): the seed's data order and initialisation are shared, so pairing removes their
share of the spread, which an unpaired comparison of the two means would keep.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scipy.stats import t as student_t


@dataclass(frozen=True)
class Estimate:
    n: int
    mean: float
    sd: float | None  # None for n = 1, as low and high
    low: float | None  # the 95% interval of the mean
    high: float | None

    @property
    def half_width(self) -> float | None:
        return None if self.high is None else (self.high - self.low) / 2

    @property
    def excludes_zero(self) -> bool:
        """Whether the interval lies wholly on one side of 0 (a difference this is resolved by the seeds)."""
        return self.low is not None and (self.low > 0 or self.high < 0)


def estimate(values: Sequence[float]) -> Estimate:
    """Mean, sd and the 95% Student-t interval of the mean of `values` (at least one)."""
    n = len(values)
    if n == 0:
        raise ValueError("no values to estimate from")
    mean = statistics.fmean(values)
    if n == 1:
        return Estimate(1, mean, None, None, None)
    sd = statistics.stdev(values)
    half = float(student_t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    return Estimate(n, mean, sd, mean - half, mean + half)


def paired(values: Mapping[int, float], baseline: Mapping[int, float]) -> tuple[list[int], Estimate | None]:
    """The seeds both have (sorted) and the estimate of `values - baseline` over them (None if they share none)."""
    seeds = sorted(set(values) & set(baseline))
    return seeds, estimate([values[s] - baseline[s] for s in seeds]) if seeds else None
