import queue
from datetime import UTC, datetime

import pytest

from stream_ner.brands import BrandLinker
from stream_ner.messages import Origin, Post
from stream_ner.model.runtime import NerModel
from stream_ner.worker.annotate import Incoming, annotate
from stream_ner.worker.inference import InferenceThread

TEXTS = [
    "Loving my new @Nike running shoes, bought them in London",
    "nothing to see here, just coffee",
    "Elon Musk says Tesla will open a new factory near Berlin #Tesla",
]


@pytest.fixture(scope="module")
def model() -> NerModel:
    return NerModel.load(intra_op_threads=1)


def _batch(texts: list[str]) -> list[Incoming]:
    return [
        Incoming(
            Post(id=f"p{i}", text=t, author="amy", metadata={"k": [i]}),
            Origin(topic="raw-posts", partition=0, offset=i, timestamp_ms=1),
        )
        for i, t in enumerate(texts)
    ]


def test_one_event_per_post_in_order_with_brands_and_true_offsets(model):
    now = datetime(2026, 1, 1, tzinfo=UTC)
    events = annotate(_batch(TEXTS), model, BrandLinker.from_catalog(), now)
    assert [e.post_id for e in events] == ["p0", "p1", "p2"]
    assert [e.origin.offset for e in events] == [0, 1, 2]
    for event, text in zip(events, TEXTS, strict=True):
        assert event.text == text and event.processed_at == now and event.author == "amy"
        for entity in event.entities:
            assert text[entity.start : entity.end] == entity.text
    assert "nike" in events[0].brands and "tesla" in events[2].brands
    assert events[1].metadata == {"k": [1]}
    assert events[0].model.name == model.name and events[0].model.version == model.version


class _FailsOn:
    """The real model, except that one text makes it raise (a stand-in for a poisonous post)."""

    poison = "\u2620 poison"

    def __init__(self, model: NerModel) -> None:
        self.model, self.name, self.version = model, model.name, model.version
        self.has_sentiment = model.has_sentiment

    def predict(self, texts):
        if self.poison in texts:
            raise RuntimeError("cannot handle this post")
        return self.model.predict(texts)

    def analyze(self, texts):
        if self.poison in texts:
            raise RuntimeError("cannot handle this post")
        return self.model.analyze(texts)


def test_a_failing_post_is_isolated_and_its_neighbours_still_get_events(model):
    failing = _FailsOn(model)
    inbox, outbox = queue.Queue(), queue.Queue()
    thread = InferenceThread(failing, None, inbox, outbox)
    thread.start()
    inbox.put(_batch([TEXTS[0], _FailsOn.poison, TEXTS[2]]))
    inbox.put(None)
    result = outbox.get(timeout=60)
    thread.join(10)
    assert [item.post.id for item, _ in result.events] == ["p0", "p2"]
    assert [(item.post.id, reason) for item, reason in result.failures] == [
        ("p1", "RuntimeError: cannot handle this post")
    ]
    assert result.size == 3 and not thread.is_alive()
