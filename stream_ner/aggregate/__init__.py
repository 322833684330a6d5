"""Brand aggregates: windowed per-brand counts from the ``entities`` topic to ``brand-aggregates`` and Redis.

The pure parts (``model``, ``windows``, ``state``) import neither faust nor Redis; ``app`` wires them into a
faust-streaming application and is imported only by ``stream-ner aggregate``.
"""

from stream_ner.aggregate.model import BrandAggregate, BrandMention, Count, mentions_of

__all__ = ["BrandAggregate", "BrandMention", "Count", "mentions_of"]
