"""stream-ner: real-time named-entity extraction for social-media streams.

The public names are imported on first use (PEP 562), so ``import stream_ner`` (and with it every
``stream-ner`` command) does not load onnxruntime or pydantic until a name that needs them is used.
"""

import typing as _typing
from importlib import import_module as _import_module

if _typing.TYPE_CHECKING:
    from stream_ner.messages import EntityEvent, Post, Rejected
    from stream_ner.model.entity import Entity, Sentiment
    from stream_ner.model.runtime import NerModel
    from stream_ner.model.sentiment import Analysis

__all__ = ["Analysis", "Entity", "EntityEvent", "NerModel", "Post", "Rejected", "Sentiment", "__version__"]
__version__ = "0.1.0"

_HOMES = {
    "Analysis": "stream_ner.model.sentiment",
    "Entity": "stream_ner.model.entity",
    "EntityEvent": "stream_ner.messages",
    "NerModel": "stream_ner.model.runtime",
    "Post": "stream_ner.messages",
    "Rejected": "stream_ner.messages",
    "Sentiment": "stream_ner.model.entity",
}


def __getattr__(name: str) -> object:
    """Import a public name from its module the first time it is asked for."""
    if name not in _HOMES:
        raise AttributeError(f"module 'stream_ner' has no attribute {name!r}")
    value = getattr(_import_module(_HOMES[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
