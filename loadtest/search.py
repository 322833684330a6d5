"""The search for the maximum sustainable rate: when a step counts as sustained, and which rate to try next.

Pure. A step offers a constant rate for a while; it is **sustained** when

1. the generator really offered it (at least ``min_offered`` of the target, else the result is void),
2. every post sent in the step came out as an event (none lost, after the drain that follows the step),
3. the end-to-end backlog (posts sent and not yet seen as events) did not grow over the step's second
   half by more than ``max_growth`` of the offered rate (a least-squares slope, so batching's saw-tooth
   does not count), and
4. the step's p99 end-to-end latency stayed under ``p99_limit_ms``.

``RateSearch`` first raises the rate until a step fails, then bisects between the best sustained and the
lowest failed rate until they are within ``resolution`` of each other or ``max_steps`` ran out; the answer
is the highest rate that was actually sustained, never an interpolation.

A failure bounds the search only once confirmed: a rate above the best sustained one that fails is tried
again at once, up to ``retries`` times, and counts as sustained if any of its trials was. One transient
(a rebalance, a broker flush, another process taking a core) then cannot cap the answer on its own; a rate
beyond the capacity fails every trial. Every system searched gets the same rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Limits:
    """What a sustained step must satisfy."""

    p99_limit_ms: float = 1000.0
    max_growth: float = 0.03
    min_offered: float = 0.97


@dataclass(frozen=True)
class Verdict:
    """The judgement of one step, with the figures it rests on."""

    rate: float
    offered_rate: float
    sent: int
    received: int
    p99_ms: float
    backlog_slope: float
    sustained: bool
    reason: str


def backlog_slope(times_s: list[float], backlog: list[float]) -> float:
    """Growth of the backlog in posts/s over the second half of the samples (least squares; 0 if too few)."""
    if len(times_s) != len(backlog):
        raise ValueError("times and backlog differ in length")
    half = len(times_s) // 2
    t, b = np.asarray(times_s[half:], dtype=float), np.asarray(backlog[half:], dtype=float)
    if len(t) < 3 or np.ptp(t) == 0:
        return 0.0
    return float(np.polyfit(t, b, 1)[0])


def judge(
    rate: float,
    offered_rate: float,
    sent: int,
    received: int,
    p99_ms: float,
    times_s: list[float],
    backlog: list[float],
    limits: Limits,
) -> Verdict:
    """Apply the four conditions of the module docstring, in order; the first that fails is the reason."""
    slope = backlog_slope(times_s, backlog)
    reason = ""
    if offered_rate < limits.min_offered * rate:
        reason = f"generator offered only {offered_rate:.0f}/s"
    elif received < sent:
        reason = f"{sent - received} posts without an event"
    elif slope > limits.max_growth * rate:
        reason = f"backlog grew {slope:.1f} posts/s"
    elif p99_ms > limits.p99_limit_ms:
        reason = f"p99 {p99_ms:.0f} ms over {limits.p99_limit_ms:.0f} ms"
    return Verdict(rate, offered_rate, sent, received, p99_ms, slope, not reason, reason or "sustained")


@dataclass
class RateSearch:
    """Step-up then bisection over offered rates (posts/s), bounded by ``max_steps``.

    ``start`` is the first rate tried (e.g. the bare runtime's posts/s); while steps pass the rate grows by
    ``growth``; after the first confirmed failure it bisects. A failed rate above the best sustained one is
    tried ``retries`` more times before it counts as failed. ``next_rate()`` is ``None`` when the search is
    over.
    """

    start: float
    growth: float = 1.25
    resolution: float = 0.04
    max_steps: int = 8
    floor: float = 1.0
    retries: int = 1
    history: list[tuple[float, bool]] = field(default_factory=list)

    def best(self) -> float | None:
        """The highest sustained rate so far."""
        good = [rate for rate, ok in self.history if ok]
        return max(good) if good else None

    def lowest_failure(self) -> float | None:
        """The lowest confirmed failure above the best sustained rate (noise can make a lower rate fail)."""
        best = self.best() or 0.0
        bad = [rate for rate, ok in self.history if not ok and rate > best and self._confirmed(rate)]
        return min(bad) if bad else None

    def _confirmed(self, rate: float) -> bool:
        """Whether every one of the ``1 + retries`` trials at ``rate`` failed."""
        trials = [ok for tried, ok in self.history if tried == rate]
        return not any(trials) and len(trials) > self.retries

    def record(self, rate: float, sustained: bool) -> None:
        """Remember the outcome of the step at ``rate``."""
        self.history.append((rate, sustained))

    def next_rate(self) -> float | None:
        """The next rate to try, or ``None`` when done."""
        if len(self.history) >= self.max_steps:
            return None
        if not self.history:
            return self.start
        last, ok = self.history[-1]
        if not ok and last > (self.best() or 0.0) and not self._confirmed(last):
            return last
        good, bad = self.best(), self.lowest_failure()
        if bad is None:
            return (good or self.start) * self.growth
        if good is None:
            low = bad / 2
            return low if low >= self.floor else None
        if (bad - good) / bad <= self.resolution:
            return None
        return (good + bad) / 2
