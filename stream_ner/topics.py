"""Topics as code: load the declarative specs under ``topics/``, apply them, report drift.

A spec is a YAML file (see ``topics/raw-posts.yaml``) naming the ``TopicSettings`` field it describes,
its partitions, replication factor and topic configs. ``apply`` is idempotent: it creates missing topics,
adds partitions where the spec has more, and sets configs that differ; it never deletes or shrinks.
``check`` only reports the differences.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
)

from stream_ner.errors import ConfigError, KafkaUnavailable
from stream_ner.settings import Settings

_REQUIRED = ("setting", "name", "partitions", "replication_factor", "config")


@dataclass(frozen=True)
class TopicSpec:
    """One topic as it should be on the cluster."""

    setting: str
    name: str
    partitions: int
    replication_factor: int
    config: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Drift:
    """One difference between a spec and the cluster; ``fixable`` when ``apply`` can mend it."""

    topic: str
    what: str
    expected: str
    actual: str
    fixable: bool = True

    def __str__(self) -> str:
        return f"{self.topic}: {self.what} is {self.actual}, spec says {self.expected}"


def spec_dir(settings: Settings) -> Path:
    """Directory of topic specs: the configured one, the repository's ``topics/`` or the packaged copy."""
    if settings.topics.spec_dir is not None:
        return settings.topics.spec_dir
    repo = Path(__file__).resolve().parent.parent / "topics"
    if repo.is_dir():
        return repo
    return Path(str(resources.files("stream_ner") / "_topics"))


def load_specs(settings: Settings) -> list[TopicSpec]:
    """Read every spec, with names and replication factor resolved against the settings."""
    directory = spec_dir(settings)
    specs = []
    for path in sorted(directory.glob("*.yaml")):
        raw = yaml.safe_load(path.read_text())
        missing = [key for key in _REQUIRED if key not in raw]
        if missing:
            raise ConfigError(f"topic spec {path.name} lacks {', '.join(missing)}")
        name = getattr(settings.topics, raw["setting"], None)
        if not isinstance(name, str):
            raise ConfigError(f"topic spec {path.name}: unknown setting {raw['setting']!r}")
        replication = settings.topics.replication_factor or int(raw["replication_factor"])
        config = {str(k): str(v) for k, v in raw["config"].items()}
        if "min.insync.replicas" in config:
            config["min.insync.replicas"] = str(min(int(config["min.insync.replicas"]), replication))
        specs.append(TopicSpec(raw["setting"], name, int(raw["partitions"]), replication, config))
    if not specs:
        raise ConfigError(f"no topic specs in {directory}")
    return specs


def check(admin: AdminClient, specs: list[TopicSpec], timeout: float = 15.0) -> list[Drift]:
    """Compare the cluster with the specs; an empty list means no drift."""
    metadata = _metadata(admin, timeout)
    drifts: list[Drift] = []
    present = [spec for spec in specs if spec.name in metadata.topics]
    for spec in specs:
        if spec.name not in metadata.topics:
            drifts.append(Drift(spec.name, "existence", "present", "missing"))
            continue
        topic = metadata.topics[spec.name]
        partitions = len(topic.partitions)
        if partitions != spec.partitions:
            drifts.append(
                Drift(
                    spec.name,
                    "partitions",
                    str(spec.partitions),
                    str(partitions),
                    partitions < spec.partitions,
                )
            )
        replicas = min(len(p.replicas) for p in topic.partitions.values())
        if replicas != spec.replication_factor:
            drifts.append(
                Drift(spec.name, "replication factor", str(spec.replication_factor), str(replicas), False)
            )
    for spec, actual in zip(present, _configs(admin, present, timeout), strict=True):
        for key, value in spec.config.items():
            if actual.get(key) != value:
                drifts.append(Drift(spec.name, f"config {key}", value, str(actual.get(key))))
    return drifts


def apply(admin: AdminClient, specs: list[TopicSpec], timeout: float = 30.0) -> list[str]:
    """Make the cluster match the specs where it safely can; returns what was done, one line each."""
    done: list[str] = []
    drifts = check(admin, specs, timeout)
    by_name = {spec.name: spec for spec in specs}
    missing = [by_name[d.topic] for d in drifts if d.what == "existence"]
    if missing:
        new = [
            NewTopic(
                s.name, num_partitions=s.partitions, replication_factor=s.replication_factor, config=s.config
            )
            for s in missing
        ]
        _wait(admin.create_topics(new, operation_timeout=timeout), timeout)
        done += [f"created {s.name} ({s.partitions} partitions, rf {s.replication_factor})" for s in missing]
    grow = [d for d in drifts if d.what == "partitions" and d.fixable]
    if grow:
        _wait(admin.create_partitions([NewPartitions(d.topic, int(d.expected)) for d in grow]), timeout)
        done += [f"{d.topic}: partitions {d.actual} -> {d.expected}" for d in grow]
    configs = [d for d in drifts if d.what.startswith("config ")]
    if configs:
        resources_ = []
        for name in sorted({d.topic for d in configs}):
            entries = [
                ConfigEntry(
                    d.what.removeprefix("config "), d.expected, incremental_operation=AlterConfigOpType.SET
                )
                for d in configs
                if d.topic == name
            ]
            resources_.append(ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=entries))
        _wait(admin.incremental_alter_configs(resources_), timeout)
        done += [f"{d.topic}: {d.what} {d.actual} -> {d.expected}" for d in configs]
    done += [f"cannot fix: {d}" for d in drifts if not d.fixable]
    wait_for_leaders(admin, [s.name for s in specs], timeout)
    return done


def wait_for_leaders(
    admin: AdminClient, topics: Iterable[str] | Mapping[str, int], timeout: float = 30.0
) -> None:
    """Block until every topic exists and each of its partitions has a leader (creation is asynchronous).

    Given a mapping of topic to partition count, also until each topic has that many partitions (added
    partitions appear in the metadata asynchronously too). ``KafkaUnavailable`` after ``timeout`` seconds.
    """
    import time

    expected = dict(topics) if isinstance(topics, Mapping) else dict.fromkeys(topics, 0)
    deadline = time.monotonic() + timeout
    while True:
        metadata = _metadata(admin, timeout).topics
        if all(_led(metadata.get(name), partitions) for name, partitions in expected.items()):
            return
        if time.monotonic() > deadline:
            raise KafkaUnavailable(f"topics {sorted(expected)} have no leaders after {timeout}s")
        time.sleep(0.1)


def _led(topic: Any, partitions: int) -> bool:
    """Whether ``topic`` (metadata, or None) exists with ``partitions`` partitions (0: any), each led."""
    return (
        topic is not None
        and topic.error is None
        and bool(topic.partitions)
        and (partitions == 0 or len(topic.partitions) == partitions)
        and all(p.leader >= 0 for p in topic.partitions.values())
    )


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema of every message value this package defines, by file name under ``topics/schemas``."""
    from stream_ner.messages import BrandAggregate, BrandAlert, EntityEvent, Post, Rejected

    return {
        "brand-aggregate.schema.json": _schema(BrandAggregate, "serialization"),
        "brand-alert.schema.json": _schema(BrandAlert, "serialization"),
        "post.schema.json": _schema(Post, "mode_validation"),
        "entity-event.schema.json": _schema(EntityEvent, "serialization"),
        "rejected.schema.json": _schema(Rejected, "serialization"),
    }


def _schema(model: Any, mode: str) -> dict[str, Any]:
    schema: dict[str, Any] = model.model_json_schema(mode=mode.removeprefix("mode_"))
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def render_schema(schema: dict[str, Any]) -> str:
    """Stable text form of a schema file."""
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def _metadata(admin: AdminClient, timeout: float) -> Any:
    try:
        return admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise KafkaUnavailable(f"cannot read cluster metadata: {exc}") from exc


def _configs(admin: AdminClient, specs: list[TopicSpec], timeout: float) -> list[dict[str, str]]:
    if not specs:
        return []
    futures = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, s.name) for s in specs])
    by_name = {resource.name: future for resource, future in futures.items()}
    return [
        {key: entry.value for key, entry in by_name[s.name].result(timeout=timeout).items()} for s in specs
    ]


def _wait(futures: dict[Any, Any], timeout: float) -> None:
    for key, future in futures.items():
        try:
            future.result(timeout=timeout)
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            if error.code() == KafkaError.INVALID_REPLICATION_FACTOR:
                raise ConfigError(
                    f"{key}: {error.str()} Set STREAM_NER_TOPICS__REPLICATION_FACTOR to at most the number "
                    "of brokers (1 on a single broker)."
                ) from exc
            raise KafkaUnavailable(f"{key}: {exc}") from exc
