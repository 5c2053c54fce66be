"""Wide, Deep and Recurrent: the co-occurrence factorisation, the per-class threshold
search, eq. (2) weighted sampling, the Wide extras and the model.

References are independent of the code under test: hand-made matrices and hand-worked
numbers, sklearn's micro-F1, skimage's HOG on a hand-resized image, empirical draws of
torch's ``WeightedRandomSampler`` (what the datamodule draws with).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import f1_score

from datamodules.extras_wide import ColorHistogram, HOGFeatures
from datamodules.index import LabelIndex
from datamodules.label_space import LabelSpace
from datamodules.sampling import LabelFrequencySampling, expected_label_shares, image_weights, label_weights
from fashionbench.errors import InputError
from fashionbench.layers.label_gru import LabelGRU, cooccurrence_matrix, factorize_cooccurrence
from fashionbench.thresholds import cyclic_thresholds, micro_f1


def index_of(rows: list[list[int]], n_labels: int) -> LabelIndex:
    r = [i for i, labels in enumerate(rows) for _ in labels]
    c = [label for labels in rows for label in labels]
    ids = [str(i) for i in range(len(rows))]
    return LabelIndex.from_pairs("t", "train", [f"l{k}" for k in range(n_labels)], ids, ids, np.array(r), np.array(c))


def round_up32(t):
    """float64 -> the smallest float32 >= it (how the evaluators compare thresholds)."""
    t = np.asarray(t, dtype=np.float64)
    r = t.astype(np.float32)
    r = np.where(r.astype(np.float64) < t, np.nextafter(r, np.float32(np.inf)), r)
    return r


# --------------------------------------------------------------------------- co-occurrence
def test_cooccurrence_counts_by_hand():
    # images: {0, 1}, {1}, {0, 1, 2}
    index = index_of([[0, 1], [1], [0, 1, 2]], 3)
    expected = np.array([[2, 2, 1], [2, 3, 1], [1, 1, 1]], dtype=float)
    np.testing.assert_array_equal(cooccurrence_matrix(index), expected)
    np.testing.assert_array_equal(cooccurrence_matrix(index.dense_targets()), expected)


def test_factorisation_reconstructs_a_low_rank_matrix():
    p = np.array([[1.0, 0.0], [2.0, 1.0], [0.0, 3.0], [1.0, 1.0], [4.0, 2.0]])
    m = p @ p.T  # a hand-made symmetric rank-2 matrix
    w, c, s = factorize_cooccurrence(m, 2, transform="none")
    assert w.shape == (5, 2) and s.shape == (2,)
    np.testing.assert_allclose(w @ c.T, m, atol=1e-9)
    np.testing.assert_allclose(w @ w.T, m, atol=1e-9)  # PSD: W = C
    # a rank-1 matrix needs one dimension; asking for three pads with zeros
    q = np.array([1.0, 2.0, 3.0])
    w1, c1, s1 = factorize_cooccurrence(np.outer(q, q), 3, transform="none")
    np.testing.assert_allclose(w1 @ c1.T, np.outer(q, q), atol=1e-9)
    np.testing.assert_allclose(s1, [14.0, 0.0, 0.0], atol=1e-9)  # |q|^2 = 14, by hand
    # a non-symmetric rank-2 matrix: W C^T reconstructs it
    a = np.array([[1.0, 2.0], [0.0, 1.0], [3.0, 1.0]]) @ np.array([[1.0, 0.0, 2.0], [0.0, 1.0, 1.0]])
    w2, c2, _ = factorize_cooccurrence(a, 2, transform="none")
    np.testing.assert_allclose(w2 @ c2.T, a, atol=1e-9)


def test_ppmi_transform_by_hand():
    # M = [[2, 1], [1, 0]]: total 4, row sums 3 and 1; PMI(0,0) = log(2*4/9) < 0 -> 0,
    # PMI(0,1) = log(1*4/3) > 0, PMI(1,1): count 0 -> 0
    m = np.array([[2.0, 1.0], [1.0, 0.0]])
    w, c, _ = factorize_cooccurrence(m, 2, transform="ppmi")
    v = math.log(4 / 3)
    np.testing.assert_allclose(w @ c.T, [[0.0, v], [v, 0.0]], atol=1e-9)


# --------------------------------------------------------------------------- thresholds
def test_threshold_hand_case():
    # class A: 0.9 (pos), 0.4 (pos), 0.3 (neg); class B: 0.6 (neg), 0.2 (neg), 0.1 (pos)
    scores = np.array([[0.9, 0.6], [0.4, 0.2], [0.3, 0.1]])
    targets = np.array([[1, 0], [1, 0], [0, 1]])
    # at 0.5: A predicts 0.9 (TP), B predicts 0.6 (FP): micro-F1 = 2*1 / (2 predicted + 3 positives) = 0.4
    assert micro_f1(scores, targets) == pytest.approx(0.4)
    result = cyclic_thresholds(scores, targets)
    # best by hand: A predicts 0.9 and 0.4 (cut midway to 0.3 -> 0.35), B predicts nothing: 2*2 / (2 + 3) = 0.8
    assert result.f1_micro == pytest.approx(0.8) and result.f1_micro_init == pytest.approx(0.4)
    assert result.thresholds[0] == pytest.approx(0.35) and result.thresholds[1] > 0.6
    assert f1_score(targets, scores >= round_up32(result.thresholds), average="micro") == pytest.approx(0.8)


def test_threshold_search_never_below_half_everywhere():
    rng = np.random.default_rng(0)
    for trial in range(40):
        n, c = int(rng.integers(5, 200)), int(rng.integers(1, 12))
        targets = rng.random((n, c)) < rng.uniform(0.0, 0.5, c)
        signal = rng.uniform(-1, 3) * (2 * targets - 1)
        scores = 1 / (1 + np.exp(-(rng.normal(size=(n, c)) + signal - rng.uniform(-1, 2))))
        if trial % 5 == 0:
            scores = np.round(scores, 1)  # many ties
        mask = rng.random((n, c)) > 0.1 if trial % 3 == 0 else None
        result = cyclic_thresholds(scores, targets, mask)
        keep = np.ones_like(targets) if mask is None else mask
        y = targets[keep.astype(bool)] if mask is not None else targets.ravel()
        at_half = f1_score(y, (scores >= 0.5)[keep.astype(bool)] if mask is not None else (scores >= 0.5).ravel(), zero_division=0)
        pred = scores.astype(np.float32) >= round_up32(result.thresholds)[None, :]
        tuned = f1_score(y, pred[keep.astype(bool)] if mask is not None else pred.ravel(), zero_division=0)
        assert result.f1_micro_init == pytest.approx(at_half, abs=1e-12)
        assert tuned == pytest.approx(result.f1_micro, abs=1e-12)  # the reported F1 is what the thresholds give
        assert tuned >= at_half - 1e-12


def test_thresholds_match_the_suites_evaluator():
    from fashionbench.metrics import MultilabelEvaluator

    rng = np.random.default_rng(1)
    targets = rng.random((300, 8)) < 0.2
    scores = np.clip(rng.normal(0.3, 0.2, (300, 8)) + 0.3 * targets, 0, 1).astype(np.float32)
    result = cyclic_thresholds(scores, targets)
    evaluator = MultilabelEvaluator(8, thresholds=torch.from_numpy(result.thresholds))
    evaluator.update(torch.from_numpy(scores), torch.from_numpy(targets.astype(np.float32)))
    assert evaluator.compute()["F1-micro"] == pytest.approx(result.f1_micro, abs=1e-12)


# --------------------------------------------------------------------------- weighted sampling
def test_label_weights_solve_eq2_by_hand():
    f = np.array([8.0, 2.0, 1.0])
    w = label_weights(f, alpha=0.5)
    # by hand: w = c f^(alpha - 1), c = sum f / sum f^alpha = 11 / (2 sqrt 2 + sqrt 2 + 1)
    c = 11 / (3 * math.sqrt(2) + 1)
    np.testing.assert_allclose(w, [c / math.sqrt(8), c / math.sqrt(2), c], rtol=1e-12)
    # both lines of eq. (2)
    assert (w[0] * 8) / (w[1] * 2) == pytest.approx((8 / 2) ** 0.5)
    assert (w[1] * 2) / (w[2] * 1) == pytest.approx((2 / 1) ** 0.5)
    assert (w * f).sum() == pytest.approx(f.sum())
    # counts or rates give the same weights; alpha = 1 changes nothing; an absent label gets 0
    np.testing.assert_allclose(label_weights(f / 100, 0.5), w)
    np.testing.assert_allclose(label_weights(f, 1.0), [1, 1, 1])
    np.testing.assert_allclose(label_weights(np.array([4.0, 0.0, 1.0]), 0.75)[1], 0.0)


def test_weighted_draws_give_the_eq2_frequencies():
    # single-label images: label counts 600, 300, 80, 20
    counts = [600, 300, 80, 20]
    index = index_of([[k] for k, n in enumerate(counts) for _ in range(n)], 4)
    weights = LabelFrequencySampling(alpha=0.75)(index)
    f = np.array(counts, dtype=float)
    predicted = f ** 0.75 / (f ** 0.75).sum()  # eq. (2): weighted frequency proportional to f^alpha
    np.testing.assert_allclose(expected_label_shares(index, weights), predicted, rtol=1e-12)
    draws = list(torch.utils.data.WeightedRandomSampler(torch.from_numpy(weights), 200_000, replacement=True,
                                                        generator=torch.Generator().manual_seed(0)))
    labels = np.array([k for k, n in enumerate(counts) for _ in range(n)])[draws]
    empirical = np.bincount(labels, minlength=4) / len(draws)
    np.testing.assert_allclose(empirical, predicted, atol=0.005)  # binomial sd <= 0.0011


def test_image_weights_mean_max_and_empty_by_hand():
    # label counts: l0 = 3, l1 = 1 -> alpha 0.5: c = 4 / (sqrt 3 + 1), w0 = c / sqrt 3, w1 = c
    index = index_of([[0], [0, 1], [0], []], 2)
    c = 4 / (math.sqrt(3) + 1)
    w0, w1 = c / math.sqrt(3), c
    np.testing.assert_allclose(image_weights(index, label_weights(index.positive_counts(), 0.5), "mean"),
                               [w0, (w0 + w1) / 2, w0, 1.0])
    np.testing.assert_allclose(image_weights(index, label_weights(index.positive_counts(), 0.5), "max"),
                               [w0, w1, w0, 1.0])


def test_datamodule_draws_with_the_sampling_weights(tmp_path):
    from datamodules.imaterialist import IMaterialistDataModule
    from datamodules.synth import write_synthetic

    root = write_synthetic("imaterialist", tmp_path / "imat", images=40, seed=0)
    dm = IMaterialistDataModule(root=str(root), holdout_fraction=0.2, num_workers=0, batch_size=4,
                                image_size=32, train_sampling=LabelFrequencySampling(alpha=0.75),
                                cache_dir=str(tmp_path / "cache"))
    loader = dm.train_dataloader()
    assert isinstance(loader.sampler, torch.utils.data.WeightedRandomSampler)
    expected = LabelFrequencySampling(alpha=0.75)(dm.train_index)
    np.testing.assert_allclose(loader.sampler.weights.numpy(), expected)
    meta = dm.train_index.meta  # images of dead URLs are left out and counted
    assert meta["listed_images"] - meta["missing_images"] == len(dm.train_index)


# --------------------------------------------------------------------------- wide extras
MODES = [("RGB", (300, 200)), ("L", (50, 80)), ("RGBA", (64, 64)), ("CMYK", (33, 90)), ("P", (120, 40)),
         ("I;16", (70, 70)), ("1", (16, 16)), ("LA", (20, 30)), ("F", (40, 40)), ("I", (40, 40)),
         ("RGB", (1, 1)), ("L", (2, 700)), ("RGB", (4000, 3000))]


@pytest.mark.parametrize("mode, size", MODES)
def test_wide_extras_have_fixed_shapes(mode, size):
    image = Image.new(mode, size)
    hog, hist = HOGFeatures(), ColorHistogram()
    a, b = hog(image, 0, None), hist(image, 0, None)
    assert a.shape == (hog.dim,) == (1764,) and a.dtype == np.float32 and np.all(np.isfinite(a))
    assert b.shape == (hist.dim,) == (512,) and b.sum() == pytest.approx(1.0)


def test_hog_is_skimage_hog_of_the_resized_grey_image():
    from skimage.feature import hog

    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    grey = np.asarray(image.convert("L"), dtype=np.float64) / 255.0
    expected = hog(grey, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2), block_norm="L2-Hys")
    np.testing.assert_allclose(HOGFeatures()(image), expected, rtol=1e-6, atol=1e-7)


def test_colour_histogram_by_hand():
    pixels = np.zeros((64, 64, 3), dtype=np.uint8)
    pixels[:, :32] = (255, 0, 0)  # left half red: levels (7, 0, 0) -> bin 7*64 = 448
    pixels[:, 32:] = (0, 0, 255)  # right half blue: levels (0, 0, 7) -> bin 7
    hist = ColorHistogram(bins=8)(Image.fromarray(pixels))
    assert hist[448] == pytest.approx(0.5) and hist[7] == pytest.approx(0.5) and hist.sum() == pytest.approx(1.0)
    # a transparent RGBA image is composited over white: all in the (7, 7, 7) bin
    assert ColorHistogram(bins=8)(Image.new("RGBA", (10, 10), (0, 0, 0, 0)))[511] == pytest.approx(1.0)


# --------------------------------------------------------------------------- model
def small_model(mode="tuned", n_labels=6, **kwargs):
    from fashionbench.models.wdr import WideDeepRecurrent

    space = LabelSpace([f"l{i}" for i in range(n_labels)])
    return WideDeepRecurrent(backbone="resnet10t", pretrained=False, deep_mode=mode, label_space=space,
                             embed_dim=4, hidden_dim=8, joint_dim=8, **kwargs)


def test_label_gru_logits_come_back_in_label_order():
    gru = LabelGRU(5, feature_dim=3, embed_dim=4, hidden_dim=6, joint_dim=6)
    gru.set_order(np.array([1.0, 9.0, 3.0, 7.0, 3.0]))
    assert gru.order.tolist() == [1, 3, 2, 4, 0]  # most frequent first, ties by index
    z = torch.randn(2, 3)
    logits = gru(z)
    for label in range(5):  # logit l carries bias l: the un-permutation is right
        grad, = torch.autograd.grad(logits[:, label].sum(), gru.bias, retain_graph=True)
        assert grad.tolist() == [2.0 if k == label else 0.0 for k in range(5)]
    assert not torch.allclose(gru(torch.randn(2, 3))[0], logits[0])  # conditioned on the image


def test_label_prior_from_the_train_cooccurrences():
    model = small_model(n_labels=3)
    index = index_of([[0, 1], [1], [0, 1, 2], [1]], 3)  # counts 2, 4, 1
    model.init_label_prior(index)
    assert model.label_gru.order.tolist() == [1, 0, 2]
    w, _, _ = factorize_cooccurrence(cooccurrence_matrix(index), 4, "ppmi")
    norms = np.linalg.norm(w, axis=1)
    np.testing.assert_allclose(model.label_gru.embedding.detach().numpy(), w / norms[norms > 0].mean(), rtol=1e-5, atol=1e-6)
    assert bool(model.label_prior_ready)


@pytest.mark.parametrize("mode", ["tuned", "fixed_half", "fixed_all"])
def test_deep_modes_freeze_what_they_say(mode):
    model = small_model(mode, wide={"hog": 1764, "color_hist": 512})
    model.train()
    batch = {"image": torch.randn(3, 3, 32, 32), "hog": torch.rand(3, 1764), "color_hist": torch.rand(3, 512)}
    logits = model.forward_batch(batch, model.label_space)
    assert logits.shape == (3, 6)
    logits.sum().backward()
    enc = model.encoder
    trainable = [n for n, p in enc.named_parameters() if p.requires_grad]
    if mode == "tuned":
        assert len(trainable) == len(list(enc.parameters()))
    elif mode == "fixed_all":
        assert trainable == [] and not any(m.training for m in enc.modules())
    else:  # resnet10t: stem + layer1..4; the stem and layer1, layer2 frozen
        frozen = {n.split(".")[0] for n, p in enc.named_parameters() if not p.requires_grad}
        assert frozen == {"conv1", "bn1", "layer1", "layer2"}
        assert {n.split(".")[0] for n in trainable} == {"layer3", "layer4"}
        assert not enc.layer1[0].bn1.training and enc.layer4[0].bn1.training
    assert model.head.weight.grad is not None and model.label_gru.bias.grad is not None


def test_cached_features_replace_the_encoder_and_wide_is_checked():
    model = small_model("fixed_all", wide={"hog": 1764})
    model.eval()
    image = torch.randn(2, 3, 32, 32)
    hog = torch.rand(2, 1764)
    direct = model.forward_batch({"image": image, "hog": hog}, model.label_space)
    cached = model.forward_batch({"features": model.encoder(image), "hog": hog}, model.label_space)
    torch.testing.assert_close(direct, cached)
    with pytest.raises(InputError, match="has no 'hog'"):
        model.forward_batch({"image": image}, model.label_space)
    with pytest.raises(InputError, match="has 100 values"):
        model.forward_batch({"image": image, "hog": torch.rand(2, 100)}, model.label_space)


@pytest.mark.slow
def test_fit_chooses_thresholds_on_validation_and_tests_with_them(tmp_path):
    import json

    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import ModelCheckpoint

    from datamodules.extras_wide import ColorHistogram, HOGFeatures
    from datamodules.imaterialist import IMaterialistDataModule
    from datamodules.synth import write_synthetic
    from fashionbench.models.wdr import WideDeepRecurrent
    from fashionbench.thresholds import PerClassThresholds

    root = write_synthetic("imaterialist", tmp_path / "imat", images=60, seed=0)
    dm = IMaterialistDataModule(
        root=str(root), holdout_fraction=0.25, num_workers=0, batch_size=8, image_size=32,
        cache_dir=str(tmp_path / "cache"), extras={"hog": HOGFeatures(size=32), "color_hist": ColorHistogram(bins=4)},
        train_sampling=LabelFrequencySampling(), test_sets={"validation": {"split": "validation"}, "holdout": {"split": "holdout"}})
    model = WideDeepRecurrent(backbone="resnet10t", pretrained=False, wide={"hog": 324, "color_hist": 64},
                              label_space=dm.label_space, embed_dim=4, hidden_dim=8, joint_dim=8, per_class_thresholds=True)
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val/F1-micro", mode="max")
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[checkpoint], default_root_dir=tmp_path)
    trainer.fit(model, datamodule=dm)
    chooser = next(cb for cb in trainer.callbacks if isinstance(cb, PerClassThresholds))
    thresholds = model.class_thresholds
    assert thresholds is not None and thresholds.shape == (228,)
    assert chooser.result.f1_micro >= chooser.result.f1_micro_init
    stored = json.loads(open(checkpoint.best_model_path.replace(".ckpt", ".thresholds.json")).read())
    np.testing.assert_array_equal(stored["thresholds"], thresholds.numpy())
    torch.testing.assert_close(torch.load(checkpoint.best_model_path, weights_only=False)["class_thresholds"], thresholds)
    model.class_thresholds = None  # the test must find them in the checkpoint
    trainer.test(model, datamodule=dm, ckpt_path="best")
    torch.testing.assert_close(model.class_thresholds, thresholds)
    # validation scored with the chosen thresholds gives the micro-F1 the search reported
    assert model.eval_results["validation"]["F1-micro"] == pytest.approx(chooser.result.f1_micro, abs=1e-9)
