"""Namespaces (issue 2 point 5), seen from outside (/proc/<pid>/ns/*) and from inside."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conformance.bundle import default_config, make_bundle
from tests.conftest import Runtime, assert_clean_error

ALL_KINDS = {"pid": "pid", "network": "net", "ipc": "ipc", "uts": "uts", "mount": "mnt",
             "cgroup": "cgroup", "user": "user", "time": "time"}
USERNS_MAPS = {"uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
               "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]}


@pytest.fixture
def userns_bundle(base_rootfs: Path, oci: Runtime) -> Iterator[Callable[..., Path]]:
    """Bundles on a path the container's root (host uid 100000) can traverse: pytest's tmp
    dirs are 0700, so the rootfs under them is unreachable from inside a user namespace."""
    top = Path(tempfile.mkdtemp(prefix="ociruntime-userns-", dir="/tmp"))
    top.chmod(0o755)
    made = [0]

    def make(args: list[str], edit: Callable[[dict], None]) -> Path:
        made[0] += 1
        cfg = default_config(args)
        edit(cfg)
        return make_bundle(top / f"bundle{made[0]}", config=cfg, rootfs_from=base_rootfs)
    yield make
    oci.cleanup()  # containers first (this teardown runs before oci's), then their bundles
    shutil.rmtree(top, ignore_errors=True)


def ns(pid: int | str, proc_name: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{proc_name}")


def created_pid(rt: Runtime, b: Path) -> tuple[str, int]:
    cid = rt.new_id("ns")
    res = rt.run("create", "-b", str(b), cid)
    assert res.returncode == 0, f"{rt.binary}: {res.stderr.decode()}"
    return cid, rt.state(cid)["pid"]


def inside(rt: Runtime, b: Path) -> str:
    res = rt.run("run", "-b", str(b), rt.new_id("ns"))
    assert res.returncode == 0, f"{rt.binary}: exit {res.returncode}: {res.stderr.decode()}"
    return res.stdout.decode()


def with_namespaces(kinds: list[str], userns: bool = False, time_offsets: dict | None = None):
    def edit(c: dict) -> None:
        c["linux"]["namespaces"] = [{"type": k} for k in kinds]
        if userns:
            c["linux"].update(USERNS_MAPS)
        if time_offsets is not None:
            c["linux"]["timeOffsets"] = time_offsets
        if "uts" not in kinds:
            c.pop("hostname", None)  # a hostname needs a uts namespace (rejected otherwise)
        if "cgroup" not in kinds and "user" in kinds:
            # sysfs and cgroupfs cannot be mounted from a user namespace without the matching
            # namespaces; keep the test about namespaces, not mounts.
            c["mounts"] = [m for m in c["mounts"] if m["type"] not in ("cgroup",)]
    return edit


@pytest.mark.parametrize("kinds", [
    ["pid", "network", "ipc", "uts", "mount"],
    ["mount"],
    ["pid", "mount", "cgroup"],
    ["uts", "ipc", "mount"],
], ids=lambda k: "+".join(k))
def test_requested_namespaces_differ_and_the_rest_are_shared(kinds: list[str], oci: Runtime, bundle) -> None:
    edit = with_namespaces(kinds)
    if "network" not in kinds:
        # Without its own network namespace a container cannot mount a fresh sysfs (runc
        # binds it instead): leave it out, it is not what this test is about.
        base_edit = edit

        def edit(c: dict) -> None:
            base_edit(c)
            c["mounts"] = [m for m in c["mounts"] if m["type"] not in ("sysfs", "cgroup")]
    _, pid = created_pid(oci, bundle(args=["sleep", "100"], edit=edit))
    for kind, proc_name in ALL_KINDS.items():
        if kind in kinds:
            assert ns(pid, proc_name) != ns("self", proc_name), f"{kind} namespace not created"
        else:
            assert ns(pid, proc_name) == ns("self", proc_name), f"{kind} namespace not requested"


def test_pid_namespace_makes_the_program_pid_1(oci: Runtime, bundle) -> None:
    assert inside(oci, bundle(args=["sh", "-c", "echo $$"])) == "1\n"


def test_hostname_and_domainname(oci: Runtime, runc: Runtime, bundle) -> None:
    def names(c: dict) -> None:
        c["hostname"] = "box-one"
        c["domainname"] = "example.test"
    b = bundle(args=["sh", "-c", "hostname; cat /proc/sys/kernel/domainname"], edit=names)
    assert inside(oci, b) == "box-one\nexample.test\n"
    host = Path("/proc/sys/kernel/hostname").read_text()
    assert host.strip() != "box-one", "the host's hostname was changed"
    # runc 1.1.5 ignores domainname (it prints "(none)"); compare the hostname only.
    assert inside(runc, b).splitlines()[0] == "box-one"


def test_loopback_is_up_in_a_new_network_namespace(oci: Runtime, runc: Runtime, bundle) -> None:
    b = bundle(args=["sh", "-c", "cat /sys/class/net/lo/flags; ls /sys/class/net"])
    out = inside(oci, b).split()
    assert int(out[0], 16) & 0x1, f"lo is not UP (flags {out[0]})"
    assert out[1:] == ["lo"], "a new network namespace has only lo"
    assert inside(runc, b).split() == out


def test_user_namespace_with_id_mappings(oci: Runtime, runc: Runtime, userns_bundle) -> None:
    edit = with_namespaces(["pid", "network", "ipc", "uts", "mount", "user"], userns=True)
    b = userns_bundle(["sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; id -u"], edit)
    out = inside(oci, b).split()
    assert out == ["0", "100000", "65536", "0", "100000", "65536", "0"]
    assert inside(runc, b).split() == out


def test_user_namespace_seen_from_outside(oci: Runtime, userns_bundle) -> None:
    edit = with_namespaces(["pid", "network", "ipc", "uts", "mount", "user"], userns=True)
    _, pid = created_pid(oci, userns_bundle(["sleep", "100"], edit))
    assert ns(pid, "user") != ns("self", "user")
    # The parent wrote the maps: the host sees root in the container as uid 100000.
    assert Path(f"/proc/{pid}/uid_map").read_text().split() == ["0", "100000", "65536"]
    assert Path(f"/proc/{pid}/status").read_text().count("\t100000") >= 4


def test_join_namespaces_of_another_container_by_path(oci: Runtime, bundle) -> None:
    _, pid_a = created_pid(oci, bundle(args=["sleep", "100"],
                                       edit=lambda c: c.update(hostname="container-a")))

    def join(c: dict) -> None:
        c.pop("hostname", None)  # setting it would change A's hostname too
        c["linux"]["namespaces"] = [
            {"type": "pid"}, {"type": "mount"},
            {"type": "network", "path": f"/proc/{pid_a}/ns/net"},
            {"type": "ipc", "path": f"/proc/{pid_a}/ns/ipc"},
            {"type": "uts", "path": f"/proc/{pid_a}/ns/uts"}]
    b = bundle(args=["sh", "-c", "hostname; sleep 100"], edit=join)
    _, pid_b = created_pid(oci, b)
    for proc_name in ("net", "ipc", "uts"):
        assert ns(pid_b, proc_name) == ns(pid_a, proc_name), proc_name
    for proc_name in ("pid", "mnt"):
        assert ns(pid_b, proc_name) not in (ns(pid_a, proc_name), ns("self", proc_name)), proc_name
    assert inside(oci, bundle(args=["hostname"], edit=join)) == "container-a\n"


def test_join_user_namespace_by_path_before_the_others(oci: Runtime, userns_bundle) -> None:
    """Joining a user namespace and namespaces owned by it only works user-first."""
    edit = with_namespaces(["pid", "network", "ipc", "uts", "mount", "user"], userns=True)
    _, pid_a = created_pid(oci, userns_bundle(["sleep", "100"], edit))

    def join(c: dict) -> None:
        c.pop("hostname", None)
        # Listed with user last on purpose: the runtime must order the setns calls itself.
        c["linux"]["namespaces"] = [
            {"type": "pid"}, {"type": "mount"}, {"type": "ipc"},  # ipc: for the /dev/mqueue mount
            {"type": "network", "path": f"/proc/{pid_a}/ns/net"},
            {"type": "uts", "path": f"/proc/{pid_a}/ns/uts"},
            {"type": "user", "path": f"/proc/{pid_a}/ns/user"}]
        c["mounts"] = [m for m in c["mounts"] if m["type"] != "cgroup"]
    b = userns_bundle(["cat", "/proc/self/uid_map"], join)
    assert inside(oci, b).split() == ["0", "100000", "65536"]


def test_duplicate_namespace_types_are_rejected(oci: Runtime, runc: Runtime, bundle) -> None:
    b = bundle(args=["true"], edit=with_namespaces(["pid", "uts", "network", "mount", "network"]))
    assert runc.run("create", "-b", str(b), runc.new_id()).returncode != 0
    cid = oci.new_id()
    res = oci.run("create", "-b", str(b), cid)
    assert not (oci.root / cid).exists()
    assert_clean_error(res, "network")


def test_time_namespace_offsets(oci: Runtime, bundle) -> None:
    offsets = {"monotonic": {"secs": 86400, "nanosecs": 5}, "boottime": {"secs": 172800, "nanosecs": 0}}
    edit = with_namespaces(["pid", "network", "ipc", "uts", "mount", "time"], time_offsets=offsets)
    b = bundle(args=["sh", "-c", "cat /proc/self/timens_offsets; cat /proc/uptime"], edit=edit)
    lines = inside(oci, b).splitlines()
    assert sorted(ln.split() for ln in lines[:2]) == [["boottime", "172800", "0"], ["monotonic", "86400", "5"]]
    host_uptime = float(Path("/proc/uptime").read_text().split()[0])
    # /proc/uptime follows boottime: two days ahead of the host's.
    assert float(lines[2].split()[0]) - host_uptime > 172800 - 60


def test_time_namespace_seen_from_outside(oci: Runtime, bundle) -> None:
    edit = with_namespaces(["pid", "mount", "time"], time_offsets={"boottime": {"secs": 1000}})

    def no_sysfs(c: dict) -> None:
        edit(c)
        c["mounts"] = [m for m in c["mounts"] if m["type"] not in ("sysfs", "cgroup")]
    _, pid = created_pid(oci, bundle(args=["sleep", "100"], edit=no_sysfs))
    assert ns(pid, "time") != ns("self", "time")
    offsets = [ln.split() for ln in Path(f"/proc/{pid}/timens_offsets").read_text().splitlines()]
    assert ["boottime", "1000", "0"] in offsets


def test_cgroup_namespace_hides_the_host_path(oci: Runtime, bundle) -> None:
    edit = with_namespaces(["pid", "network", "ipc", "uts", "mount", "cgroup"])
    out = inside(oci, bundle(args=["cat", "/proc/self/cgroup"], edit=edit))
    # Every hierarchy the container was put in reads as the root of its cgroup namespace.
    paths = {ln.split(":", 2)[2] for ln in out.splitlines()}
    assert paths == {"/"}, out


# --- no mount namespace of its own (issue 12 item 1) -----------------------------------------
def _without_mounts(mount_entry: dict | None) -> Callable[[dict], None]:
    """A config that asks for no mount at all, sharing (None) or joining the mount namespace."""
    def edit(c: dict) -> None:
        c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "mount"]
        if mount_entry is not None:
            c["linux"]["namespaces"].append(mount_entry)
        c["mounts"] = []
        c["root"]["readonly"] = False
        for field in ("maskedPaths", "readonlyPaths"):
            c["linux"].pop(field, None)
    return edit


def _mounts_below(mountinfo: str, path: Path) -> list[str]:
    with open(mountinfo) as f:
        return [line for line in f if f" {path}" in line]


@pytest.mark.parametrize("how", ["shared", "joined"])
def test_container_in_a_mount_namespace_not_its_own(how: str, oci: Runtime, bundle) -> None:
    """Sharing the runtime's mount namespace, or joining one by path: the process runs confined
    to root.path (chroot), `exec` too, and nothing is mounted in that namespace, ever."""
    import subprocess

    owner = None
    try:
        if how == "joined":
            owner = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sleep", "100"])
            entry = {"type": "mount", "path": f"/proc/{owner.pid}/ns/mnt"}
            deadline = time.monotonic() + 5
            while ns(owner.pid, "mnt") == ns("self", "mnt") and time.monotonic() < deadline:
                time.sleep(0.01)  # until unshare(1) has made its namespace
            expect_ns, mountinfo = ns(owner.pid, "mnt"), f"/proc/{owner.pid}/mountinfo"
        else:
            entry = None
            expect_ns, mountinfo = ns("self", "mnt"), "/proc/self/mountinfo"
        b = bundle(["sleep", "100"], edit=_without_mounts(entry))
        (b / "rootfs/marker").write_text("in the rootfs\n")
        before = _mounts_below(mountinfo, b)
        cid = oci.new_id("mns")
        oci.run("run", "-d", "-b", str(b), cid, check=True)
        pid = oci.state(cid)["pid"]
        assert ns(pid, "mnt") == expect_ns
        assert os.readlink(f"/proc/{pid}/root") == str(b / "rootfs")
        res = oci.run("exec", cid, "sh", "-c", "cat /marker; ls /", check=True)
        out = res.stdout.decode()
        assert out.startswith("in the rootfs\n") and "marker" in out.split(), out
        assert "boot" not in out.split() and "work" not in out.split(), f"exec saw the host's /: {out}"
        assert _mounts_below(mountinfo, b) == before, "a mount was made in a mount namespace not the container's"
        oci.run("delete", "-f", cid, check=True)
        assert _mounts_below(mountinfo, b) == before
    finally:
        if owner is not None:
            owner.kill()
            owner.wait()


@pytest.mark.parametrize("how", ["shared", "joined"])
def test_mounts_without_a_mount_namespace_of_its_own_are_refused(how: str, oci: Runtime, bundle) -> None:
    """The default config's mounts, masks and read-only paths cannot be made without leaving
    them in someone else's mount table (runc makes them in the host's and never removes them)."""
    def edit(c: dict) -> None:
        c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "mount"]
        if how == "joined":
            c["linux"]["namespaces"].append({"type": "mount", "path": f"/proc/{os.getpid()}/ns/mnt"})
    b = bundle(["true"], edit=edit)
    cid = oci.new_id("mnr")
    res = oci.run("create", "-b", str(b), cid)
    first = assert_clean_error(res, "mounts", "mount namespace", problems=4)
    assert "shared with the runtime" in first if how == "shared" else "joined by path" in first, first
    assert oci.status(cid) == "absent"
