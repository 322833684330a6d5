"""Offered load as a list of phases (constant, ramp, bursts) and the send times it implies.

Pure: ``send_offsets`` turns phases into seconds-from-start of every post, so a generator only has to
wait for each offset and send. A phase's rate moves linearly from ``start_rate`` to ``end_rate``; the
k-th post is sent when the integral of the rate reaches k (the first at 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Phase:
    """``duration_s`` seconds at a rate (posts/s) going linearly from ``start_rate`` to ``end_rate``."""

    duration_s: float
    start_rate: float
    end_rate: float

    def __post_init__(self) -> None:
        if self.duration_s <= 0 or self.start_rate < 0 or self.end_rate < 0:
            raise ValueError(f"invalid phase {self}")

    def count(self) -> float:
        """Posts offered in this phase (the rate's integral; not rounded)."""
        return self.duration_s * (self.start_rate + self.end_rate) / 2


def constant(rate: float, duration_s: float) -> list[Phase]:
    """A steady rate."""
    return [Phase(duration_s, rate, rate)]


def ramp(start_rate: float, end_rate: float, duration_s: float) -> list[Phase]:
    """A linear ramp from one rate to another."""
    return [Phase(duration_s, start_rate, end_rate)]


def bursts(
    base_rate: float, peak_rate: float, period_s: float, burst_s: float, duration_s: float
) -> list[Phase]:
    """``base_rate`` with a ``burst_s``-long burst at ``peak_rate`` at the end of every ``period_s``."""
    if not 0 < burst_s < period_s:
        raise ValueError("a burst must be shorter than its period")
    phases: list[Phase] = []
    elapsed = 0.0
    while elapsed < duration_s - 1e-9:
        quiet = min(period_s - burst_s, duration_s - elapsed)
        phases.append(Phase(quiet, base_rate, base_rate))
        elapsed += quiet
        if elapsed < duration_s - 1e-9:
            loud = min(burst_s, duration_s - elapsed)
            phases.append(Phase(loud, peak_rate, peak_rate))
            elapsed += loud
    return phases


def total_duration(phases: list[Phase]) -> float:
    """Seconds the schedule lasts."""
    return sum(phase.duration_s for phase in phases)


def send_offsets(phases: list[Phase], max_count: int | None = None) -> np.ndarray:
    """Send time of every post in seconds from the start, ascending; at most ``max_count`` of them."""
    offsets: list[np.ndarray] = []
    begin, done = 0.0, 0.0  # phase start time, posts offered before it (fractional)
    for phase in phases:
        first = math.ceil(done - 1e-9)
        last = math.ceil(done + phase.count() - 1e-9) - 1  # half open: a post at the end starts the next
        if last >= first:
            k = np.arange(first, last + 1, dtype=np.float64) - done  # posts into this phase
            offsets.append(begin + _time_of(k, phase))
        begin += phase.duration_s
        done += phase.count()
    times = np.concatenate(offsets) if offsets else np.empty(0)
    return times[:max_count] if max_count is not None else times


def _time_of(k: np.ndarray, phase: Phase) -> np.ndarray:
    """Solve ``r0*t + a*t^2 = k`` for t within the phase (a = (r1 - r0) / 2T)."""
    r0 = phase.start_rate
    a = (phase.end_rate - r0) / (2 * phase.duration_s)
    if abs(a) < 1e-12:
        return k / r0 if r0 > 0 else np.full_like(k, np.inf)
    return (-r0 + np.sqrt(np.maximum(r0 * r0 + 4 * a * k, 0.0))) / (2 * a)
