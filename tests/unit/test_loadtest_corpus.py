import itertools
import json
import random

import pytest

from loadtest.corpus import CORPUS_ENV, detokenize, load_corpus, stream, vary, with_repeats


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


def test_stream_never_repeats_a_recent_text_however_small_the_corpus():
    texts = ["I love my new Nike shoes", "Pepsi or Coke?"]
    items = list(itertools.islice(stream(texts, seed=5), 3000))
    assert len(set(items)) == len(items)
    assert all("nike" in t.lower() or "pepsi" in t.lower() for t in items)
    linked = [t for t in items if "https://t.co/" in t]
    assert linked and len(linked) < len(items)  # a link only where the variants ran out
    # beyond the window a text may come back
    small = list(itertools.islice(stream(texts, seed=5, unique_window=4), 3000))
    assert len(set(small)) < len(small)
    assert all(len(set(small[i : i + 5])) == 5 for i in range(len(small) - 4))


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


def test_a_share_of_repeats_reuses_recent_texts_and_keeps_the_new_ones_in_order():
    def numbered():
        return (f"text {i}" for i in itertools.count())

    out = list(itertools.islice(with_repeats(numbered(), 0.3, seed=5, window=100), 10_000))
    new, seen = 0, set()
    for text in out:
        number = int(text.split()[1])
        if text in seen:
            assert new - 100 <= number < new, "a repeat is one of the last 100 new texts"
        else:
            assert number == new, "new texts come in order, none skipped"
            new += 1
            seen.add(text)
    assert 0.28 < 1 - new / len(out) < 0.32
    assert out == list(itertools.islice(with_repeats(numbered(), 0.3, seed=5, window=100), 10_000))


def test_no_repeats_leaves_the_stream_as_it_is():
    texts = iter(["a", "b"])
    assert with_repeats(texts, 0.0, seed=1) is texts
    with pytest.raises(ValueError):
        with_repeats(texts, 1.0, seed=1)
