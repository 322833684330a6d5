import itertools
import json
import random

import pytest

from loadtest.corpus import CORPUS_ENV, detokenize, load_corpus, stream, vary


def test_detokenize_glues_punctuation_and_clitics():
    assert detokenize("it 's great , isn't it ? # win") == "it's great, isn't it? #win"


def test_variants_keep_the_text_and_differ_across_draws():
    rng = random.Random(1)
    text = "@bob I 'm at Starbucks in London ."
    variants = [vary(text, rng) for _ in range(200)]
    assert all("starbucks" in v.lower() for v in variants)
    assert len(set(variants)) > 20
    assert any(v != detokenize(text) for v in variants)


def test_stream_is_deterministic_per_seed_and_covers_every_text():
    texts = [f"post number {i} about Nike" for i in range(30)]
    first = list(itertools.islice(stream(texts, seed=3), 30))
    assert first == list(itertools.islice(stream(texts, seed=3), 30))
    assert first != list(itertools.islice(stream(texts, seed=4), 30))
    assert {int(t.lower().split("post number ")[1].split()[0]) for t in first} == set(range(30))


def test_corpus_from_a_directory_of_train_files_or_the_env(tmp_path, monkeypatch):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        lines = [json.dumps({"id": f"{name}{i}", "text": f"{name} text {i}"}) for i in range(3)]
        (tmp_path / name / "train.jsonl").write_text("\n".join(lines + [json.dumps({"text": "  "})]) + "\n")
        (tmp_path / name / "dev.jsonl").write_text(json.dumps({"text": "held out"}) + "\n")
    corpus = load_corpus(tmp_path)
    assert sorted(corpus.texts) == sorted(f"{n} text {i}" for n in "ab" for i in range(3))
    assert corpus.description == "corpus a+b (6 texts)"
    monkeypatch.setenv(CORPUS_ENV, str(tmp_path / "a" / "dev.jsonl"))
    assert load_corpus().texts == ["held out"]


def test_without_a_corpus_the_shipped_samples_are_used(monkeypatch):
    monkeypatch.delenv(CORPUS_ENV, raising=False)
    corpus = load_corpus()
    assert len(corpus.texts) == 50
    assert corpus.description.startswith("shipped sample posts")


def test_a_missing_corpus_is_an_error(tmp_path):
    with pytest.raises(ValueError):
        load_corpus(tmp_path / "nope")
