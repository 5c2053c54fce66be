"""Two "nodes" on one machine: two ``torchrun`` launches (``--nnodes 2 --nproc_per_node 1``,
static rendezvous on 127.0.0.1 and a free port, node ranks 0 and 1) of the same
``fashionbench fit`` with ``--config benchmarks/launch/torchrun.yaml`` (DDP, 2 nodes,
Lightning's ``TorchElasticEnvironment``), as ``benchmarks/launch/README.md`` documents it.
Lightning takes the world from torchrun's environment; the nodes train together and then
test the best checkpoint across both (the class-sharded evaluation), and rank 0 writes
the record.

The record must say 2 processes ran and scored every test image once, and its metrics
must be those of a single process testing the same checkpoint (``fashionbench test
--ckpt_path``, one device). Both launches run in their own subprocesses, 1 CPU thread each.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import free_port

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "--config", REPO / "benchmarks/baseline/voc2007.yaml", "--config", REPO / "benchmarks/smoke.yaml",
    "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.enable_progress_bar", "false",
    "--trainer.logger", "false", "--data.init_args.num_workers", "0", "--data.init_args.batch_size", "4",
]


def _env():
    return dict(os.environ, WANDB_MODE="offline", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo")


@pytest.mark.slow
@pytest.mark.ddp
def test_two_torchrun_nodes_fit_test_and_match_one_process(tmp_path):
    from datamodules.synth import write_synthetic
    from datamodules.summary import summarize

    root = write_synthetic("voc", tmp_path / "voc", images=31, seed=5)
    port = free_port()
    fit = ["fit", *TINY, "--config", REPO / "benchmarks/launch/torchrun.yaml", "--data.init_args.root", root,
           "--record.runs_dir", "runs", "--checkpoint.dirpath", "ckpt", "--trainer.accelerator", "cpu",
           "--trainer.num_nodes", "2", "--trainer.devices", "1"]
    nodes = [
        subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
                          "--node_rank", str(rank), "--master_addr", "127.0.0.1", "--master_port", str(port),
                          "-m", "fashionbench.cli", *map(str, fit)],
                         cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for rank in (0, 1)
    ]
    outputs = []
    try:
        for node in nodes:
            outputs.append(node.communicate(timeout=540)[0])
    finally:
        for node in nodes:
            if node.poll() is None:
                node.kill()
    for rank, (node, output) in enumerate(zip(nodes, outputs)):
        assert node.returncode == 0, f"node {rank}:\n{output[-4000:]}"

    (record_path,) = (tmp_path / "runs").glob("*.json")  # one record: rank 0 writes it
    record = json.loads(record_path.read_text())
    test_images = summarize("voc", root, split="test")["images"]
    assert record["hardware"].startswith("2x cpu")  # the world torch.distributed reported
    assert record["n_test"] == test_images and test_images % 2 == 1  # uneven shards over the two nodes
    checkpoint = record["checkpoint"]
    assert checkpoint and Path(checkpoint).is_file()

    single = subprocess.run([sys.executable, "-m", "fashionbench.cli", "test", *map(str, TINY), "--data.init_args.root",
                             str(root), "--ckpt_path", checkpoint, "--record.runs_dir", "single_runs",
                             "--trainer.devices", "1"], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                            timeout=300)
    assert single.returncode == 0, single.stdout[-3000:] + single.stderr[-3000:]
    (single_path,) = (tmp_path / "single_runs").glob("*.json")
    one = json.loads(single_path.read_text())
    assert one["hardware"].startswith("1x cpu") and one["n_test"] == record["n_test"]
    assert set(record["metrics"]) == set(one["metrics"])
    for key, value in one["metrics"].items():
        got, want = (record["metrics"][key], value) if isinstance(value, list) else ([record["metrics"][key]], [value])
        assert len(got) == len(want), key
        for a, b in zip(got, want):
            assert (a is None and b is None) or a == pytest.approx(b, abs=1e-6), key
