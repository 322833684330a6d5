from datetime import UTC, datetime

import jsonschema

from stream_ner import topics
from stream_ner.aggregate import BrandAggregate, mentions_of
from stream_ner.aggregate.model import BrandMention
from stream_ner.messages import EntityEvent, EntityMention, ModelRef, Origin
from stream_ner.settings import Settings


def event(**kw) -> EntityEvent:
    fields = dict(
        post_id="p1",
        text="Nike and Adidas, says LeBron",
        entities=[
            EntityMention(start=0, end=4, label="ORG", score=0.9, text="Nike", brand="nike"),
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
        model=ModelRef(name="m", version="1"),
        origin=Origin(topic="raw", partition=0, offset=3, timestamp_ms=1),
        processed_at=datetime(2024, 5, 1, 12, 1, tzinfo=UTC),
    )
    fields.update(kw)
    return EntityEvent(**fields)


def test_one_mention_per_brand_with_its_co_mentions():
    mentions = mentions_of(event(), source=2, sources=6)
    assert [m.brand for m in mentions] == ["adidas", "nike", "puma"]
    nike = mentions[1]
    assert nike.co_brands == ("adidas", "puma") and nike.co_entities == ("PER:lebron",)
    assert nike.mentions == 1 and mentions[2].mentions == 1  # puma: untagged, still one per post
    assert nike.time_ms == int(datetime(2024, 5, 1, 12, 0, 30, tzinfo=UTC).timestamp() * 1000)
    assert (nike.source, nike.sources, nike.author, nike.sentiment) == (2, 6, "al", 0.5)
    assert BrandMention.from_json(nike.to_json()) == nike


def test_event_time_falls_back_to_the_input_record_timestamp():
    assert mentions_of(event(created_at=None))[0].time_ms == 1
    assert mentions_of(event(brands=[], entities=[])) == []


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
        final=False,
    )
    jsonschema.validate(record.model_dump(mode="json"), schema)
    assert record.key() == "~acme|1m|2024-05-01T12:00:00Z"
