"""Optimiser and learning-rate schedule from config: the recipes the papers state
(SGD with step decay for ML-GCN-style training, Adam with OneCycle for ASL, ...).

Every schedule runs per optimiser step, so it is exact for any batch size or number of
devices; ``step``/``multistep`` change the rate at epoch boundaries as torch's schedulers
do, with an optional linear warm-up in front.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Literal

import torch


@dataclass
class OptimConfig:
    """Optimiser, learning rate and schedule. ``backbone_lr_mult`` scales the rate of the
    pretrained backbone relative to the new layers (ML-GCN: 0.1)."""

    name: Literal["sgd", "adam", "adamw"] = "adamw"
    lr: float = 1e-4
    weight_decay: float = 1e-4
    momentum: float = 0.9
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    backbone_lr_mult: float = 1.0
    schedule: Literal["constant", "step", "multistep", "cosine", "onecycle", "plateau"] = "constant"
    step_size: int = 30
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.1
    warmup_epochs: float = 0.0
    min_lr_ratio: float = 0.0
    pct_start: float = 0.2
    # schedule "plateau": ReduceLROnPlateau, the rate x gamma after `plateau_patience`
    # epochs without improvement of `plateau_monitor` (stepped per epoch, not per step)
    plateau_patience: int = 4
    plateau_monitor: str = "val/loss"
    plateau_mode: Literal["min", "max"] = "min"


def build_optimizer(cfg: OptimConfig, groups: Iterable[dict]) -> torch.optim.Optimizer:
    groups = [g for g in groups if g["params"]]
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay)
    if cfg.name == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.name!r}")


def lr_factor(cfg: OptimConfig, step: int, steps_per_epoch: float, total_steps: int) -> float:
    """The multiplier of each group's base rate after ``step`` optimiser steps."""
    epoch_float = step / steps_per_epoch
    warmup_steps = cfg.warmup_epochs * steps_per_epoch
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    epoch = math.floor(epoch_float + 1e-9)
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "step":
        return cfg.gamma ** (epoch // cfg.step_size)
    if cfg.schedule == "multistep":
        return cfg.gamma ** sum(epoch >= m for m in cfg.milestones)
    if cfg.schedule == "cosine":
        span = max(total_steps - warmup_steps, 1)
        progress = min(max((step - warmup_steps) / span, 0.0), 1.0)
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    raise ValueError(f"unknown schedule {cfg.schedule!r}")


def build_plateau_scheduler(cfg: OptimConfig, optimizer: torch.optim.Optimizer) -> dict:
    """Lightning's ``lr_scheduler`` dict for ``schedule: plateau``: ``ReduceLROnPlateau``
    (factor ``gamma``, ``plateau_patience`` epochs) stepped once per epoch on the logged
    metric ``plateau_monitor``. (Warm-up does not apply to this schedule.)"""
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode=cfg.plateau_mode, factor=cfg.gamma, patience=cfg.plateau_patience
    )
    return {"scheduler": scheduler, "monitor": cfg.plateau_monitor, "interval": "epoch", "frequency": 1}


def build_scheduler(
    cfg: OptimConfig, optimizer: torch.optim.Optimizer, total_steps: int, steps_per_epoch: float
) -> torch.optim.lr_scheduler.LRScheduler:
    """A per-step scheduler for ``cfg.schedule`` (``total_steps`` from the trainer)."""
    if cfg.schedule == "plateau":
        raise ValueError("schedule 'plateau' is stepped per epoch on a metric: use build_plateau_scheduler")
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=[g["lr"] for g in optimizer.param_groups],
            total_steps=max(total_steps, 1),
            pct_start=cfg.pct_start,
        )
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(cfg, step, max(steps_per_epoch, 1e-9), total_steps)
    )
