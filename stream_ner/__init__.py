"""stream-ner: real-time named-entity extraction for social-media streams."""

from stream_ner.messages import EntityEvent, Post, Rejected
from stream_ner.model.entity import Entity
from stream_ner.model.runtime import NerModel

__all__ = ["Entity", "EntityEvent", "NerModel", "Post", "Rejected", "__version__"]
__version__ = "0.1.0"
