"""fashionbench.scoring.score_file: good files give the spec's numbers, bad files one InputError line."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from fashionbench.errors import InputError
from fashionbench.scoring import score_file

N, C = 40, 5


def arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    targets = (rng.random((N, C)) < 0.3).astype(np.int64)
    targets[:, 4] = 0  # a class without a positive
    return {
        "scores": np.round(rng.random((N, C)), 1).astype(np.float32),
        "targets": targets,
        "mask": rng.random((N, C)) < 0.9,
    }


def write(tmp_path, name: str = "preds.npz", **contents) -> str:
    path = tmp_path / name
    np.savez(path, **contents)
    return str(path)


def sklearn_map(scores, targets, mask) -> tuple[list, float]:
    aps = []
    for c in range(scores.shape[1]):
        y, s = targets[mask[:, c], c], scores[mask[:, c], c]
        aps.append(average_precision_score(y, s) if y.sum() else None)
    return aps, float(np.mean([a for a in aps if a is not None]))


# --------------------------------------------------------------------------- good files
def test_multilabel_file_matches_sklearn_and_is_json(tmp_path):
    data = arrays()
    result = score_file(write(tmp_path, **data), ks=(3, 5))
    aps, mean = sklearn_map(data["scores"], data["targets"], data["mask"])
    assert result["AP"][4] is None
    assert result["AP"][:4] == pytest.approx(aps[:4], abs=1e-12)
    assert result["mAP"] == pytest.approx(mean, abs=1e-12)
    for key in ("PR-AUC", "CP", "CR", "CF1", "OP", "OR", "OF1", "F1-micro", "CP@3", "OF1@5", "P@3", "R@5", "F1@5"):
        assert isinstance(result[key], float), key
    json.dumps(result, allow_nan=False)  # nulls, never NaN


def test_empty_class_convention_and_label_names_optional(tmp_path):
    data = arrays(1)
    plain = score_file(write(tmp_path, "a.npz", **data))
    named = score_file(write(tmp_path, "b.npz", label_names=np.array([f"label {i}" for i in range(C)]), **data))
    assert plain == named
    zero = score_file(write(tmp_path, "c.npz", **data), empty_class="zero")
    aps, _ = sklearn_map(data["scores"], data["targets"], data["mask"])
    assert zero["mAP"] == pytest.approx(sum(a for a in aps if a is not None) / C, abs=1e-12)


def test_logits_file_equals_sigmoid_scores_file(tmp_path):
    rng = np.random.default_rng(2)
    logits = (rng.normal(size=(N, C)) * 3).astype(np.float32)
    data = arrays(2)
    from_logits = score_file(write(tmp_path, "l.npz", logits=logits, targets=data["targets"], mask=data["mask"]))
    sigmoid = torch.sigmoid(torch.from_numpy(logits)).numpy()
    from_scores = score_file(write(tmp_path, "s.npz", scores=sigmoid, targets=data["targets"], mask=data["mask"]))
    assert from_logits == from_scores
    _, mean = sklearn_map(sigmoid, data["targets"], data["mask"])
    assert from_logits["mAP"] == pytest.approx(mean, abs=1e-12)
    # Threshold 0.5 on sigmoid(logits) is logits >= 0: OP counted by hand.
    known = data["mask"]
    predicted = (logits >= 0) & known
    assert from_logits["OP"] == pytest.approx((predicted & (data["targets"] == 1)).sum() / max(predicted.sum(), 1))


def test_per_class_thresholds_from_file(tmp_path):
    data = arrays(3)
    thresholds = np.array([0.3, 0.4, 0.5, 0.6, 0.7])
    result = score_file(write(tmp_path, thresholds=thresholds, **data))
    known = data["mask"]
    predicted = (data["scores"].astype(np.float64) >= thresholds) & known
    positive = (data["targets"] == 1) & known
    assert result["OP"] == pytest.approx((predicted & positive).sum() / predicted.sum(), abs=1e-15)
    assert result["OR"] == pytest.approx((predicted & positive).sum() / positive.sum(), abs=1e-15)


def test_single_label_file(tmp_path):
    # Image 0: true class 2, class 1 ties with it at a lower index -> rank 1.
    # Image 1: true class 0 has the top score -> rank 0. Image 2: true class 3 is last -> rank 3.
    scores = np.array([[0.2, 0.5, 0.5, 0.1], [0.9, 0.1, 0.0, 0.0], [0.4, 0.3, 0.2, 0.1]], dtype=np.float32)
    targets = np.array([2, 0, 3])
    result = score_file(write(tmp_path, scores=scores, targets=targets), ks=(3,))
    assert result == {"top1": pytest.approx(1 / 3), "top3": pytest.approx(2 / 3), "top5": 1.0}


# --------------------------------------------------------------------------- bad files
def bad_cases():
    good = arrays()
    scores, targets, mask = good["scores"], good["targets"], good["mask"]
    nan_scores = scores.copy()
    nan_scores[3, 1] = np.nan
    inf_logits = scores.copy()
    inf_logits[0, 0] = np.inf
    two = targets.copy()
    two[5, 2] = 2
    return {
        "missing targets": ({"scores": scores}, "targets"),
        "missing scores": ({"targets": targets}, "scores"),
        "both scores and logits": ({"scores": scores, "logits": scores, "targets": targets}, "logits"),
        "shape mismatch": ({"scores": scores, "targets": targets[:, :4]}, "shape"),
        "row mismatch": ({"scores": scores, "targets": targets[:30]}, "shape"),
        "scores 1-D": ({"scores": scores[:, 0], "targets": targets[:, 0]}, "[N, C]"),
        "NaN scores": ({"scores": nan_scores, "targets": targets}, "NaN"),
        "inf logits": ({"logits": inf_logits, "targets": targets}, "inf"),
        "string scores": ({"scores": scores.astype(str), "targets": targets}, "numeric"),
        "targets outside 0/1": ({"scores": scores, "targets": two}, "0 or 1"),
        "targets -1": ({"scores": scores, "targets": targets - 1}, "0 or 1"),
        "targets 3-D": ({"scores": scores, "targets": targets[:, :, None]}, "targets"),
        "mask not bool": ({"scores": scores, "targets": targets, "mask": mask * 0.5}, "mask"),
        "mask strings": ({"scores": scores, "targets": targets, "mask": mask.astype(str)}, "mask"),
        "mask shape": ({"scores": scores, "targets": targets, "mask": mask[:, :2]}, "mask"),
        "thresholds length": ({"scores": scores, "targets": targets, "thresholds": np.full(C + 1, 0.5)}, "thresholds"),
        "thresholds NaN": ({"scores": scores, "targets": targets, "thresholds": np.full(C, np.nan)}, "thresholds"),
        "label_names length": ({"scores": scores, "targets": targets, "label_names": np.array(["a"])}, "label_names"),
        "label_names objects": (
            {"scores": scores, "targets": targets, "label_names": np.array(["a", 1, 2, 3, 4], dtype=object)},
            "label_names",
        ),
        "class id too large": ({"scores": scores, "targets": np.full(N, C)}, "class ids"),
        "class id negative": ({"scores": scores, "targets": np.full(N, -1)}, "class ids"),
        "class id fractional": ({"scores": scores, "targets": np.full(N, 1.5)}, "integer"),
        "single-label with mask": ({"scores": scores, "targets": np.zeros(N, dtype=int), "mask": mask}, "mask"),
        "empty scores": ({"scores": np.zeros((0, C), np.float32), "targets": np.zeros((0, C))}, "empty"),
    }


@pytest.mark.parametrize("case", list(bad_cases()))
def test_bad_file_raises_one_line_naming_file_and_problem(tmp_path, case):
    contents, problem = bad_cases()[case]
    path = write(tmp_path, **contents)
    with pytest.raises(InputError) as err:
        score_file(path)
    message = str(err.value)
    assert message.startswith(f"{path}: "), message
    assert problem in message, message
    assert "\n" not in message


@pytest.mark.parametrize("kind", ["missing", "text", "npy", "truncated", "directory"])
def test_unreadable_file_raises(tmp_path, kind):
    path = tmp_path / "preds.npz"
    if kind == "text":
        path.write_text("scores,targets\n0.1,1\n")
    elif kind == "npy":
        with open(path, "wb") as handle:
            np.save(handle, np.ones((2, 2)))
    elif kind == "truncated":
        np.savez(path, **arrays())
        path.write_bytes(path.read_bytes()[:100])
    elif kind == "directory":
        path.mkdir()
    with pytest.raises(InputError) as err:
        score_file(path)
    assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)


def test_bad_options_raise(tmp_path):
    path = write(tmp_path, **arrays())
    for kwargs in ({"ks": (0,)}, {"threshold": float("nan")}, {"empty_class": "drop"}):
        with pytest.raises(InputError):
            score_file(path, **kwargs)
