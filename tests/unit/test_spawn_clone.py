"""How `create` forks its first child (spawn.Spawn.fork), against a recording clone3 (no root,
nothing forked): the init born in its new pid namespace when nothing has to happen before that
is made, stage1 otherwise or when the kernel refuses."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from ociruntime.config import Config
from ociruntime.errors import SyscallError
from ociruntime.linux import fork, kernel
from ociruntime.linux.namespaces import NamespacePlan
from ociruntime.spawn import Spawn
from ociruntime.spectables import CLONE_FLAGS

PLAIN = ("pid", "network", "ipc", "uts", "mount")
NEWPID = CLONE_FLAGS["pid"]
ANY_NEW = sum(CLONE_FLAGS.values())


def config(*namespaces: dict, **extra: object) -> Config:
    doc = {"ociVersion": "1.3.0", "root": {"path": "rootfs"}, "process": {"args": ["true"], "cwd": "/"},
           "linux": {"namespaces": list(namespaces), **extra}}
    return Config(doc, "/bundle")


def new(*types: str) -> list[dict]:
    return [{"type": t} for t in types]


def plan(*namespaces: dict, **extra: object) -> NamespacePlan:
    return NamespacePlan(config(*namespaces, **extra).linux)


def test_an_init_is_born_in_its_pid_namespace_and_makes_or_joins_the_others() -> None:
    assert plan(*new(*PLAIN)).born_in_flags() == NEWPID
    assert plan(*new(*PLAIN, "cgroup")).born_in_flags() == NEWPID
    joined_net = [*new("pid", "mount", "ipc", "uts"), {"type": "network", "path": "/proc/1/ns/net"}]
    assert plan(*joined_net).born_in_flags() == NEWPID


@pytest.mark.parametrize("why", ["user namespace", "joined user namespace", "time namespace",
                                 "joined time namespace", "joined pid namespace", "no pid namespace"])
def test_stage1_when_something_happens_before_the_pid_namespace_is_made(why: str) -> None:
    namespaces = {
        "user namespace": new(*PLAIN, "user"),
        "joined user namespace": [*new(*PLAIN), {"type": "user", "path": "/proc/1/ns/user"}],
        "time namespace": new(*PLAIN, "time"),
        "joined time namespace": [*new(*PLAIN), {"type": "time", "path": "/proc/1/ns/time"}],
        "joined pid namespace": [*new("mount", "network"), {"type": "pid", "path": "/proc/1/ns/pid"}],
        "no pid namespace": new("mount", "network", "ipc", "uts"),
    }[why]
    assert plan(*namespaces).born_in_flags() == 0


class Clone3:
    """The recording kernel's clone3: records (flags, cgroup_fd), returns a made-up pid (so the
    code under test takes the parent's side), or fails with EPERM for namespace flags when
    `refuse_namespaces`. We run on CPU 0 of two, the host otherwise idle (`runnable`: us and
    the child); `moves` records the child's affinity changes."""

    def __init__(self, refuse_namespaces: bool = False, runnable: int = 2) -> None:
        self.calls: list[tuple[int, bool]] = []
        self.moves: list[tuple[int, set[int]]] = []
        self.refuse_namespaces = refuse_namespaces
        self.running = runnable

    def getcpu(self, what: str) -> int:
        return 0

    def runnable(self) -> int:
        return self.running

    def affinity(self, pid: int, what: str) -> set[int]:
        return {0, 1}

    def set_affinity(self, pid: int, cpus: set[int], what: str) -> None:
        self.moves.append((pid, cpus))

    def fork3(self, flags: int, cgroup_fd: int, what: str) -> int:
        self.calls.append((flags, cgroup_fd >= 0))
        if self.refuse_namespaces and flags & ANY_NEW:
            raise SyscallError(errno.EPERM, what)
        return 4242


class V2Cgroup:
    """A cgroup manager whose child may be born in a cgroup v2 directory (any directory's fd)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def clone_target(self) -> int:
        return os.open(self.path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)

    def self_join(self) -> list:
        return []


@pytest.fixture
def clone3():
    """clone3(**kw): a Clone3 installed as the kernel for the test."""
    prev: list = []

    def install(**kw) -> Clone3:
        fake = Clone3(**kw)
        prev.append(kernel.use(fake))
        return fake

    yield install
    if prev:
        kernel.use(prev[0])


def spawn(cfg: Config) -> Spawn:
    return Spawn.new_container(cfg, "/bundle", "c1", console_socket=None, preserve_fds=0, no_pivot=False,
                               new_keyring=True, fifo_fd=-1, cgroup_paths=None)


def test_create_forks_its_init_born_in_its_pid_namespace_and_reports_its_pid_itself(clone3, tmp_path: Path) -> None:
    fake = clone3()
    sp = spawn(config(*new(*PLAIN, "cgroup")))
    try:
        joined = sp.fork(V2Cgroup(tmp_path))
        assert fake.calls == [(NEWPID | fork.CLONE_INTO_CGROUP, True)]
        assert joined and sp.stage == "init_in_namespaces"
        # Off our CPU (0) to start at once, then every CPU it had given back.
        assert fake.moves == [(4242, {1}), (4242, {0, 1})]
        # No stage1 reports the pid: the runtime knows it, and has no first child to reap.
        assert next(sp.messages()) == {"t": "pid", "pid": 4242}
        assert (sp.pid, sp.child) == (0, 4242)
    finally:
        sp.close()


def test_a_kernel_refusing_the_pid_namespace_gets_stage1_which_reports_why(clone3, tmp_path: Path) -> None:
    fake = clone3(refuse_namespaces=True)
    sp = spawn(config(*new(*PLAIN)))
    try:
        assert sp.fork(V2Cgroup(tmp_path))
        assert fake.calls == [(NEWPID | fork.CLONE_INTO_CGROUP, True), (NEWPID, False),
                              (fork.CLONE_INTO_CGROUP, True)]
        assert (sp.stage, sp.pid) == ("stage1", 4242)
    finally:
        sp.close()


IDMAP = [{"containerID": 0, "hostID": 1000, "size": 1}]


@pytest.mark.parametrize(("namespaces", "extra"), [
    # A user namespace: the runtime writes its id maps between making it and forking the init.
    (new(*PLAIN, "user"), {"uidMappings": IDMAP, "gidMappings": IDMAP}),
    # Devices to move into the network namespace are opened by stage1 in the host's.
    (new(*PLAIN), {"netDevices": {"eth9": {"name": "ceth0"}}}),
], ids=["user namespace", "work in the host's view"])
def test_these_configs_fork_stage1_into_the_cgroup_only(clone3, tmp_path: Path, namespaces: list,
                                                         extra: dict) -> None:
    fake = clone3()
    sp = spawn(config(*namespaces, **extra))
    try:
        sp.fork(V2Cgroup(tmp_path))
        assert fake.calls == [(fork.CLONE_INTO_CGROUP, True)]
        assert sp.stage == "stage1"
    finally:
        sp.close()


# --- the first child starts on another CPU (fork.start_elsewhere), on a real child -------------
@pytest.fixture
def sleeper():
    """A real child of ours, blocked on a pipe until the test ends."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.read(r, 1)
        os._exit(0)
    try:
        yield pid
    finally:
        os.write(w, b"x")
        os.waitpid(pid, 0)
        os.close(r)
        os.close(w)


class Watching:
    """The real kernel, its affinity changes recorded; the host as idle as `running` says (the
    test's own load must not decide)."""

    def __init__(self, real) -> None:
        self.real, self.moves, self.running = real, [], 1

    def __getattr__(self, name: str):
        return getattr(self.real, name)

    def runnable(self) -> int:
        return self.running

    def set_affinity(self, pid: int, cpus: set[int], what: str) -> None:
        self.moves.append(cpus)
        self.real.set_affinity(pid, cpus, what)


@pytest.fixture
def pinned():
    """(the CPU we are pinned to for the test, the others), the real kernel's affinity changes
    recorded meanwhile (Watching)."""
    ours = os.sched_getaffinity(0)
    if len(ours) < 2:
        pytest.skip("needs two CPUs")
    here = min(ours)
    os.sched_setaffinity(0, {here})
    watch = Watching(kernel.kernel())
    prev = kernel.use(watch)
    try:
        yield here, ours - {here}, watch
    finally:
        kernel.use(prev)
        os.sched_setaffinity(0, ours)


def test_the_child_is_moved_off_our_cpu_and_gets_every_cpu_it_had_back(sleeper: int, pinned) -> None:
    here, _, watch = pinned
    had = os.sched_getaffinity(sleeper)
    fork.start_elsewhere(sleeper)
    assert watch.moves == [had - {here}, had]
    assert os.sched_getaffinity(sleeper) == had  # what the container would run on


@pytest.mark.parametrize("which", ["one CPU", "not ours"])
def test_a_child_that_may_not_leave_or_is_not_on_our_cpu_is_left_alone(sleeper: int, pinned, which: str) -> None:
    here, others, watch = pinned
    own = {here} if which == "one CPU" else others
    os.sched_setaffinity(sleeper, own)
    fork.start_elsewhere(sleeper)
    assert watch.moves == [] and os.sched_getaffinity(sleeper) == own


def test_on_a_busy_host_the_child_is_left_where_the_kernel_put_it(clone3) -> None:
    """A third task running or waiting on two CPUs: no CPU is idle for the child to start on."""
    fake = clone3(runnable=3)
    fork.start_elsewhere(4242)
    assert fake.moves == []
    fake.running = 2
    fork.start_elsewhere(4242)
    assert fake.moves == [(4242, {1}), (4242, {0, 1})]


def test_the_hosts_runnable_tasks_are_counted_as_the_kernel_sees_them() -> None:
    """Three children that never sleep, and this test: at least four tasks running or waiting
    for a CPU, whatever else the host runs (a constant, or 0 for an unread file, would not do)."""
    spinners = []
    try:
        for _ in range(3):
            pid = os.fork()
            if pid == 0:
                while True:
                    pass
            spinners.append(pid)
        assert kernel.Kernel.runnable() >= 4
    finally:
        for pid in spinners:
            os.kill(pid, 9)
            os.waitpid(pid, 0)


def test_a_child_left_with_fewer_cpus_is_an_error(clone3) -> None:
    """Its CPUs not given back, the container would run on fewer: create fails (and kills it)."""
    fake = clone3()

    def refuse_second(pid: int, cpus: set[int], what: str) -> None:
        fake.moves.append((pid, cpus))
        if len(fake.moves) == 2:
            raise SyscallError(errno.EPERM, what)

    fake.set_affinity = refuse_second
    with pytest.raises(SyscallError, match="given back"):
        fork.start_elsewhere(4242)
