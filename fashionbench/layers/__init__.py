"""Reusable blocks that more than one model builds on: label-correlation matrices and
attention layers over label features."""
from fashionbench.layers.attention import (
    CrossAttentionLayer,
    FeedForward,
    GroupWiseLinear,
    SelfAttentionLayer,
    SemanticDecoupling,
    sine_position_encoding,
)
from fashionbench.layers.correlation import (
    attention_bias,
    binarize_correlation,
    cosine_similarity_matrix,
    reweight_correlation,
    semantic_correlation,
)

__all__ = [
    "CrossAttentionLayer",
    "FeedForward",
    "GroupWiseLinear",
    "SelfAttentionLayer",
    "SemanticDecoupling",
    "attention_bias",
    "binarize_correlation",
    "cosine_similarity_matrix",
    "reweight_correlation",
    "semantic_correlation",
    "sine_position_encoding",
]
