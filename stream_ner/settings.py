"""Typed settings, one place for all of them.

Sources, highest priority first: keyword arguments, environment variables (``STREAM_NER_`` prefix, nested
with ``__``: ``STREAM_NER_KAFKA__BOOTSTRAP_SERVERS``), a YAML or TOML file named by ``STREAM_NER_CONFIG``,
then the defaults below. Nothing is read at import time: call ``load_settings()``.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from stream_ner.errors import ConfigError


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


class KafkaSettings(BaseModel):
    """Connection to the Kafka cluster, shared by every client."""

    bootstrap_servers: str = Field(
        default="127.0.0.1:9092", description="Kafka bootstrap servers, comma-separated."
    )
    client_id: str = Field(default="stream-ner", description="Client id reported to the brokers.")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."
    )
    sasl_mechanism: str | None = Field(default=None, description="PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, ...")
    sasl_username: str | None = Field(default=None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(default=None, description="SASL password (never logged).")
    extra: dict[str, str | int | bool] = Field(
        default_factory=dict, description="Any other librdkafka property, passed through as is."
    )
    connect_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Seconds one-shot commands (produce, tail, topics) wait for the brokers before failing.",
    )

    def librdkafka(self) -> dict[str, Any]:
        """The librdkafka configuration common to consumers, producers and admin clients."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "client.id": self.client_id,
            "security.protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            conf["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username:
            conf["sasl.username"] = self.sasl_username
        if self.sasl_password:
            conf["sasl.password"] = self.sasl_password.get_secret_value()
        conf.update(self.extra)
        return conf


class TopicSettings(BaseModel):
    """Topic names; the specs under ``topics/`` describe partitions, retention and configs."""

    raw_posts: str = Field(default="raw-posts", description="Input topic of posts.")
    entities: str = Field(default="entities", description="Output topic of entity events.")
    brand_aggregates: str = Field(default="brand-aggregates", description="Output topic of brand aggregates.")
    dlq: str = Field(default="raw-posts.dlq", description="Dead-letter topic of rejected posts.")
    brand_alerts: str = Field(default="brand-alerts", description="Output topic of brand spike alerts.")
    spec_dir: Path | None = Field(
        default=None, description="Directory of topic specs; None: the shipped ones."
    )
    replication_factor: int | None = Field(
        default=None, ge=1, description="Overrides every spec's replication factor (1 on a single broker)."
    )


class ModelSettings(BaseModel):
    """Which model the workers run and how."""

    path: Path | None = Field(
        default=None, description="Model artifact directory; None: the shipped default."
    )
    precision: Literal["auto", "fp32", "int8", "fp16"] = Field(
        default="auto", description="Graph to run; auto: fp16 on CUDA, else int8, else fp32."
    )
    require_gpu: bool = Field(default=False, description="Fail at start when no CUDA provider is available.")
    intra_op_threads: int = Field(default=0, ge=0, description="onnxruntime intra-op threads; 0: all cores.")
    max_padding: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Largest share of padding in one session run; batches are cut by length to stay under "
        "(0: only windows of one length share a run, the fastest on CPUs).",
    )


class WorkerSettings(BaseModel):
    """The inference worker: batching, backpressure, limits, group membership."""

    group_id: str = Field(default="stream-ner-workers", description="Consumer group of the workers.")
    group_instance_id: str | None = Field(default=None, description="Static membership id (KIP-345).")
    max_batch_posts: int = Field(default=256, ge=1, description="A batch closes at this many posts.")
    max_batch_tokens: int = Field(default=8192, ge=1, description="Token budget of one batch (approximate).")
    max_wait_ms: int = Field(
        default=20,
        ge=0,
        description="A partial batch goes to inference once its oldest post waited this long and "
        "inference has room; while it is busy the batch keeps filling.",
    )
    queue_max_posts: int = Field(
        default=1024, ge=1, description="Posts held in memory before partitions pause."
    )
    max_text_chars: int = Field(default=20_000, ge=1, description="Longer posts go to the dead-letter topic.")
    max_future_s: int = Field(
        default=86_400,
        ge=0,
        description="A post whose created_at is further ahead of the worker's clock goes to the dead-letter "
        "topic (created_in_future).",
    )
    dedupe_cache_size: int = Field(
        default=10_000,
        ge=0,
        description="Texts whose annotations are kept, so that a post repeating one skips inference; 0: off.",
    )
    session_timeout_ms: int = Field(default=45_000, description="Group session timeout (failure detection).")
    max_poll_interval_ms: int = Field(default=300_000, description="librdkafka max.poll.interval.ms.")
    metrics_host: str = Field(
        default="127.0.0.1", description="Address of the metrics endpoint (0.0.0.0 in pods)."
    )
    metrics_port: int = Field(default=9400, ge=0, description="Prometheus /metrics and /health; 0: off.")


class RedisSettings(BaseModel):
    """Redis, where dashboards read brand aggregates; ``rediss://`` URLs speak TLS."""

    url: str = Field(
        default="redis://127.0.0.1:6379/0", description="Redis URL of the dashboard store (rediss://: TLS)."
    )
    key_prefix: str = Field(default="stream-ner", description="Prefix of every Redis key written.")
    username: str | None = Field(default=None, description="ACL user name; None: the URL's or 'default'.")
    password: SecretStr | None = Field(default=None, description="Password of the user (never logged).")
    ca_file: Path | None = Field(
        default=None, description="CA certificates (PEM) trusted for rediss://; None: the system's."
    )

    def connection_url(self) -> str:
        """``url`` with the user name, password and CA file in it: for clients only, never to print."""
        from urllib.parse import quote, urlencode, urlsplit, urlunsplit

        parts = urlsplit(self.url)
        netloc = parts.netloc.rpartition("@")[2]
        user = quote(self.username or parts.username or "", safe="")
        secret = self.password.get_secret_value() if self.password else parts.password
        if secret:
            netloc = f"{user}:{quote(secret, safe='')}@{netloc}"
        elif user:
            netloc = f"{user}@{netloc}"
        query = parts.query
        if self.ca_file is not None and parts.scheme == "rediss":
            query = "&".join(q for q in (query, urlencode({"ssl_ca_certs": str(self.ca_file)})) if q)
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


class BrandSettings(BaseModel):
    """Brand linking: which catalog, which entity labels, what to do with unknown names."""

    catalog: Path | None = Field(default=None, description="Brand catalog YAML; None: the shipped sample.")
    link_unknown: bool = Field(
        default=True, description="Aggregate unknown ORG/PRODUCT mentions as '~<surface form>'."
    )
    labels: list[str] = Field(default_factory=lambda: ["ORG", "PRODUCT"], description="Entity labels linked.")


class WindowSpec(BaseModel):
    """One window family: tumbling when ``step_s`` equals ``size_s``, hopping when smaller."""

    name: str = Field(pattern=r"^[0-9A-Za-z_-]{1,32}$", description="Short name used in keys, e.g. '1m'.")
    size_s: int = Field(ge=1)
    step_s: int = Field(ge=1)

    @model_validator(mode="after")
    def _step_divides_size(self) -> WindowSpec:
        if self.step_s > self.size_s or self.size_s % self.step_s:
            raise ValueError(f"window {self.name}: step_s must divide size_s")
        return self


def _default_windows() -> list[WindowSpec]:
    return [WindowSpec(name="1m", size_s=60, step_s=60), WindowSpec(name="1h", size_s=3600, step_s=300)]


class AggregateSettings(BaseModel):
    """The brand aggregation stage (``stream-ner aggregate``) and its Redis sink."""

    app_id: str = Field(
        default="stream-ner-aggregate", description="Consumer group and internal topic prefix."
    )
    windows: list[WindowSpec] = Field(
        default_factory=_default_windows,
        description="Window families (JSON list of name, size_s, step_s); step_s divides size_s.",
    )
    grace_s: int = Field(default=60, ge=0, description="How late (event time) a post may be and still count.")
    emit: Literal["update", "close"] = Field(
        default="update", description="'update': every change (coalesced per flush); 'close': final only."
    )
    flush_interval_ms: int = Field(default=500, ge=10, description="How often changed windows are emitted.")
    producer_linger_ms: int = Field(
        default=10,
        ge=0,
        description="How long the aggregator's producer waits to fill a request (the by-brand topic and the "
        "changelogs); 0 sends each write at once, in many small requests.",
    )
    batch_events: int = Field(default=1000, ge=1, description="Records taken in one batch by each stage.")
    batch_wait_ms: int = Field(
        default=50, ge=1, description="A partial batch is processed after waiting this long for more."
    )
    replay_horizon_s: int = Field(
        default=600,
        ge=0,
        description="Repeats of a post are skipped for grace_s plus this long (stream time) after it.",
    )
    partitions: int = Field(default=6, ge=1, description="Partitions of the by-brand topic and changelogs.")
    replication_factor: int | None = Field(
        default=None, ge=1, description="Internal topics; None: topics.replication_factor, else 3."
    )
    standby_replicas: int = Field(default=0, ge=0, description="Standby copies of the state per partition.")
    commit_interval_s: float = Field(default=2.0, gt=0, description="How often input offsets are committed.")
    session_timeout_s: float = Field(
        default=10.0,
        ge=6.0,
        le=300.0,
        description="A process silent this long leaves the group and its partitions move (heartbeats every "
        "third of it).",
    )
    stop_timeout_s: float = Field(
        default=25.0,
        gt=0,
        description="After SIGTERM/SIGINT, the process exits this long later even if faust has not stopped "
        "(its final commit waits for a broker); a restart replays from the last commit.",
    )
    top_n: int = Field(default=10, ge=1, description="Co-mentioned brands and entities kept per record.")
    samples: int = Field(default=5, ge=0, description="Sample post ids kept per window.")
    max_co_mentions: int = Field(default=1000, ge=1, description="Distinct co-mentions counted per pane.")
    redis_ttl_s: int = Field(default=172_800, ge=60, description="TTL of the Redis keys of a window.")
    redis_stream_maxlen: int = Field(
        default=10_000, ge=1, description="Approximate length of the updates stream."
    )
    metrics_host: str = Field(default="127.0.0.1", description="Address of the metrics endpoint.")
    metrics_port: int = Field(default=9401, ge=0, description="Prometheus /metrics; 0: off.")


class DashboardSettings(BaseModel):
    """The live brand dashboard (``stream-ner dashboard``) and its spike rule."""

    host: str = Field(default="127.0.0.1", description="Address the dashboard listens on.")
    port: int = Field(default=8088, ge=0, le=65535, description="HTTP port of the dashboard.")
    token: SecretStr | None = Field(
        default=None,
        description="Access token; when set, every route answers 401 without it "
        "(?token=, then a cookie, or Authorization: Bearer).",
    )
    leaderboard_rows: int = Field(default=50, ge=1, description="Brands listed on a leaderboard.")
    refresh_ms: int = Field(
        default=500, ge=50, description="Leaderboards are re-read from Redis at most this often."
    )
    feed_events: int = Field(default=100, ge=1, description="Newest entity events a browser gets on connect.")
    brand_posts: int = Field(default=20, ge=1, description="Latest posts kept per brand for its page.")
    lookback_s: int = Field(
        default=300, ge=0, description="At start, the live feed reads entities from this many seconds back."
    )
    spike_z: float = Field(
        default=3.0, gt=0, description="A spike: mentions above the trailing mean by more than this many SD."
    )
    spike_min_mentions: int = Field(
        default=5, ge=1, description="Fewer mentions in the window are never a spike."
    )
    spike_history: int = Field(default=10, ge=2, description="Previous windows in the trailing mean.")
    spike_min_history: int = Field(
        default=3, ge=2, description="Previous windows with data needed before a brand can spike."
    )
    alerts: bool = Field(default=True, description="Produce spike alerts to the brand_alerts topic.")


class Settings(BaseSettings):
    """All settings of one stream-ner process."""

    model_config = SettingsConfigDict(env_prefix="STREAM_NER_", env_nested_delimiter="__", extra="forbid")

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    brands: BrandSettings = Field(default_factory=BrandSettings)
    aggregate: AggregateSettings = Field(default_factory=AggregateSettings)
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)
    log_format: Literal["json", "text"] = Field(default="text", description="json: one object per line.")
    log_level: Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR"], BeforeValidator(_upper)] = Field(
        default="INFO",
        description="DEBUG, INFO, WARNING or ERROR; the libraries under the aggregator (faust, aiokafka) log "
        "their INFO lines only at DEBUG.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments, then environment, then the config file."""
        return init_settings, env_settings, _ConfigFileSource(settings_cls)


class _ConfigFileSource(PydanticBaseSettingsSource):
    """Values from the YAML or TOML file named by ``STREAM_NER_CONFIG``, if any."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        raise NotImplementedError  # __call__ below does the work

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get("STREAM_NER_CONFIG")
        return read_config_file(Path(path)) if path else {}


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse a YAML (``.yaml``/``.yml``) or TOML (``.toml``) settings file into a nested dict."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    try:
        data = tomllib.loads(raw.decode()) if path.suffix == ".toml" else yaml.safe_load(raw)
    except (tomllib.TOMLDecodeError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


def load_settings(**overrides: Any) -> Settings:
    """Build the settings from all sources; raises ``ConfigError`` listing every problem on one line."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(f"invalid settings: {describe_errors(exc)}") from exc


def describe_errors(exc: Any) -> str:
    """A pydantic ``ValidationError`` as one line: each setting by its environment variable, then why."""
    problems = []
    for error in exc.errors(include_url=False):
        path = [str(part) for part in error["loc"] if not isinstance(part, int)]
        name = "STREAM_NER_" + "__".join(path).upper() if path else "settings"
        given = (
            f" (got {error['input']!r})" if "input" in error and not isinstance(error["input"], dict) else ""
        )
        problems.append(f"{name}: {error['msg']}{given}")
    return "; ".join(problems)
