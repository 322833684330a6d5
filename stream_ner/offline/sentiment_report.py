"""Scoring sentiment files with a model or the TF-IDF baseline, and printing the table (rich).

A file in the shared post format (``{"text", "sentiment"}``) is scored on post sentiment (macro-averaged
recall, accuracy, macro-F1), one in the target format (``{"text", "targets"}``) on target sentiment
(accuracy, macro-F1), both through ``stream_ner.offline.sentiment_scores``. Texts are cleaned as for
training (``sentiment_data.clean``), for the model and the baseline alike.

The baseline (``tfidf_analyzer``) is TF-IDF over word 1-2 grams and character 2-5 grams with a
logistic regression, trained on the train split of the same corpus (``DIR/tweeteval/train.jsonl`` for
post files, ``DIR/dong14/train.jsonl`` for target files); for target sentiment each target's text is
replaced by a placeholder token, so the features say what surrounds it. Post labels get balanced class
weights, as the model's post head does. Needs scikit-learn (the ``offline`` extra).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from stream_ner.model.sentiment import Analysis
from stream_ner.offline.sentiment_data import (
    POST_CORPUS,
    SENTIMENT_LABELS,
    TARGET_CORPUS,
    SentimentRecord,
    clean,
    file_format,
    read_sentiment,
)
from stream_ner.offline.sentiment_scores import post_scores, target_scores

Analyzer = Callable[..., list[Analysis]]
"""``analyze(texts, targets=None) -> list[Analysis]``, as ``NerModel.analyze``."""

PLACEHOLDER = " qqtargetqq "


def score_sentiment_file(path: Path, analyze: Analyzer, batch_size: int = 256) -> dict[str, float]:
    """The measures of one sentiment file (format detected), in % rounded to 2 decimals."""
    kind = file_format(path)
    if kind not in ("post", "target"):
        raise ValueError(f"{path} is not in a sentiment format")
    records = [clean(r) for r in read_sentiment(path)]
    results: list[Analysis] = []
    for k in range(0, len(records), batch_size):
        chunk = records[k : k + batch_size]
        texts = [r.text for r in chunk]
        if kind == "post":
            results += analyze(texts)
        else:
            results += analyze(texts, [[(s, e) for s, e, _ in r.targets] for r in chunk])
    if kind == "post":
        gold = [SENTIMENT_LABELS.index(str(r.sentiment)) for r in records]
        predicted = [SENTIMENT_LABELS.index(a.sentiment.label) for a in results]
        scores = post_scores(gold, predicted)
    else:
        gold = [SENTIMENT_LABELS.index(label) for r in records for _, _, label in r.targets]
        predicted = [SENTIMENT_LABELS.index(t.label) for a in results for t in a.targets]
        scores = target_scores(gold, predicted)
    return {k: round(100 * v, 2) for k, v in scores.items()}


def _with_placeholder(record: SentimentRecord) -> str:
    text, cursor, pieces = record.text, 0, []
    for start, end, _ in sorted(record.targets):
        pieces += [text[cursor:start], PLACEHOLDER]
        cursor = end
    return "".join([*pieces, text[cursor:]])


def tfidf_analyzer(sentiment_data: Path, kind: str) -> Analyzer:
    """The baseline for ``kind`` (``post`` or ``target``), trained on its corpus' train split.

    Returns an ``analyze``-shaped callable whose ``Analysis`` values carry the baseline's post sentiment
    (``kind`` post) or target sentiments (``kind`` target); entities are always empty.
    """
    import numpy as np
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from stream_ner.model.sentiment import to_sentiment

    corpus = POST_CORPUS if kind == "post" else TARGET_CORPUS
    train = [clean(r) for r in read_sentiment(sentiment_data / corpus / "train.jsonl")]
    if kind == "post":
        texts = [r.text for r in train]
        labels = [SENTIMENT_LABELS.index(str(r.sentiment)) for r in train]
    else:
        texts = [_with_placeholder(r) for r in train]
        labels = [SENTIMENT_LABELS.index(r.targets[0][2]) for r in train]
    words = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, lowercase=True)
    chars = TfidfVectorizer(
        analyzer="char_wb", ngram_range=(2, 5), min_df=3, sublinear_tf=True, max_features=200000
    )
    features = hstack([words.fit_transform(texts), chars.fit_transform(texts)]).tocsr()
    classifier = LogisticRegression(
        C=2.0, max_iter=2000, class_weight="balanced" if kind == "post" else None
    ).fit(features, labels)

    def logits(texts: Sequence[str]) -> Any:
        x = hstack([words.transform(texts), chars.transform(texts)]).tocsr()
        return np.log(np.clip(classifier.predict_proba(x), 1e-9, 1.0))

    def analyze(texts: list[str], targets: list[list[tuple[int, int]]] | None = None) -> list[Analysis]:
        post = logits(texts)
        out = []
        for i, text in enumerate(texts):
            asked = []
            for start, end in targets[i] if targets is not None else []:
                record = SentimentRecord("", text, None, ((start, end, "neutral"),), "")
                asked.append(to_sentiment(logits([_with_placeholder(record)])[0]))
            out.append(Analysis([], to_sentiment(post[i]), asked))
        return out

    return analyze


def print_sentiment(title: str, columns: dict[str, dict[str, float]]) -> None:
    """One table: a row per measure, a column per system (``{system: {measure: %}}``)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("measure")
    for system in columns:
        table.add_column(system, justify="right")
    measures = list(next(iter(columns.values()), {}))
    for measure in measures:
        table.add_row(measure, *(f"{columns[s].get(measure, float('nan')):.1f}" for s in columns))
    Console().print(table)
