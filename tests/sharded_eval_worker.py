"""Worker for tests/test_sharded_eval.py: class-sharded evaluation in a 3-process gloo group.

``python tests/sharded_eval_worker.py OUT_DIR`` forks 3 ranks (MASTER_ADDR=127.0.0.1, a free
port). Each scenario of :data:`SCENARIOS` runs on the whole world (3 ranks) or on the
subgroup of ranks 0 and 1; every member rank feeds its rows (:func:`rank_rows`, in the
pieces given, possibly none) to

- ``MultilabelEvaluator(sharded=True)`` (the default), ``update`` per piece, ``compute``;
- ``MultilabelEvaluator(sharded=False)`` (torchmetrics' gather of every row);
- ``sharded_multilabel_metrics`` directly with tiny exchange rounds and ranking chunks
  (one class per all-to-all round and per ranking chunk, uneven row counts, the pieces
  sent as they are, not concatenated first),

and writes ``OUT_DIR/<scenario>.rank<r>.json`` with the three results, the rank's shard
statistics and how often torchmetrics' ``gather_all_tensors`` was called by each path.
"""
from __future__ import annotations

import json
import os
import sys

import torch
from helpers import fork_gloo_ranks

WORLD = 3

#: name -> N, C, group ranks, rows per rank as piece lengths, score dtype per rank, options
SCENARIOS = {
    # odd N, odd C, two ranks with uneven rows (rank 0 in two updates)
    "two_ranks": dict(n=37, c=13, ranks=(0, 1), pieces={0: [11, 9], 1: [17]}, dtypes={},
                      options=dict(ks=(1, 3), threshold=0.5, empty_class="exclude")),
    # three ranks, the middle one without any row; per-class thresholds; k > C; empty -> 0
    # (torchmetrics' gather is left out here: a rank without rows sends a float32 placeholder
    # for the bool states and gloo aborts on the size mismatch)
    "three_ranks_one_empty": dict(n=37, c=13, ranks=(0, 1, 2), pieces={0: [12], 1: [], 2: [5, 20]}, dtypes={}, gather=False,
                                  options=dict(ks=(2, 15), thresholds=[0.05 * (j + 3) for j in range(13)],
                                               empty_class="zero")),
    # fewer classes than ranks (rank 2 holds no class); float64 rows on rank 0 promote the
    # rest, as torch.cat would in one process (torchmetrics' gather left out: gloo aborts on
    # ranks whose states differ in dtype)
    "fewer_classes_than_ranks": dict(n=9, c=2, ranks=(0, 1, 2), pieces={0: [3], 1: [1, 2], 2: [3]},
                                     dtypes={0: torch.float64}, gather=False, options=dict(ks=(1,), threshold=0.4)),
}


def make_data(n: int, c: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Scores on a 0.1 grid (ties), ~35% positives, the last class without a positive, ~85% known."""
    gen = torch.Generator().manual_seed(seed + 1000 * c + n)
    scores = torch.round(torch.rand(n, c, generator=gen) * 10) / 10
    targets = torch.rand(n, c, generator=gen) < 0.35
    targets[:, -1] = False
    if c > 2:
        targets[:, 0] = True  # a class whose every known entry is positive
    mask = torch.rand(n, c, generator=gen) < 0.85
    return {"scores": scores, "targets": targets, "mask": mask}


def rank_rows(spec: dict, rank: int) -> list[slice]:
    """The row slices (pieces) of ``rank``: consecutive blocks in rank order."""
    start = sum(sum(spec["pieces"].get(r, [])) for r in spec["ranks"] if r < rank)
    out = []
    for length in spec["pieces"].get(rank, []):
        out.append(slice(start, start + length))
        start += length
    return out


def piece_dtype(spec: dict, rank: int) -> torch.dtype:
    return spec["dtypes"].get(rank, torch.float32)


def _rank_main(rank: int, world_size: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world_size)
    import torchmetrics.metric

    from fashionbench.metrics import MultilabelEvaluator
    from fashionbench.metrics.sharded import sharded_multilabel_metrics

    calls = {"n": 0}
    original = torchmetrics.metric.gather_all_tensors

    def counting_gather(*args, **kwargs):
        calls["n"] += 1
        return original(*args, **kwargs)

    torchmetrics.metric.gather_all_tensors = counting_gather
    try:
        pair = torch.distributed.new_group([0, 1])  # every rank must take part in creating it
        for name, spec in SCENARIOS.items():
            if rank not in spec["ranks"]:
                continue
            group = None if len(spec["ranks"]) == world_size else pair
            data = make_data(spec["n"], spec["c"])
            pieces = [{k: v[rows] for k, v in data.items()} for rows in rank_rows(spec, rank)]
            dtype = piece_dtype(spec, rank)
            out = {}
            paths = (("sharded", True), ("gathered", False)) if spec.get("gather", True) else (("sharded", True),)
            for label, sharded in paths:
                evaluator = MultilabelEvaluator(spec["c"], sharded=sharded, process_group=group, **spec["options"])
                for piece in pieces:
                    evaluator.update(piece["scores"].to(dtype), piece["targets"], piece["mask"])
                before = calls["n"]
                out[label] = evaluator.compute()
                out[f"{label}_gather_calls"] = calls["n"] - before
                if sharded:
                    out["stats"] = evaluator.last_shard_stats
            options = dict(spec["options"])
            stats = {}
            out["small_rounds"] = sharded_multilabel_metrics(
                [p["scores"].to(dtype) for p in pieces], [p["targets"] for p in pieces], [p["mask"] for p in pieces],
                num_labels=spec["c"], group=group, exchange_elements=4 * spec["c"], chunk_elements=spec["n"],
                stats=stats, compact=False, **options)
            out["small_rounds_stats"] = stats
            with open(os.path.join(out_dir, f"{name}.rank{rank}.json"), "w") as handle:
                json.dump(out, handle, allow_nan=False)
    finally:
        torch.distributed.destroy_process_group()


def main(out_dir: str) -> None:
    from fashionbench.metrics import MultilabelEvaluator  # noqa: F401  (import torchmetrics once, before the fork)

    fork_gloo_ranks(_rank_main, WORLD, out_dir)


if __name__ == "__main__":
    main(sys.argv[1])
