"""Many runs at once: records written and the leaderboard rebuilt by parallel processes lose
nothing and corrupt nothing.

Eight forked processes start together (a barrier); each writes five run records into one
``runs/`` folder and rebuilds the leaderboard after every record, as ``fashionbench fit``
followed by ``fashionbench leaderboard`` does. Afterwards: every record is there once and
parses (40 distinct files, each the JSON its process wrote), no temporary file is left,
and the leaderboard that stays -- CSV and Markdown -- counts all 40 records, both files
from the same rebuild. (Without the leaderboard's lock a process that read the records
before another's last record appeared could replace a newer leaderboard with a stale one,
and the CSV and the Markdown could come from different rebuilds.)
"""
from __future__ import annotations

import json
import multiprocessing
import re
from pathlib import Path

import pandas as pd

from fashionbench.leaderboard import write_leaderboard
from fashionbench.records import load_records, write_record
from helpers import make_record

PROCESSES, RECORDS_EACH = 8, 5


def _writer(index: int, runs: str, out: str, barrier) -> None:
    barrier.wait()
    for j in range(RECORDS_EACH):
        record = make_record(seed=j, mAP=0.5 + 0.01 * j, model=f"Model{index}", row=f"p{index}-r{j}")
        write_record(record, runs)
        write_leaderboard(runs, out)


def test_parallel_records_and_leaderboards_lose_nothing(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "results"
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(PROCESSES)
    workers = [ctx.Process(target=_writer, args=(i, str(runs), str(out), barrier)) for i in range(PROCESSES)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
    assert [w.exitcode for w in workers] == [0] * PROCESSES

    files = sorted(runs.iterdir())
    assert len(files) == PROCESSES * RECORDS_EACH and all(f.suffix == ".json" for f in files)
    rows = sorted(json.loads(f.read_text())["row"] for f in files)
    assert rows == sorted(f"p{i}-r{j}" for i in range(PROCESSES) for j in range(RECORDS_EACH))
    assert len(load_records(runs)) == PROCESSES * RECORDS_EACH

    assert [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")] == []  # no half-written file left
    assert {"leaderboard.csv", "leaderboard.md", "leaderboard_models.csv"} <= {p.name for p in out.iterdir()}
    table = pd.read_csv(out / "leaderboard.csv")
    assert len(table) == PROCESSES  # one group per model
    assert table["runs"].sum() == PROCESSES * RECORDS_EACH
    assert sorted(table["model"]) == sorted(f"Model{i}" for i in range(PROCESSES))
    markdown = (out / "leaderboard.md").read_text()
    assert re.search(rf"from {PROCESSES * RECORDS_EACH} run record\(s\)", markdown)
    assert all(f"| Model{i} |" in markdown for i in range(PROCESSES))
