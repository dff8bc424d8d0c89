"""Per-phase timings for `--debug create`: where did the milliseconds go?

The phase marks double as fault-injection points for the robustness tests: with
OCIRUNTIME_TEST_KILL_AT=<phase> in the environment, reaching that mark SIGKILLs the runtime
process (directly, or at the request of its init for the phases that run there), as an OOM kill
or a caller's timeout would at that moment."""

import posix
import time

from ociruntime import lean

_START = time.monotonic()
_marks: list[list] = []
_RUNTIME_PID = posix.getpid()  # taken at import: in a forked child it still names the runtime
_KILL_AT = lean.getenv("OCIRUNTIME_TEST_KILL_AT")


_channel = -1  # in the runtime's children: the sync socket to the runtime (test-only use)


def mark(phase: str) -> None:
    _marks.append([phase, time.monotonic()])
    if _KILL_AT == phase:
        _fault()


def fault_channel(fd: int) -> None:
    """In a child of the runtime: where to ask the runtime to die (see _fault)."""
    global _channel
    _channel = fd


def _fault() -> None:
    """Test-only: SIGKILL the runtime now. The init lives in another pid namespace, where the
    runtime cannot be signalled; it asks over the sync socket, and the runtime (waiting there
    while the init works) kills itself on that message."""
    if posix.getpid() == _RUNTIME_PID:
        posix.kill(_RUNTIME_PID, 9)
    elif _channel >= 0:
        posix.write(_channel, b'{"t":"fault"}')


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
