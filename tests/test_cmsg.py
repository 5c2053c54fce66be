"""fashionbench.models.cmsg.CMSG: shapes and gradients for any number of labels, the
ablation switches, the correlation buffer against the equations, the masking inside the
model, parameter groups, loss default, errors, and the benchmark configs' keys."""
from __future__ import annotations

import inspect
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from sklearn.metrics.pairwise import cosine_similarity

from fashionbench.errors import InputError
from fashionbench.losses import AsymmetricLoss, MaskedBCEWithLogits
from fashionbench.models.cmsg import CMSG

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO / "benchmarks" / "cmsg"
TINY = dict(backbone="resnet10t", pretrained=False, hidden_dim=32, sga_heads=2, saa_heads=4, sga_layers=1, saa_layers=2)


def _vectors_file(tmp_path: Path, names: list[str], dim: int = 12, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    path = tmp_path / f"vectors_{len(names)}.npz"
    np.savez(path, names=np.asarray(names), vectors=rng.normal(size=(len(names), dim)).astype(np.float32))
    return path


def _model(tmp_path: Path, num_labels: int, **overrides) -> CMSG:
    names = [f"label{i}" for i in range(num_labels)]
    kwargs = {**TINY, "embeddings": str(_vectors_file(tmp_path, names)), "num_labels": num_labels, "label_names": names}
    kwargs.update(overrides)
    torch.manual_seed(0)
    return CMSG(**kwargs)


@pytest.mark.parametrize("num_labels", [1, 3, 20, 80])
def test_shapes_and_gradients_for_any_number_of_labels(tmp_path, num_labels):
    model = _model(tmp_path, num_labels, tau=0.0)
    images = torch.randn(2, 3, 64, 64)
    logits = model(images)
    assert logits.shape == (2, num_labels) and torch.isfinite(logits).all()
    batch = {"image": images, "target": (torch.rand(2, num_labels) > 0.5).float(), "mask": torch.ones(2, num_labels, dtype=torch.bool)}
    loss = model.compute_loss(logits, batch)
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
    for part in (model.backbone, model.input_proj, model.decoupling, model.sga, model.saa, model.classifier):
        assert any(p.grad.abs().sum() > 0 for p in part.parameters())


@pytest.mark.parametrize(
    "switches, n_sga, n_saa, masked",
    [
        ({}, 1, 2, True),
        ({"use_sga": False}, 0, 2, True),
        ({"use_saa": False}, 1, 0, True),
        ({"use_correlation": False}, 1, 2, False),
        ({"use_sga": False, "use_saa": False}, 0, 0, True),
    ],
)
def test_ablation_switches(tmp_path, switches, n_sga, n_saa, masked):
    model = _model(tmp_path, 5, **switches).eval()
    assert len(model.sga) == n_sga and len(model.saa) == n_saa
    assert (model.sga_bias is not None) == masked
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 5)


def test_correlation_buffer_follows_the_equations(tmp_path):
    tau, p = 0.1, 0.3
    model = _model(tmp_path, 6, tau=tau, p=p)
    vectors = np.load(tmp_path / "vectors_6.npz")["vectors"]
    # ML-GCN Eq. 7 on cosine similarities, Eq. 8 with the identity kept (independent numpy)
    adjacency = (cosine_similarity(vectors) >= tau) & ~np.eye(6, dtype=bool)
    expected = np.zeros((6, 6))
    for i in range(6):
        degree = adjacency[i].sum()
        expected[i] = p * adjacency[i] / degree if degree else 0.0
        expected[i, i] = 1 - p if degree else 1.0
    np.testing.assert_allclose(model.correlation.numpy(), expected, atol=1e-6)
    assert (model.correlation == 0).any(), "pick tau so that some pairs are masked"


def test_sga_inside_the_model_gives_masked_pairs_zero_weight(tmp_path):
    model = _model(tmp_path, 6, tau=0.1).eval()
    images = torch.randn(2, 3, 64, 64)
    tokens, pos = model.spatial_features(images)
    z = model.decoupling(tokens, model.label_vectors, pos)
    _, weights = model.sga[0](z, model.sga_bias, need_weights=True)
    zero = model.correlation == 0
    assert zero.any() and torch.all(weights[:, :, zero] == 0)
    assert torch.all(weights[:, :, ~zero] > 0)


def test_label_vectors_are_aligned_by_name(tmp_path):
    names = ["cat", "dog", "bird"]
    path = _vectors_file(tmp_path, names)
    data = np.load(path)
    reordered = ["bird", "cat", "dog"]
    model = CMSG(**TINY, embeddings=str(path), num_labels=3, label_names=reordered)
    np.testing.assert_array_equal(model.label_vectors.numpy(), data["vectors"][[2, 0, 1]])


def test_backbone_parameters_and_groups(tmp_path):
    model = _model(tmp_path, 4)
    backbone = {id(p) for p in model.backbone_parameters()}
    assert backbone == {id(p) for p in model.backbone.parameters()}
    groups = {g["name"]: {id(p) for p in g["params"]} for g in model.parameter_groups()}
    assert groups["backbone"] == backbone
    assert groups["head"] == {id(p) for p in model.parameters()} - backbone
    assert id(model.classifier.weight) in groups["head"]


def test_default_loss_is_asl_with_the_papers_settings(tmp_path):
    loss = _model(tmp_path, 3).loss
    assert isinstance(loss, AsymmetricLoss)
    assert (loss.gamma_neg, loss.gamma_pos, loss.clip, loss.reduction) == (4.0, 0.0, 0.05, "sum")
    assert isinstance(_model(tmp_path, 3, loss=MaskedBCEWithLogits()).loss, MaskedBCEWithLogits)


def test_state_dict_round_trip(tmp_path):
    model = _model(tmp_path, 4)
    clone = _model(tmp_path, 4)
    torch.manual_seed(1)
    for p in clone.parameters():
        torch.nn.init.normal_(p)
    clone.load_state_dict(model.state_dict())
    images = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(clone.eval()(images), model.eval()(images))


def test_hidden_dim_defaults_to_the_backbone_width(tmp_path):
    model = _model(tmp_path, 2, hidden_dim=None, ffn_dim=None, sga_layers=1, saa_layers=1)
    assert model.input_proj.out_features == model.backbone.num_features == 512
    assert model.sga[0].ffn[0].out_features == 4 * 512


def test_errors(tmp_path):
    with pytest.raises(InputError, match="needs `embeddings`"):
        CMSG(**TINY, num_labels=2, label_names=["a", "b"])
    path = _vectors_file(tmp_path, ["a", "b"])
    with pytest.raises(InputError, match="label_names"):
        CMSG(**TINY, embeddings=str(path), num_labels=2)
    with pytest.raises(InputError, match="'zebra'") as err:
        CMSG(**TINY, embeddings=str(path), num_labels=2, label_names=["a", "zebra"])
    assert str(path) in str(err.value)
    with pytest.raises(ValueError, match="divisible"):
        CMSG(**{**TINY, "hidden_dim": 30}, embeddings=str(path), num_labels=2, label_names=["a", "b"])
    with pytest.raises(ValueError, match="p must be"):
        CMSG(**TINY, embeddings=str(path), num_labels=2, label_names=["a", "b"], p=1.0)


# ------------------------------------------------------------------------- the configs
CONFIGS = sorted(CONFIG_DIR.glob("*.yaml")) + sorted((CONFIG_DIR / "sensitivity").glob("*.yaml"))
TABLE_CONFIGS = [c for c in CONFIGS if c.name not in ("paper.yaml", "smoke.yaml")]


def _accepts(cls, keys) -> list[str]:
    params = {}
    for klass in inspect.getmro(cls):
        if "__init__" in vars(klass):
            params.update(inspect.signature(klass.__init__).parameters)
    return [k for k in keys if k not in params]


def _import(class_path: str):
    module, _, name = class_path.rpartition(".")
    return getattr(__import__(module, fromlist=[name]), name)


def test_every_table_row_has_a_config():
    names = {c.name for c in TABLE_CONFIGS}
    for expected in ("voc2007_resnet101.yaml", "voc2007_cmsg.yaml", "voc2007_cmsg_no_sga.yaml", "voc2007_cmsg_no_saa.yaml",
                     "voc2007_cmsg_no_corr.yaml", "voc2012_cmsg.yaml", "coco2014_resnet101.yaml", "coco2014_cmsg.yaml",
                     "voc2007_cmsg_star.yaml", "voc2012_cmsg_star.yaml", "voc2007_cmsg_w256.yaml", "voc2007_cmsg_asl_aug.yaml",
                     "coco2014_cmsg_no_sga.yaml", "coco2014_cmsg_no_saa.yaml", "coco2014_cmsg_no_corr.yaml",
                     "voc2007_cmsg_heads1.yaml", "voc2007_cmsg_layers4.yaml"):
        assert expected in names


@pytest.mark.parametrize("config_path", TABLE_CONFIGS, ids=lambda p: p.name)
def test_config_keys_exist_in_the_classes_they_name(config_path):
    from datamodules.transforms import build_transform
    from fashionbench.models.optim import OptimConfig

    config = yaml.safe_load(config_path.read_text())
    model_cls = _import(config["model"]["class_path"])
    init = config["model"]["init_args"]
    assert _accepts(model_cls, init) == []
    assert _accepts(_import(init["loss"]["class_path"]), init["loss"].get("init_args", {})) == []
    assert set(init["optim"]) <= set(inspect.signature(OptimConfig).parameters)
    data_cls = _import(config["data"]["class_path"])
    assert _accepts(data_cls, config["data"]["init_args"]) == []
    for transform in ("train_transform", "eval_transform"):
        assert set(config["data"]["init_args"].get(transform) or {}) <= set(inspect.signature(build_transform).parameters)
    assert config["record"]["paper"] == "cmsg" and config["record"]["row"]
    if "embeddings" in init:
        assert (REPO / init["embeddings"]).is_file()
    for callback in config["trainer"].get("callbacks") or []:
        cb_cls = _import(callback["class_path"])
        cb_args = callback.get("init_args") or {}
        unknown = _accepts(cb_cls, cb_args)
        from lightning.pytorch.callbacks import EMAWeightAveraging, WeightAveraging
        from torch.optim.swa_utils import AveragedModel

        if issubclass(cb_cls, WeightAveraging):  # its **kwargs reach torch's AveragedModel, so only its keys are real
            averaged = set(inspect.signature(AveragedModel.__init__).parameters) - {"self", "model", "avg_fn"}
            unknown = [k for k in unknown if k not in averaged]
        assert unknown == [], (callback["class_path"], unknown)
        built = cb_cls(**cb_args)
        if issubclass(cb_cls, EMAWeightAveraging):  # decay is used: the EMA step avg(0, 1) = 1 - decay
            decay = cb_args.get("decay", inspect.signature(cb_cls.__init__).parameters["decay"].default)
            assert built._kwargs["avg_fn"](torch.tensor(0.0), torch.tensor(1.0), 1).item() == pytest.approx(1 - decay, rel=1e-4)
    assert math.isfinite(init["optim"]["lr"])
