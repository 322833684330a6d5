"""The dashboard's tasks: one Redis reader, one entities consumer, and the fan-out to browsers.

- ``_watch_updates`` blocks on the aggregator's ``P:updates`` stream (``XREAD``) and marks the boards
  dirty; ``_refresh_loop`` re-reads every window family's board at most every ``refresh_ms`` (and every
  ``IDLE_REFRESH_S`` without updates, so a closing window shows), publishes a board that changed to its
  channel and hands the spikes to ``AlertSink``.
- ``EntityTail`` (a thread) delivers entity events; they are kept in ``Recent`` and published in one
  ``feed`` frame every ``FEED_FLUSH_S``.
- A browser that connects gets ``snapshot`` frames first (the current board of its window, the newest
  feed items, the recent alerts), then what is published.

However many browsers are connected, Redis sees one reader and Kafka one consumer per dashboard process.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import deque
from collections.abc import Sequence
from typing import Any

from stream_ner.dashboard.alerts import AlertSink, alerts_of
from stream_ner.dashboard.feed import FeedItem, Recent
from stream_ner.dashboard.hub import Hub, frame
from stream_ner.dashboard.spikes import SpikeRule
from stream_ner.dashboard.store import Board, Family, Store
from stream_ner.errors import RedisUnavailable

log = logging.getLogger("stream_ner.dashboard")

FEED_FLUSH_S = 0.25
IDLE_REFRESH_S = 5.0
ALERTS_KEPT = 20


class Live:
    """State shared by the routes: the latest boards (and their frames), recent posts and alerts."""

    def __init__(
        self,
        store: Store,
        families: Sequence[Family],
        rule: SpikeRule,
        history: int,
        rows: int,
        refresh_s: float,
        recent: Recent,
        feed_events: int,
        updates_client: Any,
        alerts: AlertSink | None,
    ) -> None:
        self.store = store
        self.families = {family.name: family for family in families}
        self.rule = rule
        self.history = history
        self.rows = rows
        self.refresh_s = refresh_s
        self.recent = recent
        self.feed_events = feed_events
        self.updates_client = updates_client
        self.alerts = alerts
        self.hub = Hub()
        self.boards: dict[str, Board] = {}
        self.frames: dict[str, bytes] = {}
        self.versions: dict[str, int] = dict.fromkeys(self.families, 0)
        self.recent_alerts: deque[dict[str, Any]] = deque(maxlen=ALERTS_KEPT)
        self._alerted: set[tuple[str, str, int]] = set()
        self._dirty = asyncio.Event()
        self._pending: list[FeedItem] = []
        self._pages: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}

    async def run(self) -> None:
        """Run the reader and the feed publisher until cancelled."""
        self._dirty.set()
        async with asyncio.TaskGroup() as group:
            group.create_task(self._watch_updates())
            group.create_task(self._refresh_loop())
            group.create_task(self._feed_loop())

    # -- entity events (from the consumer thread, through call_soon_threadsafe)

    def on_feed(self, items: Sequence[FeedItem]) -> None:
        """Keep new items and queue them for the next ``feed`` frame."""
        self._pending.extend(self.recent.add(items))

    async def _feed_loop(self) -> None:
        while True:
            await asyncio.sleep(FEED_FLUSH_S)
            if self._pending:
                items, self._pending = self._pending[-self.feed_events :], []
                self.hub.publish("feed", frame("feed", items))

    # -- boards

    async def _watch_updates(self) -> None:
        from redis.exceptions import RedisError

        key, last = self.store.keys.updates(), "$"
        while True:
            try:
                reply = await self.updates_client.xread({key: last}, count=1000, block=5000)
            except (RedisError, OSError) as exc:
                log.warning("cannot read the updates stream (%s); retrying", exc)
                await asyncio.sleep(1.0)
                continue
            for _, entries in reply or ():
                if entries:
                    last = entries[-1][0]
                    self._dirty.set()

    async def _refresh_loop(self) -> None:
        backoff = 0.5
        while True:
            try:
                await asyncio.wait_for(self._dirty.wait(), IDLE_REFRESH_S)
            except TimeoutError:
                pass
            self._dirty.clear()
            try:
                await self.refresh()
                backoff = 0.5
            except RedisUnavailable as exc:
                log.warning("%s; retrying in %.1f s", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                self._dirty.set()
                continue
            await asyncio.sleep(self.refresh_s)

    async def refresh(self) -> None:
        """Read every family's board; publish those that changed; alert on new spikes."""
        for name, family in self.families.items():
            board = await self.store.read_board(family, self.rows, self.rule, self.history)
            if board is None:
                continue
            before = self.boards.get(name)
            if before is not None and dataclasses.replace(before, read_at_ms=0) == dataclasses.replace(
                board, read_at_ms=0
            ):
                continue
            self.boards[name] = board
            self.versions[name] += 1
            self.frames[name] = frame("board", board)
            self.hub.publish(f"board:{name}", self.frames[name])
            await self._spikes(board)
        if self.alerts is not None:
            self.alerts.poll()

    async def _spikes(self, board: Board) -> None:
        alerts = alerts_of(board, self.rule.z, self.rule.min_mentions)
        fresh = [a for a in alerts if (a.brand, a.window, board.start) not in self._alerted]
        if not fresh:
            return
        for alert in fresh:
            self._alerted.add((alert.brand, alert.window, board.start))
            self.recent_alerts.append(alert.model_dump(mode="json"))
        if len(self._alerted) > 10_000:
            self._alerted.clear()
        self.hub.publish("alerts", frame("alerts", list(self.recent_alerts)))
        if self.alerts is not None:
            try:
                await self.alerts.publish(fresh)
            except Exception as exc:  # noqa: BLE001 - Redis or the producer: the board goes on
                log.warning("spike alerts not published: %s", exc)
                for alert in fresh:
                    self._alerted.discard((alert.brand, alert.window, board.start))

    # -- what a browser gets

    def snapshot(self, window: str) -> list[bytes]:
        """The frames a newly connected browser starts with."""
        frames = []
        if window in self.frames:
            frames.append(self.frames[window])
        frames.append(frame("feed", self.recent.latest(self.feed_events)))
        frames.append(frame("alerts", list(self.recent_alerts)))
        return frames

    async def brand_page(self, window: str, brand: str) -> dict[str, Any]:
        """A brand's page (cached until the family's board changes) with its latest posts."""
        family = self.families[window]
        version = self.versions[window]
        cached = self._pages.get((window, brand))
        if cached is None or cached[0] != version:
            page = await self.store.read_brand(family, brand)
            cached = (version, dataclasses.asdict(page))
            if len(self._pages) > 1000:
                self._pages.clear()
            self._pages[(window, brand)] = cached
        board = self.boards.get(window)
        row = next((r for r in board.rows if r.brand == brand), None) if board else None
        return cached[1] | {
            "row": row,
            "posts": list(reversed(self.recent.of_brand(brand))),
        }
