"""Token classifier checkpoint to a model artifact (``stream_ner.model.artifact``): ONNX graphs and metadata.

``export`` runs, in order:

1. load the checkpoint (``stream_ner.offline.modeling.load_classifier``) and its fast tokenizer;
2. trace it to ONNX (opset ``OPSET``, dynamic axes ``batch_size`` and ``sequence_length``, output
   ``logits``, and ``post_sentiment`` ``[batch_size, 3]`` and ``target_sentiment``
   ``[batch_size, sequence_length, 3]`` when the checkpoint has sentiment heads) and optimise the graph
   with onnxruntime's transformer fusions, ``SkipLayerNormalization`` then split again for CPUs
   (``stream_ner.offline.layer_norm``) -> ``model.fp32.onnx``;
3. ``int8``: static quantization of the fp32 graph with activation ranges calibrated on real texts
   (``stream_ner.offline.quantize``: a post's logits do not depend on its batch mates) ->
   ``model.int8.onnx``; ``fp16``: float16 weights and compute with float32 inputs and outputs, for
   CUDA, with ``SkipLayerNormalization`` fused again -> ``model.fp16.onnx``;
4. parity on probe texts, through the runtime's own tokenization: max abs difference of every output of
   fp32 against PyTorch (must be under ``tolerance``, else ``ModelError``), label agreement of int8 and
   fp16 against fp32 (tags over real tokens, post sentiment per post; reported);
5. ``tokenizer.json``, ``ner_config.json`` (with ``sentiment_labels`` when there are sentiment outputs)
   and ``manifest.json`` (sha256 of every file, versions, parity).

``src`` may also be a model artifact with an fp32 graph (no checkpoint needed): its fp32 graph (with any
``SkipLayerNormalization`` split), tokenizer and label map are kept and steps 3-5 make the other
precisions again from that graph.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from stream_ner.errors import ModelError
from stream_ner.model import artifact
from stream_ner.model.decode import TagSet, offset_vector
from stream_ner.model.windows import WindowTokenizer, plan_windows
from stream_ner.offline.layer_norm import fuse_skip_layer_norm, split_graph_file

if TYPE_CHECKING:
    from stream_ner.offline.quantize import Calibration

OPSET = 17
FP32_FUSED_NOTE = "float32, onnxruntime transformer fusions but SkipLayerNormalization (split for CPUs)"
DEFAULT_TOLERANCE = 1e-3
"""Max abs logit difference allowed between the fp32 graph and PyTorch."""

PROBE_TEXTS: tuple[str, ...] = (
    "Just landed in New York with @Delta, thanks for the upgrade! ✈️ #travel",
    "new iPhone 16 Pro vs Samsung Galaxy S24 — which one? 🤔 https://example.com/x?y=1",
    "Lionel Messi scores again for Inter Miami 🐐⚽",
    "@nike @adidas who makes the better running shoe in 2024",
    "Москва и Berlin: 東京 next week with Angela",
    "tesla   model 3\tdelivery\ndelayed again, elon pls",
    "RT @BBCNews: Storm hits the UK coast, thousands without power in Cornwall",
    "lol",
    "I ❤️ my new PlayStation 5 from Amazon!!! 😍😍😍",
    "Microsoft and OpenAI announce new partnership in Seattle",
    "#Starbucks pumpkin spice is back 🎃 at the Oxford St store",
    "Taylor Swift Eras Tour tickets sold out on Ticketmaster in minutes",
)


@dataclass(slots=True)
class ExportReport:
    """What an export wrote and measured."""

    out: Path
    precisions: list[str]
    input_names: list[str]
    parity: dict[str, Any] = field(default_factory=dict)
    sizes_mb: dict[str, float] = field(default_factory=dict)


def export(
    src: str | Path,
    out: str | Path,
    *,
    precisions: tuple[str, ...] = ("fp32", "int8"),
    tolerance: float = DEFAULT_TOLERANCE,
    max_length: int = 128,
    stride: int = 32,
    aggregation: str = "first",
    name: str | None = None,
    version: str = "0",
    extra_manifest: dict[str, Any] | None = None,
    keep_fp32: bool = True,
    progress: Any = None,
    calibration: Calibration | None = None,
    fusions: bool = True,
    weight_bits: int = 7,
    exact_gelu: bool = False,
    label_offsets: dict[str, float] | None = None,
) -> ExportReport:
    """Write the artifact for checkpoint ``src`` into directory ``out`` (steps 1-5 of the module).

    ``fusions`` false keeps the traced graph as it is (no transformer fusions: attention stays plain
    MatMuls, which the INT8 graph then quantizes as such); onnxruntime still applies its own at load time.
    ``keep_fp32`` false drops ``model.fp32.onnx`` after the other precisions are made from it.
    ``calibration``: texts for the int8 activation ranges (default: ``quantize.default_calibration()``).
    ``weight_bits``: of the int8 weights, 7 (right on every x86 CPU) or 8 (on CPUs with VNNI only).
    ``exact_gelu`` keeps the int8 graph's GELU exact (default: the tanh approximation, ``quantize`` step 5).
    ``label_offsets`` (entity type -> value) go into ``ner_config.json``: the runtime adds each to its
    type's tag logits before decoding (``decode.offset_vector``). ``progress`` is an optional
    ``rich.progress.Progress``. Raises ``ModelError`` on a parity failure or on offsets for types the
    label map lacks. When ``src`` is a model artifact, see ``export_from_artifact`` (the other
    arguments are not used).
    """
    for p in precisions:
        artifact.graph_name(p)
    if is_artifact(src):
        return export_from_artifact(
            src,
            out,
            precisions=precisions,
            calibration=calibration,
            progress=progress,
            weight_bits=weight_bits,
            exact_gelu=exact_gelu,
            label_offsets=label_offsets,
        )

    import torch

    from stream_ner.offline.modeling import id2label_of, load_classifier

    out = Path(out)
    steps = 5
    task = progress.add_task("export", total=steps) if progress else None

    def step(what: str) -> None:
        if progress is not None:
            progress.update(task, advance=1, description=f"export: {what}")

    # 1. checkpoint and tokenizer
    classifier = load_classifier(src)
    id2label = id2label_of(classifier)
    ner_config: dict[str, Any] = {
        "id2label": id2label,
        "scheme": artifact.tag_scheme(id2label),
        "max_length": max_length,
        "stride": stride,
        "aggregation": aggregation,
        "inputs": {},
    }
    _set_offsets(ner_config, label_offsets)  # refused before anything is written
    out.mkdir(parents=True, exist_ok=True)
    _write_tokenizer(src, out / artifact.TOKENIZER)
    tokenizer = WindowTokenizer.from_file(
        out / artifact.TOKENIZER, with_shapes="shape_ids" in classifier.input_names
    )
    step("checkpoint loaded")

    # 2. trace and optimise
    work = Path(tempfile.mkdtemp(prefix="stream-ner-export-"))
    try:
        raw = work / "raw.onnx"
        feeds = probe_feeds(tokenizer, classifier.input_names, max_length)
        example = tuple(torch.from_numpy(feeds[n][:2]) for n in classifier.input_names)
        outputs = list(classifier.output_names)
        axes = {n: {0: "batch_size", 1: "sequence_length"} for n in classifier.input_names}
        axes["logits"] = {0: "batch_size", 1: "sequence_length"}
        if artifact.POST_SENTIMENT in outputs:
            axes[artifact.POST_SENTIMENT] = {0: "batch_size"}
            axes[artifact.TARGET_SENTIMENT] = {0: "batch_size", 1: "sequence_length"}
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings on Python control flow in HF models
            torch.onnx.export(
                classifier,
                example,
                str(raw),
                input_names=classifier.input_names,
                output_names=outputs,
                dynamic_axes=axes,
                opset_version=OPSET,
                do_constant_folding=True,
                dynamo=False,
            )
        fp32 = out / artifact.graph_name("fp32")
        if fusions:
            _optimize(raw, fp32, classifier.model.config)
            split_graph_file(fp32)
        else:
            shutil.copyfile(raw, fp32)
        step("fp32 graph traced and optimised")

        # 3. other precisions
        derived = _derive(
            fp32,
            out,
            precisions,
            tokenizer,
            calibration,
            max_length,
            stride,
            work,
            progress,
            weight_bits,
            exact_gelu,
        )
        step("other precisions written")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    # 4. parity
    with torch.no_grad():
        traced = classifier(*(torch.from_numpy(feeds[n]) for n in classifier.input_names))
    traced = traced if isinstance(traced, tuple) else (traced,)
    reference = {name: t.numpy() for name, t in zip(outputs, traced, strict=True)}
    valid = feeds["attention_mask"].astype(bool)
    parity: dict[str, Any] = {"probe_texts": len(PROBE_TEXTS), "tolerance": tolerance}
    got = {
        p: _run(out / artifact.graph_name(p), feeds, outputs)
        for p in (*dict.fromkeys(("fp32", *precisions)),)
    }
    ours = got["fp32"]
    if ours is None:
        raise ModelError("the fp32 graph does not run on this machine's CPU")
    diffs = {name: _max_diff(name, ours[name], reference[name], valid) for name in outputs}
    parity["fp32_max_abs_diff_vs_torch"] = diffs["logits"]
    labels32 = ours["logits"].argmax(-1)[valid]
    parity["fp32_label_agreement_vs_torch"] = float(
        (labels32 == reference["logits"].argmax(-1)[valid]).mean()
    )
    for output in outputs[1:]:
        parity[f"fp32_{output}_max_abs_diff_vs_torch"] = diffs[output]
    parity.update(_agreement(got, valid))
    worst = max(diffs, key=lambda n: diffs[n])
    if diffs[worst] > tolerance:
        raise ModelError(
            f"fp32 ONNX {worst} differs from PyTorch by {diffs[worst]:.2e} > tolerance {tolerance:.1e}"
        )
    step("parity checked")

    # 5. metadata
    if not keep_fp32 and "fp32" not in precisions:
        fp32.unlink()
    written = [p for p in artifact.PRECISIONS if (out / artifact.graph_name(p)).is_file()]
    if artifact.POST_SENTIMENT in outputs:
        ner_config["sentiment_labels"] = list(artifact.SENTIMENT_LABELS)
    (out / artifact.NER_CONFIG).write_text(json.dumps(ner_config, indent=2) + "\n", encoding="utf-8")
    files = [artifact.NER_CONFIG, artifact.TOKENIZER, *(artifact.graph_name(p) for p in written)]
    manifest = {
        "name": name or Path(str(src)).name,
        "version": version,
        "source": str(src) if not Path(str(src)).is_absolute() else Path(str(src)).name,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": _versions(),
        "opset": OPSET,
        "inputs": classifier.input_names,
        "outputs": outputs,
        "precisions": {p: _precision_note(p, fusions, weight_bits, derived) for p in written},
        "parity": parity,
        **({"quantization": derived} if derived else {}),
        **(extra_manifest or {}),
        "files": {f: artifact.sha256(out / f) for f in files},
    }
    (out / artifact.MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    step("metadata written")
    sizes = {p: round((out / artifact.graph_name(p)).stat().st_size / 1e6, 1) for p in written}
    return ExportReport(out, written, list(classifier.input_names), parity, sizes)


def refresh_manifest(out: Path, updates: dict[str, Any]) -> None:
    """Merge ``updates`` into ``manifest.json`` and recompute the sha256 of the files it lists."""
    path = out / artifact.MANIFEST
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest.update(updates)
    present = [f for f in manifest.get("files", {}) if (out / f).is_file()]
    manifest["files"] = {f: artifact.sha256(out / f) for f in present}
    path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def is_artifact(src: str | Path) -> bool:
    """Whether ``src`` is a model artifact directory with an fp32 graph (rather than a checkpoint)."""
    root = Path(src)
    return (root / artifact.MANIFEST).is_file() and (root / artifact.graph_name("fp32")).is_file()


def export_from_artifact(
    src: str | Path,
    out: str | Path,
    *,
    precisions: tuple[str, ...] = ("fp32", "int8"),
    calibration: Calibration | None = None,
    progress: Any = None,
    weight_bits: int = 7,
    exact_gelu: bool = False,
    label_offsets: dict[str, float] | None = None,
) -> ExportReport:
    """Make the other precisions of artifact ``src`` again from its fp32 graph, into ``out`` (may be ``src``).

    Steps 3-5 of the module without a checkpoint. The fp32 graph, tokenizer and label map are kept as they
    are, and so are the manifest's figures about them (fp32 parity against PyTorch, training, fp32 dev
    metrics); the figures of a graph made again are replaced (parity) or dropped (dev metrics).
    ``label_offsets``, when given, replace the artifact's (``{}``: none), and the NER dev metrics of
    every graph go: they were decoded without them.
    """
    import onnx

    src, out = Path(src), Path(out)
    config = json.loads((src / artifact.NER_CONFIG).read_text(encoding="utf-8"))
    if label_offsets is not None:
        _set_offsets(config, label_offsets)  # refused before anything is written
    out.mkdir(parents=True, exist_ok=True)
    if out.resolve() != src.resolve():
        for name in (artifact.MANIFEST, artifact.NER_CONFIG, artifact.TOKENIZER, artifact.graph_name("fp32")):
            shutil.copyfile(src / name, out / name)
    manifest = json.loads((out / artifact.MANIFEST).read_text(encoding="utf-8"))
    if label_offsets is not None:
        (out / artifact.NER_CONFIG).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        manifest.pop("dev_metrics", None)
    fp32 = out / artifact.graph_name("fp32")
    graph = onnx.load(fp32, load_external_data=False).graph
    names = [i.name for i in graph.input]
    outputs = [o.name for o in graph.output]
    tokenizer = WindowTokenizer.from_file(out / artifact.TOKENIZER, with_shapes="shape_ids" in names)
    max_length, stride = int(config.get("max_length", 128)), int(config.get("stride", 32))
    remade = tuple(p for p in precisions if p != "fp32")
    split = split_graph_file(fp32)

    # 3. other precisions
    with tempfile.TemporaryDirectory(prefix="stream-ner-export-") as work:
        derived = _derive(
            fp32,
            out,
            remade,
            tokenizer,
            calibration,
            max_length,
            stride,
            Path(work),
            progress,
            weight_bits,
            exact_gelu,
        )

    # 4. parity against the fp32 graph
    feeds = probe_feeds(tokenizer, names, max_length)
    got = {p: _run(out / artifact.graph_name(p), feeds, outputs) for p in ("fp32", *remade)}
    parity = {**manifest.get("parity", {}), **_agreement(got, feeds["attention_mask"].astype(bool))}

    # 5. metadata
    written = [p for p in artifact.PRECISIONS if (out / artifact.graph_name(p)).is_file()]
    notes = manifest.get("precisions", {})
    manifest["versions"] = {**manifest.get("versions", {}), **_versions(("onnx", "onnxruntime"))}
    manifest["precisions"] = {
        p: _precision_note(p, weight_bits=weight_bits, derived=derived) if p in remade else notes.get(p, "")
        for p in written
    }
    if split:
        manifest["precisions"]["fp32"] = FP32_FUSED_NOTE
    manifest["parity"] = parity
    manifest["quantization"] = {**manifest.get("quantization", {}), **derived}
    for key in ("dev_metrics", "dev_sentiment_metrics"):  # scores of the graphs made again are gone
        if key in manifest:
            manifest[key] = {k: v for k, v in manifest[key].items() if k not in remade}
    files = [artifact.NER_CONFIG, artifact.TOKENIZER, *(artifact.graph_name(p) for p in written)]
    manifest.pop("files", None)
    manifest["files"] = {f: artifact.sha256(out / f) for f in files}
    (out / artifact.MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    sizes = {p: round((out / artifact.graph_name(p)).stat().st_size / 1e6, 1) for p in written}
    return ExportReport(out, written, names, parity, sizes)


def _set_offsets(config: dict[str, Any], offsets: dict[str, float] | None) -> None:
    """Write ``offsets`` (the non-zero ones) as ``config``'s ``label_offsets``; ``ModelError`` if invalid."""
    config.pop("label_offsets", None)
    if not offsets:
        return
    try:
        offset_vector(TagSet.parse(list(config["id2label"]), str(config.get("scheme", "BIO"))), offsets)
    except ValueError as exc:
        raise ModelError(f"cannot export: {exc}") from exc
    kept = {kind: value for kind, value in offsets.items() if value}
    if kept:
        config["label_offsets"] = kept


def _derive(
    fp32: Path,
    out: Path,
    precisions: tuple[str, ...],
    tokenizer: WindowTokenizer,
    calibration: Calibration | None,
    max_length: int,
    stride: int,
    work: Path,
    progress: Any,
    weight_bits: int = 7,
    exact_gelu: bool = False,
) -> dict[str, Any]:
    """Step 3: the int8 and fp16 graphs of ``fp32`` asked for; returns how int8 was made (``{}`` without)."""
    from stream_ner.offline.quantize import default_calibration, quantize_int8

    derived: dict[str, Any] = {}
    if "int8" in precisions:
        derived["int8"] = quantize_int8(
            fp32,
            out / artifact.graph_name("int8"),
            tokenizer,
            calibration or default_calibration(),
            max_length=max_length,
            stride=stride,
            work=work,
            progress=progress,
            weight_bits=weight_bits,
            exact_gelu=exact_gelu,
        )
    if "fp16" in precisions:
        _to_fp16(fp32, out / artifact.graph_name("fp16"))
    return derived


def _agreement(got: dict[str, dict[str, np.ndarray] | None], valid: np.ndarray) -> dict[str, float]:
    """Label agreement and max abs difference of each other graph's outputs against fp32's.

    Tags and target sentiment on real tokens, post sentiment per post. The keys of ``logits`` keep their
    earlier names (``<precision>_label_agreement_vs_fp32``, ``<precision>_max_abs_diff_vs_fp32``).
    """
    ours = got["fp32"]
    if ours is None:
        raise ModelError("the fp32 graph does not run on this machine's CPU")
    out = {}
    for p, other in got.items():
        if p == "fp32" or other is None:
            continue
        for name, reference in ours.items():
            mask = valid if reference.ndim == 3 else np.ones(reference.shape[0], dtype=bool)
            key = "" if name == "logits" else f"{name}_"
            agree = other[name].argmax(-1)[mask] == reference.argmax(-1)[mask]
            out[f"{p}_{key}label_agreement_vs_fp32"] = float(agree.mean())
            out[f"{p}_{key}max_abs_diff_vs_fp32"] = float(np.abs(other[name] - reference)[mask].max())
    return out


def _max_diff(name: str, got: np.ndarray, reference: np.ndarray, valid: np.ndarray) -> float:
    """Max abs difference of one output: on real tokens for per-token outputs, every row otherwise."""
    mask = valid if reference.ndim == 3 else np.ones(reference.shape[0], dtype=bool)
    return float(np.abs(got - reference)[mask].max())


def _precision_note(
    precision: str, fusions: bool = True, weight_bits: int = 7, derived: dict[str, Any] | None = None
) -> str:
    """The manifest's line for one graph; the int8 GELU as ``quantize_int8`` reported it (``derived``)."""
    approximated = str((derived or {}).get("int8", {}).get("gelu", "exact")).startswith("tanh")
    gelu = "tanh-approximated" if approximated else "exact"
    return {
        "fp32": FP32_FUSED_NOTE if fusions else "float32, as traced (no fusions)",
        "int8": "static quantization, calibrated uint8 activations, "
        f"per-channel {weight_bits}-bit int8 weights, {gelu} GELU, CPU",
        "fp16": "float16 weights and compute, float32 inputs/outputs, SkipLayerNormalization fused, for CUDA",
    }[precision]


def _write_tokenizer(src: str | Path, dest: Path) -> None:
    local = Path(src) / artifact.TOKENIZER
    if local.is_file():
        shutil.copyfile(local, dest)
        return
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(src))
    if not getattr(tok, "is_fast", False):
        raise ModelError(f"{src} has no fast tokenizer; the runtime needs tokenizer.json")
    tok.backend_tokenizer.save(str(dest))


def probe_feeds(tokenizer: WindowTokenizer, names: list[str], max_length: int) -> dict[str, np.ndarray]:
    """Padded inputs of the probe texts (one batch, longest first so the example has padding)."""
    texts = sorted(PROBE_TEXTS, key=len, reverse=True)
    encoded = tokenizer.encode(texts)
    windows = plan_windows([len(e) for e in encoded], max_length - tokenizer.specials, 0)
    first: dict[int, Any] = {}
    for w in windows:
        first.setdefault(w.text_index, w)
    batch = next(
        tokenizer.make_batches(
            encoded, list(first.values()), max_batch_size=len(texts), max_batch_tokens=1 << 30
        )
    )
    arrays = batch.arrays
    arrays.setdefault("shape_ids", np.zeros_like(arrays["input_ids"]))
    # longest row first: the traced example (rows 0-1) then has both a full and a padded row
    order = np.argsort(-arrays["attention_mask"].sum(1), kind="stable")
    return {n: np.ascontiguousarray(arrays[n][order]) for n in names}


def _optimize(raw: Path, dest: Path, config: Any) -> None:
    """Onnxruntime transformer fusions for known encoders; a plain copy when the type is unknown."""
    from onnxruntime.transformers.optimizer import optimize_model

    kind = str(getattr(config, "model_type", "bert"))
    known = {
        "bert": "bert",
        "roberta": "bert",
        "xlm-roberta": "bert",
        "distilbert": "bert",
        "electra": "bert",
    }
    model = optimize_model(
        str(raw),
        model_type=known.get(kind, "bert"),
        num_heads=int(getattr(config, "num_attention_heads", 0) or 0),
        hidden_size=int(getattr(config, "hidden_size", 0) or 0),
        opt_level=1 if kind in known else 0,
    )
    model.save_model_to_file(str(dest))


def _to_fp16(fp32: Path, dest: Path) -> None:
    import onnx
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = OnnxModel(onnx.load(str(fp32)))
    fuse_skip_layer_norm(model)  # for CUDA, where the fused kernel is the fast one
    model.convert_float_to_float16(keep_io_types=True)
    model.save_model_to_file(str(dest))
    onnx.checker.check_model(str(dest))


def _run(graph: Path, feeds: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray] | None:
    """The ``outputs`` of a graph on CPU; ``None`` when this machine cannot run it (fp16 kernels missing)."""
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
        names = {i.name for i in session.get_inputs()}
        values = session.run(outputs, {k: v for k, v in feeds.items() if k in names})
        return {n: np.asarray(v, np.float32) for n, v in zip(outputs, values, strict=True)}
    except Exception:
        if ".fp16." in graph.name:
            return None
        raise


def _versions(
    names: tuple[str, ...] = ("torch", "transformers", "onnx", "onnxruntime", "tokenizers"),
) -> dict[str, str]:
    import importlib

    return {name: str(importlib.import_module(name).__version__) for name in names}
