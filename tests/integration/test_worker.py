"""The inference worker against a real broker: exactly one event per post, DLQ, crashes, shutdown, memory."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter

import pytest

from stream_ner import localstack
from tests.integration.worker_harness import (
    Topics,
    committed,
    post,
    produce,
    read_all,
    start_worker,
)

PARTITIONS = 6  # of raw-posts, from its spec


@pytest.fixture
def topics(kafka_bootstrap, request) -> Topics:
    t = Topics.fresh(request.node.name.replace("_", "-")[:40])
    partitions = t.apply(kafka_bootstrap)
    assert partitions["raw_posts"] == PARTITIONS
    return t


@pytest.fixture
def workers(tmp_path):
    started = []
    yield started
    for worker in started:
        if worker.proc.poll() is None:
            worker.kill()


def test_n_posts_give_exactly_n_events_across_two_workers(kafka_bootstrap, topics, workers, tmp_path):
    workers += [start_worker(kafka_bootstrap, topics, tmp_path, f"w{i}") for i in range(2)]
    for worker in workers:
        worker.wait_assigned()
    n = 400
    produce(kafka_bootstrap, topics.raw, [post(i) for i in range(n)])
    events = read_all(kafka_bootstrap, topics.entities, n, idle=3.0)
    ids = Counter(e["post_id"] for e in events)
    assert set(ids) == {f"post-{i:05d}" for i in range(n)}
    assert max(ids.values()) == 1, "no rebalance happened, so no post may be processed twice"
    by_worker = [w.metrics()["stream_ner_produced_total"] for w in workers]
    assert sum(by_worker) == n and all(count > 0 for count in by_worker), by_worker
    sample = next(e for e in events if e["post_id"] == "post-00007")
    assert sample["text"].startswith("Post 7:")
    for entity in sample["entities"]:
        assert sample["text"][entity["start"] : entity["end"]] == entity["text"]
    assert sample["origin"]["topic"] == topics.raw and sample["model"]["name"]


BAD_INPUTS = {
    "invalid_json": b'{"id": "x1", "text": "unterminated',
    "missing_text": json.dumps({"id": "x2"}).encode(),
    "invalid_field": json.dumps({"id": "x3", "text": ["not", "a", "string"]}).encode(),
    "not_utf8": b'{"id": "x4", "text": "caf\xe9"}',
    "empty_text": json.dumps({"id": "x5", "text": "   "}).encode(),
    "too_large": json.dumps({"id": "x6", "text": "a" * 1_000_000}).encode(),
    "unknown_field": json.dumps({"id": "x7", "text": "hi", "mood": "happy"}).encode(),
    "created_in_future": json.dumps(
        {"id": "x8", "text": "hi", "created_at": "2999-01-01T00:00:00Z"}
    ).encode(),
    "null_value": None,
}


def test_each_bad_input_goes_to_the_dlq_with_its_reason_and_the_worker_keeps_going(
    kafka_bootstrap, topics, workers, tmp_path
):
    workers.append(start_worker(kafka_bootstrap, topics, tmp_path, "w0"))
    workers[0].wait_assigned()
    records = []
    for i, (code, value) in enumerate(BAD_INPUTS.items()):
        records += [post(2 * i), (f"bad-{code}".encode(), value), post(2 * i + 1)]
    produce(kafka_bootstrap, topics.raw, records)
    rejected = read_all(kafka_bootstrap, topics.dlq, len(BAD_INPUTS), idle=2.0)
    events = read_all(kafka_bootstrap, topics.entities, 2 * len(BAD_INPUTS), idle=2.0)
    assert {r["key"]: r["code"] for r in rejected} == {f"bad-{code}": code for code in BAD_INPUTS}
    for record in rejected:
        assert record["reason"] and record["origin"]["topic"] == topics.raw
    not_utf8 = next(r for r in rejected if r["code"] == "not_utf8")
    assert not_utf8["value_encoding"] == "base64"
    too_large = next(r for r in rejected if r["code"] == "too_large")
    assert too_large["value_truncated"] and too_large["value_bytes"] == len(BAD_INPUTS["too_large"])
    assert sorted(e["post_id"] for e in events) == sorted(f"post-{i:05d}" for i in range(2 * len(BAD_INPUTS)))
    assert workers[0].proc.poll() is None, "the worker must keep running"


def test_kill_9_of_one_worker_loses_no_post(kafka_bootstrap, topics, workers, tmp_path):
    workers += [
        start_worker(kafka_bootstrap, topics, tmp_path, f"w{i}", session_timeout_ms="6000") for i in range(2)
    ]
    for worker in workers:
        worker.wait_assigned()
    n = 900
    produce(kafka_bootstrap, topics.raw, [post(i) for i in range(n)])
    deadline = time.monotonic() + 60
    while workers[0].metrics().get("stream_ner_produced_total", 0) < 50 and time.monotonic() < deadline:
        time.sleep(0.1)
    done_before_kill = workers[0].metrics()["stream_ner_produced_total"]
    workers[0].kill()
    assert done_before_kill < n / 2, "the victim must die mid-stream"
    events = read_all(kafka_bootstrap, topics.entities, n, timeout=240, idle=3.0)
    ids = {e["post_id"] for e in events}
    missing = {f"post-{i:05d}" for i in range(n)} - ids
    assert not missing, f"{len(missing)} posts lost, e.g. {sorted(missing)[:5]}"
    assert workers[1].metrics()["stream_ner_assigned_partitions"] == PARTITIONS


def test_sigterm_exits_cleanly_and_commits_nothing_past_an_unprocessed_post(
    kafka_bootstrap, topics, workers, tmp_path
):
    workers.append(start_worker(kafka_bootstrap, topics, tmp_path, "w0"))
    workers[0].wait_assigned()
    n = 1200
    produce(kafka_bootstrap, topics.raw, [post(i) for i in range(n)])
    deadline = time.monotonic() + 60
    while workers[0].metrics().get("stream_ner_produced_total", 0) < 100 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert workers[0].terminate() == 0, workers[0].log()
    offsets = committed(kafka_bootstrap, topics.group, topics.raw, PARTITIONS)
    events = read_all(kafka_bootstrap, topics.entities, 1, idle=3.0)
    done = {(e["origin"]["partition"], e["origin"]["offset"]) for e in events}
    assert sum(max(o, 0) for o in offsets.values()) > 0, "something was committed"
    assert sum(max(o, 0) for o in offsets.values()) < n, "the worker stopped mid-stream"
    for partition, offset in offsets.items():
        unprocessed = [o for o in range(max(offset, 0)) if (partition, o) not in done]
        assert not unprocessed, (
            f"partition {partition}: committed {offset} past unprocessed {unprocessed[:5]}"
        )
    assert "worker stopped" in workers[0].log()


def test_sigterm_with_every_broker_down_stops_well_within_the_session_timeout(workers, tmp_path):
    """librdkafka's close waits out the 45 s session timeout when no broker answers; the worker does not.

    A broker of its own, since this test kills it.
    """
    with localstack.start_kafka(name=f"brokers-down-{uuid.uuid4().hex[:8]}") as kafka:
        topics = Topics.fresh("brokers-down")
        topics.apply(kafka.bootstrap)
        workers.append(start_worker(kafka.bootstrap, topics, tmp_path, "w0"))
        workers[0].wait_assigned()
        produce(kafka.bootstrap, topics.raw, [post(i) for i in range(50)])
        deadline = time.monotonic() + 60
        while workers[0].metrics().get("stream_ner_produced_total", 0) < 50 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(6)  # an auto-commit interval: committed offsets are what makes close wait for the broker
        kafka.stop_node(1, kill=True)
        began = time.monotonic()
        assert workers[0].terminate(timeout=60) == 0, workers[0].log()
        took = time.monotonic() - began
    assert took < 20, f"stopped after {took:.1f} s"
    assert "did not close within" in workers[0].log()
    assert "worker stopped" in workers[0].log()


def test_a_backlog_of_ten_times_the_queue_keeps_memory_bounded(kafka_bootstrap, topics, workers, tmp_path):
    queue_max, batch = 64, 16
    n = 30 * queue_max
    payload = {"blob": "x" * 32_768}  # heavy to hold, cheap to infer: 60 MiB of backlog in all
    produce(kafka_bootstrap, topics.raw, [post(i, metadata=payload) for i in range(n)])
    worker = start_worker(
        kafka_bootstrap, topics, tmp_path, "w0", queue_max_posts=str(queue_max), max_batch_posts=str(batch)
    )
    workers.append(worker)
    worker.wait_assigned()
    while worker.metrics().get("stream_ner_produced_total", 0) < n // 10:
        assert worker.proc.poll() is None, worker.log()
        time.sleep(0.1)
    early = worker.sample_rss()
    while (produced := worker.metrics().get("stream_ner_produced_total", 0)) < n:
        worker.sample_rss()
        assert worker.proc.poll() is None, worker.log()
        time.sleep(0.1)
    peak = worker.metrics()["stream_ner_in_flight_posts_peak"]
    assert peak <= queue_max + 1, f"in-flight peaked at {peak} with a limit of {queue_max}"
    assert produced == n
    growth = max(worker.rss_samples) - early
    print(f"RSS after 10% {early / 2**20:.0f} MiB, peak {max(worker.rss_samples) / 2**20:.0f} MiB")
    assert growth < 24 * 2**20, f"RSS grew by {growth / 2**20:.0f} MiB while draining a 60 MiB backlog"


def test_a_repeated_text_gets_the_identical_event_from_the_duplicate_cache(
    kafka_bootstrap, topics, workers, tmp_path
):
    workers.append(start_worker(kafka_bootstrap, topics, tmp_path, "w0"))
    workers[0].wait_assigned()
    text = "Just got the new @Nike Air Max in London #ad"
    produce(kafka_bootstrap, topics.raw, [post(0, text, author="amy")])
    assert len(read_all(kafka_bootstrap, topics.entities, 1)) == 1  # computed, and now cached
    produce(kafka_bootstrap, topics.raw, [post(1, text, author="amy"), post(2, "nothing here")])
    events = {e["post_id"]: e for e in read_all(kafka_bootstrap, topics.entities, 3, idle=1.0)}
    assert len(events) == 3
    first, repeat = events["post-00000"], events["post-00001"]
    assert first["entities"] and first["brands"]
    own = {"post_id", "origin", "processed_at"}
    assert {k: v for k, v in repeat.items() if k not in own} == {
        k: v for k, v in first.items() if k not in own
    }
    assert repeat["origin"]["offset"] != first["origin"]["offset"] or (
        repeat["origin"]["partition"] != first["origin"]["partition"]
    )
    metrics = workers[0].metrics()
    assert metrics["stream_ner_dedupe_hits_total"] == 1
    assert metrics["stream_ner_dedupe_misses_total"] == 2
