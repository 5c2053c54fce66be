"""Pretrained weights: a local file is loaded through timm's own loader; offline without
a file the run stops at once with one line saying how to provide weights."""
import time

import pytest
import torch

from fashionbench.errors import InputError
from fashionbench.models.backbones import create_backbone


def test_offline_without_weights_fails_fast(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty hub cache
    start = time.perf_counter()
    with pytest.raises(InputError) as err:
        create_backbone("resnet10t", pretrained=True, num_classes=3)
    assert time.perf_counter() - start < 5
    message = str(err.value)
    assert "\n" not in message and "weights_file=" in message and "pretrained: false" in message


def test_local_weights_file_is_loaded_and_head_reinitialised(tmp_path):
    torch.manual_seed(0)
    source = create_backbone("resnet10t", pretrained=False)  # 1000-class head, like hub weights
    path = tmp_path / "resnet10t.pth"
    torch.save(source.state_dict(), path)
    loaded = create_backbone("resnet10t", pretrained=False, weights_file=str(path), num_classes=5)
    assert torch.equal(loaded.conv1[0].weight, source.conv1[0].weight)
    assert loaded.get_classifier().out_features == 5


def test_missing_weights_file_and_unknown_model_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match=r"nope\.pth: weights file not found"):
        create_backbone("resnet10t", pretrained=True, weights_file=str(tmp_path / "nope.pth"))
    with pytest.raises(InputError, match="unknown timm model 'not_a_net'"):
        create_backbone("not_a_net", pretrained=False)
