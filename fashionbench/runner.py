"""``fashionbench fit|validate|test|predict``: LightningCLI over the suite's base classes.

Configs are LightningCLI YAML (``class_path``/``init_args``; ``--print_config`` shows the
resolved one). The datamodule's training :class:`~datamodules.label_space.LabelSpace` is
linked into the model as one object, so a model never names a dataset. ``fit`` trains,
then (unless ``--test_after_fit false``) tests the best checkpoint. Run records
(``specs/interfaces.md``) are written by the :class:`RunRecorder` callback at the end of
every test, one per evaluation set, so ``Trainer.test(...)`` called from Python writes
them too.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

import fashionbench.models  # noqa: F401  (registers the model classes for short names)
from datamodules.base import MultiLabelDataModule
from fashionbench.io import atomic_open
from fashionbench.models.backbones import weights_from_checkpoint
from fashionbench.models.base import MultiLabelModule
from fashionbench.records import config_sha, describe_hardware, git_sha, json_safe, now_iso, write_record
from fashionbench.wandb_log import has_api_key


#: When set, every record path a run writes is appended to this file (one a line).
RECORD_LIST_ENV = "FASHIONBENCH_RECORD_LIST"


def _world() -> tuple[int, int]:
    """``(world size, rank)`` of the processes that actually run (1, 0 without a group)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size(), torch.distributed.get_rank()
    return 1, 0


def _gather_union(items: set[str]) -> list[str]:
    """The union over all ranks of a set of strings, sorted."""
    world, _ = _world()
    if world == 1:
        return sorted(items)
    gathered: list[Any] = [None] * world
    torch.distributed.all_gather_object(gathered, sorted(items))
    return sorted({x for part in gathered for x in (part or [])})


class RunRecorder(Callback):
    """Writes the run record(s) of every test (the config's top-level ``record:``).

    ``paper``/``table``/``row`` place the run in a paper's table (``benchmarks/<paper>/``);
    ``model`` names it on the leaderboard (default: the model class, with the backbone in
    brackets). One record per evaluation set: ``task`` and ``eval_set`` name the set (a
    single default set keeps the datamodule's task and ``eval_set: null``).
    """

    def __init__(self, paper: str | None = None, table: str | None = None, row: str | None = None,
                 model: str | None = None, runs_dir: str = "results/runs",
                 predictions_dir: str = "results/predictions") -> None:
        self.paper, self.table, self.row, self.model = paper, table, row, model
        self.runs_dir, self.predictions_dir = runs_dir, predictions_dir
        #: the resolved config; the CLI sets it, Python callers get model + data hparams
        self.config: dict[str, Any] | None = None
        self.written: list[Path] = []
        self._fit_started: tuple[str, float] | None = None
        self._test_started: tuple[str, float] = (now_iso(), time.perf_counter())

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._fit_started = (now_iso(), time.perf_counter())

    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._test_started = (now_iso(), time.perf_counter())

    def _config(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, Any]:
        if self.config is not None:
            return self.config
        dm = trainer.datamodule
        return json_safe({
            "model": {"class_path": f"{type(pl_module).__module__}.{type(pl_module).__qualname__}", "init_args": dict(pl_module.hparams)},
            "data": {"class_path": f"{type(dm).__module__}.{type(dm).__qualname__}", "init_args": dict(getattr(dm, "hparams", {}))},
            "seed_everything": int(os.environ["PL_GLOBAL_SEED"]) if "PL_GLOBAL_SEED" in os.environ else None,
        })

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        skipped = _gather_union(getattr(pl_module, "skipped_images", set()))
        world, rank = _world()
        if rank != 0 or not isinstance(pl_module, MultiLabelModule):
            return
        dm = trainer.datamodule
        started, t0 = self._fit_started or self._test_started
        self._fit_started = None
        config = self._config(trainer, pl_module)
        name = self.model or type(pl_module).__name__
        backbone = pl_module.hparams.get("backbone")
        year = getattr(dm, "year", None)
        checkpoint = trainer.ckpt_path or getattr(trainer.checkpoint_callback, "best_model_path", "") or None
        sets = dm.eval_sets("test") if dm is not None and hasattr(dm, "eval_sets") else [None]
        for eval_set in sets:
            key = eval_set.name if eval_set is not None else ""
            record = {
                "paper": self.paper,
                "table": self.table,
                "row": self.row,
                "model": f"{name} [{backbone}]" if backbone else name,
                "dataset": f"{getattr(dm, 'dataset_name', 'data')}{year or ''}",
                "task": (eval_set.name or eval_set.task) if eval_set is not None else getattr(dm, "task", None),
                "eval_set": (eval_set.name or None) if eval_set is not None else None,
                "split": eval_set.split if eval_set is not None else getattr(dm, "test_split", None),
                "metrics": pl_module.eval_results.get(key, {}),
                "label_names": list(dm.eval_label_space(eval_set).names) if eval_set is not None else pl_module.label_names,
                "data_source": "synthetic" if getattr(dm, "is_synthetic", False) else "real",
                "config": config,
                "config_sha": config_sha(config),
                "git_sha": git_sha(Path(__file__).resolve().parent),
                "seed": config.get("seed_everything"),
                "started": started,
                "wall_s": round(time.perf_counter() - t0, 3),
                "hardware": describe_hardware(pl_module.device.type, world),
                "n_train": dm.n_train if dm is not None else None,
                "n_test": len(dm.eval_index(eval_set)) if eval_set is not None else None,
                "checkpoint": str(Path(checkpoint).resolve()) if checkpoint else None,
                "skipped_images": skipped,
            }
            if dm is not None:  # listed images absent on disk and left out (URL-distributed datasets)
                counts = {"train": dm.train_index.meta.get("missing_images")}
                if eval_set is not None:
                    counts["test"] = dm.eval_index(eval_set).meta.get("missing_images")
                if any(v is not None for v in counts.values()):
                    record["missing_images"] = counts
            if getattr(pl_module, "threshold_selection", None) is not None:
                record["threshold_selection"] = pl_module.threshold_selection  # per-class thresholds chosen on validation
            if dm is not None and getattr(dm, "label_space", None) is not None:
                record["label_frequencies"] = dm.label_space.frequencies  # training positive rates
            path = write_record(record, self.runs_dir)
            self.written.append(path)
            if os.environ.get(RECORD_LIST_ENV):  # `fashionbench reproduce` learns which records this run wrote
                with open(os.environ[RECORD_LIST_ENV], "a", encoding="utf-8") as handle:
                    handle.write(f"{path}\n")
            print(f"fashionbench: wrote run record {path}")
            if any(type(lg).__name__ == "WandbLogger" for lg in trainer.loggers):  # the record mirrored to W&B
                from fashionbench.wandb_log import log_record

                log_record({**record, "_path": str(path)}, trainer.loggers)
        if skipped:
            print(f"fashionbench: skipped {len(skipped)} bad image(s) (on_bad_image: skip); listed in the record")


class BestCheckpoint(ModelCheckpoint):
    """Keeps the best checkpoint by the model's headline metric (the first validation
    set's mAP, or top1 for single-label tasks) unless ``monitor`` is set."""

    def __init__(self, monitor: str | None = None, mode: str = "max", save_top_k: int = 1, **kwargs: Any) -> None:
        super().__init__(monitor=monitor, mode=mode, save_top_k=save_top_k, **kwargs)
        self._auto_monitor = monitor is None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self._auto_monitor:
            self.monitor = pl_module.headline_metric("val") if isinstance(pl_module, MultiLabelModule) else "val/mAP"
        super().setup(trainer, pl_module, stage)


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
        parser.add_lightning_class_args(RunRecorder, "record")
        parser.add_argument("--test_after_fit", type=bool, default=True, help="fit: test the best checkpoint and write a run record")
        parser.add_lightning_class_args(BestCheckpoint, "checkpoint")
        parser.link_arguments("data.label_space", "model.init_args.label_space", apply_on="instantiate")

    def _subcommand_config(self):
        return self.config[self.subcommand] if self.subcommand else self.config

    def instantiate_classes(self) -> None:
        """Builds the classes; a model whose weights all come from a checkpoint
        (``--ckpt_path``, or ``init_from`` of the whole model) downloads no pretrained weights."""
        config = self._subcommand_config()
        init_from = (config.model.init_args.get("init_from") or []) if config.get("model") else []
        whole_model = any(not (getattr(spec, "target", None) if not isinstance(spec, dict) else spec.get("target")) for spec in init_from)
        with weights_from_checkpoint(bool(config.get("ckpt_path")) or whole_model):
            super().instantiate_classes()
        recorder = next((cb for cb in self.trainer.callbacks if isinstance(cb, RunRecorder)), None)
        if recorder is not None:
            self._dump_config()
            recorder.config = self.config_dump

    def before_instantiate_classes(self) -> None:
        config = self._subcommand_config()
        loggers = config.trainer.logger
        loggers = loggers if isinstance(loggers, list) else [loggers]
        wandb_loggers = [lg for lg in loggers if "Wandb" in str(getattr(lg, "class_path", ""))]
        if wandb_loggers and not os.environ.get("WANDB_MODE") and not has_api_key():
            os.environ["WANDB_MODE"] = "offline"
            print("fashionbench: no W&B API key found; logging to W&B offline (wandb sync later to upload)")
        for logger in wandb_loggers:  # project/group (paper)/job_type (dataset)/tags, names by row/model and seed
            init_args = logger.init_args
            data_args = config.data.init_args
            dataset = f"{config.data.class_path.split('.')[-1].replace('DataModule', '').lower()}{data_args.get('year') or ''}"
            from fashionbench.wandb_log import config_dataset_name, wandb_defaults

            for key, value in wandb_defaults(config, config_dataset_name(config.data) or dataset).items():
                if init_args.get(key) is None:
                    init_args[key] = value
            if init_args.get("name") is None:
                label = config.record.row or config.model.class_path.split(".")[-1]
                init_args["name"] = f"{label} {dataset} s{config.seed_everything}"

    # ----------------------------------------------------------------- subcommands
    def fit(self, model: MultiLabelModule, **kwargs: Any) -> None:
        self.trainer.fit(model, **kwargs)
        if self.config["fit"]["test_after_fit"] and not self.trainer.interrupted:
            callback = self.trainer.checkpoint_callback
            ckpt = "best" if callback is not None and getattr(callback, "best_model_path", "") else None
            self.trainer.test(model, datamodule=kwargs.get("datamodule"), ckpt_path=ckpt)

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
        record = self.config["predict"]["record"]  # the RunRecorder's options
        rank = f".rank{self.trainer.global_rank}" if self.trainer.world_size > 1 else ""
        name = f"{record.row or type(model).__name__}-{getattr(dm, 'dataset_name', 'data')}{getattr(dm, 'year', '') or ''}{rank}.npz"
        path = Path(record.predictions_dir) / name.replace(" ", "_").replace("/", "_")
        with atomic_open(path, "wb") as handle:
            np.savez_compressed(handle, **arrays)
        print(f"fashionbench: wrote {path} ({len(order)} images); score it with: fashionbench score {path}")


def run_cli(args: list[str] | None) -> None:
    BenchCLI(args=args)
