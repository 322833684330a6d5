"""The dashboard's web app (Starlette): the page, a small JSON API and one server-sent-event stream.

Routes (all behind ``access.TokenGate`` when a token is set):

- ``GET /``: the page (``static/index.html``, with the window families filled in).
- ``GET /static/...``: the page's script, styles and the vendored chart library; nothing is fetched from
  elsewhere.
- ``GET /api/events?window=W``: server-sent events: ``board`` (the leaderboard of W, whole, when it
  changes), ``feed`` (new entity events), ``alerts`` (recent spikes). The first frames are a snapshot.
- ``GET /api/board?window=W``, ``GET /api/brand/{brand}?window=W``, ``GET /api/feed?brand=B``: JSON.
- ``GET /health``: ``{"ok": true, ...}``.

``create_app`` builds the app from the settings; the Redis clients, the entities consumer thread, the
alert producer and the ``live.Live`` tasks start in its lifespan and stop with it.
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from stream_ner.dashboard.access import SecurityHeaders, TokenGate
from stream_ner.dashboard.feed import EntityTail, Recent
from stream_ner.dashboard.hub import CLOSED
from stream_ner.dashboard.live import Live
from stream_ner.dashboard.spikes import SpikeRule
from stream_ner.dashboard.store import Family, Store
from stream_ner.settings import Settings

log = logging.getLogger("stream_ner.dashboard")

KEEPALIVE_S = 15.0


def static_dir() -> Path:
    """The page's files inside the package."""
    return Path(str(resources.files("stream_ner.dashboard") / "static"))


def json(data: Any, status: int = 200) -> Response:
    """A JSON response (orjson: dataclasses as objects)."""
    return Response(orjson.dumps(data), status, media_type="application/json")


def families(settings: Settings) -> list[Family]:
    """The window families of the aggregator's settings."""
    return [Family(w.name, w.size_s, w.step_s) for w in settings.aggregate.windows]


def _page(settings: Settings) -> bytes:
    text = (static_dir() / "index.html").read_text(encoding="utf-8")
    config = {
        "windows": [{"name": f.name, "size_s": f.size_s, "step_s": f.step_s} for f in families(settings)],
        "spike": {"z": settings.dashboard.spike_z, "min_mentions": settings.dashboard.spike_min_mentions},
    }
    return text.replace("{{config}}", html.escape(orjson.dumps(config).decode(), quote=True)).encode()


def create_app(settings: Settings) -> Any:
    """The ASGI app of the dashboard (Starlette wrapped in the token gate and the security headers)."""
    import redis.asyncio as aioredis

    from stream_ner.brands.catalog import load_catalog
    from stream_ner.kafka import BrokerWatch, client_config

    dash = settings.dashboard
    page = _page(settings)
    names = {brand.id: brand.name for brand in load_catalog(settings.brands.catalog).brands.values()}
    state: dict[str, Live] = {}
    brokers = BrokerWatch(settings.kafka.bootstrap_servers, log)
    kafka = client_config(settings.kafka) | {"error_cb": brokers.on_error}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        client = aioredis.Redis.from_url(settings.redis.url, socket_timeout=5, socket_connect_timeout=2)
        blocking = aioredis.Redis.from_url(settings.redis.url, socket_timeout=15, socket_connect_timeout=2)
        alerts = None
        if dash.alerts:
            from confluent_kafka import Producer

            from stream_ner.dashboard.alerts import AlertSink

            producer = Producer(kafka | {"enable.idempotence": True, "linger.ms": 20, "acks": "all"})
            alerts = AlertSink(
                producer,
                settings.topics.brand_alerts,
                client,
                settings.redis.key_prefix,
                settings.aggregate.redis_ttl_s,
            )
        live = Live(
            store=Store(client, settings.redis.key_prefix, names),
            families=families(settings),
            rule=SpikeRule(dash.spike_z, dash.spike_min_mentions, dash.spike_min_history),
            history=dash.spike_history,
            rows=dash.leaderboard_rows,
            refresh_s=dash.refresh_ms / 1000,
            recent=Recent(max(dash.feed_events, 200), dash.brand_posts),
            feed_events=dash.feed_events,
            updates_client=blocking,
            alerts=alerts,
        )
        state["live"] = live
        loop = asyncio.get_running_loop()
        tail = EntityTail(
            kafka,
            settings.topics.entities,
            dash.lookback_s,
            lambda items: loop.call_soon_threadsafe(live.on_feed, items),
        )
        tail.start()
        task = asyncio.create_task(live.run())
        try:
            yield
        finally:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - stopping
                pass
            tail.stop()
            if alerts is not None:
                alerts.flush(5.0)
            await client.aclose()
            await blocking.aclose()

    def live() -> Live:
        return state["live"]

    def window_of(request: Request) -> str | None:
        window = request.query_params.get("window") or next(iter(live().families))
        return window if window in live().families else None

    async def index(request: Request) -> Response:
        return HTMLResponse(page, headers={"cache-control": "no-store"})

    async def board(request: Request) -> Response:
        window = window_of(request)
        if window is None:
            return json({"error": "unknown window"}, 404)
        return json(live().boards.get(window))

    async def brand(request: Request) -> Response:
        window = window_of(request)
        if window is None:
            return json({"error": "unknown window"}, 404)
        return json(await live().brand_page(window, request.path_params["brand"]))

    async def feed(request: Request) -> Response:
        wanted = request.query_params.get("brand")
        items = live().recent.of_brand(wanted) if wanted else live().recent.latest(dash.feed_events)
        return json(items)

    async def health(request: Request) -> Response:
        return json({"ok": True, "windows": {w: b.start for w, b in live().boards.items()}})

    async def events(request: Request) -> Response:
        window = window_of(request)
        if window is None:
            return json({"error": "unknown window"}, 404)
        subscription = live().hub.subscribe([f"board:{window}", "feed", "alerts"])
        snapshot = live().snapshot(window)

        async def stream() -> AsyncIterator[bytes]:
            try:
                yield b"retry: 2000\n\n" + b"".join(snapshot)
                while True:
                    try:
                        data = await asyncio.wait_for(subscription.queue.get(), KEEPALIVE_S)
                    except TimeoutError:
                        yield b": keep-alive\n\n"
                        continue
                    frames = [data]
                    while not subscription.queue.empty():  # whatever queued meanwhile: one write
                        frames.append(subscription.queue.get_nowait())
                    if CLOSED in frames:
                        return
                    yield b"".join(frames)
            finally:
                live().hub.unsubscribe(subscription)

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"cache-control": "no-store", "x-accel-buffering": "no"},
        )

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/api/events", events),
            Route("/api/board", board),
            Route("/api/brand/{brand:path}", brand),
            Route("/api/feed", feed),
            Route("/health", health),
            Mount("/static", StaticFiles(directory=static_dir()), name="static"),
        ],
        lifespan=lifespan,
    )
    token = dash.token.get_secret_value() if dash.token else None
    return TokenGate(SecurityHeaders(app), token)
