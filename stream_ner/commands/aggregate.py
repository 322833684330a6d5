"""``stream-ner aggregate``: the faust-streaming brand aggregation stage."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``aggregate`` command."""
    parser = subparsers.add_parser(
        "aggregate",
        help="aggregate entity events per brand and window into brand-aggregates and Redis",
        description="Consume entities, count per brand and window (event time), write brand-aggregates "
        "and Redis. Settings: the 'aggregate', 'brands' and 'redis' sections.",
    )
    parser.add_argument("--emit", choices=["update", "close"], help="override aggregate.emit")
    parser.add_argument("--grace", type=int, metavar="SECONDS", help="override aggregate.grace_s")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from stream_ner.extras import require

    require("aggregate", "`stream-ner aggregate`")
    from stream_ner.aggregate.faust_app import run_worker
    from stream_ner.settings import load_settings

    settings = load_settings()
    overrides = {k: v for k, v in {"emit": args.emit, "grace_s": args.grace}.items() if v is not None}
    if overrides:
        settings = settings.model_copy(update={"aggregate": settings.aggregate.model_copy(update=overrides)})
    _refuse_early(settings)
    # The aggregator's Redis client reads ``redis.url``: hand it the URL with the credentials in it.
    redis = settings.redis.model_copy(update={"url": settings.redis.connection_url(), "ca_file": None})
    return run_worker(settings.model_copy(update={"redis": redis}))


def _refuse_early(settings) -> None:  # type: ignore[no-untyped-def]
    """Stop with one line when Kafka or Redis refuse the credentials or TLS; unreachable ones are retried."""
    from stream_ner import redis_conn
    from stream_ner.errors import KafkaUnavailable, RedisUnavailable
    from stream_ner.kafka import ensure_reachable

    try:
        ensure_reachable(settings.kafka, timeout_s=min(3.0, settings.kafka.connect_timeout_s))
    except KafkaUnavailable:
        pass
    try:
        redis_conn.check(settings.redis)
    except RedisUnavailable:
        pass
