"""``stream-ner dashboard``: the live brand dashboard in the browser (the ``dashboard`` extra)."""

from __future__ import annotations

import argparse
import socket


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``dashboard`` command."""
    parser = subparsers.add_parser(
        "dashboard",
        help="serve the live brand dashboard: leaderboards, brand pages, spikes, live feed",
        description="Serve the brand dashboard, read from the aggregator's Redis keys and the entities "
        "topic. Settings: the 'dashboard', 'redis', 'aggregate' (windows) and 'topics' sections.",
    )
    parser.add_argument("--host", help="address to listen on (default: dashboard.host, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: dashboard.port, 8088; 0: a free one)")
    parser.set_defaults(handler=_run)


def url(host: str, port: int) -> str:
    """The address a browser opens."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return f"http://{f'[{shown}]' if ':' in shown else shown}:{port}/"


def _run(args: argparse.Namespace) -> int:
    from stream_ner.extras import require

    require("dashboard", "`stream-ner dashboard`")
    import uvicorn

    from stream_ner.dashboard.server import create_app
    from stream_ner.logs import configure_logging
    from stream_ner.settings import load_settings

    settings = load_settings()
    # The dashboard's Redis clients read ``redis.url``: hand them the URL with the credentials in it.
    redis = settings.redis.model_copy(update={"url": settings.redis.connection_url(), "ca_file": None})
    settings = settings.model_copy(update={"redis": redis})
    configure_logging(settings.log_level, settings.log_format, "dashboard")
    host = args.host or settings.dashboard.host
    sock = _listen(host, settings.dashboard.port if args.port is None else args.port)
    port = int(sock.getsockname()[1])
    config = uvicorn.Config(
        create_app(settings),
        log_level="warning",
        access_log=False,
        lifespan="on",
        ws="none",
        http="h11",
        loop="asyncio",
        timeout_graceful_shutdown=3,
    )
    token = " (access token required: add ?token=...)" if settings.dashboard.token else ""
    print(f"dashboard at {url(host, port)}{token}", flush=True)
    uvicorn.Server(config).run(sockets=[sock])
    return 0


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (0: a free port); ``ConfigError`` in one line when taken."""
    from stream_ner.errors import ConfigError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot serve the dashboard on {host}:{port} ({exc.strerror}): choose another port with --port "
            "or STREAM_NER_DASHBOARD__PORT"
        ) from exc
    sock.listen(128)
    sock.set_inheritable(True)
    return sock
