"""Bad input beyond the format: posts from the future, a linker failing on one post, line numbers."""

from __future__ import annotations

import queue
from datetime import UTC, datetime, timedelta
from itertools import islice

import pytest

from stream_ner.brands import BrandLinker
from stream_ner.commands.produce import numbered, records
from stream_ner.errors import InvalidPost
from stream_ner.messages import Origin, Post
from stream_ner.model.runtime import NerModel
from stream_ner.settings import WorkerSettings
from stream_ner.worker.admit import admit
from stream_ner.worker.annotate import Incoming
from stream_ner.worker.inference import InferenceThread

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
DAY = WorkerSettings().max_future_s


def test_the_default_bound_of_created_at_is_one_day():
    assert DAY == 86_400


@pytest.mark.parametrize(
    "created_at",
    [
        None,
        NOW - timedelta(days=400),
        NOW,
        NOW + timedelta(seconds=DAY),
        (NOW + timedelta(hours=1)).replace(tzinfo=None),
    ],
)
def test_posts_up_to_the_bound_ahead_are_admitted(created_at):
    post = Post(id="p", text="hi", created_at=created_at)
    assert admit(post, NOW, DAY) is post


@pytest.mark.parametrize(
    "created_at",
    [
        NOW + timedelta(seconds=DAY + 1),
        (NOW + timedelta(days=2)).replace(tzinfo=None),  # naive: read as UTC
        datetime(2026, 6, 1, 23, 0, tzinfo=UTC) + timedelta(days=365 * 50),  # milliseconds read as seconds
    ],
)
def test_a_post_from_beyond_the_bound_is_rejected_with_its_own_code(created_at):
    with pytest.raises(InvalidPost) as raised:
        admit(Post(id="p", text="hi", created_at=created_at), NOW, DAY)
    assert raised.value.code == "created_in_future"
    assert "ahead of the worker's clock" in raised.value.reason and "86400 s" in raised.value.reason


class _LinkerFailsOn:
    """The shipped linker, except that it raises for any batch holding ``poison``."""

    poison = "Nike and Adidas, but this post breaks the linker"

    def __init__(self) -> None:
        self.linker = BrandLinker.from_catalog()

    def link(self, texts, entities):
        if self.poison in texts:
            raise KeyError("catalog entry vanished")
        return self.linker.link(texts, entities)


def test_a_linker_failing_on_one_post_rejects_that_post_and_never_the_batch():
    model = NerModel.load(intra_op_threads=1)
    texts = ["Loving my new @Nike shoes", _LinkerFailsOn.poison, "Tesla opens a factory #Tesla"]
    batch = [
        Incoming(Post(id=f"p{i}", text=t), Origin(topic="raw-posts", partition=0, offset=i, timestamp_ms=1))
        for i, t in enumerate(texts)
    ]
    inbox, outbox = queue.Queue(), queue.Queue()
    thread = InferenceThread(model, _LinkerFailsOn(), inbox, outbox)
    thread.start()
    inbox.put(batch)
    inbox.put(None)
    result = outbox.get(timeout=60)
    thread.join(10)
    assert [(item.post.id, event.brands) for item, event in result.events] == [
        ("p0", ["nike"]),
        ("p2", ["tesla"]),
    ]
    assert [(item.post.id, reason) for item, reason in result.failures] == [
        ("p1", "KeyError: 'catalog entry vanished'")
    ]


def test_produce_keeps_the_line_number_of_every_record_through_blank_lines_and_loops():
    source = '{"id": "a", "text": "x"}\n\n   \nnot json\n{"id": "b", "text": "y"}\n'
    lines = numbered(source)
    assert [n for n, _ in lines] == [1, 4, 5]
    sent = list(islice(records(lines, loop=True, stamp=False), 6))
    assert [(n, k) for n, k, _ in sent] == [
        (1, b"a"),
        (4, None),
        (5, b"b"),
        (1, b"a-1"),
        (4, None),
        (5, b"b-1"),
    ]
