"""Access to the compiled shim, and the one way syscall failures become errors."""

from __future__ import annotations

import os

from ociruntime._shim import ffi, lib  # noqa: F401  (re-exported for the linux modules)
from ociruntime.errors import SetupError


def check(ret: int, what: str) -> int:
    """Raise SetupError naming what was attempted if a shim call returned -1."""
    if ret < 0:
        err = ffi.errno
        raise SetupError(f"{what}: {os.strerror(err)}")
    return ret

