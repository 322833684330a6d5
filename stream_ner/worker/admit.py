"""Checks a parsed post must pass before it may reach the model: rules about the world, not the format.

``parse_post`` (``stream_ner.messages``) decides whether a value is a well-formed ``Post``; ``admit`` decides
whether the worker should process it now. Both raise ``InvalidPost`` with a stable code, and the runner
turns it into a ``Rejected`` record on the dead-letter topic. Pure: the clock is an argument.

Codes: ``created_in_future`` (``created_at`` further ahead of ``now`` than ``max_future_s``: a clock or
unit mistake at the source, e.g. milliseconds read as seconds; such a post would open windows no other
post reaches and hold the aggregator's stream time hostage).
"""

from __future__ import annotations

from datetime import UTC, datetime

from stream_ner.errors import InvalidPost
from stream_ner.messages import Post


def admit(post: Post, now: datetime, max_future_s: int) -> Post:
    """``post`` unchanged, or ``InvalidPost`` when one of the module's rules refuses it."""
    created = post.created_at
    if created is not None:
        if created.tzinfo is None:  # a naive time is read as UTC, as the aggregator reads it
            created = created.replace(tzinfo=UTC)
        ahead = (created - now).total_seconds()
        if ahead > max_future_s:
            raise InvalidPost(
                "created_in_future",
                f"created_at {created.isoformat()} is {ahead:,.0f} s ahead of the worker's clock; "
                f"the limit is {max_future_s} s",
            )
    return post
