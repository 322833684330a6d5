"""Broker faults under load: two workers and the aggregator on the three-broker cluster, posts streaming.

Topics come from the project's specs (replication factor 3, ``min.insync.replicas`` 2), the aggregator's
internal topics at replication factor 3 too. While posts are produced at a steady rate, one broker goes
down (``kill -9``, or SIGTERM) and is started again on its data. Nothing is restarted but the broker: the
workers and the aggregator must ride it out by themselves. At the end every post has an event on
``entities``, ``brand-aggregates`` and Redis equal a recount of the first event per post (so nothing is
lost and nothing counted twice), and the broker is back in every in-sync replica set.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from importlib import resources

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from loadtest.aggregate_check import T0, Aggregator, Names, TopicReader, recount, start_aggregator, wait_exact
from stream_ner.localstack import LocalService
from tests.integration.test_aggregate import COUNTED, first_events
from tests.integration.worker_harness import Topics, WorkerProcess, start_worker

POSTS = 300
RATE = 15.0  # posts/s: the stream lasts 20 s, the broker is down for part of it
DOWN_S = 6.0  # streaming while the broker is down, before it is started again


def sample_posts(n: int) -> list[tuple[bytes, bytes]]:
    """The shipped sample texts over and over as new posts (key, value), 0.5 s apart in event time."""
    lines = (resources.files("stream_ner") / "samples" / "posts.jsonl").read_text().splitlines()
    samples = [json.loads(line) for line in lines if line.strip()]
    posts = []
    for i in range(n):
        body = dict(samples[i % len(samples)], id=f"p{i:04d}")
        body["created_at"] = (T0 + timedelta(seconds=i * 0.5)).isoformat()
        posts.append((body["id"].encode(), json.dumps(body).encode()))
    return posts


class Stream(threading.Thread):
    """Produces ``posts`` at ``rate`` per second (acks=all, idempotent); ``errors`` after :meth:`join`."""

    def __init__(self, bootstrap: str, topic: str, posts: list[tuple[bytes, bytes]], rate: float) -> None:
        super().__init__(daemon=True)
        self.topic, self.posts, self.rate = topic, posts, rate
        self.producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
        self.errors: list[str] = []
        self.sent = 0

    def run(self) -> None:
        began = time.monotonic()
        for i, (key, value) in enumerate(self.posts):
            time.sleep(max(0.0, began + i / self.rate - time.monotonic()))
            self.producer.produce(self.topic, key=key, value=value, on_delivery=self._delivered)
            self.producer.poll(0)
            self.sent += 1
        left = self.producer.flush(90)
        if left:
            self.errors.append(f"{left} posts not acknowledged 90 s after the last")

    def _delivered(self, error: object, _message: object) -> None:
        if error:
            self.errors.append(str(error))


def in_sync(admin: AdminClient, topics: list[str]) -> dict[tuple[str, int], list[int]]:
    """(topic, partition) -> in-sync replicas."""
    metadata = admin.list_topics(timeout=10).topics
    return {(t, p): sorted(m.isrs) for t in topics for p, m in metadata[t].partitions.items()}


def leaders(admin: AdminClient, topic: str) -> set[int]:
    return {m.leader for m in admin.list_topics(topic, timeout=10).topics[topic].partitions.values()}


def coordinator(admin: AdminClient) -> int:
    """The broker leading ``__consumer_offsets`` (one partition here): every group's coordinator."""
    partitions = admin.list_topics("__consumer_offsets", timeout=10).topics["__consumer_offsets"].partitions
    return partitions[0].leader


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> float:
    began = time.monotonic()
    while not condition():
        assert time.monotonic() - began < timeout, f"{what} not within {timeout} s"
        time.sleep(0.5)
    return time.monotonic() - began


def run_broker_fault(
    cluster: LocalService,
    redis_url: str,
    rclient,
    prefix: str,
    tmp_path,
    test: str,
    pick_victim: Callable[[AdminClient, Topics], int],
    kill: bool,
) -> str:
    """Stream, take the victim broker down mid-stream and start it again; assert the end state.

    Returns a line for the run's summary.
    """
    bootstrap = cluster.bootstrap
    admin = AdminClient({"bootstrap.servers": bootstrap})
    assert len(admin.list_topics(timeout=10).brokers) == 3, "the session's cluster has three brokers"
    names = Names.fresh(test)
    names.prefix = prefix.removesuffix(":")  # the redis_client fixture deletes the keys afterwards
    topics = Topics(
        f"{names.app_id}.raw", names.entities, f"{names.app_id}.dlq", names.aggregates, f"{names.app_id}.w"
    )
    topics.apply(bootstrap, replication_factor=None)
    checked = [topics.raw, topics.entities, topics.aggregates]
    assert all(len(r) == 3 for r in in_sync(admin, checked).values())
    posts = sample_posts(POSTS)
    workers: list[WorkerProcess] = []
    aggregator: Aggregator | None = None
    victim, restarted = 0, True
    try:
        workers = [start_worker(bootstrap, topics, tmp_path, f"w{i}") for i in range(2)]
        aggregator = start_aggregator(
            bootstrap,
            redis_url,
            names,
            tmp_path / "agg.log",
            replication_factor="3",
            grace_s="600",  # no post is late here: exactness only
        )
        for worker in workers:
            worker.wait_assigned()
        stream = Stream(bootstrap, topics.raw, posts, RATE)
        stream.start()

        def counting() -> bool:
            aggregator.alive()
            return aggregator.metric(COUNTED) >= 30

        wait_for(counting, 90, "the aggregator counting")
        victim = pick_victim(admin, topics)
        sent_before = stream.sent
        assert sent_before < len(posts) - RATE * DOWN_S, "posts keep coming while the broker is down"
        restarted = False
        down_at = time.monotonic()
        cluster.stop_node(victim, kill=kill)
        time.sleep(DOWN_S)
        cluster.start_node(victim)
        restarted, up_after = True, time.monotonic() - down_at
        stream.join(150)
        assert not stream.is_alive() and stream.errors == [], stream.errors[:5]

        events, total = first_events(bootstrap, topics.entities, len(posts), timeout=180)
        expected = recount(events)
        assert len(expected) > 30, "many brands and windows are checked"
        reader = TopicReader(bootstrap, names.aggregates)
        try:
            wait_exact(reader, rclient, names.prefix, expected, aggregator, timeout=180)
        finally:
            reader.close()
        for worker in workers:
            assert worker.proc.poll() is None, f"a worker exited:\n{worker.log()}"
        rejoined = wait_for(
            lambda: all(victim in r for r in in_sync(admin, checked).values()),
            120,
            f"broker {victim} back in every in-sync replica set",
        )
    finally:
        if not restarted:  # the session's next test finds three brokers
            cluster.start_node(victim)
        for worker in workers:
            if worker.proc.poll() is None:
                worker.terminate()
        if aggregator is not None:
            aggregator.stop()
    how = "kill -9" if kill else "SIGTERM"
    return (
        f"broker faults: {how} of broker {victim} after {sent_before} posts, back {up_after:.1f} s later: "
        f"{total} events for "
        f"{len(posts)} posts, {len(expected)} brand windows exact, in every ISR {rejoined:.1f} s after the "
        "counts were"
    )


def the_coordinator(admin: AdminClient, topics: Topics) -> int:
    """The groups' coordinator, when it also leads partitions of the posts or events (else a leader)."""
    chosen = coordinator(admin)
    if chosen in leaders(admin, topics.raw) | leaders(admin, topics.entities):
        return chosen
    return min(leaders(admin, topics.entities))


def a_leader_not_coordinating(admin: AdminClient, topics: Topics) -> int:
    """A broker that leads partitions of the events but is not the groups' coordinator (if one is)."""
    candidates = leaders(admin, topics.entities) - {coordinator(admin)}
    return min(candidates or leaders(admin, topics.entities))


@pytest.mark.timeout(420)
def test_kill_9_of_a_broker_mid_stream_loses_no_post_counts_none_twice_and_it_rejoins(
    kafka_cluster, redis_url, redis_client, redis_prefix, tmp_path, request, report
):
    report(
        run_broker_fault(
            kafka_cluster,
            redis_url,
            redis_client,
            redis_prefix,
            tmp_path,
            request.node.name,
            the_coordinator,
            kill=True,
        )
    )


@pytest.mark.timeout(420)
def test_a_broker_stopped_and_restarted_mid_stream_is_ridden_out_by_workers_and_aggregator(
    kafka_cluster, redis_url, redis_client, redis_prefix, tmp_path, request, report
):
    report(
        run_broker_fault(
            kafka_cluster,
            redis_url,
            redis_client,
            redis_prefix,
            tmp_path,
            request.node.name,
            a_leader_not_coordinating,
            kill=False,
        )
    )
