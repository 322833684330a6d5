"""Median times of the local stack: cold jar fetch, Kafka start, Redis start.

    .venv/bin/python deploy/local/measure_startup.py [--runs 3] [--no-fetch]

A cold fetch downloads everything (Maven plugins included) into an empty, temporary Maven repository and
jar cache, so it measures Maven Central as a fresh CI machine sees it. A start is measured from the call
to ``start_kafka``/``start_redis`` until the server is ready (log line + metadata for Kafka, PING for
Redis); each server is stopped before the next run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from stream_ner import localstack


def cold_fetch_seconds() -> float:
    """One fetch into an empty Maven repository and an empty jar cache."""
    with tempfile.TemporaryDirectory(prefix="stream-ner-fetch-") as tmp:
        env = os.environ | {
            "MAVEN_OPTS": f"-Dmaven.repo.local={tmp}/m2",
            "KAFKA_LIB_DIR": f"{tmp}/libs",
        }
        script = localstack.deploy_dir() / "kafka" / "kafka-local.sh"
        began = time.monotonic()
        subprocess.run(["bash", str(script), "fetch"], env=env, check=True, capture_output=True)
        took = time.monotonic() - began
        jars = len(list(Path(tmp, "libs").glob("*.jar")))
        assert jars > 40, f"only {jars} jars fetched"
        return took


def start_seconds(start) -> float:  # type: ignore[no-untyped-def]
    """One start until ready; the server is stopped afterwards."""
    began = time.monotonic()
    service = start()
    took = time.monotonic() - began
    service.stop()
    return took


def main() -> None:
    """Measure, then print one table of medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-fetch", action="store_true", help="skip the cold fetch (needs Maven Central)")
    args = parser.parse_args()
    localstack.fetch_kafka()  # warm cache for the start measurements
    jobs = {"Kafka start (format + broker + metadata)": lambda: start_seconds(localstack.start_kafka)}
    jobs["Redis start (until PING)"] = lambda: start_seconds(localstack.start_redis)
    if not args.no_fetch:
        jobs = {"cold fetch of the Kafka jars (empty Maven repo)": cold_fetch_seconds} | jobs
    results: dict[str, list[float]] = {}
    with Progress() as progress:
        task = progress.add_task("measuring", total=len(jobs) * args.runs)
        for name, job in jobs.items():
            for _ in range(args.runs):
                results.setdefault(name, []).append(job())
                progress.advance(task)
    table = Table("what", "median s", "min s", "max s", "runs")
    for name, values in results.items():
        median, low, high = statistics.median(values), min(values), max(values)
        table.add_row(name, f"{median:.2f}", f"{low:.2f}", f"{high:.2f}", str(len(values)))
    Console().print(table)


if __name__ == "__main__":
    main()
