"""``NerModel.analyze``: sentiment decoding, the targets API, windows and batches, old graphs.

A lookup graph built here gives each token id fixed tag logits (``test_runtime.TABLE``) and fixed
target-sentiment logits (``SENTIMENT``); its post logits are the attention-masked mean of the tokens'
rows, specials included, as the trained head pools. Expected sentiments are then computed exactly from
the tokenizer. The shipped model is held to what must hold for any trained model.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer

from stream_ner.errors import ModelError
from stream_ner.messages import EntityMention
from stream_ner.model import artifact
from stream_ner.model.decode import softmax
from stream_ner.model.entity import Entity, Sentiment
from stream_ner.model.runtime import NerModel
from stream_ner.model.sentiment import (
    UNIFORM,
    Analysis,
    SentimentInputs,
    post_sentiment,
    sentiments,
    span_sentiment,
    span_tokens,
    to_sentiment,
)
from stream_ner.model.windows import WindowTokenizer, plan_windows
from tests.unit.test_runtime import LABELS, TABLE, build_lookup_artifact
from tests.unit.test_windows import tokenizer_path

SENTIMENT = {
    "good": [0.0, 0.0, 4.0],
    "bad": [4.0, 0.0, 0.0],
    "nike": [3.0, 0.0, 0.0],
    "apple": [0.0, 0.0, 3.0],
}
NEUTRAL = [0.0, 1.0, 0.0]


def build_sentiment_artifact(root: Path, *, max_length: int = 128, stride: int = 32) -> Path:
    """An artifact with ``logits``, ``post_sentiment`` and ``target_sentiment`` from lookup tables."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(tokenizer_path(), root / artifact.TOKENIZER)
    tok = Tokenizer.from_file(str(root / artifact.TOKENIZER))
    tags = np.zeros((tok.get_vocab_size(), len(LABELS)), dtype=np.float32)
    tags[:, 0] = 6.0
    for token, label in TABLE.items():
        tags[tok.token_to_id(token)] = 0.0
        tags[tok.token_to_id(token), LABELS.index(label)] = 6.0
    rows = np.tile(np.asarray(NEUTRAL, np.float32), (tok.get_vocab_size(), 1))
    for token, values in SENTIMENT.items():
        rows[tok.token_to_id(token)] = values
    names = ["input_ids", "attention_mask", "token_type_ids", "shape_ids"]
    inputs = [
        helper.make_tensor_value_info(n, TensorProto.INT64, ["batch_size", "sequence_length"]) for n in names
    ]
    nodes = [
        helper.make_node("Gather", ["tags", "input_ids"], ["tag_rows"], axis=0),
        helper.make_node("Add", ["token_type_ids", "shape_ids"], ["unused_sum"]),
        helper.make_node("Cast", ["unused_sum"], ["unused_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["unused_f", "zero"], ["unused_zero"]),
        helper.make_node("Unsqueeze", ["unused_zero", "axis2"], ["unused3"]),
        helper.make_node("Add", ["tag_rows", "unused3"], ["logits"]),
        helper.make_node("Gather", ["sentiment", "input_ids"], ["target_sentiment"], axis=0),
        helper.make_node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask_f", "axis2"], ["mask3"]),
        helper.make_node("Mul", ["target_sentiment", "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axis1"], ["summed"], keepdims=0),
        helper.make_node("ReduceSum", ["mask3", "axis1"], ["count"], keepdims=0),
        helper.make_node("Div", ["summed", "count"], ["post_sentiment"]),
    ]
    outputs = [
        helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch_size", "sequence_length", 9]),
        helper.make_tensor_value_info("post_sentiment", TensorProto.FLOAT, ["batch_size", 3]),
        helper.make_tensor_value_info(
            "target_sentiment", TensorProto.FLOAT, ["batch_size", "sequence_length", 3]
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "sentiment-lookup",
        inputs,
        outputs,
        initializer=[
            numpy_helper.from_array(tags, "tags"),
            numpy_helper.from_array(rows, "sentiment"),
            numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
            numpy_helper.from_array(np.array([2], dtype=np.int64), "axis2"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, root / artifact.graph_name("fp32"))
    config = {
        "id2label": LABELS,
        "scheme": "BIO",
        "max_length": max_length,
        "stride": stride,
        "aggregation": "first",
        "inputs": {},
        "sentiment_labels": ["negative", "neutral", "positive"],
    }
    (root / artifact.NER_CONFIG).write_text(json.dumps(config))
    files = {p.name: artifact.sha256(p) for p in sorted(root.iterdir())}
    (root / artifact.MANIFEST).write_text(
        json.dumps({"name": "sentiment-lookup", "version": "1", "files": files})
    )
    return root


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> NerModel:
    return NerModel.load(build_sentiment_artifact(tmp_path_factory.mktemp("sentiment")))


@pytest.fixture(scope="module")
def tok() -> WindowTokenizer:
    return WindowTokenizer.from_file(tokenizer_path(), with_shapes=True)


def row(tok: WindowTokenizer, token_id: int) -> np.ndarray:
    token = tok.tokenizer.id_to_token(token_id)
    return np.asarray(SENTIMENT.get(token, NEUTRAL), np.float32)


def expected_post(tok: WindowTokenizer, text: str, max_length: int = 128, stride: int = 32) -> Sentiment:
    """Mean over windows of each window's masked mean of token rows (specials included)."""
    (enc,) = tok.encode([text])
    windows = plan_windows([len(enc)], max_length - tok.specials, stride)
    per_window = []
    for w in windows:
        ids = [*tok.prefix_ids, *enc.ids[w.start : w.end], *tok.suffix_ids]
        per_window.append(np.mean([row(tok, i) for i in ids], axis=0))
    return post_sentiment(per_window)


def expected_span(tok: WindowTokenizer, text: str, start: int, end: int) -> Sentiment:
    (enc,) = tok.encode([text])
    tokens = span_tokens(enc.offsets, start, end)
    return to_sentiment(np.mean([row(tok, int(enc.ids[t])) for t in tokens], axis=0))


def close(a: Sentiment, b: Sentiment) -> bool:
    return a.label == b.label and np.allclose(a.probs, b.probs, atol=1e-6) and abs(a.score - b.score) < 1e-6


def test_head_decoding_of_one_logit_vector() -> None:
    s = to_sentiment(np.array([0.0, 0.0, 3.0]))
    probs = softmax(np.array([[0.0, 0.0, 3.0]]))[0]
    assert s.label == "positive" and np.allclose(s.probs, probs)
    assert abs(s.score - (probs[2] - probs[0])) < 1e-9 and -1 <= s.score <= 1
    assert abs(sum(s.probs) - 1) < 1e-6
    assert to_sentiment(np.array([5.0, 0.0, 0.0])).label == "negative"
    assert to_sentiment(np.array([0.0, 5.0, 0.0])).label == "neutral"
    mean = post_sentiment([np.array([2.0, 0.0, 0.0]), np.array([0.0, 0.0, 4.0])])
    assert close(mean, to_sentiment(np.array([1.0, 0.0, 2.0])))
    assert post_sentiment([]) == UNIFORM


def test_many_texts_at_once_get_exactly_the_sentiments_of_one_text_at_a_time() -> None:
    rng = np.random.default_rng(5)
    texts = []
    for windows, tokens in [(1, 6), (0, 0), (3, 20), (1, 1), (2, 9)]:
        offsets = np.array([[2 * i, 2 * i + 1] for i in range(tokens)], dtype=np.int64).reshape(-1, 2)
        target = rng.normal(size=(tokens, 3)).astype(np.float32) if windows else None
        # spans over one token, over several, over no token (a gap between tokens) and over all
        spans = [(0, 1), (1, 2), (0, 2 * tokens + 1), (2, 5)] if tokens else [(0, 1)]
        post = [rng.normal(size=3).astype(np.float32) for _ in range(windows)]
        texts.append(SentimentInputs(post, target, offsets, spans))
    # offsets that do not run forward (measured token by token) and a text without spans
    backward = np.array([[4, 5], [0, 1], [2, 3]], dtype=np.int64)
    target = rng.normal(size=(3, 3)).astype(np.float32)
    texts.append(SentimentInputs([target[0]], target, backward, [(0, 5), (1, 2), (4, 5)]))
    texts.append(SentimentInputs([target[1]], target, backward, []))

    got = sentiments(texts)

    assert len(got) == len(texts)
    for text, (post, spans) in zip(texts, got, strict=True):
        assert post == post_sentiment(text.post_windows)  # exact, not approximate
        if text.target_logits is None:
            assert spans == [UNIFORM] * len(text.spans)
        else:
            assert spans == [
                span_sentiment(text.target_logits, text.offsets, s, e, post) for s, e in text.spans
            ]
            assert len(text.spans) < 2 or spans[1] is post  # (1, 2) is a gap between tokens
    assert sentiments([]) == []


def test_entities_and_post_sentiment_are_decoded_exactly(model: NerModel, tok: WindowTokenizer) -> None:
    text = "Apple is good but Nike is bad"
    (result,) = model.analyze([text])
    assert isinstance(result, Analysis) and result.targets == []
    assert [(e.text, e.label) for e in result.entities] == [("Apple", "ORG"), ("Nike", "ORG")]
    apple, nike = result.entities
    assert apple.sentiment is not None and nike.sentiment is not None
    assert close(apple.sentiment, to_sentiment(np.array(SENTIMENT["apple"])))
    assert close(nike.sentiment, to_sentiment(np.array(SENTIMENT["nike"])))
    assert close(result.sentiment, expected_post(tok, text))


def test_entities_are_predicts_plus_sentiment(model: NerModel) -> None:
    texts = ["Tim Cook loves the iPhone in Paris", "", "nothing", "@nike bad bad"]
    for analysis, found in zip(model.analyze(texts), model.predict(texts), strict=True):
        assert [Entity(e.start, e.end, e.label, e.score, e.text) for e in analysis.entities] == found
        assert all(e.sentiment is None for e in found)
        assert all(e.sentiment is not None for e in analysis.entities)


def test_targets_at_the_end_overlapping_and_empty(model: NerModel, tok: WindowTokenizer) -> None:
    text = "so good, really bad"
    end = len(text)
    spans = [(end - 3, end), (3, 7), (3, end), (0, 2), (3, 5)]
    (result,) = model.analyze([text], [spans])
    assert len(result.targets) == len(spans)
    for (start, stop), got in zip(spans, result.targets, strict=True):
        assert close(got, expected_span(tok, text, start, stop)), (start, stop)
    assert result.targets[0].label == "negative" and result.targets[1].label == "positive"
    (none,) = model.analyze([text], [[]])
    assert none.targets == [] and close(none.sentiment, result.sentiment)
    assert model.analyze([], []) == [] and model.analyze([]) == []


def test_a_span_over_whitespace_only_takes_the_post_sentiment(model: NerModel) -> None:
    (result,) = model.analyze(["good   bad"], [[(5, 6)]])
    assert result.targets == [result.sentiment]


@pytest.mark.parametrize("span", [(-1, 2), (3, 12), (5, 5), (6, 4), (11, 11)])
def test_spans_outside_the_text_are_value_errors_naming_index_and_span(model: NerModel, span: tuple) -> None:
    with pytest.raises(ValueError, match=rf"text 1: target span \({span[0]}, {span[1]}\)"):
        model.analyze(["fine", "good or bad"], [[], [span]])


def test_targets_need_one_list_per_text(model: NerModel) -> None:
    with pytest.raises(ValueError, match="2 texts"):
        model.analyze(["a", "b"], [[(0, 1)]])


def test_long_posts_average_their_windows(tmp_path: Path, tok: WindowTokenizer) -> None:
    small = NerModel.load(build_sentiment_artifact(tmp_path / "small", max_length=16, stride=4))
    text = " ".join(["good apple"] * 10 + ["bad nike news today"] * 6)
    (enc,) = tok.encode([text])
    assert len(plan_windows([len(enc)], 16 - tok.specials, 4)) >= 3
    end = len(text)
    (result,) = small.analyze([text], [[(0, 4), (end - 10, end)]])
    assert close(result.sentiment, expected_post(tok, text, 16, 4))
    assert close(result.targets[0], expected_span(tok, text, 0, 4))
    assert close(result.targets[1], expected_span(tok, text, end - 10, end))


def test_batching_does_not_change_sentiments(model: NerModel) -> None:
    texts = ["Apple is good", "bad bad Nike " * 40, "", "Paris", "good " * 300, "meh"]
    targets = [[(0, 5)], [(0, 3), (8, 12)], [], [(0, 5)], [(0, 4)], [(0, 3)]]
    together = model.analyze(texts, targets)
    alone = [model.analyze([t], [s])[0] for t, s in zip(texts, targets, strict=True)]
    assert together == alone


def test_a_text_without_tokens_is_uniform(model: NerModel) -> None:
    (result,) = model.analyze(["   "])
    assert result.sentiment == UNIFORM and result.entities == []


def test_old_graphs_without_sentiment_outputs_still_predict(tmp_path: Path) -> None:
    old = NerModel.load(build_lookup_artifact(tmp_path / "old"))
    assert not old.has_sentiment
    assert [(e.text, e.label) for e in old.predict(["Apple in Paris"])[0]] == [
        ("Apple", "ORG"),
        ("Paris", "LOC"),
    ]
    with pytest.raises(ModelError, match="no sentiment outputs"):
        old.analyze(["Apple in Paris"])


def test_a_graph_with_other_sentiment_labels_is_refused(tmp_path: Path) -> None:
    root = build_sentiment_artifact(tmp_path / "relabelled")
    config = json.loads((root / artifact.NER_CONFIG).read_text())
    config["sentiment_labels"] = ["positive", "neutral", "negative"]
    (root / artifact.NER_CONFIG).write_text(json.dumps(config))
    with pytest.raises(ModelError, match="sentiment_labels"):
        NerModel.load(root, verify=False)


def test_entities_with_sentiment_serialise_it_and_those_without_as_before() -> None:
    plain = Entity(0, 5, "ORG", 0.9, "Apple")
    rich = Entity(0, 5, "ORG", 0.9, "Apple", Sentiment("positive", 0.5, (0.1, 0.3, 0.6)))
    assert plain.sentiment is None
    before = EntityMention.of(plain)
    assert (before.sentiment, before.sentiment_label) == (None, None)
    assert EntityMention.of(rich) == before.model_copy(
        update={"sentiment": 0.5, "sentiment_label": "positive"}
    )


@pytest.fixture(scope="module")
def shipped() -> NerModel:
    model = NerModel.load()
    if not model.has_sentiment:
        pytest.skip("the shipped model has no sentiment heads yet")
    return model


def test_shipped_model_analyzes_consistently(shipped: NerModel) -> None:
    texts = [
        "I love my new iPhone, Apple nailed it",
        "Worst service ever @Delta, never again",
        "Switched from Verizon to T-Mobile, best decision ever",
        "",
        "The meeting is at 3pm in London",
    ]
    targets = [[(14, 20), (22, 27)], [(20, 26)], [(14, 21), (25, 33)], [], [(25, 31)]]
    together = shipped.analyze(texts, targets)
    alone = [shipped.analyze([t], [s])[0] for t, s in zip(texts, targets, strict=True)]
    for a, b in zip(together, alone, strict=True):
        pairs = [(a.sentiment, b.sentiment), *zip(a.targets, b.targets, strict=True)]
        pairs += [(x.sentiment, y.sentiment) for x, y in zip(a.entities, b.entities, strict=True)]
        assert all(
            x and y and x.label == y.label and np.allclose(x.probs, y.probs, atol=1e-6) for x, y in pairs
        )
    for analysis, found in zip(together, shipped.predict(texts), strict=True):
        assert [Entity(e.start, e.end, e.label, e.score, e.text) for e in analysis.entities] == found
        s = analysis.sentiment
        assert s.label in ("negative", "neutral", "positive") and -1 <= s.score <= 1
        assert abs(sum(s.probs) - 1) < 1e-5
    assert together[0].sentiment.label == "positive" and together[1].sentiment.label == "negative"
