"""W&B when the config asks for it: without an API key the run logs offline; runs log to
one project, grouped by paper (job type = dataset, tags for table and row) and named by
table row and seed; each run record is mirrored to its run (config, summary, per-class AP),
read back here from the offline run directory's own transaction log."""
import os
import sys

import pytest

from fashionbench.runner import BenchCLI

#: set by torch itself the first time its compiler / CUDA check runs, and pytest's own marker
NOT_THE_TESTS = {"TORCHINDUCTOR_CACHE_DIR", "PYTORCH_NVML_BASED_CUDA_CHECK", "PYTEST_CURRENT_TEST"}


@pytest.fixture(autouse=True)
def environment_is_restored():
    """Set up before ``monkeypatch`` and torn down after it: the test leaves ``os.environ`` as
    it found it, ``WANDB_MODE`` above all (the CLI writes ``os.environ["WANDB_MODE"]``)."""
    before = dict(os.environ)
    yield
    after = dict(os.environ)
    changed = {key for key in set(before) | set(after) if before.get(key) != after.get(key)}
    assert after.get("WANDB_MODE") == before.get("WANDB_MODE")
    assert changed <= NOT_THE_TESTS, {key: (before.get(key), after.get(key)) for key in changed - NOT_THE_TESTS}


def forget_on_undo(monkeypatch, *names):
    """Puts ``names`` under ``monkeypatch``'s care, set or not, then removes them: whatever the
    code under test writes to them is undone (``delenv`` alone records nothing for an unset name)."""
    for name in names:
        monkeypatch.setenv(name, "set-by-test")
        monkeypatch.delenv(name)


def test_wandb_config_goes_offline_and_groups_by_paper(tmp_path, monkeypatch):
    from datamodules.synth import write_synthetic

    root = write_synthetic("voc", tmp_path / "voc", images=12, seed=0)
    # WANDB_MODE: the fallback under test; PL_*: written by seed_everything
    forget_on_undo(monkeypatch, "WANDB_MODE", "PL_GLOBAL_SEED", "PL_SEED_WORKERS")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc with a key
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["fashionbench"])  # args come from the test, not pytest's argv
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cli = BenchCLI(
        args=[
            "--config", f"{repo}/benchmarks/baseline/voc2007.yaml", "--config", f"{repo}/benchmarks/smoke.yaml",
            "--config", f"{repo}/benchmarks/loggers/wandb.yaml", "--data.init_args.root", str(root),
            "--seed_everything", "7",
        ],
        run=False,
    )
    assert os.environ["WANDB_MODE"] == "offline"
    wandb_logger = [lg for lg in cli.trainer.loggers if type(lg).__name__ == "WandbLogger"][0]
    init = wandb_logger._wandb_init
    # benchmarks/baseline/voc2007.yaml: record.paper baseline, table voc2007, row ResNet-101
    assert (init["project"], init["group"], init["job_type"]) == ("fashionbench", "baseline", "voc2007")
    assert init["tags"] == ["paper:baseline", "table:voc2007", "row:ResNet-101", "dataset:voc2007"]
    assert init["name"] == "ResNet-101 voc2007 s7"


@pytest.mark.slow
def test_offline_run_directory_holds_the_run_records(tmp_path, monkeypatch):
    """A tiny fit with the W&B logger config: the offline run directory's summary holds every
    scalar metric of the run record (and its identity), its config the resolved config, its
    run the paper/dataset/table/row grouping; the per-class AP went in as a table."""
    import json

    import wandb

    from datamodules.synth import write_synthetic
    from fashionbench.wandb_log import offline_run_info, offline_runs, offline_summary

    root = write_synthetic("voc", tmp_path / "voc", images=12, seed=0)
    forget_on_undo(monkeypatch, "WANDB_MODE", "PL_GLOBAL_SEED", "PL_SEED_WORKERS", "WANDB_SERVICE", "WANDB__SERVICE_WAIT")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["fashionbench"])
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cli = BenchCLI(args=[
        "fit", "--config", f"{repo}/benchmarks/baseline/voc2007.yaml", "--config", f"{repo}/benchmarks/smoke.yaml",
        "--config", f"{repo}/benchmarks/loggers/wandb.yaml", "--data.init_args.root", str(root),
        "--trainer.max_epochs", "1", "--data.init_args.image_size", "32", "--data.init_args.batch_size", "4",
        "--data.init_args.num_workers", "0", "--seed_everything", "3",
    ])
    wandb.finish()
    wandb.teardown()  # waits for the wandb-core service to write out the transaction log
    (record_path,) = cli.trainer.callbacks[[type(c).__name__ for c in cli.trainer.callbacks].index("RunRecorder")].written
    record = json.loads(record_path.read_text())
    (run_dir,) = offline_runs(tmp_path / "results" / "logs")

    summary = offline_summary(run_dir)
    scalars = {k: v for k, v in record["metrics"].items() if isinstance(v, (int, float))}
    assert scalars and {k: summary[k] for k in scalars} == pytest.approx(scalars)
    assert summary["record"]["paper"] == "baseline" and summary["record"]["seed"] == 3
    assert summary["record"]["record_file"] == record_path.name
    assert summary["per_class_AP"]["_type"] == "table-file" and summary["per_class_AP"]["nrows"] == len(record["metrics"]["AP"])

    info = offline_run_info(run_dir)
    assert (info["project"], info["group"], info["job_type"]) == ("fashionbench", "baseline", "voc2007")
    assert "table:voc2007" in info["tags"] and "row:ResNet-101" in info["tags"]
    assert info["config"]["model"] == record["config"]["model"]  # the resolved config
    assert (tmp_path / "results" / "figures" / "runs" / f"{record_path.stem}_ap.png").is_file()
