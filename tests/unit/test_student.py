"""A smaller student: fewer layers or narrower feed-forward blocks, saved, loaded and rebuilt from graphs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stream_ner.errors import ConfigError, ModelError
from stream_ner.offline.base_encoder import default_base_encoder
from stream_ner.offline.data import ID2LABEL
from stream_ner.offline.modeling import keep_ffn_units, load_classifier, new_classifier
from stream_ner.offline.recover import checkpoint_from_artifact

DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "stream_ner" / "model" / "default"


def test_a_three_layer_student_keeps_evenly_spaced_pretrained_layers_and_round_trips(tmp_path: Path) -> None:
    encoder = default_base_encoder()
    full = new_classifier(encoder, list(ID2LABEL), with_shapes=True, sentiment=True)
    student = new_classifier(encoder, list(ID2LABEL), with_shapes=True, sentiment=True, layers=3)
    layers = student.model.base_model.encoder.layer
    assert len(layers) == 3 and student.model.config.num_hidden_layers == 3
    pretrained = full.model.base_model.encoder.layer
    for kept, index in zip(layers, (0, 2, 5), strict=True):
        assert torch.equal(kept.output.dense.weight, pretrained[index].output.dense.weight)

    student.save(tmp_path / "student")
    loaded = load_classifier(tmp_path / "student")
    assert len(loaded.model.base_model.encoder.layer) == 3
    ids = torch.tensor([[101, 7592, 2088, 102]])
    inputs = [ids, torch.ones_like(ids), torch.zeros_like(ids), torch.zeros_like(ids)]
    student.eval()
    with torch.no_grad():
        for before, after in zip(student(*inputs), loaded(*inputs), strict=True):
            assert torch.allclose(before, after, atol=1e-6)


def test_more_layers_than_the_encoder_has_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="cannot keep 7 of the encoder's 6 layers"):
        new_classifier(default_base_encoder(), list(ID2LABEL), with_shapes=False, layers=7)


def test_the_shipped_model_rebuilt_from_its_graph_computes_what_the_graph_computes(tmp_path: Path) -> None:
    import numpy as np
    import onnxruntime as ort

    from stream_ner.model.windows import WindowTokenizer
    from stream_ner.offline.export import probe_feeds

    # checkpoint_from_artifact raises unless its own probe passes; this checks independently, on
    # other texts, every output of the graph against the checkpoint's
    checkpoint = checkpoint_from_artifact(DEFAULT_MODEL, tmp_path / "teacher")
    teacher = load_classifier(checkpoint)
    assert teacher.output_names == ["logits", "post_sentiment", "target_sentiment"]
    tokenizer = WindowTokenizer.from_file(DEFAULT_MODEL / "tokenizer.json", with_shapes=True)
    feeds = probe_feeds(tokenizer, teacher.input_names, 128)
    session = ort.InferenceSession(str(DEFAULT_MODEL / "model.fp32.onnx"), providers=["CPUExecutionProvider"])
    expected = session.run(teacher.output_names, feeds)
    with torch.no_grad():
        got = teacher(*(torch.from_numpy(feeds[name]) for name in teacher.input_names))
    for output, want in zip(got, expected, strict=True):
        assert np.abs(output.numpy() - want).max() < 1e-3

    # a student on that checkpoint starts from the teacher's kept layers (first and last) and its heads
    student = new_classifier(checkpoint, list(ID2LABEL), with_shapes=True, sentiment=True, layers=2)
    kept = student.model.base_model.encoder.layer
    source = teacher.model.base_model.encoder.layer
    for layer, index in zip(kept, (0, len(source) - 1), strict=True):
        assert torch.equal(layer.attention.self.key.weight, source[index].attention.self.key.weight)
    assert torch.equal(student.model.classifier.weight, teacher.model.classifier.weight)
    assert student.shape_embedding is not None and teacher.shape_embedding is not None
    assert torch.equal(student.shape_embedding.weight, teacher.shape_embedding.weight)
    assert student.sentiment is not None and teacher.sentiment is not None
    assert torch.equal(student.sentiment.post.weight, teacher.sentiment.post.weight)


def test_a_graph_of_another_layout_is_refused(tmp_path: Path) -> None:
    import onnx

    broken = tmp_path / "artifact"
    broken.mkdir()
    for name in ("ner_config.json", "tokenizer.json", "manifest.json"):
        (broken / name).write_bytes((DEFAULT_MODEL / name).read_bytes())
    graph = onnx.load(str(DEFAULT_MODEL / "model.fp32.onnx"))
    for node in graph.graph.node:  # the attention blocks not fused: their weights are nowhere to be found
        if node.op_type == "Attention":
            node.name = f"Renamed_{node.name}"
    onnx.save(graph, str(broken / "model.fp32.onnx"))
    with pytest.raises(ModelError, match=r"does not hold .*attention\.self"):
        checkpoint_from_artifact(broken, tmp_path / "out")


def _dead_units(student: torch.nn.Module, alive: int) -> None:
    """Zero the output columns of every feed-forward unit past the first ``alive`` of each layer."""
    with torch.no_grad():
        for layer in student.model.base_model.encoder.layer:
            layer.output.dense.weight[:, alive:] = 0.0


def test_a_narrower_student_drops_the_least_important_units_and_computes_the_same(tmp_path: Path) -> None:
    student = new_classifier(
        default_base_encoder(), list(ID2LABEL), with_shapes=True, sentiment=True, layers=2
    )
    _dead_units(student, 100)  # 100 live units per layer: the other 1436 contribute nothing
    ids = torch.tensor([[101, 7592, 2088, 2003, 2307, 102]])
    inputs = [ids, torch.ones_like(ids), torch.zeros_like(ids), torch.zeros_like(ids)]
    student.eval()
    with torch.no_grad():
        before = student(*inputs)
    first = student.model.base_model.encoder.layer[0].intermediate.dense.weight[:100].clone()

    keep_ffn_units(student.model, 100)
    assert student.model.config.intermediate_size == 100
    for layer in student.model.base_model.encoder.layer:
        assert layer.intermediate.dense.weight.shape == (100, 384)
        assert layer.output.dense.weight.shape == (384, 100)
    # the live units are kept, in their order
    assert torch.equal(student.model.base_model.encoder.layer[0].intermediate.dense.weight, first)
    with torch.no_grad():
        after = student(*inputs)
    for want, got in zip(before, after, strict=True):
        assert torch.allclose(want, got, atol=1e-5)

    student.save(tmp_path / "narrow")
    loaded = load_classifier(tmp_path / "narrow")
    assert loaded.model.config.intermediate_size == 100
    with torch.no_grad():
        for want, got in zip(after, loaded(*inputs), strict=True):
            assert torch.allclose(want, got, atol=1e-6)


def test_more_units_than_the_encoder_has_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="cannot keep 2000 of the encoder's 1536 feed-forward units"):
        new_classifier(default_base_encoder(), list(ID2LABEL), with_shapes=False, layers=1, ffn_width=2000)


def test_a_narrow_artifact_is_rebuilt_at_its_width(tmp_path: Path) -> None:
    from stream_ner.offline.export import export

    student = new_classifier(
        default_base_encoder(), list(ID2LABEL), with_shapes=True, sentiment=True, layers=2, ffn_width=64
    )
    student.save(tmp_path / "narrow")
    (tmp_path / "narrow" / "tokenizer.json").write_bytes((DEFAULT_MODEL / "tokenizer.json").read_bytes())
    export(tmp_path / "narrow", tmp_path / "artifact", precisions=("fp32",))

    # checkpoint_from_artifact raises unless the rebuilt checkpoint computes what the graph computes
    rebuilt = load_classifier(checkpoint_from_artifact(tmp_path / "artifact", tmp_path / "rebuilt"))
    assert rebuilt.model.config.intermediate_size == 64
    assert len(rebuilt.model.base_model.encoder.layer) == 2
    assert torch.equal(
        rebuilt.model.base_model.encoder.layer[1].output.dense.weight,
        student.model.base_model.encoder.layer[1].output.dense.weight,
    )
