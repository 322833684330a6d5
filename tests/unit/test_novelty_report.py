"""``model eval``'s seen / unseen report on small files written here, with a predictor that is a function."""

from __future__ import annotations

import json
from pathlib import Path

from stream_ner.commands.model_novelty import remembering, report, train_files


def write(path: Path, posts: list[tuple[str, list[tuple[int, int, str]]]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [
        {"id": str(i), "text": t, "entities": [{"start": s, "end": e, "label": x} for s, e, x in spans]}
        for i, (t, spans) in enumerate(posts)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_train_files_are_explicit_else_the_train_split_beside_the_file(tmp_path: Path) -> None:
    dev = write(tmp_path / "corpus" / "dev.jsonl", [])
    lone = write(tmp_path / "other" / "posts.jsonl", [])
    assert train_files(dev, None) == [] and train_files(lone, None) == []
    train = write(tmp_path / "corpus" / "train.jsonl", [])
    assert train_files(dev, None) == [train]
    assert train_files(train, None) == []  # a train split is not split by itself
    assert train_files(lone, [train, dev]) == [train, dev]


def test_remembering_predicts_a_list_of_texts_once() -> None:
    calls: list[list[str]] = []

    def predictor(texts: list[str]) -> list[list[tuple[int, int, str]]]:
        calls.append(texts)
        return [[] for _ in texts]

    predict = remembering(predictor)
    assert predict(["a", "b"]) == predict(["a", "b"]) == [[], []]
    predict(["c"])
    assert calls == [["a", "b"], ["c"]]


def test_report_splits_by_the_train_split_beside_each_file(tmp_path: Path) -> None:
    write(tmp_path / "c" / "train.jsonl", [("I love nike", [(7, 11, "ORG")])])
    dev = write(
        tmp_path / "c" / "dev.jsonl",
        [("@Nike and Acme", [(0, 5, "ORG"), (10, 14, "ORG")]), ("nothing here", [])],
    )

    def predictor(texts: list[str]) -> list[list[tuple[int, int, str]]]:
        return [[(0, 5, "ORG")] if t.startswith("@Nike") else [(0, 7, "ORG")] for t in texts]

    out = report([dev], predictor, None, None)
    entry = out["c/dev.jsonl#novelty"]
    assert entry["train"] == ["c/train.jsonl"]
    assert (entry["posts"], entry["posts_exactly_right"], entry["post_accuracy"]) == (2, 0, 0.0)
    seen, unseen = entry["seen"]["ORG"], entry["unseen"]["ORG"]
    assert (seen["tp"], seen["fp"], seen["fn"]) == (1, 0, 0)  # @Nike is nike, seen in train
    assert (unseen["tp"], unseen["fp"], unseen["fn"]) == (0, 1, 1)  # Acme missed, "nothing" made up
    lone = report([dev], predictor, ["ORG"], [tmp_path / "c" / "dev.jsonl"])["c/dev.jsonl#novelty"]
    assert lone["unseen"]["micro"]["support"] == 0  # every dev entity is "seen" in itself


def test_with_seen_catalog_the_catalog_names_count_as_seen(tmp_path: Path) -> None:
    write(tmp_path / "c" / "train.jsonl", [("I love nike", [(7, 11, "ORG")])])
    dev = write(
        tmp_path / "c" / "dev.jsonl", [("my PS5 and my Zorblat", [(3, 6, "PRODUCT"), (14, 21, "PRODUCT")])]
    )

    def predictor(texts: list[str]) -> list[list[tuple[int, int, str]]]:
        return [[(3, 6, "PRODUCT")] for _ in texts]

    plain = report([dev], predictor, None, None)["c/dev.jsonl#novelty"]
    assert plain["unseen"]["PRODUCT"]["support"] == 2 and plain["seen"]["PRODUCT"]["support"] == 0
    with_catalog = report([dev], predictor, None, None, seen_catalog=True)["c/dev.jsonl#novelty"]
    assert with_catalog["train"] == ["c/train.jsonl", "brand catalog"]
    seen, unseen = with_catalog["seen"]["PRODUCT"], with_catalog["unseen"]["PRODUCT"]
    assert (seen["tp"], seen["fn"], unseen["tp"], unseen["fn"]) == (1, 0, 0, 1)  # PS5 is a catalog product
