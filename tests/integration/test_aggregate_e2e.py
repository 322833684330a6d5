"""End to end: sample posts on raw-posts -> worker -> entities -> aggregator -> `stream-ner brands top`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from importlib import resources

import redis

from loadtest.aggregate_check import start_aggregator
from stream_ner.brands import BrandLinker
from tests.integration.test_aggregate import pipeline_topics
from tests.integration.worker_harness import produce, read_all, start_worker


def test_sample_posts_reach_the_brand_leaderboard(kafka_bootstrap, redis_url, tmp_path, request):
    names, topics = pipeline_topics(kafka_bootstrap, request.node.name, partitions=2)
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


# Posts for the lookup model of ``tests.unit.test_sentiment``: "nike" and "apple" are tagged ORG, with a
# negative and a positive sentiment toward them; "good" and "bad" make a post positive or negative; "tesla"
# is not tagged, so its catalog brand takes the post's sentiment.
LEXICON_POSTS = [
    ("nike is bad bad bad", {"nike": "negative"}),
    ("apple is good good good", {"apple": "positive"}),
    ("tesla bad bad bad", {"tesla": "negative"}),
    ("tesla good good good", {"tesla": "positive"}),
    ("apple and nike , good good good", {"apple": "positive", "nike": "negative"}),
]


def test_sentiment_reaches_redis_counted_as_the_events_say(
    kafka_bootstrap, redis_url, tmp_path, request, monkeypatch
):
    """Worker (a lookup model with sentiment outputs) -> aggregator on the real broker and Redis: each
    mention counts with its entity's sentiment, or the post's for a catalog-only brand, and the polarity
    counts in Redis equal a recount of the events."""
    from tests.unit.test_sentiment import build_sentiment_artifact

    monkeypatch.setenv("STREAM_NER_MODEL__PATH", str(build_sentiment_artifact(tmp_path / "model")))
    names, topics = pipeline_topics(kafka_bootstrap, request.node.name, partitions=2)
    at = time.time()
    posts = [
        (f"s{i}".encode(), json.dumps({"id": f"s{i}", "text": text, "created_at": at}).encode())
        for i, (text, _) in enumerate(LEXICON_POSTS)
    ]
    worker = start_worker(kafka_bootstrap, topics, tmp_path, "w0")
    aggregator = start_aggregator(kafka_bootstrap, redis_url, names, tmp_path / "agg.log", partitions="2")
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        worker.wait_assigned()
        produce(kafka_bootstrap, topics.raw, posts)
        events = {e["post_id"]: e for e in read_all(kafka_bootstrap, topics.entities, len(posts))}
        assert len(events) == len(posts), worker.log()
        for i, (text, toward) in enumerate(LEXICON_POSTS):
            counted = _polarities(events[f"s{i}"])
            assert {b: labels for b, labels in counted.items() if b in toward} == {
                b: [label] for b, label in toward.items()
            }, (text, events[f"s{i}"])
        expected = _polarity_counts(events.values())
        assert expected == {"nike": [2, 0, 0], "apple": [0, 0, 2], "tesla": [1, 0, 1]}, expected
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
        shown = [word for word in out.stdout.split() if word in expected]
        assert shown == ["nike", "tesla", "apple"], out.stdout  # net -1, 0, +1: most negative first
    finally:
        client.close()
        aggregator.stop()
        if worker.proc.poll() is None:
            worker.terminate()


def _polarities(event: dict) -> dict[str, list[str]]:
    """Per brand of one event, the polarity of each of its mentions: its entity's, else the post's."""
    linked = [e for e in event["entities"] if e["brand"]]
    out = {}
    for brand in sorted(set(event["brands"]) | {e["brand"] for e in linked}):
        own = [e["sentiment_label"] or event["sentiment_label"] for e in linked if e["brand"] == brand]
        out[brand] = own or [event["sentiment_label"]]
    return out


def _polarity_counts(events) -> dict[str, list[int]]:
    """Per brand: [negative, neutral, positive] mentions, recounted from the events."""
    order = ["negative", "neutral", "positive"]
    counts: dict[str, list[int]] = {}
    for event in events:
        for brand, labels in _polarities(event).items():
            for label in labels:
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
