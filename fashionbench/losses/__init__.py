"""Training losses. Every multi-label loss takes ``(logits, targets, mask)`` and ignores
masked (unknown) entries, so VOC "difficult" and Open Images unverified labels never
push a score either way."""
from fashionbench.losses.asl import AsymmetricLoss
from fashionbench.losses.bce import MaskedBCEWithLogits, SoftmaxCrossEntropy

__all__ = ["AsymmetricLoss", "MaskedBCEWithLogits", "SoftmaxCrossEntropy"]
