"""Worker for tests/test_metrics_ddp.py: a 2-process gloo group on uneven shards.

``python tests/ddp_metric_worker.py OUT_DIR`` starts 2 ranks (torch.multiprocessing, fork) (MASTER_ADDR=127.0.0.1, a
free port). Rank 0 gets samples 0-5 (in two updates), rank 1 samples 6-10: 11 samples,
C = 7. Each rank updates a MultilabelEvaluator and a SingleLabelEvaluator with its shard,
calls ``compute()`` (which gathers the uneven list states) and writes
``OUT_DIR/rank{r}.json`` = ``{"multilabel": ..., "single_label": ..., "seen": ...}``, where
``seen`` is what the rank itself held before the gather: its rank and world size as
``torch.distributed`` reports them, the rows of its list states and its hit-count total.
"""
from __future__ import annotations

import json
import os
import sys

import torch
from helpers import fork_gloo_ranks

N, C = 11, 7
KS = (1, 3)
SHARDS = {0: [slice(0, 4), slice(4, 6)], 1: [slice(6, 11)]}


def make_data() -> dict[str, torch.Tensor]:
    """The 11 samples: scores with ties, a class without positive, a mask, class ids."""
    gen = torch.Generator().manual_seed(0)
    scores = torch.round(torch.rand(N, C, generator=gen) * 10) / 10
    targets = (torch.rand(N, C, generator=gen) < 0.35).long()
    targets[:, 6] = 0
    mask = torch.rand(N, C, generator=gen) < 0.85
    class_ids = torch.randint(0, C, (N,), generator=gen)
    return {"scores": scores, "targets": targets, "mask": mask, "class_ids": class_ids}


def make_metrics():
    from fashionbench.metrics import MultilabelEvaluator, SingleLabelEvaluator

    return MultilabelEvaluator(C, ks=KS), SingleLabelEvaluator(C)


def _rank_main(rank: int, world_size: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        data = make_data()
        multilabel, single_label = make_metrics()
        for rows in SHARDS[rank]:
            multilabel.update(data["scores"][rows], data["targets"][rows], data["mask"][rows])
            single_label.update(data["scores"][rows], data["class_ids"][rows])
        seen = {
            "rank": torch.distributed.get_rank(),
            "world_size": torch.distributed.get_world_size(),
            "multilabel_rows": sum(int(part.shape[0]) for part in multilabel.scores),
            "mask_rows": sum(int(part.shape[0]) for part in multilabel.mask),
            "single_label_total": int(single_label.total),
        }
        result = {"multilabel": multilabel.compute(), "single_label": single_label.compute(), "seen": seen}
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as handle:
            json.dump(result, handle, allow_nan=False)
    finally:
        torch.distributed.destroy_process_group()


def main(out_dir: str) -> None:
    make_metrics()  # import torchmetrics (seconds) once here, not in each rank
    # fork: the ranks inherit the imports; nothing has started a thread pool yet
    fork_gloo_ranks(_rank_main, 2, out_dir)


if __name__ == "__main__":
    main(sys.argv[1])
