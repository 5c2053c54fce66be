"""The "Recurrent" part of Wide, Deep and Recurrent (Xiong & Wang, FGVC5 poster,
"Recurrent"): a bidirectional GRU (Cho et al. 2014) over the labels' embeddings, the
embeddings pre-trained by matrix factorisation of the training label co-occurrence
matrix, conditioned on the image features, one logit per label.

The poster gives no wiring; this follows CNN-RNN (J. Wang, Y. Yang, J. Mao, Z. Huang,
C. Huang, W. Xu, "CNN-RNN: A Unified Framework for Multi-label Image Classification",
CVPR 2016, Sec. 3), made order-free and one-pass so that every label gets a logit:

- the sequence is *all* C labels, in descending training frequency (CNN-RNN sorts each
  image's labels by training frequency, frequent first); step ``t`` reads the embedding
  ``e_t`` of the t-th label (CNN-RNN's label embedding matrix ``U_l``, here shared by
  input and output as there);
- the image conditions the recurrence through its initial state, ``h_0 = tanh(W_h z)`` for
  both directions (Show and Tell, Vinyals et al. 2015, feeds the image before the first
  word; CNN-RNN's image feature is likewise the context of every step), and its output,
  as in CNN-RNN's projection layer: ``x_t = ReLU(W_o o_t + W_I z)`` with ``o_t`` the two
  directions' outputs concatenated (a bidirectional GRU sees every other label, so the
  order only sets who is near whom);
- label ``t``'s logit is CNN-RNN's score, the inner product of ``x_t`` with the label's
  own embedding (projected to the joint width), plus a per-label bias.

Pre-training: :func:`cooccurrence_matrix` counts, for every label pair, the training
images that have both (the diagonal holds each label's count); :func:`factorize_cooccurrence`
factorises it by truncated SVD, ``M ~ U_d S_d V_d^T``, and returns ``W = U_d S_d^{1/2}``
(and ``C = V_d S_d^{1/2}``, so ``W C^T`` is the best rank-d approximation, Eckart-Young).
By default the counts are first turned into positive pointwise mutual information (PPMI),
the matrix whose SVD gives the word vectors of Levy, Goldberg & Dagan (TACL 2015,
"Improving distributional similarity...", SVD with eigenvalue weighting 0.5); ``log1p`` (the
log counts GloVe fits) and ``none`` (the counts) are the alternatives.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:  # pragma: no cover
    from datamodules.index import LabelIndex

__all__ = ["cooccurrence_matrix", "factorize_cooccurrence", "LabelGRU"]


def cooccurrence_matrix(labels: "LabelIndex | np.ndarray") -> np.ndarray:
    """``float64 [C, C]``: ``M[i, j]`` = images with both label i and label j.

    ``labels`` is a :class:`~datamodules.index.LabelIndex` (its positives, sparse) or a
    dense ``[N, C]`` 0/1 array.
    """
    if hasattr(labels, "pos_indptr"):
        from scipy import sparse

        n, c = len(labels), labels.num_labels
        y = sparse.csr_matrix((np.ones(labels.pos_indices.size, dtype=np.float64), labels.pos_indices,
                               labels.pos_indptr), shape=(n, c))
        return np.asarray((y.T @ y).todense(), dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    return y.T @ y


def _ppmi(m: np.ndarray) -> np.ndarray:
    total = m.sum()
    if total <= 0:
        return np.zeros_like(m)
    row, col = m.sum(axis=1, keepdims=True), m.sum(axis=0, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        pmi = np.log(m * total / (row * col))
    return np.where(np.isfinite(pmi) & (pmi > 0), pmi, 0.0)


def factorize_cooccurrence(m: np.ndarray, dim: int, transform: Literal["ppmi", "log1p", "none"] = "ppmi",
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rank-``dim`` factorisation of a co-occurrence matrix: ``(W [C, d], C [C, d], s [d])``.

    ``W @ C.T`` is the best rank-``dim`` approximation of the transformed matrix; for a
    symmetric positive semi-definite one ``W == C`` (up to sign) and ``W @ W.T`` is it.
    Columns beyond the matrix's rank are zero. Signs are fixed (largest entry of each
    column of ``W`` positive) so the result is deterministic.
    """
    m = np.asarray(m, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"a co-occurrence matrix is square, got shape {m.shape}")
    if transform == "ppmi":
        target = _ppmi(m)
    elif transform == "log1p":
        target = np.log1p(np.maximum(m, 0.0))
    elif transform == "none":
        target = m
    else:
        raise ValueError(f"unknown transform {transform!r}; known: ppmi, log1p, none")
    u, s, vt = np.linalg.svd(target)
    d = min(int(dim), s.size)
    root = np.sqrt(s[:d])
    w, c = u[:, :d] * root, vt[:d].T * root
    flip = np.sign(w[np.argmax(np.abs(w), axis=0), np.arange(d)])
    flip[flip == 0] = 1.0
    w, c = w * flip, c * flip
    if d < dim:  # fewer labels than dimensions: pad with zeros
        pad = np.zeros((m.shape[0], int(dim) - d))
        w, c = np.hstack([w, pad]), np.hstack([c, pad])
        s = np.concatenate([s[:d], np.zeros(int(dim) - d)])
    return w, c, s[: int(dim)]


class LabelGRU(nn.Module):
    """Bidirectional GRU over all label embeddings, conditioned on image features
    (module docstring): ``forward(z [B, D]) -> logits [B, C]`` in label-index order.

    Args:
        num_labels: C.
        feature_dim: D, the width of the image representation ``z``.
        embed_dim: label embedding width (the factorisation rank).
        hidden_dim: GRU width per direction.
        joint_dim: width of CNN-RNN's joint space.
    """

    def __init__(self, num_labels: int, feature_dim: int, embed_dim: int = 64, hidden_dim: int = 256,
                 joint_dim: int = 256) -> None:
        super().__init__()
        self.num_labels = num_labels
        self.embedding = nn.Parameter(torch.randn(num_labels, embed_dim) * embed_dim ** -0.5)
        self.init_state = nn.Linear(feature_dim, 2 * hidden_dim)
        self.gru = nn.GRU(embed_dim, hidden_dim, batch_first=True, bidirectional=True)
        self.out_proj = nn.Linear(2 * hidden_dim, joint_dim)
        self.image_proj = nn.Linear(feature_dim, joint_dim, bias=False)
        self.label_proj = nn.Linear(embed_dim, joint_dim, bias=False)
        self.bias = nn.Parameter(torch.zeros(num_labels))
        #: the sequence order: label indices, most frequent first (set by :meth:`set_order`)
        self.register_buffer("order", torch.arange(num_labels), persistent=True)

    @torch.no_grad()
    def set_order(self, frequencies: np.ndarray | torch.Tensor) -> None:
        """Sequence order = descending frequency (ties by label index)."""
        f = np.array(frequencies.cpu() if isinstance(frequencies, torch.Tensor) else frequencies, dtype=np.float64)
        order = np.lexsort((np.arange(f.size), -f))
        self.order.copy_(torch.as_tensor(order, dtype=torch.long))

    @torch.no_grad()
    def set_embeddings(self, vectors: np.ndarray | torch.Tensor) -> None:
        """Load pre-trained label embeddings ``[C, embed_dim]`` (label-index order)."""
        v = torch.as_tensor(np.asarray(vectors, dtype=np.float32))
        if v.shape != self.embedding.shape:
            raise ValueError(f"embeddings must be {list(self.embedding.shape)}, got {list(v.shape)}")
        self.embedding.copy_(v)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        b = z.shape[0]
        emb = self.embedding[self.order]                                   # [C, d] in sequence order
        h0 = torch.tanh(self.init_state(z)).view(b, 2, -1).transpose(0, 1).contiguous()  # [2, B, H]
        out, _ = self.gru(emb.unsqueeze(0).expand(b, -1, -1).contiguous(), h0)  # [B, C, 2H]
        joint = torch.relu(self.out_proj(out) + self.image_proj(z).unsqueeze(1))  # [B, C, J]
        seq_logits = (joint * self.label_proj(emb).unsqueeze(0)).sum(-1)          # [B, C]
        inverse = torch.argsort(self.order)
        return seq_logits[:, inverse] + self.bias                          # back to label-index order
