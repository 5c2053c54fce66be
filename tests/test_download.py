"""`fashionbench download` against a fault-injecting server on 127.0.0.1 (tests/fault_server.py).

Every good image is saved and decodes as a JPEG; nothing is saved for a bad one; the
failures file lists exactly the failures with their reasons; retries happen only where
they should (the server's per-path request counts); a second run fetches nothing; a run
killed halfway resumes with only the missing files; no item can write outside the image
folder.
"""
import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fault_server import Drop, FailFirst, FaultServer, Ok, Redirect, Stall, Status, Truncated
from fashionbench.cli import main
from fashionbench.download import safe_part, safe_url

FAST = ["--timeout", "0.5", "--retries", "2", "--backoff", "0.01", "--workers", "8"]


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def encode(image, fmt="JPEG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def noise_jpeg(seed, size=(48, 32), mode="RGB") -> bytes:
    channels = {"RGB": 3, "L": 1}[mode]
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    return encode(Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode))


def alpha_png() -> bytes:
    """Left half opaque red, right half fully transparent blue."""
    pixels = np.zeros((8, 16, 4), dtype=np.uint8)
    pixels[:, :8] = (255, 0, 0, 255)
    pixels[:, 8:] = (0, 0, 255, 0)
    return encode(Image.fromarray(pixels, "RGBA"), "PNG")


def write_imaterialist(root: Path, split: str, entries) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{split}.json").write_text(json.dumps({"images": [{"url": u, "imageId": i} for i, u in entries]}))


def read_failures(root: Path, split: str):
    with open(root / f"download_{split}_failures.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["imageId", "url", "reason"]
    return rows[1:]


def files_under(path: Path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


def run(capsys, *args):
    code = main(["download", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out.strip(), err.strip()


def test_fault_injection_saves_good_images_lists_failures_and_never_refetches(tmp_path, capsys):
    good = {name: noise_jpeg(seed) for seed, name in enumerate(["g1", "g2", "g3", "after503", "redirected"])}
    gray, cmyk_src = noise_jpeg(9, mode="L"), encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)))
    cut = noise_jpeg(10, size=(64, 64))
    routes = {
        "/g1": Ok(good["g1"]), "/g2": Ok(good["g2"]), "/g3": Ok(good["g3"]),
        "/missing": Status(404),
        "/broken": Status(500),
        "/busy": FailFirst(2, 503, Ok(good["after503"])),
        "/drop": Drop(),
        "/stall": Stall(1.5, Ok(good["g1"])),
        "/slowbody": Ok(good["g3"], delay=1.5),  # stalls mid-body
        "/short": Truncated(good["g2"]),
        "/html": Ok(b"<!doctype html><html><body>Not found</body></html>", "text/html"),
        "/empty": Ok(b""),
        "/r1": Redirect("/r2", 301), "/r2": Redirect("/r3", 302), "/r3": Redirect("/redirected.jpg", 307),
        "/redirected.jpg": Ok(good["redirected"]),
        "/loop": Redirect("/loop"),
        "/alpha.png": Ok(alpha_png(), "image/png"),
        "/gray": Ok(gray), "/cmyk": Ok(cmyk_src),
        "/cut": Ok(cut[: len(cut) // 2]),
    }
    with FaultServer(routes) as server:
        u = server.url
        # (imageId, path, expected reason or None); ids are strings and ints, as in the real files
        cases = [("1", "/g1", None), (2, "/g2", None), ("3", "/g3", None), ("4", "/missing", "http 404"),
                 (5, "/broken", "http 500"), ("6", "/busy", None), ("7", "/drop", "connection error"),
                 ("8", "/stall", "timeout"), ("9", "/short", "truncated"), ("10", "/html", "not an image"),
                 ("11", "/empty", "empty body"), ("12", "/r1", None), ("13", "/loop", "too many redirects"),
                 ("14", "/alpha.png", None), ("15", "/gray", None), ("16", "/cmyk", None),
                 ("17", "/cut", "broken image"), ("18", None, "no url"), ("19", "/slowbody", "timeout")]
        write_imaterialist(tmp_path, "validation", [(i, u(p) if p else None) for i, p, _ in cases])
        code, out, _ = run(capsys, "imaterialist", "--root", tmp_path, "--split", "validation", *FAST)
        assert code == 0
        failures_path = tmp_path / "download_validation_failures.csv"
        assert out == f"fashionbench download: 8 ok (0 already present), 11 failed; failures in {failures_path}"
        expected_failures = [[str(i), u(p) if p else "", r] for i, p, r in cases if r]
        assert read_failures(tmp_path, "validation") == expected_failures

        images = tmp_path / "images" / "validation"
        assert files_under(images) == sorted(f"{i}.jpg" for i, _, r in cases if r is None)
        assert sorted(os.listdir(tmp_path)) == ["download_validation_failures.csv", "images", "validation.json"]
        assert os.listdir(tmp_path / "images") == ["validation"]  # the temp folder is gone
        for name in files_under(images):
            with Image.open(images / name) as image:
                assert image.format == "JPEG"
                image.load()
        for image_id, name in [("1", "g1"), ("2", "g2"), ("3", "g3"), ("6", "after503"), ("12", "redirected")]:
            assert (images / f"{image_id}.jpg").read_bytes() == good[name]  # a JPEG is kept as served
        assert (images / "15.jpg").read_bytes() == gray
        alpha = np.asarray(Image.open(images / "14.jpg"))
        assert Image.open(images / "14.jpg").mode == "RGB"
        assert np.abs(alpha[:, :6].astype(int) - (255, 0, 0)).max() <= 40  # opaque red stays red
        assert np.abs(alpha[:, 10:].astype(int) - (255, 255, 255)).max() <= 40  # transparent -> white
        with Image.open(images / "16.jpg") as image:
            assert image.mode == "RGB"  # CMYK (0, 255, 255, 0) is pure red
            assert np.abs(np.asarray(image).astype(int) - (255, 0, 0)).max() <= 40

        counts = server.snapshot()
        for path in ["/g1", "/g2", "/g3", "/missing", "/html", "/empty", "/r1", "/r2", "/r3", "/redirected.jpg",
                     "/alpha.png", "/gray", "/cmyk", "/cut"]:
            assert counts[path] == 1, path  # 404 and undecodable bodies are never retried
        assert counts["/busy"] == 3  # two 503s, then the image
        for path in ["/broken", "/drop", "/stall", "/short", "/slowbody"]:
            assert counts[path] == 3, path  # the first try and --retries 2
        assert counts["/loop"] == 11  # requests' redirect limit (10) reached

        # a second run fetches nothing and keeps the same failures
        code, out, err = run(capsys, "imaterialist", "--root", tmp_path, "--split", "validation", *FAST)
        assert code == 0 and server.snapshot() == counts
        assert out == f"fashionbench download: 8 ok (8 already present), 11 failed; failures in {failures_path}"
        assert read_failures(tmp_path, "validation") == expected_failures
        assert "--retry-failed" in err

        # --retry-failed tries the failures again (once each with --retries 0), nothing else
        code, out, _ = run(capsys, "imaterialist", "--root", tmp_path, "--split", "validation",
                           "--retry-failed", "--retries", "0", "--timeout", "0.5", "--workers", "8")
        assert code == 0 and read_failures(tmp_path, "validation") == expected_failures
        after = server.snapshot()
        for path, before in counts.items():
            retried = path in {"/missing", "/broken", "/drop", "/stall", "/short", "/html", "/empty", "/cut", "/slowbody"}
            assert after[path] - before == (1 if retried else 11 if path == "/loop" else 0), path


def test_hostile_names_and_urls_never_write_outside_the_image_folder(tmp_path, capsys):
    body = noise_jpeg(1)
    with FaultServer({"/ok.jpg": Ok(body), "/a/ok.jpg": Ok(body)}) as server:
        root = tmp_path / "root"
        bad_ids = ["../../etc/x", "/abs", "a/b", "..", ".", "", "a\x00b", "a\\b", "x" * 300]
        bad_urls = [server.url("/a/../../ok.jpg"), server.url("/a/%2e%2e/%2E%2E/ok.jpg"), "file:///etc/passwd",
                    "ftp://127.0.0.1/ok.jpg", server.url("/ok.jpg\r\nX-Injected: 1")]
        entries = [(i, server.url("/ok.jpg")) for i in bad_ids]
        entries += [(f"u{k}", url) for k, url in enumerate(bad_urls)] + [("fine", server.url("/a/ok.jpg"))]
        write_imaterialist(root, "train", entries)
        code, out, _ = run(capsys, "imaterialist", "--root", root, "--split", "train", *FAST)
        assert code == 0 and "1 ok (0 already present), 14 failed" in out
        assert files_under(tmp_path) == ["root/download_train_failures.csv", "root/images/train/fine.jpg", "root/train.json"]
        reasons = {row[0]: row[2] for row in read_failures(root, "train")}
        assert reasons == {**{i: "unsafe name" for i in bad_ids}, **{f"u{k}": "unsafe url" for k in range(5)}}
        assert server.snapshot() == {"/a/ok.jpg": 1}  # nothing hostile was even requested
    assert not safe_part("..") and not safe_part("a/b") and safe_part("0001_2124494179.jpg")
    assert safe_url("https://contestimg.wish.com/api/webimage/568e16a72dfd0133cb3f7a79-large")


def test_nus_wide_layout_url_order_and_splits(tmp_path, capsys):
    bodies = {k: noise_jpeg(k) for k in range(4)}
    routes = {"/m0.jpg": Ok(bodies[0]), "/l1.jpg": Ok(bodies[1]), "/m2.jpg": Status(404), "/l2.jpg": Ok(bodies[2]),
              "/s3.jpg": Ok(bodies[3])}
    with FaultServer(routes) as server:
        u = server.url
        rows = [  # Photo_file Photo_id URL_Large URL_Middle URL_Small URL_Original
            (r"C:\ImageData\Flickr\actor\0001_100.jpg", "100", u("/l0.jpg"), u("/m0.jpg"), u("/s0.jpg"), "null"),
            (r"C:\ImageData\Flickr\actor\0002_101.jpg", "101", u("/l1.jpg"), "null", u("/s1.jpg"), "null"),
            (r"C:\ImageData\Flickr\airport\0001_102.jpg", "102", u("/l2.jpg"), u("/m2.jpg"), "null", "null"),
            (r"C:\ImageData\Flickr\dog\0001_103.jpg", "103", "null", "null", u("/s3.jpg"), "null"),
            (r"C:\ImageData\Flickr\dog\0002_104.jpg", "104", "null", "null", "null", "null"),
            (r"C:\ImageData\Flickr\..\..\evil.jpg", "105", u("/m0.jpg"), "null", "null", "null"),
        ]
        text = "Photo_file Photo_id URL_Large URL_Middle URL_Small URL_Original\r\n"
        text += "".join("   ".join(row) + "\r\n" for row in rows)
        (tmp_path / "NUS-WIDE-urls.txt").write_text(text)
        (tmp_path / "ImageList").mkdir()
        (tmp_path / "ImageList" / "TrainImagelist.txt").write_text("actor\\0002_101.jpg\r\ndog\\0002_104.jpg\r\n")

        code, out, _ = run(capsys, "nus-wide", "--root", tmp_path, "--split", "train", *FAST)
        assert code == 0 and "1 ok (0 already present), 1 failed" in out
        assert files_under(tmp_path / "Flickr") == ["actor/0002_101.jpg"]
        assert server.snapshot() == {"/l1.jpg": 1}  # Middle is null: Large

        code, out, _ = run(capsys, "nus-wide", "--root", tmp_path, "--split", "all", *FAST)
        assert code == 0 and "4 ok (1 already present), 2 failed" in out
        flickr = tmp_path / "Flickr"
        assert files_under(flickr) == ["actor/0001_100.jpg", "actor/0002_101.jpg", "airport/0001_102.jpg", "dog/0001_103.jpg"]
        for k, name in enumerate(files_under(flickr)):
            assert (flickr / name).read_bytes() == bodies[k]
        # Middle first; a failed Middle falls back to Large; only Small left: Small
        assert server.snapshot() == {"/m0.jpg": 1, "/l1.jpg": 1, "/m2.jpg": 1, "/l2.jpg": 1, "/s3.jpg": 1}
        assert read_failures(tmp_path, "all") == [["dog\\0002_104.jpg", "", "no url"], ["..\\..\\evil.jpg", u("/m0.jpg"), "unsafe name"]]
        assert not (tmp_path / "evil.jpg").exists() and not (tmp_path.parent / "evil.jpg").exists()


def test_open_images_prefers_original_then_thumbnail(tmp_path, capsys):
    original, thumb = noise_jpeg(1, size=(64, 48)), noise_jpeg(2)
    routes = {"/orig/a.jpg": Ok(original), "/orig/b.jpg": Status(404), "/thumb/b.jpg": Ok(thumb),
              "/orig/c.jpg": Status(410), "/thumb/c.jpg": Ok(b"<html></html>", "text/html")}
    with FaultServer(routes) as server:
        u = server.url
        header = ("ImageID,Subset,OriginalURL,OriginalLandingURL,License,AuthorProfileURL,Author,Title,"
                  "OriginalSize,OriginalMD5,Thumbnail300KURL,Rotation")
        lines = [header] + [f"{i},validation,{u('/orig/' + i[-1] + '.jpg')},https://www.flickr.com/photos/x/1,"
                            f"https://creativecommons.org/licenses/by/2.0/,https://www.flickr.com/people/x/,"
                            f"\"Some, One\",\"A title, with comma\",1000,abc==,{u('/thumb/' + i[-1] + '.jpg')},0"
                            for i in ["000000000000000a", "000000000000000b", "000000000000000c"]]
        split_dir = tmp_path / "2018_04" / "validation"
        split_dir.mkdir(parents=True)
        (split_dir / "validation-images-with-rotation.csv").write_text("\n".join(lines) + "\n")
        code, out, _ = run(capsys, "open-images", "--root", tmp_path, "--split", "validation", *FAST)
        assert code == 0 and "2 ok (0 already present), 1 failed" in out
        images = tmp_path / "images" / "validation"
        assert (images / "000000000000000a.jpg").read_bytes() == original
        assert (images / "000000000000000b.jpg").read_bytes() == thumb
        assert read_failures(tmp_path, "validation") == [["000000000000000c", u("/orig/c.jpg"), "http 410"]]
        assert server.snapshot().get("/thumb/a.jpg") is None


def test_bad_input_is_one_line_exit_2(tmp_path, capsys):
    code, _, err = run(capsys, "imaterialist", "--root", tmp_path, "--split", "train")
    assert code == 2 and err == f"{tmp_path / 'train.json'}: no such file (the iMaterialist list of split 'train')"
    (tmp_path / "train.json").write_text('{"images": [\n  {"url": "http://x/1", "imageId": "1"},\n  oops\n]}')
    code, _, err = run(capsys, "imaterialist", "--root", tmp_path, "--split", "train")
    assert code == 2 and err.startswith(f"{tmp_path / 'train.json'}:3: bad JSON") and "\n" not in err
    code, _, err = run(capsys, "coco", "--root", tmp_path, "--split", "train")
    assert code == 2 and "unknown dataset 'coco'" in err
    (tmp_path / "NUS-WIDE-urls.txt").write_text("Photo_file Photo_id URL_Large URL_Middle URL_Small URL_Original\nonly two\n")
    code, _, err = run(capsys, "nus-wide", "--root", tmp_path, "--split", "all")
    assert code == 2 and err == f"{tmp_path / 'NUS-WIDE-urls.txt'}:2: expected 6 columns, found 2"
    code, _, err = run(capsys, "nus-wide", "--root", tmp_path, "--split", "val")
    assert code == 2 and "unknown NUS-WIDE split 'val'" in err
    assert not (tmp_path / "images").exists()


def slow_images(count=12):
    bodies = {f"/{k}.jpg": noise_jpeg(k, size=(96, 64)) for k in range(count)}
    return bodies, {path: Ok(body, delay=0.25) for path, body in bodies.items()}  # slow: a signal lands mid-body


def interrupt_after(root: Path, landed: int, sig: int) -> subprocess.Popen:
    """Run the downloader in a subprocess; send ``sig`` once ``landed`` files are in place."""
    images = root / "images" / "train"
    proc = subprocess.Popen([sys.executable, "-m", "fashionbench.cli", "download", "imaterialist", "--root",
                             str(root), "--split", "train", "--workers", "2", "--timeout", "5"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "NO_PROXY": "127.0.0.1,localhost"})
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            if images.is_dir() and len(os.listdir(images)) >= landed:
                break
            time.sleep(0.02)
    finally:
        proc.send_signal(sig)
        proc.communicate(timeout=20)
    return proc


def test_ctrl_c_stops_cleanly(tmp_path):
    bodies, routes = slow_images()
    with FaultServer(routes) as server:
        write_imaterialist(tmp_path, "train", [(k, server.url(f"/{k}.jpg")) for k in range(12)])
        proc = interrupt_after(tmp_path, 2, signal.SIGINT)
        assert proc.returncode == 130
        landed = files_under(tmp_path / "images" / "train")
        assert 2 <= len(landed) < 12
        for name in landed:
            assert (tmp_path / "images" / "train" / name).read_bytes() == bodies[f"/{name}"]
        assert os.listdir(tmp_path / "images") == ["train"]  # temp files and folder removed
        assert not (tmp_path / "download_train_failures.csv").exists()  # an unfinished run lists nothing


def test_kill_halfway_then_resume_fetches_only_the_missing(tmp_path, capsys):
    bodies, routes = slow_images()
    with FaultServer(routes) as server:
        write_imaterialist(tmp_path, "train", [(k, server.url(f"/{k}.jpg")) for k in range(12)])
        images = tmp_path / "images" / "train"
        interrupt_after(tmp_path, 3, signal.SIGKILL)
        landed = files_under(images)
        assert 3 <= len(landed) < 12, landed
        assert (tmp_path / "images" / ".download-train.tmp").is_dir()  # where the killed run's partial files went
        for name in landed:  # only whole, verified files are ever under the image folder
            assert (images / name).read_bytes() == bodies[f"/{name[:-4]}.jpg"]
        assert not (tmp_path / "download_train_failures.csv").exists()
        before = server.snapshot()

        code, out, _ = run(capsys, "imaterialist", "--root", tmp_path, "--split", "train", *FAST)
        assert code == 0
        assert out.startswith(f"fashionbench download: 12 ok ({len(landed)} already present), 0 failed")
        assert files_under(images) == sorted(f"{k}.jpg" for k in range(12))
        assert os.listdir(tmp_path / "images") == ["train"]  # the killed run's temp folder was emptied and removed
        after = server.snapshot()
        for path, body in bodies.items():
            assert after.get(path, 0) - before.get(path, 0) == (0 if f"{path[1:]}" in landed else 1), path
            assert (images / path[1:]).read_bytes() == body
        assert read_failures(tmp_path, "train") == []
