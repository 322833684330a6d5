"""Export parity: ONNX graphs written by ``model export`` against the PyTorch model they come from.

Small random BERT token classifiers (2 layers, hidden 64) on the real all-MiniLM-L6-v2 tokenizer: one
plain Hugging Face checkpoint, one with the shape embedding and one with the shape embedding and the
sentiment heads (outputs ``post_sentiment`` and ``target_sentiment`` too, each held to the same
tolerance, and ``NerModel.analyze`` runs on them). Each is exported to fp32, int8 and fp16;
fp32 logits must match PyTorch within the export tolerance on texts the probes never saw, int8 must agree
with fp32 on most token labels with activation scales fixed at export, and the artifact must load and run
in the runtime ``NerModel``. An artifact given as the source is quantized again from its fp32 graph.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from stream_ner.errors import ModelError
from stream_ner.model import artifact
from stream_ner.model.runtime import NerModel
from stream_ner.model.windows import WindowTokenizer, plan_windows
from stream_ner.offline.data import ID2LABEL
from stream_ner.offline.export import DEFAULT_TOLERANCE, export
from stream_ner.offline.modeling import SentimentHeads, ShapeTokenClassifier, load_classifier
from tests.unit.test_windows import tokenizer_path

TEXTS = [
    "Booked a table at Nando's in Leeds with @sarah_k 🍗🔥 #friday",
    "ok so the new Pixel 9 camera is unreal https://t.co/AbC123 😳",
    "БАРСЕЛОНА 2:1 — what a night for Lewandowski!!!",
    "  spaces\u00a0and\ttabs\n\nand a zero\u200bwidth joiner  ",
    "yo",
    "Angela Merkel met Emmanuel Macron in Paris to talk about Airbus " * 3,
]


def _checkpoint(tmp: Path, *, shapes: bool, sentiment: bool = False) -> Path:
    from transformers import BertConfig, BertForTokenClassification

    torch.manual_seed(3)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=256,
        num_labels=len(ID2LABEL),
        id2label=dict(enumerate(ID2LABEL)),
        label2id={label: i for i, label in enumerate(ID2LABEL)},
    )
    model = BertForTokenClassification(config)
    with torch.no_grad():  # a confident head, so labels are decided by more than quantization noise
        model.classifier.weight.mul_(8.0)
    shape = None
    if shapes:
        shape = torch.nn.Embedding(7, 64)
        torch.nn.init.normal_(shape.weight, std=0.5)
    heads = None
    if sentiment:
        heads = SentimentHeads(64, 0.0)
        with torch.no_grad():
            for layer in (heads.post, heads.target_token):
                layer.weight.mul_(8.0)
    src = tmp / ("sentiment" if sentiment else "shaped" if shapes else "plain")
    ShapeTokenClassifier(model, shape, use_token_types=True, sentiment=heads).save(src)
    shutil.copyfile(tokenizer_path(), src / artifact.TOKENIZER)
    return src


@pytest.fixture(scope="module", params=["plain", "shapes", "sentiment"])
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("export")
    src = _checkpoint(tmp, shapes=request.param != "plain", sentiment=request.param == "sentiment")
    out = tmp / "artifact"
    export(src, out, precisions=("fp32", "int8", "fp16"), max_length=64, stride=16)
    return src, out


def _feeds(out: Path, names: list[str]) -> dict[str, np.ndarray]:
    tok = WindowTokenizer.from_file(out / artifact.TOKENIZER, with_shapes="shape_ids" in names)
    encoded = tok.encode(TEXTS)
    windows = [w for w in plan_windows([len(e) for e in encoded], 62, 0) if w.start == 0]
    batch = next(tok.make_batches(encoded, windows, max_batch_size=64, max_batch_tokens=1 << 20))
    return {n: batch.arrays[n] for n in names}


def _onnx_logits(graph: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    return session.run(["logits"], feeds)[0]


def test_fp32_graph_matches_pytorch_within_tolerance(exported: tuple[Path, Path]) -> None:
    src, out = exported
    classifier = load_classifier(src)
    feeds = _feeds(out, classifier.input_names)
    with torch.no_grad():
        outputs = classifier(*(torch.from_numpy(feeds[n]) for n in classifier.input_names))
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    session = ort.InferenceSession(str(out / "model.fp32.onnx"), providers=["CPUExecutionProvider"])
    valid = feeds["attention_mask"].astype(bool)
    for name, expected, got in zip(
        classifier.output_names, outputs, session.run(classifier.output_names, feeds), strict=True
    ):
        expected = expected.numpy()
        assert got.shape == expected.shape, name
        mask = valid if expected.ndim == 3 else np.ones(len(expected), dtype=bool)
        assert np.abs(got - expected)[mask].max() < DEFAULT_TOLERANCE, name


def test_the_cpu_graphs_have_layer_norm_split_and_the_cuda_graph_has_it_fused(
    exported: tuple[Path, Path],
) -> None:
    _, out = exported
    ops = {
        p: [n.op_type for n in onnx.load(str(out / artifact.graph_name(p))).graph.node]
        for p in artifact.PRECISIONS
    }
    layers = 2  # two SkipLayerNormalization per encoder layer once fused
    for precision in ("fp32", "int8"):
        assert "SkipLayerNormalization" not in ops[precision], precision
        # two per encoder layer and the embeddings' ((Q)EmbedLayerNormalization when fused)
        norms = sum(op.endswith("LayerNormalization") for op in ops[precision])
        assert norms == 2 * layers + 1, precision
    assert ops["fp16"].count("SkipLayerNormalization") == 2 * layers


def test_int8_and_fp16_agree_with_fp32_on_token_labels(exported: tuple[Path, Path]) -> None:
    src, out = exported
    names = load_classifier(src).input_names
    feeds = _feeds(out, names)
    valid = feeds["attention_mask"].astype(bool)
    fp32 = _onnx_logits(out / "model.fp32.onnx", feeds).argmax(-1)[valid]
    int8 = _onnx_logits(out / "model.int8.onnx", feeds).argmax(-1)[valid]
    fp16 = _onnx_logits(out / "model.fp16.onnx", feeds).argmax(-1)[valid]
    assert (int8 == fp32).mean() >= 0.9
    assert (fp16 == fp32).mean() >= 0.99
    assert (out / "model.int8.onnx").stat().st_size < 0.4 * (out / "model.fp32.onnx").stat().st_size


def test_graph_has_dynamic_axes_and_declared_inputs(exported: tuple[Path, Path]) -> None:
    src, out = exported
    session = ort.InferenceSession(str(out / "model.int8.onnx"), providers=["CPUExecutionProvider"])
    inputs = {i.name: i for i in session.get_inputs()}
    assert list(inputs) == load_classifier(src).input_names
    for node in inputs.values():
        assert node.type == "tensor(int64)"
        assert node.shape == ["batch_size", "sequence_length"]
    outputs = {o.name: o for o in session.get_outputs()}
    assert list(outputs) == load_classifier(src).output_names
    assert outputs["logits"].shape[:2] == ["batch_size", "sequence_length"]
    if "post_sentiment" in outputs:
        assert outputs["post_sentiment"].shape == ["batch_size", 3]
        assert outputs["target_sentiment"].shape == ["batch_size", "sequence_length", 3]


def test_manifest_lists_files_with_sha256_and_parity(exported: tuple[Path, Path]) -> None:
    _, out = exported
    manifest = json.loads((out / artifact.MANIFEST).read_text())
    config = json.loads((out / artifact.NER_CONFIG).read_text())
    assert config["id2label"] == list(ID2LABEL) and config["scheme"] == "BIO"
    assert config["max_length"] == 64 and config["stride"] == 16
    for name in (
        "model.fp32.onnx",
        "model.int8.onnx",
        "model.fp16.onnx",
        "tokenizer.json",
        "ner_config.json",
    ):
        assert manifest["files"][name] == artifact.sha256(out / name)
    assert manifest["opset"] >= 17
    assert manifest["parity"]["fp32_max_abs_diff_vs_torch"] < DEFAULT_TOLERANCE
    assert 0.9 <= manifest["parity"]["int8_label_agreement_vs_fp32"] <= 1.0


def test_runtime_loads_the_export_and_offsets_point_into_the_text(exported: tuple[Path, Path]) -> None:
    _, out = exported
    for precision in ("fp32", "int8"):
        model = NerModel.load(out, precision=precision)
        results = model.predict(TEXTS)
        assert len(results) == len(TEXTS)
        assert sum(len(r) for r in results) > 0  # a confident random head tags something
        for text, entities in zip(TEXTS, results, strict=True):
            for e in entities:
                assert text[e.start : e.end] == e.text and e.text.strip() == e.text


def test_int8_scales_are_constants_of_the_graph(exported: tuple[Path, Path]) -> None:
    _, out = exported
    ops = {n.op_type for n in onnx.load(out / "model.int8.onnx").graph.node}
    assert "DynamicQuantizeLinear" not in ops
    assert {"QAttention", "QuantizeLinear", "DequantizeLinear"} <= ops


def test_an_artifact_is_quantized_again_from_its_fp32_graph(
    exported: tuple[Path, Path], tmp_path: Path
) -> None:
    _, out = exported
    again = tmp_path / "again"
    report = export(out, again, precisions=("fp32", "int8"))
    before = json.loads((out / artifact.MANIFEST).read_text())
    after = json.loads((again / artifact.MANIFEST).read_text())
    assert report.precisions == ["fp32", "int8"]
    assert after["files"]["model.fp32.onnx"] == before["files"]["model.fp32.onnx"]
    assert after["files"]["model.int8.onnx"] == artifact.sha256(again / "model.int8.onnx")
    assert after["parity"]["fp32_max_abs_diff_vs_torch"] == before["parity"]["fp32_max_abs_diff_vs_torch"]
    assert after["parity"]["int8_label_agreement_vs_fp32"] >= 0.9
    assert after["quantization"]["int8"]["calibration"]
    assert len(NerModel.load(again, precision="int8").predict(TEXTS[:2])) == 2


def _int8_weight_bounds(graph: Path) -> tuple[int, int]:
    """Lowest and highest value over the int8 weight tensors of a quantized graph."""
    tensors = [
        onnx.numpy_helper.to_array(i)
        for i in onnx.load(graph).graph.initializer
        if i.data_type == onnx.TensorProto.INT8
    ]
    return min(int(t.min()) for t in tensors if t.size), max(int(t.max()) for t in tensors if t.size)


def test_weights_are_7_bit_unless_8_are_asked_for(exported: tuple[Path, Path], tmp_path: Path) -> None:
    _, out = exported
    low, high = _int8_weight_bounds(out / "model.int8.onnx")
    # reduce_range: two u8 x s8 products sum to at most 2 * 255 * 64 = 32,640, within AVX2's int16
    assert -64 <= low and high <= 64
    full = tmp_path / "full"
    export(out, full, precisions=("fp32", "int8"), weight_bits=8)
    low, high = _int8_weight_bounds(full / "model.int8.onnx")
    assert low <= -100 or high >= 100
    manifest = json.loads((full / artifact.MANIFEST).read_text())
    assert "8-bit" in manifest["precisions"]["int8"]
    assert "8-bit" in manifest["quantization"]["int8"]["weights"]
    assert manifest["quantization"]["int8"]["weight_bits"] == 8  # what the runtime checks the CPU against


def test_the_int8_gelu_is_the_tanh_approximation_unless_the_exact_one_is_asked_for(
    exported: tuple[Path, Path], tmp_path: Path
) -> None:
    _, out = exported
    fp32_ops = [n.op_type for n in onnx.load(out / "model.fp32.onnx").graph.node]
    int8_ops = [n.op_type for n in onnx.load(out / "model.int8.onnx").graph.node]
    assert fp32_ops.count("BiasGelu") == 2  # one per layer, exact in fp32
    assert int8_ops.count("FastGelu") == 2 and "BiasGelu" not in int8_ops
    manifest = json.loads((out / artifact.MANIFEST).read_text())
    assert manifest["quantization"]["int8"]["gelu"] == "tanh approximation (FastGelu, 2 nodes)"
    assert "tanh-approximated GELU" in manifest["precisions"]["int8"]

    exact = tmp_path / "exact"
    export(out, exact, precisions=("fp32", "int8"), exact_gelu=True)
    exact_ops = [n.op_type for n in onnx.load(exact / "model.int8.onnx").graph.node]
    assert exact_ops.count("BiasGelu") == 2 and "FastGelu" not in exact_ops
    exact_manifest = json.loads((exact / artifact.MANIFEST).read_text())
    assert exact_manifest["quantization"]["int8"]["gelu"] == "exact"
    assert "exact GELU" in exact_manifest["precisions"]["int8"]
    # the two graphs differ only by the approximation: every token gets the same label
    feeds = _feeds(out, [i.name for i in onnx.load(out / "model.int8.onnx").graph.input])
    fast = _onnx_logits(out / "model.int8.onnx", feeds)
    slow = _onnx_logits(exact / "model.int8.onnx", feeds)
    assert 0 < np.abs(fast - slow).max() < 0.05
    assert (fast.argmax(-1) == slow.argmax(-1)).mean() > 0.99


def test_scores_of_a_graph_made_again_are_dropped(exported: tuple[Path, Path], tmp_path: Path) -> None:
    _, out = exported
    scored = tmp_path / "scored"
    shutil.copytree(out, scored)
    manifest = json.loads((scored / artifact.MANIFEST).read_text())
    scores = {"fp32": {"wnut17": {"micro": 1.0}}, "int8": {"wnut17": {"micro": 1.0}}}
    manifest["dev_metrics"] = manifest["dev_sentiment_metrics"] = scores
    (scored / artifact.MANIFEST).write_text(json.dumps(manifest))
    again = tmp_path / "again"
    export(scored, again, precisions=("fp32", "int8"))
    after = json.loads((again / artifact.MANIFEST).read_text())
    assert after["dev_metrics"] == after["dev_sentiment_metrics"] == {"fp32": scores["fp32"]}


def test_label_offsets_are_written_into_the_artifact_and_decoded_with(
    exported: tuple[Path, Path], tmp_path: Path
) -> None:
    src, out = exported
    shifted = tmp_path / "shifted"
    export(out, shifted, precisions=("fp32", "int8"), label_offsets={"PRODUCT": 50.0, "LOC": 0.0})
    config = json.loads((shifted / artifact.NER_CONFIG).read_text())
    assert config["label_offsets"] == {"PRODUCT": 50.0}  # zeros are not written
    model = NerModel.load(shifted, precision="fp32")  # the manifest's sha256 covers the new label map
    assert model.label_offsets == {"PRODUCT": 50.0}
    # an offset that outweighs every logit makes every word part of a PRODUCT, as decoded
    found = model.predict(["Acme sells phones"])[0]
    assert {e.label for e in found} == {"PRODUCT"}
    assert " ".join(e.text for e in found).split() == ["Acme", "sells", "phones"]
    assert "dev_metrics" not in json.loads((shifted / artifact.MANIFEST).read_text())
    cleared = tmp_path / "cleared"
    export(shifted, cleared, precisions=("fp32", "int8"), label_offsets={})
    assert "label_offsets" not in json.loads((cleared / artifact.NER_CONFIG).read_text())
    assert NerModel.load(cleared, precision="fp32").predict(["Acme sells phones"])[0] != found
    with pytest.raises(ModelError, match="unknown types \\['BRAND'\\]"):
        export(out, tmp_path / "bad", precisions=("fp32", "int8"), label_offsets={"BRAND": 1.0})
    with pytest.raises(ModelError, match="unknown types \\['BRAND'\\]"):
        export(src, tmp_path / "bad-checkpoint", precisions=("fp32", "int8"), label_offsets={"BRAND": 1.0})
    fresh = tmp_path / "from-checkpoint"
    export(src, fresh, precisions=("fp32",), max_length=64, stride=16, label_offsets={"PRODUCT": 2.0})
    assert json.loads((fresh / artifact.NER_CONFIG).read_text())["label_offsets"] == {"PRODUCT": 2.0}
    assert NerModel.load(fresh, precision="fp32").label_offsets == {"PRODUCT": 2.0}
    # refused before anything is written, from an artifact or from a checkpoint
    assert not (tmp_path / "bad").exists() and not (tmp_path / "bad-checkpoint").exists()


def test_sentiment_outputs_are_declared_and_analyzed(exported: tuple[Path, Path]) -> None:
    src, out = exported
    config = json.loads((out / artifact.NER_CONFIG).read_text())
    if load_classifier(src).sentiment is None:
        assert "sentiment_labels" not in config and not NerModel.load(out).has_sentiment
        return
    assert config["sentiment_labels"] == ["negative", "neutral", "positive"]
    manifest = json.loads((out / artifact.MANIFEST).read_text())
    assert manifest["outputs"] == ["logits", "post_sentiment", "target_sentiment"]
    assert manifest["name"] == src.name
    assert manifest["parity"]["fp32_post_sentiment_max_abs_diff_vs_torch"] < DEFAULT_TOLERANCE
    labels = {}
    for precision in ("fp32", "int8"):
        model = NerModel.load(out, precision=precision)
        results = model.analyze(TEXTS, [[(0, 2)]] * len(TEXTS))
        assert [len(r.targets) for r in results] == [1] * len(TEXTS)
        labels[precision] = [r.sentiment.label for r in results]
    assert sum(a == b for a, b in zip(labels["fp32"], labels["int8"], strict=True)) >= len(TEXTS) - 1


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_an_exported_graph_with_sentiment_heads_gives_the_same_sentiments_in_any_batch(
    exported: tuple[Path, Path], precision: str
) -> None:
    """The batch-independence property (``test_batch_independence``) on a freshly exported multi-task graph,
    static INT8 included: every post and entity sentiment is the same alone and in random batches."""
    import random

    from tests.unit.test_batch_independence import TEXTS as POSTS
    from tests.unit.test_batch_independence import _same, _sentiments

    src, out = exported
    model = NerModel.load(out, precision=precision, max_batch_size=64, max_padding=1.0)
    if load_classifier(src).sentiment is None:  # plain and shaped checkpoints: entities only, as above
        assert not model.has_sentiment
        return
    alone = [_sentiments(model, [text])[0] for text in POSTS]
    rng = random.Random(f"export-{precision}")
    for _ in range(4):
        picked = rng.choices(range(len(POSTS)), k=rng.randint(2, 64))
        together = _sentiments(model, [POSTS[i] for i in picked])
        differing = [i for i, found in zip(picked, together, strict=True) if not _same(found, alone[i])]
        assert not differing, f"{precision}: {POSTS[differing[0]][:80]!r} differs in a batch"
