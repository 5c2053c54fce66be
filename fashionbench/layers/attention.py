"""Attention blocks for label-query heads (Query2Label, Liu et al. 2021; SST, Chen et al.
TIP 2022; CMSG's SGA/SAA modules), built on :class:`torch.nn.MultiheadAttention`.

- :class:`SelfAttentionLayer`: multi-head self-attention among label features with an
  optional additive mask (``-inf`` = masked pair, see
  :func:`fashionbench.layers.correlation.attention_bias`), then a feed-forward network.
- :class:`CrossAttentionLayer`: label features as queries, spatial features as keys and
  values (keys carry the position encoding, values do not: DETR/Q2L), then an FFN.
- :class:`SemanticDecoupling`: label vectors pool the spatial features into one feature per
  class (SSGRL's semantic decoupling, Chen et al. ICCV 2019, Sec. 3.1, with a scaled
  dot-product score in place of its low-rank bilinear one).
- :class:`GroupWiseLinear`: a per-class linear classifier, ``logit_c = <w_c, z_c> + b_c``
  (Q2L's ``GroupWiseLinear``).
- :func:`sine_position_encoding`: DETR's 2-D sine encoding of a feature map (Q2L's default).

Residual + LayerNorm placement: post-norm by default (``norm_first=False``), as in the
original Transformer, DETR and Query2Label (``pre_norm`` off); pre-norm is available.
Dropout 0.1 and ReLU FFNs follow Q2L.
"""
from __future__ import annotations

import math

import torch
from torch import nn


def sine_position_encoding(
    height: int, width: int, dim: int, temperature: float = 10000.0, device: torch.device | None = None
) -> torch.Tensor:
    """DETR's normalised 2-D sine position encoding of an ``height x width`` map -> [H*W, dim].

    The first half of the channels encodes the row, the second the column, each as
    interleaved sin/cos of ``pos * 2pi / temperature^(2i/d)``; an odd remainder is zero.
    """
    half = dim // 2
    quarter = half // 2
    if quarter == 0:
        return torch.zeros(height * width, dim, device=device)
    eps = 1e-6
    y = (torch.arange(1, height + 1, dtype=torch.float32, device=device) / (height + eps)) * 2 * math.pi
    x = (torch.arange(1, width + 1, dtype=torch.float32, device=device) / (width + eps)) * 2 * math.pi
    freqs = temperature ** (2 * torch.arange(quarter, dtype=torch.float32, device=device) / (2 * quarter))

    def encode(pos: torch.Tensor) -> torch.Tensor:  # [L] -> [L, 2 * quarter]
        angles = pos[:, None] / freqs[None, :]
        return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(1)

    pos_y = encode(y)[:, None, :].expand(height, width, 2 * quarter)
    pos_x = encode(x)[None, :, :].expand(height, width, 2 * quarter)
    pos = torch.cat([pos_y, pos_x], dim=-1).reshape(height * width, 4 * quarter)
    if pos.shape[1] < dim:
        pos = torch.cat([pos, pos.new_zeros(height * width, dim - pos.shape[1])], dim=1)
    return pos


class FeedForward(nn.Sequential):
    """``Linear(dim, hidden) -> ReLU -> Dropout -> Linear(hidden, dim)``."""

    def __init__(self, dim: int, hidden_dim: int, dropout: float = 0.1) -> None:
        super().__init__(nn.Linear(dim, hidden_dim), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden_dim, dim))


class _AttentionBlock(nn.Module):
    """Attention + FFN sublayers, each with dropout, a residual connection and a LayerNorm."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float, norm_first: bool) -> None:
        super().__init__()
        if dim % heads != 0:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.ffn = FeedForward(dim, ffn_dim, dropout)
        self.norm_attn = nn.LayerNorm(dim)
        self.norm_ffn = nn.LayerNorm(dim)
        self.drop_attn = nn.Dropout(dropout)
        self.drop_ffn = nn.Dropout(dropout)
        self.norm_first = norm_first

    def _block(self, x: torch.Tensor, attend) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.norm_first:
            out, weights = attend(self.norm_attn(x))
            x = x + self.drop_attn(out)
            x = x + self.drop_ffn(self.ffn(self.norm_ffn(x)))
        else:
            out, weights = attend(x)
            x = self.norm_attn(x + self.drop_attn(out))
            x = self.norm_ffn(x + self.drop_ffn(self.ffn(x)))
        return x, weights


class SelfAttentionLayer(_AttentionBlock):
    """Masked multi-head self-attention over ``x`` [B, N, dim] + FFN.

    ``attn_bias`` [N, N] is added to the attention scores of every head (``-inf`` masks a
    pair: query ``i`` gets exactly zero weight on key ``j``). With ``need_weights`` the
    per-head attention weights [B, heads, N, N] are returned too.
    """

    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float = 0.1, norm_first: bool = False) -> None:
        super().__init__(dim, heads, ffn_dim, dropout, norm_first)

    def forward(
        self, x: torch.Tensor, attn_bias: torch.Tensor | None = None, need_weights: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        mask = None if attn_bias is None else attn_bias.to(x.dtype)

        def attend(h: torch.Tensor):
            return self.attn(h, h, h, attn_mask=mask, need_weights=need_weights, average_attn_weights=False)

        x, weights = self._block(x, attend)
        return (x, weights) if need_weights else x


class CrossAttentionLayer(_AttentionBlock):
    """Multi-head cross-attention: ``queries`` [B, C, dim] attend to ``memory`` [B, N, dim]
    (keys ``memory + memory_pos``, values ``memory``), then an FFN on the queries."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float = 0.1, norm_first: bool = False) -> None:
        super().__init__(dim, heads, ffn_dim, dropout, norm_first)

    def forward(
        self,
        queries: torch.Tensor,
        memory: torch.Tensor,
        memory_pos: torch.Tensor | None = None,
        need_weights: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        keys = memory if memory_pos is None else memory + memory_pos

        def attend(h: torch.Tensor):
            return self.attn(h, keys, memory, need_weights=need_weights, average_attn_weights=False)

        x, weights = self._block(queries, attend)
        return (x, weights) if need_weights else x


class SemanticDecoupling(nn.Module):
    """One feature per class from spatial features and label vectors (SSGRL Sec. 3.1).

    ``alpha[b, c, n] = softmax_n(<W_q e_c, W_k (x_bn + pos_n)> / sqrt(dim))`` and
    ``z[b, c] = sum_n alpha[b, c, n] x_bn``: each label vector picks the positions that
    look like its class and averages their features.
    """

    def __init__(self, label_dim: int, dim: int) -> None:
        super().__init__()
        self.query = nn.Linear(label_dim, dim)
        self.key = nn.Linear(dim, dim)
        self.scale = dim**-0.5

    def forward(
        self, features: torch.Tensor, label_vectors: torch.Tensor, pos: torch.Tensor | None = None
    ) -> torch.Tensor:
        queries = self.query(label_vectors.to(features.dtype))  # [C, d]
        keys = self.key(features if pos is None else features + pos)  # [B, N, d]
        weights = torch.softmax(torch.einsum("cd,bnd->bcn", queries, keys) * self.scale, dim=-1)
        return torch.einsum("bcn,bnd->bcd", weights, features)


class GroupWiseLinear(nn.Module):
    """Per-class linear classifier: ``logits[b, c] = <W[c], z[b, c]> + bias[c]``."""

    def __init__(self, num_classes: int, dim: int, bias: bool = True) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(dim)
        self.weight = nn.Parameter(torch.empty(num_classes, dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(num_classes).uniform_(-bound, bound)) if bias else None

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        logits = (z * self.weight).sum(dim=-1)
        return logits if self.bias is None else logits + self.bias
