"""JSON annotation files (COCO, iMaterialist): parse once, name the line of a bad item.

Not a dataset (the registry skips modules whose name starts with ``_``).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from fashionbench.errors import InputError

__all__ = ["JSONAnnotationFile", "json_array_item_line"]

_WS = re.compile(r"[ \t\n\r]*")


def json_array_item_line(text: str, key: str, index: int) -> int | None:
    """1-based line where item ``index`` of the top-level array ``key`` starts.

    Used on the error path only: walks the top level with ``JSONDecoder.raw_decode``
    (C speed per value), so it costs about one more parse of the file. None if the
    document does not have that shape.
    """
    decoder = json.JSONDecoder()
    try:
        pos = _WS.match(text, 0).end()
        if text[pos] != "{":
            return None
        pos += 1
        while True:
            pos = _WS.match(text, pos).end()
            if text[pos] == "}":
                return None
            name, pos = decoder.raw_decode(text, pos)
            pos = _WS.match(text, pos).end() + 1  # ':'
            pos = _WS.match(text, pos).end()
            if name == key and text[pos] == "[":
                pos += 1
                for _ in range(index):
                    pos = _WS.match(text, pos).end()
                    _, pos = decoder.raw_decode(text, pos)
                    pos = _WS.match(text, pos).end() + 1  # ','
                pos = _WS.match(text, pos).end()
                return text.count("\n", 0, pos) + 1
            _, pos = decoder.raw_decode(text, pos)
            pos = _WS.match(text, pos).end()
            if text[pos] == ",":
                pos += 1
    except (ValueError, IndexError):
        return None



class JSONAnnotationFile:
    """One parsed JSON object file; errors re-read the text to name the offending line.

    ``what`` says what the top-level object must hold (for the error when it is not an object).
    """

    def __init__(self, path: Path, what: str):
        self.path = path
        try:
            self.raw = path.read_bytes()
        except FileNotFoundError:
            raise InputError("missing annotation file", path=path) from None
        try:
            self.doc = json.loads(self.raw)
        except json.JSONDecodeError as err:
            raise InputError(f"bad JSON: {err.msg} (column {err.colno})", path=path, line=err.lineno) from None
        except UnicodeDecodeError as err:
            raise InputError(f"not UTF-8 ({err.reason})", path=path,
                             line=self.raw[: err.start].count(b"\n") + 1) from None
        if not isinstance(self.doc, dict):
            raise InputError(f"expected a JSON object with {what}", path=path, line=1)

    def error(self, key: str, index: int, problem: str) -> InputError:
        line = json_array_item_line(self.raw.decode("utf-8"), key, index)
        return InputError(f"{key}[{index}]: {problem}", path=self.path, line=line)
