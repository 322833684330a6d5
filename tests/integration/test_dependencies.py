"""What real processes import: the worker never loads the offline stack or faust, the aggregator never
loads onnxruntime. Read from ``python -X importtime``, which lists every module a process imported."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from stream_ner.localstack import free_port
from tests.integration.worker_harness import Topics, post, produce, read_all, start_worker

OFFLINE = {"torch", "transformers", "onnx", "onnxscript"}


def imported(log: Path) -> set[str]:
    lines = log.read_text(errors="replace").splitlines()
    return {line.rpartition("|")[2].strip() for line in lines if line.startswith("import time:")}


@pytest.fixture
def topics(kafka_bootstrap, request) -> Topics:
    t = Topics.fresh(request.node.name.replace("_", "-")[:40])
    t.apply(kafka_bootstrap)
    return t


def test_a_worker_process_loads_neither_the_offline_stack_nor_faust(kafka_bootstrap, topics, tmp_path):
    worker = start_worker(kafka_bootstrap, topics, tmp_path, "w0", python_flags=("-X", "importtime"))
    try:
        worker.wait_assigned()
        produce(kafka_bootstrap, topics.raw, [post(1)])
        assert len(read_all(kafka_bootstrap, topics.entities, 1, timeout=60)) == 1
    finally:
        assert worker.terminate() == 0, worker.log()
    modules = imported(worker.log_path)
    assert {"onnxruntime", "ahocorasick", "stream_ner.worker.runner"} <= modules  # the listing is complete
    assert not (OFFLINE | {"faust"}) & modules
    assert not [m for m in modules if m.startswith("stream_ner.offline")]


def test_the_aggregator_process_does_not_load_onnxruntime(kafka_bootstrap, redis_url, topics, tmp_path):
    port = free_port()
    env = os.environ | {
        "STREAM_NER_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "STREAM_NER_REDIS__URL": redis_url,
        "STREAM_NER_TOPICS__ENTITIES": topics.entities,
        "STREAM_NER_TOPICS__BRAND_AGGREGATES": topics.aggregates,
        "STREAM_NER_TOPICS__REPLICATION_FACTOR": "1",
        "STREAM_NER_AGGREGATE__APP_ID": topics.group,
        "STREAM_NER_AGGREGATE__METRICS_PORT": str(port),
        "STREAM_NER_REDIS__KEY_PREFIX": topics.group,
    }
    log = tmp_path / "aggregate.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-X", "importtime", "-m", "stream_ner", "aggregate"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 90
        while True:  # serving metrics: the app has started, its imports are done
            assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "the aggregator did not serve metrics within 90 s"
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).close()
                break
            except OSError:
                time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(60)
    modules = imported(log)
    assert "faust" in modules  # the listing is complete
    assert not ({"onnxruntime", "tokenizers"} | OFFLINE) & modules
