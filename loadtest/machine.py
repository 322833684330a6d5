"""A description of the machine and software a result was measured on (no host names, no paths)."""

from __future__ import annotations

import os
import platform
from importlib import metadata

from loadtest.schema import Machine, MachineLoad


def describe() -> Machine:
    """CPU model and count, memory, OS, Python and the versions of the packages on the hot path."""
    import psutil

    versions: dict[str, str | None] = {}
    for package in ("stream-ner", "onnxruntime", "confluent-kafka", "tokenizers", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    try:
        from confluent_kafka import libversion

        versions["librdkafka"] = libversion()[0]
    except ImportError:
        versions["librdkafka"] = None
    return Machine(
        cpu=_cpu_model(),
        logical_cpus=os.cpu_count() or 1,
        memory_gb=round(psutil.virtual_memory().total / 2**30, 1),
        os=f"{platform.system()} {platform.release()}",
        python=platform.python_version(),
        versions=versions,
    )


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load() -> MachineLoad:
    """The 1-minute load average and machine CPU use right now (a noise indicator)."""
    import psutil

    return MachineLoad(loadavg_1m=round(os.getloadavg()[0], 2), cpu_pct=psutil.cpu_percent(0.2))


def cpu_halves() -> tuple[set[int], set[int]]:
    """The CPUs this process may use, split in two: the first half (at least one) and the rest."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise RuntimeError("pinning needs at least 2 CPUs")
    half = len(cpus) // 2
    return set(cpus[:half]), set(cpus[half:])


def pin(pid: int, cpus: set[int]) -> None:
    """Restrict every thread of process ``pid`` to ``cpus`` (threads it starts later inherit the mask)."""
    try:
        tasks = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except FileNotFoundError:
        tasks = [pid]
    for task in tasks:
        try:
            os.sched_setaffinity(task, cpus)
        except ProcessLookupError:  # a thread that just ended
            continue
