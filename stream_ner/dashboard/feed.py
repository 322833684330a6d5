"""The live feed: entity events from ``entities`` as feed items, the newest kept in memory.

``feed_item`` is the pure edge: one ``entities`` value (an ``EntityEvent`` as JSON) becomes a ``FeedItem``
whose text is already cut into ``segments`` at the entity spans. Offsets are Python string indexes
(code points); the browser indexes strings in UTF-16 units, so it must not cut the text itself (an emoji
before a span would shift it). The browser puts each segment in the page as text, never as markup.

``Recent`` keeps the newest items, and the newest per brand for the brand pages, skipping repeats of a
post (``entities`` is at-least-once). ``EntityTail`` is the one consumer of ``entities`` per dashboard
process: a thread that reads every partition (no consumer group, nothing committed), starting
``lookback_s`` back so that a page has posts to show at once, and hands batches to a callback.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

log = logging.getLogger("stream_ner.dashboard")

Segment = tuple[str, str | None, str | None]  # text, entity label or None, brand id or None

_SEEN_POSTS = 20_000  # post ids remembered to skip repeats
_BRANDS_KEPT = 5_000  # brands with a deque of latest posts (least recently mentioned dropped first)


@dataclass(frozen=True, slots=True)
class FeedItem:
    """One entity event as the feed shows it."""

    post_id: str
    segments: list[Segment]
    brands: list[str]
    labels: list[str]  # entity labels present, sorted
    author: str | None
    created_at: str | None
    sentiment: float | None
    entities_ms: int  # Kafka timestamp of the entities record: when the event reached the topic


def segments(text: str, entities: Iterable[dict[str, Any]]) -> list[Segment]:
    """``text`` cut at the entity spans (``start``/``end``, end exclusive); overlapping, bad spans skipped."""
    out: list[Segment] = []
    at = 0
    spans = sorted(
        ((int(e["start"]), int(e["end"]), str(e["label"]), e.get("brand")) for e in entities),
        key=lambda span: (span[0], -span[1]),
    )
    for start, end, label, brand in spans:
        if start < at or end <= start or end > len(text):
            continue
        if start > at:
            out.append((text[at:start], None, None))
        out.append((text[start:end], label, str(brand) if brand else None))
        at = end
    if at < len(text):
        out.append((text[at:], None, None))
    return out


def feed_item(value: bytes | None, entities_ms: int) -> FeedItem | None:
    """The feed item of one ``entities`` value; ``None`` for a value that is not an entity event."""
    if value is None:
        return None
    try:
        data = orjson.loads(value)
        text, entities = data["text"], data["entities"]
        if not isinstance(text, str) or not isinstance(entities, list):
            return None
        sentiment = data.get("sentiment")
        return FeedItem(
            post_id=str(data["post_id"]),
            segments=segments(text, entities),
            brands=[str(b) for b in data.get("brands") or []],
            labels=sorted({str(e["label"]) for e in entities}),
            author=data.get("author") if isinstance(data.get("author"), str) else None,
            created_at=data.get("created_at") if isinstance(data.get("created_at"), str) else None,
            sentiment=float(sentiment) if isinstance(sentiment, int | float) else None,
            entities_ms=entities_ms,
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


class Recent:
    """The newest feed items overall and per brand; a post seen before is skipped."""

    def __init__(self, size: int, per_brand: int) -> None:
        self.items: deque[FeedItem] = deque(maxlen=size)
        self.per_brand = per_brand
        self.brands: OrderedDict[str, deque[FeedItem]] = OrderedDict()
        self._seen: OrderedDict[str, None] = OrderedDict()

    def add(self, items: Iterable[FeedItem]) -> list[FeedItem]:
        """Keep ``items`` (oldest first); returns those that were new."""
        new = []
        for item in items:
            if item.post_id in self._seen:
                continue
            self._seen[item.post_id] = None
            if len(self._seen) > _SEEN_POSTS:
                self._seen.popitem(last=False)
            new.append(item)
            self.items.append(item)
            for brand in item.brands:
                kept = self.brands.pop(brand, None) or deque(maxlen=self.per_brand)
                kept.append(item)
                self.brands[brand] = kept  # now the most recently mentioned
            while len(self.brands) > _BRANDS_KEPT:
                self.brands.popitem(last=False)
        return new

    def latest(self, n: int | None = None) -> list[FeedItem]:
        """The newest ``n`` items (all kept when ``None``), oldest first."""
        items = list(self.items)
        return items if n is None else items[-n:]

    def of_brand(self, brand: str) -> list[FeedItem]:
        """The newest posts that mention ``brand``, oldest first."""
        return list(self.brands.get(brand, ()))


class EntityTail:
    """A thread reading every partition of ``entities`` from ``lookback_s`` ago; ``deliver`` gets batches.

    ``deliver`` is called from the thread (hand over to an event loop with ``call_soon_threadsafe``).
    A topic that does not exist yet is waited for; partitions added later are not picked up until restart.
    """

    def __init__(
        self,
        config: dict[str, Any],
        topic: str,
        lookback_s: int,
        deliver: Callable[[Sequence[FeedItem]], object],
    ) -> None:
        self.config = config
        self.topic = topic
        self.lookback_s = lookback_s
        self.deliver = deliver
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="entities-tail", daemon=True)

    def start(self) -> None:
        """Start reading."""
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop reading and close the consumer."""
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        from confluent_kafka import Consumer

        consumer = Consumer(
            self.config
            | {
                "group.id": f"stream-ner-dashboard-{uuid.uuid4().hex[:8]}",  # never joined: assign() below
                "enable.auto.commit": False,
                "auto.offset.reset": "latest",
                "enable.partition.eof": False,
            }
        )
        try:
            if self._assign(consumer):
                self._read(consumer)
        except Exception:  # noqa: BLE001 - the feed stops, the leaderboards go on; said in the log
            log.exception("the live feed stopped")
        finally:
            consumer.close()

    def _assign(self, consumer: Any) -> bool:
        from confluent_kafka import KafkaException, TopicPartition

        since_ms = int((time.time() - self.lookback_s) * 1000)
        while not self._stop.is_set():
            try:
                topic = consumer.list_topics(self.topic, timeout=5).topics.get(self.topic)
                if topic is not None and topic.error is None and topic.partitions:
                    wanted = [TopicPartition(self.topic, p, since_ms) for p in sorted(topic.partitions)]
                    consumer.assign(consumer.offsets_for_times(wanted, timeout=10))
                    return True
            except KafkaException as exc:  # brokers unreachable: the error callback said so; try again
                log.debug("entities not readable yet: %s", exc)
            self._stop.wait(2.0)
        return False

    def _read(self, consumer: Any) -> None:
        while not self._stop.is_set():
            items = []
            for message in consumer.consume(num_messages=500, timeout=0.2):
                if message.error():
                    continue
                item = feed_item(message.value(), message.timestamp()[1])
                if item is not None:
                    items.append(item)
            if items:
                try:
                    self.deliver(items)
                except RuntimeError:  # the event loop is closed: the dashboard is stopping
                    return
