"""Resident memory of the running process, for the benchmarks (Linux ``/proc``).

Not a benchmark (``run_all.py`` skips modules whose name starts with ``_``).
"""
from __future__ import annotations


def memory_kb() -> dict[str, int]:
    """``{"VmRSS": kB, "VmHWM": kB}``: the resident set now and its peak since the last reset."""
    fields = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0])
    return fields
