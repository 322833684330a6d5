"""End to end: sample posts on raw-posts -> worker -> entities -> aggregator -> `stream-ner brands top`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from importlib import resources

import redis

from stream_ner.brands import BrandLinker
from tests.integration.test_aggregate import Names, create_topics, start_aggregator
from tests.integration.worker_harness import Topics, produce, read_all, start_worker


def test_sample_posts_reach_the_brand_leaderboard(kafka_bootstrap, redis_url, tmp_path, request):
    names = Names.fresh(request.node.name)
    topics = Topics(
        f"{names.app_id}.raw",
        names.entities,
        f"{names.app_id}.dlq",
        names.aggregates,
        f"{names.app_id}.workers",
    )
    create_topics(kafka_bootstrap, [topics.raw, topics.entities, topics.dlq, names.aggregates], partitions=2)
    lines = (resources.files("stream_ner") / "samples" / "posts.jsonl").read_text().splitlines()
    posts = [json.loads(line) for line in lines if line.strip()]
    linker = BrandLinker.from_catalog()
    untagged = {
        b for links in linker.link([p["text"] for p in posts], [[] for _ in posts]) for b in links.brands
    }
    assert len(untagged) >= 10, "the sample posts mention many catalog brands"

    worker = start_worker(kafka_bootstrap, topics, tmp_path, "w0")
    aggregator = start_aggregator(kafka_bootstrap, redis_url, names, tmp_path / "agg.log", partitions="2")
    try:
        worker.wait_assigned()
        at = int(time.time())
        produce(kafka_bootstrap, topics.raw, [(p["id"].encode(), json.dumps(p).encode()) for p in posts])
        env = os.environ | {"STREAM_NER_REDIS__URL": redis_url, "STREAM_NER_REDIS__KEY_PREFIX": names.prefix}
        command = [
            sys.executable,
            "-m",
            "stream_ner",
            "brands",
            "top",
            "--window",
            "5m",  # the test aggregator's windows are 1m and 5m (test_aggregate.WINDOWS)
            "--at",
            str(at),
            "--n",
            "200",
        ]
        client = redis.Redis.from_url(redis_url)
        deadline = time.monotonic() + 180
        shown: set[str] = set()
        while time.monotonic() < deadline:
            aggregator.alive()
            assert worker.proc.poll() is None, worker.log()
            out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
            shown = {b for b in untagged if f" {b} " in out.stdout}
            if len(shown) >= 0.8 * len(untagged):
                break
            time.sleep(2)
        client.close()
        assert len(shown) >= 0.8 * len(untagged), f"{sorted(untagged - shown)} missing from:\n{out.stdout}"
        assert out.returncode == 0 and "5m window" in out.stdout
    finally:
        aggregator.stop()
        if worker.proc.poll() is None:
            worker.terminate()


PLAIN = {  # catalog brand -> posts whose polarity toward it no reader would doubt
    "negative": [
        "Worst customer service ever from Verizon, I hate them and I am cancelling today",
        "My new Samsung phone died after two days, total garbage and a waste of money",
        "Ryanair cancelled my flight again with no refund, absolutely furious and never flying with them",
    ],
    "positive": [
        "I love my new Nike running shoes, best purchase of the year!",
        "Netflix just dropped my favourite show, so happy right now, thank you",
        "The Lego set my kids got is amazing, they had the best afternoon",
    ],
}


def test_plain_sentiment_reaches_redis_counted_as_the_events_say(
    kafka_bootstrap, redis_url, tmp_path, request
):
    """Worker -> aggregator on the real broker and Redis: per-brand polarity counts are the events' own."""
    names = Names.fresh(request.node.name)
    topics = Topics(
        f"{names.app_id}.raw",
        names.entities,
        f"{names.app_id}.dlq",
        names.aggregates,
        f"{names.app_id}.workers",
    )
    create_topics(kafka_bootstrap, [topics.raw, topics.entities, topics.dlq, names.aggregates], partitions=2)
    texts = [(label, text) for label, group in PLAIN.items() for text in group]
    at = time.time()
    posts = [
        json.dumps({"id": f"s{i}", "text": text, "created_at": at, "author": f"a{i}"}).encode()
        for i, (_, text) in enumerate(texts)
    ]
    worker = start_worker(kafka_bootstrap, topics, tmp_path, "w0")
    aggregator = start_aggregator(kafka_bootstrap, redis_url, names, tmp_path / "agg.log", partitions="2")
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        worker.wait_assigned()
        produce(kafka_bootstrap, topics.raw, [(f"s{i}".encode(), p) for i, p in enumerate(posts)])
        events = {e["post_id"]: e for e in read_all(kafka_bootstrap, topics.entities, len(posts))}
        assert len(events) == len(posts), worker.log()
        for i, (label, text) in enumerate(texts):
            event = events[f"s{i}"]
            assert event["sentiment_label"] == label, (text, event["sentiment"])
            assert (event["sentiment"] > 0) == (label == "positive")
        expected = _polarity_counts(events.values())
        assert len(expected) >= 5, f"the posts mention catalog brands: {expected}"
        deadline = time.monotonic() + 120
        got: dict[str, list[int]] = {}
        while time.monotonic() < deadline:
            aggregator.alive()
            got = _redis_polarity(client, names.prefix, "1m")
            if got == expected:
                break
            time.sleep(1)
        assert got == expected, f"redis {got} != events {expected}\n{aggregator.log()}"
        env = os.environ | {"STREAM_NER_REDIS__URL": redis_url, "STREAM_NER_REDIS__KEY_PREFIX": names.prefix}
        out = subprocess.run(
            [sys.executable, "-m", "stream_ner", "brands", "top", "--window", "1m", "--sort",
             "net-sentiment"],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        shown = [b for b in out.stdout.split() if b in expected]
        nets = [(b, (c[2] - c[0]) / (c[2] + c[0])) for b, c in expected.items() if c[0] + c[2]]
        assert shown[0] == min(nets, key=lambda x: (x[1], x[0]))[0], out.stdout  # most negative first
    finally:
        client.close()
        aggregator.stop()
        if worker.proc.poll() is None:
            worker.terminate()


def _polarity_counts(events) -> dict[str, list[int]]:
    """Per brand: [negative, neutral, positive] mentions recounted from the events (entity's, else post's)."""
    order = ["negative", "neutral", "positive"]
    counts: dict[str, list[int]] = {}
    for event in events:
        linked = [e for e in event["entities"] if e["brand"]]
        for brand in set(event["brands"]) | {e["brand"] for e in linked}:
            own = [e["sentiment_label"] or event["sentiment_label"] for e in linked if e["brand"] == brand]
            for label in own or [event["sentiment_label"]]:
                counts.setdefault(brand, [0, 0, 0])[order.index(label)] += 1
    return counts


def _redis_polarity(client: redis.Redis, prefix: str, window: str) -> dict[str, list[int]]:
    """Per brand: [negative, neutral, positive] summed over the windows of one family held in Redis."""
    got: dict[str, list[int]] = {}
    for key in client.scan_iter(match=f"{prefix}:agg:{window}:*", count=1000):
        fields = client.hmget(key, "brand", "negative", "neutral", "positive")
        counts = got.setdefault(fields[0], [0, 0, 0])
        for i, value in enumerate(fields[1:]):
            counts[i] += int(value)
    return got
