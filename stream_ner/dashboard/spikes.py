"""The spike rule, a pure function: is a brand's count in the current window far above its recent past.

A brand spikes in a window when both hold:

1. ``mentions >= min_mentions`` (so 1 -> 3 mentions is no spike, however quiet the brand was), and
2. ``mentions > mean + z * max(stdev, 1)``, where mean and (population) standard deviation are over the
   brand's mentions in the previous windows of the same size (a brand absent from a window counts 0).

Only previous windows that had data at all count (a pipeline that was down is no evidence of a quiet
brand), and at least ``min_history`` of them are needed. The deviation is floored at one mention so that a
perfectly flat history does not make every rise of one mention a spike. The current window may still be
open: its count only grows, so a spike found early stays a spike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SpikeRule:
    """The rule's parameters (``dashboard.spike_*`` settings)."""

    z: float = 3.0
    min_mentions: int = 5
    min_history: int = 3


@dataclass(frozen=True, slots=True)
class Spike:
    """A detected spike: the count, the trailing statistics and the score ``(mentions - mean) / sd``."""

    mentions: int
    mean: float
    stdev: float
    history: int
    score: float


def detect(mentions: int, history: Sequence[int], rule: SpikeRule) -> Spike | None:
    """The spike of a brand with ``mentions`` now and ``history`` in the previous windows, or ``None``."""
    if mentions < rule.min_mentions or len(history) < rule.min_history:
        return None
    mean = sum(history) / len(history)
    stdev = math.sqrt(sum((x - mean) ** 2 for x in history) / len(history))
    score = (mentions - mean) / max(stdev, 1.0)
    if score <= rule.z:
        return None
    return Spike(mentions, round(mean, 3), round(stdev, 3), len(history), round(score, 2))
