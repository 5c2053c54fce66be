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
  one); an all-to-all sends each rank the columns of its shard from every rank's rows, so
  rank ``r`` ends up holding ``[N, C_r]`` and runs the same per-class computation as one
  process (:func:`~fashionbench.metrics.functional.average_precision_and_pr_auc`). The
  ``[C_r]`` results are gathered (``all_gather``) in class order.

The all-to-all goes in rounds of about ``exchange_elements`` entries per rank
(``all_to_all_single``, which gloo and NCCL both support, with uneven splits), and the
received columns are written straight into the shard, so apart from its own rows (which
it holds anyway) a rank holds only its shard: ``N × C_r`` scores plus one byte per entry
(target bit and known bit packed), about 5/6 of its share of the evaluator's state, and
work buffers of about ``chunk_elements``. Every rank ends with the same dict, equal to
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

#: Entries of ``[n, C]`` a rank sends per all-to-all round (~40 MB of float32 scores + codes).
DEFAULT_EXCHANGE_ELEMENTS = 1 << 23

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


def _rows(parts: Sequence[Tensor], starts: Sequence[int], start: int, stop: int) -> Tensor:
    """Rows ``[start, stop)`` of the virtual concatenation of ``parts`` (copies only those rows)."""
    pieces = []
    for part, offset in zip(parts, starts):
        lo, hi = max(start, offset), min(stop, offset + part.shape[0])
        if lo < hi:
            pieces.append(part[lo - offset : hi - offset])
    return pieces[0] if len(pieces) == 1 else torch.cat(pieces)


def _pack(targets: Tensor, mask: Tensor) -> Tensor:
    """One uint8 per entry: bit 0 = positive, bit 1 = known."""
    code = (targets if targets.dtype == torch.bool else targets != 0).to(torch.uint8)
    code |= mask.to(torch.uint8) << 1
    return code


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
) -> dict[str, Any]:
    """:func:`~fashionbench.metrics.functional.multilabel_metrics` over every rank's rows.

    A collective: every rank of ``group`` (default: the world) calls it with its own rows,
    given as lists of ``[n_i, C]`` pieces (the evaluator's list states, not concatenated):
    ``scores`` float, ``targets`` bool (or {0, 1}), ``mask`` bool (True = known). Returns the
    same dict on every rank. ``stats``, when given, is filled with what this rank held:
    ``rank``, ``world_size``, ``rows_local``, ``rows_total``, ``classes`` ``[start, stop)``,
    ``shard_entries`` (``rows_total × its classes``), ``rounds`` of the all-to-all.
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
    parts = [(s, t, m) for s, t, m in zip(scores, targets, mask) if s.shape[0] > 0]
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
    for s, t, m in parts:
        got = _count_pass(s.to(dtype), t, m, thr, ks, True, chunk_elements)
        flat = [*got["plain"]]
        for k in ks:
            knc, knp, hits = got[k]
            flat += [knc, knp, hits.reshape(1)]
        counts += torch.cat(flat)
    dist.all_reduce(counts, op=dist.ReduceOp.SUM, group=group)

    # 3. all-to-all: this rank receives every rank's rows of its classes, class-major
    shards = class_shards(c, world)
    c0, c1 = shards[rank]
    w = c1 - c0
    shard_scores = torch.empty((w, n_total), dtype=dtype, device=device)
    shard_codes = torch.empty((w, n_total), dtype=torch.uint8, device=device)
    step = max(1, exchange_elements // max(c, 1))
    rounds = math.ceil(max(rows) / step) if n_total else 0
    row_offsets = [sum(rows[:s]) for s in range(world)]
    starts, offset = [], 0
    for s_, _, _ in parts:
        starts.append(offset)
        offset += s_.shape[0]
    for r in range(rounds):
        lo, hi = r * step, min((r + 1) * step, n_local)
        n_send = max(0, hi - lo)
        if n_send:
            block_s = _rows([p[0] for p in parts], starts, lo, hi).to(dtype)
            block_c = _pack(_rows([p[1] for p in parts], starts, lo, hi), _rows([p[2] for p in parts], starts, lo, hi))
            send_s = torch.cat([block_s[:, a:b].reshape(-1) for a, b in shards])
            send_c = torch.cat([block_c[:, a:b].reshape(-1) for a, b in shards])
            del block_s, block_c
        else:
            send_s = torch.empty(0, dtype=dtype, device=device)
            send_c = torch.empty(0, dtype=torch.uint8, device=device)
        in_splits = [n_send * (b - a) for a, b in shards]
        got_rows = [max(0, min(step, rows[s] - lo)) for s in range(world)]
        out_splits = [n * w for n in got_rows]
        recv_s = torch.empty(sum(out_splits), dtype=dtype, device=device)
        recv_c = torch.empty(sum(out_splits), dtype=torch.uint8, device=device)
        dist.all_to_all_single(recv_s, send_s, out_splits, in_splits, group=group)
        dist.all_to_all_single(recv_c, send_c, out_splits, in_splits, group=group)
        del send_s, send_c
        at = 0
        for s in range(world):
            n = got_rows[s]
            if n and w:
                col = row_offsets[s] + lo
                shard_scores[:, col : col + n] = recv_s[at : at + n * w].view(n, w).T
                shard_codes[:, col : col + n] = recv_c[at : at + n * w].view(n, w).T
            at += n * w
        del recv_s, recv_c

    # 4. AP and PR-AUC of this rank's classes, a chunk of classes at a time
    ap_local = torch.full((w,), torch.nan, dtype=torch.float64, device=device)
    auc_local = ap_local.clone()
    if n_total and w:
        per = max(1, chunk_elements // n_total)
        for a in range(0, w, per):
            b = min(a + per, w)
            code_t = shard_codes[a:b]
            positive = (code_t & 1).view(torch.bool)
            known = (code_t >> 1).view(torch.bool)
            ap_local[a:b], auc_local[a:b] = average_precision_and_pr_auc(
                shard_scores[a:b].T, positive.T, known.T, chunk_elements=chunk_elements)
            del code_t, positive, known
    del shard_scores, shard_codes

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
                     shard_entries=w * n_total, rounds=rounds)

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
