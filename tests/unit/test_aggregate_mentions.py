"""Stage one of the aggregator: reading entity events, splitting them by brand, first event per post."""

from datetime import UTC, datetime

import jsonschema
import pytest

from stream_ner import topics
from stream_ner.aggregate.dedupe import FirstEvents, Verdict
from stream_ner.aggregate.mentions import decode_batch, encode_batch, mentions_of, read_event
from stream_ner.messages import BrandAggregate, EntityEvent, EntityMention, ModelRef, Origin
from stream_ner.settings import Settings


def event(**kw) -> EntityEvent:
    fields = dict(
        post_id="p1",
        text="Nike and Adidas, says LeBron",
        entities=[
            EntityMention(
                start=0,
                end=4,
                label="ORG",
                score=0.9,
                text="Nike",
                brand="nike",
                sentiment=-0.8,
                sentiment_label="negative",
            ),
            EntityMention(start=9, end=15, label="ORG", score=0.9, text="Adidas", brand="adidas"),
            EntityMention(start=22, end=28, label="PER", score=0.9, text="LeBron"),
        ],
        brands=["adidas", "nike", "puma"],
        created_at=datetime(2024, 5, 1, 12, 0, 30, tzinfo=UTC),
        author="al",
        lang="en",
        source=None,
        metadata={},
        sentiment=0.5,
        sentiment_label="positive",
        model=ModelRef(name="m", version="1"),
        origin=Origin(topic="raw", partition=0, offset=3, timestamp_ms=1),
        processed_at=datetime(2024, 5, 1, 12, 1, tzinfo=UTC),
    )
    fields.update(kw)
    return EntityEvent(**fields)


def read(e: EntityEvent, record_ts: int | None = None):
    return read_event(e.model_dump_json().encode(), record_ts)


def test_one_mention_per_brand_with_its_co_mentions():
    mentions = mentions_of(read(event()), source=2, source_offset=17)
    assert [m.brand for m in mentions] == ["adidas", "nike", "puma"]
    nike = mentions[1]
    assert nike.co_brands == ("adidas", "puma") and nike.co_entities == ("PER:lebron",)
    assert nike.mentions == 1 and mentions[2].mentions == 1  # puma: untagged, still one per post
    assert nike.time_ms == int(datetime(2024, 5, 1, 12, 0, 30, tzinfo=UTC).timestamp() * 1000)
    assert (nike.source, nike.source_offset, nike.author) == (2, 17, "al")
    assert decode_batch(encode_batch(mentions, 6)) == (mentions, 6)


def test_each_mention_takes_its_entity_sentiment_else_the_posts():
    adidas, nike, puma = mentions_of(read(event()))
    assert (nike.tone, nike.sentiment) == ((1, 0, 0), -0.8)  # its entity: negative toward Nike
    assert (adidas.tone, adidas.sentiment) == ((0, 0, 1), 0.5)  # an entity without sentiment: the post's
    assert (puma.tone, puma.sentiment) == ((0, 0, 1), 0.5)  # catalog only, no entity: the post's
    twice = event(
        entities=[
            EntityMention(
                start=0, end=4, label="ORG", score=0.9, text="Nike", brand="nike", sentiment=-0.5,
                sentiment_label="negative",
            ),
            EntityMention(
                start=9, end=13, label="ORG", score=0.9, text="nike", brand="nike", sentiment=0.25,
                sentiment_label="neutral",
            ),
        ],
        brands=["nike"],
    )  # fmt: skip
    (nike,) = mentions_of(read(twice))
    assert (nike.mentions, nike.tone, nike.sentiment) == (2, (1, 1, 0), -0.25)


def test_no_sentiment_counts_nothing_and_a_bad_label_is_an_invalid_event():
    (nike,) = mentions_of(read(event(sentiment=None, sentiment_label=None, entities=[], brands=["nike"])))
    assert (nike.tone, nike.sentiment) == ((0, 0, 0), 0.0)
    score_only = (
        b'{"post_id": "p", "entities": [], "brands": ["nike"], "sentiment": 0.5, '
        b'"processed_at": "2024-05-01T12:00:00"}'
    )
    assert mentions_of(read_event(score_only, 1))[0].tone == (0, 0, 0)  # a score is not a polarity
    with pytest.raises(ValueError, match="sentiment_label"):
        read_event(score_only.replace(b'"sentiment"', b'"sentiment_label": "great", "sentiment"'), 1)


def test_by_brand_rows_written_before_sentiment_counts_are_still_read():
    legacy = b'{"sources": 3, "mentions": [["nike", "p1", 5, "al", 1, null, ["puma"], [], 2, 17]]}'
    (nike,), sources = decode_batch(legacy)
    assert (nike.brand, nike.mentions, nike.tone, nike.co_brands, nike.source_offset, sources) == (
        "nike", 1, (0, 0, 0), ("puma",), 17, 3
    )  # fmt: skip


def test_event_time_falls_back_to_the_input_record_timestamp():
    assert mentions_of(read(event(created_at=None)))[0].time_ms == 1
    no_origin = event(created_at=None, origin=Origin(topic="raw", partition=0, offset=3, timestamp_ms=None))
    assert mentions_of(read(no_origin, record_ts=7))[0].time_ms == 7
    assert mentions_of(read(event(brands=[], entities=[]))) == []


@pytest.mark.parametrize(
    "raw",
    [b"", b"[1]", b"{not json", b'{"post_id": 3, "entities": [], "brands": []}', b'{"post_id": "p"}'],
)
def test_what_is_not_an_entity_event_is_a_value_error(raw):
    with pytest.raises(ValueError):
        read_event(raw, None)


def test_the_first_event_of_a_post_wins_and_its_replay_is_recognised():
    state = FirstEvents(partition=0, horizon_ms=60_000)
    assert state.judge("p1", offset=5, time_ms=1_000) is Verdict.FIRST
    assert state.judge("p1", offset=9, time_ms=1_000) is Verdict.DUPLICATE  # e.g. another model version
    assert state.judge("p1", offset=5, time_ms=1_000) is Verdict.REPLAYED_FIRST  # the same record again
    restored = FirstEvents.restore(0, 60_000, dict(state.writes()).items())
    assert restored.judge("p1", offset=9, time_ms=1_000) is Verdict.DUPLICATE
    assert restored.judge("p1", offset=5, time_ms=1_000) is Verdict.REPLAYED_FIRST


def test_every_partition_restores_its_own_clock_from_the_one_mapping_faust_restores_into():
    table: dict = {}  # faust reads every changelog partition of a table into one mapping
    states = [FirstEvents(partition=p, horizon_ms=60_000) for p in (0, 1)]
    for p, state in enumerate(states):
        state.judge(f"post-{p}", offset=0, time_ms=1_000 * (p + 1))
        table.update(state.writes())
    for p, state in enumerate(states):
        mine = [(k, v) for k, v in table.items() if v["partition"] == p]
        assert FirstEvents.restore(p, 60_000, mine).clock_ms == state.clock_ms == 1_000 * (p + 1)


def test_a_clock_written_under_the_key_without_its_partition_is_still_restored():
    restored = FirstEvents.restore(0, 60_000, [('["clock"]', {"partition": 0, "clock_ms": 5_000})])
    assert (restored.clock_ms, restored.offset) == (5_000, -1)


def test_a_record_read_after_a_gap_in_the_offsets_is_reported_also_across_a_restore():
    state = FirstEvents(partition=0, horizon_ms=60_000)
    assert [state.read(o) for o in (40, 41, 42)] == [None, None, None], "where reading starts is no gap"
    assert state.read(45) == 43, "43 and 44 were never read"
    assert [state.read(o) for o in (43, 44, 46)] == [None, None, None], "a replay below is no gap"
    state.judge("p1", offset=46, time_ms=1_000)
    restored = FirstEvents.restore(0, 60_000, dict(state.writes()).items())
    assert restored.read(40) is None and restored.read(47) is None, "replayed from the commit: no gap"
    assert restored.read(50) == 48


def test_post_markers_expire_after_the_horizon_of_stream_time():
    state = FirstEvents(partition=0, horizon_ms=60_000)
    state.judge("old", offset=0, time_ms=0)
    state.writes()
    state.judge("new", offset=1, time_ms=59_999)
    assert "old" in state.markers and not [k for k, v in state.writes() if v is None]
    state.judge("newer", offset=2, time_ms=60_000)
    deleted = [k for k, v in state.writes() if v is None]
    assert deleted == ['["post","old"]'] and "old" not in state.markers
    assert state.judge("old", offset=3, time_ms=60_000) is Verdict.FIRST  # beyond the horizon it counts again


def test_committed_schema_matches_the_model_and_accepts_a_record():
    path = topics.spec_dir(Settings()) / "schemas" / "brand-aggregate.schema.json"
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema"}
    schema |= BrandAggregate.model_json_schema(mode="serialization")
    assert path.read_text() == topics.render_schema(schema), "regenerate brand-aggregate.schema.json"
    record = BrandAggregate(
        brand="~acme",
        unknown=True,
        window="1m",
        window_start=datetime(2024, 5, 1, 12, tzinfo=UTC),
        window_end=datetime(2024, 5, 1, 12, 1, tzinfo=UTC),
        mentions=2,
        posts=1,
        authors=1,
        co_brands=[{"id": "nike", "count": 1}],
        co_entities=[],
        sample_post_ids=["p1"],
        sentiment_sum=0.5,
        sentiment_count=1,
        sentiment_mean=0.5,
        positive=1,
        net_sentiment=1.0,
        final=False,
    )
    jsonschema.validate(record.model_dump(mode="json"), schema)
    assert record.key() == "~acme|1m|2024-05-01T12:00:00Z"
