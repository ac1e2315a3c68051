"""Duration anomalies (docs/operations.md, "Duration anomalies"): is a successful attempt far
shorter or far longer than the task's own recent successes?

The baseline is the newest `duration_baseline` successful attempts of the task (kept in
cronjobs.models.DurationBaseline by cronjobs/history.py, so judging reads one small row, never
the history). Its centre is the median and its spread the MAD (median absolute deviation)
times 1.4826, which is the standard deviation for normally spread durations yet ignores a few
wild runs. An attempt is

* `too_long` above the highest of LONG_FACTOR x median, median + SPREADS x spread and
  median + FLOOR seconds;
* `too_short` below the lowest of median / SHORT_FACTOR, median - SPREADS x spread and
  median - FLOOR seconds (below zero for a median under FLOOR: never).

FLOOR keeps millisecond jobs quiet: a run is never an anomaly while it is within half a second
of the median. With the defaults, against a 0.6 s median, 0 s is too short (under 0.1 s) and
6 s too long (over 1.8 s). Nothing is judged before MIN_BASELINE successes are known.

No Django models are read here: the caller hands over the samples.
"""

from __future__ import annotations

import statistics
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from cronjobs.tasksettings import MIN_BASELINE

LONG_FACTOR = 3.0
SHORT_FACTOR = 3.0
SPREADS = 5.0
FLOOR = 0.5  # seconds
MAD_TO_SIGMA = 1.4826

TOO_SHORT, TOO_LONG = "too_short", "too_long"


@dataclass(frozen=True)
class Baseline:
    runs: int
    median: float
    spread: float  # scaled MAD, seconds

    @property
    def low(self) -> float:
        """Shorter than this is `too_short` (negative: nothing is)."""
        return min(
            self.median / SHORT_FACTOR, self.median - SPREADS * self.spread, self.median - FLOOR
        )

    @property
    def high(self) -> float:
        """Longer than this is `too_long`."""
        return max(
            self.median * LONG_FACTOR, self.median + SPREADS * self.spread, self.median + FLOOR
        )

    def verdict(self, seconds: float) -> str | None:
        """`too_short`, `too_long` or None (inside)."""
        if seconds < self.low:
            return TOO_SHORT
        if seconds > self.high:
            return TOO_LONG
        return None

    def describe(self, seconds: float) -> str:
        """The alert's message for an attempt of `seconds`."""
        where = "below" if seconds < self.median else "above"
        edge = self.low if seconds < self.median else self.high
        return (
            f"a successful attempt took {seconds:.3g} s, far {where} the usual "
            f"{self.median:.3g} s (median of the last {self.runs} successful runs, spread "
            f"{self.spread:.2g} s; {'too short under' if where == 'below' else 'too long over'}"
            f" {max(edge, 0):.3g} s)"
        )


def baseline(
    samples: Sequence[Sequence[float]], runs: int, leaving_out: Collection[int] = ()
) -> Baseline | None:
    """The baseline from DurationBaseline.samples (`[execution id, seconds]`, newest last):
    the newest `runs` samples whose attempt is not in `leaving_out` (the attempt being judged).
    None with fewer than MIN_BASELINE."""
    seconds = [float(s[1]) for s in samples if int(s[0]) not in leaving_out][-runs:]
    if len(seconds) < MIN_BASELINE:
        return None
    median = statistics.median(seconds)
    mad = statistics.median(abs(value - median) for value in seconds)
    return Baseline(len(seconds), median, MAD_TO_SIGMA * mad)
