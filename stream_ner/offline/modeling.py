"""Token classifiers as trained and exported: any Hugging Face checkpoint, optionally with a shape embedding.

``ShapeTokenClassifier`` wraps a ``transformers`` token-classification model and adds a learned embedding
of the ``stream_ner.model.features`` shape class of each token to its word embedding (initialised at
zero, so an untrained shape embedding leaves the encoder exactly as it was). Its ``forward`` takes plain
tensors and returns the logits only, which is what ONNX export needs.

With ``SentimentHeads`` (``sentiment=True``) the same encoder pass also gives ``post_sentiment``
``[batch, 3]`` (a linear layer over the attention-masked mean of the last hidden states, specials
included) and ``target_sentiment`` ``[batch, sequence, 3]`` (per token: a linear layer over its hidden
state plus one over the post's pooled state), label order ``negative, neutral, positive``; ``forward``
then returns the three as a tuple. Every operation is per row, so a row's outputs do not depend on its
batch mates.

A checkpoint directory is a ``save_pretrained`` token-classification model plus ``tokenizer.json``;
a shape-aware one also holds ``shape_embedding.pt`` (``{"weight": [classes, hidden]}``), a multi-task one
``sentiment_heads.pt`` (the ``SentimentHeads`` state dict).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from stream_ner.errors import ConfigError
from stream_ner.model.features import SHAPE_CLASSES

SHAPE_EMBEDDING = "shape_embedding.pt"
SENTIMENT_HEADS = "sentiment_heads.pt"
OUTPUT_NAMES = ("logits", "post_sentiment", "target_sentiment")
"""Graph outputs of a multi-task classifier, in ``forward``'s order."""


class SentimentHeads(nn.Module):
    """Post and target sentiment logits from the last hidden states ``[batch, sequence, hidden]``."""

    def __init__(self, hidden: int, dropout: float, classes: int = 3) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.post = nn.Linear(hidden, classes)
        self.target_token = nn.Linear(hidden, classes)
        self.target_post = nn.Linear(hidden, classes, bias=False)

    def forward(
        self, hidden: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(post [batch, classes], target [batch, sequence, classes])``."""
        mask = attention_mask.to(hidden.dtype).unsqueeze(-1)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        pooled = self.dropout(pooled)
        post = self.post(pooled)
        target = self.target_token(self.dropout(hidden)) + self.target_post(pooled).unsqueeze(1)
        return post, target


class ShapeTokenClassifier(nn.Module):
    """Logits ``[batch, sequence, labels]`` of a token classifier; inputs named as the ONNX graph's.

    ``input_names`` lists the inputs ``forward`` takes, in order: ``input_ids``, ``attention_mask``, then
    ``token_type_ids`` if the encoder uses them and ``shape_ids`` if there is a shape embedding.
    """

    def __init__(
        self,
        model: nn.Module,
        shape_embedding: nn.Embedding | None,
        use_token_types: bool,
        sentiment: SentimentHeads | None = None,
    ) -> None:
        super().__init__()
        self.model: Any = model
        self.shape_embedding: nn.Embedding | None = shape_embedding
        self.sentiment: SentimentHeads | None = sentiment
        self.output_names = list(OUTPUT_NAMES) if sentiment is not None else ["logits"]
        self.input_names = ["input_ids", "attention_mask"]
        if use_token_types:
            self.input_names.append("token_type_ids")
        if shape_embedding is not None:
            self.input_names.append("shape_ids")

    def forward(self, *inputs: torch.Tensor) -> Any:
        """Logits from the inputs listed in ``input_names``, positionally.

        With sentiment heads: the tuple ``(logits, post_sentiment, target_sentiment)`` (``output_names``).
        """
        named = dict(zip(self.input_names, inputs, strict=True))
        kwargs = {"attention_mask": named["attention_mask"]}
        if "token_type_ids" in named:
            kwargs["token_type_ids"] = named["token_type_ids"]
        if self.shape_embedding is None:
            kwargs["input_ids"] = named["input_ids"]
        else:
            embeds = self.model.get_input_embeddings()(named["input_ids"])
            kwargs["inputs_embeds"] = embeds + self.shape_embedding(named["shape_ids"])
        if self.sentiment is None:
            return self.model(**kwargs).logits
        hidden = self.model.base_model(**kwargs)[0]
        logits = self.model.classifier(self.model.dropout(hidden))
        post, target = self.sentiment(hidden, named["attention_mask"])
        return logits, post, target

    def save(self, out: Path) -> None:
        """Write the checkpoint directory (model, and the shape embedding when there is one)."""
        out.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(out)
        if self.shape_embedding is not None:
            torch.save({"weight": self.shape_embedding.weight.detach().cpu()}, out / SHAPE_EMBEDDING)
        if self.sentiment is not None:
            torch.save(self.sentiment.state_dict(), out / SENTIMENT_HEADS)


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def new_classifier(
    encoder: str | Path,
    id2label: list[str],
    *,
    with_shapes: bool,
    dropout: float = 0.1,
    sentiment: bool = False,
    layers: int = 0,
    ffn_width: int = 0,
) -> ShapeTokenClassifier:
    """A token classifier to train on a pretrained encoder (new heads) or on a checkpoint (its heads).

    With or without a shape embedding and sentiment heads. When ``encoder`` is a checkpoint of this
    project, its tag head, shape embedding and sentiment heads start from their saved weights. ``layers``
    > 0 keeps that many of the encoder's transformer layers (``keep_layers``) and ``ffn_width`` > 0 that
    many units of each feed-forward block (``keep_ffn_units``): a smaller student to distil into.
    """
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
    if layers:
        keep_layers(model, layers)
    if ffn_width:
        keep_ffn_units(model, ffn_width)
    saved = Path(encoder)
    shapes = None
    if with_shapes:
        shapes = nn.Embedding(len(SHAPE_CLASSES), model.config.hidden_size)
        nn.init.zeros_(shapes.weight)
        if (saved / SHAPE_EMBEDDING).is_file():
            shapes.weight.data.copy_(torch.load(saved / SHAPE_EMBEDDING, map_location="cpu")["weight"])
    heads = SentimentHeads(model.config.hidden_size, dropout) if sentiment else None
    if heads is not None and (saved / SENTIMENT_HEADS).is_file():
        heads.load_state_dict(torch.load(saved / SENTIMENT_HEADS, map_location="cpu"))
    return ShapeTokenClassifier(model, shapes, _uses_token_types(model), heads)


def keep_layers(model: Any, count: int) -> list[int]:
    """Keep ``count`` of a BERT-style encoder's layers, evenly spaced, first and last included.

    The layers keep their pretrained weights and order (6 -> 3 keeps 0, 2, 5); the config is updated so
    the checkpoint saves and loads as a ``count``-layer model. Returns the kept indices. A
    ``ConfigError`` for a count outside 1..layers.
    """
    import numpy as np

    encoder = model.base_model.encoder
    total = len(encoder.layer)
    if not 1 <= count <= total:
        raise ConfigError(f"cannot keep {count} of the encoder's {total} layers")
    kept = sorted({int(i) for i in np.linspace(0, total - 1, count).round()})
    encoder.layer = nn.ModuleList([encoder.layer[i] for i in kept])
    model.config.num_hidden_layers = len(kept)
    return kept


def keep_ffn_units(model: Any, width: int) -> None:
    """Keep the ``width`` most important units of every feed-forward block of a BERT-style encoder.

    A unit's importance is the product of the norms of its input row and its output column: a unit
    whose weights are zero in either matrix contributes nothing and goes first. The kept units keep
    their weights and order, so the block computes exactly what the full one computes minus the
    dropped units' terms; the config is updated so the checkpoint saves and loads at this width. A
    ``ConfigError`` for a width outside 1..intermediate size.
    """
    total = int(model.config.intermediate_size)
    if not 1 <= width <= total:
        raise ConfigError(f"cannot keep {width} of the encoder's {total} feed-forward units")
    with torch.no_grad():
        for layer in model.base_model.encoder.layer:
            up, down = layer.intermediate.dense, layer.output.dense
            importance = up.weight.norm(dim=1) * down.weight.norm(dim=0)
            kept = torch.topk(importance, width).indices.sort().values
            layer.intermediate.dense = _linear(up.weight[kept], up.bias[kept])
            layer.output.dense = _linear(down.weight[:, kept], down.bias)
    model.config.intermediate_size = width


def _linear(weight: torch.Tensor, bias: torch.Tensor) -> nn.Linear:
    out_features, in_features = weight.shape
    linear = nn.Linear(in_features, out_features)
    linear.weight.data.copy_(weight)
    linear.bias.data.copy_(bias)
    return linear


def load_classifier(src: str | Path, *, dropout: float = 0.0) -> ShapeTokenClassifier:
    """A saved checkpoint (local directory, or a hub id where a hub is reachable), in eval mode.

    ``dropout`` is the sentiment heads' (they are saved as weights only).
    """
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
    heads = None
    path = Path(src) / SENTIMENT_HEADS
    if path.is_file():
        heads = SentimentHeads(model.config.hidden_size, dropout)
        heads.load_state_dict(torch.load(path, map_location="cpu"))
    return ShapeTokenClassifier(model, shapes, _uses_token_types(model), heads).eval()


def id2label_of(classifier: ShapeTokenClassifier) -> list[str]:
    """The label map in id order."""
    mapping = classifier.model.config.id2label
    return [str(mapping[i]) for i in range(len(mapping))]


def _uses_token_types(model: nn.Module) -> bool:
    return int(getattr(model.config, "type_vocab_size", 0) or 0) > 0
