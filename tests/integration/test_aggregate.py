"""The aggregation stage on the real broker and Redis: exact counts per brand and window, crash, outage, late.

Each test runs ``stream-ner aggregate`` in a subprocess on its own topics, consumer group and Redis key
prefix, feeds a scripted stream of ``EntityEvent`` records with known brands and event times, and compares
the latest record per key on the output topic, and the Redis hashes, with counts computed independently
here. The replay tests count a post once, as its first event says: across a kill -9 of the aggregator
between two differing events of a post, and across a kill -9 of a real worker and the aggregator
mid-stream, compared with a recount of what the ``entities`` topic holds (``loadtest.aggregate_check``,
which also runs the aggregator processes and reads their sinks, for these tests and the chaos soak).
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import pytest
import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from loadtest.aggregate_check import (
    T0,
    WINDOWS,
    Aggregator,
    Names,
    PersistentRedis,
    TopicReader,
    create_topics,
    gap_lines,
    iso,
    recount,
    start_aggregator,
    wait_exact,
    window_starts,
)
from stream_ner import localstack
from stream_ner.messages import EntityEvent, EntityMention, ModelRef, Origin
from tests.integration.worker_harness import Topics, start_worker
from tests.integration.worker_harness import produce as produce_raw


def pipeline_topics(bootstrap: str, test: str, partitions: int) -> tuple[Names, Topics]:
    """Fresh names for a worker and an aggregator, and their topics."""
    names = Names.fresh(test)
    topics = Topics(
        f"{names.app_id}.raw",
        names.entities,
        f"{names.app_id}.dlq",
        names.aggregates,
        f"{names.app_id}.workers",
    )
    create_topics(bootstrap, [topics.raw, topics.entities, topics.dlq, names.aggregates], partitions)
    return names, topics


@pytest.fixture
def aggregators():
    started: list[Aggregator] = []
    yield started
    for aggregator in started:
        aggregator.stop()
    for path in {a.log_path for a in started}:
        lines = gap_lines(path)
        assert not lines, f"an aggregator read its input out of order: {lines[:3]}"


Tone = tuple[str, float]
"""A sentiment label and score, as events carry them."""

TONES: list[Tone | None] = [None, ("negative", -0.75), ("neutral", 0.0), ("positive", 0.5)]


@dataclass(frozen=True)
class Scripted:
    """One post of the script: who wrote it, when, which brands (and entities) it mentions."""

    post_id: str
    at_s: float
    brands: tuple[str, ...]
    author: str | None
    sentiment: Tone | None = None  # the post's
    person: str | None = None
    tones: tuple[Tone | None, ...] = ()  # toward each brand's entity; none: the post's counts

    def event(self) -> bytes:
        text = " ".join(self.brands) + (f" {self.person}" if self.person else "")
        entities, pos = [], 0
        for brand, tone in zip(self.brands, self.tones or [None] * len(self.brands), strict=True):
            entities.append(
                EntityMention(
                    start=pos,
                    end=pos + len(brand),
                    label="ORG",
                    score=0.9,
                    text=brand,
                    brand=brand,
                    sentiment=tone and tone[1],
                    sentiment_label=tone and tone[0],
                )
            )
            pos += len(brand) + 1
        if self.person:
            entities.append(
                EntityMention(start=pos, end=pos + len(self.person), label="PER", score=0.9, text=self.person)
            )
        return (
            EntityEvent(
                post_id=self.post_id,
                text=text,
                entities=entities,
                brands=sorted(self.brands),
                created_at=T0 + timedelta(seconds=self.at_s),
                author=self.author,
                lang="en",
                source="test",
                metadata={},
                sentiment=self.sentiment and self.sentiment[1],
                sentiment_label=self.sentiment and self.sentiment[0],
                model=ModelRef(name="test", version="1"),
                origin=Origin(topic="raw", partition=0, offset=0, timestamp_ms=None),
                processed_at=datetime.now(UTC),
            )
            .model_dump_json()
            .encode()
        )

    def tone_toward(self, brand: str) -> Tone | None:
        """The sentiment a mention of ``brand`` counts with: its entity's, else the post's."""
        own = self.tones[self.brands.index(brand)] if self.tones else None
        return own or self.sentiment


def produce(bootstrap: str, topic: str, posts: list[Scripted]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    for post in posts:
        producer.produce(topic, key=post.post_id.encode(), value=post.event())
        producer.poll(0)
    assert producer.flush(30) == 0


def script(n: int, seed: int, span_s: float = 280.0) -> list[Scripted]:
    """``n`` posts over ``span_s`` seconds of event time, out of order by up to 20 s, 10 % duplicated."""
    rng = random.Random(seed)
    brands = ["nike", "adidas", "apple", "~acme robotics"]
    posts: list[Scripted] = []
    for i in range(n):
        if posts and rng.random() < 0.1:
            posts.append(rng.choice(posts))
            continue
        mentioned = tuple(rng.sample(brands, rng.choice([1, 1, 2])))
        posts.append(
            Scripted(
                post_id=f"post-{seed}-{i:05d}",
                at_s=max(0.0, i * span_s / n + rng.uniform(-20, 5)),
                brands=mentioned,
                author=rng.choice(["al", "bo", "cy", "di", None]),
                sentiment=rng.choice(TONES),
                person=rng.choice([None, "LeBron", "Taylor"]),
                tones=tuple(rng.choice(TONES) for _ in mentioned),
            )
        )
    return posts


def expected_counts(posts: list[Scripted], windows: list[dict] = WINDOWS) -> dict[str, dict[str, Any]]:
    """Reference counts, written independently of the stage: key -> {mentions, posts, authors, ...}."""
    seen: set[tuple[str, str]] = set()
    acc: dict[str, dict[str, Any]] = {}
    for post in posts:
        for brand in post.brands:
            if (brand, post.post_id) in seen:
                continue
            seen.add((brand, post.post_id))
            for spec in windows:
                for start in window_starts(post.at_s, spec["size_s"], spec["step_s"]):
                    key = f"{brand}|{spec['name']}|{iso(start)}"
                    a = acc.setdefault(
                        key,
                        {
                            "posts": 0,
                            "authors": set(),
                            "sentiment": 0.0,
                            "tones": Counter(),
                            "co": defaultdict(int),
                            "ent": defaultdict(int),
                        },
                    )
                    a["posts"] += 1
                    if post.author:
                        a["authors"].add(post.author)
                    tone = post.tone_toward(brand)
                    if tone is not None:
                        a["sentiment"] += tone[1]
                        a["tones"][tone[0]] += 1
                    for other in post.brands:
                        if other != brand:
                            a["co"][other] += 1
                    if post.person:
                        a["ent"][f"PER:{post.person.lower()}"] += 1
    return {
        key: {
            "mentions": a["posts"],  # one linked entity per brand and post in this script
            "posts": a["posts"],
            "authors": len(a["authors"]),
            "sentiment_sum": round(a["sentiment"], 6),
            "tones": [a["tones"]["negative"], a["tones"]["neutral"], a["tones"]["positive"]],
            "co_brands": dict(a["co"]),
            "co_entities": dict(a["ent"]),
        }
        for key, a in acc.items()
    }


@pytest.fixture
def names(kafka_bootstrap, request) -> Names:
    n = Names.fresh(request.node.name)
    create_topics(kafka_bootstrap, [n.entities, n.aggregates], partitions=3)
    return n


@pytest.fixture
def rclient(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def test_scripted_stream_gives_exact_counts_per_brand_and_window(
    kafka_bootstrap, redis_url, names, rclient, aggregators, tmp_path
):
    posts = script(400, seed=1)
    expected = expected_counts(posts)
    produce(kafka_bootstrap, names.entities, posts)
    log_path = tmp_path / "agg.log"
    json_logs = {"STREAM_NER_LOG_FORMAT": "json"}
    aggregators.append(start_aggregator(kafka_bootstrap, redis_url, names, log_path, env_extra=json_logs))
    reader = TopicReader(kafka_bootstrap, names.aggregates)
    try:
        wait_exact(reader, rclient, names.prefix, expected, aggregators[0])
    finally:
        reader.close()
    nike = [k for k in expected if k.startswith("nike|1m|")]
    assert len(expected) > 40 and nike, "the script covers many windows"
    sample = reader.latest[nike[0]]
    assert len(sample["sample_post_ids"]) == min(5, sample["posts"])
    assert (
        rclient.zscore(f"{names.prefix}:top:1m:{int((T0).timestamp())}", "nike")
        == expected[f"nike|1m|{iso(0)}"]["mentions"]
    )
    assert rclient.xlen(f"{names.prefix}:updates") > 0
    assert 0 < rclient.ttl(f"{names.prefix}:agg:1m:{int(T0.timestamp())}:nike") <= 172_800
    metrics = aggregators[0].metrics()
    duplicates = len(posts) - len({p.post_id for p in posts})
    assert metrics['stream_ner_aggregate_mentions_total{result="duplicate"}'] >= duplicates > 0
    records = [json.loads(line) for line in log_path.read_text().splitlines()]  # every line is JSON
    assert any("restored" in r["msg"] for r in records if r["logger"] == "stream_ner.aggregate.stages")
    library = [r for r in records if r["logger"].split(".")[0] in {"faust", "mode", "aiokafka"}]
    assert all(r["level"] in {"WARNING", "ERROR", "CRITICAL"} for r in library), library


def test_kill_9_mid_stream_then_restart_keeps_every_count_exact(
    kafka_bootstrap, redis_url, names, rclient, aggregators, tmp_path
):
    posts = script(900, seed=2)
    expected = expected_counts(posts)
    first, rest = posts[:500], posts[500:]
    produce(kafka_bootstrap, names.entities, first)
    # commits are rare, so the kill lands far past the last commit: much is replayed after the restart
    aggregators.append(
        start_aggregator(kafka_bootstrap, redis_url, names, tmp_path / "agg.log", commit_interval_s="30")
    )
    deadline = time.monotonic() + 90
    while aggregators[0].metric('stream_ner_aggregate_mentions_total{result="counted"}') < 300:
        aggregators[0].alive()
        assert time.monotonic() < deadline, aggregators[0].log()
        time.sleep(0.2)
    aggregators[0].kill()
    produce(kafka_bootstrap, names.entities, rest)
    aggregators.append(
        start_aggregator(kafka_bootstrap, redis_url, names, tmp_path / "agg.log", commit_interval_s="30")
    )
    reader = TopicReader(kafka_bootstrap, names.aggregates)
    try:
        wait_exact(reader, rclient, names.prefix, expected, aggregators[1])
    finally:
        reader.close()
    metrics = aggregators[1].metrics()
    assert metrics['stream_ner_aggregate_mentions_total{result="replayed"}'] > 0, "the restart replayed input"


def test_sigterm_with_every_broker_down_stops_in_seconds_without_a_traceback(
    redis_url, rclient, aggregators, tmp_path
):
    """faust's final commit waits for a group coordinator without end, and aiokafka's close raised the
    cancellation of its own fetch task, killing faust's consumer thread. A broker of its own, since this
    test kills it."""
    posts = script(100, seed=9)
    with localstack.start_kafka(name=f"agg-brokers-down-{uuid.uuid4().hex[:8]}") as kafka:
        names = Names.fresh("agg-brokers-down")
        create_topics(kafka.bootstrap, [names.entities, names.aggregates], partitions=3)
        produce(kafka.bootstrap, names.entities, posts)
        aggregators.append(
            start_aggregator(kafka.bootstrap, redis_url, names, tmp_path / "agg.log", stop_timeout_s="8")
        )
        reader = TopicReader(kafka.bootstrap, names.aggregates)
        try:
            wait_exact(reader, rclient, names.prefix, expected_counts(posts), aggregators[0])
        finally:
            reader.close()
        kafka.stop_node(1, kill=True)
        time.sleep(5)  # fetches fail and wait to retry, as in an outage
        began = time.monotonic()
        aggregators[0].proc.terminate()
        code = aggregators[0].proc.wait(90)
        took = time.monotonic() - began
    log = aggregators[0].log()
    assert code == 0, log
    # faust's final commit hangs when offsets are pending (then the bound's warning line is logged); with
    # none pending it may stop by itself: either way within the bound
    assert took < 15, f"stopped after {took:.1f} s"
    assert "Traceback" not in log and "Error while stopping" not in log, log


@pytest.fixture
def own_redis(tmp_path):
    """A Redis of this test only, with an append-only file, so it can be stopped and restarted."""
    server = PersistentRedis(tmp_path / "redis", timeout_s=10.0)
    server.start()
    yield server
    server.stop()


def test_redis_down_for_30s_mid_stream_then_back_ends_exact(
    kafka_bootstrap, names, own_redis, aggregators, tmp_path
):
    posts = script(600, seed=3)
    expected = expected_counts(posts)
    client = redis.Redis.from_url(own_redis.url)
    produce(kafka_bootstrap, names.entities, posts[:300])
    aggregators.append(start_aggregator(kafka_bootstrap, own_redis.url, names, tmp_path / "agg.log"))
    deadline = time.monotonic() + 90
    while not any(True for _ in client.scan_iter(match=f"{names.prefix}:agg:*", count=100)):
        aggregators[0].alive()
        assert time.monotonic() < deadline, aggregators[0].log()
        time.sleep(0.2)
    own_redis.stop()
    stopped = time.monotonic()
    produce(kafka_bootstrap, names.entities, posts[300:])
    time.sleep(max(0.0, 30 - (time.monotonic() - stopped)))
    aggregators[0].alive()
    assert aggregators[0].metric('stream_ner_aggregate_sink_errors_total{sink="redis"}') > 0
    own_redis.start()
    reader = TopicReader(kafka_bootstrap, names.aggregates)
    try:
        wait_exact(reader, client, names.prefix, expected, aggregators[0])
    finally:
        reader.close()
        client.close()


def test_late_events_count_within_grace_and_are_dropped_beyond_it(
    kafka_bootstrap, redis_url, rclient, aggregators, tmp_path, request
):
    names = Names.fresh(request.node.name)
    create_topics(kafka_bootstrap, [names.entities, names.aggregates], partitions=1)
    windows = [{"name": "1m", "size_s": 60, "step_s": 60}]
    timeline = [  # (post, event time s); one partition, so this is the processing order
        ("p1", 1),
        ("p2", 30),
        ("p3", 65),
        ("p4", 50),  # stream time 65 < 60 + 10: inside the grace period of [0, 60), counted there
        ("p5", 75),  # stream time 75: [0, 60) closes
        ("p6", 20),  # beyond grace: dropped, reported as late
        ("p7", 200),  # closes [60, 120); [180, 240) stays open
    ]
    posts = [Scripted(p, at, ("nike",), f"author-{p}") for p, at in timeline]
    produce(kafka_bootstrap, names.entities, posts)
    aggregators.append(
        start_aggregator(
            kafka_bootstrap,
            redis_url,
            names,
            tmp_path / "agg.log",
            partitions="1",
            grace_s="10",
            emit="close",
            windows=json.dumps(windows),
        )
    )
    expected = expected_counts([p for p in posts if p.post_id not in ("p6", "p7")], windows)
    assert expected[f"nike|1m|{iso(0)}"]["posts"] == 3 and expected[f"nike|1m|{iso(60)}"]["posts"] == 2
    reader = TopicReader(kafka_bootstrap, names.aggregates)
    try:
        wait_exact(reader, rclient, names.prefix, expected, aggregators[0], timeout=90)
        reader.poll(2.0)  # in "close" mode only final records are written, one per closed window
        assert all(r["final"] for r in reader.latest.values())
        assert set(reader.latest) == set(expected)
    finally:
        reader.close()
    metrics = aggregators[0].metrics()
    assert metrics['stream_ner_aggregate_late_windows_total{window="1m"}'] == 1
    assert metrics['stream_ner_aggregate_mentions_total{result="late"}'] == 1


# -- replays: a post counts once, as its first event says -------------------------------------------------

COUNTED = 'stream_ner_aggregate_mentions_total{result="counted"}'


def first_per_post(posts):
    seen, first = set(), []
    for post in posts:
        if post.post_id not in seen:
            seen.add(post.post_id)
            first.append(post)
    return first


@pytest.mark.parametrize("kill_between", [False, True], ids=["one run", "kill -9 between"])
def test_a_post_repeated_with_other_brands_counts_once_as_its_first_event(
    kafka_bootstrap, redis_url, names, rclient, aggregators, tmp_path, kill_between
):
    originals = script(300, seed=11)
    # what a model upgrade mid-stream gives for 40 posts: other brands, another entity, same post id
    upgraded = [
        replace(p, brands=("puma",) if "puma" not in p.brands else ("zara",), person="Serena", tones=())
        for p in first_per_post(originals)[::7][:40]
    ]
    later = [replace(p, at_s=p.at_s + 290) for p in script(150, seed=12)]  # after the originals
    stream = originals + upgraded + later
    expected = expected_counts(first_per_post(stream))
    assert any("puma" in key or "zara" in key for key in expected_counts(upgraded)), "repeats add brands"

    produce(kafka_bootstrap, names.entities, originals)
    log = tmp_path / "agg.log"
    aggregators.append(start_aggregator(kafka_bootstrap, redis_url, names, log, commit_interval_s="30"))
    if kill_between:
        deadline = time.monotonic() + 90
        while aggregators[0].metric(COUNTED) < 300:
            aggregators[0].alive()
            assert time.monotonic() < deadline, aggregators[0].log()
            time.sleep(0.2)
        aggregators[0].kill()
    produce(kafka_bootstrap, names.entities, upgraded + later)
    if kill_between:
        aggregators.append(start_aggregator(kafka_bootstrap, redis_url, names, log, commit_interval_s="30"))
    reader = TopicReader(kafka_bootstrap, names.aggregates)
    try:
        wait_exact(reader, rclient, names.prefix, expected, aggregators[-1])
    finally:
        reader.close()
    assert aggregators[-1].metric("stream_ner_aggregate_duplicate_events_total") >= len(upgraded)


def first_events(
    bootstrap: str, topic: str, posts: int, timeout: float = 240.0
) -> tuple[list[EntityEvent], int]:
    """Read ``topic`` until every post has an event; the first event of each (lowest offset) and the total.

    Every partition is assigned directly, from its beginning, not through a consumer group: the observer
    must not wait on a group coordinator, which a broker fault can leave loading for minutes.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"recount-{time.time_ns()}",  # required by the client; no group is joined
            "enable.auto.commit": False,
        }
    )
    partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(partitions)])
    first: dict[str, EntityEvent] = {}
    total, deadline, quiet = 0, time.monotonic() + timeout, None
    try:
        while time.monotonic() < deadline and (quiet is None or time.monotonic() < quiet):
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            event = EntityEvent.model_validate_json(message.value())
            first.setdefault(event.post_id, event)  # one partition per post id: offset order is arrival
            total += 1
            if len(first) >= posts and quiet is None:
                quiet = time.monotonic() + 5  # late repeats from the restarted worker
    finally:
        consumer.close()
    assert len(first) == posts, f"{len(first)} of {posts} posts have an event"
    return list(first.values()), total


def test_worker_and_aggregator_killed_mid_stream_end_equal_to_a_recount_of_entities(
    kafka_bootstrap, redis_url, rclient, aggregators, tmp_path, request
):
    names, topics = pipeline_topics(kafka_bootstrap, request.node.name, partitions=3)
    samples = [
        json.loads(line)
        for line in (resources.files("stream_ner") / "samples" / "posts.jsonl").read_text().splitlines()
        if line.strip()
    ]
    posts = []
    for i in range(600):  # the sample texts over and over, as new posts, 0.5 s apart in event time
        body = dict(samples[i % len(samples)], id=f"p{i:04d}")
        body["created_at"] = (T0 + timedelta(seconds=i * 0.5)).isoformat()
        posts.append((body["id"].encode(), json.dumps(body).encode()))
    settings = {"grace_s": "600", "commit_interval_s": "30"}  # no post is late here: exactness only
    log = tmp_path / "agg.log"
    worker = start_worker(kafka_bootstrap, topics, tmp_path, "w0")
    aggregators.append(start_aggregator(kafka_bootstrap, redis_url, names, log, **settings))
    try:
        worker.wait_assigned()
        produce_raw(kafka_bootstrap, topics.raw, posts[:400])
        deadline = time.monotonic() + 120
        while aggregators[0].metric(COUNTED) < 150:
            aggregators[0].alive()
            assert worker.proc.poll() is None, worker.log()
            assert time.monotonic() < deadline, aggregators[0].log()
            time.sleep(0.1)
        worker.kill()  # both mid-stream, neither has committed everything it wrote
        aggregators[0].kill()
        produce_raw(kafka_bootstrap, topics.raw, posts[400:])
        worker = start_worker(kafka_bootstrap, topics, tmp_path, "w1")
        aggregators.append(start_aggregator(kafka_bootstrap, redis_url, names, log, **settings))
        events, total = first_events(kafka_bootstrap, topics.entities, len(posts))
        expected = recount(events)
        assert len(expected) > 50, "many brands and windows are checked"
        reader = TopicReader(kafka_bootstrap, names.aggregates)
        try:
            wait_exact(reader, rclient, names.prefix, expected, aggregators[-1], timeout=180)
        finally:
            reader.close()
        print(f"{total} entity events for {len(posts)} posts; {len(expected)} brand windows exact")
    finally:
        if worker.proc.poll() is None:
            worker.terminate()
