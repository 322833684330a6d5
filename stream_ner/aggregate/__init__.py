"""Brand aggregates: windowed per-brand counts from the ``entities`` topic to ``brand-aggregates`` and Redis.

Two stages, each a pure core driven by faust-streaming (``faust_app``, imported only by
``stream-ner aggregate``): ``dedupe`` keeps the first event of every post, ``mentions`` splits it into
brand mentions, ``panes`` counts them into windows built from panes, exactly once; ``stages`` glues the
cores to the driver and the sinks (``outbox``, ``redis_sink``). The record written per brand and window is
``stream_ner.messages.BrandAggregate``.
"""
