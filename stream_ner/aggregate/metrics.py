"""Prometheus metrics of the aggregation stage (served on ``aggregate.metrics_port``)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge


@dataclass(frozen=True)
class AggregateMetrics:
    """Every metric the stage updates, in its own registry."""

    registry: CollectorRegistry
    events: Counter
    invalid: Counter
    duplicate_events: Counter
    mentions: Counter
    late: Counter
    written: Counter
    sink_errors: Counter
    pending: Gauge
    stream_time: Gauge
    post_markers: Gauge
    panes: Gauge
    assigned: Gauge
    skipped: Counter
    gaps: Counter

    @classmethod
    def create(cls) -> AggregateMetrics:
        """A fresh registry with all metrics registered."""
        r = CollectorRegistry()
        p = "stream_ner_aggregate_"
        return cls(
            registry=r,
            events=Counter(f"{p}events", "Entity events read from the entities topic.", registry=r),
            invalid=Counter(f"{p}invalid_events", "Entity events that could not be parsed.", registry=r),
            duplicate_events=Counter(
                f"{p}duplicate_events",
                "Entity events skipped because an earlier event of the same post id was counted.",
                registry=r,
            ),
            mentions=Counter(
                f"{p}mentions",
                "Brand mentions, by result: counted, duplicate (an earlier event of the post was counted), "
                "replayed (already applied, read again after a restart), late (no open window left).",
                ["result"],
                registry=r,
            ),
            late=Counter(
                f"{p}late_windows",
                "Windows a post was too late for (stream time past end + grace): not counted there.",
                ["window"],
                registry=r,
            ),
            written=Counter(
                f"{p}records_written", "Brand aggregates written, by sink.", ["sink"], registry=r
            ),
            sink_errors=Counter(f"{p}sink_errors", "Failed writes (retried), by sink.", ["sink"], registry=r),
            pending=Gauge(
                f"{p}pending_keys", "Window keys waiting to be written, by sink.", ["sink"], registry=r
            ),
            stream_time=Gauge(
                f"{p}stream_time_seconds",
                "Event-time clock, by by-brand partition.",
                ["partition"],
                registry=r,
            ),
            post_markers=Gauge(
                f"{p}post_markers",
                "Posts remembered to skip their repeats (bounded by the horizon).",
                registry=r,
            ),
            panes=Gauge(f"{p}panes", "Panes held in memory.", registry=r),
            assigned=Gauge(
                f"{p}assigned_partitions",
                "Partitions this process holds, by stage: rekey (entities), windows (by-brand).",
                ["stage"],
                registry=r,
            ),
            skipped=Counter(
                f"{p}skipped_records",
                "Input records of a partition this process did not hold when they arrived, by stage; "
                "left to the partition's holder, never counted here.",
                ["stage"],
                registry=r,
            ),
            gaps=Counter(
                f"{p}offset_gaps",
                "Input records (entities or by-brand) read after a gap in their partition's offsets "
                "(records missed or out of order: never expected, alert on any).",
                registry=r,
            ),
        )
