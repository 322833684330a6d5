"""Where a worker's time goes: py-spy samples of a busy worker, folded into the pipeline's stages.

``Recording`` runs ``py-spy record`` (from PyPI) on a worker process in the background, for a while after
a delay, without pausing it (``--nonblocking``), and reads its raw output: one line per distinct stack,
``thread (id): name;frame;...;frame count``, outermost frame first. Idle threads (waiting in a poll, a
queue or a lock) are not sampled, so the samples are where the worker's threads ran or were ready to run.

``fold`` assigns each stack to the stage of its innermost frame that belongs to one (``STAGES``, matched
on the frame's file): a NumPy call made by the decoder counts as decoding, a JSON dump made by the event
builder as building events. Stacks with no such frame fall into ``other``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path
from typing import TypedDict

STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("model graph (onnxruntime)", ("onnxruntime/",)),
    ("tokenize and window", ("tokenizers/", "stream_ner/model/windows.py", "stream_ner/model/features.py")),
    (
        "decode entities and sentiment",
        (
            "stream_ner/model/decode.py",
            "stream_ner/model/compounds.py",
            "stream_ner/model/entity.py",
            "stream_ner/model/sentiment.py",
            "stream_ner/model/runtime.py",
        ),
    ),
    ("brand linking", ("stream_ner/brands/",)),
    ("validate posts, build events", ("stream_ner/messages.py", "stream_ner/worker/annotate.py", "pydantic")),
    ("duplicate cache", ("stream_ner/worker/dedupe.py",)),
    ("Kafka client (consume, produce, callbacks)", ("confluent_kafka/", "stream_ner/kafka.py")),
    ("batching and admission", ("stream_ner/worker/batcher.py", "stream_ner/worker/admit.py")),
    ("offsets", ("stream_ner/worker/offsets.py",)),
    (
        "worker loop (poll, hand-over, delivery)",
        ("stream_ner/worker/runner.py", "stream_ner/worker/inference.py"),
    ),
    ("metrics", ("prometheus_client/", "stream_ner/worker/metrics.py")),
)
"""Stages in the order a post meets them; each lists path fragments of the files that are its code."""

OTHER = "other"
TOP_FRAMES = 12
"""How many of the most sampled innermost frames ``fold`` keeps."""
_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")
_THREAD = re.compile(r"^(?:process \d+:)?\s*thread \((?P<id>[0-9A-Fa-fx]+)\):?\s*(?P<name>.*)$")


class Folded(TypedDict):
    """Samples of one recording, by stage and by thread."""

    samples: int
    by_stage: dict[str, int]
    by_thread: dict[str, dict[str, int]]  # thread -> stage -> samples
    top_frames: list[tuple[str, str, int]]  # (thread, innermost Python frame without its line, samples)


def stage_of(frames: list[str]) -> str:
    """The stage of a stack (frames outermost first): that of its innermost frame belonging to one."""
    for frame in reversed(frames):
        match = _FRAME.match(frame)
        where = (match["file"] if match else frame).replace("\\", "/")
        for stage, fragments in STAGES:
            if any(fragment in where for fragment in fragments):
                return stage
    return OTHER


def fold(raw: str, thread_names: dict[str, str] | None = None) -> Folded:
    """Fold py-spy's raw output into samples per stage and per thread.

    ``thread_names`` maps a thread's id as py-spy prints it to a readable name; else its Python name.
    """
    by_stage: Counter[str] = Counter()
    by_thread: dict[str, Counter[str]] = {}
    leaves: Counter[tuple[str, str]] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = "process"
        if frames and (match := _THREAD.match(frames[0])):
            frames = frames[1:]
            thread = (thread_names or {}).get(match["id"]) or match["name"] or "unnamed thread"
        stage = stage_of(frames)
        by_stage[stage] += count
        by_thread.setdefault(thread, Counter())[stage] += count
        leaves[(thread, re.sub(r":\d+\)$", ")", frames[-1]) if frames else "?")] += count
        total += count
    return Folded(
        samples=total,
        by_stage=dict(by_stage.most_common()),
        by_thread={name: dict(c.most_common()) for name, c in by_thread.items()},
        top_frames=[(thread, leaf, n) for (thread, leaf), n in leaves.most_common(TOP_FRAMES)],
    )


def py_spy() -> str:
    """The py-spy executable next to this interpreter, else on PATH; ``RuntimeError`` when missing."""
    beside = Path(sys.executable).with_name("py-spy")
    found = str(beside) if beside.is_file() else shutil.which("py-spy")
    if not found:
        raise RuntimeError("py-spy is not installed: pip install -e '.[loadtest]'")
    return found


class Recording:
    """``py-spy record`` of process ``pid`` for ``seconds`` after ``delay_s``, in a background thread."""

    def __init__(self, pid: int, seconds: float, delay_s: float = 0.0, rate: int = 100) -> None:
        self.pid, self.seconds, self.delay_s, self.rate = pid, seconds, delay_s, rate
        self._dir = Path(tempfile.mkdtemp(prefix="stream-ner-profile-"))
        self._thread = threading.Thread(target=self._record, name="py-spy", daemon=True)
        self._error: str | None = None

    def __enter__(self) -> Recording:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._thread.join(self.delay_s + self.seconds + 30)

    def _record(self) -> None:
        stop = threading.Event()
        stop.wait(self.delay_s)
        command = [py_spy(), "record", "--pid", str(self.pid), "--duration", str(max(1, round(self.seconds)))]
        command += ["--rate", str(self.rate), "--format", "raw", "--threads", "--nonblocking"]
        command += ["--output", str(self._dir / "raw.txt")]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            self._error = done.stderr.strip()[-2000:] or f"py-spy exited with {done.returncode}"

    def folded(self) -> Folded:
        """The recording folded into stages; ``RuntimeError`` when py-spy failed."""
        path = self._dir / "raw.txt"
        if self._error is not None or not path.is_file():
            raise RuntimeError(f"py-spy recorded nothing: {self._error or 'no output'}")
        try:
            return fold(path.read_text())
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)
