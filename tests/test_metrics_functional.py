"""fashionbench.metrics.functional against sklearn, straightforward loop references written
here from specs/metrics.md, and hand-worked cases."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import auc, average_precision_score, precision_recall_curve

from fashionbench.metrics import functional as F


# --------------------------------------------------------------------------- data and references
def random_case(seed: int, n: int = 120, c: int = 9, *, ties: bool = False, masked: bool = False,
                dtype=np.float32, positive_rate: float = 0.25, empty_classes: tuple[int, ...] = ()):
    rng = np.random.default_rng(seed)
    scores = rng.random((n, c))
    if ties:
        scores = np.round(scores, 1)
    scores = scores.astype(dtype)
    targets = (rng.random((n, c)) < positive_rate).astype(np.int64)
    targets[:, list(empty_classes)] = 0
    mask = rng.random((n, c)) < 0.8 if masked else np.ones((n, c), dtype=bool)
    return scores, targets, mask


def sklearn_ap_and_auc(scores, targets, mask):
    """Per-class AP and PR-AUC by sklearn on the masked entries (NaN without a positive)."""
    aps, aucs = [], []
    for c in range(scores.shape[1]):
        y, s = targets[mask[:, c], c], scores[mask[:, c], c].astype(np.float64)
        if y.sum() == 0:
            aps.append(math.nan)
            aucs.append(math.nan)
            continue
        aps.append(average_precision_score(y, s))
        precision, recall, _ = precision_recall_curve(y, s)
        aucs.append(auc(recall, precision))
    return np.array(aps), np.array(aucs)


def ref_counts(scores, targets, mask, predicted):
    """Nc, Np, Ng by loops; ``predicted(i, c)`` says whether entry (i, c) is predicted positive."""
    n, c = scores.shape
    nc, np_, ng = np.zeros(c), np.zeros(c), np.zeros(c)
    for j in range(c):
        for i in range(n):
            if not mask[i, j]:
                continue
            pred = predicted(i, j)
            np_[j] += pred
            ng[j] += targets[i, j]
            nc[j] += pred and targets[i, j]
    return nc, np_, ng


def ref_metrics_from_counts(nc, np_, ng):
    """metrics.md "Threshold metrics", literally."""
    def f1(p, r):
        if math.isnan(p) or math.isnan(r):
            return math.nan
        return 0.0 if p + r == 0 else 2 * p * r / (p + r)

    classes = [j for j in range(len(ng)) if ng[j] > 0]
    cp = sum(nc[j] / max(np_[j], 1) for j in classes) / len(classes) if classes else math.nan
    cr = sum(nc[j] / ng[j] for j in classes) / len(classes) if classes else math.nan
    op = nc.sum() / max(np_.sum(), 1)
    orec = nc.sum() / ng.sum() if ng.sum() else math.nan
    return {"CP": cp, "CR": cr, "CF1": f1(cp, cr), "OP": op, "OR": orec, "OF1": f1(op, orec)}


def ref_topk(row, k):
    """Indices of the k highest scores of one image, ties towards the lower class index."""
    return sorted(range(len(row)), key=lambda j: (-float(row[j]), j))[:k]


def assert_close(actual, expected, tol=1e-12):
    actual = torch.as_tensor(actual, dtype=torch.float64).numpy()
    np.testing.assert_allclose(actual, np.asarray(expected, dtype=np.float64), rtol=0, atol=tol, equal_nan=True)


def tensors(*arrays):
    return [torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]


# --------------------------------------------------------------------------- ranking metrics vs sklearn
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_ap_and_pr_auc_match_sklearn(dtype, ties, masked):
    scores, targets, mask = random_case(1, ties=ties, masked=masked, dtype=dtype, empty_classes=(4,))
    expected_ap, expected_auc = sklearn_ap_and_auc(scores, targets, mask)
    s, t, m = tensors(scores, targets, mask)
    for chunk in (F.DEFAULT_CHUNK_ELEMENTS, 1, 250):  # one chunk, one class per chunk, 2 classes per chunk
        ap, area = F.average_precision_and_pr_auc(s, t, m if masked else None, chunk_elements=chunk)
        assert_close(ap, expected_ap)
        assert_close(area, expected_auc)
    assert math.isnan(ap[4]) and math.isnan(area[4])
    assert_close(F.average_precision(s, t, m if masked else None), expected_ap)
    assert_close(F.pr_auc(s, t, m if masked else None), expected_auc)


@pytest.mark.parametrize("seed", range(6))
def test_ap_many_small_random_cases(seed):
    rng = np.random.default_rng(100 + seed)
    n, c = int(rng.integers(1, 40)), int(rng.integers(1, 6))
    scores, targets, mask = random_case(seed, n, c, ties=bool(seed % 2), masked=True, positive_rate=0.4)
    expected_ap, expected_auc = sklearn_ap_and_auc(scores, targets, mask)
    ap, area = F.average_precision_and_pr_auc(*tensors(scores, targets, mask), chunk_elements=int(rng.integers(1, 60)))
    assert_close(ap, expected_ap)
    assert_close(area, expected_auc)


@pytest.mark.parametrize("numpy_sort", [True, False])
def test_sort_backends_and_threaded_sort(monkeypatch, numpy_sort):
    # torch.sort is the path on GPU; numpy's threaded sort runs on CPU for chunks >= 2**18 entries.
    monkeypatch.setattr(F, "NUMPY_SORT_ON_CPU", numpy_sort)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for dtype in (np.float32, np.float64):
            scores, targets, mask = random_case(9, n=3000, c=100, ties=True, masked=True, dtype=dtype)
            expected_ap, expected_auc = sklearn_ap_and_auc(scores, targets, mask)
            ap, area = F.average_precision_and_pr_auc(*tensors(scores, targets, mask))
            assert_close(ap, expected_ap)
            assert_close(area, expected_auc)
    finally:
        torch.set_num_threads(threads)


def test_half_precision_scores_rank_like_float32():
    scores, targets, mask = random_case(2, ties=True, masked=True)
    s, t, m = tensors(scores, targets, mask)
    expected = F.average_precision_and_pr_auc(s, t, m)
    for dtype in (torch.float16, torch.bfloat16):
        low = s.to(dtype)
        expected_ap, expected_auc = sklearn_ap_and_auc(low.float().numpy(), targets, mask)
        ap, area = F.average_precision_and_pr_auc(low, t, m)
        assert_close(ap, expected_ap)
        assert_close(area, expected_auc)
    assert_close(F.average_precision_and_pr_auc(s.double(), t, m)[0], expected[0])


def test_signed_zero_and_infinite_scores():
    # -0.0 and +0.0 are one tie group (as in sklearn); +-inf rank like any monotone stand-in.
    scores = np.array([[np.inf], [0.0], [-0.0], [-np.inf], [0.3], [-0.0]])
    targets = np.array([[1], [0], [1], [1], [0], [0]])
    finite = np.array([[2.0], [0.0], [0.0], [-2.0], [0.3], [0.0]])
    expected_ap, expected_auc = sklearn_ap_and_auc(finite, targets, np.ones_like(targets, dtype=bool))
    for dtype in (torch.float32, torch.float64):
        ap, area = F.average_precision_and_pr_auc(torch.tensor(scores, dtype=dtype), torch.tensor(targets))
        assert_close(ap, expected_ap)
        assert_close(area, expected_auc)


def test_mean_average_precision_conventions():
    scores, targets, mask = random_case(3, masked=True, empty_classes=(0, 5))
    expected_ap, _ = sklearn_ap_and_auc(scores, targets, mask)
    ap = F.average_precision(*tensors(scores, targets, mask))
    assert_close(F.mean_average_precision(ap, "exclude"), np.nanmean(expected_ap))
    assert_close(F.mean_average_precision(ap, "zero"), np.nan_to_num(expected_ap).sum() / scores.shape[1])
    with pytest.raises(ValueError):
        F.mean_average_precision(ap, "ignore")


# --------------------------------------------------------------------------- threshold metrics vs loop reference
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("per_class", [False, True])
def test_threshold_metrics_match_reference(masked, per_class):
    scores, targets, mask = random_case(4, n=80, c=7, ties=True, masked=masked, empty_classes=(2,))
    # ties=True puts many scores exactly on 0.5 and on the per-class thresholds: tests ">=".
    thresholds = np.round(np.linspace(0.2, 0.8, 7), 1) if per_class else 0.5
    thr = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (7,))
    nc, np_, ng = ref_counts(scores, targets, mask, lambda i, j: float(scores[i, j]) >= thr[j])
    s, t, m = tensors(scores, targets, mask)
    got_counts = F.threshold_counts(s, t, m if masked else None, torch.as_tensor(thresholds))
    assert_close(torch.stack(got_counts), np.stack([nc, np_, ng]), tol=0)
    got = F.threshold_metrics(s, t, m if masked else None, torch.as_tensor(thresholds), chunk_elements=50)
    expected = ref_metrics_from_counts(nc, np_, ng)
    for key, value in expected.items():
        assert_close(got[key], value)


def test_threshold_compares_in_exact_arithmetic():
    # float32(0.7) = 0.699999988... < 0.7, so it is NOT >= the threshold 0.7 (float64 comparison).
    scores = torch.tensor([[0.7], [0.8]], dtype=torch.float32)
    targets = torch.tensor([[1], [1]])
    nc, np_, ng = F.threshold_counts(scores, targets, None, 0.7)
    assert (nc.item(), np_.item(), ng.item()) == (1, 1, 2)


@pytest.mark.parametrize("k", [1, 3, 9, 12])
@pytest.mark.parametrize("masked", [False, True])
def test_topk_threshold_and_tagging_metrics_match_reference(k, masked):
    scores, targets, mask = random_case(5, n=60, c=9, ties=True, masked=masked, empty_classes=(7,))
    n, c = scores.shape
    tops = [set(ref_topk(scores[i], k)) for i in range(n)]
    nc, np_, ng = ref_counts(scores, targets, mask, lambda i, j: j in tops[i] and float(scores[i, j]) >= 0.5)
    expected = {f"{key}@{k}": value for key, value in ref_metrics_from_counts(nc, np_, ng).items()}
    hits = sum(1 for i in range(n) for j in tops[i] if mask[i, j] and targets[i, j])
    positives = sum(1 for i in range(n) for j in range(c) if mask[i, j] and targets[i, j])
    p, r = hits / (n * k), hits / positives
    expected.update({f"P@{k}": p, f"R@{k}": r, f"F1@{k}": 2 * p * r / (p + r)})

    s, t, m = tensors(scores, targets, mask)
    m = m if masked else None
    got = F.topk_threshold_metrics(s, t, m, k, chunk_elements=40)
    got.update(F.tagging_metrics(s, t, m, k))
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert_close(got[key], value)
    everything = F.multilabel_metrics(s, t, m, ks=(k,))
    for key, value in expected.items():
        assert everything[key] == pytest.approx(value, abs=1e-12)


def test_topk_mask_ties_go_to_lower_index():
    scores = torch.tensor([[0.5, 0.7, 0.5, 0.5, 0.1], [0.2, 0.2, 0.2, 0.2, 0.2], [0.9, 0.1, 0.9, 0.3, 0.9]])
    # Row 0, k=2: 0.7 (index 1), then the first of the tied 0.5s (index 0).
    # Row 1, k=2: all tied -> indices 0, 1. Row 2, k=2: three 0.9s -> indices 0, 2.
    expected = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 0, 0, 0], [1, 0, 1, 0, 0]], dtype=torch.bool)
    assert torch.equal(F.topk_mask(scores, 2), expected)
    rng = np.random.default_rng(6)
    random_scores = np.round(rng.random((50, 8)), 1)
    for k in (1, 3, 8, 10):
        reference = np.zeros((50, 8), dtype=bool)
        for i in range(50):
            reference[i, ref_topk(random_scores[i], k)] = True
        assert torch.equal(F.topk_mask(torch.from_numpy(random_scores), k), torch.from_numpy(reference))


# --------------------------------------------------------------------------- single-label
def test_topk_accuracy_matches_reference_with_ties():
    rng = np.random.default_rng(7)
    scores = np.round(rng.random((200, 12)), 1)
    targets = rng.integers(0, 12, size=200)
    ranks = [ref_topk(scores[i], 12).index(targets[i]) for i in range(200)]
    got = F.topk_accuracy(torch.from_numpy(scores), torch.from_numpy(targets), ks=(1, 3, 5, 12))
    for k in (1, 3, 5, 12):
        assert_close(got[f"top{k}"], np.mean(np.array(ranks) < k))
    assert torch.equal(F.true_class_rank(torch.from_numpy(scores), torch.from_numpy(targets)), torch.tensor(ranks))


def test_topk_accuracy_one_image_by_hand():
    scores = torch.tensor([[0.2, 0.5, 0.5, 0.1]])
    # True class 2: one class (1) ties with it at a lower index -> rank 1: miss at top1, hit at top3.
    assert F.single_label_metrics(scores, torch.tensor([2])) == {"top1": 0.0, "top3": 1.0, "top5": 1.0}
    # True class 1: nothing higher, no tie at a lower index -> rank 0.
    assert F.single_label_metrics(scores, torch.tensor([1])) == {"top1": 1.0, "top3": 1.0, "top5": 1.0}
    # True class 3 (lowest score): rank 3 -> only top5 (k >= C) hits.
    assert F.single_label_metrics(scores, torch.tensor([3])) == {"top1": 0.0, "top3": 0.0, "top5": 1.0}


# --------------------------------------------------------------------------- multilabel_metrics assembly
def test_multilabel_metrics_keys_and_json_values():
    scores, targets, mask = random_case(8, masked=True, empty_classes=(1,))
    result = F.multilabel_metrics(*tensors(scores, targets, mask), ks=(3, 5))
    expected_keys = ["mAP", "AP", "PR-AUC", "CP", "CR", "CF1", "OP", "OR", "OF1", "F1-micro"]
    for k in (3, 5):
        expected_keys += [f"{name}@{k}" for name in ("CP", "CR", "CF1", "OP", "OR", "OF1", "P", "R", "F1")]
    expected_keys += ["PR-AUC_per_class"]
    assert list(result) == expected_keys
    expected_ap, expected_auc = sklearn_ap_and_auc(scores, targets, mask)
    assert result["AP"][1] is None
    assert_close([math.nan if v is None else v for v in result["AP"]], expected_ap)
    assert result["mAP"] == pytest.approx(np.nanmean(expected_ap), abs=1e-12)
    assert result["PR-AUC"] == pytest.approx(np.nanmean(expected_auc), abs=1e-12)
    assert result["F1-micro"] == result["OF1"]
    zero = F.multilabel_metrics(*tensors(scores, targets, mask), ks=(3, 5), empty_class="zero")
    assert zero["mAP"] == pytest.approx(np.nan_to_num(expected_ap).mean(), abs=1e-12)
    assert zero["AP"][1] is None  # the per-class list keeps null in both conventions
    assert all(isinstance(v, float) for k, v in result.items() if k not in ("AP", "PR-AUC_per_class"))


def test_empty_class_by_hand():
    # Class 0: scores 0.9 (pos), 0.1 (neg) -> AP 1. Class 1: no positive -> no AP.
    scores = torch.tensor([[0.9, 0.8], [0.1, 0.2]])
    targets = torch.tensor([[1, 0], [0, 0]])
    exclude = F.multilabel_metrics(scores, targets)
    zero = F.multilabel_metrics(scores, targets, empty_class="zero")
    assert exclude["AP"] == [1.0, None] and zero["AP"] == [1.0, None]
    assert exclude["mAP"] == 1.0  # mean over class 0 only
    assert zero["mAP"] == 0.5  # (1 + 0) / 2
    assert exclude["PR-AUC"] == 1.0  # class 0 points (r 0, p 1), (1, 1), (1, 1/2): area 1
    # threshold 0.5: predicted (0,0) and (0,1). Nc=[1,0], Np=[1,1], Ng=[1,0].
    # CP, CR over class 0 only: 1, 1. OP = 1/2, OR = 1/1, OF1 = 2*0.5*1/1.5 = 2/3.
    assert (exclude["CP"], exclude["CR"], exclude["CF1"]) == (1.0, 1.0, 1.0)
    assert exclude["OP"] == 0.5 and exclude["OR"] == 1.0
    assert exclude["OF1"] == pytest.approx(2 / 3)


def test_everything_masked_by_hand():
    scores = torch.tensor([[0.9, 0.2], [0.6, 0.4]])
    targets = torch.tensor([[1, 0], [1, 1]])
    mask = torch.zeros(2, 2, dtype=torch.bool)
    result = F.multilabel_metrics(scores, targets, mask, ks=(1,))
    # No known entry: no AP, no class with Ng > 0 (CP, CR undefined), Nc = Np = Ng = 0:
    # OP = 0 / max(0, 1) = 0, OR = 0/0 undefined, OF1 undefined. P@1 = 0 / (2*1) = 0.
    assert result["AP"] == [None, None]
    for key in ("mAP", "PR-AUC", "CP", "CR", "CF1", "OR", "OF1", "F1-micro", "CP@1", "R@1", "F1@1"):
        assert result[key] is None, key
    assert result["OP"] == 0.0 and result["OP@1"] == 0.0 and result["P@1"] == 0.0
    zero = F.multilabel_metrics(scores, targets, mask, empty_class="zero")
    assert zero["mAP"] == 0.0  # both classes count as AP 0


def test_all_ties_by_hand():
    # One tie group of 4 with 2 positives: precision at its end 2/4, so AP = 0.5.
    # PR curve points: (recall 1, precision 0.5) and sklearn's (0, 1): area 1 * (0.5 + 1)/2 = 0.75.
    scores = torch.full((4, 1), 0.5)
    targets = torch.tensor([[1], [0], [1], [0]])
    result = F.multilabel_metrics(scores, targets, ks=(1,))
    assert result["AP"] == [0.5] and result["mAP"] == 0.5
    assert result["PR-AUC"] == 0.75
    # 0.5 >= 0.5: all predicted. Nc=2, Np=4, Ng=2: CP = OP = 0.5, CR = OR = 1, CF1 = 2*0.5/1.5 = 2/3.
    assert result["CP"] == 0.5 and result["CR"] == 1.0
    assert result["CF1"] == pytest.approx(2 / 3)
    # C = 1 so top-1 is every label: same numbers; P@1 = 2/(4*1), R@1 = 1.
    assert result["CP@1"] == 0.5 and result["P@1"] == 0.5 and result["R@1"] == 1.0


def test_k_at_least_c_by_hand():
    # C = 2, K = 3: every label is in the top 3. Known positives: 3 (all hit).
    # P@3 = 3 / (N*K) = 3 / 6 = 0.5 (literal spec formula), R@3 = 1, F1@3 = 2*0.5*1/1.5 = 2/3.
    scores = torch.tensor([[0.9, 0.1], [0.3, 0.8]])
    targets = torch.tensor([[1, 0], [1, 1]])
    result = F.multilabel_metrics(scores, targets, ks=(3,))
    assert result["P@3"] == 0.5 and result["R@3"] == 1.0
    assert result["F1@3"] == pytest.approx(2 / 3)
    # CP@3 etc. equal the plain threshold metrics when k >= C.
    for name in ("CP", "CR", "CF1", "OP", "OR", "OF1"):
        assert result[f"{name}@3"] == result[name]


def test_one_image_by_hand():
    # N = 1, C = 3: scores [0.9, 0.2, 0.6], targets [1, 0, 0].
    result = F.multilabel_metrics(torch.tensor([[0.9, 0.2, 0.6]]), torch.tensor([[1, 0, 0]]), ks=(1, 2))
    assert result["AP"] == [1.0, None, None] and result["mAP"] == 1.0
    assert F.multilabel_metrics(torch.tensor([[0.9, 0.2, 0.6]]), torch.tensor([[1, 0, 0]]),
                                empty_class="zero")["mAP"] == pytest.approx(1 / 3)
    # threshold: predicted [1, 0, 1]; Nc=[1,0,0], Np=[1,0,1], Ng=[1,0,0]
    # CP = CR = 1 (class 0 only); OP = 1/2, OR = 1, OF1 = 2/3.
    assert (result["CP"], result["CR"], result["OP"], result["OR"]) == (1.0, 1.0, 0.5, 1.0)
    assert result["OF1"] == pytest.approx(2 / 3)
    # top-1 = {0}: predicted [1,0,0] -> OP@1 = OR@1 = 1; P@1 = 1/(1*1) = 1, R@1 = 1.
    assert (result["OP@1"], result["OR@1"], result["P@1"], result["R@1"]) == (1.0, 1.0, 1.0, 1.0)
    # top-2 = {0, 2}: both >= 0.5 -> OP@2 = 1/2; P@2 = 1/2, R@2 = 1, F1@2 = 2/3.
    assert (result["OP@2"], result["P@2"], result["R@2"]) == (0.5, 0.5, 1.0)
    assert result["F1@2"] == pytest.approx(2 / 3)


def test_bad_arguments_raise():
    s, t = torch.rand(3, 2), torch.ones(3, 2)
    with pytest.raises(ValueError):
        F.multilabel_metrics(s, t, ks=(0,))
    with pytest.raises(ValueError):
        F.multilabel_metrics(s, t, empty_class="drop")
    with pytest.raises(ValueError):
        F.average_precision(s, torch.ones(3, 3))
    with pytest.raises(ValueError):
        F.threshold_metrics(s, t, None, torch.tensor([0.5, 0.5, 0.5]))
