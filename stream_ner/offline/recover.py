"""A torch checkpoint rebuilt from an exported artifact's fp32 graph: the artifact's own weights, trainable.

An artifact ships ONNX graphs only. Distilling a smaller student from it (initialised from its fine-tuned
layers) or running it in PyTorch (a peer in the load test) needs the weights as a checkpoint. The fp32
graph keeps every weight of the encoder, the tag head, the shape embedding and the sentiment heads, in
three forms:

- initializers still named after the torch parameter (embeddings, LayerNorms, most biases, heads);
- anonymous ``MatMul`` weights (``onnx::MatMul_N``), transposed: found through the node that reads them,
  whose name is the torch module's path (``/bert/encoder/layer.3/intermediate/dense/MatMul``);
- fused ``Attention`` nodes (``Attention_i``, layer ``i``), whose ``[hidden, 3 x hidden]`` weight and bias
  are the query, key and value projections side by side.

``checkpoint_from_artifact`` rebuilds the checkpoint on the artifact's base encoder configuration, checks
that it computes what the graph computes on probe texts (every output within ``PARITY_TOLERANCE``) and
raises a ``ModelError`` when it does not: a graph of another layout cannot pass for a checkpoint.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from stream_ner.errors import ModelError
from stream_ner.offline.base_encoder import default_base_encoder
from stream_ner.offline.bench import quiet
from stream_ner.offline.modeling import ShapeTokenClassifier, load_classifier, new_classifier

PARITY_TOLERANCE = 1e-3
"""Largest absolute difference of any output allowed between the checkpoint and the fp32 graph."""

_MATMUL = re.compile(r"^/(?:bert/)?(?P<module>.+)/MatMul$")
_ATTENTION = re.compile(r"^Attention_(?P<layer>\d+)$")


def checkpoint_from_artifact(artifact: Path, out: Path, *, base_encoder: Path | None = None) -> Path:
    """Write ``artifact``'s weights as a checkpoint directory at ``out`` (``load_classifier`` reads it).

    ``base_encoder``: the pretrained encoder the artifact was trained from (its configuration: layer
    count, sizes, activation); default the shipped base encoder. Raises ``ModelError`` when the graph is
    missing, when a parameter of the checkpoint is not found in it, or when the rebuilt checkpoint's
    outputs differ from the graph's.
    """
    graph_path = artifact / "model.fp32.onnx"
    if not graph_path.is_file():
        raise ModelError(f"{artifact} has no fp32 graph to recover weights from")
    labels = json.loads((artifact / "ner_config.json").read_text())["id2label"]
    graph = onnx.load(str(graph_path))
    weights = _torch_named_weights(graph)
    has_shapes = "shape_embedding.weight" in weights
    has_sentiment = "sentiment.post.weight" in weights
    layers = len([n for n in graph.graph.node if n.op_type == "Attention"])
    up = weights.get("model.bert.encoder.layer.0.intermediate.dense.weight")
    with quiet():  # the base encoder has no tag head yet: transformers reports it as missing
        classifier = new_classifier(
            base_encoder or default_base_encoder(),
            labels,
            with_shapes=has_shapes,
            dropout=0.1,
            sentiment=has_sentiment,
            layers=layers,
            ffn_width=up.shape[0] if up is not None else 0,
        )
    state = classifier.state_dict()
    missing = sorted(name for name in state if name not in weights and not name.endswith("position_ids"))
    if missing:
        raise ModelError(f"{graph_path} does not hold {', '.join(missing[:5])} (not a graph of this layout)")
    classifier.load_state_dict(
        {name: torch.tensor(weights[name], dtype=state[name].dtype) for name in state if name in weights},
        strict=False,
    )
    out.mkdir(parents=True, exist_ok=True)
    with quiet():
        classifier.save(out)
        shutil.copyfile(artifact / "tokenizer.json", out / "tokenizer.json")
        _check_parity(load_classifier(out), graph_path, artifact)
    return out


def _torch_named_weights(graph: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Every weight the graph holds, under its torch parameter name."""
    inits = {init.name: numpy_helper.to_array(init) for init in graph.graph.initializer}
    named = {name: array for name, array in inits.items() if not name.startswith(("onnx::", "/", "ort_"))}
    for node in graph.graph.node:
        if node.op_type == "MatMul" and node.input[1] in inits and (match := _MATMUL.match(node.name)):
            module = match["module"].replace("/", ".")
            prefix = "model.bert." if module.startswith(("encoder.", "embeddings.")) else "model."
            if module.startswith("sentiment."):
                prefix = ""
            named[f"{prefix}{module}.weight"] = inits[node.input[1]].T.copy()
        elif node.op_type == "Attention" and (match := _ATTENTION.match(node.name)):
            weight, bias = inits[node.input[1]], inits[node.input[2]]
            hidden = weight.shape[0]
            for index, part in enumerate(("query", "key", "value")):
                columns = slice(index * hidden, (index + 1) * hidden)
                base = f"model.bert.encoder.layer.{match['layer']}.attention.self.{part}"
                named[f"{base}.weight"] = weight[:, columns].T.copy()
                named[f"{base}.bias"] = bias[columns].copy()
    return named


def _check_parity(classifier: ShapeTokenClassifier, graph_path: Path, artifact: Path) -> None:
    """Raise ``ModelError`` unless the checkpoint's outputs equal the graph's on the export's probe texts."""
    import onnxruntime as ort

    from stream_ner.model.windows import WindowTokenizer
    from stream_ner.offline.export import probe_feeds

    config = json.loads((artifact / "ner_config.json").read_text())
    tokenizer = WindowTokenizer.from_file(
        artifact / "tokenizer.json", with_shapes="shape_ids" in classifier.input_names
    )
    session = ort.InferenceSession(str(graph_path), providers=["CPUExecutionProvider"])
    feeds = probe_feeds(tokenizer, classifier.input_names, config["max_length"])
    expected = session.run(classifier.output_names, feeds)
    with torch.no_grad():
        got = classifier(*(torch.from_numpy(feeds[name]) for name in classifier.input_names))
    got = got if isinstance(got, tuple) else (got,)
    worst = max(float(np.abs(g.numpy() - e).max()) for g, e in zip(got, expected, strict=True))
    if worst > PARITY_TOLERANCE:
        raise ModelError(
            f"weights recovered from {graph_path} compute other outputs (max difference {worst:.2g})"
        )
