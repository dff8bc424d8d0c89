"""Cleaning up after an engine run in a private directory: its mounts, the processes that name
the directory, its cgroups. Shared by the client tests (tests/clients/conftest.py) and the bench
(bench/bench.py), which cannot import a module that imports pytest: this one imports only the
standard library."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path


def unmount_under(base: Path) -> None:
    """Lazily unmount everything mounted at or below `base` (deepest first): an engine's overlay,
    shm and netns mounts, in this private mount namespace."""
    prefix = str(base) + "/"
    with open("/proc/self/mountinfo") as f:
        points = {line.split()[4] for line in f}
    for point in sorted((p for p in points if p == str(base) or p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


def kill_processes_mentioning(text: str) -> None:
    """SIGKILL the processes whose command line names `text`, our private directory (an engine's
    daemon or shims that outlived it): nothing else can name it."""
    me = str(os.getpid()).encode()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or pid.encode() == me:
            continue
        with contextlib.suppress(OSError):
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if text.encode() in f.read():
                    os.kill(int(pid), signal.SIGKILL)


def rmdir_cgroup_tree(top: str | Path) -> None:
    """rmdir a cgroup and everything below it, deepest first; a directory whose last process
    was just killed is retried for a while (it leaves its cgroup only once it is reaped)."""
    for sub in sorted((d for d, _, _ in os.walk(top)), key=len, reverse=True):
        for _ in range(50):
            try:
                os.rmdir(sub)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.05)
