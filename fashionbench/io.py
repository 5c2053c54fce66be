"""Atomic file writes: a crash or a bad input never leaves a half-written output."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", *, replace: bool = True) -> Iterator[IO]:
    """Open a temp file beside ``path``; on a clean exit it becomes ``path``.

    ``replace=False`` refuses to replace an existing file (``FileExistsError``), for files
    that must never be rewritten, such as run records. On an error the temp file is removed
    and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as handle:
            yield handle
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails instead of overwriting
    finally:
        Path(tmp).unlink(missing_ok=True)


@contextlib.contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive advisory lock (``flock``) on ``path`` (created if missing) for the block.

    For read-modify-write steps that several processes may run at once (the leaderboard
    reads every record and rewrites its files): without it, a process that read the
    records before another's last record appeared could replace the newer output with a
    stale one. Where ``fcntl`` does not exist (Windows) the block runs unlocked.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (replacing it if it exists)."""
    with atomic_open(path) as handle:
        handle.write(text)
    return Path(path)


def write_new_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically, refusing to replace an existing file."""
    with atomic_open(path, replace=False) as handle:
        handle.write(text)
    return Path(path)
