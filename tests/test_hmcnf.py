"""HMCN-F (Cho et al., ICCV-W 2019, §3.2; Wehrmann et al., ICML 2018) and the
uncertainty-weighted loss (Kendall et al., CVPR 2018): flow shapes and values worked by
hand, the β fusion, the losses, σ gradients, the hierarchy files."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from datamodules.label_space import LabelSpace
from fashionbench.errors import InputError
from fashionbench.losses import UncertaintyWeightedLoss
from fashionbench.models.hmcnf import ActivationLayer, HierarchicalHMCNF, HMCNFHead, load_hierarchy

HIERARCHIES = Path(__file__).resolve().parents[1] / "benchmarks" / "hmcnf" / "hierarchies"
# The 50 categories of DeepFashion's Anno/list_category_cloth.txt, in file order (reference data).
DEEPFASHION_CATEGORIES = (
    "Anorak Blazer Blouse Bomber Button-Down Cardigan Flannel Halter Henley Hoodie Jacket Jersey Parka Peacoat "
    "Poncho Sweater Tank Tee Top Turtleneck Capris Chinos Culottes Cutoffs Gauchos Jeans Jeggings Jodhpurs "
    "Joggers Leggings Sarong Shorts Skirt Sweatpants Sweatshorts Trunks Caftan Cape Coat Coverup Dress Jumpsuit "
    "Kaftan Kimono Nightdress Onesie Robe Romper Shirtdress Sundress"
).split()
TYPES = ["upper"] * 20 + ["lower"] * 16 + ["full"] * 14  # category_type 1 / 2 / 3 of the same file


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one thread is fastest, and on a shared machine far faster than two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def bce(p, y):
    return float(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p))))


def small_model(**kwargs) -> HierarchicalHMCNF:
    space = LabelSpace([f"c{i}" for i in range(6)], parents=["a", "a", "b", "b", "b", "c"], single_label=True)
    args = dict(backbone="resnet10t", pretrained=False, label_space=space, embed_dim=8, hidden_dim=8, local_dim=8)
    args.update(kwargs)
    return HierarchicalHMCNF(**args)


# ----------------------------------------------------------------------------- flows
def test_global_and_local_flow_shapes():
    head = HMCNFHead(32, [3, 7], embed_dim=16, hidden_dim=12, local_dim=10, dropout=0.7)
    out = head(torch.randn(5, 32))
    assert out.x.shape == (5, 16)
    assert [a.shape for a in out.global_activations] == [(5, 12), (5, 12)]
    assert [a.shape for a in out.local_activations] == [(5, 10), (5, 10)]
    assert [z.shape for z in out.local_logits] == [(5, 3), (5, 7)]
    assert out.global_logits.shape == (5, 7) and out.final.shape == (5, 7)
    # level 1 sees x alone; level 2 sees A_G^1 concatenated with x (12 + 16 inputs)
    assert head.global_layers[0].linear.in_features == 16
    assert head.global_layers[1].linear.in_features == 12 + 16
    assert all(layer.linear.in_features == 12 for layer in head.local_layers)  # A_L^h from A_G^h


def test_flows_on_hand_computed_values():
    """Identity-free case (no BN, no residual, no dropout): every activation by hand."""
    head = HMCNFHead(2, [2, 3], embed_dim=2, hidden_dim=2, local_dim=2, beta=0.7, dropout=0.0,
                     batch_norm=False, residual=False).eval()
    W = {  # small integer weights, biases
        "project": (np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([0.0, 0.0])),
        "g1": (np.array([[1.0, -1.0], [0.5, 0.5]]), np.array([0.0, 1.0])),
        "g2": (np.array([[1.0, 0.0, 1.0, 0.0], [0.0, -1.0, 0.0, 2.0]]), np.array([0.0, 0.0])),
        "l1": (np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([0.0, 0.0])),
        "l2": (np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([0.5, 0.0])),
        "o1": (np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([0.0, 0.0])),
        "o2": (np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), np.array([0.0, 0.0, -1.0])),
        "og": (np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]]), np.array([0.0, 0.0, 0.0])),
    }
    layers = {"project": head.project.linear, "g1": head.global_layers[0].linear, "g2": head.global_layers[1].linear,
              "l1": head.local_layers[0].linear, "l2": head.local_layers[1].linear, "o1": head.local_out[0],
              "o2": head.local_out[1], "og": head.global_out}
    with torch.no_grad():
        for name, (w, b) in W.items():
            layers[name].weight.copy_(torch.tensor(w))
            layers[name].bias.copy_(torch.tensor(b))
    features = np.array([2.0, 1.0])
    # by hand: x = relu(I f) = [2, 1]
    x = np.array([2.0, 1.0])
    a_g1 = np.array([max(2 - 1, 0), max(0.5 * 2 + 0.5 * 1 + 1, 0)])            # [1, 2.5]
    a_g2 = np.array([max(1 + 2, 0), max(-2.5 + 2 * 1, 0)])                      # on [A_G^1, x] = [1, 2.5, 2, 1] -> [3, 0]
    a_l1 = a_g1                                                                 # identity
    a_l2 = np.array([max(0 + 0.5, 0), max(3, 0)])                               # [A_G^2[1] + .5, A_G^2[0]] = [0.5, 3]
    z_l1 = a_l1                                                                 # [1, 2.5]
    z_l2 = np.array([0.5, 3.0, 0.5 + 3.0 - 1.0])                                # [0.5, 3, 2.5]
    z_g = np.array([0.0, 3.0, 1.5])
    p_final = 0.7 * sigmoid(z_l2) + 0.3 * sigmoid(z_g)
    with torch.no_grad():
        out = head(torch.tensor(features[None], dtype=torch.float32))
    np.testing.assert_allclose(out.x[0].numpy(), x)
    np.testing.assert_allclose(out.global_activations[0][0].numpy(), a_g1)
    np.testing.assert_allclose(out.global_activations[1][0].numpy(), a_g2)
    np.testing.assert_allclose(out.local_activations[1][0].numpy(), a_l2)
    np.testing.assert_allclose(out.local_logits[0][0].numpy(), z_l1)
    np.testing.assert_allclose(out.local_logits[1][0].numpy(), z_l2)
    np.testing.assert_allclose(out.global_logits[0].numpy(), z_g)
    np.testing.assert_allclose(out.final[0].numpy(), p_final, rtol=1e-6)


def test_activation_layer_is_bn_then_residual_then_dropout():
    """§4.1: dropout(BN(φ(Wz + b)) + skip), worked by hand with fixed BN statistics."""
    layer = ActivationLayer(2, 2, dropout=0.7).eval()
    with torch.no_grad():
        layer.linear.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, -1.0]]))
        layer.linear.bias.zero_()
        layer.norm.running_mean.copy_(torch.tensor([1.0, 0.0]))
        layer.norm.running_var.copy_(torch.tensor([4.0, 1.0]))
        layer.norm.weight.fill_(1.0)
        layer.norm.bias.zero_()
    z, skip = torch.tensor([[3.0, 5.0]]), torch.tensor([[10.0, 20.0]])
    eps = layer.norm.eps
    expected = [(3 - 1) / math.sqrt(4 + eps) + 10, (0 - 0) / math.sqrt(1 + eps) + 20]   # relu(-5) = 0
    np.testing.assert_allclose(layer(z, skip)[0].detach().numpy(), expected, rtol=1e-6)
    layer.train()
    torch.manual_seed(0)
    dropped = layer(torch.randn(64, 2), torch.zeros(64, 2))
    kept = dropped[dropped != 0]
    assert 0.1 < (dropped == 0).float().mean() and kept.numel() > 0  # dropout is active in training


def test_beta_fusion_on_hand_computed_values():
    model = small_model(dropout=0.0).eval()
    head = model.head
    with torch.no_grad():
        for layer in (head.local_out[-1], head.global_out):
            layer.weight.zero_()
        head.local_out[-1].bias.fill_(0.0)              # P_L^|H| = σ(0) = 0.5
        head.global_out.bias.fill_(math.log(3.0))       # P_G = σ(log 3) = 0.75
    scores = model.scores_from_logits(model(torch.randn(2, 3, 32, 32)))
    np.testing.assert_allclose(scores.detach().numpy(), np.full((2, 6), 0.7 * 0.5 + 0.3 * 0.75), rtol=1e-6)
    assert model.head.beta == 0.7  # §4.1


# ----------------------------------------------------------------------------- losses
def test_uncertainty_weighted_loss_on_hand_computed_values():
    loss = UncertaintyWeightedLoss(2)
    with torch.no_grad():
        loss.log_var.copy_(torch.tensor([math.log(4.0), math.log(0.25)]))   # σ1 = 2, σ2 = 0.5
    total = loss([torch.tensor(2.0), torch.tensor(3.0)])
    # 1/σ1² L_L + 1/σ2² L_G + log σ1 + log σ2 = 2/4 + 3/0.25 + log 2 + log 0.5
    assert total.item() == pytest.approx(0.5 + 12.0 + 0.0, abs=1e-6)
    np.testing.assert_allclose(loss.sigma.numpy(), [2.0, 0.5], rtol=1e-6)
    assert UncertaintyWeightedLoss(2)([torch.tensor(2.0), torch.tensor(3.0)]).item() == pytest.approx(5.0)  # σ = 1: the sum


def test_sigma_parameters_receive_gradients():
    model = small_model(loss_weighting="uncertainty", dropout=0.0)
    model.train()
    batch = {"image": torch.randn(4, 3, 32, 32), "target": torch.tensor([0, 2, 4, 5]), "index": torch.arange(4)}
    logits = model.forward_batch(batch, model.label_space)
    local, global_ = (v.detach() for v in model.hmcnf_losses(model._last, batch))
    model.compute_loss(logits, batch).backward()
    grad = model.uncertainty.log_var.grad
    # d/ds (e^{-s} L + s/2) at s = 0 is 1/2 - L
    np.testing.assert_allclose(grad.numpy(), [0.5 - local.item(), 0.5 - global_.item()], rtol=1e-5)
    params = {id(p) for g in model.parameter_groups() for p in g["params"]}
    assert id(model.uncertainty.log_var) in params                        # trained by the optimiser
    assert not any(id(p) in params for p in model.encoder.parameters())  # frozen encoder


def test_local_plus_global_loss_is_the_hand_computed_bce():
    model = small_model(dropout=0.0).eval()
    batch = {"image": torch.randn(3, 3, 32, 32), "target": torch.tensor([1, 3, 5]), "index": torch.arange(3)}
    logits = model.forward_batch(batch, model.label_space)
    out = model._last
    z_par, z_cat, z_g = (t.detach().numpy() for t in (out.local_logits[0], out.local_logits[1], out.global_logits))
    y_cat = np.eye(6)[[1, 3, 5]]
    y_par = np.eye(3)[[0, 1, 2]]  # parents a, b, c of c1, c3, c5
    expected = bce(sigmoid(z_par), y_par) + bce(sigmoid(z_cat), y_cat) + bce(sigmoid(z_g), y_cat)
    assert model.compute_loss(logits, batch).item() == pytest.approx(expected, rel=1e-5)


def test_multilabel_parent_targets_and_masks():
    space = LabelSpace(["a1", "a2", "b1"], parents=["A", "A", "B"])
    model = HierarchicalHMCNF(backbone="resnet10t", pretrained=False, label_space=space, embed_dim=8, hidden_dim=8,
                              local_dim=8)
    target = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, True], [True, False, True], [True, True, False]])
    (y_par, y_cat), (m_par, m_cat) = model.level_targets({"target": target, "mask": mask})
    assert y_par.tolist() == [[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]]
    # A is unknown for row 2 (a2 unknown, no known positive); B unknown for row 3
    assert m_par.tolist() == [[True, True], [False, True], [True, False]]
    assert torch.equal(m_cat, mask) and torch.equal(y_cat, target)


def test_flat_baseline_is_a_linear_head_with_cross_entropy():
    model = small_model(head="linear").eval()
    assert isinstance(model.classifier, nn.Linear) and model.classifier.in_features == model.num_features
    batch = {"image": torch.randn(2, 3, 32, 32), "target": torch.tensor([0, 5]), "index": torch.arange(2)}
    logits = model.forward_batch(batch, model.label_space)
    expected = torch.nn.functional.cross_entropy(logits, batch["target"])
    assert model.compute_loss(logits, batch).item() == pytest.approx(expected.item())
    torch.testing.assert_close(model.scores_from_logits(logits), torch.softmax(logits, -1))


def test_encoder_is_frozen_in_eval_mode_and_seeded():
    a, b = small_model(), small_model()
    a.train()
    assert not a.encoder.training and all(not p.requires_grad for p in a.encoder.parameters())
    for (_, pa), (_, pb) in zip(a.encoder.state_dict().items(), b.encoder.state_dict().items()):
        assert torch.equal(pa, pb)  # pretrained=False: the same random encoder in every run
    c = small_model(encoder_seed=1)
    assert not torch.equal(next(a.encoder.parameters()), next(c.encoder.parameters()))


# ----------------------------------------------------------------------------- hierarchies
@pytest.mark.parametrize("name", ["deepfashion_types", "deepfashion_5", "deepfashion_10"])
def test_hierarchy_files_cover_all_50_categories_exactly_once(name):
    import yaml

    groups = yaml.safe_load((HIERARCHIES / f"{name}.yaml").read_text(encoding="utf-8"))["groups"]
    members = [c for cats in groups.values() for c in cats]
    assert sorted(members) == sorted(DEEPFASHION_CATEGORIES) and len(members) == 50
    expected = {"deepfashion_types": 3, "deepfashion_5": 5, "deepfashion_10": 10}[name]
    assert len(groups) == expected
    parents = load_hierarchy(HIERARCHIES / f"{name}.yaml", DEEPFASHION_CATEGORIES)
    assert len(parents) == 50 and len(set(parents)) == expected


def test_types_file_matches_deepfashion_types_and_ten_refines_five():
    types = load_hierarchy(HIERARCHIES / "deepfashion_types.yaml", DEEPFASHION_CATEGORIES)
    assert [{"upper body": "upper", "lower body": "lower", "full body": "full"}[t] for t in types] == TYPES
    five = load_hierarchy(HIERARCHIES / "deepfashion_5.yaml", DEEPFASHION_CATEGORIES)
    ten = load_hierarchy(HIERARCHIES / "deepfashion_10.yaml", DEEPFASHION_CATEGORIES)
    inside = {}
    for f, t in zip(five, ten):
        inside.setdefault(t, set()).add(f)
    assert all(len(v) == 1 for v in inside.values()), inside  # each 10-group lies in one 5-group


def test_model_takes_the_hierarchy_from_a_file_or_the_label_space(tmp_path):
    space = LabelSpace(DEEPFASHION_CATEGORIES, parents=TYPES, single_label=True)
    common = dict(backbone="resnet10t", pretrained=False, label_space=space, embed_dim=8, hidden_dim=8, local_dim=8)
    by_types = HierarchicalHMCNF(**common)
    assert by_types.head.level_sizes == [3, 50] and by_types.level_names[0] == ["upper", "lower", "full"]
    by_ten = HierarchicalHMCNF(hierarchy=str(HIERARCHIES / "deepfashion_10.yaml"), **common)
    assert by_ten.head.level_sizes == [10, 50]
    assert by_ten.level_names[0][by_ten.parent_of_label[DEEPFASHION_CATEGORIES.index("Jeans")]] == "Trousers"
    with pytest.raises(InputError, match="needs a hierarchy"):
        HierarchicalHMCNF(**{**common, "label_space": LabelSpace(DEEPFASHION_CATEGORIES, single_label=True)})


def test_bad_hierarchy_files_name_the_line(tmp_path):
    names = ["a", "b", "c"]
    cases = {
        "groups:\n  X: [a, b]\n  Y: [c, a]\n": (3, "'a' is in 'X' and again in 'Y'"),
        "groups:\n  X: [a, b]\n  Y:\n    - c\n    - zz\n": (5, "unknown label 'zz'"),
        "groups:\n  X: [a, b]\n": (2, "1 labels have no parent: c"),
        "groups: [a, b]\n": (1, "'groups' must map"),
        "groups:\n  X: [a, b\n": (None, "bad YAML"),
    }
    for i, (text, (line, message)) in enumerate(cases.items()):
        path = tmp_path / f"h{i}.yaml"
        path.write_text(text)
        with pytest.raises(InputError, match=message) as info:
            load_hierarchy(path, names)
        if line is not None:
            assert info.value.line == line, (text, info.value.line)


# ----------------------------------------------------------------------------- learning
@pytest.mark.slow
@pytest.mark.parametrize("weighting", ["sum", "uncertainty"])
def test_hmcnf_head_learns_separable_features(weighting):
    """On cached-style features (a noisy prototype per class, 12 classes in 3 parents), the
    paper's head (dropout 0.7, BN, residuals, β = 0.7; 128 wide) must reach a held-out top-1 far above
    chance (1/12) in a few hundred Adam steps."""
    torch.manual_seed(0)
    names = [f"c{i}" for i in range(12)]
    space = LabelSpace(names, parents=[f"p{i // 4}" for i in range(12)], single_label=True)
    model = HierarchicalHMCNF(backbone="resnet10t", pretrained=False, label_space=space, loss_weighting=weighting,
                              embed_dim=128, hidden_dim=128, local_dim=128)
    prototypes = torch.randn(12, model.num_features)

    def sample(n):
        y = torch.randint(0, 12, (n,))
        return prototypes[y] + 1.5 * torch.randn(n, model.num_features), y

    optimiser = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=5e-3)
    model.train()
    for _ in range(100):
        features, y = sample(32)
        batch = {"features": features, "target": y, "index": torch.arange(32)}
        loss = model.compute_loss(model.forward_batch(batch, space), batch)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    features, y = sample(600)
    with torch.no_grad():
        scores = model.scores_from_logits(model.forward_batch({"features": features}, space))
    accuracy = (scores.argmax(1) == y).float().mean().item()
    assert accuracy > 0.8, accuracy
    if weighting == "uncertainty":
        assert not torch.allclose(model.uncertainty.log_var.detach(), torch.zeros(2))  # σ moved
