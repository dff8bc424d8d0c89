"""cgroups library: pure parsing/conversion tests, then real cgroups on this host.

The real tests create cgroups under unique names (ocitest-<pid>-<n>), move a sleeping child
process in, and always clean up (kill the child, thaw, rmdir) even when an assertion fails.
The v2 driver is exercised on the host's cgroup2 mount, which on a hybrid host carries only a
few controllers (hugetlb here) but has the freezer, cgroup.events and device eBPF programs.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ociruntime.config import Device
from ociruntime.errors import CgroupError
from ociruntime.linux import cgroups
from ociruntime.linux.cgroups import Layout, controllers, ebpf, systemd, v1, v2
from ociruntime.resources import BlockIO, DeviceRule, Resources, with_default_devices

HYBRID_MOUNTINFO = """\
24 31 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
42 31 0:39 / /sys/fs/cgroup/openrc rw,relatime - cgroup cgroup rw,name=openrc
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
"""

V2_MOUNTINFO = """\
30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 \
rw,nsdelegate,memory_recursiveprot
90 30 0:26 / /run/x\\040y rw - cgroup2 cgroup2 rw
"""

V1_MOUNTINFO = """\
32 31 0:29 /kubepods /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw - cgroup cgroup rw,cpuset,clone_children
35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
36 31 0:32 / /mnt/memory-again rw - cgroup cgroup rw,memory
"""

IS_ROOT = os.geteuid() == 0
HOST = cgroups.read_layout() if os.path.exists("/proc/self/mountinfo") else Layout({}, None)
needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root to create cgroups")
needs_v1 = pytest.mark.skipif(not (IS_ROOT and HOST.v1), reason="needs cgroup v1 hierarchies")
needs_unified = pytest.mark.skipif(not (IS_ROOT and HOST.unified), reason="needs a cgroup2 mount")
_counter = itertools.count()


# ---------------------------------------------------------------- layout and paths


def test_parse_hybrid_mountinfo() -> None:
    lay = cgroups.parse_mountinfo(HYBRID_MOUNTINFO)
    assert lay.mode == "hybrid"
    assert lay.v1 == {"cpu": ("/sys/fs/cgroup/cpu", "/"),
                      "cpuacct": ("/sys/fs/cgroup/cpuacct", "/"),
                      "memory": ("/sys/fs/cgroup/memory", "/"),
                      "name=systemd": ("/sys/fs/cgroup/systemd", "/")}
    assert lay.unified == ("/sys/fs/cgroup/unified", "/")
    assert lay.controller_key("cpuacct") == "cpuacct"


def test_parse_v2_and_v1_mountinfo() -> None:
    lay = cgroups.parse_mountinfo(V2_MOUNTINFO)
    assert lay.mode == "v2" and lay.unified == ("/sys/fs/cgroup", "/")
    only_odd = cgroups.parse_mountinfo(V2_MOUNTINFO.splitlines()[1] + "\n")
    assert only_odd.unified == ("/run/x y", "/")  # octal escapes decoded
    lay = cgroups.parse_mountinfo(V1_MOUNTINFO)
    assert lay.mode == "v1"
    assert lay.v1["cpu,cpuacct"] == ("/sys/fs/cgroup/cpu,cpuacct", "/kubepods")
    assert lay.v1["cpuset"] == ("/sys/fs/cgroup/cpuset", "/")
    assert lay.v1["memory"] == ("/sys/fs/cgroup/memory", "/")  # first mount wins
    assert lay.controller_key("cpuacct") == "cpu,cpuacct"
    assert cgroups.parse_mountinfo("").mode == "none"


def test_hierarchy_dir() -> None:
    mount = ("/sys/fs/cgroup/memory", "/")
    assert cgroups.hierarchy_dir(mount, "/a/b", "/own") == "/sys/fs/cgroup/memory/a/b"
    assert cgroups.hierarchy_dir(mount, "c1", "/own/x") == "/sys/fs/cgroup/memory/own/x/c1"
    assert cgroups.hierarchy_dir(mount, "c1", "/") == "/sys/fs/cgroup/memory/c1"
    # A mount of a sub-tree: the part of our own path above its root is not in the mount.
    sub = ("/sys/fs/cgroup/cpu", "/kubepods")
    assert cgroups.hierarchy_dir(sub, "c1", "/kubepods/pod1") == "/sys/fs/cgroup/cpu/pod1/c1"


def test_clean_path_cannot_escape() -> None:
    assert cgroups.clean_path("/a/../../b/./c/") == "/b/c"
    assert cgroups.clean_path("../../x") == "x"
    assert cgroups.clean_path("a//b") == "a/b"


def test_parse_self_cgroup() -> None:
    own = cgroups.parse_self_cgroup("2:cpu,cpuacct:/x\n1:name=systemd:/s\n0::/u\n")
    assert own == {"cpu": "/x", "cpuacct": "/x", "name=systemd": "/s", "": "/u"}


def test_factory_paths_from_shared_text() -> None:
    own = "4:memory:/process_api/p\n1:cpu:/\n9:name=systemd:/\n0::/\n"
    mgr = cgroups.manager(None, "ctr", mountinfo=HYBRID_MOUNTINFO, own_cgroup=own)
    assert mgr.paths() == {
        "cpu": "/sys/fs/cgroup/cpu/ctr", "cpuacct": "/sys/fs/cgroup/cpuacct/ctr",
        "memory": "/sys/fs/cgroup/memory/process_api/p/ctr",
        "name=systemd": "/sys/fs/cgroup/systemd/ctr", "": "/sys/fs/cgroup/unified/ctr"}
    mgr = cgroups.manager("/oci/ctr", "ctr", mountinfo=V2_MOUNTINFO)
    assert mgr.paths() == {"": "/sys/fs/cgroup/oci/ctr"}
    with pytest.raises(CgroupError):
        cgroups.manager("/", "ctr", mountinfo=V2_MOUNTINFO)
    escape = cgroups.manager(None, "../../x", mountinfo=V2_MOUNTINFO, own_cgroup="0::/own\n")
    assert escape.paths() == {"": "/sys/fs/cgroup/own/x"}
    with pytest.raises(CgroupError, match="no cgroup filesystem"):
        cgroups.manager(None, "ctr", mountinfo="")


def test_state_round_trip_is_json() -> None:
    for text in (HYBRID_MOUNTINFO, V2_MOUNTINFO):
        mgr = cgroups.manager("/oci/x", "x", mountinfo=text)
        data = json.loads(json.dumps(mgr.to_state()))
        again = cgroups.from_state(data)
        assert again.paths() == mgr.paths() and again.to_state() == mgr.to_state()
    sd = cgroups.manager(None, "x", systemd=True, mountinfo=V2_MOUNTINFO)
    again = cgroups.from_state(json.loads(json.dumps(sd.to_state())))
    assert again.paths() == {"": "/sys/fs/cgroup/system.slice/ociruntime-x.scope"}
    with pytest.raises(CgroupError):
        cgroups.from_state({"driver": "nope"})


def test_lazy_imports() -> None:
    """The state/kill/delete path (from_state, pids, destroy) must not pull in heavy modules."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = (
        f"import sys; sys.path.insert(0, {root!r})\n"
        "from ociruntime.linux.cgroups import from_state\n"
        "m = from_state({'driver': 'v1', 'paths': {'x': '/nonexistent/ocitest'}})\n"
        "m.pids(); m.destroy()\n"
        "print(' '.join(n for n in ('re', 'json', 'pathlib', 'typing', 'subprocess', 'ctypes')"
        " if n in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == ""


# ---------------------------------------------------------------- conversions


def test_v2_conversions() -> None:
    assert v2.shares_to_weight(2) == 1
    assert v2.shares_to_weight(262144) == 10000
    assert v2.shares_to_weight(1024) == 39
    assert v2.blkio_to_io_weight(10) == 1 and v2.blkio_to_io_weight(1000) == 10000
    assert v2.swap_to_v2(100, 300) == "200"
    assert v2.swap_to_v2(100, -1) == "max" and v2.swap_to_v2(100, 0) is None
    with pytest.raises(CgroupError, match="smaller"):
        v2.swap_to_v2(300, 100)
    with pytest.raises(CgroupError):
        v2.swap_to_v2(0, 100)
    bio = {"throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 600}],
           "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 30},
                                       {"major": 8, "minor": 16, "rate": 300}]}
    assert v2.io_max_lines(BlockIO(bio)) == ["8:0 rbps=600 wiops=30", "8:16 wiops=300"]
    rdma = Resources({"rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}, "rxe3": {"hcaObjects": 1}}}).rdma
    assert controllers.rdma_lines(rdma) == [
        "mlx5_1 hca_handle=3 hca_object=10000", "rxe3 hca_object=1"]


def test_v1_device_writes() -> None:
    rules = [{"allow": True, "access": "rwm"},
             {"allow": False, "access": "rwm"},
             {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
             {"allow": True, "type": "c", "major": 136, "access": "rw"},
             {"allow": False, "type": "a", "major": 8, "minor": -1, "access": "w"}]
    assert v1.device_writes(_rules(rules)) == [
        ("deny", "a"), ("allow", "c 1:3 rwm"), ("allow", "c 136:* rw"),
        ("deny", "c 8:* w"), ("deny", "b 8:* w")]
    # No catch-all: only exceptions are written; the inherited default stays.
    assert v1.device_writes(_rules([{"allow": False, "type": "b", "access": "m"}])) == [
        ("deny", "b *:* m")]


def test_default_device_rules() -> None:
    tun = Device({"type": "c", "path": "/dev/net/tun", "major": 10, "minor": 200})
    rules = [_fields(r) for r in with_default_devices(_rules([{"allow": False, "access": "rwm"}]), [tun])]
    assert rules[0] == (False, "a", None, None, "rwm")
    assert (True, "c", 1, 3, "rwm") in rules
    assert rules[-1] == (True, "c", 10, 200, "rwm")


def _rules(rules: list[dict]) -> list[DeviceRule]:
    return [DeviceRule(r) for r in rules]


def _fields(rule: DeviceRule) -> tuple:
    return rule.allow, rule.type, rule.major, rule.minor, rule.access


def _set(mgr: cgroups.CgroupManager, resources: dict) -> None:
    """Apply linux.resources in config.json's shape, as create does once the config is loaded."""
    mgr.set(Resources(resources))


def test_ebpf_assembly() -> None:
    deny_all = {"allow": False, "access": "rwm"}
    prog = ebpf.assemble(_rules([deny_all, {"allow": True, "type": "c", "major": 1, "minor": 3}]))
    assert len(prog) % 8 == 0
    # Prologue 6 + rule (type, major, minor, mov, exit) 5 + catch-all 2; no unreachable tail.
    assert len(prog) // 8 == 6 + 5 + 2
    assert len(ebpf.assemble([])) // 8 == 6 + 2
    with pytest.raises(CgroupError):
        ebpf.assemble(_rules([{"allow": True, "type": "x"}]))
    with pytest.raises(CgroupError):
        ebpf.assemble(_rules([{"allow": True, "access": "rwx"}]))


def test_systemd_paths() -> None:
    assert systemd.expand_slice("a-b-c.slice") == "/a.slice/a-b.slice/a-b-c.slice"
    assert systemd.expand_slice("-.slice") == ""
    for bad in ("a", "a--b.slice", "-a.slice", "a/b.slice"):
        with pytest.raises(CgroupError):
            systemd.expand_slice(bad)
    assert systemd.parse_path("system.slice:docker:abc", "abc", False) == (
        "docker-abc.scope", "/system.slice/docker-abc.scope")
    assert systemd.parse_path(None, "abc", False) == (
        "ociruntime-abc.scope", "/system.slice/ociruntime-abc.scope")
    assert systemd.parse_path("machine.slice::x", "x", False) == (  # runc 1.1.5's name too
        "-x.scope", "/machine.slice/-x.scope")
    assert systemd.parse_path(":p:my-pod.slice", "x", False) == (
        "my-pod.slice", "/my.slice/my-pod.slice")
    with pytest.raises(CgroupError, match="slice:prefix:name"):
        systemd.parse_path("/not/systemd", "x", False)


# ---------------------------------------------------------------- real cgroups: fixtures


def _unique() -> str:
    return f"ocitest-{os.getpid()}-{next(_counter)}"


def _force_remove(path: str) -> None:
    """Remove a cgroup tree whatever state the test left it in."""
    if not os.path.isdir(path):
        return
    for name in ("freezer.state", "cgroup.freeze"):
        try:
            with open(os.path.join(path, name), "w") as f:
                f.write("THAWED" if name == "freezer.state" else "0")
        except OSError:
            pass
    for entry in os.scandir(path):
        if entry.is_dir(follow_symlinks=False):
            _force_remove(entry.path)
    for _ in range(50):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.01)


@pytest.fixture
def child(request: pytest.FixtureRequest, cleanup: list[str]) -> int:
    # Depends on `cleanup` so that the child is killed before the directories are removed.
    proc = subprocess.Popen(["sleep", "300"])

    def reap() -> None:
        proc.kill()
        proc.wait()

    request.addfinalizer(reap)
    return proc.pid


@pytest.fixture
def cleanup(request: pytest.FixtureRequest) -> list[str]:
    """Directories to force-remove at the end (children first, so add the leaf last)."""
    paths: list[str] = []
    unified = HOST.unified[0] if HOST.unified else None
    before = _read(unified + "/cgroup.subtree_control") if unified else ""

    def fin() -> None:
        for path in reversed(paths):
            _force_remove(path)
        if unified:
            # The v2 driver may enable controllers at the root; put the host back.
            for ctrl in set(_read(unified + "/cgroup.subtree_control").split()) - set(
                    before.split()):
                try:
                    with open(unified + "/cgroup.subtree_control", "w") as f:
                        f.write("-" + ctrl)
                except OSError:
                    pass

    request.addfinalizer(fin)
    return paths


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _v1_manager(cleanup: list[str], nested: bool = False) -> v1.V1Manager:
    parent = "/" + _unique()
    path = parent + "/ctr" if nested else parent
    mgr = cgroups.manager(path, "ctr", layout=HOST)
    assert isinstance(mgr, v1.V1Manager)
    for leaf in mgr.paths().values():
        if nested:
            cleanup.append(os.path.dirname(leaf))
        cleanup.append(leaf)
    return mgr


def _v2_manager(cleanup: list[str], nested: bool = False) -> v2.V2Manager:
    """A V2Manager on the host's cgroup2 mount, as if it were a pure v2 host."""
    assert HOST.unified is not None
    lay = Layout({}, HOST.unified)
    parent = "/" + _unique()
    mgr = cgroups.build(lay, parent + "/ctr" if nested else parent, {}, rootless=False)
    assert isinstance(mgr, v2.V2Manager)
    if nested:
        cleanup.append(os.path.dirname(mgr.path))
    cleanup.append(mgr.path)
    return mgr


def _forked(action) -> tuple[int, int]:
    """A child that runs action(), writes "ok" (then "." whatever happened) and waits to be
    killed: (its pid, the pipe's read end)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            action()
            os.write(w, b"ok")
        finally:
            os.write(w, b".")
            time.sleep(300)
            os._exit(0)
    os.close(w)
    return pid, r


def _proc_cgroups(pid: int) -> dict[str, str]:
    return cgroups.parse_self_cgroup(_read(f"/proc/{pid}/cgroup"))


def _state_letter(pid: int) -> str:
    for line in _read(f"/proc/{pid}/status").splitlines():
        if line.startswith("State:"):
            return line.split()[1]
    return "?"


# ---------------------------------------------------------------- real cgroups: v1 / hybrid


@needs_v1
def test_default_path_is_relative_to_own_cgroup() -> None:
    mgr = cgroups.manager(None, "ctr-x")
    own = cgroups.parse_self_cgroup(_read("/proc/self/cgroup"))
    key = HOST.controller_key("memory")
    assert key is not None
    point, root = HOST.v1[key]
    rel = own["memory"][len(root):] if root != "/" else own["memory"]
    assert mgr.paths()[key] == (point + rel).rstrip("/") + "/ctr-x"


@needs_v1
def test_v1_apply_joins_every_hierarchy(child: int, cleanup: list[str]) -> None:
    mgr = _v1_manager(cleanup, nested=True)
    mgr.apply(child)
    where = _proc_cgroups(child)
    for key, path in mgr.paths().items():
        point, root = HOST.unified if key == "" else HOST.v1[key]
        ctrl = key.split(",")[0]
        assert point + where[ctrl][len(root.rstrip("/")):] == path, key
    assert mgr.pids() == [child]
    assert set(mgr.made.values()) == {2}


@pytest.mark.skipif(not (IS_ROOT and HOST.v1 and HOST.unified), reason="needs a hybrid host (v1 and cgroup2)")
def test_v1_clone_target_makes_the_unified_directory_and_self_join_the_rest(cleanup: list[str]) -> None:
    """Spawn.fork clones the child into the unified hierarchy's directory, then makes the v1
    hierarchies' (self_join) while the child loads its side: clone_target makes only the
    first, self_join the others, each recorded for destroy."""
    mgr = _v1_manager(cleanup)
    fd = mgr.clone_target()
    try:
        assert fd >= 0
        assert {k: os.path.isdir(d) for k, d in mgr.paths().items()} == {k: k == "" for k in mgr.paths()}
    finally:
        os.close(fd)
    joins = mgr.self_join()
    for jfd, _ in joins:
        os.close(jfd)
    assert all(os.path.isdir(d) for d in mgr.paths().values())
    assert set(mgr.made) == set(mgr.paths())
    mgr.destroy()
    assert not any(os.path.exists(d) for d in mgr.paths().values())


@needs_v1
def test_v1_self_join_lets_the_child_move_itself(cleanup: list[str]) -> None:
    """self_join: the cgroups made and every v1 hierarchy's `tasks` opened; the forked child's
    join_cgroups (linux/init.py) writes "0" to each, which moves it into all of them; apply()
    then moves it only where self_join could not (the unified hierarchy of a hybrid host)."""
    from ociruntime.linux.init import join_cgroups

    mgr = _v1_manager(cleanup, nested=True)
    joins = mgr.self_join()
    assert sorted(path for _, path in joins) == sorted(d + "/tasks" for k, d in mgr.paths().items() if k)
    pid, r = _forked(lambda: join_cgroups(list(joins)))
    try:
        for fd, _ in joins:
            os.close(fd)
        assert os.read(r, 2) == b"ok"

        def where() -> dict[str, str]:
            at = _proc_cgroups(pid)
            out = {}
            for key in mgr.paths():
                point, root = HOST.unified if key == "" else HOST.v1[key]
                out[key] = point + at[key.split(",")[0]][len(root.rstrip("/")):]
            return out

        assert {k: d for k, d in where().items() if k} == {k: d for k, d in mgr.paths().items() if k}
        if "" in mgr.paths():
            assert where()[""] != mgr.paths()[""]  # the unified hierarchy: not by self_join
        mgr.apply(pid)
        assert where() == mgr.paths()
    finally:
        os.close(r)
        os.kill(pid, 9)
        os.waitpid(pid, 0)


@needs_v1
def test_v1_set_reads_back(child: int, cleanup: list[str]) -> None:
    mgr = _v1_manager(cleanup)
    mgr.apply(child)
    cpus = _read("/sys/fs/cgroup/cpuset/cpuset.effective_cpus").strip() if HOST.controller_key(
        "cpuset") else ""
    _set(mgr, {
        "memory": {"limit": 64 << 20, "swap": 128 << 20, "reservation": 32 << 20,
                   "swappiness": 10, "disableOOMKiller": False, "kernel": 1 << 20},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000,
                "cpus": cpus.split("-")[0].split(",")[0] if cpus else "", "mems": "0"},
        "pids": {"limit": 100},
        "blockIO": {},
    })
    d = mgr.paths()
    mem, cpu = d[HOST.controller_key("memory")], d[HOST.controller_key("cpu")]
    assert _read(mem + "/memory.limit_in_bytes").strip() == str(64 << 20)
    assert _read(mem + "/memory.soft_limit_in_bytes").strip() == str(32 << 20)
    assert _read(mem + "/memory.swappiness").strip() == "10"
    if os.path.exists(mem + "/memory.memsw.limit_in_bytes"):
        assert _read(mem + "/memory.memsw.limit_in_bytes").strip() == str(128 << 20)
    assert _read(cpu + "/cpu.shares").strip() == "512"
    assert _read(cpu + "/cpu.cfs_quota_us").strip() == "50000"
    assert _read(cpu + "/cpu.cfs_period_us").strip() == "100000"
    assert _read(d[HOST.controller_key("pids")] + "/pids.max").strip() == "100"
    assert mgr.warnings == ["linux.resources.memory.kernel is deprecated and ignored"]
    # Raising limit and swap together needs memsw written first: the driver handles the order.
    _set(mgr, {"memory": {"limit": 256 << 20, "swap": 512 << 20}, "pids": {"limit": -1}})
    assert _read(mem + "/memory.limit_in_bytes").strip() == str(256 << 20)
    assert _read(d[HOST.controller_key("pids")] + "/pids.max").strip() == "max"
    stats = mgr.stats()
    assert stats["memory"]["usage"]["limit"] == 256 << 20
    assert stats["pids"] == {"current": 1, "limit": 0}
    assert "cpu" in stats and "blkio" in stats


@needs_v1
def test_v1_join_self_and_check_before_update(cleanup: list[str]) -> None:
    """A process joins by writing 0 to procs_files(); once it uses memory, a limit below its
    usage is refused when checkBeforeUpdate asks for it."""
    mgr = _v1_manager(cleanup)
    mgr.create()
    ballast: list[bytearray] = []  # kept while the child waits

    def join_and_use_memory() -> None:
        for path in mgr.procs_files():
            cgroups.write_file(path, "0")
        ballast.append(bytearray(8 << 20))
        for i in range(0, len(ballast[0]), 4096):
            ballast[0][i] = 1

    pid, r = _forked(join_and_use_memory)
    try:
        assert os.read(r, 2) == b"ok"
        assert mgr.pids() == [pid]
        with pytest.raises(CgroupError, match="below the current usage"):
            _set(mgr, {"memory": {"limit": 4 << 20, "checkBeforeUpdate": True}})
        _set(mgr, {"memory": {"limit": 64 << 20, "checkBeforeUpdate": True}})
    finally:
        os.close(r)
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    mgr.destroy()


@needs_v1
def test_v1_devices(child: int, cleanup: list[str]) -> None:
    mgr = _v1_manager(cleanup)
    mgr.apply(child)
    _set(mgr, {"devices": [{"allow": False, "access": "rwm"},
                         {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                         {"allow": True, "type": "c", "major": 136, "access": "rw"}]})
    listing = _read(mgr.paths()[HOST.controller_key("devices")] + "/devices.list").split("\n")
    assert {x for x in listing if x} == {"c 1:3 rwm", "c 136:* rw"}


@needs_v1
def test_v1_freeze_thaw(child: int, cleanup: list[str]) -> None:
    mgr = _v1_manager(cleanup)
    mgr.apply(child)
    mgr.freeze()
    assert mgr.frozen()
    assert _state_letter(child) == "D"  # v1 freezer parks tasks in the refrigerator
    mgr.thaw()
    assert not mgr.frozen()
    assert _state_letter(child) in ("S", "R")


@needs_v1
def test_v1_destroy_removes_everything(child: int, cleanup: list[str]) -> None:
    mgr = _v1_manager(cleanup, nested=True)
    mgr.apply(child)
    os.mkdir(mgr.paths()[HOST.controller_key("pids")] + "/nested")  # created by the container
    os.kill(child, 9)
    os.waitpid(child, 0)
    again = cgroups.from_state(json.loads(json.dumps(mgr.to_state())))
    again.destroy()
    for path in mgr.paths().values():
        assert not os.path.exists(path)
        assert not os.path.exists(os.path.dirname(path))  # the parent we created, too
    again.destroy()  # idempotent
    assert again.pids() == []


@needs_v1
def test_v1_keeps_parents_it_did_not_create(child: int, cleanup: list[str]) -> None:
    first = _v1_manager(cleanup, nested=True)
    first.create()
    parent = os.path.dirname(next(iter(first.paths().values())))
    second = cgroups.manager(parent[len(HOST.v1[next(iter(HOST.v1))][0]):] + "/other", "o",
                             layout=HOST)
    cleanup.extend(second.paths().values())
    second.apply(child)
    assert set(second.made.values()) == {1}
    os.kill(child, 9)
    os.waitpid(child, 0)
    second.destroy()
    first.destroy()
    assert not os.path.exists(parent)


@needs_v1
def test_v1_errors_name_the_file(child: int, cleanup: list[str]) -> None:
    mgr = _v1_manager(cleanup)
    mgr.apply(child)
    cpuset = mgr.paths()[HOST.controller_key("cpuset")]
    with pytest.raises(CgroupError) as info:
        _set(mgr, {"cpu": {"cpus": "4095"}})
    # EINVAL or ERANGE depending on the kernel; the message names value and file either way.
    assert str(info.value).startswith(f"cgroup: write 4095 to {cpuset}/cpuset.cpus: ")
    with pytest.raises(CgroupError, match="swappiness"):
        _set(mgr, {"memory": {"swappiness": 101}})
    with pytest.raises(CgroupError, match="unified"):
        _set(mgr, {"unified": {"memory.max": "1"}})
    with pytest.raises(CgroupError, match="cannot set net_cls limit"):
        _set(mgr, {"network": {"classID": 1}})
    _set(mgr, {"network": {}})  # nothing to do is not an error
    with pytest.raises(CgroupError, match="burst"):
        _set(mgr, {"cpu": {"quota": 1000, "burst": 5000}})


@needs_v1
def test_v1_rootless_skips_what_it_cannot_use(cleanup: list[str]) -> None:
    """As an unprivileged user apply() cannot mkdir anywhere: rootless tolerates that, and
    set() with a limit then says the container could not join the cgroup."""
    mgr = _v1_manager(cleanup)
    mgr.rootless = True
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.setgid(65534)
            os.setuid(65534)
            mgr.apply(os.getpid())
            try:
                _set(mgr, {"pids": {"limit": 10}})
                msg = "set succeeded"
            except CgroupError as e:
                msg = f"{sorted(mgr.skipped) == sorted(mgr.dirs)} {e}"
        except BaseException as e:
            msg = f"error {e!r}"
        os.write(w, msg.encode())
        os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    msg = os.read(r, 4096).decode()
    os.close(r)
    assert msg == "True cgroup: cannot set pids limit: container could not join or create cgroup"


@needs_v1
def test_hybrid_hugetlb_and_unified_keys(child: int, cleanup: list[str]) -> None:
    if HOST.controller_key("hugetlb") or not HOST.unified:
        pytest.skip("hugetlb is not on the unified hierarchy here")
    if "hugetlb" not in _read(HOST.unified[0] + "/cgroup.controllers").split():
        pytest.skip("no hugetlb controller")
    mgr = _v1_manager(cleanup)
    mgr.apply(child)
    _set(mgr, {"hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}],
             "unified": {"hugetlb.1GB.max": str(1 << 30)}})
    u = mgr.paths()[""]
    assert _read(u + "/hugetlb.2MB.max").strip() == str(4 << 20)
    assert _read(u + "/hugetlb.1GB.max").strip() == str(1 << 30)
    assert "hugetlb" in mgr.stats()


@needs_root
def test_apply_is_fast_enough(child: int, cleanup: list[str]) -> None:
    """apply + set of a typical block; the first migration of a process costs one RCU grace
    period in the kernel, so the bound is loose -- this guards against gross regressions."""
    mgr = cgroups.manager("/" + _unique(), "x", layout=HOST)
    cleanup.extend(mgr.paths().values())
    start = time.perf_counter()
    mgr.apply(child)
    _set(mgr, {"memory": {"limit": 64 << 20}, "cpu": {"shares": 512}, "pids": {"limit": 100}})
    assert time.perf_counter() - start < 0.25


# ---------------------------------------------------------------- real cgroups: v2 driver


@needs_unified
def test_v2_apply_freeze_pids_destroy(child: int, cleanup: list[str]) -> None:
    mgr = _v2_manager(cleanup, nested=True)
    mgr.apply(child)
    rel = mgr.path[len(HOST.unified[0]):]
    assert _proc_cgroups(child)[""] == rel
    assert mgr.pids() == [child]
    mgr.freeze()
    assert mgr.frozen()
    assert _read(mgr.path + "/cgroup.events").split("\n")[1] == "frozen 1"
    mgr.thaw()
    assert not mgr.frozen()
    os.kill(child, 9)
    os.waitpid(child, 0)
    again = cgroups.from_state(json.loads(json.dumps(mgr.to_state())))
    assert again.to_state() == mgr.to_state()
    again.destroy()
    assert not os.path.exists(mgr.path) and not os.path.exists(os.path.dirname(mgr.path))
    again.destroy()


@needs_unified
def test_v2_hugetlb_unified_and_errors(child: int, cleanup: list[str]) -> None:
    mgr = _v2_manager(cleanup)
    mgr.apply(child)
    available = _read(mgr.path + "/cgroup.controllers").split()
    if "hugetlb" in available:
        _set(mgr, {"hugepageLimits": [{"pageSize": "2MB", "limit": 2 << 20}],
                 "unified": {"hugetlb.1GB.max": "max"}})
        assert _read(mgr.path + "/hugetlb.2MB.max").strip() == str(2 << 20)
        assert "hugetlb" in mgr.stats()
    with pytest.raises(CgroupError, match="controller nosuch is not enabled"):
        _set(mgr, {"unified": {"nosuch.max": "1"}})
    with pytest.raises(CgroupError, match="invalid"):
        _set(mgr, {"unified": {"../escape": "1"}})
    with pytest.raises(CgroupError) as info:
        _set(mgr, {"unified": {"cgroup.max.depth": "bogus"}})
    assert str(info.value) == (f"cgroup: write bogus to {mgr.path}/cgroup.max.depth: "
                               "invalid argument")
    _set(mgr, {"unified": {"cgroup.max.depth": "5"}})
    assert _read(mgr.path + "/cgroup.max.depth").strip() == "5"
    with pytest.raises(CgroupError, match="realtime"):
        _set(mgr, {"cpu": {"realtimeRuntime": 1000}})
    _set(mgr, {"memory": {"swappiness": 10}, "network": {"classID": 1}})
    assert len(mgr.warnings) == 2


@needs_unified
def test_v2_devices_ebpf(cleanup: list[str]) -> None:
    """The device program really filters: a process in the cgroup can open /dev/null but
    cannot write /dev/zero or open /dev/full."""
    mgr = _v2_manager(cleanup)
    mgr.create()
    _set(mgr, {"devices": [{"allow": False, "access": "rwm"},
                         {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                         {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "r"}]})
    assert len(ebpf.attached(mgr.path)) == 1
    _set(mgr, {"devices": [{"allow": False, "access": "rwm"},
                         {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                         {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "r"}]})
    assert len(ebpf.attached(mgr.path)) == 1  # replaced, not stacked
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        out = []
        try:
            cgroups.write_file(mgr.path + "/cgroup.procs", "0")
            for path, mode in (("/dev/null", os.O_RDWR), ("/dev/zero", os.O_RDONLY),
                               ("/dev/zero", os.O_WRONLY), ("/dev/full", os.O_RDONLY)):
                try:
                    os.close(os.open(path, mode))
                    out.append("ok")
                except OSError as e:
                    out.append(str(e.errno))
        except BaseException as e:
            out.append(repr(e))
        os.write(w, " ".join(out).encode())
        os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    result = os.read(r, 4096).decode()
    os.close(r)
    assert result == "ok ok 1 1"
    mgr.destroy()


@needs_unified
def test_v2_thaw_of_empty_cgroup_and_create_only(cleanup: list[str]) -> None:
    mgr = _v2_manager(cleanup)
    mgr.create()
    assert mgr.procs_files() == [mgr.path + "/cgroup.procs"]
    mgr.freeze()  # an empty cgroup is frozen at once
    mgr.thaw()
    assert mgr.pids() == []
    mgr.destroy()
    assert not os.path.exists(mgr.path)


# -- the one resource dispatch (CgroupManager.set), shared by the v1 and v2 drivers -------------


def _cgroup_files(d: Path, names: tuple[str, ...]) -> None:
    d.mkdir(parents=True, exist_ok=True)
    for name in names:
        (d / name).write_text("")


def test_v1_and_v2_dispatch_the_same_keys_to_the_same_files(tmp_path: Path) -> None:
    resources = {"pids": {"limit": 0}, "rdma": {"mlx5_0": {"hcaHandles": 3}},
                 "network": {"classID": 0x100001}, "memory": {}}
    v2dir = tmp_path / "v2"
    _cgroup_files(v2dir, ("pids.max", "rdma.max"))
    m2 = v2.V2Manager(str(v2dir), str(tmp_path))
    _set(m2, resources)
    assert (v2dir / "pids.max").read_text() == "0"  # 0 is a real limit, not "unset"
    assert (v2dir / "rdma.max").read_text() == "mlx5_0 hca_handle=3"
    assert m2.warnings == ["linux.resources.network (net_cls/net_prio) does not exist on cgroup v2 and is ignored"]

    dirs = {c: tmp_path / "v1" / c for c in ("pids", "rdma", "net_cls")}
    _cgroup_files(dirs["pids"], ("pids.max",))
    _cgroup_files(dirs["rdma"], ("rdma.max",))
    _cgroup_files(dirs["net_cls"], ("net_cls.classid",))
    m1 = v1.V1Manager({c: str(d) for c, d in dirs.items()})
    _set(m1, resources)
    assert (dirs["pids"] / "pids.max").read_text() == "0"
    assert (dirs["rdma"] / "rdma.max").read_text() == "mlx5_0 hca_handle=3"
    assert (dirs["net_cls"] / "net_cls.classid").read_text() == str(0x100001)
    assert m1.warnings == []


def test_dispatch_reports_a_missing_controller_by_name(tmp_path: Path) -> None:
    m1 = v1.V1Manager({"pids": str(tmp_path)})
    with pytest.raises(CgroupError, match="cannot set rdma limit: the rdma controller is not mounted"):
        _set(m1, {"rdma": {"mlx5_0": {"hcaObjects": 1}}})
