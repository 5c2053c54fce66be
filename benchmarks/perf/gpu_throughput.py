"""GPU training throughput of each paper's model against its bare timm backbone.

For each paper's main config (:data:`CASES`) the script builds the model and the
datamodule through the suite's own CLI classes (``BenchCLI(run=False)``) on a small
synthetic root of the config's dataset, at the config's (the paper's) input size, with
``pretrained: false`` (weights do not change the speed). One train batch of
``--batch`` images is taken from the datamodule and reused. Then, on that same batch:

- **model**: ``forward_batch`` + ``compute_loss`` + backward + the config's optimiser step;
- **backbone**: ``timm.create_model(<the config's backbone>, num_classes=C)`` + masked-free
  BCE + backward + the same optimiser type and learning rate: the bare timm network.

Both run under AMP (``torch.autocast`` bfloat16 where the GPU supports it, else float16
with a ``GradScaler``), each in ``channels_last`` and in the default layout, keeping the
faster ("where it helps"). ``--warmup`` steps, then ``--steps`` timed steps between
``torch.cuda.synchronize()`` calls; images/s and the head's cost over the backbone,
``model time / backbone time - 1``, are printed (aim: under 15%, except where the paper's
head is the model: HMCN-F trains its head on cached features, so it is listed and skipped).

Without a GPU it says so and exits 0 (nothing depends on a GPU). ``--device cpu`` runs the
same code at a tiny size (``--image-size``, ``--batch``, one step) to check the plumbing:
its times mean nothing.

    python benchmarks/perf/gpu_throughput.py                     # every case, batch 32
    python benchmarks/perf/gpu_throughput.py --only cmsg sdl --batch 64
    python benchmarks/perf/gpu_throughput.py --device cpu --image-size 64 --batch 2 --steps 1 --warmup 0 --only baseline
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

#: paper -> (main config, synthetic dataset, extra CLI arguments, why it is skipped or None)
CASES: dict[str, tuple[str, str, list[str], str | None]] = {
    "baseline": ("benchmarks/baseline/coco2014.yaml", "coco", [], None),
    "cmsg": ("benchmarks/cmsg/coco2014_cmsg.yaml", "coco", [], None),
    "sdl": ("benchmarks/sdl/coco_sdl.yaml", "coco", [], None),
    "wdr": ("benchmarks/wdr/dwr.yaml", "imaterialist", [], None),
    "semantic_embed": ("benchmarks/semantic_embed/deepfashion_semantic_resnest50.yaml", "deepfashion",
                       ["--model.init_args.init_from", "null"], None),
    "hmcnf": ("benchmarks/hmcnf/deepfashion_hmcnf10.yaml", "deepfashion", [],
              "the paper's head is the model: it trains on cached encoder features (load_images: false)"),
}
AIM = 0.15


def _build(config: str, dataset: str, extra: list[str], args, workdir: Path):
    """(model, one train batch, timm backbone name, number of labels) from the suite's CLI."""
    import yaml

    from datamodules.synth import write_synthetic
    from fashionbench.runner import BenchCLI

    with open(REPO / config, encoding="utf-8") as handle:
        data_args = (yaml.safe_load(handle).get("data") or {}).get("init_args") or {}
    options = {"year": data_args["year"]} if data_args.get("year") else {}
    root = workdir / dataset
    if not root.exists():
        write_synthetic(dataset, root, images=max(8 * args.batch, 64), seed=0, **options)
    cli_args = ["--config", str(REPO / config), "--data.init_args.root", str(root),
                "--model.init_args.pretrained", "false", "--data.init_args.num_workers", "0",
                "--data.init_args.batch_size", str(args.batch), "--data.init_args.cache_dir", str(workdir / "cache"),
                "--trainer.logger", "false", "--trainer.default_root_dir", str(workdir), *extra]
    if args.image_size:
        cli_args += ["--data.init_args.image_size", str(args.image_size)]
    cli = BenchCLI(args=cli_args, run=False)
    model, dm = cli.model, cli.datamodule
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    return model, batch, model.hparams.get("backbone"), model.num_labels


def _to(batch, device, channels_last: bool):
    import torch

    out = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            value = value.to(device, non_blocking=True)
            if channels_last and value.dim() == 4:
                value = value.contiguous(memory_format=torch.channels_last)
        out[key] = value
    return out


def _time(step, steps: int, warmup: int, device) -> float:
    import torch

    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def _measure(module, batch, make_step, args, device):
    """Best seconds per step over the layouts, and the layout."""
    import torch

    best = None
    for channels_last in (False, True):
        net = module.to(device).to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        step = make_step(net, _to(batch, device, channels_last))
        seconds = _time(step, args.steps, args.warmup, device)
        if best is None or seconds < best[0]:
            best = (seconds, "channels_last" if channels_last else "contiguous")
    return best


def _amp(device):
    import torch

    if device.type != "cuda":
        return torch.bfloat16, None
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16, None
    return torch.float16, torch.amp.GradScaler("cuda")


def _model_step(model, args, device):
    import torch

    from fashionbench.models.optim import build_optimizer

    dtype, scaler = _amp(device)
    model.train()
    optimizer = build_optimizer(model.optim, model.parameter_groups())

    def make(net, batch):
        def step():
            with torch.autocast(device.type, dtype=dtype):
                logits = net.forward_batch(batch, net.label_space)
            loss = net.compute_loss(logits.float(), batch)
            (scaler.scale(loss) if scaler else loss).backward()
            (scaler.step(optimizer), scaler.update()) if scaler else optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return step

    return make


def _backbone_step(backbone, num_labels, model, args, device):
    import timm
    import torch

    from fashionbench.models.optim import build_optimizer

    dtype, scaler = _amp(device)
    net = timm.create_model(backbone, pretrained=False, num_classes=num_labels)
    net.train()
    optimizer = build_optimizer(model.optim, [{"params": list(net.parameters()), "lr": model.optim.lr, "name": "all"}])
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def make(module, batch):
        def step():
            with torch.autocast(device.type, dtype=dtype):
                logits = module(batch["image"])
            loss = loss_fn(logits.float(), batch["target"].float())
            (scaler.scale(loss) if scaler else loss).backward()
            (scaler.step(optimizer), scaler.update()) if scaler else optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return step

    return net, make


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(CASES), help="papers to measure")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=None, help="override the paper's input size (checks only)")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (a plumbing check; times mean nothing)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_throughput: no GPU here (torch.cuda.is_available() is False): nothing measured")
        return 0
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (plumbing check: times mean nothing)"
    dtype, _ = _amp(device)
    print(f"training throughput on {name}, AMP {str(dtype).replace('torch.', '')}, batch {args.batch}, "
          f"{args.steps} timed steps after {args.warmup}; model = the paper's, backbone = its bare timm network")
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for paper in args.only or list(CASES):
            config, dataset, extra, skip = CASES[paper]
            if skip:
                print(f"{paper:>15}: skipped: {skip}")
                continue
            try:
                model, batch, backbone, num_labels = _build(config, dataset, extra, args, Path(tmp))
                size = tuple(batch["image"].shape[-2:])
                model_s, model_layout = _measure(model, batch, _model_step(model, args, device), args, device)
                net, make = _backbone_step(backbone, num_labels, model, args, device)
                bare_s, bare_layout = _measure(net, batch, make, args, device)
            except Exception as err:  # noqa: BLE001 - one case failing must not hide the others
                print(f"{paper:>15}: failed: {type(err).__name__}: {str(err).splitlines()[0][:200]}")
                failed = True
                continue
            overhead = model_s / bare_s - 1
            verdict = "met" if overhead < AIM else "NOT met"
            print(f"{paper:>15}: {backbone} @ {size[0]}x{size[1]}, C={num_labels}: model {args.batch / model_s:8.1f} img/s "
                  f"({model_layout}), backbone {args.batch / bare_s:8.1f} img/s ({bare_layout}); "
                  f"model/backbone {model_s / bare_s:.2f}x, head {100 * overhead:+.1f}% (aim < {100 * AIM:.0f}%: {verdict})")
            del model, net
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
