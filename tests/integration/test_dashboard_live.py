"""The dashboard's Redis reading layer and its alerts on a real Redis and broker.

The aggregates are written by the aggregator's own ``RedisSink``, so the reader is held to the layout the
aggregator really writes. Two dashboards refresh over the same data: both show the same board, and the
spike goes to ``brand-alerts`` once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import UTC, datetime

import redis.asyncio as aioredis
from confluent_kafka import Producer

from stream_ner.aggregate.redis_sink import RedisSink
from stream_ner.dashboard.alerts import AlertSink
from stream_ner.dashboard.feed import Recent
from stream_ner.dashboard.live import Live
from stream_ner.dashboard.spikes import SpikeRule
from stream_ner.dashboard.store import Family, Store
from stream_ner.messages import BrandAggregate, BrandAlert, iso_utc

MINUTE = Family("1m", 60, 60)
HISTORY = {"nike": [10, 12, 9, 11, 12], "apple": [1, 2, 1, 1, 2], "~acme": [3, 3, 2, 4, 3]}  # oldest first
NOW = {"nike": 10, "apple": 30, "~acme": 3}


def record(brand: str, start: int, mentions: int) -> dict:
    return BrandAggregate(
        brand=brand,
        unknown=brand.startswith("~"),
        window="1m",
        window_start=datetime.fromtimestamp(start, UTC),
        window_end=datetime.fromtimestamp(start + 60, UTC),
        mentions=mentions,
        posts=mentions,
        authors=max(1, mentions - 1),
        co_brands=[{"id": "nike", "count": 4}] if brand == "apple" else [],
        co_entities=[{"id": "LOC:london", "count": 2}],
        sample_post_ids=[f"{brand}-{start}"],
        sentiment_sum=0.0,
        sentiment_count=0,
        final=False,
    ).model_dump(mode="json")


def test_two_dashboards_read_the_sinks_layout_and_alert_a_spike_once(
    redis_url, redis_prefix, redis_client, topic_factory, kafka_bootstrap, consume
):
    prefix = redis_prefix.rstrip(":")
    now = int(time.time())
    current = now - now % 60
    records = [
        record(brand, current - (len(counts) - k) * 60, count)
        for brand, counts in HISTORY.items()
        for k, count in enumerate(counts)
    ] + [record(brand, current, count) for brand, count in NOW.items()]
    alerts_topic = topic_factory(1)
    rule = SpikeRule(z=3.0, min_mentions=5, min_history=3)

    async def scenario():
        sink = RedisSink(redis_url, prefix, ttl_s=3600, stream_maxlen=1000)
        await sink.write(records)
        await sink.close()
        clients, lives = [], []
        for _ in range(2):  # two dashboard processes
            client = aioredis.Redis.from_url(redis_url)
            producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
            alerts = AlertSink(producer, alerts_topic, client, prefix, ttl_s=3600)
            store = Store(client, prefix, {"nike": "Nike", "apple": "Apple"})
            lives.append(Live(store, [MINUTE], rule, 10, 50, 0.1, Recent(10, 5), 10, client, alerts))
            clients.append(client)
        for live in lives:
            await live.refresh()
            await live.refresh()  # a second refresh alerts nothing new
        for live in lives:
            assert live.alerts is not None
            live.alerts.flush(10)
        page = await lives[0].store.read_brand(MINUTE, "apple")
        for client in clients:
            await client.aclose()
        return [live.boards["1m"] for live in lives], page

    (first, second), page = asyncio.run(scenario())

    assert dataclasses.replace(first, read_at_ms=0) == dataclasses.replace(second, read_at_ms=0)
    assert first.start == current and first.previous_start == current - 60 and first.history == 5
    assert [(r.brand, r.name, r.mentions, r.previous) for r in first.rows] == [
        ("apple", "Apple", 30, 2),
        ("nike", "Nike", 10, 12),
        ("~acme", "acme", 3, 3),
    ]
    apple, nike, acme = first.rows
    assert first.spikes == ["apple"] and apple.spike is not None and apple.spike.mean == 1.4
    assert apple.share == round(30 / 43, 4) and apple.authors == 29 and apple.change == 14.0
    assert nike.spike is None and acme.spike is None
    assert first.sentiment_posts == 0 and apple.sentiment is None  # the page says "no sentiment yet"

    [alert] = consume(alerts_topic, 2, timeout=8)  # two dashboards, one alert
    message = BrandAlert.model_validate_json(alert.value)
    assert alert.key == f"apple|1m|{iso_utc(datetime.fromtimestamp(current, UTC))}".encode()
    assert (message.brand, message.mentions, message.history) == ("apple", 30, 5)
    assert redis_client.exists(f"{prefix}:alerted:1m:{current}:apple")

    assert [(p.start, p.mentions) for p in page.points] == [
        (current - (5 - k) * 60, count) for k, count in enumerate(HISTORY["apple"])
    ] + [(current, 30)]
    assert [(c.id, c.name, c.count) for c in page.co_brands] == [("nike", "Nike", 4)]
    assert [(c.label, c.name) for c in page.co_entities] == [("LOC", "london")]
    assert page.sample_post_ids == [f"apple-{current}"]
