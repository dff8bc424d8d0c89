"""The `type: cgroup` mount on a cgroup2-only host is cgroup2 itself at its destination, as runc
mounts it (kubelet's containers, through containerd's CRI, read their limits there): in a cgroup
namespace its root is the container's own cgroup, so /sys/fs/cgroup/memory.max is its limit."""

from __future__ import annotations

from conformance.bundle import default_config
from tests.conftest import BundleFactory, Runtime

MiB = 1 << 20
SHOW = "grep ' /sys/fs/cgroup ' /proc/self/mountinfo; cat /proc/self/cgroup /sys/fs/cgroup/memory.max"


def cgroup_view(rt: Runtime, bundle: BundleFactory) -> tuple[list[str], list[str]]:
    """(the mounts on /sys/fs/cgroup as (root, fs type), then the rest of SHOW's lines)."""
    cid = rt.new_id("cgmnt")
    cfg = default_config(["sh", "-c", SHOW])
    cfg["linux"]["namespaces"].append({"type": "cgroup"})
    cfg["linux"]["cgroupsPath"] = f"/{cid}"
    cfg["linux"]["resources"]["memory"] = {"limit": 48 * MiB}
    res = rt.run("run", "-b", str(bundle(config=cfg)), cid)
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    lines = res.stdout.decode().splitlines()
    mounts = [f"{ln.split()[3]} {ln.split(' - ')[1].split()[0]}" for ln in lines if " - " in ln]
    return mounts, [ln for ln in lines if " - " not in ln]


def test_cgroup_mount_is_cgroup2_rooted_at_the_containers_cgroup(oci: Runtime, runc: Runtime,
                                                                 bundle: BundleFactory) -> None:
    ours, theirs = cgroup_view(oci, bundle), cgroup_view(runc, bundle)
    assert ours == theirs == (["/ cgroup2"], ["0::/", str(48 * MiB)])
