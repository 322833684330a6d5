"""Consumers that only watch a topic: a group of their own, from the earliest offset, never committing.

They never join, rebalance or move another group's offsets, so any number of them can watch the topics a
scenario's workers and aggregator consume, and each sees every record the topic still holds.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from confluent_kafka import Consumer


def watcher(bootstrap: str, purpose: str, **overrides: Any) -> Consumer:
    """A ``Consumer`` in a fresh group ``{purpose}-{random}`` that reads from the start; ``overrides`` add
    or replace librdkafka settings (for example ``fetch.wait.max.ms``)."""
    from confluent_kafka import Consumer

    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{purpose}-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
        | overrides
    )
