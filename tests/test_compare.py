"""``fashionbench compare``: the runs of the run records, or of W&B (a stand-in for
``wandb.Api`` fed with the summaries :mod:`fashionbench.wandb_log` writes), in one table
whose statistics are worked out by hand, and one figure."""
import statistics
import subprocess
import sys

import pytest
from PIL import Image

from fashionbench.compare import comparison_table, load_runs, rows_from_summary, write_compare
from fashionbench.errors import InputError
from fashionbench.records import load_records, write_record
from fashionbench.wandb_log import is_online, summary_entries
from helpers import make_record

CMSG = [0.70, 0.90, 0.80]
BASE = [0.60, 0.65]


def _runs(runs_dir):
    for seed, value in enumerate(CMSG):
        write_record(make_record(seed, value, model="CMSG [resnet101]", paper="cmsg"), runs_dir)
    for seed, value in enumerate(BASE):
        write_record(make_record(seed, value, paper="baseline"), runs_dir)
    zsl = make_record(0, 0.25, model="SDL [tresnet_m]", paper="sdl", dataset="nus-wide", task="zsl", eval_set="zsl")
    write_record(zsl, runs_dir)


def _check(table):
    cmsg = table[table.model == "CMSG [resnet101]"].iloc[0]
    assert (cmsg.runs, cmsg.seeds, cmsg.metric) == (3, "0 1 2", "mAP")
    assert cmsg["median"] == pytest.approx(statistics.median(CMSG)) and cmsg["min"] == min(CMSG) and cmsg["max"] == max(CMSG)
    assert cmsg["std"] == pytest.approx(statistics.stdev(CMSG)) and cmsg["mean"] == pytest.approx(statistics.fmean(CMSG))
    base = table[table.model == "Baseline [resnet101]"].iloc[0]
    assert base["median"] == pytest.approx(statistics.median(BASE)) and base.runs == 2
    voc = table[table.dataset == "voc2007"]
    assert list(voc.model) == ["CMSG [resnet101]", "Baseline [resnet101]"]  # best median first
    sdl = table[(table.dataset == "nus-wide") & (table.task == "zsl")].iloc[0]
    assert (sdl["median"], sdl.runs) == (0.25, 1)


def test_compare_reads_the_run_records_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)  # a key, but offline: the records are read
    _runs(tmp_path / "runs")
    table, csv_path, figure, origin = write_compare("auto", tmp_path / "runs", out_dir=tmp_path / "out")
    assert origin.startswith("run records")
    _check(table)
    assert csv_path.read_text().splitlines()[0].startswith("model,dataset,task,data_source,config_sha,metric,runs")
    with Image.open(figure) as image:
        assert image.size[0] > 300 and len(set(image.convert("L").getdata())) > 10  # drawn, not blank


class _Run:
    def __init__(self, summary, name):
        self.summary, self.name, self.id = summary, name, name


class _Api:
    """What compare uses of ``wandb.Api``: ``runs(path)`` -> objects with ``summary``."""

    def __init__(self, runs):
        self._runs, self.paths = runs, []

    def runs(self, path):
        self.paths.append(path)
        return self._runs


def test_compare_reads_wandb_summaries_as_wandb_log_writes_them(tmp_path):
    _runs(tmp_path / "runs")
    records = load_records(tmp_path / "runs")
    runs = []
    for i, record in enumerate(records):
        summary = {"_step": 3, "_runtime": 9.0, "test/mAP": 0.1, **summary_entries(record)}
        if record.get("eval_set") == "zsl":  # one W&B run, two evaluation sets: two rows
            other = {**record, "eval_set": "gzsl", "task": "gzsl", "metrics": {"mAP": 0.125}}
            summary.update(summary_entries(other))
        runs.append(_Run(summary, f"run{i}"))
    api = _Api(runs)
    frame, origin = load_runs("wandb", project="fashionbench", entity="team", api=api)
    assert api.paths == ["team/fashionbench"] and origin == "W&B project team/fashionbench"
    assert len(frame) == len(records) + 1 and set(frame.origin) == {"wandb"}
    assert "test/mAP" not in frame.columns and "_step" not in frame.columns
    table = comparison_table(frame)
    _check(table)
    gzsl = table[(table.dataset == "nus-wide") & (table.task == "gzsl")].iloc[0]
    assert gzsl["median"] == 0.125


def test_rows_from_summary_keeps_each_sets_metrics_apart():
    summary = {"zsl/record": {"model": "m", "dataset": "d", "task": "zsl"}, "zsl/mAP": 0.2,
               "gzsl/record": {"model": "m", "dataset": "d", "task": "gzsl"}, "gzsl/mAP": 0.4, "epoch": 3}
    rows = {r["task"]: r for r in rows_from_summary(summary)}
    assert rows["zsl"]["mAP"] == 0.2 and rows["gzsl"]["mAP"] == 0.4 and "epoch" not in rows["zsl"]


def test_online_needs_a_mode_that_sends_and_a_key(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert not is_online()
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert is_online()
    for mode in ("offline", "disabled"):
        monkeypatch.setenv("WANDB_MODE", mode)
        assert not is_online()


def test_bad_filter_is_one_line_exit_2(tmp_path):
    _runs(tmp_path / "runs")
    with pytest.raises(InputError, match="--filter expects KEY=VALUE"):
        write_compare("records", tmp_path / "runs", filters=["paper"], out_dir=tmp_path / "out")
    table, *_ = write_compare("records", tmp_path / "runs", filters=["paper=cmsg"], out_dir=tmp_path / "out")
    assert list(table.model) == ["CMSG [resnet101]"]
    result = subprocess.run([sys.executable, "-m", "fashionbench.cli", "compare", "--source", "records", "--runs",
                             str(tmp_path / "runs"), "--filter", "nope=1", "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, env={"WANDB_MODE": "offline", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0 and "no field 'nope'" in result.stderr
