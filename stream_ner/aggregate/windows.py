"""Event-time windows: which windows a timestamp falls in, and when a window closes.

A window family has a size and a step (both in seconds; tumbling when equal, hopping when the step is
smaller). Windows are aligned on the Unix epoch: ``[k * step, k * step + size)`` in milliseconds, end
exclusive. A window is *closed* once the stream time (the largest event time seen on the partition)
reaches ``end + grace``; events for a closed window are late and no longer counted in it.
"""

from __future__ import annotations

from dataclasses import dataclass

from stream_ner.settings import WindowSpec


@dataclass(frozen=True, slots=True, order=True)
class Window:
    """One window instance, ``[start, end)`` in epoch milliseconds."""

    name: str
    start: int
    end: int


def windows_of(ts_ms: int, specs: list[WindowSpec]) -> list[Window]:
    """Every window of every family that contains ``ts_ms``, oldest first within a family."""
    found = []
    for spec in specs:
        size, step = spec.size_s * 1000, spec.step_s * 1000
        last = ts_ms - ts_ms % step
        for start in range(last - size + step, last + 1, step):
            found.append(Window(spec.name, start, start + size))
    return found


def closes_at(window: Window, grace_ms: int) -> int:
    """Stream time from which the window takes no more events."""
    return window.end + grace_ms


def is_open(window: Window, stream_time: int | None, grace_ms: int) -> bool:
    """Whether an event for ``window`` still counts when the stream time is ``stream_time``."""
    return stream_time is None or stream_time < closes_at(window, grace_ms)
