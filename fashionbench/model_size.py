"""Model size: parameter count and FLOPs of a built model at its input size, for the
paper tables (each row's "params" and "GFLOPs" columns are computed here, never typed).

- The model is built on PyTorch's ``meta`` device (shapes only: no weights allocated,
  initialised or downloaded), so a 400 M-parameter model costs well under a second.
- FLOPs come from one forward pass of a ``[1, 3, S, S]`` meta image under
  :class:`torch.utils.flop_counter.FlopCounterMode`, which counts the matrix products and
  convolutions (``mm``, ``addmm``, ``bmm``, ``convolution``, scaled-dot-product attention,
  ...) from their shapes, **a multiply-add counting as 2 FLOPs**; element-wise ops, norms
  and pooling are not counted. Papers (and fvcore/thop) usually report multiply-adds under
  the name "FLOPs": those are ``macs = flops / 2`` (e.g. timm's ResNet-101 at 224² gives
  15.6 GFLOPs here, the 7.8 "GFLOPs" ResNet papers quote).
- Small buffers a model computes at construction from real data (CMSG's label vectors and
  correlation matrix, read from files) stay real: an op that mixes them with meta tensors
  sees them moved to ``meta`` on the fly (:class:`_MetaPromotion`), and a check on their
  values (e.g. ``(diag <= 0).any()``) still runs on the real numbers.

API: :func:`count_size` (a built module), :func:`config_size` (a LightningCLI config dict,
as in a run record's ``config``), :func:`record_size` (a run record), :func:`record_entry`
(the ``model_size`` value a record writer may store: ``record["model_size"] =
record_entry(config, model.label_names)``; the tables read it when present and compute it
from the record's config otherwise).
"""
from __future__ import annotations

import importlib
import inspect
import json
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["ModelSize", "count_size", "build_from_config", "config_size", "record_size", "config_image_size",
           "record_entry"]

# Model arguments that do not change the architecture, or would load or download weights.
_DROP_ARGS = ("loss", "optim", "evaluation", "init_from")


@dataclass(frozen=True)
class ModelSize:
    """``params``: trainable + frozen parameters (buffers excluded); ``flops``: one forward
    pass of one image at ``image_size``² (multiply-add = 2 FLOPs)."""

    params: int
    flops: int
    image_size: int

    @property
    def macs(self) -> int:
        """Multiply-accumulates, the unit most papers call "FLOPs"."""
        return self.flops // 2

    @property
    def gflops(self) -> float:
        return self.flops / 1e9

    @property
    def mparams(self) -> float:
        return self.params / 1e6

    def as_dict(self) -> dict[str, Any]:
        return {"params": self.params, "flops": self.flops, "macs": self.macs, "image_size": self.image_size,
                "flops_convention": "FlopCounterMode: multiply-add = 2 FLOPs"}


class _MetaPromotion(TorchDispatchMode):
    """Moves real (non-scalar) tensors to ``meta`` when an op mixes them with meta tensors;
    ops on real tensors alone run for real."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        flat, _ = tree_flatten((args, kwargs))
        if any(isinstance(t, torch.Tensor) and t.device.type == "meta" for t in flat):
            def to_meta(t):
                if isinstance(t, torch.Tensor) and t.device.type != "meta" and t.dim() > 0:
                    return t.to("meta")
                return t
            args, kwargs = tree_map(to_meta, (args, kwargs))
        return func(*args, **kwargs)


def count_size(model: nn.Module, image_size: int, channels: int = 3, forward=None) -> ModelSize:
    """Parameters and FLOPs of ``model`` (any device; meta is fastest) on one
    ``[1, channels, image_size, image_size]`` input, in eval mode. ``forward(model, x)``
    replaces ``model(x)`` for models with another entry point."""
    params = sum(p.numel() for p in model.parameters())
    was_training = model.training
    model.eval()
    try:
        x = torch.empty(1, channels, int(image_size), int(image_size), device="meta")
        with FlopCounterMode(display=False) as counter, _MetaPromotion(), torch.no_grad():
            forward(model, x) if forward is not None else model(x)
    finally:
        model.train(was_training)
    return ModelSize(params=int(params), flops=int(counter.get_total_flops()), image_size=int(image_size))


def _import(class_path: str):
    module, _, name = class_path.rpartition(".")
    if not module:
        import fashionbench.models as models  # short names registered there

        return getattr(models, name)
    return getattr(importlib.import_module(module), name)


def _accepted(cls) -> tuple[set[str], bool]:
    """The keyword arguments ``cls.__init__`` and its bases accept, and whether any takes ``**kwargs``."""
    names, var_kw = set(), False
    for klass in inspect.getmro(cls):
        if "__init__" in vars(klass):
            for p in inspect.signature(klass.__init__).parameters.values():
                if p.kind is p.VAR_KEYWORD:
                    var_kw = True
                elif p.name != "self":
                    names.add(p.name)
    return names, var_kw


def _instantiate(value: Any) -> Any:
    """Nested ``{class_path, init_args}`` values of a config, built (on the current device)."""
    if isinstance(value, dict) and "class_path" in value:
        cls = _import(value["class_path"])
        return cls(**{k: _instantiate(v) for k, v in (value.get("init_args") or {}).items()})
    if isinstance(value, list):
        return [_instantiate(v) for v in value]
    return value


def build_from_config(model_config: dict, label_names: list[str] | None = None,
                      num_labels: int | None = None) -> nn.Module:
    """The model of a config's ``model`` section (``class_path`` + ``init_args``), built on
    the meta device: pretrained weights off, loss/optimiser/evaluation/``init_from`` left
    out (they do not change the architecture), the label count and names given here (the
    CLI links them from the datamodule, so a config does not hold them)."""
    if not isinstance(model_config, dict) or "class_path" not in model_config:
        raise ValueError("model config needs a class_path")
    cls = _import(model_config["class_path"])
    accepted, var_kw = _accepted(cls)
    args = {k: v for k, v in (model_config.get("init_args") or {}).items() if k not in _DROP_ARGS}
    args.pop("label_space", None)
    if "pretrained" in accepted or "pretrained" in args:
        args["pretrained"] = False
    if "weights_file" in args:
        args["weights_file"] = None
    if label_names is not None:
        args["label_names"] = list(label_names)
        num_labels = len(label_names) if num_labels is None else num_labels
    if num_labels is not None:
        args["num_labels"] = int(num_labels)
    args = {k: v for k, v in args.items() if var_kw or k in accepted}
    with torch.device("meta"):
        # buffers a model fills from files (label vectors) stay real; see _MetaPromotion
        return cls(**{k: _instantiate(v) for k, v in args.items()})


def config_image_size(config: dict) -> int | None:
    """The input side of a config (``data.init_args.image_size``)."""
    value = ((config.get("data") or {}).get("init_args") or {}).get("image_size")
    return int(value) if isinstance(value, (int, float)) else None


_CACHE: dict[str, ModelSize] = {}


def config_size(config: dict, label_names: list[str] | None = None, num_labels: int | None = None,
                image_size: int | None = None) -> ModelSize:
    """:class:`ModelSize` of a full LightningCLI config (``model`` and ``data`` sections) at
    its own input size (or ``image_size``). Cached per (model section, size, labels)."""
    size = image_size or config_image_size(config)
    if size is None:
        raise ValueError("config has no data.init_args.image_size")
    key = json.dumps([config.get("model"), size, label_names, num_labels], sort_keys=True, default=str)
    if key not in _CACHE:
        model = build_from_config(config["model"], label_names=label_names, num_labels=num_labels)
        _CACHE[key] = count_size(model, size)
    return _CACHE[key]


def record_size(record: dict) -> ModelSize:
    """:class:`ModelSize` of the model a run record describes (its resolved ``config`` and
    ``label_names``), at the input size it ran at. A record that already carries
    ``model_size`` (``ModelSize.as_dict()``) is read, not recomputed."""
    stored = record.get("model_size")
    if isinstance(stored, dict) and {"params", "flops", "image_size"} <= set(stored):
        return ModelSize(params=int(stored["params"]), flops=int(stored["flops"]), image_size=int(stored["image_size"]))
    names = record.get("label_names")
    return config_size(record.get("config") or {}, label_names=names if names else None)


def record_entry(config: dict, label_names: list[str] | None = None) -> dict | None:
    """``ModelSize.as_dict()`` of a resolved config (the run record's ``config``) for the
    record's ``model_size`` key, or None when the model cannot be sized from its config
    (never raises: a run must not fail over its size)."""
    try:
        return config_size(config, label_names=label_names).as_dict()
    except Exception:  # noqa: BLE001 - sizing is informative only
        return None
