"""Speed of SDL's loss (Ben-Cohen et al. ICCV 2021, §3.3 eqs. 1-5): the vectorised loss
vs a straightforward per-image loop of the same formula vs one TResNet-M training step.

At the paper's Open Images size (B = 96 images a batch, C = 7,186 seen labels, M = 7
rows, d = 300 FastText dimensions) it times, in one run and on the same data:

- ``vectorised``: ``sdl_scores`` (one ``[B*M, d] @ [d, C]`` product, max over the rows) +
  ``SDLLoss`` (flattened (image, positive) pairs, loss and gradient in one pass), forward
  + backward to ``A``;
- ``loop``: ``sdl_loss_loop``, the same scores then a Python loop over the images (the
  official code's structure), forward + backward;
- ``scores``: the score product alone (forward + backward), the part both share;
- ``step``: one full training step of :class:`fashionbench.models.SDLZeroShot` (TResNet-M,
  ``pretrained=False``, 224 px, the same loss, AdamW) at ``--step-batch`` images. On a CPU
  a step at B = 96 takes minutes, so the default CPU step batch is 4 and the step time is
  scaled linearly to B images (the convolutions cost per image; printed as per-image
  time too). ``--step-batch 96`` measures it directly.

It first checks that the two losses and their gradients with respect to ``A`` agree
(``|diff| <= 1e-5``, exit status 1 if not), then prints best-of-``--repeats`` wall times
(measurements interleaved, so a busy machine disturbs all alike) and the ratios
loop / vectorised and loss / step. Targets are Open-Images-like: about ``--positives``
positive labels per image (Poisson, at least 0: some images have none, which the loss
must skip), unknown labels counted as negatives as the Open Images configs do
(``--masked`` leaves half of the labels unknown instead).

    python benchmarks/perf/sdl_loss.py                    # CPU, step at 4 images
    python benchmarks/perf/sdl_loss.py --device cuda      # GPU, step at 96 images, AMP
    python benchmarks/perf/sdl_loss.py --no-step          # the losses only
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from fashionbench.losses.sdl import SDLLoss, sdl_loss_loop, sdl_scores  # noqa: E402


def make_data(b: int, c: int, m: int, d: int, positives: float, masked: bool, seed: int, device: str):
    g = torch.Generator().manual_seed(seed)
    vectors = torch.nn.functional.normalize(torch.randn(c, d, generator=g), dim=1)
    matrices = torch.randn(b, m, d, generator=g) * 0.05
    counts = torch.poisson(torch.full((b,), float(positives)), generator=g).long().clamp(max=c)
    target = torch.zeros(b, c)
    for i, k in enumerate(counts.tolist()):
        target[i, torch.randperm(c, generator=g)[:k]] = 1.0
    mask = (torch.rand(b, c, generator=g) < 0.5) | (target > 0) if masked else None
    move = lambda t: None if t is None else t.to(device)  # noqa: E731
    return move(matrices), move(vectors), move(target), move(mask)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str) -> float:
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=96)
    parser.add_argument("--labels", type=int, default=7186)
    parser.add_argument("--rows", type=int, default=7)
    parser.add_argument("--dim", type=int, default=300)
    parser.add_argument("--positives", type=float, default=8.0, help="mean positive labels per image")
    parser.add_argument("--masked", action="store_true", help="half the labels unknown (ignored) instead of negatives")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-step", action="store_true", help="skip the TResNet-M training step")
    parser.add_argument("--step-batch", type=int, default=None, help="images in the timed step (default 4 on CPU, --batch on GPU)")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--step-repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    on_gpu = device.startswith("cuda")
    b, c, m, d = args.batch, args.labels, args.rows, args.dim
    matrices, vectors, target, mask = make_data(b, c, m, d, args.positives, args.masked, args.seed, device)
    unknown_as_negative = not args.masked
    loss_fn = SDLLoss(reg_weight=0.3, use_sdw=True, unknown_as_negative=unknown_as_negative)
    a = matrices.clone().requires_grad_()

    def vectorised():
        a.grad = None
        loss = loss_fn(sdl_scores(a, vectors), target, mask, a, vectors)
        loss.backward()
        return loss

    def loop():
        a.grad = None
        loss = sdl_loss_loop(a, vectors, target, mask, reg_weight=0.3, use_sdw=True, unknown_as_negative=unknown_as_negative)
        loss.backward()
        return loss

    def scores_only():
        a.grad = None
        sdl_scores(a, vectors).sum().backward()

    # ---- agreement
    loss_v = vectorised().item()
    grad_v = a.grad.clone()
    loss_l = loop().item()
    grad_l = a.grad.clone()
    loss_diff = abs(loss_v - loss_l)
    grad_diff = (grad_v - grad_l).abs().max().item()
    agree = loss_diff <= 1e-5 and grad_diff <= 1e-5 and np.isfinite(loss_v)
    n_pos = int(((target > 0) if mask is None else (target > 0) & mask).sum())
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"SDL loss, B={b} C={c} M={m} d={d}, {n_pos} positives ({n_pos / b:.1f}/image), "
          f"{'half the labels unknown' if args.masked else 'unknown labels as negatives'}, device {device}, "
          f"threads {torch.get_num_threads()}, best of {args.repeats}, load average {load}")
    print(f"agreement: loss vectorised {loss_v:.8f} loop {loss_l:.8f} |diff| {loss_diff:.2e}; "
          f"max |grad diff| {grad_diff:.2e} (grad max {grad_v.abs().max().item():.2e}): {'AGREE' if agree else 'DISAGREE'}")

    # ---- losses, interleaved
    times = {"vectorised": [], "loop": [], "scores": []}
    for _ in range(args.repeats):
        times["vectorised"].append(timed(vectorised, device))
        times["loop"].append(timed(loop, device))
        times["scores"].append(timed(scores_only, device))
    best = {k: min(v) for k, v in times.items()}
    for name in ("vectorised", "loop", "scores"):
        print(f"{name:>10}: {best[name] * 1000:9.2f} ms (forward + backward)")
    print(f"loop / vectorised: {best['loop'] / best['vectorised']:.2f}x; "
          f"without the shared score product: {(best['loop'] - best['scores']) / max(best['vectorised'] - best['scores'], 1e-9):.2f}x")

    # ---- one training step
    if not args.no_step:
        from datamodules.label_space import LabelSpace
        from fashionbench.models import OptimConfig, SDLZeroShot

        step_batch = args.step_batch or (b if on_gpu else 4)
        names = [f"label{i}" for i in range(c)]
        space = LabelSpace(names, vectors=vectors.cpu().numpy())
        model = SDLZeroShot(backbone="tresnet_m", pretrained=False, num_rows=m, label_space=space,
                            loss=SDLLoss(0.3, True, unknown_as_negative), optim=OptimConfig(name="adamw", lr=1e-4, weight_decay=3e-4))
        model = model.to(device).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=3e-4)
        g = torch.Generator().manual_seed(args.seed + 1)
        images = torch.randn(step_batch, 3, args.image_size, args.image_size, generator=g).to(device)
        rows = torch.arange(step_batch) % b
        batch = {"image": images, "target": target[rows.to(target.device)],
                 "mask": None if mask is None else mask[rows.to(mask.device)]}
        scaler = torch.amp.GradScaler("cuda", enabled=on_gpu)

        def step():
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device_type="cuda" if on_gpu else "cpu", dtype=torch.float16, enabled=on_gpu):
                logits = model.forward_batch(batch, space)
            loss = model.compute_loss(logits, batch)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()

        timed(step, device)  # warm-up
        step_s = min(timed(step, device) for _ in range(max(args.step_repeats, 1)))
        per_image = step_s / step_batch
        step_at_b = per_image * b
        scaled = "" if step_batch == b else f" (measured at {step_batch} images, {per_image * 1000:.1f} ms/image, scaled to {b})"
        print(f"      step: {step_at_b * 1000:9.2f} ms per {b}-image TResNet-M training step at {args.image_size} px"
              f"{' with AMP' if on_gpu else ''}{scaled}")
        print(f"vectorised loss / step: {100 * best['vectorised'] / step_at_b:.2f}%  "
              f"(loss without the score product: {100 * (best['vectorised'] - best['scores']) / step_at_b:.2f}%); "
              f"loop / step: {100 * best['loop'] / step_at_b:.2f}%")
    return 0 if agree else 1


if __name__ == "__main__":
    raise SystemExit(main())
