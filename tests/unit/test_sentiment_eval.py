"""Sentiment measures, text cleaning and ``model eval`` on sentiment files (the lookup model of
``test_sentiment``), with files written here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from stream_ner.offline.sentiment_data import SentimentRecord, clean, file_format
from stream_ner.offline.sentiment_scores import post_scores, target_scores
from tests.unit.test_sentiment import build_sentiment_artifact


def test_macro_recall_accuracy_and_macro_f1() -> None:
    gold = [0, 0, 1, 1, 1, 2]
    predicted = [0, 1, 1, 1, 2, 2]
    s = post_scores(gold, predicted)
    assert s["accuracy"] == pytest.approx(4 / 6)
    assert s["macro_recall"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    f1 = [2 * 1 * 0.5 / 1.5, 2 * (2 / 3) * (2 / 3) / (4 / 3), 2 * 0.5 * 1 / 1.5]
    assert s["macro_f1"] == pytest.approx(sum(f1) / 3)
    assert target_scores([2, 2], [2, 2]) == {"accuracy": 1.0, "macro_f1": pytest.approx(1 / 3)}
    with pytest.raises(ValueError):
        post_scores([0], [])


def test_cleaning_decodes_escapes_and_keeps_target_offsets() -> None:
    text = "i can\\u2019t -LRB- really -RRB- stand britney spears &amp; `` her '' song"
    start = text.index("britney")
    record = SentimentRecord("x", text, None, ((start, start + 14, "negative"),), "dong14/dev")
    cleaned = clean(record)
    assert cleaned.text == 'i can’t ( really ) stand britney spears & " her " song'
    ((s, e, label),) = cleaned.targets
    assert cleaned.text[s:e] == "britney spears" and label == "negative"


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_model_eval_scores_post_and_target_files(tmp_path: Path) -> None:
    model = build_sentiment_artifact(tmp_path / "model")
    posts = _write(
        tmp_path / "posts.jsonl",
        [
            {"id": "1", "text": "good good day", "sentiment": "positive", "source": "tweeteval/dev"},
            {"id": "2", "text": "bad bad day", "sentiment": "negative", "source": "tweeteval/dev"},
            {"id": "3", "text": "a day", "sentiment": "positive", "source": "tweeteval/dev"},
        ],
    )
    text = "nike is ok but apple rocks"
    targets = _write(
        tmp_path / "targets.jsonl",
        [
            {
                "id": "1",
                "text": text,
                "targets": [
                    {"start": 0, "end": 4, "text": "nike", "sentiment": "negative"},
                    {"start": 15, "end": 20, "text": "apple", "sentiment": "negative"},
                ],
                "source": "dong14/dev",
            }
        ],
    )
    assert (file_format(posts), file_format(targets)) == ("post", "target")
    out = tmp_path / "scores.json"
    done = subprocess.run(
        [sys.executable, "-m", "stream_ner", "model", "eval", str(posts), str(targets)]
        + ["--model", str(model), "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    scores = json.loads(out.read_text())
    (post,) = scores[f"{tmp_path.name}/posts.jsonl"].values()
    (target,) = scores[f"{tmp_path.name}/targets.jsonl"].values()
    assert post == {
        "macro_recall": 50.0,  # neutral has no gold post: recall 0
        "accuracy": 66.67,
        "macro_f1": 55.56,
    }
    assert target == {"accuracy": 50.0, "macro_f1": pytest.approx(22.22, abs=0.01)}
