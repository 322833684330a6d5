"""How `stream-ner tail` (and the demo) shows an entity event."""

from stream_ner.commands.tail import render


def event(**extra) -> dict:
    entity = {"start": 0, "end": 4, "label": "ORG", "text": "Nike", "score": 0.9, "brand": "nike"}
    return {
        "post_id": "p1",
        "text": "Nike again",
        "entities": [entity | extra.pop("entity", {})],
        "brands": ["nike"],
    } | extra


def test_an_event_with_sentiment_shows_the_posts_and_each_entitys():
    shown = render(
        event(
            entity={"sentiment": -0.8, "sentiment_label": "negative"},
            sentiment=0.5,
            sentiment_label="positive",
        )
    ).plain
    assert "ORG:Nike (negative)" in shown and "post: positive +0.50" in shown and "brands: nike" in shown


def test_an_event_without_sentiment_shows_as_before():
    shown = render(event(sentiment=None)).plain
    assert shown.endswith("    ORG:Nike  brands: nike") and "post:" not in shown
