"""The small commands stay small: `state`, `start`, `kill`, `pause`/`resume`'s status never import
`os` (~1.2 ms a call: ociruntime/lean.py) nor the cgroup drivers (linux/freezer.py), and `delete`
of a stopped container removes its cgroups without the driver, on a real container, through the
installed launcher's own interpreter with `-X importtime`."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import Runtime, host_cgroup_dirs, launcher_interpreter, runtime_package_dir

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
    # Its cgroups are empty directories it made: delete removes them without the driver.
    _assert_lean(oci, "delete", cid)
    assert oci.status(cid) == "absent"
    assert host_cgroup_dirs(cid) == []


# pip's launcher (setup.py scripts=), run as its sh part runs it: the venv's python3 -I -S.
PIP_LAUNCHER = Path(__file__).resolve().parents[2] / "scripts" / "ociruntime"


@pytest.mark.parametrize("which", ["install.sh", "pip"])
def test_the_launcher_searches_no_directory_for_what_a_small_command_loads(oci: Runtime, bundle,
                                                                            which: str) -> None:
    """scripts/install.sh's launcher and pip's scripts/ociruntime load the package by its path,
    and main() `_json` by the path the bytecode cache recorded: `state` lists none of sys.path's
    directories (a search lists each directory it tries first: lib-dynload and site-packages,
    ~0.1 ms a call; `state`'s own listing of the state directory is by descriptor). Run as the
    launcher runs, its text in the installed interpreter (pip's finds the package beside it),
    with an audit hook watching os.listdir."""
    cid = oci.new_id()
    oci.run("create", "--bundle", str(bundle(["sleep", "60"])), cid, check=True)
    path = oci.binary if which == "install.sh" else str(PIP_LAUNCHER)
    with open(path, encoding="utf-8") as f:
        launcher = f.read()
    probe = ("import sys, posix\n"
             "sys.addaudithook(lambda event, args: event == 'os.listdir' and isinstance(args[0], str) and "
             "posix.write(2, f'listed {args[0]}\\n'.encode()))\n"
             f"sys.argv = {[path, *oci.cmd('state', cid)[1:]]!r}\n"
             f"exec(compile({launcher!r}, {path!r}, 'exec'))\n")
    res = subprocess.run([launcher_interpreter(), "-I", "-S", "-c", probe], capture_output=True, text=True,
                         timeout=30)
    assert res.returncode == 0, res.stderr[-2000:]
    assert _status(res) == "created"
    assert [line for line in res.stderr.splitlines() if line.startswith("listed ")] == []


def test_delete_falls_back_to_the_driver_when_a_cgroup_is_busy(oci: Runtime, bundle) -> None:
    """A cgroup that cannot be removed as it is (a child cgroup in it, made after the first
    directories went) sends delete to the driver, which removes the rest and the child."""
    import json

    cid = oci.new_id()
    oci.run("run", "--bundle", str(bundle(["true"])), "--detach", cid, check=True)
    assert oci.wait_status(cid, "stopped") == "stopped"
    removable = json.loads((oci.root / cid / "state.json").read_text())["cgroup"]["removable"]
    assert removable, "create recorded no cgroup directory of its own"
    last = removable[-1][0]
    os.mkdir(f"{last}/nested")
    try:
        _assert_lean(oci, "delete", cid, needs=frozenset({"ociruntime.linux.cgroups"}))
    finally:
        if os.path.isdir(f"{last}/nested"):
            os.rmdir(f"{last}/nested")
    assert oci.status(cid) == "absent"
    assert host_cgroup_dirs(cid) == []


# The child side: loaded by the child after the fork, while the runtime moves it into its cgroup.
# The runtime loads the shim itself when it forks with clone3: CLONE_INTO_CGROUP on a cgroup v2
# host, or an init born in its new namespaces (NamespacePlan.born_in_flags), as this bundle's.
CHILD_SIDE = ("ociruntime.linux.init", "ociruntime.linux.rootfs", "ociruntime.linux.devices",
              "ociruntime.linux.security", "ociruntime.linux.seccomp")
OS = ("os", "posixpath", "stat")


def _cgroup2_mounted() -> bool:
    """cgroup v2, or a hybrid host's unified hierarchy: create's process clones its child into
    the cgroup2 directory, through the syscall seam (clone3)."""
    with open("/proc/self/mountinfo") as f:
        return any(line.split(" - ", 1)[1].startswith("cgroup2 ") for line in f)


def _loaded_by(oci: Runtime, tmp_path: Path, call: str, watched: tuple[str, ...], *,
               v1_only: bool = False) -> list[str]:
    """Run one API call (Python text using `rt`, a Runtime on oci's root) in a fresh `-I -S`
    interpreter, as the launcher starts (`site` would load os before us): which of `watched`
    the runtime's own process loaded. `v1_only`: in a mount namespace of its own without the
    hybrid host's cgroup2 mount, as on a cgroup v1 host (and in the benchmark)."""
    out = tmp_path / "loaded"
    probe = ("import sys\n"
             f"sys.path.insert(0, {str(Path(runtime_package_dir()).parent)!r})\n"
             f"sys.path.append({sysconfig.get_paths()['purelib']!r})\n"
             "from ociruntime import Runtime\n"
             f"rt = Runtime(root={str(oci.root)!r})\n"
             f"{call}\n"
             f"loaded = [m for m in {watched!r} if m in sys.modules]\n"
             f"open({str(out)!r}, 'w').write(','.join(loaded))\n")
    # Through files, not pipes: the container keeps the caller's stdio.
    with open(tmp_path / "stderr", "wb") as err:
        argv = [launcher_interpreter(), "-I", "-S", "-c", probe]
        if v1_only:
            argv = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                    'umount /sys/fs/cgroup/unified && exec "$@"', "sh", *argv]
        res = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, timeout=30)
    assert res.returncode == 0, (tmp_path / "stderr").read_text()[-2000:]
    return [m for m in out.read_text().split(",") if m]


@pytest.mark.parametrize("hierarchies", ["host", "v1 only"])
def test_create_leaves_the_child_side_to_the_child(oci: Runtime, bundle, tmp_path, hierarchies: str) -> None:
    """create's own process never loads the container's side of the work (~3 ms of imports,
    ~185 kB of bytecode) nor `os` (~1.3 ms: ociruntime/lean.py): the child it forks does, in
    parallel. (The syscall seam and the shim are the runtime's: it forks with clone3.)"""
    v1_only = hierarchies == "v1 only"
    if v1_only and not (_cgroup2_mounted() and os.path.ismount("/sys/fs/cgroup/unified")):
        pytest.skip("not a hybrid host: the host case is the only one")
    cid = oci.new_id()
    call = f"rt.create({cid!r}, bundle={str(bundle(['sleep', '60']))!r})"
    watched = CHILD_SIDE + OS
    loaded = _loaded_by(oci, tmp_path, call, watched, v1_only=v1_only)
    assert oci.status(cid) == "created"
    assert loaded == [], f"create's process loaded the child side: {loaded}"


def test_run_and_exec_leave_the_child_side_to_the_child(oci: Runtime, bundle, tmp_path) -> None:
    """A foreground `run` and `exec` wait as a subreaper: that prctl goes through the syscall
    seam (the shim), not linux/security.py and its imports, which are the child's."""
    cid = oci.new_id()
    b = bundle(["true"])
    assert _loaded_by(oci, tmp_path, f"assert rt.run({cid!r}, bundle={str(b)!r}) == 0", CHILD_SIDE + OS) == []
    assert oci.status(cid) == "absent"
    cid = oci.new_id()
    oci.run("run", "--detach", "--bundle", str(bundle(["sleep", "60"])), cid, check=True)
    call = f"assert rt.container({cid!r}).exec(['true']) == 0"
    assert _loaded_by(oci, tmp_path, call, CHILD_SIDE + OS) == []


def _imported_by(tmp_path: Path, argv: list[str]) -> set[str]:
    """The names -X importtime prints for one call of the launcher's interpreter (the runtime and
    its children, through a file: the container keeps the caller's stderr); it must exit 0."""
    err = tmp_path / "importtime"
    with open(err, "wb") as f:
        res = subprocess.run([launcher_interpreter(), "-I", "-S", "-X", "importtime", *argv],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=f, timeout=30)
    text = err.read_text(errors="replace")
    assert res.returncode == 0, text[-2000:]
    return {line.rsplit("|", 1)[1].strip() for line in text.splitlines()
            if line.startswith("import time:") and "self [us]" not in line}


def test_the_child_side_never_imports_os(oci: Runtime, bundle, tmp_path) -> None:
    """The child's imports are on create's critical path (nothing waits on a cgroup move: cgroups.v1
    self_join, or born in it on v2): the child side runs on `posix` and lean.py, so `os`
    (~1.3 ms: os, posixpath, _collections_abc) is loaded by neither process. Both print under
    -X importtime (the child inherits stderr; through a file: the container keeps it open)."""
    cid = oci.new_id()
    b = bundle(["sleep", "60"])  # new namespaces, network among them: linux/network.py too
    names = _imported_by(tmp_path, oci.cmd("create", "--bundle", str(b), cid))
    assert "ociruntime.linux.init" in names and "ociruntime.linux.network" in names, "the child's imports not seen"
    assert sorted(names & {"os", "posixpath", "_collections_abc"}) == []
    assert oci.status(cid) == "created"


# Loaded by the child only for configs that use them (linux/init.py, load_what_the_namespaces_need),
# before it enters the container's namespaces, where no import may be read.
FOR_SOME_CONFIGS = ("ociruntime.hooks", "ociruntime.linux.copyup", "ociruntime.linux.procattrs",
                    "ociruntime.linux.seccomp")


def test_the_child_loads_hooks_and_task_attributes_only_for_configs_that_have_them(oci: Runtime, bundle,
                                                                                  tmp_path) -> None:
    """hooks.py, linux/copyup.py, linux/procattrs.py and linux/seccomp.py are ~0.05-0.1 ms of
    imports each in the child, on create's critical path: a plain config's child loads none of
    them. With createContainer and startContainer hooks, a tmpcopyup mount and a personality,
    the child loads the first three before it enters the container, and the container runs:
    the startContainer hook, which runs after `start`, the copy, made among the mounts, and the
    personality, set after pivot_root, find their modules loaded."""
    names = _imported_by(tmp_path, oci.cmd("run", "--bundle", str(bundle(["true"])), oci.new_id()))
    assert "ociruntime.linux.init" in names, "the child's imports not seen"
    assert sorted(names & set(FOR_SOME_CONFIGS)) == []

    def uses_them(c: dict) -> None:
        c["hooks"] = {"createContainer": [{"path": "/bin/true"}], "startContainer": [{"path": "/bin/true"}]}
        c["linux"]["personality"] = {"domain": "LINUX"}
        c["mounts"].append({"destination": "/bin", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup"]})

    b = bundle(["true"], edit=uses_them)
    names = _imported_by(tmp_path, oci.cmd("run", "--bundle", str(b), oci.new_id()))
    assert sorted(names & set(FOR_SOME_CONFIGS)) == ["ociruntime.hooks", "ociruntime.linux.copyup",
                                                     "ociruntime.linux.procattrs"]


# What create's two processes may load from disk besides the package and the interpreter's own
# start-up: the JSON accelerator and cffi's backend (for the shim). Not __future__.py: the
# bytecode cache compiles `from __future__ import annotations` in (ociruntime/bytecache.py).
FROM_DISK = {"_json", "_cffi_backend"}


def test_create_loads_no_other_library_from_disk(oci: Runtime, bundle, tmp_path) -> None:
    """Each stdlib module past the interpreter's own (struct.py read from disk, the frozen
    stat.py unmarshalled and run) or extension loaded (resource) costs ~0.05-0.2 ms, most of it
    in the child, on create's critical path: the built-in cores (_struct, _stat) and the shim
    (setrlimit) do the same work; on cgroup v2, the device filter (ebpf.py) too. Both processes
    print under -X importtime (through a file: the container keeps the caller's stderr)."""
    def limits(c: dict) -> None:  # linux/security.py's set_rlimits, in the container's init
        c["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 300, "hard": 600}]

    cid = oci.new_id()
    loaded = _imported_by(tmp_path, oci.cmd("create", "--bundle", str(bundle(["sleep", "60"], edit=limits)), cid))
    assert "ociruntime.linux.init" in loaded and "ociruntime.linux.network" in loaded, "the child's imports not seen"
    others = loaded - _imported_by(tmp_path, ["-c", "pass"]) - set(sys.builtin_module_names)
    assert sorted(n for n in others if not n.startswith("ociruntime")) == sorted(FROM_DISK)
    assert oci.status(cid) == "created"


# What create's and exec's paths load on their own, outside the blocks (ociruntime/blocks.py): what every
# child of the runtime loads first (spawn.child_after_fork), and what only some hosts or configs
# need (a cgroup driver, v2's device filter, clone3 into a v2 cgroup, a network namespace, hooks,
# task attributes, a seccomp filter). The cache's writer: only here, where -B leaves no cache.
ON_THEIR_OWN = {"bytecache", "linux.security", "linux.kernel", "_shim", "linux.cgroups.v1",
                "linux.cgroups.v2", "linux.cgroups.controllers", "linux.cgroups.systemd", "linux.cgroups.dbus",
                "linux.cgroups.ebpf", "linux.fork", "linux.network",
                *(m.removeprefix("ociruntime.") for m in FOR_SOME_CONFIGS)}


def _path_imports(oci: Runtime, tmp_path: Path, args: list[str], *flags: str,
                  package: Path | None = None) -> set[str]:
    """The names -X importtime prints for one command (the runtime and its children), run by
    the launcher, or from `package` through the same entry point."""
    if package is None:
        entry = oci.cmd(*args)
    else:
        text = ("import sys\n"
                f"sys.path.insert(0, {str(package.parent)!r}); sys.path.append({sysconfig.get_paths()['purelib']!r})\n"
                "from ociruntime import main\n"
                "main()\n")
        entry = ["-c", text, *oci.cmd(*args)[1:]]
    err = tmp_path / "importtime"
    with open(err, "wb") as f:  # a file: the container keeps the caller's stderr
        res = subprocess.run([launcher_interpreter(), "-I", "-S", *flags, "-X", "importtime", *entry],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=f, timeout=60)
    text = err.read_text(errors="replace")
    assert res.returncode == 0, text[-2000:]
    return {line.rsplit("|", 1)[1].strip() for line in text.splitlines() if line.startswith("import time:")}


# Each path and the blocks it runs: its own process's, then its child's.
PATH_BLOCKS = {"create": ("create", "child"), "exec": ("exec", "child")}


@pytest.mark.parametrize("path", sorted(PATH_BLOCKS))
def test_each_block_is_what_its_path_loads(oci: Runtime, bundle, tmp_path, path: str) -> None:
    """ociruntime/blocks.py: create's and exec's processes and their child each run one block
    of the cache. Loaded the usual way (a copy of the package without its cache, -B), the path
    imports every module of its blocks (none is loaded for nothing) and, past the hot modules
    and its blocks, only what is loaded on its own (ON_THEIR_OWN); through the launcher, its
    blocks are run."""
    import shutil

    import ociruntime
    from ociruntime.blocks import BLOCKS

    b = bundle(["sleep", "60"])  # new namespaces, network among them
    copy = tmp_path / "pkg" / "ociruntime"
    shutil.copytree(runtime_package_dir(), copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = oci.new_id()
    if path == "exec":
        oci.run("run", "-d", "--bundle", str(b), target, check=True, stdin=subprocess.DEVNULL)

    def call() -> list[str]:
        if path == "exec":
            return ["exec", target, "true"]
        cid = oci.new_id()
        return ["create", "--bundle", str(b), cid]

    names = _path_imports(oci, tmp_path, call(), "-B", package=copy)
    assert f"ociruntime bytecode cache: block {path}, checked" not in names, "the copy had a cache"
    ours = {n.removeprefix("ociruntime.") for n in names if n.startswith("ociruntime.")}
    for block in PATH_BLOCKS[path]:
        assert sorted(set(BLOCKS[block]) - ours) == [], f"block {block} has modules {path} does not load"
    blocks = {m for block in PATH_BLOCKS[path] for m in BLOCKS[block]}
    assert sorted(ours - set(ociruntime.HOT_MODULES) - blocks - ON_THEIR_OWN) == [], "a module missing from BLOCKS"
    names = _path_imports(oci, tmp_path, call())
    assert {f"ociruntime bytecode cache: block {b}, checked" for b in PATH_BLOCKS[path]} <= names


# Run before the launcher's own code: every collection the cyclic collector makes, in this process
# or a child it forks (stage1, the init, an exec'd process before its execve), is written to fd 2.
# The probe's own allocations are collected first (gc.collect() starts the count again).
GC_PROBE = ("import gc, posix, sys\n"
            "sys.argv = sys.argv[1:]\n"
            "code = compile(open(sys.argv[0]).read(), sys.argv[0], 'exec')\n"
            "gc.collect()\n"
            "gc.callbacks.append(lambda phase, info: phase == 'start' and "
            "posix.write(2, b'gc: collection of generation %d\\n' % info['generation']))\n"
            "exec(code, {'__name__': '__main__'})\n")


def _collections_of(oci: Runtime, tmp_path: Path, *args: str) -> list[str]:
    err = tmp_path / "gc"
    with open(err, "wb") as f:  # a file: the container keeps the caller's stderr
        res = subprocess.run([launcher_interpreter(), "-I", "-S", "-c", GC_PROBE, *oci.cmd(*args)],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=f, timeout=30)
    text = err.read_text(errors="replace")
    assert res.returncode == 0, text[-2000:]
    return [line for line in text.splitlines() if line.startswith("gc:")]


def test_no_command_runs_the_cyclic_collector(oci: Runtime, bundle, tmp_path) -> None:
    """Each command lives a few ms and frees what it made when it exits: the collector's default
    threshold ran ~10 collections in `create` (~6% of its instructions) and 3 in `state`, freeing
    nothing. main() raises it (ociruntime.GC_THRESHOLD); no command, nor its children, collects."""
    cid, other = oci.new_id(), oci.new_id()
    steps = [("create", "--bundle", str(bundle(["sleep", "60"])), cid), ("state", cid), ("start", cid),
             ("exec", cid, "true"), ("ps", cid), ("kill", cid, "KILL"), ("delete", "--force", cid),
             ("run", "--bundle", str(bundle(["true"])), other)]
    for args in steps:
        assert _collections_of(oci, tmp_path, *args) == [], f"`{args[0]}` ran the cyclic collector"
    assert oci.status(cid) == "absent" and oci.status(other) == "absent"
