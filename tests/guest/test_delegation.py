"""Cgroup delegation (runtime-spec config-linux "cgroup ownership") on the guest's cgroup v2:
with a user namespace, a new cgroup namespace and a read-write cgroup mount, the container's
cgroup directory and the files of /sys/kernel/cgroup/delegate belong to the container's root
as the host sees it, and a process inside does what a systemd inside does with its subtree:
make sub-cgroups, move itself into one, enable controllers for the others. The limits set on the
cgroup itself stay root's. Checked with the cgroupfs and the systemd driver."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import BundleFactory, Runtime

HOST_ROOT = 100000  # container uid/gid 0 maps here
# What the container's init does, as a systemd-less stand-in for a systemd managing its subtree.
SCRIPT = """set -e
exec > /tmp/out 2>&1
cd /sys/fs/cgroup
mkdir init work
echo $$ > init/cgroup.procs
echo +pids +memory > cgroup.subtree_control
echo 5 > work/pids.max
echo "in: $(cat /proc/self/cgroup)"
echo "controllers: $(cat work/cgroup.controllers)"
echo "work pids.max: $(cat work/pids.max)"
if echo 1 > memory.max 2>/dev/null; then echo "raised own limit"; else echo "own limit refused"; fi
"""


@pytest.fixture
def bundle(base_rootfs: Path) -> Iterator[BundleFactory]:
    """Bundles on a path the container's root (host uid 100000) can traverse: pytest's tmp
    dirs are 0700, so a rootfs under them is unreachable from inside a user namespace."""
    top = Path(tempfile.mkdtemp(prefix="ociruntime-deleg-", dir="/var/tmp"))
    top.chmod(0o755)
    yield BundleFactory(top, base_rootfs)
    shutil.rmtree(top, ignore_errors=True)


def delegation_bundle(bundle: BundleFactory, cgroups_path: str) -> Path:
    def edit(cfg: dict) -> None:
        linux = cfg["linux"]
        linux["namespaces"] += [{"type": "user"}, {"type": "cgroup"}]
        linux["uidMappings"] = [{"containerID": 0, "hostID": HOST_ROOT, "size": 65536}]
        linux["gidMappings"] = [{"containerID": 0, "hostID": HOST_ROOT, "size": 65536}]
        linux["cgroupsPath"] = cgroups_path
        linux["resources"]["memory"] = {"limit": 64 << 20}
        for m in cfg["mounts"]:
            if m["destination"] == "/sys/fs/cgroup":
                m["options"] = [o for o in m["options"] if o != "ro"]
        cfg["root"]["readonly"] = False

    return bundle(["sh", "-c", SCRIPT], edit=edit)


@pytest.mark.parametrize("driver", ["cgroupfs", "systemd"])
def test_delegated_cgroup(oci: Runtime, bundle: BundleFactory, driver: str) -> None:
    cid = oci.new_id("deleg")
    if driver == "systemd":
        path, cgroup = f"system.slice:deleg:{cid}", f"/sys/fs/cgroup/system.slice/deleg-{cid}.scope"
        flags = ["--systemd-cgroup"]
    else:
        path, flags = f"/deleg-{uuid.uuid4().hex[:8]}", []
        cgroup = f"/sys/fs/cgroup{path}"
    b = delegation_bundle(bundle, path)
    oci.run(*flags, "create", "--bundle", str(b), cid, check=True, timeout=120)
    delegated = set(Path("/sys/kernel/cgroup/delegate").read_text().split())
    assert {"cgroup.procs", "cgroup.subtree_control", "cgroup.threads"} <= delegated
    st = os.stat(cgroup)
    assert (st.st_uid, st.st_gid) == (HOST_ROOT, HOST_ROOT)
    owners = {name: os.stat(f"{cgroup}/{name}").st_uid for name in os.listdir(cgroup)
              if os.path.isfile(f"{cgroup}/{name}")}
    assert {n for n, uid in owners.items() if uid == HOST_ROOT} == delegated & set(owners), owners
    assert owners["memory.max"] == 0 and owners["cgroup.procs"] == HOST_ROOT

    oci.run("start", cid, check=True)
    assert oci.wait_status(cid, "stopped", timeout=60) == "stopped"
    out = (b / "rootfs" / "tmp" / "out").read_text()
    assert "in: 0::/init" in out, out
    assert "pids" in out.split("controllers:")[1].split("\n")[0], out
    assert "work pids.max: 5" in out and "own limit refused" in out, out
    oci.run("delete", "-f", cid, check=True, timeout=60)
    assert not os.path.exists(cgroup)


def test_no_user_namespace_no_chown(oci: Runtime, bundle: BundleFactory) -> None:
    """Without a user namespace the container's root is the host's: nothing changes owner."""
    cid = oci.new_id("deleg")
    path = f"/deleg-{uuid.uuid4().hex[:8]}"

    def edit(cfg: dict) -> None:
        cfg["linux"]["namespaces"].append({"type": "cgroup"})
        cfg["linux"]["cgroupsPath"] = path
        for m in cfg["mounts"]:
            if m["destination"] == "/sys/fs/cgroup":
                m["options"] = [o for o in m["options"] if o != "ro"]

    oci.run("create", "--bundle", str(bundle(["true"], edit=edit)), cid, check=True, timeout=120)
    cgroup = f"/sys/fs/cgroup{path}"
    assert os.stat(cgroup).st_uid == 0 and os.stat(f"{cgroup}/cgroup.procs").st_uid == 0
    oci.run("delete", "-f", cid, check=True, timeout=60)
