"""py-spy's raw stacks fold into the worker's stages by their innermost frame that belongs to one."""

from __future__ import annotations

from loadtest.profile import OTHER, fold, stage_of

BOOT = "Thread._bootstrap (threading.py:1002);Thread.run (stream_ner/worker/inference.py:88)"
RAW = "\n".join(
    [
        f"thread (101): inference;{BOOT};NerModel.analyze (stream_ner/model/runtime.py:210);"
        "InferenceSession.run (onnxruntime/capi/onnxruntime_inference_collection.py:266) 70",
        # NumPy called by the decoder is decoding, not "other"
        f"thread (101): inference;{BOOT};best_valid_tags (stream_ner/model/decode.py:77);"
        "argmax (numpy/core/fromnumeric.py:1229) 10",
        f"thread (101): inference;{BOOT};Linker.link (stream_ner/brands/linking.py:140) 5",
        "thread (100): MainThread;<module> (stream_ner/__main__.py:4);Worker.run "
        "(stream_ner/worker/runner.py:301);json.dumps (json/__init__.py:231) 12",
        "thread (100): MainThread;<module> (spin.py:7) 3",
        "not a stack line",
    ]
)


def test_samples_fold_into_stages_per_thread_and_total() -> None:
    folded = fold(RAW)
    assert folded["samples"] == 100
    assert folded["by_stage"] == {
        "model graph (onnxruntime)": 70,
        "worker loop (poll, hand-over, delivery)": 12,
        "decode entities and sentiment": 10,
        "brand linking": 5,
        OTHER: 3,
    }
    assert folded["by_thread"]["inference"] == {
        "model graph (onnxruntime)": 70,
        "decode entities and sentiment": 10,
        "brand linking": 5,
    }
    assert sum(folded["by_thread"]["MainThread"].values()) == 15
    thread, frame, count = folded["top_frames"][0]
    assert (thread, count) == ("inference", 70)
    assert frame == "InferenceSession.run (onnxruntime/capi/onnxruntime_inference_collection.py)"


def test_the_innermost_frame_with_a_stage_decides() -> None:
    frames = [
        "run (stream_ner/worker/runner.py:10)",
        "to_json (stream_ner/messages.py:5)",
        "dumps (json/x.py:1)",
    ]
    assert stage_of(frames) == "validate posts, build events"
    assert stage_of(["<module> (spin.py:1)"]) == OTHER
    assert stage_of([]) == OTHER
