"""timm backbones, addressable by name, with the pretrained weights kept apart from the
architecture (timm's ``pretrained_cfg``).

Weights come from the timm hub for online users, or from a local file
(``pretrained_cfg_overlay=dict(file=...)``, a ``.pth``/``.bin``/``.safetensors`` state dict
of the same architecture). Offline without a file the run fails fast with one line saying
how to provide the weights, rather than waiting for the hub to time out.
"""
from __future__ import annotations

import os
from pathlib import Path

import timm
from torch import nn

from fashionbench.errors import InputError


#: Set while a model is built whose weights all come from a checkpoint (``--ckpt_path``,
#: ``init_from`` of the whole model): no pretrained weights are downloaded or read then.
_WEIGHTS_FROM_CHECKPOINT = False


class weights_from_checkpoint:
    """Context manager: backbones built inside it skip their pretrained weights, because a
    checkpoint loaded right after supplies every weight (offline-safe ``test --ckpt_path``)."""

    def __init__(self, active: bool = True) -> None:
        self.active = active

    def __enter__(self) -> None:
        global _WEIGHTS_FROM_CHECKPOINT
        self.before, _WEIGHTS_FROM_CHECKPOINT = _WEIGHTS_FROM_CHECKPOINT, self.active or _WEIGHTS_FROM_CHECKPOINT

    def __exit__(self, *exc: object) -> None:
        global _WEIGHTS_FROM_CHECKPOINT
        _WEIGHTS_FROM_CHECKPOINT = self.before


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def _cached_on_hub(name: str) -> bool:
    """True if the timm hub weights of ``name`` are already in the local Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    hub_id = getattr(cfg, "hf_hub_id", None)
    if not hub_id:
        return False
    filenames = ("model.safetensors", "pytorch_model.bin", cfg.hf_hub_filename)
    return any(f and isinstance(try_to_load_from_cache(hub_id, f), str) for f in filenames)


def how_to_get_weights(name: str) -> str:
    return (
        f"pretrained weights for '{name}' are not available offline: download them once "
        f"(timm.create_model('{name}', pretrained=True) on a machine with internet) and pass "
        f"weights_file=/path/to/{name}.safetensors, or set pretrained: false"
    )


def create_backbone(
    name: str,
    *,
    pretrained: bool,
    weights_file: str | None = None,
    **kwargs,
) -> nn.Module:
    """``timm.create_model(name, pretrained, **kwargs)`` with local-file and offline handling.

    ``kwargs`` go to timm (``num_classes``, ``features_only``, ``drop_rate``, ...). Loading a
    local file goes through timm's own loader, so a classifier of another width is dropped
    and re-initialised exactly as for hub weights.
    """
    if not timm.is_model(name):
        raise InputError(f"unknown timm model '{name}' (see timm.list_models())")
    if _WEIGHTS_FROM_CHECKPOINT:
        pretrained, weights_file = False, None
    if weights_file is not None:
        path = Path(weights_file).expanduser()
        if not path.is_file():
            raise InputError("weights file not found", path=path)
        kwargs["pretrained_cfg_overlay"] = dict(file=str(path))
        pretrained = True
    elif pretrained and _hub_offline() and not _cached_on_hub(name):
        raise InputError(how_to_get_weights(name))
    try:
        return timm.create_model(name, pretrained=pretrained, **kwargs)
    except (OSError, RuntimeError, ValueError) as err:
        if pretrained and weights_file is None:
            raise InputError(f"{how_to_get_weights(name)} ({type(err).__name__})") from err
        if weights_file is not None:
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise InputError(f"cannot load weights for '{name}': {first_line}", path=weights_file) from err
        raise
