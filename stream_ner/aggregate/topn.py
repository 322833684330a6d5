"""Exact top-N of counters that only grow, kept up to date per increment instead of sorted per read."""

from __future__ import annotations

from collections.abc import Iterable


class TopN:
    """Counts per id and the ``n`` largest, ranked by count descending, then id ascending.

    Counts only increase, so an id can enter the top only through its own increment: each ``add`` compares
    one id with the last of the top, and ``top`` costs nothing to read.
    """

    __slots__ = ("n", "counts", "_top")

    def __init__(self, n: int, counts: dict[str, int] | None = None) -> None:
        self.n = n
        self.counts: dict[str, int] = dict(counts or {})
        ranked = sorted(self.counts.items(), key=_rank)[:n]
        self._top: list[tuple[str, int]] = ranked

    def add(self, ids: Iterable[str]) -> None:
        """Count one more occurrence of each id."""
        counts, top = self.counts, self._top
        for item in ids:
            count = counts.get(item, 0) + 1
            counts[item] = count
            for i, (other, _) in enumerate(top):
                if other == item:
                    top[i] = (item, count)
                    top.sort(key=_rank)
                    break
            else:
                if len(top) < self.n or _rank((item, count)) < _rank(top[-1]):
                    top.append((item, count))
                    top.sort(key=_rank)
                    del top[self.n :]

    def top(self) -> list[tuple[str, int]]:
        """The ``n`` largest counts as ``(id, count)``, largest first, ties by id."""
        return list(self._top)


def _rank(entry: tuple[str, int]) -> tuple[int, str]:
    return -entry[1], entry[0]
