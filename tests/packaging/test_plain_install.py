"""A plain ``pip install`` runs the worker: the wheel is built, installed without extras into a fresh venv,
and its console script and worker imports are exercised there.

Needs PyPI (or a configured index/cache) for the build backend and the core dependencies, like any install;
pip's cache makes later runs quick.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

WORKER_PATH = """
import sys
from stream_ner.brands import BrandLinker
from stream_ner.commands.worker import serve
from stream_ner.model.runtime import NerModel
from stream_ner.settings import load_settings
from stream_ner.worker.runner import Worker

settings = load_settings()
model = NerModel.from_settings(settings.model)
text = "Just got the new @Nike Air Max in London"
[links] = BrandLinker.from_settings(settings.brands).link([text], model.predict([text]))
print("brands:", *links.brands)
heavy = {"torch", "transformers", "faust", "stream_ner.offline"} & set(sys.modules)
print("heavy:", *sorted(heavy))
"""


def run(*command: str | Path, timeout: float = 600) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


def test_a_plain_install_runs_the_worker_and_names_the_missing_extras(tmp_path):
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, ROOT)
    [wheel] = dist.glob("stream_ner-*.whl")
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python, script = venv / "bin" / "python", venv / "bin" / "stream-ner"
    run(sys.executable, "-m", "pip", "--python", python, "install", "-q", wheel)

    assert "usage: stream-ner worker" in run(script, "worker", "--help").stdout
    out = run(python, "-c", WORKER_PATH, timeout=120).stdout.splitlines()
    assert out == ["brands: nike", "heavy:"]

    aggregate = subprocess.run([script, "aggregate"], capture_output=True, text=True, timeout=60)
    assert aggregate.returncode == 2
    assert aggregate.stderr == (
        "stream-ner: error: `stream-ner aggregate` needs the 'aggregate' extra "
        "(faust, cramjam not installed): pip install 'stream-ner[aggregate]'\n"
    )
    dashboard = subprocess.run([script, "dashboard"], capture_output=True, text=True, timeout=60)
    assert dashboard.returncode == 2
    assert dashboard.stderr == (
        "stream-ner: error: `stream-ner dashboard` needs the 'dashboard' extra "
        "(starlette, uvicorn, orjson not installed): pip install 'stream-ner[dashboard]'\n"
    )
    train = subprocess.run([script, "model", "train"], capture_output=True, text=True, timeout=60)
    assert train.returncode == 2
    assert train.stderr.startswith("stream-ner: error: `stream-ner model train` needs the 'offline' extra (")
    assert train.stderr.endswith("pip install 'stream-ner[offline]'\n")
