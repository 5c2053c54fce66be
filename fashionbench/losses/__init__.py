"""Training losses. Every multi-label loss takes ``(logits, targets, mask)`` and ignores
masked (unknown) entries, so VOC "difficult" and Open Images unverified labels never
push a score either way."""
from fashionbench.losses.asl import AsymmetricLoss
from fashionbench.losses.bce import MaskedBCEWithLogits, SoftmaxCrossEntropy
from fashionbench.losses.sdl import SDLLoss
from fashionbench.losses.uncertainty import UncertaintyWeightedLoss

__all__ = ["AsymmetricLoss", "MaskedBCEWithLogits", "SDLLoss", "SoftmaxCrossEntropy", "UncertaintyWeightedLoss"]
