"""The one error type for bad user input.

Anything the user can fix (a malformed annotation line, a missing key in a predictions
file, an unknown dataset) raises :class:`InputError`. The CLI prints ``str(err)`` as one
line on stderr and exits with code 2; nothing else is printed, no traceback.
"""
from __future__ import annotations

import os


class InputError(Exception):
    """Bad input, rendered as ``file:line: problem`` (or ``file: problem``, or ``problem``)."""

    exit_code = 2

    def __init__(self, message: str, path: str | os.PathLike | None = None, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.path = None if path is None else os.fspath(path)
        self.line = line

    def __str__(self) -> str:
        if self.path is None:
            return self.message
        if self.line is None:
            return f"{self.path}: {self.message}"
        return f"{self.path}:{self.line}: {self.message}"
