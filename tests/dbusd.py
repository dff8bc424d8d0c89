"""A private D-Bus daemon for tests: the reference bus implementation, with no systemd on it."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

CONF = (
    "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN\" "
    "\"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
    "<busconfig><type>session</type><listen>unix:path={sock}</listen><auth>EXTERNAL</auth>"
    "<policy context=\"default\"><allow send_destination=\"*\"/><allow receive_sender=\"*\"/>"
    "<allow own=\"*\"/></policy></busconfig>\n")


@contextmanager
def private_bus(directory: Path, run_as: Sequence[str] = ()) -> Iterator[Path]:
    """dbus-daemon listening on directory/bus (run through `run_as`, e.g. setpriv), stopped
    afterwards; yields the socket's path."""
    daemon = shutil.which("dbus-daemon")
    if daemon is None:
        pytest.fail("dbus-daemon is not installed (Debian package dbus-daemon: scripts/install.sh)")
    sock = directory / "bus"
    conf = directory / "bus.conf"
    conf.write_text(CONF.format(sock=sock))
    proc = subprocess.Popen([*run_as, daemon, f"--config-file={conf}", "--nofork", "--nopidfile"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert sock.exists(), "dbus-daemon did not start"
        yield sock
    finally:
        proc.terminate()
        proc.wait(timeout=10)
