"""`--systemd-cgroup` on a host without systemd (this development machine: cgroup v1/hybrid, no
systemd as PID 1, no system bus): create fails with one line saying systemd cannot be reached,
and leaves nothing behind -- as runc also refuses. The driver itself is tested against a real
systemd in the guest (tests/guest/test_systemd_driver.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import (
    BundleFactory,
    Runtime,
    assert_clean_error,
    assert_json_error_log,
    leaks,
)
from tests.dbusd import private_bus


def scope_dirs(cid: str) -> list[str]:
    """Directories named like the unit the driver would ask systemd for, in any hierarchy."""
    found = []
    for dirpath, dirnames, _ in os.walk("/sys/fs/cgroup"):
        found += [os.path.join(dirpath, d) for d in dirnames if cid in d]
    return found


def create(rt: Runtime, bundle_dir: Path, cid: str, log: Path | None = None,
           env: dict | None = None) -> subprocess.CompletedProcess:
    return rt.run("--systemd-cgroup", "create", "--bundle", str(bundle_dir), cid, log_json=log,
                  env=env)


@pytest.mark.skipif(os.path.exists("/run/systemd/system"), reason="this host runs systemd")
def test_no_system_bus(oci: Runtime, runc: Runtime, bundle: BundleFactory, tmp_path: Path) -> None:
    assert not os.path.exists("/run/dbus/system_bus_socket")
    b = bundle(["true"])
    cid = oci.new_id("sd")
    log = tmp_path / "log.json"
    res = create(oci, b, cid, log, env={**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": ""})
    line = assert_clean_error(res, "--systemd-cgroup", "cannot reach systemd on the system bus",
                              "/run/dbus/system_bus_socket", "no such file")
    assert "Traceback" not in line
    assert "cannot reach systemd" in assert_json_error_log(log)["msg"]
    assert leaks(oci.root, cid, b) == [] and scope_dirs(cid) == []
    # runc refuses too (its D-Bus connection fails the same way).
    rcid = runc.new_id("sd")
    assert create(runc, b, rcid).returncode != 0
    assert oci.status(cid) == "absent"


def test_bus_without_systemd(oci: Runtime, bundle: BundleFactory, tmp_path: Path) -> None:
    """A real D-Bus daemon that has no systemd on it (a container with dbus, a broken boot):
    the same one clear line, naming the bus and what it answered."""
    with private_bus(tmp_path) as sock:
        b = bundle(["true"])
        cid = oci.new_id("sd")
        res = create(oci, b, cid, env={**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={sock}"})
        assert_clean_error(res, "cannot reach systemd on the system bus", str(sock),
                           "org.freedesktop.systemd1")
        assert leaks(oci.root, cid, b) == [] and scope_dirs(cid) == []


def test_not_listening(oci: Runtime, bundle: BundleFactory, tmp_path: Path) -> None:
    """A socket path nobody listens on: connection refused, in one line."""
    import socket

    path = tmp_path / "dead"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()  # bound, never listening: connect(2) is refused
    b = bundle(["true"])
    cid = oci.new_id("sd")
    res = create(oci, b, cid, env={**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={path}"})
    assert_clean_error(res, "cannot reach systemd on the system bus", str(path), "refused")
    assert leaks(oci.root, cid, b) == [] and scope_dirs(cid) == []


def imported_modules(*args: str) -> list[str]:
    """Modules a Python run of this tree imports (python -X importtime)."""
    root = Path(__file__).resolve().parent.parent.parent
    res = subprocess.run([sys.executable, "-X", "importtime", *args], capture_output=True,
                         text=True, timeout=30, cwd=root, env={**os.environ, "PYTHONPATH": str(root)})
    assert "Traceback" not in res.stderr, res.stderr[-2000:]
    return [ln.rsplit("|", 1)[-1].strip() for ln in res.stderr.splitlines() if "|" in ln]


def test_the_dbus_client_only_where_systemd_is_asked(oci: Runtime, bundle: BundleFactory) -> None:
    """The D-Bus client is loaded only where systemd is asked: not by `state` (the command
    engines call most), not by loading the driver to read a saved container."""
    b = bundle(["sleep", "30"])
    cid = oci.new_id("sd")
    oci.run("create", "--bundle", str(b), cid, check=True)
    state = imported_modules("-m", "ociruntime", "--root", str(oci.root), "state", cid)
    assert "ociruntime.cli" in state
    driver = imported_modules("-c", "import ociruntime.linux.cgroups.systemd")
    assert "ociruntime.linux.cgroups.systemd" in driver
    for mods in (state, driver):
        assert not [m for m in mods if m.endswith("cgroups.dbus")]
