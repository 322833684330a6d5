"""Feed items: the text cut at entity spans by code point (emoji included), repeats skipped, fan-out."""

import asyncio
from datetime import UTC, datetime

from stream_ner.dashboard.feed import Recent, feed_item, segments
from stream_ner.dashboard.hub import CLOSED, QUEUE_FRAMES, Hub, frame
from stream_ner.messages import EntityEvent, EntityMention, ModelRef, Origin


def event(post_id: str, text: str, spans: list[tuple[str, str, str | None]], brands: list[str]) -> bytes:
    mentions = []
    for surface, label, brand in spans:
        start = text.index(surface)
        mentions.append(
            EntityMention(
                start=start, end=start + len(surface), label=label, score=0.9, text=surface, brand=brand
            )
        )
    return (
        EntityEvent(
            post_id=post_id,
            text=text,
            entities=mentions,
            brands=brands,
            created_at=datetime(2024, 5, 1, 12, tzinfo=UTC),
            author="mia",
            lang="en",
            source="test",
            metadata={},
            model=ModelRef(name="m", version="1"),
            origin=Origin(topic="raw", partition=0, offset=1, timestamp_ms=1),
            processed_at=datetime(2024, 5, 1, 12, tzinfo=UTC),
        )
        .model_dump_json()
        .encode()
    )


def test_segments_follow_code_point_offsets_past_emoji():
    text = "📸🔥 new iPhone from Apple in London"
    spans = [("iPhone", "PRODUCT", "apple"), ("Apple", "ORG", "apple"), ("London", "LOC", None)]
    raw = event("p1", text, spans, ["apple"])
    item = feed_item(raw, 1234)
    assert item is not None
    assert "".join(s[0] for s in item.segments) == text
    assert [s for s in item.segments if s[1]] == [
        ("iPhone", "PRODUCT", "apple"),
        ("Apple", "ORG", "apple"),
        ("London", "LOC", None),
    ]
    assert item.labels == ["LOC", "ORG", "PRODUCT"]
    assert item.entities_ms == 1234 and item.author == "mia" and item.sentiment is None


def test_markup_in_a_post_stays_text_in_its_segments():
    text = "<img src=x onerror=alert(1)> Nike"
    [*_, last] = segments(text, [{"start": 29, "end": 33, "label": "ORG", "brand": "nike"}])
    assert segments(text, [])[0] == (text, None, None)
    assert last == ("Nike", "ORG", "nike")


def test_overlapping_and_out_of_range_spans_are_skipped():
    text = "Air Max by Nike"
    spans = [
        {"start": 0, "end": 7, "label": "PRODUCT"},
        {"start": 4, "end": 7, "label": "ORG"},  # inside the previous one
        {"start": 11, "end": 99, "label": "ORG"},  # past the end
    ]
    assert segments(text, spans) == [("Air Max", "PRODUCT", None), (" by Nike", None, None)]


def test_values_that_are_not_entity_events_are_no_items():
    assert feed_item(None, 0) is None
    assert feed_item(b"not json", 0) is None
    assert feed_item(b'{"post_id": "x"}', 0) is None


def test_recent_keeps_the_newest_overall_and_per_brand_and_skips_repeats():
    recent = Recent(size=3, per_brand=2)
    items = [
        feed_item(event(f"p{i}", f"Nike {i}", [], ["nike"] if i % 2 else ["adidas"]), i) for i in range(6)
    ]
    assert all(items)
    new = recent.add([i for i in items if i])
    assert [i.post_id for i in new] == [f"p{i}" for i in range(6)]
    assert recent.add([items[5]]) == []  # a repeat of a post (at-least-once) is skipped
    assert [i.post_id for i in recent.latest()] == ["p3", "p4", "p5"]
    assert [i.post_id for i in recent.of_brand("nike")] == ["p3", "p5"]
    assert recent.of_brand("puma") == []


def test_hub_sends_each_frame_to_subscribers_of_its_channel_and_drops_a_slow_one():
    async def scenario():
        hub = Hub()
        fast = hub.subscribe(["board:1m", "feed"])
        other = hub.subscribe(["board:1h"])
        data = frame("board", {"x": 1})
        assert data == b'event: board\ndata: {"x":1}\n\n'
        assert hub.publish("board:1m", data) == 1
        assert fast.queue.get_nowait() == data and other.queue.empty()
        for _ in range(QUEUE_FRAMES):
            hub.publish("feed", b"x")
        hub.publish("feed", b"one too many")  # fast never drained: it is dropped with CLOSED
        assert fast not in hub.subscribers
        assert fast.queue.get_nowait() == CLOSED
        assert hub.publish("board:1h", data) == 1

    asyncio.run(scenario())
