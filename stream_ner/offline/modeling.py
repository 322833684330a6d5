"""Token classifiers as trained and exported: any Hugging Face checkpoint, optionally with a shape embedding.

``ShapeTokenClassifier`` wraps a ``transformers`` token-classification model and adds a learned embedding
of the ``stream_ner.model.features`` shape class of each token to its word embedding (initialised at
zero, so an untrained shape embedding leaves the encoder exactly as it was). Its ``forward`` takes plain
tensors and returns the logits only, which is what ONNX export needs.

A checkpoint directory is a ``save_pretrained`` token-classification model plus ``tokenizer.json``;
a shape-aware one also holds ``shape_embedding.pt`` (``{"weight": [classes, hidden]}``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from stream_ner.model.features import SHAPE_CLASSES

SHAPE_EMBEDDING = "shape_embedding.pt"


class ShapeTokenClassifier(nn.Module):
    """Logits ``[batch, sequence, labels]`` of a token classifier; inputs named as the ONNX graph's.

    ``input_names`` lists the inputs ``forward`` takes, in order: ``input_ids``, ``attention_mask``, then
    ``token_type_ids`` if the encoder uses them and ``shape_ids`` if there is a shape embedding.
    """

    def __init__(self, model: nn.Module, shape_embedding: nn.Embedding | None, use_token_types: bool) -> None:
        super().__init__()
        self.model: Any = model
        self.shape_embedding: nn.Embedding | None = shape_embedding
        self.input_names = ["input_ids", "attention_mask"]
        if use_token_types:
            self.input_names.append("token_type_ids")
        if shape_embedding is not None:
            self.input_names.append("shape_ids")

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        """Logits from the inputs listed in ``input_names``, positionally."""
        named = dict(zip(self.input_names, inputs, strict=True))
        kwargs = {"attention_mask": named["attention_mask"]}
        if "token_type_ids" in named:
            kwargs["token_type_ids"] = named["token_type_ids"]
        if self.shape_embedding is None:
            return self.model(input_ids=named["input_ids"], **kwargs).logits
        embeds = self.model.get_input_embeddings()(named["input_ids"])
        embeds = embeds + self.shape_embedding(named["shape_ids"])
        return self.model(inputs_embeds=embeds, **kwargs).logits

    def save(self, out: Path) -> None:
        """Write the checkpoint directory (model, and the shape embedding when there is one)."""
        out.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(out)
        if self.shape_embedding is not None:
            torch.save({"weight": self.shape_embedding.weight.detach().cpu()}, out / SHAPE_EMBEDDING)


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def new_classifier(
    encoder: str | Path, id2label: list[str], *, with_shapes: bool, dropout: float = 0.1
) -> ShapeTokenClassifier:
    """A fresh token classifier on a pretrained encoder (new head), with or without a shape embedding."""
    _offline()
    from transformers import AutoModelForTokenClassification

    model = AutoModelForTokenClassification.from_pretrained(
        str(encoder),
        num_labels=len(id2label),
        id2label=dict(enumerate(id2label)),
        label2id={label: i for i, label in enumerate(id2label)},
        classifier_dropout=dropout,
        attn_implementation="eager",
    )
    shapes = None
    if with_shapes:
        shapes = nn.Embedding(len(SHAPE_CLASSES), model.config.hidden_size)
        nn.init.zeros_(shapes.weight)
    return ShapeTokenClassifier(model, shapes, _uses_token_types(model))


def load_classifier(src: str | Path) -> ShapeTokenClassifier:
    """A saved checkpoint (local directory, or a hub id where a hub is reachable), in eval mode."""
    from transformers import AutoModelForTokenClassification

    if Path(src).is_dir():
        _offline()
    model = AutoModelForTokenClassification.from_pretrained(str(src), attn_implementation="eager")
    shapes = None
    path = Path(src) / SHAPE_EMBEDDING
    if path.is_file():
        weight = torch.load(path, map_location="cpu")["weight"]
        shapes = nn.Embedding(weight.shape[0], weight.shape[1])
        shapes.weight.data.copy_(weight)
    return ShapeTokenClassifier(model, shapes, _uses_token_types(model)).eval()


def id2label_of(classifier: ShapeTokenClassifier) -> list[str]:
    """The label map in id order."""
    mapping = classifier.model.config.id2label
    return [str(mapping[i]) for i in range(len(mapping))]


def _uses_token_types(model: nn.Module) -> bool:
    return int(getattr(model.config, "type_vocab_size", 0) or 0) > 0
