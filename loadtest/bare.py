"""The bare runtime: posts/s of ``NerModel.predict`` alone, on the generator's texts, batch by batch.

The reference the stream is compared with: same model and precision, same ``intra_op_threads``, batches
of ``max_batch_posts`` texts drawn from the same varied stream (same seed) the generator sends. No Kafka,
no JSON, no brand linking. ``measure`` runs in a fresh subprocess (``python -m loadtest.bare``) so its
threads and memory are its own, like a worker's.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import cast

from loadtest.corpus import load_corpus, stream
from loadtest.schema import BareFigures
from stream_ner.settings import WorkerSettings


def run(
    texts: list[str],
    batch_posts: int,
    precision: str,
    threads: int,
    seconds: float,
    seed: int,
    model_path: str | None = None,
) -> BareFigures:
    """Load the model (default: shipped), warm it up, run whole batches for ``seconds``; figures.

    The model does what a worker asks of it: ``analyze`` when it has sentiment heads, else ``predict``.
    """
    from stream_ner.model import runtime

    model = runtime.NerModel.load(model_path, precision=precision, intra_op_threads=threads)
    call = model.analyze if model.has_sentiment else model.predict
    return time_calls(
        call,
        stream(texts, seed),
        batch_posts,
        seconds,
        precision=model.precision,
        threads=threads,
        model=f"{model.name} {model.version}",
    )


def time_calls(
    call: Callable[[list[str]], object],
    source: Iterator[str],
    batch_posts: int,
    seconds: float,
    *,
    precision: str,
    threads: int,
    model: str,
) -> BareFigures:
    """Warm ``call`` up on 3 batches of ``source``, then call it on whole batches for ``seconds``; figures."""
    for _ in range(3):
        call(list(itertools.islice(source, batch_posts)))
    batch_rates, posts = [], 0
    cpu_began, began = time.process_time(), time.perf_counter()
    while (elapsed := time.perf_counter() - began) < seconds:
        batch = list(itertools.islice(source, batch_posts))
        t0 = time.perf_counter()
        call(batch)
        batch_rates.append(len(batch) / (time.perf_counter() - t0))
        posts += len(batch)
    cpu_s = time.process_time() - cpu_began
    return BareFigures(
        posts_per_s=round(posts / elapsed, 1),
        median_batch_posts_per_s=round(statistics.median(batch_rates), 1),
        posts=posts,
        seconds=round(elapsed, 2),
        cpu_pct=round(100 * cpu_s / elapsed, 1),
        posts_per_cpu_s=round(posts / cpu_s, 1) if cpu_s else None,
        batch_posts=batch_posts,
        precision=precision,
        intra_op_threads=threads,
        model=model,
    )


def measure(
    corpus: str | None,
    batch_posts: int,
    precision: str,
    threads: int,
    seconds: float,
    seed: int,
    model_path: str | None = None,
) -> BareFigures:
    """``run`` in a subprocess; raises ``RuntimeError`` with its stderr when it fails."""
    command = [sys.executable, "-m", "loadtest.bare", "--batch", str(batch_posts), "--precision", precision]
    command += ["--threads", str(threads), "--seconds", str(seconds), "--seed", str(seed), "--json"]
    if corpus:
        command += ["--corpus", corpus]
    if model_path:
        command += ["--model", model_path]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"bare runtime measurement failed:\n{done.stderr[-3000:]}")
    return cast(BareFigures, json.loads(done.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    """Print the bare runtime's posts/s."""
    parser = argparse.ArgumentParser(prog="python -m loadtest.bare", description=__doc__.splitlines()[0])
    batch = WorkerSettings.model_fields["max_batch_posts"].default
    parser.add_argument("--batch", type=int, default=batch, help="posts per predict call (max_batch_posts)")
    parser.add_argument("--precision", default="int8")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--corpus", default=None)
    parser.add_argument("--model", default=None, help="model artifact directory (default: shipped)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="one JSON line instead of text")
    args = parser.parse_args(argv)
    figures = run(
        load_corpus(args.corpus).texts,
        args.batch,
        args.precision,
        args.threads,
        args.seconds,
        args.seed,
        args.model,
    )
    if args.json:
        print(json.dumps(figures))
    else:
        print(
            f"{figures['posts_per_s']:.1f} posts/s ({figures['precision']}, batch {args.batch}, "
            f"{args.threads} threads, {figures['posts']} posts in {figures['seconds']} s)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
