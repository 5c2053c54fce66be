"""fashionbench.figures: the PR-curve points are sklearn's ``precision_recall_curve`` and
their trapezoidal area is the suite's PR-AUC (metrics.md); the per-class PR-AUC list of the
multi-label metrics is sklearn's ``auc(recall, precision)``; the figure's lines and legend
carry those points and values; the PNG is written from arrays, from a score file and by
the test-time callback."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import auc, precision_recall_curve

from fashionbench import figures
from fashionbench.metrics import functional as F

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _case(n=60, c=4, seed=0, ties=True):
    rng = np.random.default_rng(seed)
    scores = rng.random((n, c)).astype(np.float32)
    if ties:
        scores = np.round(scores * 8) / 8  # many tied scores
    targets = rng.random((n, c)) < 0.35
    targets[0, :] = True  # every class has a positive
    mask = rng.random((n, c)) > 0.15
    mask[0, :] = True
    return scores, targets, mask


@pytest.mark.parametrize("ties", [True, False])
def test_curve_points_are_sklearns_and_integrate_to_the_suites_pr_auc(ties):
    scores, targets, mask = _case(ties=ties)
    ours = F.pr_auc(torch.from_numpy(scores), torch.from_numpy(targets), torch.from_numpy(mask))
    for j in range(scores.shape[1]):
        m = mask[:, j]
        recall, precision = figures.pr_curve_points(scores[:, j], targets[:, j], m)
        sk_precision, sk_recall, _ = precision_recall_curve(targets[m, j], scores[m, j])
        np.testing.assert_allclose(recall, sk_recall, rtol=0, atol=1e-12)
        np.testing.assert_allclose(precision, sk_precision, rtol=0, atol=1e-12)
        area = auc(recall, precision)  # trapezoids through exactly these points
        assert area == pytest.approx(auc(sk_recall, sk_precision), abs=1e-12)
        assert area == pytest.approx(float(ours[j]), abs=1e-9)


def test_curve_points_by_hand():
    # scores 0.9 (pos), 0.8 (neg), 0.8 (pos), 0.1 (neg): thresholds 0.9, 0.8, 0.1
    # -> (R, P) = (1/2, 1), (1, 2/3), (1, 1/2), then sklearn's end point (0, 1).
    recall, precision = figures.pr_curve_points([0.9, 0.8, 0.8, 0.1], [1, 0, 1, 0])
    np.testing.assert_allclose(recall, [1.0, 1.0, 0.5, 0.0])
    np.testing.assert_allclose(precision, [0.5, 2 / 3, 1.0, 1.0])
    # area: (0.5 - 0) * (1 + 1)/2 + (1 - 0.5) * (1 + 2/3)/2 + 0 = 0.5 + 5/12
    assert auc(recall, precision) == pytest.approx(0.5 + 5 / 12)
    assert figures.pr_curve_points([0.3, 0.2], [0, 0])[0].size == 0


def test_per_class_pr_auc_in_the_metrics_matches_sklearn():
    scores, targets, mask = _case(seed=3)
    targets[:, 2] = False  # no positive: null
    result = F.multilabel_metrics(torch.from_numpy(scores), torch.from_numpy(targets), torch.from_numpy(mask))
    per_class = result["PR-AUC_per_class"]
    assert len(per_class) == scores.shape[1] and per_class[2] is None
    for j in (0, 1, 3):
        m = mask[:, j]
        precision, recall, _ = precision_recall_curve(targets[m, j], scores[m, j])
        assert per_class[j] == pytest.approx(auc(recall, precision), abs=1e-9)
    assert result["PR-AUC"] == pytest.approx(np.mean([per_class[j] for j in (0, 1, 3)]), abs=1e-12)


def test_figure_lines_and_legend():
    scores, targets, mask = _case(seed=1)
    targets[:, 3] = False
    fig = figures.draw_pr_curves(scores, targets, mask, ["Solid", "Floral", "Dot", "Paisley"], title="t")
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    areas = F.pr_auc(torch.from_numpy(scores), torch.from_numpy(targets), torch.from_numpy(mask)).tolist()
    assert texts[:3] == [f"{n} (PR-AUC {a:.3f})" for n, a in zip(["Solid", "Floral", "Dot"], areas)]
    assert texts[3] == "Paisley (no positive)" and math.isnan(areas[3])
    for j in range(3):
        recall, precision = figures.pr_curve_points(scores[:, j], targets[:, j], mask[:, j])
        np.testing.assert_allclose(ax.lines[j].get_xydata(), np.c_[recall, precision])
    assert ax.lines[3].get_xydata().size == 0


def test_png_from_arrays_and_from_a_score_file(tmp_path):
    scores, targets, mask = _case(seed=2)
    path = figures.pr_curves_figure(torch.from_numpy(scores), torch.from_numpy(targets), None, None, tmp_path / "a" / "f.png")
    assert path.read_bytes()[:8] == PNG_MAGIC
    npz = tmp_path / "pred.npz"
    np.savez(npz, scores=scores, targets=targets.astype(np.uint8), mask=mask, label_names=np.array(list("abcd")))
    out = figures.pr_curves_from_npz(npz, tmp_path / "g.png", title="from npz")
    assert out.read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(ValueError):
        figures.pr_curves_figure(scores, targets[:, :2], None, None, tmp_path / "bad.png")


def test_callback_writes_the_figure_and_the_scores_of_a_test_run(tmp_path):
    import lightning.pytorch as pl

    from fashionbench.models.base import MultiLabelModule

    class Linear(MultiLabelModule):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.fc = torch.nn.Linear(3, self.num_labels)

        def forward(self, images):
            return self.fc(images.mean(dim=(2, 3)))

    g = torch.Generator().manual_seed(0)
    images = torch.randn(10, 3, 4, 4, generator=g)
    targets = (torch.rand(10, 2, generator=g) > 0.5).float()
    targets[0] = 1
    items = [{"image": images[i], "target": targets[i], "mask": torch.ones(2, dtype=torch.bool), "index": torch.tensor(i)}
             for i in range(10)]
    loader = torch.utils.data.DataLoader(items, batch_size=4)
    model = Linear(num_labels=2, label_names=["x", "y"])
    callback = figures.PRCurveFigure(path=str(tmp_path / "fig.png"), scores_path=str(tmp_path / "s.npz"))
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[callback])
    trainer.test(model, dataloaders=loader, verbose=False)
    assert (tmp_path / "fig.png").read_bytes()[:8] == PNG_MAGIC
    saved = np.load(tmp_path / "s.npz")
    with torch.no_grad():
        expected = torch.sigmoid(model(images)).numpy()
    np.testing.assert_allclose(saved["scores"], expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(saved["targets"], targets.numpy())
    assert list(saved["label_names"]) == ["x", "y"]
    # the same predictions give the record's PR-AUC
    assert F.pr_auc(torch.from_numpy(saved["scores"]), torch.from_numpy(saved["targets"] != 0)).nanmean().item() == pytest.approx(
        model.test_results["PR-AUC"], abs=1e-6)
