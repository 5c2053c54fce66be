"""The semantic-diversity loss of SDL (Ben-Cohen, Zamir, Ben Baruch, Friedman, Zelnik-Manor,
"Semantic Diversity Learning for Zero-Shot Multi-label Classification", ICCV 2021, §3.3,
eqs. 1-5), vectorised over the batch.

Each image ``i`` gets a matrix ``A_i`` (``M x d_w``, the model's output) and each label ``c`` a
word vector ``t_c``; the score of a label is ``r_ic = max_m (A_i t_c)_m`` (§3.3, §4.1
"Implementation details": "we compute r_ij = max(A_i t_j)"). With ``P`` the image's positive
labels and ``N`` (the paper's ``P̄``) its negative ones:

- eq. 1: ``u_jk = max(A n_k) - max(A p_j) = r_k - r_j`` for ``j in P``, ``k in N``;
- eq. 2: ``L_rank = ω_d / ω_n * Σ_j Σ_k log(1 + exp(u_jk))`` with ``ω_n = |P| |N|``
  (the log term is evaluated as a softplus, stable for any ``u``);
- eq. 3: ``ω_d = 1 + Σ_{i=1..d_w} var(P_i)``: the variance, over the image's positive
  labels, of the ``i``-th coordinate of their word vectors, summed over coordinates
  (``P_i``);
- eq. 4: ``L_reg = || Σ_{m=1..d_w} var(A^m) ||_1``: the variance of column ``m`` of ``A``
  across its ``M`` rows, summed over the ``d_w`` columns;
- eq. 5: ``L = 1/N Σ_i [(1 - λ̃) L_rank(A_i) + λ̃ L_reg(A_i)]`` with ``λ = λ̃ |N|``: the
  hyper-parameter is ``λ`` (``reg_weight``, 0.3 in §4.1; 0.1/0.3 in Table 3), so each image
  uses ``λ̃_i = λ / |N_i|`` (clipped to at most 1).

Provenance. The five equations survived our text extraction of the paper; what the text
leaves open is settled here by the official code (Alibaba-MIIL/ZS_SDL @769fe4f,
``src/loss_functions/SDL_loss.py``), named per point:

- ``var`` in eqs. 3 and 4 is the unbiased (``n - 1``) variance (official: ``torch.var``
  defaults); with one positive label ``ω_d = 1`` (official ``calc_diversity``: ``sig = 0``),
  and with one row (``M = 1``) ``L_reg = 0`` (the variance of one value; the official code
  would give NaN there);
- eq. 4's per-column variance runs over the rows of ``A`` (official ``var_regularization``:
  ``torch.var(x_i, dim=1)`` on the ``d_w x M`` view), its L1 norm is the sum of the
  (non-negative) variances;
- ``ω_d`` uses the same (ℓ2-normalised, §4.1) word vectors that score the labels (official:
  the ``seen_wordvec`` of ``train.py``); it carries no gradient.

Where this loss departs from the official code, on purpose:

- normalisation follows the paper: ``ω_n = |P||N|`` (eq. 2) and ``(1 - λ̃)``/``λ̃`` with
  ``λ̃ = λ/|N|`` (eq. 5). The official code divides by ``|P|`` only and returns
  ``2[(1 - λ) |N| L_rank + λ L_reg]``, i.e. ``2|N|`` times the paper's image loss up to the
  rank weight ``1 - λ`` instead of ``1 - λ̃``. Under Adam the overall scale is immaterial;
- unknown (masked) entries are neither positive nor negative by default (the suite's rule:
  a masked label never pushes a score). The official code treats unknown labels as
  negatives (``dot_prod_neg = ... (1 - y[i]).bool()``, "unknown are treated as negatives");
  ``unknown_as_negative=True`` does the same (the Open Images configs use it: most of an
  Open Images image's 7,186 labels are unverified);
- an image with no (known) positive, or no negative, has no pair to rank and contributes
  nothing: it is left out of the sum and of the mean (the official code gives NaN for an
  image with no positive). The mean of eq. 5 runs over the images that contribute; a batch
  without any returns an exact zero that still back-propagates;
- the loss is one vectorised computation: no Python loop over images. The pairwise term
  runs over a flattened list of the batch's (image, positive label) pairs; for each pair
  one row of ``C`` scores gives the softplus of eq. 1-2 against all the image's negatives
  (non-negatives are set to ``-inf``, so they contribute exactly 0 to the loss and
  gradient). A custom autograd function computes the loss (torch's stable ``softplus``)
  and its gradient with respect to the scores (``sigmoid``) in the same pass, the
  per-image sum of the gradient rows as a segment sum (pairs are sorted by image), in
  chunks of at most ``chunk_elements`` entries, so memory stays bounded for any number
  of positives; nothing ``[pairs, C]``-sized is kept for the backward.
  Cost: ``O(Σ|P| · C)``, the same entries the per-image loop touches, with no host
  synchronisation per image (the loop's boolean indexing syncs a GPU once per image).

:func:`sdl_loss_loop` is the straightforward per-image loop of the same formula (the
official code's structure without its NaN); the speed benchmark
(``benchmarks/perf/sdl_loss.py``) and the tests compare the two.
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import nn

__all__ = ["SDLLoss", "sdl_scores", "sdl_loss_loop", "RowReduce"]

RowReduce = Literal["max", "l2"]


def sdl_scores(matrices: torch.Tensor, vectors: torch.Tensor, reduce: RowReduce = "max") -> torch.Tensor:
    """``r_ic = max_m (A_i t_c)_m`` (§4.1 inference; eq. 1's ``max(A t)``), ``[B, C]``.

    One matrix product ``[B*M, d] @ [d, C]`` then a max over the ``M`` rows. ``reduce="l2"``
    gives ``||A_i t_c||_2`` instead: the paper's multi-direction baseline (§4.1 "Baseline",
    Table 3 column "Base.", after Yeh & Li [55]).
    """
    if matrices.dim() != 3:
        raise ValueError(f"matrices must be [B, M, d], got {list(matrices.shape)}")
    b, m, d = matrices.shape
    if vectors.dim() != 2 or vectors.shape[1] != d:
        raise ValueError(f"vectors must be [C, {d}], got {list(vectors.shape)}")
    products = (matrices.reshape(b * m, d) @ vectors.to(matrices.dtype).t()).reshape(b, m, -1)
    if reduce == "max":
        return products.max(dim=1).values  # backward: one scatter (amax's compares every entry)
    if reduce == "l2":
        return torch.linalg.vector_norm(products, dim=1)
    raise ValueError(f"unknown row reduction {reduce!r}: use max or l2")


def _masks(target: torch.Tensor, mask: torch.Tensor | None, unknown_as_negative: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Positive and negative indicators ``[B, C]`` (bool)."""
    positive = target > 0.5
    negative = ~positive
    if mask is not None:
        mask = mask.to(torch.bool)
        positive = positive & mask
        negative = negative if unknown_as_negative else negative & mask
    return positive, negative


def _diversity_weight(vectors: torch.Tensor, pair_img: torch.Tensor, pair_lab: torch.Tensor,
                      n_pos: torch.Tensor) -> torch.Tensor:
    """Eq. 3, ``ω_d = 1 + Σ_i var(P_i)`` per image (unbiased variance; 0 for one positive),
    from the flattened (image, positive) pairs, sorted by image and ``n_pos`` a row: a
    two-pass mean/deviation in O(Σ|P| d) with segment sums."""
    v = vectors.detach().to(torch.float32)
    pos_vecs = v.index_select(0, pair_lab)  # [T, d]
    lengths = n_pos.to(torch.long)
    sums = torch.segment_reduce(pos_vecs, "sum", lengths=lengths, axis=0, unsafe=True)  # [B, d]
    means = sums / lengths.clamp_min(1).to(v.dtype)[:, None]
    dev2 = (pos_vecs - means.index_select(0, pair_img)).square_().sum(dim=1)  # [T]
    ss = torch.segment_reduce(dev2, "sum", lengths=lengths, axis=0, unsafe=True)  # [B]
    return 1.0 + torch.where(lengths > 1, ss / (lengths - 1).clamp_min(1).to(v.dtype), torch.zeros_like(ss))


def _row_variance(matrices: torch.Tensor) -> torch.Tensor:
    """Eq. 4, ``Σ_m var(A^m)`` per image: the unbiased variance of each column across the
    ``M`` rows, summed over columns; 0 when ``M = 1``."""
    m = matrices.shape[1]
    if m < 2:
        return matrices.new_zeros(matrices.shape[0])
    centred = matrices - matrices.mean(dim=1, keepdim=True)
    return centred.square().sum(dim=(1, 2)) / (m - 1)


class _PairwiseSoftplus(torch.autograd.Function):
    """``Σ_t w_t Σ_{k in N_i} softplus(s[i, k] - s[i, j])`` over the pairs ``t = (i, j)``
    (image, positive label), with the gradient with respect to ``s`` computed in the same
    pass. Non-negative entries are set to ``-inf`` in a copy of ``s`` (``softplus(-inf) = 0``
    and ``sigmoid(-inf) = 0``: they add exactly nothing)."""

    @staticmethod
    def forward(ctx, scores: torch.Tensor, negative: torch.Tensor, pair_img: torch.Tensor,
                pair_lab: torch.Tensor, pair_w: torch.Tensor, chunk_elements: int) -> torch.Tensor:
        b, c = scores.shape
        step = max(1, int(chunk_elements) // max(c, 1))
        need_grad = ctx.needs_input_grad[0]
        neg_scores = scores.masked_fill(~negative, float("-inf"))
        pos_scores = scores[pair_img, pair_lab]  # r_j of each pair
        grad = torch.zeros_like(scores) if need_grad else None
        grad_pos = torch.empty_like(pos_scores) if need_grad else None
        total = scores.new_zeros(())
        for start in range(0, pair_img.shape[0], step):
            stop = min(start + step, pair_img.shape[0])
            img, w = pair_img[start:stop], pair_w[start:stop]
            u = neg_scores.index_select(0, img)  # [t, C]: r_k for every k (-inf off N)
            u.sub_(pos_scores[start:stop, None])  # eq. 1: u_jk = r_k - r_j
            total += torch.nn.functional.softplus(u).sum(dim=1) @ w  # eq. 2 (weighted)
            if not need_grad:
                continue
            u.sigmoid_().mul_(w[:, None])  # w * d softplus(u)/du
            # d/dr_k: the sum over each image's pairs; the pairs are sorted by image, so a
            # segment sum (torch's index_add_ is ~50x slower on 2 CPU threads)
            lengths = torch.bincount(img, minlength=b)
            grad.add_(torch.segment_reduce(u, "sum", lengths=lengths, axis=0, unsafe=True))
            grad_pos[start:stop] = u.sum(dim=1)
        if need_grad:
            grad[pair_img, pair_lab] -= grad_pos  # d/dr_j (pairs are unique)
            ctx.save_for_backward(grad)
        return total

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (grad,) = ctx.saved_tensors
        return grad * grad_out, None, None, None, None, None


class SDLLoss(nn.Module):
    """SDL's loss (§3.3, eqs. 1-5; the module docstring has every construction choice).

    Args:
        reg_weight: ``λ`` of eq. 5 (``λ = λ̃ |P̄|``): 0.3 in §4.1, 0.1 or 0.3 in Table 3;
            0 switches the regulariser off (Fast0Tag, Table 3 columns a and b).
        use_sdw: multiply each image's rank loss by ``ω_d`` (eq. 3, "SDW"); False is
            ``ω_d = 1`` (Fast0Tag, Table 3 "Base." and column f).
        unknown_as_negative: count unknown (masked) labels as negatives, as the official
            code does; False (default) leaves them out of the loss.
        chunk_elements: at most this many pair x label entries are held at once.

    ``forward(scores [B, C], target [B, C], mask [B, C] | None, matrices [B, M, d] | None,
    vectors [C, d] | None)``: ``scores`` are ``r = max(A t)`` (:func:`sdl_scores`) of the same
    ``vectors``; ``matrices`` (``A``) feed the regulariser and ``vectors`` the diversity weight.
    """

    def __init__(self, reg_weight: float = 0.3, use_sdw: bool = True, unknown_as_negative: bool = False,
                 chunk_elements: int = 1 << 22) -> None:
        super().__init__()
        if reg_weight < 0:
            raise ValueError(f"reg_weight must be >= 0, got {reg_weight}")
        if chunk_elements < 1:
            raise ValueError(f"chunk_elements must be >= 1, got {chunk_elements}")
        self.reg_weight = float(reg_weight)
        self.use_sdw = bool(use_sdw)
        self.unknown_as_negative = bool(unknown_as_negative)
        self.chunk_elements = int(chunk_elements)

    def extra_repr(self) -> str:
        return (f"reg_weight={self.reg_weight}, use_sdw={self.use_sdw}, "
                f"unknown_as_negative={self.unknown_as_negative}")

    def forward(self, scores: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
                matrices: torch.Tensor | None = None, vectors: torch.Tensor | None = None) -> torch.Tensor:
        if scores.dim() != 2 or target.shape != scores.shape:
            raise ValueError(f"scores and target must both be [B, C], got {list(scores.shape)} and {list(target.shape)}")
        if mask is not None and mask.shape != scores.shape:
            raise ValueError(f"mask must be {list(scores.shape)}, got {list(mask.shape)}")
        if self.use_sdw and vectors is None:
            raise ValueError("use_sdw needs the label vectors (eq. 3)")
        if vectors is not None and vectors.shape[0] != scores.shape[1]:
            raise ValueError(f"{vectors.shape[0]} label vectors for {scores.shape[1]} scores")
        use_reg = self.reg_weight > 0 and matrices is not None
        if self.reg_weight > 0 and matrices is None:
            raise ValueError("reg_weight > 0 needs the matrices A (eq. 4)")
        s = scores.float()
        positive, negative = _masks(target, mask, self.unknown_as_negative)
        n_pos = positive.sum(dim=1)
        n_neg = negative.sum(dim=1)
        valid = (n_pos > 0) & (n_neg > 0)
        n_valid = int(valid.sum())
        if n_valid == 0:  # nothing to rank: an exact zero that still back-propagates
            return s.sum() * 0.0 + (matrices.sum() * 0.0 if matrices is not None else 0.0)
        pair_img, pair_lab = (positive & valid[:, None]).nonzero(as_tuple=True)  # sorted by image
        n_pos_f = n_pos.to(s.dtype)
        n_neg_f = n_neg.clamp_min(1).to(s.dtype)
        lam_tilde = (self.reg_weight / n_neg_f).clamp(max=1.0)  # eq. 5: λ̃ = λ / |P̄|
        omega_d = (_diversity_weight(vectors, pair_img, pair_lab, n_pos * valid) if self.use_sdw
                   else torch.ones_like(n_pos_f))
        # each pair of image i carries (1 - λ̃_i) ω_d,i / (|P_i||P̄_i|) / N_valid (eqs. 2, 5)
        image_w = (1.0 - lam_tilde) * omega_d / (n_pos_f.clamp_min(1) * n_neg_f) / n_valid
        loss = _PairwiseSoftplus.apply(s, negative, pair_img, pair_lab, image_w.index_select(0, pair_img),
                                       self.chunk_elements)
        if use_reg:
            reg = _row_variance(matrices.float())  # eq. 4
            loss = loss + (lam_tilde * reg * valid).sum() / n_valid  # eq. 5
        return loss


def sdl_loss_loop(matrices: torch.Tensor, vectors: torch.Tensor, target: torch.Tensor,
                  mask: torch.Tensor | None = None, reg_weight: float = 0.3, use_sdw: bool = True,
                  unknown_as_negative: bool = False, reduce: RowReduce = "max") -> torch.Tensor:
    """The same loss as :class:`SDLLoss` (from ``A``, not from the scores), written the
    straightforward way: batched scores, then a Python loop over the images, one
    ``|P| x |N|`` block each (the official code's structure). The reference of the tests
    and the baseline of ``benchmarks/perf/sdl_loss.py``; not for training."""
    scores = sdl_scores(matrices, vectors, reduce).float()
    positive, negative = _masks(target, mask, unknown_as_negative)
    per_image = []
    for i in range(scores.shape[0]):
        pos, neg = scores[i][positive[i]], scores[i][negative[i]]
        if pos.numel() == 0 or neg.numel() == 0:
            continue
        u = neg[None, :] - pos[:, None]  # eq. 1
        rank = torch.nn.functional.softplus(u).sum() / (pos.numel() * neg.numel())  # eq. 2
        if use_sdw:
            rel = vectors[positive[i]].float()
            rank = rank * (1.0 + (rel.var(dim=0).sum() if rel.shape[0] > 1 else 0.0))  # eq. 3
        lam_tilde = min(reg_weight / neg.numel(), 1.0)  # eq. 5
        loss_i = (1.0 - lam_tilde) * rank
        if reg_weight > 0 and matrices.shape[1] > 1:
            loss_i = loss_i + lam_tilde * matrices[i].float().var(dim=0).sum()  # eq. 4
        per_image.append(loss_i)
    if not per_image:
        return scores.sum() * 0.0
    return torch.stack(per_image).mean()
