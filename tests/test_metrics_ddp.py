"""MultilabelEvaluator / SingleLabelEvaluator under DDP with uneven shards equal one process.

The 2-process gloo group runs in its own subprocess (tests/ddp_metric_worker.py), never in
the pytest process. Rank 0 holds 6 samples, rank 1 holds 5 (11 in all, C = 7); both ranks'
``compute()`` must equal, exactly, a single-process run on all 11 samples.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("ddp_metric_worker.py")


def load_worker():
    spec = importlib.util.spec_from_file_location("ddp_metric_worker", WORKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.ddp
def test_ddp_uneven_shards_equal_single_process(tmp_path):
    repo_root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [repo_root, os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, str(WORKER), str(tmp_path)], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]

    worker = load_worker()
    data = worker.make_data()
    multilabel, single_label = worker.make_metrics()
    multilabel.update(data["scores"], data["targets"], data["mask"])
    single_label.update(data["scores"], data["class_ids"])
    # through JSON like the workers' results, so both sides are compared as the same Python values
    expected = json.loads(json.dumps({"multilabel": multilabel.compute(), "single_label": single_label.compute()}))
    assert sum(sum(1 for _ in shard) for shard in [range(11)[s] for s in worker.SHARDS[0]]) == 6

    assert expected["multilabel"]["AP"][6] is None  # the empty class travels through the gather too
    for rank in (0, 1):
        got = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert got == expected, f"rank {rank}"
