"""Frozen-encoder feature cache: run a frozen image encoder once per split, keep its
outputs on disk, and train a head on them without decoding an image again.

Used by HMCN-F (Cho et al., ICCV-W 2019, §3.1: "the CNN is pretrained and held fixed during
the training") and by WDR's "fixed all" mode: any model whose encoder never changes.

Three pieces, usable together or alone:

1. :func:`write_feature_cache` / :class:`FeatureCache` (generic, no Lightning): run
   ``encode(images) -> Tensor [B, ...]`` over batches (``{"image", "index"}``, ``index`` =
   row into ``image_ids``) and write ``<stem>.npy`` (float32 or float16, ``[N, ...]``, read
   back memory-mapped), ``<stem>.ids.txt`` (one image id a line, the rows' order) and
   ``<stem>.json`` (the manifest: key fields, shape, dtype, skipped images). Every file is
   written to a temporary name and renamed; the manifest goes last, so a cache whose
   manifest exists is complete. ``FeatureCache.open(manifest)`` reads one back.

2. :class:`CachedFeatures`, a datamodule extra (``datamodules.extras.ItemExtra``, no
   image needed): ``batch[name]`` = the cached row of each item, looked up by image id.
   With the datamodule option ``load_images: false`` no image is decoded at all::

       data:
         init_args:
           load_images: false              # only cached features in the batch
           extras:
             features:                     # -> batch["features"], float32 [B, D]
               class_path: fashionbench.feature_cache.CachedFeatures
               init_args: {cache_dir: results/cache/features, name: default}

3. :class:`FeatureCacheCallback` (Lightning): at ``setup`` (before any loader starts its
   workers; after applying the module's ``init_from``), for every
   :class:`CachedFeatures` extra of the datamodule and every split the run reads (train,
   each ``val_sets``/``test_sets`` entry), builds the cache when it is missing or stale,
   with the module's own frozen encoder (attribute ``encoder_attr``, in eval mode, on the
   strategy's device) over the datamodule's images: its ``eval_transform`` (no
   augmentation), ``crop_to_box`` and ``image_size``, even when ``load_images`` is false.
   Then it binds each extra to its files. HMCN-F adds this callback itself
   (``configure_callbacks``); another model adds it to ``trainer.callbacks``::

       trainer:
         callbacks:
           - class_path: fashionbench.feature_cache.FeatureCacheCallback
             init_args: {encoder_attr: encoder}

   The model then reads ``batch["features"]`` when present (else runs its encoder on
   ``batch["image"]``), so the same checkpoint predicts from raw images.

Cache key. A cache is identified by (encoder name, a fingerprint of the encoder's weights:
sha256 of every parameter and buffer, the eval transform's ``repr`` with ``crop_to_box`` and
``image_size``, the split, the sha256 of the split's image ids in order, the dtype).
Files live under ``<cache_dir>/<name>/<split>-<ids sha[:12]>.{npy,ids.txt,json}``: one
cache per (name, split, image list); building with another key replaces it (so two
encoders should use two names to keep both). An extra that was not bound by the callback
finds its file by (name, split, image ids) alone and trusts it: run the callback (or
the model that adds it) whenever the encoder or the transform changes.

Bad images: with ``on_bad_image: skip`` a bad image's row is all zeros and its path is
listed in the manifest's ``skipped``; with ``raise`` the build stops with one line.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from datamodules.extras import ItemExtra
from fashionbench.errors import InputError
from fashionbench.io import atomic_open, atomic_write_text

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from datamodules.index import LabelIndex

__all__ = [
    "CACHE_FORMAT_VERSION",
    "CachedFeatures",
    "FeatureCache",
    "FeatureCacheCallback",
    "build_split_cache",
    "encoder_fingerprint",
    "ids_sha",
    "write_feature_cache",
]

#: Bump when the file layout changes (part of every key).
CACHE_FORMAT_VERSION = 1
DEFAULT_CACHE_DIR = "results/cache/features"
_DTYPES = {"float32": np.float32, "float16": np.float16}


# --------------------------------------------------------------------------- keys
def ids_sha(image_ids: Sequence[str]) -> str:
    """sha256 (hex) of the image ids in order: which images, which rows."""
    digest = hashlib.sha256()
    for image_id in image_ids:
        digest.update(str(image_id).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def encoder_fingerprint(module: nn.Module) -> str:
    """sha256 (hex, 16 chars) of a module's state dict: names, dtypes, shapes and bytes."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{t.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()[:16]


def _key_sha(fields: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()


def _stem(cache_dir: str | os.PathLike, name: str, split: str, image_ids_sha: str) -> Path:
    safe_split = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in split)
    return Path(cache_dir) / name / f"{safe_split}-{image_ids_sha[:12]}"


# --------------------------------------------------------------------------- files
@dataclass
class FeatureCache:
    """One cache on disk: ``features`` ``[N, ...]`` (memory-mapped, read-only), the
    ``image_ids`` of its rows, and the manifest ``meta``."""

    manifest: Path
    meta: dict[str, Any]
    image_ids: list[str]
    features: np.ndarray
    _rows: dict[str, int] | None = field(default=None, repr=False)

    @classmethod
    def open(cls, manifest: str | os.PathLike) -> "FeatureCache":
        manifest = Path(manifest)
        try:
            meta = json.loads(manifest.read_text(encoding="utf-8"))
            stem = manifest.with_suffix("")
            ids = Path(f"{stem}.ids.txt").read_text(encoding="utf-8").split("\n")
            features = np.load(f"{stem}.npy", mmap_mode="r")
        except (OSError, ValueError) as err:
            raise InputError(f"unreadable feature cache ({err}); delete it to rebuild", path=manifest) from None
        ids = ids[:-1] if ids and ids[-1] == "" else ids
        if features.shape[0] != len(ids) or list(features.shape[1:]) != list(meta.get("shape", [])):
            raise InputError("feature cache files disagree (rows vs ids vs manifest); delete it to rebuild", path=manifest)
        return cls(manifest, meta, ids, features)

    @property
    def key(self) -> str:
        return self.meta.get("key", "")

    def row_of(self, image_id: str) -> int:
        if self._rows is None:
            self._rows = {image_id: i for i, image_id in enumerate(self.image_ids)}
        return self._rows[image_id]

    def rows_for(self, image_ids: Sequence[str]) -> np.ndarray:
        """``int64 [n]``: the cache row of each id (InputError naming the first missing one)."""
        if list(image_ids) == self.image_ids:
            return np.arange(len(self.image_ids), dtype=np.int64)
        try:
            return np.array([self.row_of(i) for i in image_ids], dtype=np.int64)
        except KeyError as err:
            raise InputError(f"image {err.args[0]!r} is not in the feature cache; rebuild it", path=self.manifest) from None


def write_feature_cache(
    encode: Callable[[torch.Tensor], torch.Tensor],
    batches: Iterable[dict[str, Any]],
    image_ids: Sequence[str],
    stem: str | os.PathLike,
    meta: dict[str, Any] | None = None,
    dtype: str = "float32",
    device: torch.device | str | None = None,
) -> FeatureCache:
    """Run ``encode`` (under ``torch.no_grad``) over ``batches`` and write the cache ``stem``.

    ``batches`` yield ``{"image": [B, 3, H, W], "index": [B]}`` where ``index`` is the row
    into ``image_ids`` (as the suite's datasets give it); a batch may carry ``skipped``
    (paths of bad images, left as zero rows). Every row must be written exactly once.
    Returns the opened cache. The three files appear atomically, the manifest last.
    """
    if dtype not in _DTYPES:
        raise InputError(f"feature cache dtype must be one of {sorted(_DTYPES)}, got '{dtype}'")
    stem = Path(stem)
    if any("\n" in str(i) for i in image_ids):
        raise InputError("image ids with a newline cannot be cached (ids.txt holds one a line)")
    stem.parent.mkdir(parents=True, exist_ok=True)
    n = len(image_ids)
    fd, tmp_name = tempfile.mkstemp(dir=stem.parent, prefix=f".{stem.name}.", suffix=".npy.tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    out: np.ndarray | None = None
    written = np.zeros(n, dtype=bool)
    skipped: list[str] = []
    try:
        with torch.no_grad():
            for batch in batches:
                skipped.extend(batch.get("skipped") or [])
                if "image" not in batch or batch["index"].numel() == 0:
                    continue
                images = batch["image"]
                if device is not None:
                    images = images.to(device, non_blocking=True)
                values = encode(images).float().cpu().numpy()
                rows = batch["index"].cpu().numpy().astype(np.int64)
                if out is None:
                    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=_DTYPES[dtype], shape=(n, *values.shape[1:]))
                if values.shape[1:] != out.shape[1:] or values.shape[0] != rows.shape[0]:
                    raise ValueError(f"encoder output {list(values.shape)} does not fit rows {list(out.shape)}")
                if np.any(written[rows]):
                    raise ValueError("a row was encoded twice")
                out[rows] = values
                written[rows] = True
        if out is None:
            raise InputError(f"no image could be encoded for the feature cache {stem}")
        if int((~written).sum()) != len(skipped):
            raise ValueError(f"{int((~written).sum())} rows were never encoded ({len(skipped)} images skipped)")
        out.flush()
        shape = list(out.shape[1:])
        del out
        Path(f"{stem}.json").unlink(missing_ok=True)  # replacing a cache: it is absent, never mixed, meanwhile
        os.replace(tmp, f"{stem}.npy")
    finally:
        tmp.unlink(missing_ok=True)
    with atomic_open(f"{stem}.ids.txt") as handle:
        handle.write("".join(f"{i}\n" for i in image_ids))
    manifest = {**(meta or {}), "format": CACHE_FORMAT_VERSION, "rows": n, "shape": shape,
                "dtype": dtype, "ids_sha": ids_sha(image_ids), "skipped": sorted(skipped)}
    atomic_write_text(f"{stem}.json", json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return FeatureCache.open(f"{stem}.json")


# --------------------------------------------------------------------------- the datamodule extra
class CachedFeatures(ItemExtra):
    """``batch[<name>]`` = an item's cached encoder output, looked up by image id.

    Args:
        cache_dir: the caches' root (default ``results/cache/features``).
        name: which cache family under ``cache_dir`` (one per encoder and transform; the
            :class:`FeatureCacheCallback` writes ``<cache_dir>/<name>/``).
        dtype: storage dtype when the callback builds the cache (``float32`` exact,
            ``float16`` half the disk); items always come out as float32.
    """

    needs_image = False

    def __init__(self, cache_dir: str = DEFAULT_CACHE_DIR, name: str = "default", dtype: str = "float32") -> None:
        if dtype not in _DTYPES:
            raise InputError(f"CachedFeatures dtype must be one of {sorted(_DTYPES)}, got '{dtype}'")
        if not name or "/" in name or name.startswith("."):
            raise InputError(f"CachedFeatures name must be a plain folder name, got '{name}'")
        self.cache_dir = str(cache_dir)
        self.name = name
        self.dtype = dtype
        self._bound: dict[tuple[str, str], str] = {}   # (split, ids sha) -> manifest path
        self._open: dict[int, tuple[Any, FeatureCache, np.ndarray]] = {}  # per process, by id(index)

    def __getstate__(self) -> dict[str, Any]:  # workers reopen the memory maps themselves
        state = dict(self.__dict__)
        state["_open"] = {}
        return state

    def bind(self, split: str, image_ids_sha: str, manifest: str | os.PathLike) -> None:
        """Use ``manifest`` for the index of ``split`` with these image ids (the callback)."""
        self._bound[(split, image_ids_sha)] = str(manifest)
        self._open.clear()

    def manifest_for(self, split: str, image_ids: Sequence[str]) -> Path:
        sha = ids_sha(image_ids)
        bound = self._bound.get((split, sha))
        return Path(bound) if bound else Path(f"{_stem(self.cache_dir, self.name, split, sha)}.json")

    def _table(self, index: "LabelIndex") -> tuple[FeatureCache, np.ndarray]:
        entry = self._open.get(id(index))
        if entry is None or entry[0] is not index:
            manifest = self.manifest_for(index.split, index.image_ids)
            if not manifest.is_file():
                raise InputError(
                    f"no feature cache for split '{index.split}' ({len(index)} images) under "
                    f"{Path(self.cache_dir) / self.name}: add fashionbench.feature_cache.FeatureCacheCallback "
                    "to the trainer (HMCN-F adds it itself) to build it", path=manifest)
            cache = FeatureCache.open(manifest)
            entry = (index, cache, cache.rows_for(index.image_ids))
            self._open[id(index)] = entry
        return entry[1], entry[2]

    def __call__(self, image: "Image.Image | None", row: int, index: "LabelIndex") -> np.ndarray:
        cache, rows = self._table(index)
        return np.array(cache.features[rows[row]], dtype=np.float32)  # a copy: writable, off the memory map


# --------------------------------------------------------------------------- building from a datamodule
def build_split_cache(
    datamodule: Any,
    index: "LabelIndex",
    extra: CachedFeatures,
    encoder: nn.Module,
    encoder_name: str | None = None,
    batch_size: int | None = None,
    device: torch.device | str | None = None,
    fingerprint: str | None = None,
) -> FeatureCache:
    """The cache of ``index`` (one split of ``datamodule``) for ``extra``, built with
    ``encoder`` when missing or stale, then bound to ``extra``.

    Images come from the datamodule as an eval item would (its ``eval_transform``,
    ``crop_to_box``, ``image_size``, ``on_bad_image``), whatever ``load_images`` says.
    ``encoder`` is put in eval mode for the build and its previous mode restored; the
    global (CPU) random state is the same afterwards, so a run that builds its cache draws
    the same dropout masks as one that finds it.
    """
    from torch.utils.data import DataLoader

    from datamodules.base import LabelIndexDataset, collate_items

    encoder_name = encoder_name or _module_name(encoder)
    fields = {
        "format": CACHE_FORMAT_VERSION,
        "encoder": encoder_name,
        "weights": fingerprint or encoder_fingerprint(encoder),
        "transform": repr(datamodule.eval_transform),
        "crop_to_box": bool(getattr(datamodule, "crop_to_box", False)),
        "image_size": getattr(datamodule, "image_size", None),
        "split": index.split,
        "ids_sha": ids_sha(index.image_ids),
        "dtype": extra.dtype,
    }
    key = _key_sha(fields)
    stem = _stem(extra.cache_dir, extra.name, index.split, fields["ids_sha"])
    manifest = Path(f"{stem}.json")
    if manifest.is_file():
        try:
            cache = FeatureCache.open(manifest)
            if cache.key == key:
                extra.bind(index.split, fields["ids_sha"], manifest)
                return cache
        except InputError:
            pass  # unreadable: rebuilt below
    dataset = LabelIndexDataset(
        index, datamodule.root, datamodule.eval_transform, extras=None, load_images=True,
        crop_to_box=fields["crop_to_box"], on_bad_image=getattr(datamodule, "on_bad_image", "raise"),
        target_size=fields["image_size"],
    )
    workers = int(getattr(datamodule, "num_workers", 0))
    loader = DataLoader(dataset, batch_size=batch_size or getattr(datamodule, "eval_batch_size", 64),
                        shuffle=False, num_workers=workers, collate_fn=collate_items)
    if device is None:
        device = next(iter(encoder.parameters()), torch.empty(0)).device
    was_training = encoder.training
    encoder.eval()
    print(f"fashionbench: caching {encoder_name} features of {index.dataset} {index.split} "
          f"({len(index)} images) in {stem}.npy", flush=True)
    try:
        with torch.random.fork_rng(devices=[]):  # building a cache leaves the run's random stream alone
            cache = write_feature_cache(encoder, loader, index.image_ids, stem, meta={**fields, "key": key},
                                        dtype=extra.dtype, device=device)
    finally:
        encoder.train(was_training)
    extra.bind(index.split, fields["ids_sha"], manifest)
    return cache


def _module_name(module: nn.Module) -> str:
    cfg = getattr(module, "pretrained_cfg", None) or {}
    arch = cfg.get("architecture") if isinstance(cfg, dict) else None
    return f"{type(module).__name__}:{arch}" if arch else type(module).__name__


def _cached_extras(datamodule: Any) -> list[CachedFeatures]:
    extras = getattr(datamodule, "extras", None) or {}
    return [e for e in extras.values() if isinstance(e, CachedFeatures)]


def _stage_indices(datamodule: Any, stage: str) -> list["LabelIndex"]:
    """The indices a ``stage`` (fit/validate/test/predict) of ``datamodule`` reads."""
    parts = {"fit": ("train", "val", "test"), "validate": ("val",), "test": ("test",), "predict": ("test",)}
    out = []
    for part in parts.get(stage, ("train", "val", "test")):
        if part == "train":
            out.append(datamodule.train_index)
        elif hasattr(datamodule, "eval_sets"):
            out.extend(datamodule.eval_index(s) for s in datamodule.eval_sets(part))
        else:
            out.append(getattr(datamodule, f"{part}_index"))
    unique: dict[tuple[str, str], Any] = {}
    for index in out:
        unique.setdefault((index.split, ids_sha(index.image_ids)), index)
    return list(unique.values())


try:
    from lightning.pytorch import Callback as _Callback
except ImportError:  # pragma: no cover - lightning is a dependency of the suite
    _Callback = object  # type: ignore[misc,assignment]


class FeatureCacheCallback(_Callback):
    """Builds (when missing or stale) and binds the caches of every :class:`CachedFeatures`
    extra of the trainer's datamodule, with ``getattr(pl_module, encoder_attr)``.

    It runs at ``setup``: the earliest hook with the trainer, datamodule and module in
    place, and before anything starts a loader's workers (the optimiser's schedule asks
    for the number of training steps, which makes Lightning create the train iterator, so
    prefetching workers start before ``on_fit_start``). The module's ``init_from``
    (:meth:`MultiLabelModule.apply_init_from`, idempotent) is applied first, so the cache
    is built with the weights the run trains with; the encoder runs on the strategy's
    device (``trainer.strategy.root_device``) and goes back where it was. Fit builds the
    train, validation and test sets' caches (test after fit reuses them); a lone
    validate/test/predict builds its own (from the encoder as built: a frozen encoder's
    checkpointed weights are the same). Under DDP rank 0 builds and the others wait, then
    every rank binds the same files.

    Args:
        encoder_attr: the module's frozen encoder (``encoder(images) -> [B, ...]``).
        batch_size: images per encoder batch (default: the datamodule's eval batch size).
    """

    def __init__(self, encoder_attr: str = "encoder", batch_size: int | None = None) -> None:
        super().__init__()
        self.encoder_attr = encoder_attr
        self.batch_size = batch_size
        self.built: list[FeatureCache] = []

    def _ensure(self, trainer: Any, pl_module: nn.Module, stage: str) -> None:
        datamodule = getattr(trainer, "datamodule", None)
        extras = _cached_extras(datamodule) if datamodule is not None else []
        if not extras:
            return
        if stage == "fit" and hasattr(pl_module, "apply_init_from"):
            pl_module.apply_init_from()  # once; the module's own setup then skips it
        encoder = getattr(pl_module, self.encoder_attr, None)
        if not isinstance(encoder, nn.Module):
            raise InputError(f"FeatureCacheCallback: {type(pl_module).__name__} has no encoder module "
                             f"'{self.encoder_attr}' to build the feature cache with")
        fingerprint = encoder_fingerprint(encoder)
        indices = _stage_indices(datamodule, stage)
        rank_zero = bool(getattr(trainer, "is_global_zero", True))
        distributed = int(getattr(trainer, "world_size", 1)) > 1
        strategy = getattr(trainer, "strategy", None)
        device = getattr(strategy, "root_device", None)
        home = next(iter(encoder.parameters()), torch.empty(0)).device

        def build_all() -> None:
            for extra in extras:
                for index in indices:
                    cache = build_split_cache(datamodule, index, extra, encoder, batch_size=self.batch_size,
                                              device=device or home, fingerprint=fingerprint)
                    if rank_zero:
                        self.built.append(cache)

        if device is not None:
            encoder.to(device)
        try:
            if rank_zero:
                build_all()
            if distributed:
                strategy.barrier("feature_cache")
            if not rank_zero:  # finds rank 0's files (same key) and binds them
                build_all()
        finally:
            encoder.to(home)

    def setup(self, trainer: Any, pl_module: nn.Module, stage: str) -> None:
        self._ensure(trainer, pl_module, stage)
