"""The semantic-embedding paper (Shen, Zhao and Luo): SGE against a group worked by hand and
its place in the ResNet blocks; the CAM generator and its pooling; the semantic embedding's
shapes; the classifier's 3 + D input channels; the reshaped-CAM ablation's min-max
normalisation; the plateau schedule; stage 2 loading and freezing the stage-1 generator;
the paper's tables (relative improvements and differences by hand); the benchmark configs;
and, on synthetic DeepFashion, both stages learning."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import yaml
from torch import nn

from fashionbench.layers.sge import SpatialGroupEnhance, add_sge
from fashionbench.models.optim import OptimConfig, build_optimizer, build_plateau_scheduler
from fashionbench.models.semantic_embed import (
    CAMGenerator,
    CAMNetwork,
    SemanticEmbedding,
    SemanticEmbedResNeSt,
    reshaped_cam,
)

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks" / "semantic_embed"
TINY = dict(backbone="resnest14d", pretrained=False, generator_backbone="resnet10t")
EPOCHS = 5  # the learning test's epochs per stage
SIG4 = 1 / (1 + math.exp(-4.0))  # sigmoid(4) = 0.98201...
SIG1 = 1 / (1 + math.exp(-1.0))  # sigmoid(1) = 0.73106...


# ------------------------------------------------------------------------------ SGE
def test_sge_against_a_group_worked_by_hand():
    """Two groups of two channels on a 2x2 map (positions in row-major order).

    Group 0: channel a = [1, 1, 1, 5], channel b = [1, -1, 1, -1].
      g = spatial means = (2, 0); c_i = 2 a_i + 0 b_i = [2, 2, 2, 10];
      mean 4, deviations [-2, -2, -2, 6], unbiased variance (4+4+4+36)/3 = 16, std 4;
      normalised [-0.5, -0.5, -0.5, 1.5]; with gamma 2, beta 1: [0, 0, 0, 4];
      gates sigmoid = [1/2, 1/2, 1/2, sigmoid(4)]:
      a -> [0.5, 0.5, 0.5, 5 sigmoid(4)], b -> [0.5, -0.5, 0.5, -sigmoid(4)].
    Group 1 at the official init (gamma 0, beta 1): every gate is sigmoid(1).
    """
    sge = SpatialGroupEnhance(groups=2)
    with torch.no_grad():
        sge.weight.copy_(torch.tensor([2.0, 0.0]).view(1, 2, 1, 1))
        sge.bias.copy_(torch.tensor([1.0, 1.0]).view(1, 2, 1, 1))
    x = torch.tensor([[1, 1, 1, 5], [1, -1, 1, -1], [3, -2, 0.5, 7], [0, 4, -1, 2]], dtype=torch.float32).view(1, 4, 2, 2)
    out = sge(x).view(4, 4)
    eps_shift = 1e-5  # std + 1e-5: 6 / 4.00001 instead of 1.5, a change of ~4e-6 in the gate's input
    expected = torch.tensor([
        [0.5, 0.5, 0.5, 5 * SIG4],
        [0.5, -0.5, 0.5, -SIG4],
        [3 * SIG1, -2 * SIG1, 0.5 * SIG1, 7 * SIG1],
        [0, 4 * SIG1, -SIG1, 2 * SIG1],
    ])
    torch.testing.assert_close(out, expected, atol=1e-4 + eps_shift, rtol=0)


def test_sge_initialisation_and_errors():
    sge = SpatialGroupEnhance(64)
    assert torch.equal(sge.weight, torch.zeros(1, 64, 1, 1)) and torch.equal(sge.bias, torch.ones(1, 64, 1, 1))
    x = torch.randn(2, 128, 3, 3)
    torch.testing.assert_close(sge(x), x * SIG1)  # gamma 0: every gate sigmoid(beta = 1)
    one = SpatialGroupEnhance(2)(torch.randn(1, 4, 1, 1))  # a single position: defined (no NaN)
    assert torch.isfinite(one).all()
    with pytest.raises(ValueError, match="divisible"):
        SpatialGroupEnhance(3)(torch.randn(1, 4, 2, 2))


@pytest.mark.parametrize("name, block_bn, count", [("resnet50", "bn3", 16), ("resnet10t", "bn2", 4)])
def test_add_sge_sits_after_the_last_bn_before_the_residual_add(name, block_bn, count):
    torch.manual_seed(0)
    net = timm.create_model(name, pretrained=False, num_classes=0, global_pool="")
    plain = {k: v.clone() for k, v in net.state_dict().items()}
    assert add_sge(net, 64) == count
    block = net.layer2[0]
    wrapped = getattr(block, block_bn)
    assert isinstance(wrapped[0], nn.BatchNorm2d) and isinstance(wrapped[1], SpatialGroupEnhance)
    assert wrapped[1].groups == 64
    # plain weights load into the wrapped BN (".0."): a pretrained state dict fits
    renamed = {k.replace(f".{block_bn}.", f".{block_bn}.0."): v for k, v in plain.items()}
    missing, unexpected = net.load_state_dict(renamed, strict=False)
    assert not unexpected and all(k.endswith((".1.weight", ".1.bias")) for k in missing)
    # a gate of ~0 removes the residual branch: the block is act(shortcut) -> SGE is before the add
    block.eval()
    with torch.no_grad():
        wrapped[1].bias.fill_(-40.0)
        x = torch.randn(1, block.conv1.in_channels, 8, 8)
        shortcut = block.downsample(x) if block.downsample is not None else x
        torch.testing.assert_close(block(x), torch.relu(shortcut), atol=1e-6, rtol=0)
    assert add_sge(net, 64) == 0  # already enhanced: nothing added twice


# ------------------------------------------------------------------------ generator
def test_cam_generator_logits_are_the_pooled_cam():
    torch.manual_seed(0)
    model = CAMGenerator(backbone="resnet10t", pretrained=False, num_labels=5)
    images = torch.randn(2, 3, 64, 96)
    cam = model.cam(images)
    assert cam.shape == (2, 5, 2, 3)  # stride 32
    torch.testing.assert_close(model(images), cam.mean(dim=(2, 3)))
    assert isinstance(model.generator.cam, nn.Conv2d) and model.generator.cam.kernel_size == (1, 1)
    assert model.generator.cam.in_channels == 512  # resnet10t features (2048 for resnet50)


def test_generator_needs_a_resnet():
    from fashionbench.errors import InputError

    with pytest.raises(InputError, match="SGE"):
        CAMNetwork(3, backbone="resnest14d", pretrained=False)


# ------------------------------------------------------------------------ embedding
@pytest.mark.parametrize("c, h, w, d", [(11, 2, 3, 1), (4, 1, 1, 3), (11, 8, 8, 1)])
def test_embedding_maps_a_cam_to_32x_its_size(c, h, w, d):
    emb = SemanticEmbedding(c, d)
    out = emb(torch.randn(2, c, h, w))
    assert out.shape == (2, d, 32 * h, 32 * w)
    convs = [m for m in emb.modules() if isinstance(m, nn.ConvTranspose2d)]
    norms = [m for m in emb.modules() if isinstance(m, nn.InstanceNorm2d)]
    assert len(convs) == 5 and len(norms) == 5
    assert [m.out_channels for m in convs] == [c, c, c, c, d] and all(m.in_channels == c for m in convs)
    if h * w > 1:  # instance norm: each output map has mean ~0, std ~1 (affine at its init)
        flat = out.flatten(2)
        torch.testing.assert_close(flat.mean(-1), torch.zeros(2, d), atol=1e-4, rtol=0)


def test_embedding_ends_at_the_input_size_in_the_model():
    torch.manual_seed(0)
    model = SemanticEmbedResNeSt(num_labels=11, **TINY)
    images = torch.randn(2, 3, 64, 64)
    assert model.semantic_map(images).shape == (2, 1, 64, 64)
    assert model(images).shape == (2, 11)
    odd = torch.randn(1, 3, 72, 80)  # not a multiple of 32: interpolated to the input size
    assert model.semantic_map(odd).shape == (1, 1, 72, 80)


def _first_conv(module: nn.Module) -> nn.Conv2d:
    return next(m for m in module.modules() if isinstance(m, nn.Conv2d))


@pytest.mark.parametrize("semantic, d, channels", [("deconv", 1, 4), ("deconv", 3, 6), ("reshaped", 1, 4), ("none", 1, 3)])
def test_classifier_first_conv_takes_3_plus_d_channels(semantic, d, channels):
    model = SemanticEmbedResNeSt(num_labels=3, semantic=semantic, embed_channels=d, **TINY)
    assert _first_conv(model.classifier).in_channels == channels
    assert (model.generator is None) == (semantic == "none")
    head = [m for m in model.head if isinstance(m, nn.Linear)]
    assert [m.out_features for m in head] == [1024, 512, 3]  # extra fully connected layers


def test_resnet50_ablation_backbone_takes_4_channels():
    model = SemanticEmbedResNeSt(num_labels=3, backbone="resnet10t", pretrained=False, generator_backbone="resnet10t")
    assert _first_conv(model.classifier).in_channels == 4


def test_reshaped_cam_is_min_max_normalised():
    # hand case, no resizing: channels [[0, 1], [3, 0]] and [[2, 0], [0, 0]] sum to [[2, 1], [3, 0]]
    # -> (x - 0) / (3 - 0) = [[2/3, 1/3], [1, 0]]
    cam = torch.tensor([[[[0.0, 1.0], [3.0, 0.0]], [[2.0, 0.0], [0.0, 0.0]]]])
    torch.testing.assert_close(reshaped_cam(cam, (2, 2)), torch.tensor([[[[2 / 3, 1 / 3], [1.0, 0.0]]]]))
    big = reshaped_cam(torch.randn(3, 11, 2, 2) * 5 - 2, (64, 64))
    assert big.shape == (3, 1, 64, 64)
    flat = big.flatten(1)
    torch.testing.assert_close(flat.min(1).values, torch.zeros(3))
    torch.testing.assert_close(flat.max(1).values, torch.ones(3))
    assert torch.equal(reshaped_cam(torch.ones(1, 2, 2, 2), (4, 4)), torch.zeros(1, 1, 4, 4))  # constant map -> 0
    with pytest.raises(ValueError, match="one channel"):
        SemanticEmbedResNeSt(num_labels=3, semantic="reshaped", embed_channels=3, **TINY)


# ------------------------------------------------------------------------ optimiser
def test_plateau_schedule_drops_the_rate_after_patience_epochs():
    w = nn.Parameter(torch.zeros(1))
    cfg = OptimConfig(name="adam", lr=1e-5, weight_decay=0.0, schedule="plateau", plateau_patience=4, gamma=0.1)
    opt = build_optimizer(cfg, [{"params": [w], "lr": cfg.lr}])
    sched = build_plateau_scheduler(cfg, opt)
    assert sched["monitor"] == "val/loss" and sched["interval"] == "epoch"
    rates = []
    for loss in [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]:  # best at epoch 1, then 5 epochs without improvement
        sched["scheduler"].step(loss)
        rates.append(opt.param_groups[0]["lr"])
    # ReduceLROnPlateau: drops when the bad epochs exceed the patience (4), i.e. at the 6th step
    assert rates[:5] == [1e-5] * 5 and rates[5] == pytest.approx(1e-6)


def test_models_configure_the_plateau_schedule():
    model = CAMGenerator(backbone="resnet10t", pretrained=False, num_labels=2,
                         optim=OptimConfig(name="adam", lr=1e-5, schedule="plateau"))
    out = model.configure_optimizers()
    assert isinstance(out["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.ReduceLROnPlateau)
    assert out["lr_scheduler"]["scheduler"].patience == 4
    assert isinstance(out["optimizer"], torch.optim.Adam) and out["optimizer"].param_groups[0]["lr"] == 1e-5


# ------------------------------------------------------------------------ stage chaining
def _random_loader(num_labels: int, n: int = 16, size: int = 64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    items = [{"image": torch.randn(3, size, size, generator=g),
              "target": (torch.rand(num_labels, generator=g) > 0.5).float(),
              "mask": torch.ones(num_labels, dtype=torch.bool), "index": torch.tensor(i)} for i in range(n)]
    return torch.utils.data.DataLoader(items, batch_size=4)


def _trainer(steps: int):
    import lightning.pytorch as pl

    return pl.Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                      limit_val_batches=0)


def test_second_stage_loads_the_first_stages_generator_and_keeps_it_frozen(tmp_path):
    torch.manual_seed(0)
    # default optimiser: the CLI stores hparams as plain dicts, which init_from reads with
    # weights_only=True; an OptimConfig object in the hparams would not unpickle that way
    stage1 = CAMGenerator(backbone="resnet10t", pretrained=False, num_labels=3)
    trainer = _trainer(2)
    trainer.fit(stage1, train_dataloaders=_random_loader(3, n=8))
    ckpt = tmp_path / "cam.ckpt"
    trainer.save_checkpoint(ckpt)
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    generator_keys = {k[len("generator."):]: v for k, v in saved.items() if k.startswith("generator.")}
    assert any("running_mean" in k for k in generator_keys)

    torch.manual_seed(1)  # a different init: equality below can only come from the checkpoint
    stage2 = SemanticEmbedResNeSt(
        num_labels=3, backbone="resnet10t", pretrained=False, generator_backbone="resnet10t",
        optim=OptimConfig(name="adam", lr=1e-3, weight_decay=0.0),
        init_from=[{"checkpoint": str(ckpt), "source_prefix": "generator.", "target": "generator", "freeze": True}])
    before_head = {k: v.clone() for k, v in stage2.embedding.state_dict().items()}
    trainer2 = _trainer(2)
    trainer2.fit(stage2, train_dataloaders=_random_loader(3, n=8, seed=1))
    after = stage2.generator.state_dict()
    assert set(after) == set(generator_keys)
    for key, value in generator_keys.items():  # weights AND BN running statistics unchanged
        assert torch.equal(after[key], value), key
    assert not any(p.requires_grad for p in stage2.generator.parameters())
    assert not stage2.generator.training  # kept in eval mode while training
    changed = [k for k, v in stage2.embedding.state_dict().items() if not torch.equal(v, before_head[k])]
    assert changed, "the embedding should train"


# ------------------------------------------------------------------------ tables
def _record(row, values, labels, source="synthetic", seed=0, freqs=None, table="table1"):
    record = {"paper": "semantic_embed", "table": table, "row": row, "model": f"{row} [x]", "dataset": "deepfashion",
              "task": "patterns", "data_source": source, "seed": seed, "label_names": labels,
              "metrics": {"PR-AUC_per_class": values, "PR-AUC": float(np.mean([v for v in values if v is not None]))}}
    if freqs is not None:
        record["label_frequencies"] = freqs
    return record


def test_tables_relative_improvement_groups_and_differences_by_hand():
    from fashionbench.paper_tables.semantic_embed import render_table
    from fashionbench.tables import metric_value

    labels = ["Solid", "Words/Letters", "Dot"]
    table1 = {
        "layout": "relative", "dataset": "deepfashion", "task": "patterns", "columns": ["Solid", "Words Letters", "Dot"],
        "labels": {"Words Letters": "Words/Letters"},
        "reported": [{"row": "B", "source": "paper I", "values": {"Solid": 0.8, "Words Letters": 0.5, "Dot": 0.4}},
                     {"row": "M", "source": "paper I", "values": {"Solid": 0.88, "Words Letters": 0.6, "Dot": 0.6}}],
        "reported_relative": {"source": "paper I row 3", "values": {"Solid": 10.0, "Words Letters": 20.0, "Dot": 50.0}},
        "ours": [{"row": "base"}, {"row": "ours"}],
        "relative": {"baseline": "base", "method": "ours"},
    }
    records = [
        _record("base", [0.5, 0.2, 0.4], labels, seed=0), _record("base", [0.7, 0.4, 0.4], labels, seed=1),
        _record("ours", [0.9, 0.3, None], labels, seed=0, freqs=[0.30, 0.02, 0.06]),
        _record("ours", [0.9, 0.3, None], labels, seed=1, freqs=[0.30, 0.02, 0.06]),
    ]
    assert metric_value(records[0], "PR-AUC:Words/Letters") == 0.2
    assert metric_value(records[0], "PR-AUC:Nope") is None
    text, sources = render_table("table1", table1, "semantic_embed", records)
    assert sources == {"synthetic"}
    lines = text.splitlines()
    # baseline medians: Solid (0.5+0.7)/2 = 0.6, Words 0.3, Dot 0.4
    assert any(line.startswith("| base | this suite, synthetic data") and "| 0.600 | 0.300 | 0.400 | 0 1 |" in line for line in lines)
    # ours / base - 1: Solid 0.9/0.6 - 1 = +50.00%, Words 0.3/0.3 - 1 = +0.00%, Dot undefined
    assert "| Relative improvement | this suite, synthetic data (rows above) | +50.00% | +0.00% | — | — |" in lines
    # the paper's row as printed, and recomputed: 0.88/0.8 - 1 = +10.00%, 0.6/0.5 - 1 = +20.00%, 0.6/0.4 - 1 = +50.00%
    assert "| Relative improvement | paper I row 3 | 10.00% | 20.00% | 50.00% | — |" in lines
    assert "| Relative improvement, recomputed | from the paper's printed values above | +10.00% | +20.00% | +50.00% | — |" in lines

    table2 = {"layout": "groups", "from_table": "table1", "majority_threshold": 0.05, "paper_majority": ["Solid", "Dot"],
              "reported": [{"group": "majority", "source": "paper II", "value": 11.45},
                           {"group": "minority", "source": "paper II", "value": 16.64}]}
    text2, _ = render_table("table2", table2, "semantic_embed", records, tables={"table1": table1})
    lines2 = text2.splitlines()
    assert any("| paper II | 11.45% | 16.64% |" in line for line in lines2)
    # paper recomputed: majority (Solid 10, Dot 50) -> 30.00%, minority (Words 20) -> 20.00%
    assert any("mean of the paper's Table I relative improvements | 30.00% | 20.00% |" in line for line in lines2)
    # suite: majority = train rate > 5% = Solid (0.30), Dot (0.06; its improvement is undefined) -> +50.00%;
    # minority = Words/Letters -> +0.00%
    assert any("this suite, synthetic data (Table I rows) | +50.00% | +0.00% | Solid, Dot (training positive rate > 5%)" in line
               for line in lines2)

    table3 = {"layout": "differences", "dataset": "deepfashion", "task": "patterns", "columns": ["Solid", "Words Letters", "Dot"],
              "labels": {"Words Letters": "Words/Letters"},
              "reported": [{"row": "R1", "source": "paper III", "values": {"Solid": 0.870, "Words Letters": 0.626, "Dot": 0.791}},
                           {"row": "R2", "source": "paper III", "values": {"Solid": -0.387, "Words Letters": -0.1072, "Dot": 0.016}}],
              "ours": [{"row": "ours"}, {"row": "base"}]}
    lines3 = render_table("table3", table3, "semantic_embed", records)[0].splitlines()
    # paper: 0.870 - 0.387 = 0.483, 0.626 - 0.1072 = 0.5188, 0.791 + 0.016 = 0.807
    # mean relative change: (-0.387/0.870 - 0.1072/0.626 + 0.016/0.791) / 3 = (-0.44483 - 0.17125 + 0.02023) / 3 = -19.86%
    assert "| R2 | paper III | -0.387 (0.483) | -0.1072 (0.519) | +0.016 (0.807) | -19.86% | — |" in lines3
    # suite: base - ours: 0.6 - 0.9 = -0.300, 0.3 - 0.3 = +0.000, Dot: ours undefined -> base's absolute only;
    # mean relative change over the defined labels: (-0.3/0.9 + 0) / 2 = -16.67%
    assert any("| -0.300 (0.600) | +0.000 (0.300) | 0.400 | -16.67% | 0 1 |" in line for line in lines3)


def test_paper_yaml_renders_with_the_paper_numbers(tmp_path, monkeypatch):
    from fashionbench.tables import render_target

    monkeypatch.chdir(REPO)
    path = render_target("semantic_embed", "table1", runs_dir=str(tmp_path / "none"), out_dir=str(tmp_path))
    text = path.read_text()
    for value in ("0.870", "0.809", "0.596", "0.807", "7.54%", "35.41%", "11.45%", "16.64%", "-0.387 (0.483)"):
        assert value in text, value
    assert "PR-AUC" in text


# ------------------------------------------------------------------------ configs
def _load(name: str) -> dict:
    return yaml.safe_load((BENCH / name).read_text())


def test_configs_follow_the_paper_and_chain():
    paper = _load("paper.yaml")
    runs = paper["reproduce"]["table1"]["runs"]
    assert runs[0]["id"] == "cam" and runs[0]["config"] == "deepfashion_cam_generator.yaml"
    cam = _load("deepfashion_cam_generator.yaml")
    assert cam["model"]["class_path"].endswith("CAMGenerator")
    assert cam["model"]["init_args"]["backbone"] == "resnet50" and cam["model"]["init_args"]["sge_groups"] == 64
    for run in runs[1:]:
        config = _load(run["config"])
        args = config["model"]["init_args"]
        assert config["data"]["init_args"]["task"] == "patterns" and config["data"]["init_args"]["image_size"] == 256
        assert args["optim"]["name"] == "adam" and args["optim"]["lr"] == 1e-5
        assert args["optim"]["schedule"] == "plateau" and args["optim"]["plateau_patience"] == 4
        if args.get("semantic", "deconv") != "none":
            (spec,) = args["init_from"]
            assert spec == {"checkpoint": "stage:cam", "source_prefix": "generator.", "target": "generator", "strict": True, "freeze": True}
            assert args["generator_pretrained"] is False and args["generator_backbone"] == "resnet50"
    rows = {(_load(r["config"])["record"]["row"]) for r in runs}
    assert {"ResNeSt-50", "Semantic Embedded ResNeSt-50", "ResNeSt-50 Reshaped D=1", "ResNet-50 Deconv D=1",
            "ResNeSt-50 Deconv D=3"} <= rows


# ------------------------------------------------------------------------ learning
def _chance_pr_auc(targets: np.ndarray, mask: np.ndarray, draws: int = 200, seed: int = 0) -> float:
    """Expected mean PR-AUC of random scores on these test labels (by simulation)."""
    from fashionbench.metrics.functional import pr_auc

    rng = np.random.default_rng(seed)
    t, m = torch.from_numpy(targets.astype(bool)), torch.from_numpy(mask)
    values = [float(pr_auc(torch.from_numpy(rng.random(targets.shape)), t, m).nanmean()) for _ in range(draws)]
    return float(np.mean(values))


@pytest.mark.slow
def test_both_stages_learn_on_synthetic_deepfashion(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: two spin-waiting OpenMP threads cost far more on a busy 2-core machine
    try:
        _learn(tmp_path)
    finally:
        torch.set_num_threads(threads)


def _learn(tmp_path):
    import lightning.pytorch as pl

    from datamodules.deepfashion import DeepFashionDataModule
    from datamodules.synth import write_synthetic

    root = tmp_path / "deepfashion"
    write_synthetic("deepfashion", root, images=240, seed=0)
    dm = DeepFashionDataModule(root=str(root), task="patterns", image_size=64, batch_size=16, num_workers=0,
                               train_transform={"hflip": 0.5}, seed=0, cache_dir=str(tmp_path / "cache"))
    index = dm.test_index
    targets, known = index.dense_targets().astype(bool), index.dense_mask()
    positives = (targets & known).sum(0)
    rate = float((positives / np.maximum(known.sum(0), 1))[positives > 0].mean())
    chance = _chance_pr_auc(targets, known)

    def run(model, epochs):
        trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                             enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
                             enable_checkpointing=False, deterministic=True)
        trainer.fit(model, dm)
        trainer.test(model, dm, verbose=False)
        return trainer, float(model.test_results["PR-AUC"])

    optim = OptimConfig(name="adam", lr=2e-3, weight_decay=0.0, schedule="onecycle", pct_start=0.2)
    pl.seed_everything(0, verbose=False)
    stage1 = CAMGenerator(backbone="resnet10t", pretrained=False, label_space=dm.label_space, optim=optim)
    _, auc1 = run(stage1, EPOCHS)
    ckpt = tmp_path / "cam.pt"  # a state dict file (init_from reads .ckpt, .pt and .safetensors)
    torch.save(stage1.state_dict(), ckpt)
    pl.seed_everything(0, verbose=False)
    stage2 = SemanticEmbedResNeSt(
        backbone="resnet10t", pretrained=False, generator_backbone="resnet10t", label_space=dm.label_space, optim=optim,
        init_from=[{"checkpoint": str(ckpt), "source_prefix": "generator.", "target": "generator", "freeze": True}])
    _, auc2 = run(stage2, EPOCHS)
    print(f"test PR-AUC: stage 1 {auc1:.3f}, stage 2 {auc2:.3f}; positive rate {rate:.3f}, random scores {chance:.3f}")
    for name, value in (("CAM generator", auc1), ("Semantic Embedded classifier", auc2)):
        assert value >= max(2.5 * rate, chance + 0.2), f"{name} did not learn: PR-AUC {value:.3f}, chance {chance:.3f}"
