"""``NerModel`` end to end on real onnxruntime sessions and a real tokenizer.

Two models: a lookup-table graph built here (each token id's logits are a fixed row, so the expected
entities are known exactly: offsets, windows and merging can be checked character by character), and the
default model shipped in the package (invariants that must hold for any trained model).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer

import stream_ner
from stream_ner.errors import GpuUnavailableError, ModelError
from stream_ner.model import artifact, runtime
from stream_ner.model.cpu import x86_without_vnni
from stream_ner.model.providers import cuda_available
from stream_ner.model.runtime import DEFAULT_PATH, NerModel
from tests.unit.test_windows import EDGE_TEXTS, tokenizer_path

LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-PRODUCT", "I-PRODUCT"]
TABLE = {  # token -> label the lookup model gives it; every other token is O
    "tim": "B-PER",
    "cook": "I-PER",
    "apple": "B-ORG",
    "nike": "B-ORG",
    "starbucks": "B-ORG",
    "paris": "B-LOC",
    "london": "B-LOC",
    "東": "B-LOC",
    "京": "I-LOC",
    "م": "B-PER",
    "iphone": "B-PRODUCT",
}
_NP = {TensorProto.INT64: np.int64, TensorProto.INT32: np.int32}


def build_lookup_artifact(
    root: Path,
    *,
    id_type: int = TensorProto.INT64,
    extra_inputs: dict[str, int] | None = None,
    constants: dict[str, int] | None = None,
    precisions: tuple[str, ...] = ("fp32",),
    scheme_labels: list[str] = LABELS,
    max_length: int = 128,
    stride: int = 32,
) -> Path:
    """An artifact whose graph gives each token id a fixed row of logits (``TABLE``).

    The graph takes ``input_ids``, ``attention_mask``, ``token_type_ids``, ``shape_ids`` and any
    ``extra_inputs`` (name -> rank), all of ``id_type``; it uses every input (times zero) so none is
    pruned away.
    """
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(tokenizer_path(), root / artifact.TOKENIZER)
    tok = Tokenizer.from_file(str(root / artifact.TOKENIZER))
    table = np.zeros((tok.get_vocab_size(), len(scheme_labels)), dtype=np.float32)
    table[:, scheme_labels.index("O")] = 6.0
    for token, label in TABLE.items():
        if label in scheme_labels:
            table[tok.token_to_id(token)] = 0.0
            table[tok.token_to_id(token), scheme_labels.index(label)] = 6.0
    names = ["input_ids", "attention_mask", "token_type_ids", "shape_ids"]
    inputs = [helper.make_tensor_value_info(n, id_type, ["batch_size", "sequence_length"]) for n in names]
    nodes = [helper.make_node("Gather", ["table", "input_ids"], ["rows"], axis=0)]
    total = "attention_mask"
    for i, name in enumerate(names[2:] + list(extra_inputs or {})):
        nodes.append(helper.make_node("Add", [total, name], [f"sum{i}"]))
        total = f"sum{i}"
    for name, rank in (extra_inputs or {}).items():
        dims = ["batch_size", "sequence_length"][:rank]
        inputs.append(helper.make_tensor_value_info(name, id_type, dims))
    nodes += [
        helper.make_node("Cast", [total], ["sumf"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["sumf", "zero"], ["nothing"]),
        helper.make_node("Unsqueeze", ["nothing", "axis2"], ["nothing3"]),
        helper.make_node("Add", ["rows", "nothing3"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "lookup",
        inputs,
        [
            helper.make_tensor_value_info(
                "logits", TensorProto.FLOAT, ["batch_size", "sequence_length", len(scheme_labels)]
            )
        ],
        initializer=[
            numpy_helper.from_array(table, "table"),
            numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
            numpy_helper.from_array(np.array([2], dtype=np.int64), "axis2"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    for precision in precisions:
        onnx.save(model, root / artifact.graph_name(precision))
    config = {
        "id2label": scheme_labels,
        "scheme": artifact.tag_scheme(scheme_labels),
        "max_length": max_length,
        "stride": stride,
        "aggregation": "first",
        "inputs": constants or {},
    }
    (root / artifact.NER_CONFIG).write_text(json.dumps(config))
    files = {p.name: artifact.sha256(p) for p in sorted(root.iterdir())}
    (root / artifact.MANIFEST).write_text(json.dumps({"name": "lookup", "version": "1.2.3", "files": files}))
    return root


@pytest.fixture(scope="module")
def lookup(tmp_path_factory: pytest.TempPathFactory) -> NerModel:
    return NerModel.load(build_lookup_artifact(tmp_path_factory.mktemp("lookup")))


def expected_entities(text: str) -> list[tuple[int, int, str, str]]:
    """What the lookup model must find in a text of whole words separated by spaces."""
    patterns = [
        (r"\btim\s+cook\b", "PER"),
        (r"\b(?:apple|nike|starbucks)\b", "ORG"),
        (r"\b(?:paris|lon\u200d?don)\b", "LOC"),
        (r"東京", "LOC"),
        (r"\biphone\b", "PRODUCT"),
    ]
    found = [
        (m.start(), m.end(), label, m.group())
        for pattern, label in patterns
        for m in re.finditer(pattern, text, flags=re.IGNORECASE)
    ]
    return sorted(found)


def spans(entities: list[stream_ner.Entity]) -> list[tuple[int, int, str, str]]:
    return [(e.start, e.end, e.label, e.text) for e in entities]


AWKWARD_POSTS = [
    (
        "Tim Cook just showed the new iPhone in Paris 📱🇫🇷 #Apple @nike https://apple.com/iphone?x=1",
        [
            (0, "PER", "Tim Cook"),
            (29, "PRODUCT", "iPhone"),
            (39, "LOC", "Paris"),
            (50, "ORG", "Apple"),
            (57, "ORG", "nike"),
            (70, "ORG", "apple"),
            (80, "PRODUCT", "iphone"),
        ],
    ),
    # emoji glued to words, skin tones, ZWJ sequences; runs of spaces inside an entity are kept
    (
        "😀Apple👍🏽 #starbucks❤️‍🔥 London👨‍👩‍👧 tim   cook",
        [(1, "ORG", "Apple"), (10, "ORG", "starbucks"), (24, "LOC", "London"), (36, "PER", "tim   cook")],
    ),
    # CJK characters are words of their own; an Arabic word is found by its first word piece
    ("東京 で Apple مرحبا بالعالم Москва", [(0, "LOC", "東京"), (5, "ORG", "Apple"), (11, "PER", "مرحبا")]),
    # tabs, no-break spaces, a zero-width space, CRLF, leading and trailing blanks
    (
        " \tApple\u00a0\u00a0Nike\u200b \n\nLONDON\r\n  ",
        [(2, "ORG", "Apple"), (9, "ORG", "Nike"), (17, "LOC", "LONDON")],
    ),
    # the whole word after @ or # is the entity when its first word piece is
    (
        "@TimCook @apple #ParisFashionWeek nothing here",
        [(1, "PER", "TimCook"), (10, "ORG", "apple"), (17, "LOC", "ParisFashionWeek")],
    ),
    ("no entities at all, just words 😂", []),
    ("", []),
    ("   \n\t ", []),
]


@pytest.mark.parametrize(("text", "expected"), AWKWARD_POSTS)
def test_lookup_model_finds_exact_spans_on_awkward_posts(
    lookup: NerModel, text: str, expected: list[tuple[int, str, str]]
) -> None:
    (found,) = lookup.predict([text])
    assert [(e.start, e.label, e.text) for e in found] == expected
    assert all(text[e.start : e.end] == e.text and e.text.strip() == e.text for e in found)
    assert all(0.0 < e.score <= 1.0 for e in found)


def test_batch_of_many_lengths_keeps_order_and_matches_one_by_one(lookup: NerModel) -> None:
    texts = (
        [t for t, _ in AWKWARD_POSTS] + ["Apple " * n + "Tim Cook" for n in (0, 3, 30, 200)] + ["Paris"] * 70
    )
    batched = lookup.predict(texts)
    assert len(batched) == len(texts) and lookup.predict([]) == []
    assert [spans(x) for x in batched] == [spans(lookup.predict([t])[0]) for t in texts]
    assert [(e.start, e.label, e.text) for e in batched[0]] == AWKWARD_POSTS[0][1]
    assert [len(x) for x in batched[len(AWKWARD_POSTS) :]] == [1, 4, 31, 201] + [1] * 70


def test_long_text_runs_in_windows_and_loses_or_duplicates_nothing(tmp_path: Path) -> None:
    model = NerModel.load(build_lookup_artifact(tmp_path, max_length=40, stride=8), max_batch_size=4)
    fillers = ["so", "the", "weather 🌧️", "https://t.co/xyz", "#tbt", "@someone", "lol", "ok"]
    rng = np.random.default_rng(7)
    words = []
    for i in range(600):
        words.append(
            ["Tim Cook", "Apple", "London", "Lon\u200ddon", "iPhone", "東京"][i % 6] if i % 5 == 0 else ""
        )
        words.append(fillers[rng.integers(len(fillers))])
    text = " ".join(w for w in words if w)
    assert len(text) > 3000 and model.count_tokens([text])[0] > 20 * model.max_length
    (found,) = model.predict([text])
    assert spans(found) == expected_entities(text)
    assert len({(e.start, e.end) for e in found}) == len(found)
    assert len(found) == 120


def test_manifest_name_version_and_auto_precision(tmp_path: Path) -> None:
    model = NerModel.load(build_lookup_artifact(tmp_path, precisions=("fp32", "int8")))
    assert (model.name, model.version) == ("lookup", "1.2.3")
    assert model.precision == ("fp32" if cuda_available() else "int8")
    assert model.labels == ["LOC", "ORG", "PER", "PRODUCT"]
    assert NerModel.load(tmp_path, precision="fp32").precision == "fp32"
    with pytest.raises(ModelError, match="no fp16 graph"):
        NerModel.load(tmp_path, precision="fp16")


def test_input_types_and_constant_inputs_are_read_from_the_session(tmp_path: Path) -> None:
    root = build_lookup_artifact(
        tmp_path,
        id_type=TensorProto.INT32,
        extra_inputs={"lang_id": 2, "flag": 0},
        constants={"lang_id": 3, "flag": 1},
    )
    model = NerModel.load(root)
    text = "Nike in Paris"
    assert spans(model.predict([text])[0]) == expected_entities(text)


def test_unknown_input_is_an_error_at_load(tmp_path: Path) -> None:
    root = build_lookup_artifact(tmp_path, extra_inputs={"mystery": 2})
    with pytest.raises(ModelError, match="mystery"):
        NerModel.load(root)


def test_bioes_artifact(tmp_path: Path) -> None:
    labels = ["O", "B-PER", "I-PER", "E-PER", "S-PER", "S-ORG", "S-LOC", "B-ORG", "E-ORG"]
    model = NerModel.load(build_lookup_artifact(tmp_path, scheme_labels=labels))
    (found,) = model.predict(["Tim Cook and Apple and iPhone"])  # no PRODUCT in these labels
    assert spans(found) == [(0, 8, "PER", "Tim Cook"), (13, 18, "ORG", "Apple")]


def test_corrupt_or_missing_artifacts_are_model_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not a directory"):
        NerModel.load(tmp_path / "absent")
    root = build_lookup_artifact(tmp_path / "a")
    with open(root / artifact.graph_name("fp32"), "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ModelError, match="sha256"):
        NerModel.load(root)
    (root / artifact.NER_CONFIG).write_text("{not json")
    with pytest.raises(ModelError, match="cannot read"):
        NerModel.load(root, verify=False)
    with pytest.raises(ModelError, match="aggregation"):
        NerModel.load(build_lookup_artifact(tmp_path / "b"), aggregation="median")


def test_require_gpu_fails_clearly_without_cuda(tmp_path: Path) -> None:
    root = build_lookup_artifact(tmp_path)
    if cuda_available():
        assert "CUDAExecutionProvider" in NerModel.load(root, require_gpu=True).providers
    else:
        with pytest.raises(GpuUnavailableError, match="CUDAExecutionProvider"):
            NerModel.load(root, require_gpu=True)


# --- the default model shipped in the package ---------------------------------------------------


@pytest.fixture(scope="module")
def default_model() -> NerModel:
    assert (DEFAULT_PATH / artifact.MANIFEST).is_file(), "the default model artifact is missing"
    return NerModel.load()


def test_default_model_loads_with_a_name_and_version(default_model: NerModel) -> None:
    assert default_model.name and default_model.version
    assert set(default_model.labels) == {"PER", "ORG", "LOC", "PRODUCT"}


def test_label_offsets_given_at_load_replace_the_artifacts_and_bad_ones_are_model_errors() -> None:
    text = ["Angela Merkel met Emmanuel Macron in Paris"]
    none = NerModel.load(label_offsets={})
    all_product = NerModel.load(label_offsets={"PRODUCT": 40.0})
    assert none.label_offsets == {} and all_product.label_offsets == {"PRODUCT": 40.0}
    assert {e.label for e in all_product.predict(text)[0]} == {"PRODUCT"}
    assert {e.label for e in none.predict(text)[0]} != {"PRODUCT"}
    with pytest.raises(ModelError, match="bad label offsets: .*unknown types \\['BRAND'\\]"):
        NerModel.load(label_offsets={"BRAND": 1.0})
    with pytest.raises(ModelError, match="bad label offsets"):
        NerModel.load(label_offsets={"PRODUCT": float("nan")})


def test_default_model_offsets_hold_on_awkward_posts(default_model: NerModel) -> None:
    texts = EDGE_TEXTS + [
        "Tim Cook showed the iPhone 16 in Paris 📱 #Apple @nike https://apple.com",
        "Just landed in New York with @united ✈️ then lunch at Starbucks",
        ("Elon Musk says Tesla will open a factory in Berlin. " * 40).strip(),
    ]
    results = default_model.predict(texts)
    assert len(results) == len(texts)
    for text, found in zip(texts, results, strict=True):
        for e in found:
            assert text[e.start : e.end] == e.text and e.text == e.text.strip() and e.text
            assert e.label in default_model.labels and 0.0 < e.score <= 1.0
        ordered = sorted((e.start, e.end) for e in found)
        assert all(a[1] <= b[0] for a, b in zip(ordered, ordered[1:], strict=False)), "overlapping entities"
    assert sum(map(len, results)) > 0


def test_default_model_batching_does_not_change_answers(default_model: NerModel) -> None:
    texts = [
        "Tim Cook showed the iPhone 16 in Paris",
        "lol",
        "Had a great time at Disneyland with my family 🎢 #vacation",
        "Microsoft and Google are fighting over OpenAI talent in Seattle",
    ]
    together = default_model.predict(texts)
    alone = [default_model.predict([t])[0] for t in texts]
    assert [spans(x) for x in together] == [spans(x) for x in alone]


def test_predict_command_adds_entities_to_each_record(tmp_path: Path) -> None:
    from stream_ner.cli import main

    root = build_lookup_artifact(tmp_path / "model")
    records = [{"id": "a", "text": "Tim Cook in Paris", "lang": "en"}, {"id": "b", "text": "nothing"}]
    source, sink = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    argv = ["model", "predict", "--input", str(source), "--output", str(sink), "--model", str(root)]
    assert main([*argv, "--batch-size", "1"]) == 0
    out = [json.loads(line) for line in sink.read_text(encoding="utf-8").splitlines()]
    assert [{k: v for k, v in r.items() if k != "entities"} for r in out] == records
    assert [[(e["start"], e["end"], e["label"], e["text"]) for e in r["entities"]] for r in out] == [
        [(0, 8, "PER", "Tim Cook"), (12, 17, "LOC", "Paris")],
        [],
    ]
    source.write_text('{"id": "c"}\n', encoding="utf-8")
    assert main(argv) == 2  # a record without text is an error, not a silent skip


AVX2_ONLY = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma bmi2\n"
WITH_VNNI = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 avx512f avx512_vnni\n"


def test_a_cpu_without_vnni_is_told_from_its_flags() -> None:
    assert x86_without_vnni(AVX2_ONLY, "x86_64")
    assert not x86_without_vnni(WITH_VNNI, "x86_64")
    assert not x86_without_vnni("flags\t\t: avx2 avx_vnni\n", "x86_64")  # VNNI on 256-bit vectors
    assert not x86_without_vnni(AVX2_ONLY, "aarch64")  # int8 dot products accumulate in int32 there
    assert not x86_without_vnni("processor\t: 0\n", "x86_64")  # no flags: nothing known against


def test_full_range_int8_weights_are_refused_on_a_cpu_without_vnni(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = build_lookup_artifact(tmp_path, precisions=("fp32", "int8"))
    manifest = json.loads((root / artifact.MANIFEST).read_text())
    manifest["quantization"] = {"int8": {"weight_bits": 8}}
    (root / artifact.MANIFEST).write_text(json.dumps(manifest))
    monkeypatch.setattr(runtime, "x86_without_vnni", lambda: True)
    with pytest.raises(ModelError, match="full-range"):
        NerModel.load(root, precision="int8")
    assert NerModel.load(root, precision="fp32").precision == "fp32"
    monkeypatch.setattr(runtime, "x86_without_vnni", lambda: False)
    assert NerModel.load(root, precision="int8").precision == "int8"
    manifest["quantization"] = {"int8": {"weight_bits": 7}}
    (root / artifact.MANIFEST).write_text(json.dumps(manifest))
    monkeypatch.setattr(runtime, "x86_without_vnni", lambda: True)
    assert NerModel.load(root, precision="int8").precision == "int8"
