"""``fashionbench download``: fetch the images of a URL-distributed dataset.

iMaterialist, NUS-WIDE and Open Images ship as lists of image URLs. This module reads a
split's list, fetches the images with a thread pool into the layout the readers read
(``specs/interfaces.md``), and writes what could not be fetched to
``ROOT/download_<split>_failures.csv`` (header ``imageId,url,reason``).

Where the URLs come from (format assumptions)
---------------------------------------------
- ``imaterialist``: ``ROOT/<split>.json``, an object whose ``images`` list holds objects
  with ``imageId`` and ``url``. ``imageId`` is a string in some official files
  (``validation.json``) and an int in others (``test.json``); both are written as the
  decimal string. Saved as ``ROOT/images/<split>/<imageId>.jpg``. An item without a URL
  (missing, null or empty) is a failure ``no url``.
- ``nus-wide``: ``ROOT/NUS-WIDE-urls.txt`` of the official distribution: a header line
  (starting with ``Photo_file``), then whitespace-separated rows ``Photo_file Photo_id
  URL_Large URL_Middle URL_Small URL_Original`` where an absent URL is ``null`` and
  ``Photo_file`` is a Windows path such as ``C:\\ImageData\\Flickr\\actor\\0001_2124494179.jpg``.
  The part after the ``Flickr`` folder (``actor\\0001_2124494179.jpg``, the form the image
  lists use, and the ``imageId`` of the failures file) is saved as
  ``ROOT/Flickr/actor/0001_2124494179.jpg``; without a ``Flickr`` folder the last two
  parts are used. URLs are tried in the order Middle, Large, Original, Small (the middle
  size is what the NUS-WIDE image features were computed on, and the Large and Original
  sizes are often absent). ``--split all`` takes every row; ``train`` / ``test`` take the
  rows listed in ``ROOT/ImageList/TrainImagelist.txt`` / ``TestImagelist.txt`` (required
  for those splits; their lines are matched in the same normalised form).
- ``open-images`` (v4, 2018_04): ``ROOT/2018_04/<split>/<split>-images-with-rotation.csv``
  with a header naming at least ``ImageID`` and one of ``OriginalURL`` /
  ``Thumbnail300KURL``. Saved as ``ROOT/images/<split>/<ImageID>.jpg``. ``OriginalURL``
  (full resolution, what the labels were made on) is tried first and the 300K thumbnail
  (about 640 px, hosted separately) when the original fails or is empty. The ``Rotation``
  column is not applied: image-level labels do not depend on it.

A file whose name is not ``.jpg`` (NUS-WIDE) keeps its name; its content is still a JPEG.
An id listed twice is fetched once, from its first entry.

How a file is fetched
---------------------
- Resumable: a file that exists under the image folder is complete (only verified files
  are ever renamed there) and is not fetched again. Items listed in the failures file of
  an earlier completed run (same ``imageId`` and URL) are not fetched again either and stay
  listed; ``--retry-failed`` tries them again. Run one download of a split at a time.
- HTTP through a ``requests.Session`` per worker thread whose ``HTTPAdapter`` carries a
  urllib3 ``Retry``: ``--retries`` retries of connection errors, drops and read timeouts
  before the response, and of the statuses 429/500/502/503/504, with exponential back-off
  (``--backoff`` seconds times 2**k, urllib3's schedule, capped at 30 s; a ``Retry-After``
  header is not obeyed, so that a server cannot stall the run). Redirects are followed
  (at most 10). Any other status (404, 410, ...) fails at once, never retried.
- Errors while the body arrives (a body shorter than its Content-Length, a drop or a
  stall mid-body), which urllib3 does not retry, are retried here ``--retries`` times with
  the same back-off. ``--timeout`` is the connect timeout and the longest wait for the
  next bytes; a whole file must arrive within 20 x ``--timeout``, and may be at most
  ``MAX_BYTES``.
- The body goes to a temp file in a sibling folder of the image folder
  (``.download-<split>.tmp``, emptied on start and removed at the end), is decoded fully
  by Pillow (open + load, so a truncated JPEG fails), and is renamed into place
  atomically after an fsync. An RGB or greyscale JPEG is kept byte for byte as served;
  anything else (PNG with alpha, palette, CMYK JPEG, GIF, WebP, ...) is re-encoded as an
  RGB JPEG (quality 95; EXIF orientation applied first; transparency over white), so that
  every saved file really is a JPEG. Nothing partial or undecodable is ever under the
  image folder. A Ctrl-C stops the workers, removes their temp files and writes no
  failures file; a kill leaves temp files only in the temp folder, emptied by the next run.
- Safety: an ``imageId`` / ``Photo_file`` part that is empty, ``.`` or ``..``, holds a
  path separator, NUL or another control character, or is longer than 200 characters is
  not fetched (``unsafe name``), so no item can write outside the image folder. URLs
  never name files; one that is not http(s), has ``..`` path segments or control
  characters is not fetched (``unsafe url``).

Failure reasons (the ``reason`` column)
---------------------------------------
``http <status>`` (after the retries for 429/5xx), ``timeout``, ``connection error``
(refused, reset or dropped before a response, DNS), ``truncated`` (the body ended or broke
before its Content-Length), ``empty body``, ``not an image`` (Pillow cannot identify the
bytes, e.g. HTML), ``broken image`` (identified but its data does not decode, e.g. a cut
JPEG), ``too large`` (over ``MAX_BYTES`` or Pillow's decompression-bomb limit),
``too many redirects``, ``bad url`` (requests rejects it), ``no url``, ``unsafe name``,
``unsafe url``, ``error <ExceptionType>`` (anything else). With several candidate URLs
the row names the first URL and the reason it failed.

Bad input (a missing list file, unparseable JSON/CSV, a missing column) raises
:class:`~fashionbench.errors.InputError` (``file:line: problem``; exit 2).
"""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from fashionbench.errors import InputError
from fashionbench.io import atomic_write_text

DATASETS = ("imaterialist", "nus-wide", "open-images")
RETRY_STATUSES = (429, 500, 502, 503, 504)
MAX_BYTES = 128 * 2**20
MAX_NAME = 200
MAX_REDIRECTS = 10
CHUNK = 64 * 1024
USER_AGENT = "fashionbench-download/0.1 (python-requests; research dataset download)"
NUS_URL_ORDER = ("URL_Middle", "URL_Large", "URL_Original", "URL_Small")
OPEN_IMAGES_URL_ORDER = ("OriginalURL", "Thumbnail300KURL")
FAILURE_HEADER = ("imageId", "url", "reason")


@dataclass(frozen=True)
class Item:
    """One image to fetch: its id (as in the failures file), candidate URLs in order of
    preference, and its path relative to the image folder (``None`` when unsafe)."""

    image_id: str
    urls: tuple[str, ...]
    relpath: tuple[str, ...] | None


@dataclass
class Summary:
    """What a run did; ``line()`` is the one line the command prints."""

    fetched: int = 0
    present: int = 0
    failures: list[tuple[str, str, str]] = field(default_factory=list)
    carried: int = 0  # failures of an earlier run, not retried
    failures_path: Path | None = None

    def line(self) -> str:
        return (f"fashionbench download: {self.fetched + self.present} ok ({self.present} already present), "
                f"{len(self.failures)} failed; failures in {self.failures_path}")


class Failure(Exception):
    """An item that could not be fetched; ``str(err)`` is its reason."""


class _Retryable(Failure):
    """A failure while the body arrived (truncated, stall, drop): worth another try."""


class _Stopped(Exception):
    """The run was interrupted."""


# --- names -------------------------------------------------------------------------------


def safe_part(name: str) -> bool:
    """Whether ``name`` can be one path component under the image folder."""
    return (0 < len(name) <= MAX_NAME and name not in (".", "..") and "/" not in name and "\\" not in name
            and not any(ord(ch) < 32 or ord(ch) == 127 for ch in name))


def safe_url(url: str) -> bool:
    """http(s) with a host, no ``..`` path segment (also percent-encoded), no control characters."""
    if any(ord(ch) <= 32 or ord(ch) == 127 for ch in url):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return (parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
            and ".." not in unquote(parts.path).replace("\\", "/").split("/"))


def _item(image_id: str, urls, relpath: tuple[str, ...]) -> Item:
    """An Item; ``relpath`` becomes None unless every part is safe; null/empty URLs are dropped."""
    urls = tuple(u.strip() for u in urls if isinstance(u, str) and u.strip() and u.strip().lower() != "null")
    return Item(image_id, urls, relpath if relpath and all(safe_part(p) for p in relpath) else None)


def _jpg(image_id: str) -> tuple[str, ...]:
    """``<imageId>.jpg``, or an unsafe empty path when the id itself is not a safe name."""
    return (f"{image_id}.jpg",) if safe_part(image_id) else ()


# --- list files --------------------------------------------------------------------------


def _require(path: Path, what: str) -> Path:
    if not path.is_file():
        raise InputError(f"no such file ({what})", path=path)
    return path


def _imaterialist(root: Path, split: str) -> tuple[Path, list[Item]]:
    path = _require(root / f"{split}.json", f"the iMaterialist list of split {split!r}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise InputError(f"bad JSON: {err.msg}", path=path, line=err.lineno) from None
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", path=path) from None
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, list):
        raise InputError("no 'images' list", path=path)
    items = []
    for i, entry in enumerate(images):
        image_id = entry.get("imageId") if isinstance(entry, dict) else None
        if isinstance(image_id, bool) or not isinstance(image_id, (str, int)):
            raise InputError(f"images[{i}]: 'imageId' must be a string or an integer", path=path)
        url = entry.get("url")
        if url is not None and not isinstance(url, str):
            raise InputError(f"images[{i}]: 'url' must be a string", path=path)
        image_id = str(image_id)
        items.append(_item(image_id, [url], _jpg(image_id)))
    return root / "images" / split, items


def _nus_relpath(photo_file: str) -> tuple[str, ...]:
    """``C:\\ImageData\\Flickr\\actor\\x.jpg`` (or ``actor\\x.jpg``) -> ``("actor", "x.jpg")``."""
    parts = photo_file.strip().replace("/", "\\").split("\\")
    after = [k + 1 for k, part in enumerate(parts) if part.lower() == "flickr"]
    return tuple(parts[after[-1]:] if after else parts[-2:])


def _nus_wide(root: Path, split: str) -> tuple[Path, list[Item]]:
    path = _require(root / "NUS-WIDE-urls.txt", "the NUS-WIDE URL list")
    wanted = None
    if split in ("train", "test"):
        listed = _require(root / "ImageList" / f"{split.capitalize()}Imagelist.txt", f"the NUS-WIDE {split} image list")
        wanted = {"\\".join(_nus_relpath(line)) for line in listed.read_text(encoding="utf-8", errors="replace").splitlines()
                  if line.strip()}
    elif split != "all":
        raise InputError(f"unknown NUS-WIDE split {split!r} (all, train or test)")
    items = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        header = None
        for lineno, line in enumerate(handle, 1):
            fields = line.split()
            if not fields:
                continue
            if header is None:
                if fields[0] != "Photo_file":
                    raise InputError("expected a header line starting with Photo_file", path=path, line=lineno)
                header = fields
                missing = [c for c in ("Photo_file", *NUS_URL_ORDER) if c not in header]
                if missing:
                    raise InputError(f"header lacks {', '.join(missing)}", path=path, line=lineno)
                continue
            if len(fields) != len(header):
                raise InputError(f"expected {len(header)} columns, found {len(fields)}", path=path, line=lineno)
            row = dict(zip(header, fields))
            relpath = _nus_relpath(row["Photo_file"])
            image_id = "\\".join(relpath)
            if wanted is None or image_id in wanted:
                items.append(_item(image_id, [row[c] for c in NUS_URL_ORDER], relpath))
    if header is None:
        raise InputError("empty file", path=path)
    return root / "Flickr", items


def _open_images(root: Path, split: str) -> tuple[Path, list[Item]]:
    path = _require(root / "2018_04" / split / f"{split}-images-with-rotation.csv",
                    f"the Open Images image list of split {split!r}")
    items = []
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        columns = [c for c in OPEN_IMAGES_URL_ORDER if c in (reader.fieldnames or ())]
        if "ImageID" not in (reader.fieldnames or ()) or not columns:
            raise InputError("header needs ImageID and OriginalURL or Thumbnail300KURL", path=path, line=1)
        try:
            for row in reader:
                image_id = row["ImageID"]
                if image_id is None:
                    raise InputError("short row", path=path, line=reader.line_num)
                items.append(_item(image_id, [row.get(c) for c in columns], _jpg(image_id)))
        except csv.Error as err:
            raise InputError(f"bad CSV: {err}", path=path, line=reader.line_num) from None
    return root / "images" / split, items


READERS = {"imaterialist": _imaterialist, "nus-wide": _nus_wide, "open-images": _open_images}


def list_items(dataset: str, root: str | os.PathLike, split: str) -> tuple[Path, list[Item]]:
    """The image folder and the items of ``dataset``'s ``split`` (duplicate ids: first wins)."""
    if dataset not in READERS:
        raise InputError(f"unknown dataset {dataset!r} (one of {', '.join(DATASETS)})")
    if not safe_part(split):
        raise InputError(f"bad split name {split!r}")
    root = Path(root)
    if not root.is_dir():
        raise InputError("no such directory", path=root)
    image_dir, items = READERS[dataset](root, split)
    seen, unique = set(), []
    for item in items:
        if item.image_id not in seen:
            seen.add(item.image_id)
            unique.append(item)
    return image_dir, unique


# --- fetching ----------------------------------------------------------------------------


def _session(retries: int, backoff: float):
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    retry = Retry(total=None, connect=retries, read=retries, status=retries, other=retries,
                  backoff_factor=backoff, backoff_max=30.0, status_forcelist=RETRY_STATUSES,
                  allowed_methods=frozenset({"GET"}), raise_on_status=False, respect_retry_after_header=False)
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.max_redirects = MAX_REDIRECTS
    session.headers["User-Agent"] = USER_AGENT
    return session


def _chain(err: BaseException):
    """``err`` and every exception it wraps (args, ``reason``, cause, context)."""
    todo, seen = [err], set()
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo.extend(x for x in (*e.args, getattr(e, "reason", None), e.__cause__, e.__context__)
                    if isinstance(x, BaseException))


def _reason(err: BaseException) -> str:
    """The failures-file reason of a requests/urllib3 exception."""
    import requests
    import urllib3.exceptions as u3

    chain = list(_chain(err))
    if any(isinstance(e, requests.TooManyRedirects) for e in chain):
        return "too many redirects"
    if any(isinstance(e, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                          requests.exceptions.InvalidSchema)) for e in chain):
        return "bad url"
    if any(isinstance(e, u3.NewConnectionError) for e in chain):  # a ConnectTimeoutError subclass
        return "connection error"
    if any(isinstance(e, (TimeoutError, u3.TimeoutError, requests.Timeout)) for e in chain):
        return "timeout"
    if any(isinstance(e, (requests.exceptions.ChunkedEncodingError, u3.IncompleteRead)) for e in chain):
        return "truncated"
    return "connection error"


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _to_jpeg(path: Path, tmp_dir: Path) -> Path:
    """Decode ``path`` fully; return it when it is an RGB/greyscale JPEG, else a new RGB
    JPEG of the same picture in ``tmp_dir``. Raises :class:`Failure`."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            if image.format in ("JPEG", "MPO") and image.mode in ("RGB", "L"):
                return path
            image = ImageOps.exif_transpose(image)
            if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
                rgba = image.convert("RGBA")
                rgb = Image.new("RGB", rgba.size, (255, 255, 255))
                rgb.paste(rgba, mask=rgba.getchannel("A"))
            else:
                rgb = image.convert("RGB")
    except Image.DecompressionBombError:
        raise Failure("too large") from None
    except UnidentifiedImageError:
        raise Failure("not an image") from None
    except Exception:  # noqa: BLE001 - any decoder error means the data is broken
        raise Failure("broken image") from None
    fd, out = tempfile.mkstemp(dir=tmp_dir, suffix=".jpg")
    with os.fdopen(fd, "wb") as handle:
        rgb.save(handle, "JPEG", quality=95)
    return Path(out)


class Downloader:
    """Fetches items with ``workers`` threads, each with its own retrying session."""

    def __init__(self, image_dir: Path, tmp_dir: Path, *, workers: int, timeout: float, retries: int, backoff: float):
        self.image_dir, self.tmp_dir = image_dir, tmp_dir
        self.workers, self.timeout, self.retries, self.backoff = workers, timeout, retries, backoff
        self.stop = threading.Event()
        self._local = threading.local()
        self._sessions, self._lock = [], threading.Lock()

    def session(self):
        if not hasattr(self._local, "session"):
            self._local.session = _session(self.retries, self.backoff)
            with self._lock:
                self._sessions.append(self._local.session)
        return self._local.session

    def close(self) -> None:
        for session in self._sessions:
            session.close()

    def dest(self, item: Item) -> Path:
        return self.image_dir.joinpath(*item.relpath)

    def fetch(self, item: Item) -> str | None:
        """Fetch one item into place; its failure reason (of the first URL), or None."""
        first = None
        for url in item.urls:
            try:
                self._fetch_url(url, self.dest(item))
                return None
            except Failure as err:
                first = first or str(err)
            except _Stopped:
                raise
            except Exception as err:  # noqa: BLE001 - one bad item never stops the run
                first = first or f"error {type(err).__name__}"
        return first

    def _fetch_url(self, url: str, dest: Path) -> None:
        for attempt in range(self.retries + 1):
            if attempt:
                if self.stop.wait(min(30.0, self.backoff * 2 ** (attempt - 1))):
                    raise _Stopped
            fd, tmp = tempfile.mkstemp(dir=self.tmp_dir, suffix=".part")
            temps = {Path(tmp)}
            try:
                with os.fdopen(fd, "wb") as handle:
                    self._get(url, handle)
                final = _to_jpeg(Path(tmp), self.tmp_dir)
                temps.add(final)
                _fsync(final)
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(final, dest)
                temps.discard(final)  # its name is free again: another thread may reuse it
                return
            except _Retryable as err:
                if attempt == self.retries:
                    raise Failure(str(err)) from None
            finally:
                for path in temps:
                    path.unlink(missing_ok=True)

    def _get(self, url: str, handle) -> None:
        """Stream ``url``'s body into ``handle``. Raises Failure / _Retryable / _Stopped."""
        import requests

        if self.stop.is_set():
            raise _Stopped
        deadline = time.monotonic() + 20 * self.timeout
        try:
            response = self.session().get(url, stream=True, timeout=(self.timeout, self.timeout))
        except requests.RequestException as err:
            raise Failure(_reason(err)) from None  # urllib3 already retried
        with response:
            if not 200 <= response.status_code < 300:
                raise Failure(f"http {response.status_code}")
            size = 0
            try:
                for chunk in response.iter_content(CHUNK):
                    if self.stop.is_set():
                        raise _Stopped
                    size += len(chunk)
                    if size > MAX_BYTES:
                        raise Failure("too large")
                    if time.monotonic() > deadline:
                        raise _Retryable("timeout")
                    handle.write(chunk)
            except requests.RequestException as err:
                raise _Retryable(_reason(err)) from None
        if size == 0:
            raise Failure("empty body")


# --- the command -------------------------------------------------------------------------


def _read_failures(path: Path) -> dict[str, tuple[str, str]]:
    """imageId -> (url, reason) of an earlier run's failures file."""
    if not path.is_file():
        return {}
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        if tuple(next(reader, ())) != FAILURE_HEADER:
            raise InputError(f"not a failures file (header should be {','.join(FAILURE_HEADER)})", path=path, line=1)
        return {row[0]: (row[1], row[2]) for row in reader if len(row) == 3}


def _write_failures(path: Path, failures: list[tuple[str, str, str]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(FAILURE_HEADER)
    writer.writerows(failures)
    atomic_write_text(path, buffer.getvalue())


def download(dataset: str, root: str | os.PathLike, split: str, *, workers: int = 16, timeout: float = 30.0,
             retries: int = 3, backoff: float = 0.5, retry_failed: bool = False, progress: bool | None = None) -> Summary:
    """Fetch ``dataset``'s ``split`` under ``root``; write the failures file; return a Summary.

    ``progress``: tqdm on stderr (None: only when stderr is a terminal).
    """
    if workers < 1 or timeout <= 0 or retries < 0 or backoff < 0:
        raise InputError("--workers must be >= 1, --timeout > 0, --retries and --backoff >= 0")
    from tqdm import tqdm

    image_dir, items = list_items(dataset, root, split)
    failures_path = Path(root) / f"download_{split}_failures.csv"
    earlier = {} if retry_failed else _read_failures(failures_path)
    tmp_dir = image_dir.parent / f".download-{split}.tmp"
    shutil.rmtree(tmp_dir, ignore_errors=True)  # what a killed run left
    tmp_dir.mkdir(parents=True)
    image_dir.mkdir(parents=True, exist_ok=True)

    summary = Summary(failures_path=failures_path)
    reasons: dict[int, str] = {}
    todo: list[int] = []
    loader = Downloader(image_dir, tmp_dir, workers=workers, timeout=timeout, retries=retries, backoff=backoff)
    for index, item in enumerate(items):
        if item.relpath is None:
            reasons[index] = "unsafe name"
        elif not item.urls:
            reasons[index] = "no url"
        elif not all(safe_url(u) for u in item.urls):
            reasons[index] = "unsafe url"
        elif loader.dest(item).is_file():
            summary.present += 1
        elif item.image_id in earlier and earlier[item.image_id][0] in item.urls:
            reasons[index] = earlier[item.image_id][1]
            summary.carried += 1
        else:
            todo.append(index)

    bar = tqdm(total=len(todo), desc=f"download {dataset} {split}", unit="img", file=sys.stderr,
               disable=(None if progress is None else not progress))
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="download")
    pending = {}

    def collect(done) -> None:
        for future in done:
            index = pending.pop(future)
            reason = future.result()
            if reason is None:
                summary.fetched += 1
            else:
                reasons[index] = reason
            bar.update(1)
            bar.set_postfix(failed=len(reasons), refresh=False)

    try:
        for index in todo:  # a bounded window of submitted items, so memory stays flat
            if len(pending) >= 4 * workers:
                collect(wait(pending, return_when=FIRST_COMPLETED)[0])
            pending[pool.submit(loader.fetch, items[index])] = index
        while pending:
            collect(wait(pending, return_when=FIRST_COMPLETED)[0])
    except BaseException:
        loader.stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)
        bar.close()
        loader.close()
        shutil.rmtree(tmp_dir, ignore_errors=True)

    summary.failures = [(items[i].image_id, items[i].urls[0] if items[i].urls else "", reasons[i]) for i in sorted(reasons)]
    _write_failures(failures_path, summary.failures)
    if summary.carried:
        print(f"fashionbench download: {summary.carried} failures of an earlier run were not tried again "
              "(--retry-failed tries them)", file=sys.stderr)
    return summary
