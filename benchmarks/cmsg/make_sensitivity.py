"""Writes the configs of CMSG's parameter-sensitivity study (the paper's Sec. 4, "Effect of
the number of attention heads" / "... of layers", on VOC 2007) under
``benchmarks/cmsg/sensitivity/``, each a copy of ``voc2007_cmsg.yaml`` with one setting
changed:

- heads: ``sga_heads = saa_heads = h`` for h in HEADS (2 layers each, as the base);
- layers: ``sga_layers = saa_layers = l`` for l in LAYERS (4 heads each, as the base).

The paper varies "the number of heads and the number of layers of the multi-head masked
attention and cross-attention modules" together; the values it tried and its results are
lost in our copy (the figures and their sentences), so the grids below are this suite's
choice: powers of two around Q2L's 4 heads, and 1-4 layers around Q2L's 2. The base point
(4 heads, 2 layers) is ``voc2007_cmsg.yaml`` itself (row "CMSG"), not a copy.

Run from the repository root: ``python benchmarks/cmsg/make_sensitivity.py``
(``tests/test_cmsg_paper.py`` checks the files are up to date).
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BASE = HERE / "voc2007_cmsg.yaml"
OUT = HERE / "sensitivity"
HEADS = (1, 2, 8)    # + 4 (the base)
LAYERS = (1, 3, 4)   # + 2 (the base)


def _set(text: str, key: str, value: int, comment: str) -> str:
    pattern = re.compile(rf"^(    {key}: )\d+( +)#.*$", re.M)
    if len(pattern.findall(text)) != 1:
        raise ValueError(f"{BASE.name}: expected one '{key}:' line")
    return pattern.sub(lambda m: f"{m.group(1)}{value}{m.group(2)[:max(1, len(m.group(2)) - len(str(value)) + 1)]}# {comment}", text)


def _record(text: str, row: str, model: str) -> str:
    start = text.index("record:\n")
    return text[:start] + f"record:\n  paper: cmsg\n  table: sensitivity\n  row: {row}\n  model: {model}\n"


def expected_configs() -> dict[str, str]:
    """File name -> text of every sensitivity config."""
    base = BASE.read_text(encoding="utf-8")
    body = base[base.index("seed_everything:"):]
    configs = {}
    for h in HEADS:
        text = body
        for module in ("sga", "saa"):
            text = _set(text, f"{module}_heads", h, f"sensitivity study (paper Sec. 4, heads): {h} head(s) in SGA and SAA alike")
        row = f"CMSG, {h} head" + ("s" if h > 1 else "")
        head = (f"# Sensitivity study (paper Sec. 4, number of attention heads), VOC 2007: voc2007_cmsg.yaml\n"
                f"# with {h} head(s) in both SGA and SAA (2 layers each). Written by make_sensitivity.py: edit that, not this.\n")
        configs[f"voc2007_cmsg_heads{h}.yaml"] = head + _record(text, row, f"CMSG-h{h}-l2")
    for n in LAYERS:
        text = body
        for module in ("sga", "saa"):
            text = _set(text, f"{module}_layers", n, f"sensitivity study (paper Sec. 4, layers): {n} layer(s) in SGA and SAA alike")
        row = f"CMSG, {n} layer" + ("s" if n > 1 else "")
        head = (f"# Sensitivity study (paper Sec. 4, number of layers), VOC 2007: voc2007_cmsg.yaml\n"
                f"# with {n} layer(s) in both SGA and SAA (4 heads each). Written by make_sensitivity.py: edit that, not this.\n")
        configs[f"voc2007_cmsg_layers{n}.yaml"] = head + _record(text, row, f"CMSG-h4-l{n}")
    return configs


def main() -> int:
    sys.path.insert(0, str(HERE.parents[1]))
    from fashionbench.io import atomic_write_text

    for name, text in expected_configs().items():
        atomic_write_text(OUT / name, text)
        print(f"wrote {OUT / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
