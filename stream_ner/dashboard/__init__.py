"""The live brand dashboard: what the aggregator writes to Redis and the newest entity events, in a browser.

Data flows one way, from the sources to the browsers::

    Redis P:updates stream ─▶ one reader task ─▶ store (board per window family) ─▶ spikes ─▶ alerts
    entities topic ─▶ feed.EntityTail (one consumer thread) ─▶ feed.Recent        │        (brand-alerts)
                                          │                                       │
                                          ▼                                       ▼
                               hub.Hub: each update encoded once, queued to every browser
                                          ▼
                               server (Starlette): the page, a JSON API, server-sent events

Modules: ``spikes`` (the spike rule, pure), ``store`` (the Redis reading layer), ``feed`` (entity events
to feed items, the consumer thread), ``hub`` (fan-out), ``alerts`` (brand-alerts, deduplicated),
``live`` (the tasks tying them together), ``server`` (routes and the access token), ``static`` (the page).
Needs the ``dashboard`` extra (starlette, uvicorn, orjson).
"""
