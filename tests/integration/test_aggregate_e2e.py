"""End to end: sample posts on raw-posts -> worker -> entities -> aggregator -> `stream-ner brands top`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from importlib import resources

import redis

from stream_ner.brands import BrandLinker
from tests.integration.test_aggregate import Names, create_topics, start_aggregator
from tests.integration.worker_harness import Topics, produce, start_worker


def test_sample_posts_reach_the_brand_leaderboard(kafka_bootstrap, redis_url, tmp_path, request):
    names = Names.fresh(request.node.name)
    topics = Topics(
        f"{names.app_id}.raw",
        names.entities,
        f"{names.app_id}.dlq",
        names.aggregates,
        f"{names.app_id}.workers",
    )
    create_topics(kafka_bootstrap, [topics.raw, topics.entities, topics.dlq, names.aggregates], partitions=2)
    lines = (resources.files("stream_ner") / "samples" / "posts.jsonl").read_text().splitlines()
    posts = [json.loads(line) for line in lines if line.strip()]
    linker = BrandLinker.from_catalog()
    untagged = {
        b for links in linker.link([p["text"] for p in posts], [[] for _ in posts]) for b in links.brands
    }
    assert len(untagged) >= 10, "the sample posts mention many catalog brands"

    worker = start_worker(kafka_bootstrap, topics, tmp_path, "w0")
    aggregator = start_aggregator(kafka_bootstrap, redis_url, names, tmp_path / "agg.log", partitions="2")
    try:
        worker.wait_assigned()
        at = int(time.time())
        produce(kafka_bootstrap, topics.raw, [(p["id"].encode(), json.dumps(p).encode()) for p in posts])
        env = os.environ | {"STREAM_NER_REDIS__URL": redis_url, "STREAM_NER_REDIS__KEY_PREFIX": names.prefix}
        command = [
            sys.executable,
            "-m",
            "stream_ner",
            "brands",
            "top",
            "--window",
            "5m",  # the test aggregator's windows are 1m and 5m (test_aggregate.WINDOWS)
            "--at",
            str(at),
            "--n",
            "200",
        ]
        client = redis.Redis.from_url(redis_url)
        deadline = time.monotonic() + 180
        shown: set[str] = set()
        while time.monotonic() < deadline:
            aggregator.alive()
            assert worker.proc.poll() is None, worker.log()
            out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
            shown = {b for b in untagged if f" {b} " in out.stdout}
            if len(shown) >= 0.8 * len(untagged):
                break
            time.sleep(2)
        client.close()
        assert len(shown) >= 0.8 * len(untagged), f"{sorted(untagged - shown)} missing from:\n{out.stdout}"
        assert out.returncode == 0 and "5m window" in out.stdout
    finally:
        aggregator.stop()
        if worker.proc.poll() is None:
            worker.terminate()
