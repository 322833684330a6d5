"""stream-ner: real-time named-entity extraction for social-media streams."""

from stream_ner.messages import EntityEvent, Post, Rejected
from stream_ner.model.entity import Entity

__all__ = ["Entity", "EntityEvent", "Post", "Rejected", "__version__"]
__version__ = "0.1.0"
