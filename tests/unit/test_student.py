"""A smaller student: fewer layers of the pretrained encoder, saved and loaded as such."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stream_ner.commands.model_offline import _default_encoder
from stream_ner.errors import ConfigError
from stream_ner.offline.data import ID2LABEL
from stream_ner.offline.modeling import load_classifier, new_classifier


def test_a_three_layer_student_keeps_evenly_spaced_pretrained_layers_and_round_trips(tmp_path: Path) -> None:
    encoder = _default_encoder()
    full = new_classifier(encoder, list(ID2LABEL), with_shapes=True, sentiment=True)
    student = new_classifier(encoder, list(ID2LABEL), with_shapes=True, sentiment=True, layers=3)
    layers = student.model.base_model.encoder.layer
    assert len(layers) == 3 and student.model.config.num_hidden_layers == 3
    pretrained = full.model.base_model.encoder.layer
    for kept, index in zip(layers, (0, 2, 5), strict=True):
        assert torch.equal(kept.output.dense.weight, pretrained[index].output.dense.weight)

    student.save(tmp_path / "student")
    loaded = load_classifier(tmp_path / "student")
    assert len(loaded.model.base_model.encoder.layer) == 3
    ids = torch.tensor([[101, 7592, 2088, 102]])
    inputs = [ids, torch.ones_like(ids), torch.zeros_like(ids), torch.zeros_like(ids)]
    student.eval()
    with torch.no_grad():
        for before, after in zip(student(*inputs), loaded(*inputs), strict=True):
            assert torch.allclose(before, after, atol=1e-6)


def test_more_layers_than_the_encoder_has_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="cannot keep 7 of the encoder's 6 layers"):
        new_classifier(_default_encoder(), list(ID2LABEL), with_shapes=False, layers=7)
