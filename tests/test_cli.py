"""The `fashionbench` command as a user runs it: one JSON object on success; on bad input
exit 2 with one line on stderr naming the file and problem, and no traceback.

Most cases call ``fashionbench.cli.main(argv)`` in-process (no 6 s of imports per case);
the entry point itself, its no-traceback output and the light commands' imports are
checked in real subprocesses."""
import json
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from fashionbench.cli import main


@pytest.fixture()
def fashionbench(capsys):
    def run(*args, cwd=None):
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=out, stderr=err)
    return run


def subprocess_fashionbench(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "fashionbench.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_score_prints_json_agreeing_with_sklearn(tmp_path, fashionbench):
    rng = np.random.default_rng(0)
    scores = rng.random((30, 4)).round(1)  # ties
    targets = (rng.random((30, 4)) < 0.4).astype(np.int64)
    path = tmp_path / "preds.npz"
    np.savez(path, scores=scores, targets=targets)
    result = fashionbench("score", path, "--k", 2, "--k", 3)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert json.loads(fashionbench("score", path, "--k", 2, 3).stdout) == out  # both spellings of --k
    expected = np.mean([average_precision_score(targets[:, c], scores[:, c]) for c in range(4)])
    assert out["mAP"] == pytest.approx(expected, abs=1e-9)
    assert {"P@2", "F1@3", "OF1@3", "CF1", "PR-AUC", "F1-micro"} <= set(out)


def test_score_bad_file_is_one_line(tmp_path, fashionbench):
    path = tmp_path / "bad.npz"
    np.savez(path, scores=np.array([[0.1, np.nan]]), targets=np.array([[0, 1]]))
    assert_one_line_error(fashionbench("score", path), "bad.npz", "NaN")
    assert_one_line_error(fashionbench("score", tmp_path / "absent.npz"), "absent.npz")


def test_data_summary_bad_annotation_is_file_line(tmp_path, fashionbench):
    main = tmp_path / "VOCdevkit" / "VOC2007" / "ImageSets" / "Main"
    main.mkdir(parents=True)
    (main / "test.txt").write_text("000001\n000002\n")
    classes = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
               "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor"]
    for name in classes:
        (main / f"{name}_test.txt").write_text("000001 -1\n000002  1\n")
    (main / "dog_test.txt").write_text("000001 -1\n000002  7\n")
    assert_one_line_error(fashionbench("data", "summary", "voc", "--root", tmp_path, "--split", "test"), "dog_test.txt:2:")
    (main / "dog_test.txt").write_text("000001 -1\n000002  0\n")
    result = fashionbench("data", "summary", "voc", "--root", tmp_path, "--split", "test")
    summary = json.loads(result.stdout)
    assert summary["positives"][classes.index("bicycle")] == 1
    assert summary["ignored"][classes.index("dog")] == 1 and summary["positives"][classes.index("dog")] == 0
    assert summary["missing_images"] == ["VOCdevkit/VOC2007/JPEGImages/000001.jpg", "VOCdevkit/VOC2007/JPEGImages/000002.jpg"]


def test_unknown_dataset_and_paper_are_one_line(tmp_path, fashionbench):
    assert_one_line_error(fashionbench("data", "summary", "imagenet", "--root", tmp_path), "imagenet")
    assert_one_line_error(fashionbench("table", "no_such_paper"), "no_such_paper")


def test_entry_point_bad_input_is_one_line_without_traceback(tmp_path):
    """The installed command in a real process: exit 2, one stderr line, no traceback."""
    np.savez(tmp_path / "bad.npz", scores=np.array([[0.1, np.inf]]), targets=np.array([[0, 1]]))
    assert_one_line_error(subprocess_fashionbench("score", tmp_path / "bad.npz"), "bad.npz")


def test_light_commands_import_no_lightning_torchmetrics_or_timm(tmp_path):
    """Fast start: score, data summary, synth and leaderboard never load the training stack
    (data summary not even torch)."""
    np.savez(tmp_path / "p.npz", scores=np.array([[0.2, 0.7]]), targets=np.array([[0, 1]]))
    (tmp_path / "runs").mkdir()
    commands = {
        "score": ["score", str(tmp_path / "p.npz")],
        "summary": ["data", "summary", "voc", "--root", "tests/fixtures/voc"],
        "synth": ["synth", "voc", "--out", str(tmp_path / "s"), "--images", "3"],
        "leaderboard": ["leaderboard", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "b")],
    }
    probe = (
        "import json, sys, contextlib, io\n"
        "from fashionbench.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()): code = main(json.loads(sys.argv[1]))\n"
        "heavy = sorted(m for m in ('lightning', 'torchmetrics', 'timm', 'torch') if m in sys.modules)\n"
        "print(json.dumps([code, heavy]))\n"
    )
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    for name, argv in commands.items():
        result = subprocess.run([sys.executable, "-c", probe, json.dumps(argv)], capture_output=True, text=True, cwd=repo)
        assert result.returncode == 0, result.stderr[-2000:]
        code, heavy = json.loads(result.stdout.strip().splitlines()[-1])
        assert code == 0, name
        allowed = {"torch"} if name == "score" else set()
        assert set(heavy) <= allowed, f"{name} imported {heavy}"
