"""Static INT8 quantization of an fp32 graph: activation scales calibrated once, on real texts.

Why static: dynamic quantization (``DynamicQuantizeLinear``) computes each activation scale at run time
over the whole batch, padding included, so a post's entities changed with the posts batched with it (25
of 200 held-out tweets differed between a run alone and one shared batch). With constant scales every row
is computed on its own: integer products are exact, and the float ops around them (LayerNorm, the masked
softmax, GELU) work per token. It also drops the per-batch scale computation.

``quantize_int8`` runs, in order:

1. ``quant_pre_process`` (ONNX shape inference and clean-up; the graph as it is when that fails);
2. fused ``Attention`` nodes (a quarter of an encoder's weights, and no rule of the QDQ quantizer): the
   min/max of each one's input over the calibration batches, then a ``QuantizeLinear`` with that constant
   range and a ``QAttention`` with per-column 7-bit weights in its place; a fused
   ``EmbedLayerNormalization`` gets uint8 weights (its inputs are token ids: nothing to calibrate);
3. an element type for every tensor: onnxruntime's fused ops are unknown to ONNX shape inference, and the
   quantizer leaves untyped tensors in float;
4. ``quantize_static``, QDQ format, MinMax calibration on the same batches: MatMuls with constant weights
   and the embedding Gathers, per-channel 7-bit weights, uint8 activations. MatMul outputs stay float,
   so onnxruntime runs each as one ``MatMulIntegerToFloat``;
5. GELU (``approximate_gelu``): every ``Gelu`` and ``BiasGelu`` runs as onnxruntime's ``FastGelu``, the
   tanh approximation (under 5e-4 from the exact GELU for every input): on one thread the 5-layer model's
   INT8 graph ran 1.02x and 1.07x as fast with it in two runs, at the same dev scores (the model card).
   ``exact_gelu`` keeps the exact GELU.

Weights are 7-bit (``reduce_range``) by default: without VNNI, x86 int8 kernels add u8*s8 pairs in
saturating int16, which with full-range weights flipped 39% of token labels of a test model on an AVX2-only
CPU. ``weight_bits=8`` writes full-range weights, right only on CPUs with VNNI (int32 dot products); on the
shipped model they ran no faster there and scored within noise of 7-bit ones (its model card).
Calibration batches come from the runtime's own tokenization, windows and length-bucketed batching, so
the ranges are those of the inputs the graph will see.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from onnxruntime.quantization.quant_utils import compute_scale_zp, get_qmin_qmax_for_qType
from onnxruntime.quantization.shape_inference import quant_pre_process

from stream_ner.errors import ModelError
from stream_ner.model.windows import WindowTokenizer, plan_windows
from stream_ner.offline.data import CORPORA, DATA_ENV, data_dir, load_split

SAMPLE_POSTS = Path(__file__).resolve().parent.parent / "samples" / "posts.jsonl"
BATCH_POSTS = 32
"""Rows per calibration batch (the worker's default batch size)."""


@dataclass(frozen=True, slots=True)
class Calibration:
    """Texts whose activations set the int8 ranges, and what they are (recorded in the manifest)."""

    texts: Sequence[str]
    source: str


def default_calibration(data: str | Path | None = None) -> Calibration:
    """Train texts of the shared NER data (``data``, else ``$STREAM_NER_NER_DATA``), else the sample posts.

    Train splits only: the dev splits score the quantized graph and must not have shaped it.
    """
    if data is not None or os.environ.get(DATA_ENV):
        root = data_dir(data)
        texts = [r.text for name in CORPORA for r in load_split(root, name, "train")]
        return Calibration(texts, f"{' + '.join(CORPORA)} train, {len(texts)} posts")
    with open(SAMPLE_POSTS, encoding="utf-8") as fh:
        texts = [json.loads(line)["text"] for line in fh if line.strip()]
    return Calibration(texts, f"the {len(texts)} shipped sample posts")


def quantize_int8(
    fp32: Path,
    dest: Path,
    tokenizer: WindowTokenizer,
    calibration: Calibration,
    *,
    max_length: int,
    stride: int,
    work: Path,
    progress: Any = None,
    weight_bits: int = 7,
    exact_gelu: bool = False,
) -> dict[str, Any]:
    """Write the static INT8 graph of ``fp32`` to ``dest`` (steps 1-5 of the module); returns its description.

    ``work`` is a scratch directory; ``progress`` an optional ``rich.progress.Progress`` for calibration.
    ``weight_bits`` 7 (``reduce_range``, safe on every x86 CPU) or 8 (full range: for CPUs with VNNI only).
    ``exact_gelu`` skips step 5.
    """
    if weight_bits not in (7, 8):
        raise ValueError(f"weight_bits must be 7 or 8, not {weight_bits}")
    reduce_range = weight_bits == 7
    graph_inputs = onnx.load(fp32, load_external_data=False).graph.input
    inputs = {i.name: helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type) for i in graph_inputs}
    batches = calibration_batches(tokenizer, calibration.texts, inputs, max_length=max_length, stride=stride)
    if not batches:
        raise ValueError("no calibration texts")

    # 1. pre-processing
    pre = work / "int8.pre.onnx"
    try:
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
    except Exception:  # pre-processing is an optimisation; quantize the graph as it is when it fails
        shutil.copyfile(fp32, pre)
    model = onnx.load(pre)

    # 2. fused attention
    attention = [n for n in model.graph.node if _convertible_attention(n, model)]
    ranges = observe_ranges(model, [n.input[0] for n in attention], batches, progress, "int8: attention")
    for node in attention:
        _to_qattention(model, node, ranges[node.input[0]], reduce_range=reduce_range)
    _drop_unused_initializers(model)
    if any(n.op_type == "EmbedLayerNormalization" for n in model.graph.node):
        onnx.save(model, pre)
        quantize_dynamic(str(pre), str(pre), op_types_to_quantize=["EmbedLayerNormalization"])
        model = onnx.load(pre)

    # 3. element types
    _annotate_types(model, batches[0])
    onnx.save(model, pre)

    # 4. MatMul and Gather
    quantize_static(
        str(pre),
        str(dest),
        _Reader(batches, progress, "int8: MatMul, Gather"),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=["MatMul", "Gather"],
        per_channel=True,
        reduce_range=reduce_range,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
        extra_options={
            "MatMulConstBOnly": True,
            "OpTypesToExcludeOutputQuantization": ["MatMul"],
            "CalibMaxIntermediateOutputs": 16,
        },
    )
    dynamic = [n.name for n in onnx.load(dest).graph.node if n.op_type == "DynamicQuantizeLinear"]
    if dynamic:
        raise ModelError(f"the int8 graph still quantizes activations per batch: {dynamic[:3]}")
    # 5. GELU
    approximated = 0
    if not exact_gelu:
        model = onnx.load(dest)
        approximated = approximate_gelu(model)
        onnx.save(model, dest)
    kinds = ["MatMul", *(["Attention"] if attention else []), "embeddings"]
    return {
        "method": "static QDQ, MinMax calibration",
        "weights": f"per-channel {weight_bits}-bit int8 ({', '.join(kinds)})",
        "weight_bits": weight_bits,
        "activations": "uint8, constant scales",
        "calibration": calibration.source,
        "calibration_batches": len(batches),
        "attention_nodes": len(attention),
        "gelu": f"tanh approximation (FastGelu, {approximated} nodes)" if approximated else "exact",
    }


def approximate_gelu(model: onnx.ModelProto) -> int:
    """Step 5: every ``Gelu`` and ``BiasGelu`` node becomes a ``FastGelu`` (same inputs); the count.

    ``FastGelu`` (onnxruntime's contrib op: ``x`` and an optional ``bias``) computes
    ``0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))``, elementwise, so rows stay independent.
    """
    count = 0
    for node in model.graph.node:
        if node.op_type in ("Gelu", "BiasGelu") and node.domain == "com.microsoft":
            node.op_type = "FastGelu"
            del node.attribute[:]
            count += 1
    return count


def calibration_batches(
    tokenizer: WindowTokenizer,
    texts: Sequence[str],
    inputs: dict[str, Any],
    *,
    max_length: int,
    stride: int,
) -> list[dict[str, np.ndarray]]:
    """Feeds of the graph ``inputs`` (name -> numpy dtype) for ``texts``, batched as the runtime batches."""
    encoded = tokenizer.encode(list(texts))
    windows = plan_windows([len(e) for e in encoded], max_length - tokenizer.specials, stride)
    batches = tokenizer.make_batches(
        encoded, windows, max_batch_size=BATCH_POSTS, max_batch_tokens=8192, max_padding=0.1
    )
    return [{n: b.arrays[n].astype(dtype, copy=False) for n, dtype in inputs.items()} for b in batches]


def observe_ranges(
    model: onnx.ModelProto,
    names: list[str],
    batches: list[dict[str, np.ndarray]],
    progress: Any = None,
    description: str = "calibration",
) -> dict[str, tuple[float, float]]:
    """(min, max) of each tensor in ``names`` over all ``batches``, padded positions included."""
    if not names:
        return {}
    session = _session_with_outputs(model, names)
    low = dict.fromkeys(names, np.inf)
    high = dict.fromkeys(names, -np.inf)
    for feeds in _advancing(batches, progress, description):
        for name, value in zip(names, session.run(names, feeds), strict=True):
            low[name] = min(low[name], float(value.min()))
            high[name] = max(high[name], float(value.max()))
    return {n: (low[n], high[n]) for n in names}


class _Reader(CalibrationDataReader):
    """The calibration batches for ``quantize_static``, advancing a progress bar."""

    def __init__(self, batches: list[dict[str, np.ndarray]], progress: Any, description: str) -> None:
        self._batches = _advancing(batches, progress, description)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def _advancing(items: list[Any], progress: Any, description: str) -> Iterator[Any]:
    task = progress.add_task(description, total=len(items)) if progress is not None else None
    for item in items:
        yield item
        if progress is not None:
            progress.advance(task)


def _convertible_attention(node: onnx.NodeProto, model: onnx.ModelProto) -> bool:
    """A fused Attention QAttention can replace: input, constant weight and bias, optional mask, no extras."""
    if node.op_type != "Attention" or node.domain != "com.microsoft" or len(node.input) > 4:
        return False
    if {a.name for a in node.attribute} - {"num_heads", "unidirectional"}:
        return False
    constants = {i.name for i in model.graph.initializer}
    return node.input[1] in constants and node.input[2] in constants


def _to_qattention(
    model: onnx.ModelProto, node: onnx.NodeProto, observed: tuple[float, float], *, reduce_range: bool
) -> None:
    """Replace ``node`` in place by ``QuantizeLinear`` (constant range ``observed``) and ``QAttention``."""
    graph, name = model.graph, node.name or node.output[0]
    qmin, qmax = (np.asarray(v) for v in get_qmin_qmax_for_qType(TensorProto.UINT8))
    zero_point, scale = compute_scale_zp(np.float32(observed[0]), np.float32(observed[1]), qmin, qmax)
    weights = numpy_helper.to_array(next(i for i in graph.initializer if i.name == node.input[1]))
    wmin, wmax = (
        int(v) for v in get_qmin_qmax_for_qType(TensorProto.INT8, reduce_range=reduce_range, symmetric=True)
    )
    w_scale = (np.abs(weights).max(axis=0) / wmax).astype(np.float32)
    w_scale[w_scale == 0] = 1.0
    quantized = np.clip(np.rint(weights / w_scale), wmin, wmax).astype(np.int8)
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.asarray(scale, np.float32).reshape(()), f"{name}_input_scale"),
            numpy_helper.from_array(np.asarray(zero_point, np.uint8).reshape(()), f"{name}_input_zero_point"),
            numpy_helper.from_array(quantized, f"{name}_weight_quantized"),
            numpy_helper.from_array(w_scale, f"{name}_weight_scale"),
            numpy_helper.from_array(np.zeros(len(w_scale), np.int8), f"{name}_weight_zero_point"),
        ]
    )
    mask = node.input[3] if len(node.input) > 3 else ""
    quantize = helper.make_node(
        "QuantizeLinear",
        [node.input[0], f"{name}_input_scale", f"{name}_input_zero_point"],
        [f"{name}_input_quantized"],
        f"{name}_QuantizeLinear",
    )
    attention = helper.make_node(
        "QAttention",
        [
            f"{name}_input_quantized",
            f"{name}_weight_quantized",
            node.input[2],
            f"{name}_input_scale",
            f"{name}_weight_scale",
            mask,
            f"{name}_input_zero_point",
            f"{name}_weight_zero_point",
        ],
        list(node.output),
        f"{name}_quant",
        domain="com.microsoft",
    )
    attention.attribute.extend(node.attribute)
    at = list(graph.node).index(node)
    graph.node.remove(node)
    graph.node.insert(at, attention)
    graph.node.insert(at, quantize)


def _drop_unused_initializers(model: onnx.ModelProto) -> None:
    used = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
    keep = [i for i in model.graph.initializer if i.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)


def _annotate_types(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> None:
    """Give every node output without a declared type the element type it has when the graph runs."""
    known = {v.name for v in (*model.graph.value_info, *model.graph.input, *model.graph.output)}
    missing = [o for n in model.graph.node for o in n.output if o and o not in known]
    if not missing:
        return
    values = _session_with_outputs(model, missing).run(missing, feeds)
    for name, value in zip(missing, values, strict=True):
        element = helper.np_dtype_to_tensor_dtype(np.asarray(value).dtype)
        model.graph.value_info.append(helper.make_tensor_value_info(name, element, None))


def _session_with_outputs(model: onnx.ModelProto, names: list[str]) -> ort.InferenceSession:
    """A CPU session of ``model`` that also returns the intermediate tensors ``names``."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    outputs = {o.name for o in probe.graph.output}
    probe.graph.output.extend(helper.ValueInfoProto(name=n) for n in names if n not in outputs)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
