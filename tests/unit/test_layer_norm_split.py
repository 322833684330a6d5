"""``SkipLayerNormalization`` split for CPUs: the same function, and a CPU session that keeps it split.

The split graph must compute what the fused node computes (with and without bias, beta and the sum
output); onnxruntime fuses the split form again unless told not to, so the runtime's CPU session must
not, while a plain session does (the control, which shows the check can fail).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from stream_ner.model import artifact, providers
from stream_ner.model.runtime import DEFAULT_PATH
from stream_ner.offline.layer_norm import FUSED, split_graph_file, split_skip_layer_norm

HIDDEN = 16


def _fused_model(*, bias: bool, beta: bool, sum_output: bool, stats_output: bool = False) -> onnx.ModelProto:
    rng = np.random.default_rng(7)
    weights = {
        "gamma": rng.normal(1.0, 0.3, HIDDEN),
        "beta": rng.normal(0.0, 0.3, HIDDEN),
        "bias": rng.normal(0.0, 0.5, HIDDEN),
    }
    used = ["gamma", *(["beta"] if beta else []), *(["bias"] if bias else [])]
    inputs = ["x", "skip", "gamma", "beta" if beta else "", "bias" if bias else ""]
    outputs = ["y", "mean" if stats_output else "", "", "sum" if sum_output else ""]
    node = helper.make_node(FUSED, inputs, outputs, name="sln", domain="com.microsoft", epsilon=1e-5)
    tensor = [None, None, HIDDEN]
    graph_outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, tensor)]
    if sum_output:
        graph_outputs.append(helper.make_tensor_value_info("sum", TensorProto.FLOAT, tensor))
    if stats_output:
        graph_outputs.append(helper.make_tensor_value_info("mean", TensorProto.FLOAT, None))
    graph = helper.make_graph(
        [node],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, tensor),
            helper.make_tensor_value_info("skip", TensorProto.FLOAT, tensor),
        ],
        graph_outputs,
        [numpy_helper.from_array(weights[n].astype(np.float32), n) for n in used],
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    )


def _run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


@pytest.mark.parametrize(
    ("bias", "beta", "sum_output"),
    [
        (True, True, False),
        (False, True, False),
        (True, False, False),
        (True, True, True),
        (False, False, True),
    ],
)
def test_the_split_graph_computes_what_the_fused_node_does(bias: bool, beta: bool, sum_output: bool) -> None:
    rng = np.random.default_rng(1)
    feeds = {name: rng.normal(0, 2, (3, 5, HIDDEN)).astype(np.float32) for name in ("x", "skip")}
    model = _fused_model(bias=bias, beta=beta, sum_output=sum_output)
    expected = _run(model, feeds)
    split = onnx.ModelProto()
    split.CopyFrom(model)
    assert split_skip_layer_norm(split) == 1
    onnx.checker.check_model(split)
    ops = [node.op_type for node in split.graph.node]
    assert FUSED not in ops and ops.count("LayerNormalization") == 1
    assert ops.count("Add") == (2 if bias else 1)
    got = _run(split, feeds)
    assert len(got) == len(expected)
    for value, reference in zip(got, expected, strict=True):
        np.testing.assert_allclose(value, reference, rtol=1e-5, atol=1e-5)
    assert split_skip_layer_norm(split) == 0  # nothing left to split


def test_a_node_whose_statistics_are_used_stays_fused() -> None:
    model = _fused_model(bias=True, beta=True, sum_output=False, stats_output=True)
    assert split_skip_layer_norm(model) == 0
    assert [node.op_type for node in model.graph.node] == [FUSED]


def test_an_opset_without_layer_normalization_is_left_alone(tmp_path: Path) -> None:
    model = _fused_model(bias=True, beta=True, sum_output=False)
    model.opset_import[0].version = 16
    path = tmp_path / "old.onnx"
    onnx.save(model, str(path))
    before = path.read_bytes()
    assert split_graph_file(path) == 0
    assert path.read_bytes() == before


def _optimized_ops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, graph: Path, *, runtime: bool
) -> list[str]:
    """The operators of ``graph`` after onnxruntime optimised it for a CPU session."""
    optimized = tmp_path / f"optimized-{runtime}.onnx"
    made = providers.session_options

    def saving(intra_op_threads: int = 0) -> ort.SessionOptions:
        options = made(intra_op_threads)
        options.optimized_model_filepath = str(optimized)
        return options

    if runtime:
        monkeypatch.setattr(providers, "session_options", saving)
        providers.create_session(graph, use_cuda=False, require_gpu=False, intra_op_threads=1)
    else:
        ort.InferenceSession(str(graph), saving(1), providers=[providers.CPU])
    return [node.op_type for node in onnx.load(str(optimized)).graph.node]


@pytest.mark.parametrize("precision", ["int8", "fp32"])
def test_the_shipped_cpu_graphs_have_it_split(precision: str) -> None:
    graph = onnx.load(str(DEFAULT_PATH / artifact.graph_name(precision))).graph
    ops = [node.op_type for node in graph.node]
    assert FUSED not in ops and ops.count("LayerNormalization") == 11  # 2 per encoder layer, embeddings


def test_the_runtime_s_cpu_session_keeps_it_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    graph = DEFAULT_PATH / artifact.graph_name("int8")
    assert FUSED not in _optimized_ops(tmp_path, monkeypatch, graph, runtime=True)
    # the control: a session with onnxruntime's defaults fuses them again
    assert FUSED in _optimized_ops(tmp_path, monkeypatch, graph, runtime=False)
