"""W&B when the config asks for it: without an API key the run logs offline, and runs
are grouped by dataset and named by table row and seed for the dashboard."""
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


def test_wandb_config_goes_offline_and_groups_by_dataset(tmp_path, monkeypatch):
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
    assert wandb_logger._wandb_init["group"] == "voc2007"
    assert wandb_logger._wandb_init["name"] == "ResNet-101 voc2007 s7"
