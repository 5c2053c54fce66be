"""SDL (Ben-Cohen et al., ICCV 2021): the loss of §3.3 (eqs. 1-5) pinned on a case worked
by hand, the vectorised loss against an independent per-image loop of the paper's formula,
inference ``r = max(A t)`` by hand, and the model scoring label sets of different widths."""
from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
import torch

from fashionbench.losses import SDLLoss
from fashionbench.losses.sdl import sdl_loss_loop, sdl_scores


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


# --------------------------------------------------------------------- the hand example
# d_w = 2, three unit label vectors, two images, M = 2 rows each.
T1, T2, T3 = (1.0, 0.0), (0.0, 1.0), (0.6, 0.8)
A1 = [[1.0, 0.0], [0.0, 2.0]]
A2 = [[0.5, 0.5], [-1.0, 1.0]]
# image 1: positives {t1, t3}, negative {t2}; image 2: positive {t2}, negatives {t1, t3}
TARGET = [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]


def hand_inputs():
    vectors = torch.tensor([T1, T2, T3])
    matrices = torch.tensor([A1, A2], requires_grad=True)
    return matrices, vectors, torch.tensor(TARGET)


def test_scores_by_hand():
    matrices, vectors, _ = hand_inputs()
    # A1 t1 = (1, 0), A1 t2 = (0, 2), A1 t3 = (0.6, 1.6)  -> max: 1, 2, 1.6
    # A2 t1 = (0.5, -1), A2 t2 = (0.5, 1), A2 t3 = (0.7, 0.2) -> max: 0.5, 1, 0.7
    r = sdl_scores(matrices, vectors)
    assert torch.allclose(r, torch.tensor([[1.0, 2.0, 1.6], [0.5, 1.0, 0.7]]), atol=1e-6)
    # the paper's l2 baseline: ||A t||: 1, 2, sqrt(0.36 + 2.56); sqrt(1.25), sqrt(1.25), sqrt(0.53)
    r2 = sdl_scores(matrices, vectors, reduce="l2")
    expected = [[1.0, 2.0, math.sqrt(2.92)], [math.sqrt(1.25), math.sqrt(1.25), math.sqrt(0.53)]]
    assert torch.allclose(r2, torch.tensor(expected), atol=1e-6)


def test_loss_by_hand_eqs_1_to_5():
    matrices, vectors, target = hand_inputs()
    # eq. 1, image 1 (r = 1, 2, 1.6): u(t1, t2) = 2 - 1 = 1.0, u(t3, t2) = 2 - 1.6 = 0.4
    rank_sum_1 = softplus(1.0) + softplus(0.4)  # 1.3132617 + 0.9130153 = 2.2262769
    # eq. 3: positives t1 = (1, 0), t3 = (0.6, 0.8); unbiased variance per coordinate:
    # x: mean 0.8, var = 0.2^2 + 0.2^2 = 0.08; y: mean 0.4, var = 0.4^2 + 0.4^2 = 0.32
    omega_d_1 = 1.0 + 0.08 + 0.32  # 1.4
    # eq. 2: omega_n = |P||N| = 2 * 1
    rank_1 = omega_d_1 * rank_sum_1 / 2  # 1.5583939
    # eq. 4: columns of A1: (1, 0) var 0.5, (0, 2) var 2.0 -> 2.5
    reg_1 = 0.5 + 2.0
    # eq. 5 with lambda = 0.3 = lambda~ |N| -> lambda~ = 0.3 / 1
    loss_1 = 0.7 * rank_1 + 0.3 * reg_1  # 1.8408757
    # image 2 (r = 0.5, 1, 0.7): u(t2, t1) = 0.5 - 1 = -0.5, u(t2, t3) = 0.7 - 1 = -0.3
    rank_sum_2 = softplus(-0.5) + softplus(-0.3)  # 0.4740770 + 0.5543552 = 1.0284322
    omega_d_2 = 1.0  # one positive: no variance
    rank_2 = omega_d_2 * rank_sum_2 / 2  # omega_n = 1 * 2
    # columns of A2: (0.5, -1) var 2 * 0.75^2 = 1.125, (0.5, 1) var 2 * 0.25^2 = 0.125
    reg_2 = 1.125 + 0.125
    loss_2 = (1 - 0.15) * rank_2 + 0.15 * reg_2  # lambda~ = 0.3 / 2; 0.6245837
    expected = (loss_1 + loss_2) / 2  # 1.2327297
    assert expected == pytest.approx(1.2327297, abs=1e-7)

    loss = SDLLoss(reg_weight=0.3, use_sdw=True)(sdl_scores(matrices, vectors), target, None, matrices, vectors)
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert sdl_loss_loop(matrices, vectors, target, reg_weight=0.3).item() == pytest.approx(expected, abs=1e-6)

    # Fast0Tag (omega_d = 1, no regulariser): mean of the two normalised rank sums
    fast0tag = (rank_sum_1 / 2 + rank_sum_2 / 2) / 2  # 0.8136773
    got = SDLLoss(reg_weight=0.0, use_sdw=False)(sdl_scores(matrices, vectors), target)
    assert got.item() == pytest.approx(fast0tag, abs=1e-6)
    # SDW without the regulariser, and the regulariser without SDW
    got = SDLLoss(reg_weight=0.0, use_sdw=True)(sdl_scores(matrices, vectors), target, None, None, vectors)
    assert got.item() == pytest.approx((rank_1 + rank_2) / 2, abs=1e-6)
    got = SDLLoss(reg_weight=0.3, use_sdw=False)(sdl_scores(matrices, vectors), target, None, matrices)
    assert got.item() == pytest.approx((0.7 * rank_sum_1 / 2 + 0.3 * reg_1 + 0.85 * rank_sum_2 / 2 + 0.15 * reg_2) / 2, abs=1e-6)


def test_gradient_by_hand():
    """Fast0Tag variant on the scores: dL/dr_k = 1/B * 1/(|P||N|) * sum_j sigmoid(u_jk),
    dL/dr_j = -1/B * 1/(|P||N|) * sum_k sigmoid(u_jk)."""
    scores = torch.tensor([[1.0, 2.0, 1.6], [0.5, 1.0, 0.7]], requires_grad=True)
    SDLLoss(reg_weight=0.0, use_sdw=False)(scores, torch.tensor(TARGET)).backward()
    g1_neg = 0.5 * 0.5 * (sigmoid(1.0) + sigmoid(0.4))  # r(t2) of image 1
    g1_t1, g1_t3 = -0.25 * sigmoid(1.0), -0.25 * sigmoid(0.4)
    g2_pos = -0.25 * (sigmoid(-0.5) + sigmoid(-0.3))
    expected = [[g1_t1, g1_neg, g1_t3], [0.25 * sigmoid(-0.5), g2_pos, 0.25 * sigmoid(-0.3)]]
    assert torch.allclose(scores.grad, torch.tensor(expected), atol=1e-7)


# ------------------------------------------------- vectorised == a loop of the formula
def reference_loop(matrices, vectors, target, mask, reg_weight, use_sdw, unknown_as_negative, reduce):
    """The paper's formula image by image in float64 (written independently of the library)."""
    a = matrices.double()
    v = vectors.double()
    total, count = 0.0, 0
    for i in range(a.shape[0]):
        prod = a[i] @ v.t()  # [M, C]
        r = prod.max(dim=0).values if reduce == "max" else prod.norm(dim=0)
        known = torch.ones_like(target[i], dtype=torch.bool) if mask is None else mask[i].bool()
        pos = [c for c in range(r.shape[0]) if target[i, c] > 0.5 and known[c]]
        neg = [c for c in range(r.shape[0]) if target[i, c] < 0.5 and (known[c] or unknown_as_negative)]
        if not pos or not neg:
            continue  # nothing to rank: contributes nothing
        rank = sum(torch.log1p(torch.exp(r[k] - r[j])) for j in pos for k in neg) / (len(pos) * len(neg))
        if use_sdw and len(pos) > 1:
            p = v[pos]
            rank = rank * (1 + ((p - p.mean(0)) ** 2).sum() / (len(pos) - 1))
        lam = min(reg_weight / len(neg), 1.0)
        loss = (1 - lam) * rank
        if reg_weight > 0 and a.shape[1] > 1:
            loss = loss + lam * ((a[i] - a[i].mean(0)) ** 2).sum() / (a.shape[1] - 1)
        total, count = total + loss, count + 1
    return total / count if count else a.sum() * 0


CASES = [
    # (seed, B, C, M, d, positive rate, known rate, unknown_as_negative, reg, sdw, reduce, chunk)
    (0, 6, 11, 2, 5, 0.3, 1.0, False, 0.3, True, "max", 1 << 22),
    (1, 8, 23, 7, 9, 0.2, 0.7, False, 0.3, True, "max", 1 << 22),
    (2, 8, 23, 7, 9, 0.2, 0.7, True, 0.3, True, "max", 1 << 22),
    (3, 5, 17, 1, 4, 0.25, 0.8, False, 0.0, False, "max", 1 << 22),  # Fast0Tag
    (4, 7, 19, 7, 6, 0.3, 0.9, False, 0.0, False, "l2", 1 << 22),  # the paper's l2 baseline
    (5, 9, 31, 3, 8, 0.2, 0.6, False, 0.1, True, "max", 40),  # tiny chunks: many passes
    (6, 4, 13, 2, 3, 0.5, 1.0, False, 20.0, True, "max", 1 << 22),  # lambda~ clipped at 1
]


@pytest.mark.parametrize("case", CASES, ids=[f"case{c[0]}" for c in CASES])
def test_vectorised_equals_per_image_loop(case):
    seed, b, c, m, d, pos_rate, known_rate, uan, reg, sdw, reduce, chunk = case
    g = torch.Generator().manual_seed(seed)
    vectors = torch.nn.functional.normalize(torch.randn(c, d, generator=g), dim=1)
    matrices = torch.randn(b, m, d, generator=g).requires_grad_()
    target = (torch.rand(b, c, generator=g) < pos_rate).float()
    mask = torch.rand(b, c, generator=g) < known_rate
    target[0] = 0  # an image with no positive
    if b > 2:
        target[1] = 1  # an image with no negative
        mask[1] = True
    loss_fn = SDLLoss(reg_weight=reg, use_sdw=sdw, unknown_as_negative=uan, chunk_elements=chunk)
    loss = loss_fn(sdl_scores(matrices, vectors, reduce), target, mask, matrices, vectors)
    (grad,) = torch.autograd.grad(loss, matrices)
    ref_matrices = matrices.detach().double().requires_grad_()
    ref = reference_loop(ref_matrices, vectors, target, mask, reg, sdw, uan, reduce)
    (ref_grad,) = torch.autograd.grad(ref, ref_matrices)
    assert torch.isfinite(loss) and torch.isfinite(grad).all()
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5, abs=1e-6)
    assert torch.allclose(grad.double(), ref_grad, rtol=1e-4, atol=1e-6)
    # the library's own loop (the speed benchmark's baseline) is the same formula
    loop = sdl_loss_loop(matrices, vectors, target, mask, reg, sdw, uan, reduce)
    assert loop.item() == pytest.approx(ref.item(), rel=1e-5, abs=1e-6)


def test_image_without_positive_contributes_nothing():
    g = torch.Generator().manual_seed(7)
    vectors = torch.nn.functional.normalize(torch.randn(12, 4, generator=g), dim=1)
    matrices = torch.randn(3, 2, 4, generator=g, requires_grad=True)
    target = torch.zeros(3, 12)
    target[0, [1, 5]] = 1
    target[2, 3] = 1  # image 1 has no positive
    loss_fn = SDLLoss()
    full = loss_fn(sdl_scores(matrices, vectors), target, None, matrices, vectors)
    (grad,) = torch.autograd.grad(full, matrices)
    keep = [0, 2]
    sub = loss_fn(sdl_scores(matrices[keep], vectors), target[keep], None, matrices[keep], vectors)
    assert full.item() == pytest.approx(sub.item(), abs=1e-7)
    assert torch.all(grad[1] == 0) and torch.isfinite(grad).all()
    # a masked positive is no positive either
    mask = torch.ones(3, 12, dtype=torch.bool)
    mask[2, 3] = False
    only_first = loss_fn(sdl_scores(matrices, vectors), target, mask, matrices, vectors)
    first = loss_fn(sdl_scores(matrices[:1], vectors), target[:1], None, matrices[:1], vectors)
    assert only_first.item() == pytest.approx(first.item(), abs=1e-7)


def test_batch_without_positive_is_zero_not_nan():
    vectors = torch.nn.functional.normalize(torch.randn(9, 5), dim=1)
    matrices = torch.randn(4, 3, 5, requires_grad=True)
    loss = SDLLoss()(sdl_scores(matrices, vectors), torch.zeros(4, 9), None, matrices, vectors)
    loss.backward()
    assert loss.item() == 0.0
    assert matrices.grad is not None and torch.all(matrices.grad == 0)


def test_extreme_scores_stay_finite():
    # softplus(u) for u = +-2e4: 2e4 and 0 exactly; naive log(1 + exp(u)) overflows
    scores = torch.tensor([[1e4, -1e4, 0.0]], requires_grad=True)
    target = torch.tensor([[0.0, 1.0, 0.0]])
    loss = SDLLoss(reg_weight=0.0, use_sdw=False)(scores, target)
    loss.backward()
    # pairs (positive -1e4) vs negatives 1e4 and 0: (2e4 + 1e4 + log1p(e^-1e4)) / 2
    assert loss.item() == pytest.approx(1.5e4, rel=1e-6)
    assert torch.isfinite(scores.grad).all()
    assert scores.grad[0].tolist() == pytest.approx([0.5, -1.0, 0.5], abs=1e-6)


def test_half_precision_scores_are_scored_in_float32():
    scores = torch.tensor([[1.0, 2.0, 1.6], [0.5, 1.0, 0.7]], dtype=torch.float16)
    loss = SDLLoss(reg_weight=0.0, use_sdw=False)(scores, torch.tensor(TARGET))
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(0.8136773, abs=1e-3)


def test_bad_arguments():
    with pytest.raises(ValueError):
        SDLLoss(reg_weight=-1)
    with pytest.raises(ValueError, match="label vectors"):
        SDLLoss(use_sdw=True)(torch.zeros(2, 3), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="matrices"):
        SDLLoss(reg_weight=0.3, use_sdw=False)(torch.zeros(2, 3), torch.zeros(2, 3))


# ----------------------------------------------------------------------------- the model
def _core_v2():
    label_space = pytest.importorskip("datamodules.label_space")
    from fashionbench.models.base import MultiLabelModule

    if "label_space" not in inspect.signature(MultiLabelModule.__init__).parameters:
        pytest.skip("core v2 (label spaces in the base module) not there yet")
    return label_space.LabelSpace


def _model(label_space, **kwargs):
    from fashionbench.models import SDLZeroShot

    return SDLZeroShot(backbone="resnet10t", pretrained=False, label_space=label_space, **kwargs)


def test_model_scores_label_sets_of_any_width():
    LabelSpace = _core_v2()
    rng = np.random.default_rng(0)
    seen = LabelSpace([f"s{i}" for i in range(5)], vectors=rng.normal(size=(5, 8)).astype(np.float32))
    unseen = LabelSpace([f"u{i}" for i in range(3)], vectors=rng.normal(size=(3, 8)).astype(np.float32) * 4)
    model = _model(seen, num_rows=2).eval()
    assert model.scores_label_vectors and model.vector_dim == 8
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        a = model.matrices(images)
        assert a.shape == (2, 2, 8)
        for space in (seen, unseen):
            r = model.forward_batch({"image": images}, space)
            assert r.shape == (2, space.num_labels)
            # r_ic = max_m (A_i t_c) with t_c the l2-normalised vector (§4.1)
            t = torch.from_numpy(space.vectors)
            t = t / t.norm(dim=1, keepdim=True)
            by_hand = torch.stack([torch.stack([(a[i] @ t[c]).max() for c in range(len(t))]) for i in range(2)])
            assert torch.allclose(r, by_hand, atol=1e-5)
    # the label vectors are prepared once per label space
    assert model.label_vectors(unseen) is model.label_vectors(unseen)


def test_model_loss_trains_the_head():
    LabelSpace = _core_v2()
    rng = np.random.default_rng(1)
    seen = LabelSpace([f"s{i}" for i in range(6)], vectors=rng.normal(size=(6, 4)).astype(np.float32))
    model = _model(seen, num_rows=3).train()
    batch = {"image": torch.randn(3, 3, 32, 32), "target": torch.tensor([[1.0, 0, 0, 1, 0, 0], [0, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0]])}
    batch["mask"] = torch.ones(3, 6, dtype=torch.bool)
    loss = model.compute_loss(model.forward_batch(batch, seen), batch)
    loss.backward()
    assert torch.isfinite(loss)
    grad = model.head[1].weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_model_needs_label_vectors():
    LabelSpace = _core_v2()
    from fashionbench.errors import InputError

    with pytest.raises(InputError, match="embeddings"):
        _model(LabelSpace(["a", "b"]))
    model = _model(LabelSpace(["a", "b"], vectors=np.eye(2, 3, dtype=np.float32)), num_rows=1)
    with pytest.raises(InputError, match="3-d"):
        model.label_vectors(LabelSpace(["c"], vectors=np.ones((1, 5), dtype=np.float32)))


# ------------------------------------------------------------------ configs and tables
REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


def _config(name):
    import yaml

    return yaml.safe_load((REPO / "benchmarks" / "sdl" / name).read_text(encoding="utf-8"))


@pytest.mark.parametrize("name, rows, sdw, reg, reduce", [
    # the paper's Table 3 checkmarks (SDW / M=2 / Reg. 0.1 / M=7 / Reg. 0.3) and §4.1 Baseline
    ("nuswide_fast0tag.yaml", 1, False, 0.0, "max"),   # Impl.: Fast0Tag's loss
    ("nuswide_baseline_l2.yaml", 7, False, 0.0, "l2"),  # Base.
    ("nuswide_abl_a.yaml", 1, True, 0.0, "max"),
    ("nuswide_abl_b.yaml", 2, True, 0.0, "max"),
    ("nuswide_abl_c.yaml", 2, True, 0.1, "max"),
    ("nuswide_abl_d.yaml", 7, True, 0.1, "max"),
    ("nuswide_abl_f.yaml", 7, False, 0.3, "max"),
    ("nuswide_sdl.yaml", 7, True, 0.3, "max"),          # Ours
    ("openimages_sdl.yaml", 7, True, 0.3, "max"),       # §4.7: M = 7 on Open Images
    ("coco_sdl.yaml", 2, True, 0.3, "max"),             # §4.2: M = 2 on COCO
])
def test_configs_follow_table_3_and_section_4_1(name, rows, sdw, reg, reduce):
    config = _config(name)
    model = config["model"]["init_args"]
    loss = model["loss"]["init_args"]
    assert (model["num_rows"], loss["use_sdw"], loss["reg_weight"], model["row_reduce"]) == (rows, sdw, reg, reduce)
    dataset = name.split("_")[0]
    epochs, batch = {"nuswide": (7, 192), "openimages": (7, 96), "coco": (20, 32)}[dataset]  # §4.1
    assert config["trainer"]["max_epochs"] == epochs and config["data"]["init_args"]["batch_size"] == batch
    optim = model["optim"]
    assert (optim["name"], optim["lr"], optim["weight_decay"], optim["schedule"]) == ("adamw", 1e-4, 3e-4, "onecycle")
    assert model["head_dropout"] == 0.5 and model["evaluation"]["empty_class"] == "zero"
    assert config["data"]["init_args"]["test_sets"]["zsl"]["task"] == "zsl"
    assert config["data"]["init_args"]["test_sets"]["gzsl"]["task"] == "gzsl"


def test_table_quotes_the_paper_and_names_the_convention(tmp_path, monkeypatch):
    from fashionbench.reproduce import run_commands
    from fashionbench.tables import load_paper, render_target

    monkeypatch.chdir(REPO)
    spec = load_paper("sdl")
    for table in spec["tables"].values():
        for row in table.get("reported", []):
            assert "SDL paper" in row["source"] and "Table" in row["source"]
    path = render_target("sdl", "table1", runs_dir=tmp_path / "no-runs", out_dir=tmp_path)
    text = path.read_text(encoding="utf-8")
    assert "| 25.9 |" in text and "| 62.9 |" in text  # Table 1 Ours ZSL mAP: NUS-WIDE, Open Images
    assert "| 12.1 |" in text and "| 75.3 |" in text  # ... and GZSL
    assert "empty_class: zero" in text and "Tagging metrics" in text
    assert len(run_commands("sdl", "table1", {}, None, str(tmp_path))) <= 6  # a cheap smoke target
    assert len(run_commands("sdl", "table3", {}, None, str(tmp_path))) == 6
    sweeps = run_commands("sdl", "sweeps", {}, None, str(tmp_path))
    assert len(sweeps) == 17 and all("--record.row" in run.command for run in sweeps)
