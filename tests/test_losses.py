"""fashionbench.losses: ASL (Ridnik et al. 2021, Eq. 3-5) on entries worked by hand, its
reduction to BCE, masking, the reduction modes, and masked BCE / softmax CE vs torch."""
from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from fashionbench.losses import AsymmetricLoss, MaskedBCEWithLogits, SoftmaxCrossEntropy

# Three entries worked by hand with ASL's training settings (gamma- = 4, gamma+ = 0, m = 0.05):
#  a) y=1, x=0:  p = 0.5, gamma+ = 0       -> L = -log 0.5                     = 0.693147181
#  b) y=0, x=0:  p = 0.5, p_m = 0.45       -> L = -0.45^4 * log(1 - 0.45)
#                                               = 0.04100625 * 0.597837001    = 0.024515054
#  c) y=0, x=-3: p = 0.047426 < m, p_m = 0 -> L = 0 (easy negative discarded)
HAND_LOGITS = torch.tensor([[0.0, 0.0, -3.0]])
HAND_TARGETS = torch.tensor([[1.0, 0.0, 0.0]])
HAND_LOSSES = [0.693147181, 0.024515054, 0.0]


def test_asl_entries_by_hand():
    asl = AsymmetricLoss(gamma_neg=4, gamma_pos=0, clip=0.05)
    per_entry = asl.per_entry(HAND_LOGITS, HAND_TARGETS)
    torch.testing.assert_close(per_entry, torch.tensor([HAND_LOSSES]), atol=1e-7, rtol=1e-6)
    assert asl(HAND_LOGITS, HAND_TARGETS).item() == pytest.approx(sum(HAND_LOSSES), rel=1e-6)


def test_asl_positive_focusing_by_hand():
    # gamma+ = 1, y = 1, x = 0: L = (1 - p)^1 * -log p = 0.5 * 0.693147181
    asl = AsymmetricLoss(gamma_neg=0, gamma_pos=1, clip=0.0)
    assert asl(torch.tensor([[0.0]]), torch.tensor([[1.0]])).item() == pytest.approx(0.346573590, rel=1e-6)


def test_asl_focal_weight_gradient_detached_or_not():
    # y=0, x=0, gamma- = 4, m = 0: L = p^4 * -log(1-p). d(-log(1-p))/dx = p, dp/dx = p(1-p).
    # detached weight:  dL/dx = p^4 * p                                   = 0.03125
    # full gradient:    + 4 p^3 * p(1-p) * log 2 = 0.03125 + 0.0866434  = 0.1178934
    for detach, expected in ((True, 0.03125), (False, 0.117893398)):
        x = torch.zeros(1, 1, requires_grad=True)
        AsymmetricLoss(gamma_neg=4, gamma_pos=0, clip=0.0, detach_focal_weight=detach)(x, torch.zeros(1, 1)).backward()
        assert x.grad.item() == pytest.approx(expected, rel=1e-5)


def test_asl_without_focusing_or_clip_is_bce():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 5, generator=g) * 3
    targets = (torch.rand(6, 5, generator=g) > 0.5).float()
    asl = AsymmetricLoss(gamma_neg=0, gamma_pos=0, clip=0.0, reduction="sum")
    expected = F.binary_cross_entropy_with_logits(logits, targets, reduction="sum")
    torch.testing.assert_close(asl(logits, targets), expected, rtol=1e-5, atol=1e-5)
    asl_mean = AsymmetricLoss(gamma_neg=0, gamma_pos=0, clip=0.0, reduction="mean")
    torch.testing.assert_close(asl_mean(logits, targets), F.binary_cross_entropy_with_logits(logits, targets), rtol=1e-5, atol=1e-6)


def asl_by_hand(x: float, y: int, gamma_neg: float, gamma_pos: float, m: float, eps: float = 1e-8) -> float:
    """Ridnik et al. 2021, Eq. 3-5, written out for one entry (float64, no torch):
    p = sigmoid(x), p_m = max(p - m, 0), L+ = (1 - p)^gamma+ log p, L- = p_m^gamma- log(1 - p_m),
    loss = -(y L+ + (1 - y) L-); the logs are taken of max(., eps) as in the paper's code."""
    p = 1.0 / (1.0 + math.exp(-x))
    p_m = max(p - m, 0.0)
    l_pos = (1.0 - p) ** gamma_pos * math.log(max(p, eps))
    l_neg = p_m ** gamma_neg * math.log(max(1.0 - p_m, eps))
    return -(y * l_pos + (1 - y) * l_neg)


# Hand-picked entries: confident right / wrong positives and negatives, an easy negative below
# the margin (p = 0.018 < m: no loss), a positive at p = 1.4e-11 (log clamped at eps) and x = 0.
MASK_LOGITS = [[2.0, -1.0, 0.3, -25.0], [-4.0, 1.5, 0.0, 3.0]]
MASK_TARGETS = [[1, 0, 1, 1], [0, 0, 1, 0]]
MASK_KNOWN = [[True, True, False, True], [True, False, True, True]]


def test_masked_entries_contribute_nothing():
    logits = torch.tensor(MASK_LOGITS, requires_grad=True)
    targets = torch.tensor(MASK_TARGETS, dtype=torch.float32)
    mask = torch.tensor(MASK_KNOWN)
    settings = {"gamma_neg": 4.0, "gamma_pos": 1.0, "m": 0.05}
    known = [asl_by_hand(MASK_LOGITS[i][j], MASK_TARGETS[i][j], **settings)
             for i in range(2) for j in range(4) if MASK_KNOWN[i][j]]
    assert known[3] == 0.0  # x = -4, y = 0: p = 0.018 < m, discarded
    assert known[2] == pytest.approx(-(1 - 1 / (1 + math.exp(25.0))) * math.log(1e-8), rel=1e-12)  # eps clamp
    asl = AsymmetricLoss(gamma_neg=4, gamma_pos=1, clip=0.05)
    loss = asl(logits, targets, mask)
    # the default reduction sums the known entries alone; mean divides by their number (6), batch_mean by B = 2
    assert loss.item() == pytest.approx(sum(known), rel=1e-5)
    for reduction, divisor in (("mean", 6), ("batch_mean", 2)):
        reduced = AsymmetricLoss(gamma_neg=4, gamma_pos=1, clip=0.05, reduction=reduction)(logits.detach(), targets, mask)
        assert reduced.item() == pytest.approx(sum(known) / divisor, rel=1e-5), reduction
    # changing a masked entry's logit or target changes nothing, and it gets no gradient
    logits2, targets2 = logits.detach().clone(), targets.clone()
    logits2[~mask] = 10.0
    targets2[~mask] = 1 - targets2[~mask]
    torch.testing.assert_close(asl(logits2, targets2, mask), loss.detach())
    loss.backward()
    assert torch.all(logits.grad[~mask] == 0)
    assert torch.any(logits.grad[mask] != 0)


def test_reduction_modes_by_hand():
    # the three hand entries, the third one masked: known entries 2, batch size 1
    mask = torch.tensor([[True, True, False]])
    total = HAND_LOSSES[0] + HAND_LOSSES[1]
    for reduction, expected in (("sum", total), ("mean", total / 2), ("batch_mean", total / 1)):
        asl = AsymmetricLoss(reduction=reduction)
        assert asl(HAND_LOGITS, HAND_TARGETS, mask).item() == pytest.approx(expected, rel=1e-6)
    two_rows = AsymmetricLoss(reduction="batch_mean")(HAND_LOGITS.repeat(2, 1), HAND_TARGETS.repeat(2, 1))
    assert two_rows.item() == pytest.approx(sum(HAND_LOSSES), rel=1e-6)  # (2 * sum) / 2 rows
    with pytest.raises(ValueError, match="reduction"):
        AsymmetricLoss(reduction="median")(HAND_LOGITS, HAND_TARGETS)


def test_asl_rejects_negative_parameters():
    with pytest.raises(ValueError):
        AsymmetricLoss(clip=-0.1)


def test_masked_bce_matches_torch():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(5, 4, generator=g)
    targets = (torch.rand(5, 4, generator=g) > 0.5).float()
    mask = torch.rand(5, 4, generator=g) > 0.4
    torch.testing.assert_close(MaskedBCEWithLogits()(logits, targets), F.binary_cross_entropy_with_logits(logits, targets))
    torch.testing.assert_close(
        MaskedBCEWithLogits()(logits, targets, mask),
        F.binary_cross_entropy_with_logits(logits[mask], targets[mask]),
    )
    torch.testing.assert_close(
        MaskedBCEWithLogits(reduction="sum", pos_weight=3.0)(logits, targets),
        F.binary_cross_entropy_with_logits(logits, targets, reduction="sum", pos_weight=torch.tensor(3.0)),
    )


def test_masked_bce_all_masked_is_zero_not_nan():
    loss = MaskedBCEWithLogits()(torch.randn(2, 3), torch.ones(2, 3), torch.zeros(2, 3, dtype=torch.bool))
    assert loss.item() == 0.0 and not math.isnan(loss.item())


def test_softmax_cross_entropy_matches_torch():
    logits = torch.randn(4, 6, generator=torch.Generator().manual_seed(3))
    targets = torch.tensor([0, 5, 2, 2])
    torch.testing.assert_close(SoftmaxCrossEntropy()(logits, targets), F.cross_entropy(logits, targets))
    torch.testing.assert_close(
        SoftmaxCrossEntropy(label_smoothing=0.1)(logits, targets), F.cross_entropy(logits, targets, label_smoothing=0.1)
    )
