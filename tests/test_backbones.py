"""Pretrained weights: a local file is loaded through timm's own loader; offline without
a file the run stops at once with one line saying how to provide weights."""
import socket

import huggingface_hub
import huggingface_hub.constants
import huggingface_hub.file_download
import pytest
import timm.models._builder
import timm.models._hub
import torch.hub

from fashionbench.errors import InputError
from fashionbench.models.backbones import create_backbone


def test_offline_without_weights_fails_without_touching_the_network(monkeypatch, tmp_path):
    """Offline, with an empty hub cache, the error comes before any connection or download is tried."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))  # read at import time
    attempts = []

    def no_network(what):
        def refuse(*args, **kwargs):
            attempts.append(what)
            raise ConnectionError(f"test: {what} called")
        return refuse

    for owner, name in [
        (socket.socket, "connect"), (socket.socket, "connect_ex"), (socket, "create_connection"),
        (huggingface_hub, "hf_hub_download"), (huggingface_hub.file_download, "hf_hub_download"),
        (timm.models._hub, "hf_hub_download"), (timm.models._builder, "load_pretrained"),
        (timm.models._builder, "load_state_dict_from_url"), (torch.hub, "load_state_dict_from_url"),
        (torch.hub, "download_url_to_file"),
    ]:
        monkeypatch.setattr(owner, name, no_network(f"{getattr(owner, '__name__', owner)}.{name}"))
    with pytest.raises(InputError) as err:
        create_backbone("resnet10t", pretrained=True, num_classes=3)
    assert attempts == []  # stopped by the offline check, not by a failed download
    message = str(err.value)
    assert "\n" not in message and "weights_file=" in message and "pretrained: false" in message
    assert "(ConnectionError)" not in message


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
