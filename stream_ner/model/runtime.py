"""``NerModel``: a model artifact loaded for inference (onnxruntime, tokenizers and numpy; no torch).

``predict`` is the hot path: one ``encode_batch`` call, sliding windows for long texts, length-bucketed
batches padded per batch, one session run per batch, numpy decoding. ``analyze`` is the same pass with
the sentiment outputs decoded too (``stream_ner.model.sentiment``), for a model that has them. Both are
meant to be called from one thread at a time (the worker's inference thread); the session is created
once at load.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from stream_ner.errors import ModelError
from stream_ner.model import artifact
from stream_ner.model.cpu import x86_without_vnni
from stream_ner.model.decode import (
    AGGREGATIONS,
    TagSet,
    TextLogits,
    decode_texts,
    merge_windows,
    offset_vector,
)
from stream_ner.model.entity import Entity
from stream_ner.model.providers import CUDA, Runner, create_session, cuda_available
from stream_ner.model.sentiment import (
    LABELS,
    Analysis,
    SentimentInputs,
    check_targets,
    sentiments,
)
from stream_ner.model.windows import Encoded, WindowTokenizer, plan_windows

if TYPE_CHECKING:
    from stream_ner.settings import ModelSettings

DEFAULT_PATH = Path(__file__).parent / "default"
"""The model shipped in the package."""

_TOKEN_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "shape_ids")
_DTYPES = {
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(bool)": np.bool_,
}


_Piece = tuple[tuple[int, int], np.ndarray, np.ndarray, np.ndarray]
"""One window's outputs: its token range, tag logits, post logits and target logits."""


@dataclass(frozen=True, slots=True)
class _Input:
    """One graph input: its name, numpy dtype and rank."""

    name: str
    dtype: Any
    rank: int


class NerModel:
    """A NER model ready to run: ``NerModel.load(path).predict(texts)``.

    Attributes: ``name`` and ``version`` (from the manifest), ``precision`` of the graph loaded,
    ``providers`` in use, ``labels`` (entity types), ``max_length`` (tokens per window, specials included),
    ``has_sentiment`` (whether the graph has the sentiment outputs ``analyze`` needs), ``label_offsets``
    (entity type -> value added to its tags' logits before decoding: ``ner_config.json``'s
    ``label_offsets``, or what ``load`` was given).
    """

    def __init__(
        self,
        *,
        manifest: dict[str, Any],
        config: dict[str, Any],
        tokenizer: WindowTokenizer,
        runner: Runner,
        precision: str,
        aggregation: str,
        max_batch_size: int,
        max_batch_tokens: int,
        max_padding: float,
        label_offsets: dict[str, float] | None = None,
    ) -> None:
        self.name = str(manifest.get("name", "unnamed"))
        self.version = str(manifest.get("version", "0"))
        self.manifest = manifest
        self.precision = precision
        self.providers: list[str] = list(runner.session.get_providers())
        self.max_length = int(config.get("max_length", 128))
        self.stride = int(config.get("stride", 32))
        self.aggregation = aggregation
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens
        self.max_padding = max_padding
        self.tokenizer = tokenizer
        self._runner = runner
        try:
            self._tagset = TagSet.parse(list(config["id2label"]), str(config.get("scheme", "BIO")))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"bad label map in {artifact.NER_CONFIG}: {exc}") from exc
        offsets = (config.get("label_offsets") or {}) if label_offsets is None else label_offsets
        try:
            self.label_offsets = {str(t): float(v) for t, v in dict(offsets).items()}
            self._shift = offset_vector(self._tagset, self.label_offsets)
        except (TypeError, ValueError) as exc:
            raise ModelError(f"bad label offsets: {exc}") from exc
        self.labels = sorted({t for t in self._tagset.types if t})
        self._span = self.max_length - tokenizer.specials
        if not 0 <= self.stride < self._span:
            raise ModelError(
                f"stride {self.stride} must be below max_length minus special tokens ({self._span})"
            )
        self._inputs, self._constants = _plan_inputs(runner, config.get("inputs") or {})
        self._check_labels(runner, len(self._tagset.prefixes))
        self.has_sentiment = _check_sentiment(runner, config)

    @classmethod
    def load(
        cls,
        path: str | Path | None = None,
        *,
        precision: str = "auto",
        require_gpu: bool = False,
        intra_op_threads: int = 0,
        aggregation: str | None = None,
        max_batch_size: int = 256,
        max_batch_tokens: int = 8192,
        max_padding: float = 0.0,
        verify: bool = True,
        label_offsets: dict[str, float] | None = None,
    ) -> NerModel:
        """Load an artifact directory (``None``: the default model shipped in the package).

        ``precision`` ``auto`` picks fp16 on CUDA when the artifact has it, else int8 when it has it, else
        fp32. ``aggregation`` overrides the artifact's subword strategy (first, average, max).
        ``max_batch_size`` (windows) and ``max_batch_tokens`` bound one session run; ``max_padding`` is
        the largest share of padding in one (windows are sorted by length and cut where it would be
        exceeded). On CPUs, many windows of one length make the fastest runs: 0 and up to 256 windows ran
        tweets 1.16x (one thread) and 1.28x (two) as fast as 0.1 and 32 on the same calls. ``verify``
        checks the sha256 of the files used against the manifest. ``label_offsets`` replaces the
        artifact's (``{}``: none). Every problem is a ``ModelError``
        (``GpuUnavailableError`` when ``require_gpu`` cannot be met).
        """
        root = Path(path) if path is not None else DEFAULT_PATH
        if not root.is_dir():
            raise ModelError(f"model artifact {root} is not a directory")
        manifest = _read_json(root / artifact.MANIFEST)
        config = _read_json(root / artifact.NER_CONFIG)
        use_cuda = cuda_available()
        chosen = _choose_precision(root, precision, use_cuda)
        graph = root / artifact.graph_name(chosen)
        _check_int8_weights(manifest, chosen, graph)
        if verify:
            _verify(root, manifest, [artifact.NER_CONFIG, artifact.TOKENIZER, graph.name])
        strategy = aggregation or str(config.get("aggregation", "first"))
        if strategy not in AGGREGATIONS:
            raise ModelError(f"unknown aggregation {strategy!r}; expected one of {AGGREGATIONS}")
        session = create_session(
            graph, use_cuda=use_cuda, require_gpu=require_gpu, intra_op_threads=intra_op_threads
        )
        if use_cuda and precision == "auto" and CUDA not in session.get_providers():
            # onnxruntime-gpu without a usable GPU fell back to the CPU: choose again for the CPU
            chosen = _choose_precision(root, precision, use_cuda=False)
            graph = root / artifact.graph_name(chosen)
            _check_int8_weights(manifest, chosen, graph)
            if verify:
                _verify(root, manifest, [graph.name])
            session = create_session(
                graph, use_cuda=False, require_gpu=False, intra_op_threads=intra_op_threads
            )
        names = {i.name for i in session.get_inputs()}
        tokenizer = WindowTokenizer.from_file(root / artifact.TOKENIZER, with_shapes="shape_ids" in names)
        return cls(
            manifest=manifest,
            config=config,
            tokenizer=tokenizer,
            runner=Runner(session),
            precision=chosen,
            aggregation=strategy,
            max_batch_size=max_batch_size,
            max_batch_tokens=max_batch_tokens,
            max_padding=max_padding,
            label_offsets=label_offsets,
        )

    @classmethod
    def from_settings(
        cls, settings: ModelSettings, label_offsets: dict[str, float] | None = None
    ) -> NerModel:
        """Load as the ``model`` settings say (path, precision, require_gpu, intra-op threads).

        ``label_offsets`` replaces the artifact's, as in ``load``.
        """
        return cls.load(
            settings.path,
            precision=settings.precision,
            require_gpu=settings.require_gpu,
            intra_op_threads=settings.intra_op_threads,
            max_padding=settings.max_padding,
            label_offsets=label_offsets,
        )

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Tokens per text including special tokens; a text longer than ``max_length`` runs in windows."""
        return self.tokenizer.count_tokens(texts)

    def predict(self, texts: list[str]) -> list[list[Entity]]:
        """Entities per text, in input order; offsets are into each original text (end exclusive)."""
        encoded = self.tokenizer.encode(texts)
        windows = plan_windows([len(e) for e in encoded], self._span, self.stride)
        pieces: dict[int, list[tuple[tuple[int, int], np.ndarray]]] = defaultdict(list)
        for batch in self.tokenizer.make_batches(
            encoded,
            windows,
            max_batch_size=self.max_batch_size,
            max_batch_tokens=self.max_batch_tokens,
            max_padding=self.max_padding,
        ):
            logits = self._runner.run(self._feed(batch.arrays))
            p = batch.prefix
            for row, w in enumerate(batch.windows):
                pieces[w.text_index].append(((w.start, w.end), logits[row, p : p + w.length]))
        merged = [
            _text_logits(enc, sorted(pieces.get(index, []), key=lambda piece: piece[0][0]))
            for index, enc in enumerate(encoded)
        ]
        return decode_texts(merged, self._tagset, self.aggregation, self._shift)

    def analyze(self, texts: list[str], targets: list[list[tuple[int, int]]] | None = None) -> list[Analysis]:
        """Entities with their sentiment, the post's sentiment and each target's, per text, in input order.

        ``targets``, when given, holds for each text a list of ``(start, end)`` character spans (end
        exclusive); ``Analysis.targets`` then has one ``Sentiment`` per span, in order. A span that is
        empty or not inside its text is a ``ValueError`` naming the text index and the span. Entities are
        exactly ``predict``'s, each with ``sentiment`` set; how windows and spans are decoded is in
        ``stream_ner.model.sentiment``. A model without sentiment outputs raises ``ModelError``.
        """
        if not self.has_sentiment:
            raise ModelError(
                f"model {self.name} {self.version} ({self.precision}) has no sentiment outputs "
                f"({artifact.POST_SENTIMENT}, {artifact.TARGET_SENTIMENT}): analyze needs a model "
                "trained with sentiment heads; predict still works"
            )
        check_targets(texts, targets)
        names = ("logits", artifact.POST_SENTIMENT, artifact.TARGET_SENTIMENT)
        encoded = self.tokenizer.encode(texts)
        windows = plan_windows([len(e) for e in encoded], self._span, self.stride)
        pieces: dict[int, list[_Piece]] = defaultdict(list)
        for batch in self.tokenizer.make_batches(
            encoded,
            windows,
            max_batch_size=self.max_batch_size,
            max_batch_tokens=self.max_batch_tokens,
            max_padding=self.max_padding,
        ):
            logits, post, target = self._runner.run_outputs(self._feed(batch.arrays), names)
            p = batch.prefix
            for row, w in enumerate(batch.windows):
                piece = (
                    (w.start, w.end),
                    logits[row, p : p + w.length],
                    post[row],
                    target[row, p : p + w.length],
                )
                pieces[w.text_index].append(piece)
        return self._analyses(encoded, pieces, targets)

    def _analyses(
        self,
        encoded: list[Encoded],
        pieces: dict[int, list[_Piece]],
        targets: list[list[tuple[int, int]]] | None,
    ) -> list[Analysis]:
        """Every text's ``Analysis`` from its windows' outputs (``stream_ner.model.sentiment``).

        The entities of all texts in one ``decode_texts`` call; the sentiments of all posts and of all
        spans (entities first, then the targets asked for) in one ``sentiments`` call.
        """
        merged: list[TextLogits] = []
        target_logits: list[np.ndarray | None] = []
        post_windows: list[list[np.ndarray]] = []
        for index, enc in enumerate(encoded):
            found = sorted(pieces.get(index, []), key=lambda piece: piece[0][0])
            post_windows.append([x[2] for x in found])
            merged.append(_text_logits(enc, [(x[0], x[1]) for x in found]))
            target_logits.append(
                merge_windows(len(enc), [x[0] for x in found], [x[3] for x in found]) if found else None
            )
        found_entities = decode_texts(merged, self._tagset, self.aggregation, self._shift)
        inputs: list[SentimentInputs] = []
        for index, (enc, entities) in enumerate(zip(encoded, found_entities, strict=True)):
            asked = targets[index] if targets is not None else []
            spans = [(e.start, e.end) for e in entities] + [(s, e) for s, e in asked]
            inputs.append(SentimentInputs(post_windows[index], target_logits[index], enc.offsets, spans))
        out = []
        for entities, (post, scored) in zip(found_entities, sentiments(inputs), strict=True):
            own, of_targets = scored[: len(entities)], scored[len(entities) :]
            with_sentiment = [
                Entity(e.start, e.end, e.label, e.score, e.text, s)
                for e, s in zip(entities, own, strict=True)
            ]
            out.append(Analysis(with_sentiment, post, of_targets))
        return out

    def _feed(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows, width = arrays["input_ids"].shape
        feed = {i.name: arrays[i.name].astype(i.dtype, copy=False) for i in self._inputs}
        for spec, value in self._constants:
            shape = ((), (rows,), (rows, width))[spec.rank]
            feed[spec.name] = np.full(shape, value, dtype=spec.dtype)
        return feed

    def _check_labels(self, runner: Runner, n_labels: int) -> None:
        outputs = {o.name: o for o in runner.session.get_outputs()}
        if runner.output not in outputs:
            raise ModelError(f"the graph has no {runner.output!r} output (outputs: {sorted(outputs)})")
        size = outputs[runner.output].shape[-1]
        if isinstance(size, int) and size != n_labels:
            raise ModelError(f"the graph outputs {size} labels but {artifact.NER_CONFIG} lists {n_labels}")

    def __repr__(self) -> str:
        return f"NerModel({self.name!r}, {self.version!r}, precision={self.precision!r}, {self.providers})"


def _text_logits(enc: Encoded, found: list[tuple[tuple[int, int], np.ndarray]]) -> TextLogits:
    """A text's tag logits merged over its windows (``found``: each window's span and logits, in order)."""
    if not found:
        return TextLogits(enc.text, np.zeros((0, 0), dtype=np.float32), enc.offsets, enc.word_ids)
    logits = merge_windows(len(enc), [span for span, _ in found], [x for _, x in found])
    return TextLogits(enc.text, logits, enc.offsets, enc.word_ids)


def _check_sentiment(runner: Runner, config: dict[str, Any]) -> bool:
    """Whether the graph has both sentiment outputs, in the label order ``analyze`` decodes.

    A graph with one of the two, or whose ``sentiment_labels`` are not ``LABELS``, is a ``ModelError``.
    """
    outputs = {o.name for o in runner.session.get_outputs()}
    present = [n for n in (artifact.POST_SENTIMENT, artifact.TARGET_SENTIMENT) if n in outputs]
    if not present:
        return False
    if len(present) == 1:
        raise ModelError(f"the graph has {present[0]!r} but not both sentiment outputs")
    labels = config.get("sentiment_labels")
    if labels != list(LABELS):
        raise ModelError(
            f"{artifact.NER_CONFIG} gives sentiment_labels {labels!r}; this runtime decodes {list(LABELS)}"
        )
    return True


def _plan_inputs(runner: Runner, constants: dict[str, Any]) -> tuple[list[_Input], list[tuple[_Input, Any]]]:
    """Split the graph's inputs into token arrays we compute and constants from ``ner_config['inputs']``."""
    computed, constant = [], []
    for node in runner.session.get_inputs():
        dtype = _DTYPES.get(node.type)
        if dtype is None:
            raise ModelError(f"input {node.name!r} has unsupported type {node.type}")
        spec = _Input(node.name, dtype, len(node.shape))
        if node.name in _TOKEN_INPUTS:
            computed.append(spec)
        elif node.name in constants:
            if spec.rank > 2:
                raise ModelError(f"constant input {node.name!r} has rank {spec.rank}; at most 2 is supported")
            constant.append((spec, constants[node.name]))
        else:
            raise ModelError(
                f"the graph takes an input {node.name!r} this runtime does not know and "
                f"{artifact.NER_CONFIG} gives no default for it"
            )
    if not any(s.name == "input_ids" for s in computed):
        raise ModelError("the graph takes no 'input_ids'")
    return computed, constant


def _choose_precision(root: Path, precision: str, use_cuda: bool) -> str:
    present = [p for p in artifact.PRECISIONS if (root / artifact.graph_name(p)).is_file()]
    if precision != "auto":
        if precision not in artifact.PRECISIONS:
            raise ModelError(
                f"unknown precision {precision!r}; expected auto or one of {artifact.PRECISIONS}"
            )
        if precision not in present:
            raise ModelError(f"{root} has no {precision} graph (has: {', '.join(present) or 'none'})")
        return precision
    preference = ("fp16", "fp32", "int8") if use_cuda else ("int8", "fp32")
    for candidate in preference:
        if candidate in present:
            return candidate
    raise ModelError(f"{root} has no graph usable here (has: {', '.join(present) or 'none'})")


def _check_int8_weights(manifest: dict[str, Any], precision: str, graph: Path) -> None:
    """Refuse an INT8 graph with full-range weights on an x86 CPU without VNNI (``stream_ner.model.cpu``).

    Such a CPU sums them in saturating int16: the graph would run and give wrong entities.
    """
    if precision != "int8":
        return
    bits = (manifest.get("quantization") or {}).get("int8", {}).get("weight_bits", 7)
    if bits == 8 and x86_without_vnni():
        raise ModelError(
            f"{graph} has full-range (8-bit) int8 weights, which an x86 CPU without VNNI sums wrongly; "
            "export it with --weight-bits 7 or run the fp32 graph"
        )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelError(f"{path} is not a JSON object")
    return data


def _verify(root: Path, manifest: dict[str, Any], names: list[str]) -> None:
    """Check the files' sha256 against ``manifest['files']`` (files it does not list are not checked)."""
    listed = manifest.get("files") or {}
    for name in names:
        expected = listed.get(name)
        if expected is not None and artifact.sha256(root / name) != expected:
            raise ModelError(f"{root / name} does not match the sha256 in {artifact.MANIFEST}")
