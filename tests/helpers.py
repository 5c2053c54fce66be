"""Shared test helpers (importable because pytest puts tests/ on sys.path, and so does
running a worker script from tests/)."""
import os
import socket


def make_record(seed, mAP, model="Baseline [resnet101]", dataset="voc2007", source="real", **extra):
    record = {
        "paper": "cmsg", "table": "table1", "row": "ResNet-101", "model": model, "dataset": dataset,
        "task": "multilabel", "split": "test", "metrics": {"mAP": mAP, "CF1": mAP / 2, "OF1": mAP / 3, "AP": [mAP, None]},
        "label_names": ["cat", "dog"], "data_source": source, "config": {"seed_everything": seed, "model": {"lr": 1}},
        "config_sha": "x", "git_sha": "y", "seed": seed, "started": f"2026-11-22T10:00:0{seed}+00:00",
        "wall_s": 1.0, "hardware": "cpu", "n_train": 10, "n_test": 5,
    }
    record.update(extra)
    return record


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fork_gloo_ranks(rank_main, world: int, *args) -> None:
    """Run ``rank_main(rank, world, *args)`` in ``world`` forked processes that can join one
    gloo group on localhost (``env://``): the ranks inherit the parent's imports."""
    import torch

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(free_port())
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.multiprocessing.start_processes(rank_main, args=(world, *args), nprocs=world, join=True, start_method="fork")
