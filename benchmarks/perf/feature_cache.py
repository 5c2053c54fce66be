"""Time per epoch of training HMCN-F's head on cached encoder features vs the same head
trained end to end through the frozen encoder (eval mode), in the same run.

Both runs use the same synthetic DeepFashion root (``fashionbench synth deepfashion``, the
real format; or ``--root`` for a real copy), the same model (``HierarchicalHMCNF`` with a
timm encoder, frozen; the 10-parent hierarchy), the same datamodule options (ROI crop,
``image_size``, batch size, workers, no augmentation) and the same Lightning ``Trainer``
(``max_epochs`` epochs, no validation, no logger/checkpoints):

- ``end to end``: ``load_images: true``; every step decodes, crops and resizes the images
  and runs the frozen encoder (``torch.no_grad``, eval mode) before the head;
- ``cached``: ``load_images: false`` with the ``CachedFeatures`` extra; the first fit builds
  the cache (one pass of the encoder over train/val/test, timed apart as the one-off
  cost), then every step reads rows of the memory-mapped ``.npy``.

Per-epoch times are wall-clock ``on_train_epoch_start`` -> ``on_train_epoch_end``; the
median over the epochs after the first (the first carries warm-up) is reported, then the
ratio and the number of epochs after which the cache has paid for its build.

    python benchmarks/perf/feature_cache.py                       # resnet10t, 64 px, 400 images, CPU
    python benchmarks/perf/feature_cache.py --backbone resnet50 --image-size 224 --threads 2
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", help="a DeepFashion root (default: write a synthetic one)")
    parser.add_argument("--images", type=int, default=400, help="synthetic images (about 72%% train)")
    parser.add_argument("--backbone", default="resnet10t")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    import lightning.pytorch as pl
    import torch

    from datamodules.deepfashion import DeepFashionDataModule
    from datamodules.synth import write_synthetic
    from fashionbench.feature_cache import CachedFeatures
    from fashionbench.models.hmcnf import HierarchicalHMCNF

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="fb-feature-cache-"))
    root = Path(args.root) if args.root else write_synthetic("deepfashion", work / "deepfashion", images=args.images, seed=0)

    class EpochTimer(pl.Callback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self.fit_started = 0.0
            self.first_epoch_started = 0.0

        def on_fit_start(self, trainer, pl_module) -> None:  # after the model's own cache callback
            self.fit_started = time.perf_counter()

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            self._t0 = time.perf_counter()
            if not self.times:
                self.first_epoch_started = self._t0

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            self.times.append(time.perf_counter() - self._t0)

    def run(cached: bool) -> dict:
        extras = {"features": CachedFeatures(cache_dir=str(work / "features"), name="perf")} if cached else None
        dm = DeepFashionDataModule(str(root), batch_size=args.batch_size, num_workers=args.workers,
                                   image_size=args.image_size, crop_to_box=True, train_transform={"hflip": 0.0},
                                   cache_dir=str(work / "index"), load_images=not cached, extras=extras)
        pl.seed_everything(0, verbose=False)
        model = HierarchicalHMCNF(backbone=args.backbone, pretrained=False, label_space=dm.label_space,
                                  hierarchy=str(ROOT / "benchmarks/hmcnf/hierarchies/deepfashion_10.yaml"))
        timer = EpochTimer()
        trainer = pl.Trainer(max_epochs=args.epochs, accelerator="cpu", devices=1, logger=False,
                             enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                             limit_val_batches=0, num_sanity_val_steps=0, callbacks=[timer])
        started = time.perf_counter()
        trainer.fit(model, dm)
        steady = timer.times[1:] or timer.times
        return {"epoch_s": statistics.median(steady), "epochs_s": [round(t, 4) for t in timer.times],
                "setup_s": timer.first_epoch_started - started, "n_train": dm.n_train}

    end_to_end = run(cached=False)
    cached_first = run(cached=True)    # builds the cache (in its setup time)
    cached = run(cached=True)          # finds it
    build_s = cached_first["setup_s"] - cached["setup_s"]
    ratio = end_to_end["epoch_s"] / cached["epoch_s"]
    saved = end_to_end["epoch_s"] - cached["epoch_s"]
    result = {
        "backbone": args.backbone, "image_size": args.image_size, "batch_size": args.batch_size,
        "workers": args.workers, "threads": args.threads, "train_images": end_to_end["n_train"],
        "end_to_end_epoch_s": round(end_to_end["epoch_s"], 4), "cached_epoch_s": round(cached["epoch_s"], 4),
        "speedup": round(ratio, 2), "cache_build_s": round(build_s, 3),
        "break_even_epochs": round(build_s / saved, 2) if saved > 0 else None,
        "end_to_end_epochs_s": end_to_end["epochs_s"], "cached_epochs_s": cached["epochs_s"],
    }
    print(json.dumps(result))
    print(f"{args.backbone} @ {args.image_size} px, {end_to_end['n_train']} train images, batch {args.batch_size}, "
          f"{args.threads} thread(s): end to end {end_to_end['epoch_s']:.3f} s/epoch, cached "
          f"{cached['epoch_s']:.3f} s/epoch -> {ratio:.1f}x faster per epoch; building the cache (train+val+test) "
          f"took {build_s:.2f} s, repaid after {result['break_even_epochs']} epochs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
