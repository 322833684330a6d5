"""The optional parts of stream-ner and the extras that install them.

A plain ``pip install stream-ner`` runs the worker, ``produce``, ``tail``, ``topics``, ``brands`` and the
``model`` commands that only run a model (``predict``, ``eval``). The aggregator needs the ``aggregate``
extra (faust-streaming), the dashboard the ``dashboard`` extra (starlette, uvicorn); training, export and
the benchmark need ``offline`` (torch, transformers).
A command that uses an optional part calls ``require`` first, which raises ``MissingExtra`` naming the
``pip install`` to run (the habit of httpx's optional parts) instead of failing later, deep inside, with
a ``ModuleNotFoundError``.
"""

from __future__ import annotations

from importlib.util import find_spec

from stream_ner.errors import MissingExtra

EXTRAS: dict[str, tuple[str, ...]] = {
    "aggregate": ("faust", "cramjam"),
    "dashboard": ("starlette", "uvicorn", "orjson"),
    "offline": ("torch", "transformers", "onnx", "onnxscript"),
}
"""The modules each extra installs that its commands import."""


def missing(extra: str) -> list[str]:
    """The modules of ``extra`` that cannot be imported (found without importing them)."""
    return [name for name in EXTRAS[extra] if find_spec(name) is None]


def hint(extra: str) -> str:
    """The command that installs ``extra``."""
    return f"pip install 'stream-ner[{extra}]'"


def require(extra: str, what: str) -> None:
    """Raise ``MissingExtra`` when ``what`` (a command, for the message) cannot run for want of ``extra``."""
    if absent := missing(extra):
        raise MissingExtra(
            f"{what} needs the '{extra}' extra ({', '.join(absent)} not installed): {hint(extra)}"
        )
