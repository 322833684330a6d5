"""Mention replacement: names swap within a label, spans follow, marked names and other posts stay."""

from __future__ import annotations

import random

from stream_ner.offline.augment import name_pool, replace_mentions, replaced_sample
from stream_ner.offline.data import Record

TRAIN = [
    Record("1", "Zara opened a store in Madrid", ((0, 4, "ORG"), (23, 29, "LOC")), "wnut17/train"),
    Record("2", "lunch with Sarah Connor at Nando's", ((11, 23, "PER"), (27, 34, "ORG")), "wnut17/train"),
    Record("3", "@nike and #Adidas and Puma", ((0, 5, "ORG"), (10, 17, "ORG"), (22, 26, "ORG")), "btc/train"),
    Record("4", "follow @ BBCNews for more", ((9, 16, "ORG"),), "btc/train"),
    Record("5", "nothing to see here", (), "wnut17/train"),
    Record("6", "Paris in May", ((0, 5, "LOC"),), "wnut17/train"),
]


def test_the_pool_holds_plain_names_per_label() -> None:
    pool = name_pool(TRAIN)
    assert pool["ORG"] == ["Zara", "Nando's", "Puma", "BBCNews"]
    assert pool["LOC"] == ["Madrid", "Paris"]
    assert "@nike" not in pool["ORG"] and "#Adidas" not in pool["ORG"]


def test_names_are_swapped_within_their_label_and_the_spans_follow() -> None:
    pool = name_pool(TRAIN)
    for seed in range(20):
        new = replace_mentions(TRAIN[0], pool, random.Random(seed), "mr1")
        assert new is not None and new.id == "1~mr1" and new.source == "wnut17/train"
        (org, loc) = new.spans
        assert new.text[org[0] : org[1]] in pool["ORG"] and new.text[org[0] : org[1]] != "Zara"
        assert new.text[loc[0] : loc[1]] == "Paris", "the only other LOC"
        assert new.text[org[1] : loc[0]] == " opened a store in "
        assert [s[2] for s in new.spans] == ["ORG", "LOC"]


def test_handles_hashtags_and_names_after_an_at_sign_are_kept() -> None:
    pool = name_pool(TRAIN)
    new = replace_mentions(TRAIN[2], pool, random.Random(1), "mr")
    assert new is not None
    assert new.text.startswith("@nike and #Adidas and ") and not new.text.endswith("Puma")
    assert replace_mentions(TRAIN[3], {"ORG": ["Zara", "Puma"]}, random.Random(1), "mr") is not None
    handle = Record("7", "thanks @Zara", ((8, 12, "ORG"),), "btc/train")  # BTC labels the name only
    assert replace_mentions(handle, pool, random.Random(1), "mr") is None


def test_a_sample_is_reproducible_and_skips_posts_without_a_replaceable_name() -> None:
    pool = name_pool(TRAIN)
    first = replaced_sample(TRAIN, pool, 10, random.Random(7), "mr1")
    again = replaced_sample(TRAIN, pool, 10, random.Random(7), "mr1")
    assert first == again and len(first) == 5
    assert {r.id for r in first} == {"1~mr1", "2~mr1", "3~mr1", "4~mr1", "6~mr1"}
