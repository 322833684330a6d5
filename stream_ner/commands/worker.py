"""``stream-ner worker``: one inference worker of the consumer group."""

from __future__ import annotations

import argparse
import logging
import signal
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``worker`` command."""
    parser = subparsers.add_parser("worker", help="run one inference worker (raw-posts -> entities)")
    parser.add_argument(
        "--model", type=Path, default=None, help="model artifact directory (default: shipped)"
    )
    parser.add_argument("--metrics-port", type=int, default=None, help="Prometheus port; 0: off")
    parser.add_argument("--name", default=None, help="tag for log lines")
    parser.add_argument("--no-brands", action="store_true", help="skip brand linking")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Load settings and model, serve metrics, run the loop until SIGTERM/SIGINT."""
    from stream_ner.logs import configure_logging
    from stream_ner.settings import load_settings

    overrides: dict = {}
    settings = load_settings()
    if args.model is not None:
        overrides["model"] = settings.model.model_copy(update={"path": args.model})
    if args.metrics_port is not None:
        overrides["worker"] = settings.worker.model_copy(update={"metrics_port": args.metrics_port})
    settings = settings.model_copy(update=overrides)
    configure_logging(settings.log_level, settings.log_format, args.name)
    return serve(settings, link_brands=not args.no_brands)


def serve(settings, link_brands: bool = True) -> int:  # type: ignore[no-untyped-def]
    """Run one worker with the given settings; returns the exit code.

    The metrics port is bound first, so a taken port ends the command before the model loads.
    """
    from stream_ner.worker.metrics import MetricsServer, WorkerMetrics

    metrics = WorkerMetrics()
    started: list[Any] = []  # the Worker, once it exists; /health answers 503 until then
    server = None
    if settings.worker.metrics_port:
        server = MetricsServer(
            metrics,
            settings.worker.metrics_host,
            settings.worker.metrics_port,
            lambda: bool(started) and started[0].healthy(),
        )
        server.start()
        log.info("metrics on http://%s:%d/metrics", settings.worker.metrics_host, server.port)
    try:
        _refuse_early(settings)
        from stream_ner.model.runtime import NerModel
        from stream_ner.worker.runner import Worker

        model = NerModel.from_settings(settings.model)
        linker = None
        if link_brands:
            from stream_ner.brands import BrandLinker

            linker = BrandLinker.from_settings(settings.brands)
        worker = Worker(settings, model, linker, metrics)
        started.append(worker)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: worker.stop())
        return worker.run()
    finally:
        if server is not None:
            server.stop()


def _refuse_early(settings) -> None:  # type: ignore[no-untyped-def]
    """Stop before the model loads when the brokers refuse the credentials or the TLS set-up.

    Unreachable brokers are no reason to stop: the worker reports them once and retries in the background.
    """
    from stream_ner.errors import KafkaUnavailable
    from stream_ner.kafka import ensure_reachable

    try:
        ensure_reachable(settings.kafka, timeout_s=min(3.0, settings.kafka.connect_timeout_s))
    except KafkaUnavailable:
        pass
