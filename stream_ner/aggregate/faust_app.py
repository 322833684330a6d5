"""The faust-streaming driver of ``stream-ner aggregate``: topics, tables, batches in, writes out.

Topology (``A`` is ``aggregate.app_id``, also the consumer group)::

    entities ──agent "rekey"──▶ A-by-brand ──agent "windows"──▶ outboxes (every flush_interval_ms)
       │   (batches; first event     (one record per          │   ├─▶ brand-aggregates (``topic_sink``)
       │    per post; by brand)       partition and batch)    │   └─▶ Redis (``redis_sink``)
       └─ table "posts": A-posts-changelog                    └─ table "state": A-state-changelog
          (post markers, one partition per entities one)          (panes, authors, finals, marks, clock)

The cores (``dedupe``, ``panes``) decide; this module only moves bytes. Both agents take batches
(``stream.take_events``) and write the state changes of a batch to the changelog themselves
(``Table.send_changelog`` with the partition of the records that caused them), so a batch mixing partitions
keeps every write on its own partition; the in-memory state lives in the cores, and faust's table store
serves only to read the changelog back after a (re)assignment (``restore_*``; then cleared, unless
standby replicas keep their partitions in it).

Known faust-streaming pitfalls, handled here: version >= 0.15.2 (rebalance fix) is required by the
``aggregate`` extra; records fetched and dropped while tables are restored are read again, also on a
partition with nothing committed, and no input record is processed before the seek that follows a
rebalance has placed its partition (``faust_seek``); every agent runs with ``concurrency=1`` (higher
concurrency can commit offsets past messages still in flight, faust-streaming issue 606); faust flushes
the producer before it commits offsets, which the exactness arguments rely on, but its flush may return
with changelog writes still queued, so the producer is replaced by one whose flush waits for all of them
and fails the commit on a write not delivered (``faust_producer``); Redis I/O is asyncio
(``redis.asyncio``), never blocking the event loop; internal topics get the configured replication factor,
1 on a single broker. The Kafka security settings (SSL, SASL) are the workers' own, mapped to faust
credentials.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from stream_ner.aggregate.metrics import AggregateMetrics
from stream_ner.aggregate.outbox import Outbox
from stream_ner.aggregate.panes import Write
from stream_ner.aggregate.redis_sink import RedisSink
from stream_ner.aggregate.stages import Stages
from stream_ner.aggregate.topic_sink import TopicSink
from stream_ner.errors import ConfigError, KafkaUnavailable
from stream_ner.kafka import deduplicate_loggers
from stream_ner.logs import configure_logging
from stream_ner.settings import KafkaSettings, Settings
from stream_ner.topics import TopicSpec

log = logging.getLogger(__name__)

LIBRARIES = ("faust", "mode", "aiokafka")
"""Loggers held at WARNING unless ``log_level`` is DEBUG (``configure_logging``)."""


def broker_credentials(kafka: KafkaSettings) -> Any:
    """The faust credentials matching the workers' librdkafka security settings (``None``: plaintext).

    ``security_protocol``, ``sasl_mechanism``, ``sasl_username`` and ``sasl_password`` map one to one; the
    TLS trust and client certificate come from the librdkafka properties in ``kafka.extra``
    (``ssl.ca.location``, ``ssl.certificate.location``, ``ssl.key.location``, ``ssl.key.password``).
    """
    import ssl

    import faust

    protocol = kafka.security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = None
    if protocol in ("SSL", "SASL_SSL"):
        extra = {key: str(value) for key, value in kafka.extra.items()}
        try:
            context = ssl.create_default_context(cafile=extra.get("ssl.ca.location"))
            if "ssl.certificate.location" in extra:
                context.load_cert_chain(
                    extra["ssl.certificate.location"],
                    extra.get("ssl.key.location"),
                    extra.get("ssl.key.password"),
                )
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load the TLS files named in kafka.extra: {exc}") from exc
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    if not kafka.sasl_mechanism:
        raise ConfigError(f"kafka.security_protocol {protocol} needs kafka.sasl_mechanism")
    password = kafka.sasl_password.get_secret_value() if kafka.sasl_password else None
    try:
        return faust.SASLCredentials(
            username=kafka.sasl_username,
            password=password,
            ssl_context=context,
            mechanism=kafka.sasl_mechanism,
        )
    except ValueError as exc:  # a mechanism aiokafka does not offer
        raise ConfigError(
            f"kafka.sasl_mechanism {kafka.sasl_mechanism!r} is not supported here: {exc}"
        ) from exc


def replication_factor(settings: Settings) -> int:
    """Replication factor of the internal topics (by-brand topic, changelogs)."""
    return settings.aggregate.replication_factor or settings.topics.replication_factor or 3


def source_partitions(settings: Settings) -> int:
    """Partitions of the ``entities`` topic (the stream time waits for all of them; see ``state``)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    topic = settings.topics.entities
    try:
        metadata = AdminClient(settings.kafka.librdkafka()).list_topics(topic, timeout=15)
    except KafkaException as exc:
        raise KafkaUnavailable(f"cannot read metadata of {topic}: {exc}") from exc
    found = metadata.topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        raise ConfigError(f"topic {topic} does not exist: run `stream-ner topics apply` first")
    return len(found.partitions)


CHANGELOG_CONFIG = {
    "cleanup.policy": "compact",
    "segment.ms": "60000",
    "min.cleanable.dirty.ratio": "0.1",
    "delete.retention.ms": "600000",
}
"""Topic configs of the changelogs. Every batch rewrites the values it changed, and Kafka compacts only
closed segments: with the broker's default segment (7 days or 1 GiB) nothing is ever compacted, and a
restart reads back every write since the app began, so restores grow with uptime. A segment rolled each
minute and cleaned once a tenth of it is stale bound the read-back to about the live keys plus a few
minutes of writes; tombstones stay 10 minutes, far longer than any restore takes to read past them."""


def internal_topics(settings: Settings, sources: int) -> list[TopicSpec]:
    """The by-brand topic and both changelogs, as topic specs (``stream_ner.topics``)."""
    conf = settings.aggregate
    replication = replication_factor(settings)
    return [
        TopicSpec(
            "aggregate", f"{conf.app_id}-by-brand", conf.partitions, replication, {"cleanup.policy": "delete"}
        ),
        TopicSpec(
            "aggregate", f"{conf.app_id}-state-changelog", conf.partitions, replication, CHANGELOG_CONFIG
        ),
        TopicSpec("aggregate", f"{conf.app_id}-posts-changelog", sources, replication, CHANGELOG_CONFIG),
    ]


def ensure_internal_topics(settings: Settings, timeout: float = 30.0) -> list[str]:
    """Create the internal topics before faust starts, set their configs, and wait for their leaders.

    faust creates internal topics itself, but subscribes before a new topic reaches the cluster metadata
    it reads and may then ignore it for good; creating them first removes that race. Configs that differ
    (an app created by an earlier version) are set; a by-brand partition count other than
    ``aggregate.partitions`` is a ``ConfigError``, since brands would hash to other partitions than their
    state's. Returns the topic names.
    """
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    from stream_ner.topics import apply, check

    specs = internal_topics(settings, source_partitions(settings))
    admin = AdminClient(settings.kafka.librdkafka())
    try:
        for drift in check(admin, specs[:2], timeout):
            if drift.what == "partitions":
                raise ConfigError(
                    f"{drift.topic} has {drift.actual} partitions but aggregate.partitions is "
                    f"{drift.expected}: keep the setting, or start a new app with another aggregate.app_id"
                )
        for line in apply(admin, specs, timeout):
            log.info("internal topics: %s", line)
    except KafkaException as exc:
        raise KafkaUnavailable(f"cannot set up the aggregator's internal topics: {exc}") from exc
    return [spec.name for spec in specs]


def build_app(settings: Settings, metrics: AggregateMetrics) -> Any:
    """The faust app: topics, tables, agents and outbox tasks; nothing runs until a worker starts it."""
    import faust

    conf = settings.aggregate
    brokers = [f"kafka://{server.strip()}" for server in settings.kafka.bootstrap_servers.split(",")]
    app = faust.App(
        conf.app_id,
        broker=brokers,
        broker_credentials=broker_credentials(settings.kafka),
        store="memory://",
        autodiscover=False,
        web_enabled=False,
        datadir=str(Path(tempfile.gettempdir()) / f"{conf.app_id}-data"),
        topic_partitions=conf.partitions,
        topic_replication_factor=replication_factor(settings),
        table_standby_replicas=conf.standby_replicas,
        broker_commit_interval=conf.commit_interval_s,
        broker_session_timeout=conf.session_timeout_s,
        broker_heartbeat_interval=conf.session_timeout_s / 3,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_linger=conf.producer_linger_ms / 1000,
        processing_guarantee="at_least_once",
    )
    from stream_ner.aggregate import faust_producer, faust_seek

    faust_seek.install(app)  # no input partition is left past records faust dropped (its module doc)
    faust_producer.install(app)  # no commit before the changelog writes of what it covers (its module doc)
    sources = source_partitions(settings)
    entities = app.topic(settings.topics.entities, key_serializer="raw", value_serializer="raw")
    by_brand = app.topic(
        f"{conf.app_id}-by-brand",
        internal=True,
        partitions=conf.partitions,
        key_serializer="raw",
        value_serializer="raw",
    )
    schema: Any = faust.Schema(key_serializer="json", value_serializer="json")
    posts = app.Table("posts", partitions=sources, schema=schema)
    state = app.Table("state", partitions=conf.partitions, schema=schema)

    topic = TopicSink(settings.kafka, settings.topics.brand_aggregates)
    redis = RedisSink(
        settings.redis.url, settings.redis.key_prefix, conf.redis_ttl_s, conf.redis_stream_maxlen
    )
    interval = conf.flush_interval_ms / 1000
    final_only = conf.emit == "close"

    def written(sink: str, n: int) -> None:
        metrics.written.labels(sink).inc(n)

    def failed(sink: str, exc: Exception) -> None:
        metrics.sink_errors.labels(sink).inc()

    outboxes = [
        Outbox(name, write, interval_s=interval, final_only=final_only, on_written=written, on_error=failed)
        for name, write in (("topic", topic.write), ("redis", redis.write))
    ]
    stages = Stages(conf, sources, outboxes, metrics)
    within = conf.batch_wait_ms / 1000

    @app.agent(entities, concurrency=1)
    async def rekey(stream: Any) -> None:
        async for events in stream.take_events(conf.batch_events, within=within):
            rekeyed = stages.rekey(
                (
                    e.message.partition,
                    e.message.offset,
                    int(e.message.timestamp * 1000) if e.message.timestamp else None,
                    e.value,
                )
                for e in events
            )
            _write_changelog(posts, rekeyed.changelog)
            for partition, value in rekeyed.records:
                await by_brand.send(value=value, partition=partition)

    @app.agent(by_brand, concurrency=1)
    async def windows(stream: Any) -> None:
        async for events in stream.take_events(conf.batch_events, within=within):
            records = ((e.message.partition, e.message.offset, e.value) for e in events)
            _write_changelog(state, stages.apply(records))

    # Without standbys, faust reads a newly assigned partition's changelog from the start, so the copy in
    # its store is needed only until the cores are rebuilt; standbys keep their partitions there.
    keep_store = conf.standby_replicas > 0

    @posts.on_recover
    async def posts_recovered() -> None:
        stages.restore_sources(_assigned(app, settings.topics.entities), posts.data.items())
        if not keep_store:
            posts.data.clear()

    @state.on_recover
    async def state_recovered() -> None:
        stages.restore_panes(_assigned(app, by_brand.get_topic_name()), state.data.items())
        if not keep_store:
            state.data.clear()

    for outbox in outboxes:
        _start_outbox(app, outbox, stages, state)

    @app.timer(interval=1.0)
    async def gauges() -> None:
        for outbox in outboxes:
            metrics.pending.labels(outbox.name).set(len(outbox.pending) + len(outbox.inflight))
        metrics.post_markers.set(sum(len(s.markers) for s in stages.first_events.values()))
        metrics.panes.set(sum(len(s.panes) for s in stages.panes.values()))

    return app


def _assigned(app: Any, topic: str) -> set[int]:
    return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topic}


def _write_changelog(table: Any, writes: dict[int, list[Write]]) -> None:
    """Send state changes to the table's changelog, each on the partition of the input that caused it."""
    for partition, changes in writes.items():
        for key, value in changes:
            if value is None:
                table.send_changelog(partition, key, None, value_serializer="raw")
            else:
                table.send_changelog(partition, key, value)


def _start_outbox(app: Any, outbox: Outbox, stages: Stages, state: Any) -> None:
    def release() -> None:  # rule 5 of ``panes``: closed windows every sink wrote are deleted
        _write_changelog(state, stages.release())

    async def run() -> None:
        await outbox.run(stages.record, after=release)

    run.__name__ = f"outbox_{outbox.name}"
    app.task(run)


def run_worker(settings: Settings) -> int:
    """Run the aggregation stage until SIGINT/SIGTERM; returns the exit code."""
    import aiokafka  # noqa: F401  (faust's transport; its module loggers exist once it is imported)
    from prometheus_client import start_http_server

    from stream_ner.aggregate.faust_worker import StopBoundWorker

    configure_logging(settings.log_level, settings.log_format, "aggregate", libraries=LIBRARIES)
    metrics = AggregateMetrics.create()
    conf = settings.aggregate
    if conf.metrics_port:
        try:
            start_http_server(conf.metrics_port, addr=conf.metrics_host, registry=metrics.registry)
        except OSError as exc:  # taken port, unknown address: a setting to change, not a crash
            raise ConfigError(
                f"cannot serve metrics on {conf.metrics_host}:{conf.metrics_port} ({exc.strerror or exc}): "
                "choose another port with STREAM_NER_AGGREGATE__METRICS_PORT (0 turns the endpoint off)"
            ) from exc
    ensure_internal_topics(settings)
    app = build_app(settings, metrics)
    worker = StopBoundWorker(app, stop_timeout_s=conf.stop_timeout_s)
    # the first line of each kind, then a count per 5 minutes: aiokafka's retries in a broker outage, faust's
    # "producer buffer full" whenever its send buffer passes its mark (hundreds a minute at full speed)
    deduplicate_loggers("aiokafka")
    deduplicate_loggers("faust")
    worker.execute_from_commandline()
    return 0
