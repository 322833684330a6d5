"""The load test's peer consumers annotate as the systems they stand for (speed is the load test's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest import peers

TEXTS = ["Barack Obama met Angela Merkel in Paris", "lol", "Apple and Microsoft report earnings in Seattle"]


def labelled(found: list[list[dict]]) -> list[set[tuple[str, str]]]:
    return [{(e["text"], e["label"]) for e in entities} for entities in found]


def test_the_naive_peer_runs_the_shipped_weights_through_the_transformers_pipeline(tmp_path: Path) -> None:
    checkpoint = peers.prepare(None, tmp_path)
    found = peers.annotator("naive", 1, str(checkpoint))(TEXTS)
    assert len(found) == len(TEXTS)
    first, nothing, last = labelled(found)
    # word pieces come back joined, lower-cased by the uncased tokenizer, with character offsets
    assert {("barack obama", "PER"), ("paris", "LOC")} <= first
    assert nothing == set()
    assert ("seattle", "LOC") in last
    span = found[0][0]
    assert TEXTS[0][span["start"] : span["end"]].lower() == span["text"]


def test_the_spacy_peer_runs_en_core_web_sm_on_a_batch() -> None:
    found = peers.annotator("spacy", 1, None)(TEXTS)
    assert len(found) == len(TEXTS)
    first, nothing, last = labelled(found)
    assert ("Paris", "GPE") in first and ("Barack Obama", "PERSON") in first
    assert nothing == set()
    assert ("Apple", "ORG") in last
    for text, entities in zip(TEXTS, found, strict=True):
        for e in entities:
            assert text[e["start"] : e["end"]] == e["text"]


def test_an_unknown_peer_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown peer 'flair'"):
        peers.annotator("flair", 1, None)
