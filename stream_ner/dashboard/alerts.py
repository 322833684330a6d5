"""Spike alerts to ``brand-alerts``: at most one per brand and window, whichever dashboard sees it first.

The spike rule runs in every dashboard process (``live.Live.refresh``), so several processes find the same
spike. ``AlertSink.publish`` makes one record of it:

1. Claim the alert in Redis: ``SET P:alerted:W:S:B 1 NX EX ttl`` (``P`` the key prefix, ``W`` the window
   family, ``S`` the window start, ``B`` the brand). Only the process whose ``SET`` succeeds goes on.
2. Produce the ``BrandAlert`` keyed ``<brand>|<window>|<window start>`` (idempotent producer, acks=all).
3. When the broker refuses the record, delete the claim: the next refresh of any process tries again.

A process that dies between 1 and 2 loses that alert: alerts are at most once per brand and window.
Compaction of ``brand-alerts`` keeps the last record per key.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from stream_ner.dashboard.store import Board
from stream_ner.messages import BrandAlert

log = logging.getLogger("stream_ner.dashboard")


def alerts_of(
    board: Board, rule_z: float, min_mentions: int, now: datetime | None = None
) -> list[BrandAlert]:
    """The ``BrandAlert`` of every spiking brand of ``board``."""
    detected_at = now or datetime.now(UTC)
    return [
        BrandAlert(
            brand=row.brand,
            window=board.window,
            window_start=datetime.fromtimestamp(board.start, UTC),
            window_end=datetime.fromtimestamp(board.end, UTC),
            mentions=row.mentions,
            trailing_mean=row.spike.mean,
            trailing_stdev=row.spike.stdev,
            history=row.spike.history,
            score=row.spike.score,
            threshold_z=rule_z,
            min_mentions=min_mentions,
            detected_at=detected_at,
        )
        for row in board.rows
        if row.spike is not None
    ]


class AlertSink:
    """Claims alerts in Redis and produces the ones this process claimed (see the module docstring)."""

    def __init__(self, producer: Any, topic: str, client: Any, prefix: str, ttl_s: int) -> None:
        self.producer = producer
        self.topic = topic
        self.client = client
        self.prefix = prefix
        self.ttl_s = ttl_s
        self._handled: dict[str, None] = {}  # claim keys this process already tried, oldest first
        self._releases: set[asyncio.Task[Any]] = set()

    def claim_key(self, alert: BrandAlert) -> str:
        """``P:alerted:W:S:B``."""
        start = int(alert.window_start.timestamp())
        return f"{self.prefix}:alerted:{alert.window}:{start}:{alert.brand}"

    async def publish(self, alerts: Sequence[BrandAlert]) -> list[BrandAlert]:
        """Produce the alerts no process has claimed yet; returns those produced by this process."""
        produced = []
        for alert in alerts:
            key = self.claim_key(alert)
            if key in self._handled:
                continue
            # 1. claim
            if not await self.client.set(key, b"1", nx=True, ex=self.ttl_s):
                self._remember(key)
                continue
            # 2. produce; 3. release the claim when the broker refuses it
            self.producer.produce(
                self.topic,
                key=alert.key().encode(),
                value=alert.model_dump_json().encode(),
                on_delivery=self._delivered(key),
            )
            self._remember(key)
            produced.append(alert)
        self.producer.poll(0)
        return produced

    def poll(self) -> None:
        """Serve delivery callbacks."""
        self.producer.poll(0)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait for outstanding alerts."""
        self.producer.flush(timeout)

    def _remember(self, key: str) -> None:
        self._handled[key] = None
        while len(self._handled) > 10_000:
            del self._handled[next(iter(self._handled))]

    def _delivered(self, key: str) -> Any:
        def on_delivery(error: Any, message: Any) -> None:
            if error is None:
                return
            log.warning("spike alert %s not delivered (%s); it is tried again", key, error)
            self._handled.pop(key, None)
            try:
                task = asyncio.get_running_loop().create_task(self.client.delete(key))
            except RuntimeError:  # no loop: flushed at shutdown, the claim expires with its TTL
                return
            self._releases.add(task)
            task.add_done_callback(self._releases.discard)

        return on_delivery
