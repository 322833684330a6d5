"""Split onnxruntime's fused ``SkipLayerNormalization`` back into two ``Add`` and one ``LayerNormalization``.

Why: on CPUs onnxruntime's ``SkipLayerNormalization`` kernel is far slower than the standard
``LayerNormalization`` after two ``Add``: it took 26% of the shipped INT8 graph's time in a one-thread
profile, about as much as all five ``QAttention``, and the graph with it split ran ``NerModel.analyze``
1.28x as fast on one thread (model card, "The graphs' layer norms"). The transformer fusions at export
still find the attention and GELU blocks with it in place; this undoes only the one fusion, on the graphs
CPUs run (fp32 and INT8). The runtime keeps onnxruntime from fusing it again in a CPU session
(``stream_ner.model.providers``). The fp16 graph is for CUDA, where the fused kernel is the fast one:
``fuse_skip_layer_norm`` puts it back there.

``SkipLayerNormalization(input, skip, gamma[, beta[, bias]])`` is ``LayerNorm(input + skip + bias)`` over
the last axis with ``epsilon``. The split graph adds the bias first, ``LayerNorm((input + bias) + skip)``:
the order onnxruntime's session-time fusion recognises in the INT8 graph (with the skip added first it
does not), so a session left to its defaults runs what it ran before. A node whose optional statistics
outputs (mean, inverse standard deviation) are used is left fused; its sum output
(``input_skip_bias_sum``) becomes the output of the last ``Add``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnx
    from onnxruntime.transformers.onnx_model import OnnxModel

FUSED = "SkipLayerNormalization"


def split_skip_layer_norm(model: onnx.ModelProto) -> int:
    """Split every ``SkipLayerNormalization`` of ``model``'s main graph in place; returns how many.

    The standard ``LayerNormalization`` needs opset 17 or later; a model with an older default opset is
    left as it is (0).
    """
    from onnx import helper

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 17:
        return 0
    nodes, split = [], 0
    for node in model.graph.node:
        outputs = list(node.output) + [""] * (4 - len(node.output))
        if node.op_type != FUSED or outputs[1] or outputs[2]:
            nodes.append(node)
            continue
        inputs = list(node.input) + [""] * (5 - len(node.input))
        x, skip, gamma, beta, bias = inputs[:5]
        epsilon = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-12)
        base = node.name or node.output[0]
        if bias:
            nodes.append(helper.make_node("Add", [x, bias], [f"{base}/biased"], name=f"{base}/bias_add"))
            x = f"{base}/biased"
        total = outputs[3] or f"{base}/sum"
        nodes.append(helper.make_node("Add", [x, skip], [total], name=f"{base}/skip_add"))
        norm_inputs = [total, gamma, beta] if beta else [total, gamma]
        nodes.append(
            helper.make_node(
                "LayerNormalization",
                norm_inputs,
                [outputs[0]],
                name=f"{base}/layer_norm",
                axis=-1,
                epsilon=epsilon,
            )
        )
        split += 1
    if split:
        del model.graph.node[:]
        model.graph.node.extend(nodes)
    return split


def split_graph_file(path: Path) -> int:
    """``split_skip_layer_norm`` on the ONNX file at ``path``, rewritten in place when anything changed."""
    import onnx

    model = onnx.load(str(path))
    split = split_skip_layer_norm(model)
    if split:
        onnx.checker.check_model(model)
        onnx.save(model, str(path))
    return split


def fuse_skip_layer_norm(model: OnnxModel) -> None:
    """The reverse, for a graph that runs on CUDA, in place.

    onnxruntime's transformer fusions of ``Add`` (with and without bias) + ``LayerNormalization``.
    """
    from onnxruntime.transformers.fusion_skiplayernorm import (
        FusionBiasSkipLayerNormalization,
        FusionSkipLayerNormalization,
    )

    FusionSkipLayerNormalization(model).apply()
    FusionBiasSkipLayerNormalization(model).apply()
    model.prune_graph()
