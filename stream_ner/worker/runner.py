"""The inference worker's loop: consume, parse, batch, annotate, produce, store offsets.

Delivery contract (at-least-once), per input record, in this order:

1. The record is read and tracked as in flight (``OffsetTracker.track``).
2. It is parsed and admitted at the edge (``parse_post``, ``admit``): a valid post joins a batch; an
   unusable one becomes a ``Rejected`` record produced to the dead-letter topic.
3. Batches are annotated in the inference thread; every valid post yields exactly one ``EntityEvent``
   (a post the model or the brand linker fails on is rejected with code ``inference_failed``, its batch
   retried post by post so its neighbours are not; a text annotated before is served from the
   duplicate cache, ``worker.dedupe``, with the event recomputation would give).
4. The event (or rejection) is produced with an idempotent producer (``acks=all``), keyed by post id
   (or by the original key).
5. Only when the broker acknowledges it is the record marked complete (``OffsetTracker.complete``).
6. The offset stored for a partition is one past its highest record below which all are complete
   (``store_offsets``); librdkafka commits stored offsets periodically, on revocation and on close.
   A failed delivery stops the worker without storing past the record, so it is read again.

A crash anywhere therefore re-delivers records from the last stored offset: outputs may repeat, none is
lost. A repeated event has the same key and, for the same model version, the same content but for
``processed_at``: every graph the runtime ships gives a post the same entities whatever batch it runs in.
Across a model upgrade mid-stream a repeat may differ in ``entities``, ``brands``, ``sentiment`` and
``model``; the aggregator counts the first event of a post and skips the rest (``aggregate.dedupe``).
Memory is bounded by pausing the assigned partitions while more than ``queue_max_posts`` records are in
flight.

Batching is continuous: a full batch (``max_batch_posts``) may wait while another runs; a partial one
is handed over only when inference is idle and its oldest post has waited ``max_wait_ms``. While
inference is busy the open batch keeps filling, so under load batches grow with the arrival rate instead
of queueing up as many small ones, and an idle worker still sends a lone post after ``max_wait_ms``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from datetime import UTC, datetime
from functools import partial
from typing import Any, cast

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from stream_ner.errors import DeliveryError, InvalidPost
from stream_ner.kafka import BrokerWatch, librdkafka_logger
from stream_ner.messages import Origin, parse_post, reject
from stream_ner.settings import Settings
from stream_ner.worker.admit import admit
from stream_ner.worker.annotate import Incoming, Linker, Model
from stream_ner.worker.batcher import Batcher
from stream_ner.worker.dedupe import AnnotationCache
from stream_ner.worker.inference import Annotated, InferenceThread
from stream_ner.worker.metrics import WorkerMetrics
from stream_ner.worker.offsets import OffsetTracker

log = logging.getLogger(__name__)

_POLL_SECONDS = 0.05
_BUSY_POLL_SECONDS = 0.002
_CONSUME_MAX = 500
_REVOKE_DRAIN_SECONDS = 10.0
_SHUTDOWN_SECONDS = 15.0
_CLOSE_SECONDS = 10.0


def consumer_config(settings: Settings) -> dict[str, Any]:
    """Librdkafka settings of the worker's consumer: manual offset store, auto commit of stored offsets."""
    worker = settings.worker
    conf = settings.kafka.librdkafka() | {
        "group.id": worker.group_id,
        "partition.assignment.strategy": "cooperative-sticky",
        "enable.auto.commit": True,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": worker.session_timeout_ms,
        "max.poll.interval.ms": worker.max_poll_interval_ms,
        # Keep librdkafka's prefetch small: the in-flight bound is ours, not a 64 MB fetch queue.
        "queued.max.messages.kbytes": 2048,
        "fetch.queue.backoff.ms": 50,  # with a small fetch queue, refill it promptly once drained
        "fetch.wait.max.ms": 100,  # a resumed partition's first fetch must not wait long
        "fetch.max.bytes": 4 * 1024 * 1024,
        "statistics.interval.ms": 5000,
    }
    if worker.group_instance_id:
        conf["group.instance.id"] = worker.group_instance_id
    return conf


def producer_config(settings: Settings) -> dict[str, Any]:
    """librdkafka settings of the worker's producer: idempotent, acks from all in-sync replicas.

    Tuning (linger, compression, sizes) may be overridden through ``kafka.extra``; the delivery settings
    may not.
    """
    tuning = {"linger.ms": 5, "compression.type": "lz4", "message.max.bytes": 2 * 1024 * 1024}
    return tuning | settings.kafka.librdkafka() | {"enable.idempotence": True, "acks": "all"}


class Worker:
    """One inference worker: a member of the consumer group on ``raw-posts``.

    ``run`` blocks until ``stop`` is called (from a signal handler or another thread) or a fatal error;
    it returns the process exit code. Workers share nothing but the consumer group, so any number of them
    may run in any number of processes and machines.
    """

    def __init__(self, settings: Settings, model: Model, linker: Linker | None, metrics: WorkerMetrics):
        self.settings, self.metrics = settings, metrics
        cfg = settings.worker
        self._stop = threading.Event()
        self._tracker = OffsetTracker()
        self._batcher: Batcher[Incoming] = Batcher(
            cfg.max_batch_posts, cfg.max_batch_tokens, cfg.max_wait_ms / 1000
        )
        self._ready: deque[list[Incoming]] = deque()
        self._inbox: queue.Queue[list[Incoming] | None] = queue.Queue(maxsize=1)
        self._outbox: queue.Queue[Annotated] = queue.Queue()
        cache = AnnotationCache(cfg.dedupe_cache_size) if cfg.dedupe_cache_size else None
        self._inference = InferenceThread(model, linker, self._inbox, self._outbox, cache)
        self._fatal: BaseException | None = None
        self._closing = False
        self._batches_out = self._batches_back = 0
        self._paused = False
        self._assignment: set[tuple[str, int]] = set()
        # librdkafka logs through Python logging; an unreachable cluster is reported once, then retried.
        self._brokers = BrokerWatch(settings.kafka.bootstrap_servers, log, settings.kafka)
        hooks = {"logger": librdkafka_logger(), "error_cb": self._brokers.on_error}
        self._consumer = Consumer(consumer_config(settings) | hooks | {"stats_cb": metrics.observe_stats})
        self._producer = Producer(producer_config(settings) | hooks)

    # -- lifecycle ---------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to finish: in-flight batches are completed or abandoned, never committed past."""
        self._stop.set()

    def healthy(self) -> bool:
        """Whether the loop can make progress (for ``/health``)."""
        return self._fatal is None and self._inference.is_alive()

    def run(self) -> int:
        """Consume until stopped; returns 0 on a clean stop, 1 after a fatal error.

        Raises ``AuthenticationFailed`` (after the shutdown) when the brokers refuse the credentials or TLS.
        """
        topic = self.settings.topics.raw_posts
        self._consumer.subscribe(
            [topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        self._inference.start()
        log.info("worker started", extra={"topic": topic, "group": self.settings.worker.group_id})
        try:
            while not self._stop.is_set() and self._fatal is None:
                self._step()
        finally:
            self._shutdown()
        if self._fatal is not None:
            log.error("worker stopped on a fatal error: %s", self._fatal)
            return 1
        return 0

    def _step(self) -> None:
        self.metrics.last_loop = time.monotonic()
        self._consume()
        # With the next batch already queued, inference has work until its result arrives: wait for that
        # result instead of polling the consumer, so the loop does not take CPU from inference.
        self._drain_results(_POLL_SECONDS if self._inbox.full() else 0.0)
        if self._inference_idle() and (batch := self._batcher.due(time.monotonic())) is not None:
            self._ready.append(batch)
        self._dispatch()
        self._producer.poll(0)
        self._store_offsets()
        self._backpressure()

    # -- the pipeline ------------------------------------------------------------------------------------

    def _consume(self) -> None:
        room = self.settings.worker.queue_max_posts - self._tracker.in_flight()
        # consume() waits for a full batch or its timeout, so it only takes what is already there;
        # poll() returns on the first record, so an idle worker does not sit on a new post.
        messages = self._consumer.consume(num_messages=max(1, min(_CONSUME_MAX, room)), timeout=0)
        if not messages and (wait := self._wait()) > 0:
            first = self._consumer.poll(wait)
            messages = [first] if first is not None else []
        now = time.monotonic()
        for message in messages:
            if (error := message.error()) is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    self._brokers.on_error(error)
                continue
            self._brokers.reachable()
            self._accept(message, now)

    def _wait(self) -> float:
        """How long ``consume`` may block: short while results may arrive, never past the batch deadline.

        Never while the next batch is queued: the loop then blocks on the results instead (``_step``).
        """
        if not self._outbox.empty() or self._ready or self._inbox.full():
            return 0.0
        wait = _POLL_SECONDS
        if self._batches_out > self._batches_back:
            wait = _BUSY_POLL_SECONDS
        if len(self._batcher) and self._inference_idle():
            wait = min(wait, max(0.0, self._batcher.deadline() - time.monotonic()))
        return wait

    def _inference_idle(self) -> bool:
        """Whether no batch is running or waiting: the only time a partial batch may be handed over."""
        return not self._ready and self._batches_out == self._batches_back

    def _accept(self, message: Message, now: float) -> None:
        # A record without an error always has its coordinates.
        tp = (cast(str, message.topic()), cast(int, message.partition()))
        offset = cast(int, message.offset())
        self._tracker.track(tp, offset)  # 1.
        self.metrics.consumed.inc()
        kind, timestamp = message.timestamp()
        origin = Origin(topic=tp[0], partition=tp[1], offset=offset, timestamp_ms=timestamp if kind else None)
        try:
            post = parse_post(message.value(), self.settings.worker.max_text_chars)  # 2.
            admit(post, datetime.now(UTC), self.settings.worker.max_future_s)
        except InvalidPost as error:
            self._produce_rejected(error, message.value(), message.key(), origin)
            return
        tokens = len(post.text) // 4 + 2  # a cheap estimate; the model's own batching is exact
        if (batch := self._batcher.add(Incoming(post, origin), tokens, now)) is not None:
            self._ready.append(batch)

    def _dispatch(self) -> None:
        while self._ready:
            try:
                self._inbox.put_nowait(self._ready[0])  # 3.
            except queue.Full:
                return
            self._ready.popleft()
            self._batches_out += 1

    def _drain_results(self, wait: float = 0.0) -> None:
        """Hand every finished batch's outputs to the producer; wait up to ``wait`` s for the first."""
        while True:
            try:
                result = self._outbox.get(timeout=wait) if wait > 0 else self._outbox.get_nowait()
            except queue.Empty:
                return
            wait = 0.0
            self._batches_back += 1
            self.metrics.batch_size.observe(result.size)
            self.metrics.inference_seconds.observe(result.seconds)
            self.metrics.dedupe_hits.inc(result.hits)
            self.metrics.dedupe_misses.inc(result.misses)
            topic = self.settings.topics.entities
            for item, event in result.events:  # 4.
                origin = item.origin
                self._produce(
                    topic, item.post.id.encode(), event.model_dump_json().encode(), origin, self._on_event
                )
            for item, reason in result.failures:
                error = InvalidPost("inference_failed", reason)
                self._produce_rejected(
                    error, item.post.model_dump_json().encode(), item.post.id.encode(), item.origin
                )

    def _produce_rejected(
        self, error: InvalidPost, value: bytes | None, key: bytes | None, origin: Origin
    ) -> None:
        record = reject(error, value, key, origin)
        self.metrics.rejected.labels(error.code).inc()
        log.info("rejected %s[%d]@%d: %s", origin.topic, origin.partition, origin.offset, error)
        self._produce(self.settings.topics.dlq, key, record.model_dump_json().encode(), origin, None)

    def _produce(self, topic: str, key: bytes | None, value: bytes, origin: Origin, on_ack: Any) -> None:
        callback = partial(self._delivered, origin, on_ack)
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=callback)
                return
            except BufferError:  # local queue full: serve callbacks, then retry
                self._producer.poll(0.1)

    def _delivered(self, origin: Origin, on_ack: Any, error: KafkaError | None, message: Message) -> None:
        if error is not None:  # 6. a failed delivery is fatal: nothing is stored past this record
            self._fatal = DeliveryError(f"delivery to {message.topic()} failed: {error}")
            return
        self._tracker.complete((origin.topic, origin.partition), origin.offset)  # 5.
        if on_ack is not None:
            on_ack(origin)

    def _on_event(self, origin: Origin) -> None:
        self.metrics.produced.inc()
        if origin.timestamp_ms is not None:
            self.metrics.end_to_end_seconds.observe(max(0.0, time.time() - origin.timestamp_ms / 1000))

    def _store_offsets(self) -> None:
        offsets = self._tracker.committable()
        if offsets and self._fatal is None:
            positions = [
                TopicPartition(t, p, o) for (t, p), o in offsets.items() if (t, p) in self._assignment
            ]
            if positions:
                try:
                    self._consumer.store_offsets(offsets=positions)  # 6.
                except KafkaException as exc:  # partition revoked meanwhile: its records will be re-read
                    log.warning("could not store offsets: %s", exc)
        self.metrics.observe_in_flight(self._tracker.in_flight())

    def _backpressure(self) -> None:
        limit = self.settings.worker.queue_max_posts
        in_flight = self._tracker.in_flight()
        if not self._paused and in_flight >= limit:
            self._set_paused(True)
        elif self._paused and in_flight <= limit // 2:
            self._set_paused(False)

    def _set_paused(self, paused: bool) -> None:
        partitions = [TopicPartition(t, p) for t, p in self._assignment]
        if partitions:
            (self._consumer.pause if paused else self._consumer.resume)(partitions)
        self._paused = paused
        self.metrics.paused.set(int(paused))

    # -- rebalances ----------------------------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._brokers.reachable()
        added = {(p.topic, p.partition) for p in partitions}
        self._assignment |= added
        if self._paused and partitions:
            consumer.pause(partitions)
        self.metrics.assigned.set(len(self._assignment))
        log.info("assigned %s", sorted(added))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Finish what is in flight for the revoked partitions (bounded), store and commit, then let go."""
        revoked = [(p.topic, p.partition) for p in partitions]
        if not self._closing:
            if (batch := self._batcher.flush()) is not None:
                self._ready.append(batch)
            self._drain(lambda: self._tracker.in_flight_of(revoked) == 0, _REVOKE_DRAIN_SECONDS)
        self._store_offsets()
        try:
            consumer.commit(asynchronous=False)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError._NO_OFFSET:
                log.warning("commit on revoke failed: %s", exc)
        self._tracker.forget(revoked)
        self._assignment -= set(revoked)
        self.metrics.assigned.set(len(self._assignment))
        log.info("revoked %s", sorted(revoked))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        lost = [(p.topic, p.partition) for p in partitions]
        self._tracker.forget(lost)
        self._assignment -= set(lost)
        self.metrics.assigned.set(len(self._assignment))
        log.warning("lost %s", sorted(lost))

    def _drain(self, done: Any, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while not done() and self._fatal is None and time.monotonic() < deadline:
            self._dispatch()
            self._drain_results()
            self._producer.poll(0.02)
        return bool(done())

    # -- shutdown ------------------------------------------------------------------------------------------

    def _shutdown(self) -> None:
        """Finish the batches already handed to inference, abandon the rest, commit only what is complete."""
        self._closing = True
        log.info("stopping: finishing %d batches handed to inference", self._batches_out - self._batches_back)
        self._ready.clear()
        self._batcher.flush()
        if self._fatal is None:
            self._drain(lambda: self._batches_back == self._batches_out, _SHUTDOWN_SECONDS)
            self._producer.flush(_SHUTDOWN_SECONDS)
            self._store_offsets()
        try:
            self._inbox.put(None, timeout=_SHUTDOWN_SECONDS)
        except queue.Full:
            log.warning("inference thread did not take the stop signal")
        self._close_consumer()
        log.info("worker stopped", extra={"in_flight_abandoned": self._tracker.in_flight()})

    def _close_consumer(self) -> None:
        """Commit the stored offsets and leave the group, waiting at most ``_CLOSE_SECONDS``.

        librdkafka's close has no timeout: with every broker unreachable it waits out the session timeout
        (45 s by default), past the grace period of most supervisors. After ``_CLOSE_SECONDS`` the worker
        stops without it; what it did not commit is read again by the next owner (at-least-once).
        """
        closed = threading.Event()

        def close() -> None:
            try:
                self._consumer.close()
            except KafkaException as exc:
                log.warning("consumer close: %s", exc)
            finally:
                closed.set()

        threading.Thread(target=close, name="consumer-close", daemon=True).start()
        if not closed.wait(_CLOSE_SECONDS):
            log.warning(
                "the consumer did not close within %.0f s (brokers unreachable?): stopping without it; "
                "offsets it did not commit will be read again",
                _CLOSE_SECONDS,
            )
