"""``stream-ner demo`` as a new user runs it: its own Kafka and Redis, children on free ports, watched."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest


@contextmanager
def taken(*ports: int) -> Iterator[None]:
    """Hold the given ports (workers', aggregator's, dashboard's defaults) while the demo runs."""
    with ExitStack() as stack:
        for port in ports:
            sock = stack.enter_context(socket.socket())
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # taken already: just as good
            sock.listen()
        yield


def demo(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "stream_ner", "demo", *args],
        capture_output=True,
        text=True,
        timeout=400,
        env=os.environ | {"COLUMNS": "200"} | (env or {}),
    )


def test_demo_children_stay_alive_on_free_ports_and_events_arrive():
    with taken(9400, 9401, 9402, 8088):
        done = demo("--duration", "40", "--leaderboard-every", "15")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = re.search(r"(\d+) entity events in (\d+) s; ran throughout: (.*)", done.stdout)
    assert summary, done.stdout[-3000:]
    assert int(summary.group(1)) > 0
    assert summary.group(3).split(", ") == ["worker-1", "worker-2", "aggregator", "dashboard", "producer"]
    dashboard = re.search(r"dashboard at http://127\.0\.0\.1:(\d+)/", done.stdout)
    assert dashboard and dashboard.group(1) != "8088", done.stdout[-3000:]  # the default port was taken
    assert "exited with code" not in done.stdout


def test_a_child_that_dies_is_named_with_its_log_and_everything_stops():
    done = demo("--duration", "60", env={"STREAM_NER_MODEL__PATH": "/nonexistent/model"})
    assert done.returncode == 1
    assert re.search(r"worker-\d exited with code 2; the end of its log", done.stdout), done.stdout[-3000:]
    assert "model artifact /nonexistent/model is not a directory" in done.stdout
    assert "entity events in" not in done.stdout  # it did not stream on without the worker


@pytest.mark.parametrize(
    "stop",
    [lambda pid: os.killpg(pid, signal.SIGINT), lambda pid: os.kill(pid, signal.SIGTERM)],
    ids=["ctrl-c", "sigterm"],
)
def test_a_stop_signal_stops_everything_in_order_and_quietly(stop):
    """A terminal's Ctrl-C signals the demo's whole process group, ``kill`` the demo alone: either way the
    demo stops its children before Redis and Kafka, none of them fails on the way out, and it exits 0."""
    with subprocess.Popen(
        [sys.executable, "-m", "stream_ner", "demo", "--leaderboard-every", "600"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a group of its own, as a terminal's foreground job has
        env=os.environ | {"COLUMNS": "200"},
    ) as proc:
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True)
        reader.start()
        deadline = time.monotonic() + 240
        while (
            not any("post: " in line for line in lines)
            and proc.poll() is None
            and time.monotonic() < deadline
        ):
            time.sleep(0.5)
        assert any("post: " in line for line in lines), "".join(lines)[-3000:]
        stop(proc.pid)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            pytest.fail("the demo did not stop within 120 s of the signal")
        finally:
            reader.join(10)
    out = "".join(lines)
    assert proc.returncode == 0, out[-3000:]
    summary = re.search(r"(\d+) entity events in \d+ s; ran throughout: (.*)", out)
    assert summary, out[-3000:]
    assert summary.group(2).split(", ") == ["worker-1", "worker-2", "aggregator", "dashboard", "producer"]
    logs = re.search(r"logs of every process in (\S+)", out)
    assert logs, out[-3000:]
    for log in sorted(Path(logs.group(1)).glob("*.log")):
        text = log.read_text(errors="replace")
        for sign in ("Traceback", "ERROR", "WARNING", "Connection closed"):
            assert sign not in text, f"{log.name}: {text[-2000:]}"
