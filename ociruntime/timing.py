"""Per-phase timings for `--debug create`: where did the milliseconds go?"""

from __future__ import annotations

import time

_START = time.monotonic()
_marks: list[list] = []


def mark(phase: str) -> None:
    _marks.append([phase, time.monotonic()])


def marks() -> list[list]:
    return _marks


def merge(remote: list[list]) -> None:
    """Add the init's marks (same monotonic clock: same boot, same host)."""
    _marks.extend(remote)
    _marks.sort(key=lambda m: m[1])


def breakdown() -> str:
    parts = []
    last = _START
    for phase, t in _marks:
        parts.append(f"{phase}={(t - last) * 1000:.1f}ms")
        last = t
    parts.append(f"total={(last - _START) * 1000:.1f}ms")
    return " ".join(parts)
