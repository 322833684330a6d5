"""Topics as code on a real broker: apply creates and mends, check reports drift."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewPartitions

from stream_ner import topics
from stream_ner.errors import ConfigError
from stream_ner.settings import Settings, TopicSettings


def _eventually(check, timeout: float = 15.0):
    """Cluster changes propagate asynchronously: retry ``check`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while not (result := check()) and time.monotonic() < deadline:
        time.sleep(0.2)
    return result


def _settings() -> Settings:
    tag = uuid.uuid4().hex[:8]
    return Settings(
        topics=TopicSettings(
            raw_posts=f"t-{tag}.raw",
            entities=f"t-{tag}.entities",
            brand_aggregates=f"t-{tag}.aggregates",
            dlq=f"t-{tag}.dlq",
            brand_alerts=f"t-{tag}.alerts",
            replication_factor=1,
        )
    )


def test_apply_is_idempotent_and_check_finds_then_forgets_drift(kafka_bootstrap):
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    specs = topics.load_specs(_settings())
    assert {d.what for d in topics.check(admin, specs)} == {"existence"}

    created = topics.apply(admin, specs)
    assert len(created) == 5 and all(line.startswith("created") for line in created)
    assert topics.check(admin, specs) == []
    assert topics.apply(admin, specs) == []

    raw = next(s for s in specs if s.setting == "raw_posts")
    change = ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)
    for future in admin.incremental_alter_configs(
        [ConfigResource(ConfigResource.Type.TOPIC, raw.name, incremental_configs=[change])]
    ).values():
        future.result(15)
    drifts = _eventually(lambda: topics.check(admin, specs))
    assert [(d.topic, d.what, d.actual) for d in drifts] == [(raw.name, "config retention.ms", "1000")]

    assert topics.apply(admin, specs) == [
        f"{raw.name}: config retention.ms 1000 -> {raw.config['retention.ms']}"
    ]
    assert topics.check(admin, specs) == []


def test_more_partitions_than_the_spec_is_reported_and_not_fixable(kafka_bootstrap):
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    specs = topics.load_specs(_settings())
    topics.apply(admin, specs)
    dlq = next(s for s in specs if s.setting == "dlq")
    for future in admin.create_partitions([NewPartitions(dlq.name, dlq.partitions + 2)]).values():
        future.result(15)
    [drift] = _eventually(lambda: topics.check(admin, specs))
    assert (drift.what, drift.fixable) == ("partitions", False)
    assert topics.apply(admin, specs) == [f"cannot fix: {drift}"]


def test_a_replication_factor_above_the_broker_count_says_which_setting_to_change(kafka_bootstrap):
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    settings = _settings()
    settings.topics.replication_factor = 3  # the specs' own factor; this cluster has one broker
    specs = topics.load_specs(settings)
    with pytest.raises(ConfigError, match="STREAM_NER_TOPICS__REPLICATION_FACTOR"):
        topics.apply(admin, specs)
    assert {d.what for d in topics.check(admin, specs)} == {"existence"}  # nothing half-created


def test_the_aggregators_internal_topics_get_compacting_changelogs_also_on_an_older_app(kafka_bootstrap):
    from confluent_kafka.admin import NewTopic

    from stream_ner.aggregate.faust_app import CHANGELOG_CONFIG, ensure_internal_topics, internal_topics
    from stream_ner.settings import AggregateSettings, KafkaSettings

    base = _settings()
    settings = base.model_copy(
        update={
            "kafka": KafkaSettings(bootstrap_servers=kafka_bootstrap),
            "aggregate": AggregateSettings(
                app_id=f"{base.topics.entities}-agg", partitions=3, replication_factor=1
            ),
        }
    )
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    for future in admin.create_topics([NewTopic(settings.topics.entities, 2, 1)]).values():
        future.result(15)
    # an app created by an earlier version: its state changelog has the broker's default segments
    specs = internal_topics(settings, 2)
    state = specs[1]
    old = NewTopic(state.name, 3, 1, config={"cleanup.policy": "compact"})
    for future in admin.create_topics([old]).values():
        future.result(15)

    names = ensure_internal_topics(settings)
    assert names == [s.name for s in specs]
    assert [s.partitions for s in specs] == [3, 3, 2], "one posts-changelog partition per entities partition"
    assert _eventually(lambda: topics.check(admin, specs) == []), topics.check(admin, specs)
    assert state.config == CHANGELOG_CONFIG

    more = settings.model_copy(update={"aggregate": settings.aggregate.model_copy(update={"partitions": 6})})
    with pytest.raises(ConfigError, match="aggregate.partitions is 6"):
        ensure_internal_topics(more)
