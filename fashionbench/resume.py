"""Exact resume after a crash: random streams keyed by (seed, epoch), not by history.

Lightning's checkpoint restores the weights, the optimiser, the schedulers, the loops'
progress and the callbacks' state, but not the random streams: a run resumed with
``--ckpt_path last`` from the end of epoch ``e`` starts epoch ``e + 1`` with fresh
generators, so it draws another train order (the ``RandomSampler``'s generator advanced
by every earlier epoch in the uninterrupted run) and other augmentations (the global
RNGs) than the run that was never interrupted, and ends with other metrics.

:class:`ResumableSeeds` makes every train epoch's randomness a function of
``(seed, epoch, rank)`` alone. At the start of each train epoch it

- reseeds Python's ``random``, numpy's global RNG and torch's CPU (and CUDA) generators
  from ``(seed, epoch, global rank)``; with ``num_workers: 0`` the augmentations and any
  dropout draw from these;
- gives the train loader's sampler (``RandomSampler`` / ``WeightedRandomSampler``) a new
  generator seeded from ``(seed, epoch)`` (a ``DistributedSampler`` is left alone: it is
  already keyed by ``seed + epoch`` through ``set_epoch``).

An uninterrupted run and a run resumed from any epoch boundary then draw the same numbers
in every epoch (``tests/test_resume.py`` kills a real run with SIGKILL in the middle of
an epoch and checks the resumed one ends with the same metrics and run record).

Limit: the RNGs of DataLoader worker processes (``num_workers > 0``) are seeded once when
the workers start (persistent workers) from a seed the loader draws before any epoch
hook runs, so a callback cannot reach them; with workers the train order is still exact
but the augmentations of the resumed epochs differ. Exact resume with workers needs the
dataset to seed each item's augmentation from ``(seed, epoch, index)`` (a datamodule
change).

The seed is ``seed`` when given, else ``seed_everything``'s (``PL_GLOBAL_SEED``), else 0.
"""
from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch.utils.data import DataLoader

__all__ = ["ResumableSeeds", "epoch_seed"]


def epoch_seed(seed: int, epoch: int, rank: int = 0, stream: int = 0) -> int:
    """A 63-bit seed from ``(seed, epoch, rank, stream)`` (numpy ``SeedSequence``: well mixed, stable)."""
    words = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch), int(rank), int(stream)]).generate_state(2, np.uint32)
    return (int(words[0]) << 31 ^ int(words[1])) & 0x7FFF_FFFF_FFFF_FFFF


def _loaders(value: Any) -> list[DataLoader]:
    if isinstance(value, DataLoader):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [loader for item in value for loader in _loaders(item)]
    return []


class ResumableSeeds(Callback):
    """Reseed every random stream of a train epoch from ``(seed, epoch)`` (module docstring).

    Args:
        seed: the base seed; ``None`` = ``seed_everything``'s (``PL_GLOBAL_SEED``), else 0.
    """

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed

    def _base_seed(self) -> int:
        if self.seed is not None:
            return int(self.seed)
        return int(os.environ.get("PL_GLOBAL_SEED", 0))

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        seed, epoch, rank = self._base_seed(), trainer.current_epoch, trainer.global_rank
        value = epoch_seed(seed, epoch, rank)
        random.seed(value)
        np.random.seed(value % 2**32)
        torch.manual_seed(value)  # CPU and every CUDA device
        order = epoch_seed(seed, epoch, 0, stream=1)  # the same order on every rank
        for loader in _loaders(trainer.train_dataloader):
            samplers = {id(s): s for s in (loader.sampler, getattr(loader.batch_sampler, "sampler", None)) if s is not None}
            for sampler in samplers.values():
                if hasattr(sampler, "generator") and not hasattr(sampler, "set_epoch"):
                    # read lazily by the sampler's __iter__ at the epoch's first batch, which
                    # comes after this hook also when the loader's iterator was made earlier
                    sampler.generator = torch.Generator().manual_seed(order)
