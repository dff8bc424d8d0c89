"""The small commands stay small: `state`, `start`, `kill`, `pause`/`resume`'s status never import
`os` (~1.2 ms a call: ociruntime/lean.py) nor the cgroup drivers (linux/freezer.py), and
`delete` loads its cgroup driver without `os`, on a real container, through the installed
launcher's own interpreter with `-X importtime`."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import Runtime, host_cgroup_dirs, launcher_interpreter

pytestmark = [pytest.mark.lifecycle, pytest.mark.cgroupv2]

# Each is ~1 ms or more on every call of a command that needs none of it.
NOT_ON_THE_SMALL_PATH = {"os", "posixpath", "_collections_abc", "__future__", "ociruntime.linux.cgroups",
                         "ociruntime.create", "ociruntime.bundle", "ociruntime.linux.kernel"}


def _imports_of(oci: Runtime, *args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run one command under -X importtime: its result and the modules it imported."""
    cmd = [launcher_interpreter(), "-I", "-S", "-X", "importtime", *oci.cmd(*args)]
    res = subprocess.run(cmd, capture_output=True, timeout=30)
    names = set()
    for line in res.stderr.decode(errors="replace").splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    return res, names


def _assert_lean(oci: Runtime, *args: str, needs: frozenset = frozenset()) -> subprocess.CompletedProcess:
    res, names = _imports_of(oci, *args)
    assert res.returncode == 0, res.stderr.decode(errors="replace")[-2000:]
    assert "ociruntime.cli" in names, "the probe saw no import at all"
    heavy = sorted((NOT_ON_THE_SMALL_PATH - needs) & names)
    assert heavy == [], f"`{' '.join(args)}` imported {heavy}"
    return res


def _status(res: subprocess.CompletedProcess) -> str:
    import json

    return json.loads(res.stdout)["status"]


def test_state_start_kill_and_pause_status_never_import_os(oci: Runtime, bundle) -> None:
    cid = oci.new_id()
    oci.run("create", "--bundle", str(bundle(["sleep", "60"])), cid, check=True)
    assert _status(_assert_lean(oci, "state", cid)) == "created"
    _assert_lean(oci, "start", cid)
    assert _status(_assert_lean(oci, "state", cid)) == "running"
    oci.run("pause", cid, check=True)
    assert _status(_assert_lean(oci, "state", cid)) == "paused"  # read without the drivers
    oci.run("resume", cid, check=True)
    assert _status(_assert_lean(oci, "state", cid)) == "running"
    _assert_lean(oci, "kill", cid, "KILL")
    assert oci.wait_status(cid, "stopped") == "stopped"
    # delete removes the cgroup: it needs the driver, but not os
    _assert_lean(oci, "delete", cid, needs=frozenset({"ociruntime.linux.cgroups"}))
    assert oci.status(cid) == "absent"
    assert host_cgroup_dirs(cid) == []
