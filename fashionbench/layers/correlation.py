"""Semantic label-correlation matrix from label embeddings (the CMSG paper's semantic
correlation matrix, built as ML-GCN builds its own: Chen et al. CVPR 2019, Sec. 3.4, Eq. 7-8).

CMSG replaces ML-GCN's co-occurrence statistics by the cosine similarity of the label
word vectors, then follows ML-GCN's two steps:

1. binarise (ML-GCN Eq. 7): ``A_ij = 1 if S_ij >= tau else 0`` for ``i != j``, where
   ``S_ij = cos(e_i, e_j)``; the diagonal is left to step 2.
2. re-weight (ML-GCN Eq. 8): each row's neighbours share the weight ``p``
   (``A'_ij = p * A_ij / sum_{k != i} A_ik``) and the label keeps ``1 - p`` for itself
   (``A'_ii = 1 - p``). A label without any neighbour above ``tau`` keeps only itself
   (``A'_ii = 1``), so every row sums to 1 and the identity is always kept.

Rows are normalised (ML-GCN's paper sums over ``j``; its code normalises columns): in
CMSG the matrix masks self-attention, where row ``i`` holds the keys that query ``i`` may
attend to. :func:`attention_bias` turns it into the additive score mask used by
:class:`~fashionbench.layers.attention.SelfAttentionLayer`: ``log A'`` (``-inf`` where
``A'_ij = 0``), so attention weights become ``A'_ij exp(s_ij) / sum_k A'_ik exp(s_ik)``.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F


def cosine_similarity_matrix(embeddings: torch.Tensor) -> torch.Tensor:
    """``S_ij = <e_i, e_j> / (|e_i| |e_j|)`` for embeddings [C, D] -> [C, C]."""
    if embeddings.ndim != 2:
        raise ValueError(f"embeddings must be [C, D], got shape {tuple(embeddings.shape)}")
    unit = F.normalize(embeddings.double(), dim=1, eps=1e-12)
    return (unit @ unit.T).to(embeddings.dtype)


def binarize_correlation(similarity: torch.Tensor, tau: float) -> torch.Tensor:
    """ML-GCN Eq. 7: 1 where ``S_ij >= tau`` off the diagonal, else 0 (diagonal 0)."""
    adjacency = (similarity >= tau).to(similarity.dtype)
    return adjacency * (1 - torch.eye(len(similarity), dtype=similarity.dtype, device=similarity.device))


def reweight_correlation(adjacency: torch.Tensor, p: float) -> torch.Tensor:
    """ML-GCN Eq. 8 on a binary adjacency with zero diagonal: neighbours share ``p``, the
    label itself keeps ``1 - p`` (``1`` when it has no neighbour); rows sum to 1."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"p must be in [0, 1) so that every label keeps some weight on itself, got {p}")
    degree = adjacency.sum(dim=1, keepdim=True)
    has_neighbours = degree > 0
    off_diagonal = torch.where(has_neighbours, p * adjacency / degree.clamp(min=1), torch.zeros_like(adjacency))
    self_weight = torch.where(has_neighbours.squeeze(1), torch.full_like(degree.squeeze(1), 1 - p), torch.ones_like(degree.squeeze(1)))
    return off_diagonal + torch.diag(self_weight)


def semantic_correlation(embeddings: torch.Tensor, tau: float = 0.4, p: float = 0.2) -> torch.Tensor:
    """The re-weighted semantic correlation matrix [C, C] of label embeddings [C, D].

    Defaults are ML-GCN's ``tau = 0.4, p = 0.2``.
    """
    if not -1.0 <= tau <= 1.0:
        raise ValueError(f"tau is a cosine-similarity threshold in [-1, 1], got {tau}")
    return reweight_correlation(binarize_correlation(cosine_similarity_matrix(embeddings), tau), p)


def attention_bias(correlation: torch.Tensor) -> torch.Tensor:
    """Additive attention mask ``log A'``: ``-inf`` where ``A'_ij = 0`` (the pair is masked),
    and a prior ``log A'_ij`` on the allowed pairs. Needs a positive diagonal."""
    if (torch.diagonal(correlation) <= 0).any():
        raise ValueError("every label must be allowed to attend to itself (positive diagonal)")
    return torch.log(correlation.clamp(min=0))
