"""Pure tensor maths for the metrics of ``specs/metrics.md`` (no state, no I/O).

Inputs everywhere: ``scores`` ``[N, C]`` float (higher = more likely), ``targets``
``[N, C]`` in {0, 1} (any dtype; non-zero = positive), ``mask`` ``[N, C]`` bool or
``None`` (True = the label is known; ``None`` = all known). Scores must not be NaN
(``fashionbench score`` rejects NaN/inf before calling this; ±inf are ranked correctly).

Everything is vectorised over classes and images. Work is done in chunks of classes
(ranking metrics) or of images (threshold and top-k metrics) of about ``chunk_elements``
entries, so peak extra memory stays bounded whatever ``N·C`` is. Final ratios are
float64; undefined values (a mean over nothing, x/0 other than the spec's max(·, 1)
and F1 cases) are NaN in tensors and ``None`` in the dicts of :func:`multilabel_metrics`.

Ranking method (metrics.md "Ranking metrics"). Per class the known scores are sorted
once, descending, as int64 keys: the float32 bit pattern made order-preserving, with the
target bit packed into the lowest bit, and masked entries replaced by a sentinel that
sorts last. Only a value sort is needed (no argsort), which on CPU is numpy's SIMD sort.
(float64 scores have no spare bit: they take an argsort, then dense tie-group ids.)
For a positive at sorted position ``i`` whose tie group spans ``[a, b]``:
``precision(b) = tp(b) / (b + 1)`` and the previous curve point is ``[a-1]`` (or sklearn's
``(recall 0, precision 1)`` when ``a = 0``). Then, with ``npos`` known positives,
``AP = (1/npos) Σ_pos precision(b)`` (sklearn's ``Σ (R_n - R_{n-1}) P_n`` with tied
scores grouped) and ``PR-AUC = (1/npos) Σ_pos (precision(b) + precision(a-1)) / 2``
(sklearn's trapezoidal ``auc(recall, precision)``: only groups holding positives move
recall). ``a``, ``b``, ``tp`` come from ``searchsorted`` on the sorted keys, so the work
after the sort is O(N·C) cheap passes plus O(#positives · log).
"""
from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "average_precision",
    "pr_auc",
    "average_precision_and_pr_auc",
    "mean_average_precision",
    "threshold_counts",
    "threshold_metrics",
    "topk_mask",
    "topk_threshold_counts",
    "topk_threshold_metrics",
    "tagging_metrics",
    "true_class_rank",
    "topk_accuracy",
    "multilabel_metrics",
    "single_label_metrics",
    "EMPTY_CLASS_CONVENTIONS",
    "PER_CLASS_KEYS",
]

#: Keys of :func:`multilabel_metrics` whose value is a per-class list (``None`` = undefined).
PER_CLASS_KEYS = ("AP", "PR-AUC_per_class")

#: Values of ``empty_class`` (metrics.md "mAP"): leave classes without a known positive
#: out of the mean, or count them as AP 0.
EMPTY_CLASS_CONVENTIONS = ("exclude", "zero")

#: Entries of ``[N, C]`` processed at once. The work arrays take ~25-30 bytes per entry
#: (~60 MB peak at the default); larger chunks are not faster on CPU.
DEFAULT_CHUNK_ELEMENTS = 1 << 21

_SENTINEL32 = 1 << 32  # > every packed float32 key; after ``>> 1`` it is 2**31
_ROW_STRIDE32 = 1 << 33  # > span of the unpacked float32 keys [-2**31, 2**31]
_INT64_MAX = torch.iinfo(torch.int64).max

#: Sort CPU tensors with numpy (SIMD sort, releases the GIL): several times faster than
#: ``torch.sort`` on CPU. Other devices always use ``torch.sort``.
NUMPY_SORT_ON_CPU = True


# --------------------------------------------------------------------------- helpers
def _check_shapes(scores: Tensor, targets: Tensor, mask: Tensor | None) -> None:
    if scores.dim() != 2:
        raise ValueError(f"scores must be [N, C], got shape {tuple(scores.shape)}")
    if targets.shape != scores.shape:
        raise ValueError(f"targets shape {tuple(targets.shape)} != scores shape {tuple(scores.shape)}")
    if mask is not None and mask.shape != scores.shape:
        raise ValueError(f"mask shape {tuple(mask.shape)} != scores shape {tuple(scores.shape)}")


def _chunks(total: int, other: int, chunk_elements: int) -> Iterator[slice]:
    """Slices of ``range(total)`` with about ``chunk_elements // other`` items each."""
    step = max(1, chunk_elements // max(other, 1))
    for start in range(0, total, step):
        yield slice(start, min(start + step, total))


def _count(flags: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    """Number of True in a bool tensor (along ``dim``), as int32.

    Sums a uint8 view with an int32 accumulator: on CPU ~30x faster than ``bool.sum()``,
    which accumulates in int64 without SIMD. Exact while a count fits in int32 (chunks do).
    """
    return flags.view(torch.uint8).sum(dim=dim, keepdim=keepdim, dtype=torch.int32)


def _round_up_to(thresholds: Tensor, dtype: torch.dtype) -> Tensor:
    """Smallest ``dtype`` values >= the float64 ``thresholds``: for scores of that dtype,
    ``score >= result`` is exactly ``score >= threshold`` without widening the scores."""
    rounded = thresholds.to(dtype)
    too_low = rounded.to(torch.float64) < thresholds
    return torch.where(too_low, torch.nextafter(rounded, torch.full_like(rounded, torch.inf)), rounded)


def _safe_div(num: Tensor, den: Tensor) -> Tensor:
    """``num / den`` in float64, NaN where ``den == 0``."""
    num = num.to(torch.float64)
    den = den.to(torch.float64)
    return torch.where(den != 0, num / torch.where(den != 0, den, 1.0), torch.nan)


def _f1(p: Tensor, r: Tensor) -> Tensor:
    """Harmonic mean ``2pr/(p+r)``; 0/0 is 0 (metrics.md), NaN stays NaN."""
    s = p + r
    return torch.where(s == 0, torch.zeros_like(s), 2 * p * r / torch.where(s == 0, 1.0, s))


def _validate_ks(ks: Iterable[int]) -> list[int]:
    ks = [int(k) for k in ks]
    if any(k < 1 for k in ks):
        raise ValueError(f"every k must be >= 1, got {ks}")
    return ks


def _thresholds_tensor(thresholds: float | Tensor | Sequence[float], num_classes: int, device) -> Tensor:
    """Scalar or ``[C]`` thresholds as a float64 tensor broadcastable to ``[n, C]``."""
    thr = torch.as_tensor(thresholds, dtype=torch.float64, device=device)
    if thr.dim() == 0:
        return thr
    if thr.shape != (num_classes,):
        raise ValueError(f"thresholds must be a scalar or [C={num_classes}], got shape {tuple(thr.shape)}")
    return thr


# --------------------------------------------------------------------------- ranking
def _sort_rows_(keys: Tensor) -> Tensor:
    """Sort each row of an int64 ``[B, N]`` tensor ascending (in place on CPU)."""
    if keys.device.type != "cpu" or not NUMPY_SORT_ON_CPU:
        return torch.sort(keys, dim=1).values
    array = keys.numpy()
    workers = min(torch.get_num_threads(), keys.shape[0])
    if workers <= 1 or keys.numel() < (1 << 18):
        array.sort(axis=1)
    else:  # numpy's sort releases the GIL: split rows over threads
        bounds = np.linspace(0, keys.shape[0], workers + 1).astype(int)
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda ab: array[ab[0] : ab[1]].sort(axis=1), zip(bounds[:-1], bounds[1:])))
    return keys


def _argsort_rows(keys: Tensor) -> Tensor:
    if keys.device.type != "cpu" or not NUMPY_SORT_ON_CPU:
        return torch.sort(keys, dim=1).indices
    return torch.from_numpy(np.argsort(keys.numpy(), axis=1))


def _sorted_float32_groups(scores_t: Tensor, pos_t: Tensor, known_t: Tensor | None) -> tuple[Tensor, Tensor]:
    """Rows of ``[B, N]`` float32 scores → (group keys, positive flags), both flat ``[B*N]``.

    Sorted by descending score per row, masked entries last; equal group keys = tied
    scores in the same row; keys increase along the flat array (rows are offset).
    """
    rows, n = scores_t.shape
    scores_t += 0.0  # -0.0 -> +0.0: they tie, as in sklearn
    bits = scores_t.view(torch.int32)
    bits ^= (bits >> 31) & 0x7FFFFFFF  # IEEE bits -> signed ints in float order
    bits.bitwise_not_()  # reverse: ascending key = descending score
    keys = bits.to(torch.int64)
    del bits
    keys <<= 1
    _low_byte(keys).bitwise_or_(pos_t.view(torch.uint8))  # target bit; positives sort last in a tie
    if known_t is not None:
        keys.masked_fill_(~known_t, _SENTINEL32)
    keys = _sort_rows_(keys)
    positive = (_low_byte(keys) & 1).view(torch.bool).view(-1)
    keys >>= 1
    keys += torch.arange(rows, device=keys.device, dtype=torch.int64).mul_(_ROW_STRIDE32)[:, None]
    return keys.view(-1), positive


def _low_byte(keys: Tensor) -> Tensor:
    """Strided uint8 view of the least significant byte of each int64 in ``keys``."""
    return keys.view(torch.uint8).view(*keys.shape, 8)[..., 0 if sys.byteorder == "little" else 7]


def _sorted_float64_groups(scores_t: Tensor, pos_t: Tensor, known_t: Tensor | None) -> tuple[Tensor, Tensor]:
    """As :func:`_sorted_float32_groups` for float64 scores (argsort, dense group ids, sort)."""
    rows, n = scores_t.shape
    scores_t += 0.0
    bits = scores_t.view(torch.int64)
    bits ^= (bits >> 63) & _INT64_MAX
    bits.bitwise_not_()
    if known_t is not None:
        bits.masked_fill_(~known_t, _INT64_MAX)
        pos_t = pos_t & known_t
    order = _argsort_rows(bits)
    sorted_keys = torch.gather(bits, 1, order)
    positive = torch.gather(pos_t, 1, order)
    del order, bits
    # dense tie-group ids (< 2**31 per row) leave room for the target bit: sort again so
    # that positives come last in their tie group, as in the float32 path
    keys = torch.ones_like(sorted_keys)
    keys[:, 1:] = sorted_keys[:, 1:] != sorted_keys[:, :-1]
    del sorted_keys
    keys = keys.cumsum_(dim=1)
    keys <<= 1
    keys |= positive
    keys = _sort_rows_(keys)
    positive = (_low_byte(keys) & 1).view(torch.bool).view(-1)
    keys >>= 1
    keys += torch.arange(rows, device=keys.device, dtype=torch.int64).mul_(n + 1)[:, None]
    return keys.view(-1), positive


def _run_bounds(values: Tensor) -> tuple[Tensor, Tensor]:
    """For a sorted 1-D tensor: index of the first and of the last element equal to each element."""
    m = values.numel()
    index = torch.arange(m, device=values.device)
    new_run = torch.ones(m, dtype=torch.bool, device=values.device)
    new_run[1:] = values[1:] != values[:-1]
    first = torch.cummax(torch.where(new_run, index, 0), dim=0).values
    run_end = torch.ones_like(new_run)
    run_end[:-1] = new_run[1:]
    last = torch.cummin(torch.where(run_end, index, m).flip(0), dim=0).values.flip(0)
    return first, last


def _ranking_chunk(scores_t: Tensor, pos_t: Tensor, known_t: Tensor | None) -> tuple[Tensor, Tensor]:
    """AP and PR-AUC of the rows (classes) of one ``[B, N]`` chunk (module docstring)."""
    rows, n = scores_t.shape
    if scores_t.dtype == torch.float32:
        groups, positive = _sorted_float32_groups(scores_t, pos_t, known_t)
    else:
        groups, positive = _sorted_float64_groups(scores_t, pos_t, known_t)
    where = positive.nonzero().squeeze(1)  # flat positions of the known positives, ascending
    row = torch.div(where, n, rounding_mode="floor")
    row_start = row * n
    npos = torch.bincount(row, minlength=rows)
    first_pos = torch.cumsum(npos, 0) - npos  # index in `where` of each row's first positive
    g = groups[where]
    first_in_group, last_in_group = _run_bounds(g)  # indices in `where` of the group's positives
    tp_before = first_in_group - first_pos[row]  # positives in [0, a-1]
    tp_end = last_in_group + 1 - first_pos[row]  # positives in [0, b]
    end = where[last_in_group] - row_start  # b: positives sort last in their tie group
    # a: a group's first positive starts the group unless negatives with its score precede it
    start = where.clone()
    leader = first_in_group == torch.arange(g.numel(), device=g.device)  # first positive of its group
    tie_before = leader & (where > 0) & (groups[(where - 1).clamp(min=0)] == g)
    tied = tie_before.nonzero().squeeze(1)
    start[tied] = torch.searchsorted(groups, g[tied])
    start = start[first_in_group] - row_start
    del groups
    prec_end = tp_end.to(torch.float64) / (end + 1).to(torch.float64)
    prec_before = torch.where(
        start > 0, tp_before.to(torch.float64) / start.clamp(min=1).to(torch.float64), 1.0
    )
    zeros = torch.zeros(rows, dtype=torch.float64, device=scores_t.device)
    ap_sum = zeros.index_add(0, row, prec_end)
    auc_sum = zeros.index_add(0, row, (prec_end + prec_before) * 0.5)
    return _safe_div(ap_sum, npos), _safe_div(auc_sum, npos)


def average_precision_and_pr_auc(
    scores: Tensor, targets: Tensor, mask: Tensor | None = None, *, chunk_elements: int = DEFAULT_CHUNK_ELEMENTS
) -> tuple[Tensor, Tensor]:
    """Per-class AP and PR-AUC ``[C]`` float64 from one sort (metrics.md "Ranking metrics").

    Exactly ``sklearn.metrics.average_precision_score`` and
    ``auc(*precision_recall_curve(...)[1::-1])`` on ``targets[m, c], scores[m, c]`` with
    ``m = mask[:, c]`` (to float rounding); NaN for a class with no known positive.
    float16/bfloat16/float32 scores use the packed-key sort; float64 (and integer)
    scores are ranked at full float64 precision through an argsort.
    """
    _check_shapes(scores, targets, mask)
    n, c = scores.shape
    work_dtype = torch.float32 if scores.dtype in (torch.float16, torch.bfloat16, torch.float32) else torch.float64
    ap = torch.full((c,), torch.nan, dtype=torch.float64, device=scores.device)
    auc = ap.clone()
    if n == 0:
        return ap, auc
    for cols in _chunks(c, n, chunk_elements):
        width = cols.stop - cols.start
        scores_t = torch.empty((width, n), dtype=work_dtype, device=scores.device)
        scores_t.copy_(scores[:, cols].T)
        pos_t = targets[:, cols].T
        pos_t = pos_t.contiguous() if pos_t.dtype == torch.bool else pos_t != 0
        known_t = None if mask is None else mask[:, cols].T.bool()
        ap[cols], auc[cols] = _ranking_chunk(scores_t, pos_t, known_t)
    return ap, auc


def average_precision(
    scores: Tensor, targets: Tensor, mask: Tensor | None = None, *, chunk_elements: int = DEFAULT_CHUNK_ELEMENTS
) -> Tensor:
    """Per-class non-interpolated AP ``[C]`` (sklearn ``average_precision_score``; NaN if no positive)."""
    return average_precision_and_pr_auc(scores, targets, mask, chunk_elements=chunk_elements)[0]


def pr_auc(
    scores: Tensor, targets: Tensor, mask: Tensor | None = None, *, chunk_elements: int = DEFAULT_CHUNK_ELEMENTS
) -> Tensor:
    """Per-class trapezoidal PR-AUC ``[C]`` (sklearn ``auc(recall, precision)``; NaN if no positive)."""
    return average_precision_and_pr_auc(scores, targets, mask, chunk_elements=chunk_elements)[1]


def mean_average_precision(ap: Tensor, empty_class: str = "exclude") -> Tensor:
    """mAP from per-class AP (metrics.md "mAP").

    ``exclude``: mean over classes that have an AP (NaN if none); ``zero``: classes without
    a known positive count as AP 0 (mean over all C).
    """
    if empty_class not in EMPTY_CLASS_CONVENTIONS:
        raise ValueError(f"empty_class must be one of {EMPTY_CLASS_CONVENTIONS}, got {empty_class!r}")
    ap = ap.to(torch.float64)
    if empty_class == "zero":
        return torch.nan_to_num(ap, nan=0.0).mean() if ap.numel() else torch.tensor(torch.nan, dtype=torch.float64)
    return torch.nanmean(ap) if ap.numel() else torch.tensor(torch.nan, dtype=torch.float64)


# --------------------------------------------------------------------------- top-k
def topk_mask(scores: Tensor, k: int) -> Tensor:
    """Bool ``[N, C]``: True for each row's ``k`` highest scores, ties → lower class index.

    A label ranks above another when its score is higher, or equal with a lower index
    (metrics.md "Ties in top-k"). ``k >= C`` selects every label. O(N·C): no full sort.
    """
    (k,) = _validate_ks([k])
    return _topk_masks(scores, [k])[k]


def _topk_masks(scores: Tensor, ks: Sequence[int]) -> dict[int, Tensor]:
    """:func:`topk_mask` for several k from one ``topk`` call."""
    if not ks:
        return {}
    n, c = scores.shape
    kmax = min(max(ks), c)
    values = torch.topk(scores, kmax, dim=1).values if kmax > 0 and n > 0 else None
    out = {}
    for k in ks:
        if k >= c or values is None:
            out[k] = torch.ones_like(scores, dtype=torch.bool)
            continue
        kth = values[:, k - 1 : k]
        above = scores > kth
        room = k - _count(above, dim=1, keepdim=True)  # how many of the ties at the k-th value fit
        tied = scores == kth
        first_tied = torch.cumsum(tied.view(torch.uint8), dim=1, dtype=torch.int32) <= room
        out[k] = above | (tied & first_tied)
    return out


# --------------------------------------------------------------------------- counting
def _count_pass(
    scores: Tensor,
    targets: Tensor,
    mask: Tensor | None,
    thresholds: float | Tensor | Sequence[float],
    ks: Sequence[int],
    with_threshold: bool,
    chunk_elements: int,
) -> dict:
    """One pass over image chunks collecting every count the threshold/top-k metrics need.

    Returns ``{"plain": (Nc, Np, Ng), k: (Nc@k, Np@k, hits@k)}`` (int64; ``[C]`` counts,
    ``hits@k`` a scalar = known positives among the top k over all images).
    """
    _check_shapes(scores, targets, mask)
    n, c = scores.shape
    work_dtype = torch.float64 if scores.dtype == torch.float64 or not scores.is_floating_point() else torch.float32
    thr = _round_up_to(_thresholds_tensor(thresholds, c, scores.device), work_dtype)
    zeros = lambda: torch.zeros(c, dtype=torch.int64, device=scores.device)  # noqa: E731
    nc, np_, ng = zeros(), zeros(), zeros()
    per_k = {k: (zeros(), zeros(), torch.zeros((), dtype=torch.int64, device=scores.device)) for k in ks}
    for rows in _chunks(n, c, chunk_elements):
        s = scores[rows].to(work_dtype)
        known = None if mask is None else mask[rows].bool()
        pos = targets[rows] if targets.dtype == torch.bool else targets[rows] != 0
        if known is not None:
            pos = pos & known
        ng += _count(pos, dim=0)
        above = s >= thr  # exact: thr is rounded up into the scores' dtype
        if with_threshold:
            pred = above if known is None else above & known
            np_ += _count(pred, dim=0)
            nc += _count(pred & pos, dim=0)
        for k, top in _topk_masks(s, ks).items():
            knc, knp, hits = per_k[k]
            hits += _count(top & pos)
            pred = top & above
            if known is not None:
                pred &= known
            knp += _count(pred, dim=0)
            knc += _count(pred & pos, dim=0)
    out: dict = {"plain": (nc, np_, ng)}
    out.update(per_k)
    return out


def _counts_to_metrics(nc: Tensor, np_: Tensor, ng: Tensor, suffix: str = "") -> dict[str, Tensor]:
    """CP, CR, CF1, OP, OR, OF1 from per-class counts (metrics.md "Threshold metrics")."""
    has_pos = ng > 0
    nc_f, np_f, ng_f = (x.to(torch.float64) for x in (nc, np_, ng))
    if has_pos.any():
        cp = (nc_f / np_f.clamp(min=1))[has_pos].mean()
        cr = (nc_f / ng_f.clamp(min=1))[has_pos].mean()
    else:
        cp = cr = torch.tensor(torch.nan, dtype=torch.float64, device=nc.device)
    op = nc_f.sum() / np_f.sum().clamp(min=1)
    orec = _safe_div(nc_f.sum(), ng_f.sum())
    return {
        f"CP{suffix}": cp,
        f"CR{suffix}": cr,
        f"CF1{suffix}": _f1(cp, cr),
        f"OP{suffix}": op,
        f"OR{suffix}": orec,
        f"OF1{suffix}": _f1(op, orec),
    }


def threshold_counts(
    scores: Tensor,
    targets: Tensor,
    mask: Tensor | None = None,
    thresholds: float | Tensor | Sequence[float] = 0.5,
    *,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-class ``(Nc, Np, Ng)`` int64 ``[C]`` with ``score >= threshold`` (scalar or ``[C]``).

    Nc = true positives, Np = predicted positives, Ng = known positives; masked entries
    count nowhere (metrics.md "Threshold metrics").
    """
    return _count_pass(scores, targets, mask, thresholds, (), True, chunk_elements)["plain"]


def threshold_metrics(
    scores: Tensor,
    targets: Tensor,
    mask: Tensor | None = None,
    thresholds: float | Tensor | Sequence[float] = 0.5,
    *,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> dict[str, Tensor]:
    """``CP, CR, CF1, OP, OR, OF1`` (float64 scalars) by ML-GCN's definitions in metrics.md.

    ``CP = mean_c Nc/max(Np,1)``, ``CR = mean_c Nc/Ng`` over classes with ``Ng > 0``;
    ``OP = ΣNc/max(ΣNp,1)``, ``OR = ΣNc/ΣNg``; the F1s are harmonic means (0/0 → 0).
    """
    return _counts_to_metrics(*threshold_counts(scores, targets, mask, thresholds, chunk_elements=chunk_elements))


def topk_threshold_counts(
    scores: Tensor,
    targets: Tensor,
    mask: Tensor | None,
    k: int,
    thresholds: float | Tensor | Sequence[float] = 0.5,
    *,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> tuple[Tensor, Tensor, Tensor]:
    """``(Nc, Np, Ng)`` with predicted = among the image's top ``k`` (over all C labels,
    masked ones included in the ranking, ties → lower index) **and** ``score >= threshold``
    (ML-GCN's ``overall_topk``); masked entries then count nowhere."""
    (k,) = _validate_ks([k])
    counts = _count_pass(scores, targets, mask, thresholds, (k,), False, chunk_elements)
    nc, np_, _ = counts[k]
    return nc, np_, counts["plain"][2]


def topk_threshold_metrics(
    scores: Tensor,
    targets: Tensor,
    mask: Tensor | None,
    k: int,
    thresholds: float | Tensor | Sequence[float] = 0.5,
    *,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> dict[str, Tensor]:
    """``CP@k … OF1@k`` (metrics.md "Top-k variants"), float64 scalars."""
    counts = topk_threshold_counts(scores, targets, mask, k, thresholds, chunk_elements=chunk_elements)
    return _counts_to_metrics(*counts, suffix=f"@{k}")


def _tagging_from_counts(hits: Tensor, n_images: int, k: int, n_positives: Tensor) -> dict[str, Tensor]:
    p = hits.to(torch.float64) / (n_images * k) if n_images else torch.tensor(torch.nan, dtype=torch.float64)
    r = _safe_div(hits, n_positives)
    return {f"P@{k}": p, f"R@{k}": r, f"F1@{k}": _f1(p, r)}


def tagging_metrics(
    scores: Tensor,
    targets: Tensor,
    mask: Tensor | None,
    k: int,
    *,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> dict[str, Tensor]:
    """LESA's ``P@k, R@k, F1@k`` (metrics.md "Tagging metrics"), float64 scalars.

    Top ``k`` labels per image over all C (ties → lower index); ``hits`` = known positives
    among them (masked labels are misses). ``P@k = Σhits / (N·k)`` exactly as the spec
    writes it, also when ``k >= C`` (then at most ``C/k``); ``R@k = Σhits / Σ known
    positives`` (NaN without positives); images without a positive are kept.
    """
    (k,) = _validate_ks([k])
    counts = _count_pass(scores, targets, mask, 0.5, (k,), False, chunk_elements)
    return _tagging_from_counts(counts[k][2], scores.shape[0], k, counts["plain"][2].sum())


# --------------------------------------------------------------------------- single-label
def true_class_rank(scores: Tensor, targets: Tensor) -> Tensor:
    """0-based rank ``[N]`` of each image's true class among its C scores.

    Rank = #classes with a strictly higher score + #classes with an equal score and a
    lower index (metrics.md "Ties in top-k": ties → lower class index). No sort needed.
    ``targets`` is an int ``[N]`` of class ids in ``[0, C)``.
    """
    if scores.dim() != 2 or targets.shape != scores.shape[:1]:
        raise ValueError(f"need scores [N, C] and targets [N], got {tuple(scores.shape)} and {tuple(targets.shape)}")
    targets = targets.long()
    true_score = scores.gather(1, targets[:, None])
    lower_index = torch.arange(scores.shape[1], device=scores.device)[None, :] < targets[:, None]
    return (_count(scores > true_score, dim=1) + _count((scores == true_score) & lower_index, dim=1)).long()


def topk_accuracy(scores: Tensor, targets: Tensor, ks: Iterable[int] = (1, 3, 5)) -> dict[str, Tensor]:
    """``top{k}``: fraction of images whose true class is among the k highest scores
    (metrics.md "Single-label"), i.e. ``mean(true_class_rank < k)``. float64 scalars, NaN if N = 0.
    """
    ks = _validate_ks(ks)
    rank = true_class_rank(scores, targets)
    n = torch.tensor(rank.numel(), device=rank.device)
    return {f"top{k}": _safe_div(_count(rank < k), n) for k in ks}


# --------------------------------------------------------------------------- assembly
def _json_number(value: Tensor | float) -> float | None:
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else value


def multilabel_metrics(
    scores: Tensor,
    targets: Tensor,
    mask: Tensor | None = None,
    *,
    ks: Iterable[int] = (3,),
    threshold: float = 0.5,
    thresholds: Tensor | Sequence[float] | None = None,
    empty_class: str = "exclude",
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> dict[str, float | None | list[float | None]]:
    """Every multi-label metric of metrics.md, keyed as in interfaces.md (``score``).

    Keys: ``mAP``, ``AP`` (list, ``None`` for a class without a known positive, in both
    ``empty_class`` conventions), ``PR-AUC``, ``CP``, ``CR``, ``CF1``, ``OP``, ``OR``,
    ``OF1``, ``F1-micro`` (= ``OF1``), and for each K in ``ks``: ``CP@K`` … ``OF1@K``,
    ``P@K``, ``R@K``, ``F1@K``. Values are Python floats, ``None`` where undefined
    (never NaN, so the dict is valid JSON). ``thresholds`` (``[C]``), when given, replaces
    the scalar ``threshold`` in every ``score >= threshold`` test, top-k variants included.
    ``PR-AUC`` is the mean over classes with a positive whatever ``empty_class`` says.
    Last key: ``PR-AUC_per_class``, the per-class PR-AUC list (``None`` for a class
    without a known positive), e.g. for per-label tables (the semantic-embedding paper).
    """
    if empty_class not in EMPTY_CLASS_CONVENTIONS:
        raise ValueError(f"empty_class must be one of {EMPTY_CLASS_CONVENTIONS}, got {empty_class!r}")
    ks = list(dict.fromkeys(_validate_ks(ks)))
    ap, auc = average_precision_and_pr_auc(scores, targets, mask, chunk_elements=chunk_elements)
    counts = _count_pass(
        scores, targets, mask, threshold if thresholds is None else thresholds, ks, True, chunk_elements
    )
    nc, np_, ng = counts["plain"]
    result: dict = {
        "mAP": mean_average_precision(ap, empty_class),
        "AP": [_json_number(v) for v in ap.tolist()],
        "PR-AUC": mean_average_precision(auc, "exclude"),
    }
    result.update(_counts_to_metrics(nc, np_, ng))
    result["F1-micro"] = result["OF1"]
    for k in ks:
        knc, knp, hits = counts[k]
        result.update(_counts_to_metrics(knc, knp, ng, suffix=f"@{k}"))
        result.update(_tagging_from_counts(hits, scores.shape[0], k, ng.sum()))
    result["PR-AUC_per_class"] = [_json_number(v) for v in auc.tolist()]
    return {key: value if key in PER_CLASS_KEYS else _json_number(value) for key, value in result.items()}


def single_label_metrics(scores: Tensor, targets: Tensor, ks: Iterable[int] = (1, 3, 5)) -> dict[str, float | None]:
    """:func:`topk_accuracy` as a JSON-ready dict (``top1``, ``top3``, ``top5``)."""
    return {key: _json_number(value) for key, value in topk_accuracy(scores, targets, ks).items()}
