"""The bounded micro-batcher: pure, clock passed in.

A batch closes when it holds ``max_posts`` items, when adding the next item would exceed ``max_tokens``
(a lone oversize item still forms a batch of one), or when its oldest item has waited ``max_wait``
seconds. The caller decides what an item is and how many tokens it costs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class Batcher(Generic[T]):
    """Accumulates items into batches; ``add`` and ``due`` return the batches that closed."""

    max_posts: int
    max_tokens: int
    max_wait: float
    _items: list[T] = field(default_factory=list)
    _tokens: int = 0
    _opened_at: float = 0.0

    def add(self, item: T, tokens: int, now: float) -> list[T] | None:
        """Add one item; returns a closed batch when this item closed one (it may open the next)."""
        closed = None
        if self._items and self._tokens + tokens > self.max_tokens:
            closed = self._take()
        if not self._items:
            self._opened_at = now
        self._items.append(item)
        self._tokens += tokens
        if closed is None and len(self._items) >= self.max_posts:
            closed = self._take()
        return closed

    def due(self, now: float) -> list[T] | None:
        """The open batch if it has waited long enough, else ``None``."""
        if self._items and (now - self._opened_at >= self.max_wait or len(self._items) >= self.max_posts):
            return self._take()
        return None

    def deadline(self) -> float:
        """When the open batch becomes due by age (meaningless while empty)."""
        return self._opened_at + self.max_wait

    def flush(self) -> list[T] | None:
        """Close the open batch now, whatever its size."""
        return self._take() if self._items else None

    def __len__(self) -> int:
        return len(self._items)

    def _take(self) -> list[T]:
        items, self._items, self._tokens = self._items, [], 0
        return items
