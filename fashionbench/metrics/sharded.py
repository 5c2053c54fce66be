"""Exact multi-label metrics under ``torch.distributed``, sharded by class.

Gathering every rank's dense ``[N, C]`` scores, targets and mask onto every rank (what a
torchmetrics list state with ``dist_reduce_fx="cat"`` does) costs each rank the whole
matrix: about 5.7 GB for the Open Images test set (125,456 × 7,586: float32 scores and
bool targets and mask), plus the gather's own buffers. The metrics of ``specs/metrics.md``
split into two kinds, and neither needs that:

- **Counts** (``CP … OF1``, their ``@K`` variants, ``P@K``/``R@K``/``F1@K``): per-class
  sums over images of per-image decisions. ``score >= threshold`` looks at one entry and
  an image's top-K looks at one row, so each rank counts its own rows (its images, all
  their classes, before any exchange) and the integer counts are summed
  (``all_reduce``). Exact: integers.
- **Ranking** (per-class AP and PR-AUC): a class needs every image's entry, but only its
  own column. The classes are split into ``W`` contiguous shards (sizes differ by at most
  one), rank ``r`` owning ``C_r`` of them. An all-to-all sends each rank the columns of its
  shard from every rank's rows, and the rank runs the same per-class computation as one
  process (:func:`~fashionbench.metrics.functional.average_precision_and_pr_auc`) on them.
  The ``[C_r]`` results are gathered (``all_gather``) in class order.

The all-to-all goes in rounds (``all_to_all_single``, which gloo and NCCL both support,
with uneven splits): in round ``j`` every rank sends each rank ``r`` all its rows of the
``j``-th block of ``r``'s classes (``exchange_elements / N`` classes) and receives every
rank's rows of its own ``j``-th block, ranks that block and drops it. Besides its own rows
(the evaluator's state, which it holds anyway) a rank holds only one block: ``N`` × the
block's classes, float32 scores plus one byte per entry (target and known bits packed),
about ``exchange_elements`` entries, and the ranking's work buffers of about
``chunk_elements``. The counting happens on the rank's own rows before the exchange, and
blocks of all ranks are ranked at the same time. Before the exchange, runs of small
per-batch pieces are concatenated (in place, ~16 MB at a time) so each round costs a few
Python steps.

Every rank ends with the same dict, equal to
:func:`~fashionbench.metrics.functional.multilabel_metrics` on all rows in one process:
integer counts are exact, and each class's AP and PR-AUC are computed by the same code on
the same values (image order does not change them: ties are grouped by value).

Used by :class:`~fashionbench.metrics.classes.MultilabelEvaluator` under DDP (its
``sharded=True`` default).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from functools import reduce
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from fashionbench.metrics.functional import (
    DEFAULT_CHUNK_ELEMENTS,
    EMPTY_CLASS_CONVENTIONS,
    PER_CLASS_KEYS,
    _count_pass,
    _counts_to_metrics,
    _json_number,
    _tagging_from_counts,
    _validate_ks,
    average_precision_and_pr_auc,
    mean_average_precision,
)

__all__ = ["class_shards", "sharded_multilabel_metrics", "DEFAULT_EXCHANGE_ELEMENTS"]

#: Entries a rank receives per all-to-all round (~20 MB of float32 scores + 1-byte codes;
#: about as many sent).
DEFAULT_EXCHANGE_ELEMENTS = 1 << 22

#: Pieces are concatenated up to about this many bytes of scores before the exchange.
COMPACT_BYTES = 16 << 20

#: Score dtypes the ranks agree on by index (the rest are promoted as ``torch.cat`` would).
_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.uint8, torch.int8,
           torch.int16, torch.int32, torch.int64, torch.bool)


def class_shards(num_classes: int, world_size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of each rank's classes: contiguous, sizes differing by at most one."""
    base, extra = divmod(num_classes, world_size)
    bounds, start = [], 0
    for rank in range(world_size):
        stop = start + base + (1 if rank < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def _compact_(lists: Sequence[list], max_bytes: int) -> None:
    """Concatenate runs of consecutive *small* pieces (under ``max_bytes / 4`` of the first
    list each; the same rows in every list) into pieces of about ``max_bytes``, in place,
    freeing the small ones as it goes. Pieces of a few rows (a batch of 32 images is ~1 MB
    of Open Images scores) would otherwise cost the exchange Python steps per piece and
    round; larger pieces are left as they are."""
    first = lists[0]
    if len(first) < 2:
        return
    groups, group, size = [], [], 0
    for index, piece in enumerate(first):
        nbytes = piece.numel() * piece.element_size()
        if nbytes >= max_bytes // 4:  # a large piece stays alone
            if group:
                groups.append(group)
            groups.append([index])
            group, size = [], 0
            continue
        group.append(index)
        size += nbytes
        if size >= max_bytes:
            groups.append(group)
            group, size = [], 0
    if group:
        groups.append(group)
    if len(groups) == len(first):
        return
    for pieces in lists:
        pieces.reverse()  # pop() from the end = from the front of the original order
        out = []
        for group in groups:
            taken = [pieces.pop() for _ in group]
            out.append(taken[0] if len(taken) == 1 else torch.cat(taken))
            del taken
        pieces.extend(out)


def _pack_into(out: Tensor, targets: Tensor, mask: Tensor) -> None:
    """``out`` (uint8) = bit 0 positive, bit 1 known, for a (strided) block of bool entries."""
    out.copy_(targets.view(torch.uint8))
    out.add_(mask.view(torch.uint8), alpha=2)


def sharded_multilabel_metrics(
    scores: Sequence[Tensor],
    targets: Sequence[Tensor],
    mask: Sequence[Tensor],
    *,
    num_labels: int,
    ks: Iterable[int] = (3,),
    threshold: float = 0.5,
    thresholds: Tensor | Sequence[float] | None = None,
    empty_class: str = "exclude",
    group: Any = None,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
    exchange_elements: int = DEFAULT_EXCHANGE_ELEMENTS,
    stats: dict | None = None,
    device: torch.device | str | None = None,
    compact: bool = True,
) -> dict[str, Any]:
    """:func:`~fashionbench.metrics.functional.multilabel_metrics` over every rank's rows.

    A collective: every rank of ``group`` (default: the world) calls it with its own rows,
    given as lists of ``[n_i, C]`` pieces (the evaluator's list states, not concatenated):
    ``scores`` float, ``targets`` bool (or {0, 1}), ``mask`` bool (True = known). Returns the
    same dict on every rank. ``stats``, when given, is filled with what this rank held:
    ``rank``, ``world_size``, ``rows_local``, ``rows_total``, ``classes`` ``[start, stop)``,
    ``shard_entries`` (``rows_total × its classes``), ``rounds`` of the all-to-all.
    ``compact``: concatenate runs of small pieces of the given lists in place (same rows,
    same order; see :func:`_compact_`) before the exchange.
    ``device``: where the collectives' tensors live when this rank has no piece (default:
    the pieces' device, else CPU); NCCL needs the rank's CUDA device.
    """
    if empty_class not in EMPTY_CLASS_CONVENTIONS:
        raise ValueError(f"empty_class must be one of {EMPTY_CLASS_CONVENTIONS}, got {empty_class!r}")
    if not (len(scores) == len(targets) == len(mask)):
        raise ValueError("scores, targets and mask must have as many pieces")
    ks = list(dict.fromkeys(_validate_ks(ks)))
    c = int(num_labels)
    world, rank = dist.get_world_size(group), dist.get_rank(group)
    if device is None:
        device = scores[0].device if len(scores) else torch.device("cpu")
    device = torch.device(device)
    if compact and all(isinstance(x, list) for x in (scores, targets, mask)):
        _compact_((scores, targets, mask), COMPACT_BYTES)
    parts = [(s, t if t.dtype == torch.bool else t != 0, m.bool())
             for s, t, m in zip(scores, targets, mask) if s.shape[0] > 0]
    for s, t, m in parts:
        if s.dim() != 2 or s.shape[1] != c or t.shape != s.shape or m.shape != s.shape:
            raise ValueError(f"every piece must be [n, {c}], got {tuple(s.shape)}, {tuple(t.shape)}, {tuple(m.shape)}")

    # 1. rows and score dtype of every rank (the dtype torch.cat of all pieces would give)
    local_dtype = reduce(torch.promote_types, [s.dtype for s, _, _ in parts]) if parts else None
    code = _DTYPES.index(local_dtype) if local_dtype in _DTYPES else -1
    if local_dtype is not None and code < 0:
        raise ValueError(f"unsupported score dtype {local_dtype}")
    n_local = sum(int(s.shape[0]) for s, _, _ in parts)
    mine = torch.tensor([n_local, code], dtype=torch.int64, device=device)
    everyone = [torch.empty_like(mine) for _ in range(world)]
    dist.all_gather(everyone, mine, group=group)
    rows = [int(x[0]) for x in everyone]
    dtypes = [_DTYPES[int(x[1])] for x in everyone if int(x[1]) >= 0]
    dtype = reduce(torch.promote_types, dtypes) if dtypes else torch.float32
    n_total = sum(rows)

    # 2. counts on this rank's own rows (an image's top-K needs all its classes: here they are)
    thr = threshold if thresholds is None else thresholds
    width = 3 * c + len(ks) * (2 * c + 1)
    counts = torch.zeros(width, dtype=torch.int64, device=device)
    step = max(1, chunk_elements // max(c, 1))
    for s, t, m in parts:
        for lo in range(0, s.shape[0], s.shape[0] if s.dtype == dtype else step):  # cast a chunk at a time
            rows_ = slice(lo, lo + (s.shape[0] if s.dtype == dtype else step))
            got = _count_pass(s[rows_].to(dtype), t[rows_], m[rows_], thr, ks, True, chunk_elements)
            flat = [*got["plain"]]
            for k in ks:
                knc, knp, hits = got[k]
                flat += [knc, knp, hits.reshape(1)]
            counts += torch.cat(flat)
    dist.all_reduce(counts, op=dist.ReduceOp.SUM, group=group)

    # 3. rounds of all-to-all: in round j every rank sends each rank r all its rows of r's
    #    j-th block of classes, receives every rank's rows of its own j-th block, ranks it
    #    and drops it; a rank never holds more than a block of its shard
    shards = class_shards(c, world)
    c0, c1 = shards[rank]
    w = c1 - c0
    ap_local = torch.full((w,), torch.nan, dtype=torch.float64, device=device)
    auc_local = ap_local.clone()
    block = max(1, exchange_elements // max(n_total, 1))  # classes per rank and round
    rank_chunk = max(1, chunk_elements // max(n_total, 1))  # classes per ranking call
    rounds = max(math.ceil((b - a) / block) for a, b in shards) if n_total else 0
    row_offsets = [sum(rows[:s_]) for s_ in range(world)]
    for j in range(rounds):
        sel = [(min(a + j * block, b), min(a + (j + 1) * block, b)) for a, b in shards]
        in_splits = [n_local * (hi - lo) for lo, hi in sel]
        send_s = torch.empty(sum(in_splits), dtype=dtype, device=device)
        send_c = torch.empty(sum(in_splits), dtype=torch.uint8, device=device)
        at = 0
        for lo, hi in sel:
            if hi == lo:
                continue
            for s, t, m in parts:
                n = s.shape[0] * (hi - lo)
                send_s[at : at + n].view(-1, hi - lo).copy_(s[:, lo:hi])
                _pack_into(send_c[at : at + n].view(-1, hi - lo), t[:, lo:hi], m[:, lo:hi])
                at += n
        lo_me, hi_me = sel[rank]
        wj = hi_me - lo_me
        out_splits = [n * wj for n in rows]
        recv_s = torch.empty(sum(out_splits), dtype=dtype, device=device)
        recv_c = torch.empty(sum(out_splits), dtype=torch.uint8, device=device)
        dist.all_to_all_single(recv_s, send_s, out_splits, in_splits, group=group)
        dist.all_to_all_single(recv_c, send_c, out_splits, in_splits, group=group)
        del send_s, send_c
        if not wj:
            continue
        block_s = torch.empty((wj, n_total), dtype=dtype, device=device)  # class-major, as the ranking reads it
        block_c = torch.empty((wj, n_total), dtype=torch.uint8, device=device)
        at = 0
        for s_ in range(world):
            n = rows[s_]
            block_s[:, row_offsets[s_] : row_offsets[s_] + n] = recv_s[at : at + n * wj].view(n, wj).T
            block_c[:, row_offsets[s_] : row_offsets[s_] + n] = recv_c[at : at + n * wj].view(n, wj).T
            at += n * wj
        del recv_s, recv_c
        # 4. AP and PR-AUC of this block of classes, as one process computes them
        for a in range(0, wj, rank_chunk):
            b = min(a + rank_chunk, wj)
            positive = (block_c[a:b] & 1).view(torch.bool)
            known = (block_c[a:b] >> 1).view(torch.bool)
            where = slice(lo_me - c0 + a, lo_me - c0 + b)
            ap_local[where], auc_local[where] = average_precision_and_pr_auc(
                block_s[a:b].T, positive.T, known.T, chunk_elements=chunk_elements)
            del positive, known
        del block_s, block_c

    # 5. every rank's classes, in class order
    w_max = max(b - a for a, b in shards)
    padded = torch.full((2, w_max), torch.nan, dtype=torch.float64, device=device)
    padded[0, :w], padded[1, :w] = ap_local, auc_local
    gathered = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(gathered, padded, group=group)
    ap = torch.cat([g[0, : b - a] for g, (a, b) in zip(gathered, shards)])
    auc = torch.cat([g[1, : b - a] for g, (a, b) in zip(gathered, shards)])

    if stats is not None:
        stats.update(rank=rank, world_size=world, rows_local=n_local, rows_total=n_total, classes=[c0, c1],
                     shard_entries=w * n_total, rounds=rounds, block_entries=min(block, w) * n_total)

    # 6. the dict of multilabel_metrics, assembled in the same order from the same pieces
    nc, np_, ng = counts[:c], counts[c : 2 * c], counts[2 * c : 3 * c]
    result: dict = {
        "mAP": mean_average_precision(ap, empty_class),
        "AP": [_json_number(v) for v in ap.tolist()],
        "PR-AUC": mean_average_precision(auc, "exclude"),
    }
    result.update(_counts_to_metrics(nc, np_, ng))
    result["F1-micro"] = result["OF1"]
    at = 3 * c
    for k in ks:
        knc, knp, hits = counts[at : at + c], counts[at + c : at + 2 * c], counts[at + 2 * c]
        at += 2 * c + 1
        result.update(_counts_to_metrics(knc, knp, ng, suffix=f"@{k}"))
        result.update(_tagging_from_counts(hits, n_total, k, ng.sum()))
    result["PR-AUC_per_class"] = [_json_number(v) for v in auc.tolist()]
    return {key: value if key in PER_CLASS_KEYS else _json_number(value) for key, value in result.items()}
