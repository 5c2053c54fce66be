"""Safety: no file the suite reads can run code, and no downloaded name can leave its folder.

Every attack carries a payload that would create a marker file if it ran (an object whose
``__reduce__`` is ``open(marker, "w")``, a YAML ``!!python/object/apply`` of the same); each
test checks that the input is refused *and* that the marker does not exist.

- Checkpoints: Lightning's own loader, the one ``fit|validate|test|predict --ckpt_path``
  goes through (``Strategy.load_checkpoint`` -> ``torch.load(weights_only=None)``, i.e.
  torch's default ``weights_only=True``), and ``init_from``'s loader refuse a pickled
  payload. A checkpoint written by ``fashionbench fit`` loads with ``weights_only=True``
  and its hyper-parameters are plain data. The package never asks torch for
  ``weights_only=False``.
- Data files: ``fashionbench score`` refuses an ``.npz`` whose array is a pickled object
  (exit 2, one line); so does the embeddings loader.
- YAML: every YAML read in the package and the benchmarks goes through ``yaml.safe_load``
  (or a ``SafeLoader``); a config with a Python tag given to ``fashionbench fit`` is refused.
- Downloads: ``imageId`` / ``Photo_file`` / ``ImageID`` values that try to leave the image
  folder (``..``, separators, absolute paths, NUL, over-long) are never fetched, URLs that
  are not plain http(s) are never fetched, and a download of such a list writes nothing
  outside the image folder.
"""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fashionbench.errors import InputError

REPO = Path(__file__).resolve().parents[1]
SOURCES = [p for d in ("fashionbench", "datamodules", "benchmarks") for p in (REPO / d).rglob("*.py")]


class Payload:
    """Unpickling this calls ``open(marker, "w")``: the marker exists iff the pickle ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _cli(*args, cwd):
    env = dict(os.environ, WANDB_MODE="offline", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "fashionbench.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


# ------------------------------------------------------------------------- checkpoints
def test_checkpoint_loaders_refuse_a_pickled_payload(tmp_path):
    from lightning.pytorch import Trainer

    from fashionbench.models.base import load_state_dict_file

    marker = tmp_path / "ran"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "epoch": 0, "hyper_parameters": {"x": Payload(marker)}}, evil)
    assert "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD" not in os.environ  # would turn torch's default off
    trainer = Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False)
    with pytest.raises(Exception, match="[Ww]eights only load failed"):
        trainer.strategy.load_checkpoint(evil)  # what Trainer.fit/test(ckpt_path=...) calls
    with pytest.raises(InputError, match="cannot read checkpoint"):
        load_state_dict_file(evil)  # init_from
    assert not marker.exists()


def test_no_source_asks_torch_for_weights_only_false():
    offenders = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "load":
                for keyword in node.keywords:
                    if keyword.arg == "weights_only" and isinstance(keyword.value, ast.Constant) and keyword.value.value is not True:
                        offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert offenders == [], "torch.load(weights_only=False) unpickles arbitrary objects: the suite's checkpoints hold plain data"


@pytest.mark.slow
def test_a_cli_checkpoint_loads_weights_only_and_holds_plain_data(tmp_path):
    from datamodules.synth import write_synthetic

    root = write_synthetic("voc", tmp_path / "voc", images=12, seed=0)
    done = _cli("fit", "--config", REPO / "benchmarks/baseline/voc2007.yaml", "--config", REPO / "benchmarks/smoke.yaml",
                "--data.init_args.root", root, "--data.init_args.num_workers", "0", "--data.init_args.batch_size", "4",
                "--trainer.max_steps", "1", "--trainer.limit_val_batches", "0", "--trainer.logger", "false",
                "--trainer.enable_progress_bar", "false", "--test_after_fit", "false",
                "--checkpoint.dirpath", "ckpt", "--checkpoint.monitor", "step", "--checkpoint.mode", "max", cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (ckpt,) = (tmp_path / "ckpt").glob("*.ckpt")
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)

    def plain(value, where):
        if isinstance(value, dict):
            for key, item in value.items():
                assert isinstance(key, str), where
                plain(item, f"{where}.{key}")
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                plain(item, f"{where}[{i}]")
        else:
            assert value is None or isinstance(value, (str, int, float, bool)), f"{where}: {type(value).__name__}"

    plain(checkpoint["hyper_parameters"], "hyper_parameters")
    plain(checkpoint["datamodule_hyper_parameters"], "datamodule_hyper_parameters")


def test_a_checkpoint_of_a_model_built_in_python_loads_weights_only(tmp_path):
    from lightning.pytorch import Trainer

    from fashionbench.models import Baseline
    from fashionbench.models.base import EvalConfig
    from fashionbench.models.optim import OptimConfig

    model = Baseline(num_labels=3, backbone="resnet10t", pretrained=False, optim=OptimConfig(lr=0.01),
                     evaluation=EvalConfig(threshold=0.4))
    trainer = Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(model)
    trainer.save_checkpoint(tmp_path / "python.ckpt")
    torch.load(tmp_path / "python.ckpt", map_location="cpu", weights_only=True)


# --------------------------------------------------------------------------- data files
def test_score_refuses_an_object_array(tmp_path):
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.npz"
    scores = np.random.default_rng(0).random((4, 3)).astype(np.float32)
    payload = np.empty(4, dtype=object)
    payload[:] = [Payload(marker)] * 4
    np.savez(evil, scores=scores, targets=payload)
    done = _cli("score", evil, cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and str(evil) in lines[0] and "object array" in lines[0], done.stderr
    assert "Traceback" not in done.stderr
    assert not marker.exists()


def test_embeddings_loader_refuses_an_object_array(tmp_path):
    from fashionbench.embeddings import load_label_embeddings

    marker = tmp_path / "ran"
    evil = tmp_path / "vectors.npz"
    vectors = np.empty((2, 1), dtype=object)
    vectors[0, 0], vectors[1, 0] = Payload(marker), Payload(marker)
    np.savez(evil, names=np.array(["a", "b"]), vectors=vectors)
    with pytest.raises(InputError, match="cannot read"):
        load_label_embeddings(evil, ["a", "b"])
    assert not marker.exists()


# --------------------------------------------------------------------------------- YAML
_UNSAFE_YAML = {"unsafe_load", "full_load", "load_all", "unsafe_load_all", "full_load_all"}
_UNSAFE_LOADERS = {"Loader", "FullLoader", "UnsafeLoader", "CLoader", "CFullLoader", "CUnsafeLoader"}


def test_every_yaml_read_is_safe():
    offenders, safe_calls = [], 0
    for path in SOURCES + [p for p in (REPO / "tests").glob("*.py")]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "yaml":
                where = f"{path.relative_to(REPO)}:{node.lineno}"
                if node.attr in _UNSAFE_YAML or node.attr in _UNSAFE_LOADERS:
                    offenders.append(f"{where} yaml.{node.attr}")
                elif node.attr == "safe_load":
                    safe_calls += 1
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load" \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "yaml":
                loader = next((k.value for k in node.keywords if k.arg == "Loader"), node.args[1] if len(node.args) > 1 else None)
                if not (isinstance(loader, ast.Attribute) and loader.attr in ("SafeLoader", "CSafeLoader")):
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno} yaml.load without a SafeLoader")
    assert offenders == []
    assert safe_calls > 0  # the scan does see the suite's YAML reads


def test_a_config_with_a_python_tag_is_refused(tmp_path):
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.yaml"
    evil.write_text(f"seed_everything: !!python/object/apply:builtins.open [{json.dumps(str(marker))}, w]\n")
    done = _cli("fit", "--config", REPO / "benchmarks/baseline/voc2007.yaml", "--config", evil, cwd=tmp_path)
    assert done.returncode != 0
    assert "could not determine a constructor for the tag" in done.stderr  # the safe loader refused the tag
    assert not marker.exists()


# ---------------------------------------------------------------------------- downloads
TRAVERSAL_IDS = ["../escape", "..", ".", "a/../../escape", "a\\..\\..\\escape", "/etc/passwd", "\\\\server\\share",
                 "x\x00y", "line\nbreak", "", "n" * 300]


def test_download_names_cannot_leave_the_image_folder(tmp_path):
    from fashionbench.download import download, list_items, safe_url

    root = tmp_path / "imat"
    root.mkdir()
    images = [{"imageId": image_id, "url": "http://127.0.0.1:9/x.jpg"} for image_id in TRAVERSAL_IDS]
    images.append({"imageId": "ok", "url": "file:///etc/passwd"})
    images.append({"imageId": "ok2", "url": "http://127.0.0.1:9/a/%2e%2e/%2e%2e/x.jpg"})
    (root / "validation.json").write_text(json.dumps({"images": images}))
    image_dir, items = list_items("imaterialist", root, "validation")
    by_id = {item.image_id: item for item in items}
    for image_id in TRAVERSAL_IDS:
        assert by_id[image_id].relpath is None, repr(image_id)  # never fetched: no path to write
    assert by_id["ok"].relpath == ("ok.jpg",) and not safe_url(by_id["ok"].urls[0])
    assert not safe_url(by_id["ok2"].urls[0])

    # NUS-WIDE: Photo_file is a Windows path; what follows the Flickr folder names the file
    nus = tmp_path / "nus"
    nus.mkdir()
    header = "Photo_file Photo_id URL_Large URL_Middle URL_Small URL_Original\n"
    rows = ["C:\\ImageData\\Flickr\\..\\..\\escape.jpg", "C:\\ImageData\\Flickr\\actor\\..\\..\\escape.jpg",
            "C:\\ImageData\\Flickr\\actor\\.", "C:\\ImageData\\Flickr\\actor/../x.jpg"]
    (nus / "NUS-WIDE-urls.txt").write_text(header + "".join(f"{r} 1 null http://127.0.0.1:9/m.jpg null null\n" for r in rows))
    _, nus_items = list_items("nus-wide", nus, "all")
    assert len(nus_items) == len(rows) and all(item.relpath is None for item in nus_items)

    # Open Images: ImageID names <ImageID>.jpg
    oi = tmp_path / "oi" / "2018_04" / "test"
    oi.mkdir(parents=True)
    (oi / "test-images-with-rotation.csv").write_text(
        "ImageID,OriginalURL\n" + "".join(f"\"{i}\",http://127.0.0.1:9/x.jpg\n" for i in ("../../escape", "a/b", "..")))
    _, oi_items = list_items("open-images", tmp_path / "oi", "test")
    assert len(oi_items) == 3 and all(item.relpath is None for item in oi_items)

    with pytest.raises(InputError):
        list_items("imaterialist", root, "../validation")  # nor can the split name

    # and a download of the hostile list fetches nothing and writes only under root
    before = {p for p in tmp_path.rglob("*")}
    summary = download("imaterialist", root, "validation", workers=1, timeout=1, retries=0, progress=False)
    created = {p for p in tmp_path.rglob("*")} - before
    assert all(root in p.parents for p in created), sorted(map(str, created))
    assert not (tmp_path / "escape.jpg").exists() and not (tmp_path / "escape").exists()
    reasons = {row["imageId"]: row["reason"] for row in _csv_rows(summary.failures_path)}
    assert reasons["../escape"] == "unsafe name" and reasons["ok"] == "unsafe url" and reasons["ok2"] == "unsafe url"


def _csv_rows(path: Path) -> list[dict]:
    import csv

    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))
