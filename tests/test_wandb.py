"""W&B when the config asks for it: without an API key the run logs offline, and runs
are grouped by dataset and named by table row and seed for the dashboard."""
import os
import sys

from fashionbench.runner import BenchCLI


def test_wandb_config_goes_offline_and_groups_by_dataset(tmp_path, monkeypatch):
    from datamodules.synth import write_synthetic

    root = write_synthetic("voc", tmp_path / "voc", images=12, seed=0)
    monkeypatch.delenv("WANDB_MODE", raising=False)
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
