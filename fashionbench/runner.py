"""``fashionbench fit|validate|test|predict``: LightningCLI over the suite's base classes.

Configs are LightningCLI YAML (``class_path``/``init_args``; ``--print_config`` shows the
resolved one). The datamodule's ``num_labels``, ``label_names`` and ``single_label`` are
linked into the model, so a model never names a dataset. ``fit`` trains, then (unless
``--test_after_fit false``) tests the best checkpoint; every test writes a run record
(``specs/interfaces.md``) under ``record.runs_dir``.
"""
from __future__ import annotations

import netrc
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

import fashionbench.models  # noqa: F401  (registers the model classes for short names)
from datamodules.base import MultiLabelDataModule
from fashionbench.io import atomic_open
from fashionbench.models.base import MultiLabelModule
from fashionbench.records import config_sha, describe_hardware, git_sha, now_iso, write_record


@dataclass
class RecordConfig:
    """What a run record says about the run (the config's top-level ``record:``).

    ``paper``/``table``/``row`` place the run in a paper's table (``benchmarks/<paper>/``);
    ``model`` names it on the leaderboard (default: the model class), the backbone is
    appended in brackets.
    """

    paper: str | None = None
    table: str | None = None
    row: str | None = None
    model: str | None = None
    runs_dir: str = "results/runs"
    predictions_dir: str = "results/predictions"


class BestCheckpoint(ModelCheckpoint):
    """Keeps the best checkpoint by the task's headline metric (val/mAP, or val/top1 for
    single-label tasks) unless ``monitor`` is set."""

    def __init__(self, monitor: str | None = None, mode: str = "max", save_top_k: int = 1, **kwargs: Any) -> None:
        super().__init__(monitor=monitor, mode=mode, save_top_k=save_top_k, **kwargs)
        self._auto_monitor = monitor is None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self._auto_monitor:
            self.monitor = "val/top1" if getattr(pl_module, "single_label", False) else "val/mAP"
        super().setup(trainer, pl_module, stage)


def _wandb_has_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


class BenchCLI(LightningCLI):
    """The suite's LightningCLI: links, record writing, W&B offline fallback."""

    def __init__(self, args: list[str] | None = None, run: bool = True) -> None:
        super().__init__(
            model_class=MultiLabelModule,
            datamodule_class=MultiLabelDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            save_config_kwargs={"overwrite": True},
            trainer_defaults={
                "default_root_dir": "results/logs",
                "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": "results/logs"}},
            },
            args=args,
            run=run,
            auto_configure_optimizers=False,
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_class_arguments(RecordConfig, "record")
        parser.add_argument("--test_after_fit", type=bool, default=True, help="fit: test the best checkpoint and write a run record")
        parser.add_lightning_class_args(BestCheckpoint, "checkpoint")
        for attr in ("num_labels", "label_names", "single_label"):
            parser.link_arguments(f"data.{attr}", f"model.init_args.{attr}", apply_on="instantiate")

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        loggers = config.trainer.logger
        loggers = loggers if isinstance(loggers, list) else [loggers]
        wandb_loggers = [lg for lg in loggers if "Wandb" in str(getattr(lg, "class_path", ""))]
        if wandb_loggers and not os.environ.get("WANDB_MODE") and not _wandb_has_key():
            os.environ["WANDB_MODE"] = "offline"
            print("fashionbench: no W&B API key found; logging to W&B offline (wandb sync later to upload)")
        for logger in wandb_loggers:  # group runs by dataset, name them by row/model and seed
            init_args = logger.init_args
            data_args = config.data.init_args
            dataset = f"{config.data.class_path.split('.')[-1].replace('DataModule', '').lower()}{data_args.get('year') or ''}"
            if init_args.get("group") is None:
                init_args["group"] = dataset
            if init_args.get("name") is None:
                label = config.record.row or config.model.class_path.split(".")[-1]
                init_args["name"] = f"{label} {dataset} s{config.seed_everything}"

    # ----------------------------------------------------------------- subcommands
    def fit(self, model: MultiLabelModule, **kwargs: Any) -> None:
        started, t0 = now_iso(), time.perf_counter()
        self.trainer.fit(model, **kwargs)
        if self.config["fit"]["test_after_fit"] and not self.trainer.interrupted:
            callback = self.trainer.checkpoint_callback
            ckpt = "best" if callback is not None and getattr(callback, "best_model_path", "") else None
            self.trainer.test(model, datamodule=kwargs.get("datamodule"), ckpt_path=ckpt)
            self._write_record(model, started, time.perf_counter() - t0)

    def test(self, model: MultiLabelModule, **kwargs: Any) -> None:
        started, t0 = now_iso(), time.perf_counter()
        self.trainer.test(model, **kwargs)
        self._write_record(model, started, time.perf_counter() - t0)

    def predict(self, model: MultiLabelModule, **kwargs: Any) -> None:
        """Writes the predictions as a ``fashionbench score`` file (scores, targets, mask)."""
        batches = self.trainer.predict(model, **{**kwargs, "return_predictions": True})
        if not batches:
            return
        arrays = {k: np.concatenate([b[k].cpu().numpy() for b in batches]) for k in batches[0]}
        order = np.argsort(arrays.pop("index"))
        arrays = {("targets" if k == "target" else k): v[order] for k, v in arrays.items()}
        if model.label_names:
            arrays["label_names"] = np.asarray(model.label_names)
        dm = self.datamodule
        record = self.config["predict"]["record"]
        rank = f".rank{self.trainer.global_rank}" if self.trainer.world_size > 1 else ""
        name = f"{record.row or type(model).__name__}-{getattr(dm, 'dataset_name', 'data')}{getattr(dm, 'year', '') or ''}{rank}.npz"
        path = Path(record.predictions_dir) / name.replace(" ", "_").replace("/", "_")
        with atomic_open(path, "wb") as handle:
            np.savez_compressed(handle, **arrays)
        print(f"fashionbench: wrote {path} ({len(order)} images); score it with: fashionbench score {path}")

    # --------------------------------------------------------------------- records
    def _write_record(self, model: MultiLabelModule, started: str, wall_s: float) -> None:
        if not self.trainer.is_global_zero:
            return
        self._dump_config()
        config = self.config_dump
        record_cfg = config.get("record") or {}
        dm = self.datamodule
        name = record_cfg.get("model") or type(model).__name__
        backbone = getattr(model, "hparams", {}).get("backbone")
        year = getattr(dm, "year", None)
        record = {
            "paper": record_cfg.get("paper"),
            "table": record_cfg.get("table"),
            "row": record_cfg.get("row"),
            "model": f"{name} [{backbone}]" if backbone else name,
            "dataset": f"{dm.dataset_name}{year or ''}",
            "task": dm.task,
            "split": dm.test_split,
            "metrics": model.test_results,
            "label_names": model.label_names,
            "data_source": "synthetic" if dm.is_synthetic else "real",
            "config": config,
            "config_sha": config_sha(config),
            "git_sha": git_sha(Path(__file__).resolve().parent),
            "seed": config.get("seed_everything"),
            "started": started,
            "wall_s": round(wall_s, 3),
            "hardware": describe_hardware(self.trainer.accelerator.__class__.__name__.replace("Accelerator", "").lower(), self.trainer.num_devices),
            "n_train": dm.n_train,
            "n_test": dm.n_test,
        }
        path = write_record(record, record_cfg.get("runs_dir") or "results/runs")
        print(f"fashionbench: wrote run record {path}")


def run_cli(args: list[str] | None) -> None:
    BenchCLI(args=args)
