"""What the attack tests share: a racing helper process, and building attack bundles.

A racer is a separate process (real parallelism on the second core, and no GIL in the way)
that swaps two paths with renameat2(RENAME_EXCHANGE) in a tight loop until it is stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

RACER = r"""
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
a, b = (p.encode() for p in sys.argv[1:3])
print("ready", flush=True)
while True:
    libc.renameat2(-100, a, -100, b, 2)  # AT_FDCWD, RENAME_EXCHANGE
"""


@contextmanager
def racing(a: Path, b: Path) -> Iterator[None]:
    """Swap a and b continuously while the block runs."""
    proc = subprocess.Popen([sys.executable, "-c", RACER, str(a), str(b)], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        yield
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def run_while_racing(oci, bundle_dir: Path, vol: Path, swapped: str, symlink_to: str, check,
                     rounds: int = 200) -> None:
    """`rounds` times: a fresh volume `vol` holding the directory `swapped` and a symlink `alt`
    to `symlink_to`, swapped continuously while the container runs; then `check()` (what the
    attack must never achieve). The runtime may refuse a run, never crash; and the attack must
    not simply stop every container."""
    import shutil

    ran = 0
    for _ in range(rounds):
        shutil.rmtree(vol, ignore_errors=True)
        vol.mkdir()
        (vol / swapped).mkdir()
        (vol / "alt").symlink_to(symlink_to)
        cid = oci.new_id()
        with racing(vol / swapped, vol / "alt"):
            res = oci.run("run", "-b", str(bundle_dir), cid)
        ran += res.returncode == 0
        oci.run("delete", "-f", cid)
        assert b"Traceback" not in res.stderr and b"internal error" not in res.stderr, res.stderr
        check()
    assert ran > 0, f"every one of {rounds} runs was refused"


def replace_with_symlink(path: Path, target: str) -> None:
    """Bundles share their rootfs files with a base tree through hard links: replace the entry,
    never write through it."""
    if path.is_dir() and not path.is_symlink():
        os.rmdir(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    path.symlink_to(target)


def core_pattern() -> str:
    with open("/proc/sys/kernel/core_pattern") as f:
        return f.read()
