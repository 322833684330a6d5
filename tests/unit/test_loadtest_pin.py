"""Pinning a process to CPUs: every thread of it, and the CPU split the pinned scenario uses."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from loadtest import machine


def test_a_process_and_its_threads_are_pinned() -> None:
    workers, others = machine.cpu_halves()
    assert workers and others and not workers & others
    assert workers | others == os.sched_getaffinity(0)
    code = (
        "import threading, time\n"
        "for _ in range(3):\n"
        "    threading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n"
        "time.sleep(30)"
    )
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 10
        while len(os.listdir(f"/proc/{child.pid}/task")) < 4:
            assert time.monotonic() < deadline, "the child did not start its threads"
            time.sleep(0.01)
        machine.pin(child.pid, workers)
        for task in os.listdir(f"/proc/{child.pid}/task"):
            assert os.sched_getaffinity(int(task)) == workers
    finally:
        child.kill()
        child.wait()
