"""Forking with the clone3(2) flags posix.fork cannot pass.

- CLONE_PARENT: stage1 forks the process that will exec as the runtime's own child, so `run`
  (with or without --no-subreaper) and `exec` wait for it directly and get its exit status.
- CLONE_INTO_CGROUP: the child is born in a cgroup v2 directory (by fd): no migration after the
  fork, and nothing of it ever runs in the runtime's cgroup.
- CLONE_NEWPID: `create`'s init is born in its new pid namespace when nothing has to happen
  before it is made (NamespacePlan.born_in_flags): no stage1, whose fork is there for it.

Where the kernel lacks them (clone3 before 5.3, CLONE_INTO_CGROUP before 5.7) this is posix.fork;
the callers then move the child themselves, and `run` waits as a subreaper."""

from __future__ import annotations

import posix

from ociruntime.errors import SetupError
from ociruntime.linux.kernel import kernel

CLONE_PARENT = 0x00008000
CLONE_INTO_CGROUP = 0x200000000
_UNSUPPORTED = (38, 7, 22)  # ENOSYS, E2BIG (args larger than this kernel knows), EINVAL (flag)


def fork_sibling() -> int:
    """Fork a child of our parent (posix.fork's return convention)."""
    try:
        return kernel().fork3(CLONE_PARENT, -1, "clone3(CLONE_PARENT)")
    except SetupError as e:
        if e.errno not in _UNSUPPORTED:
            raise
    return posix.fork()


def fork_into_namespaces(flags: int, cgroup_fd: int) -> tuple[int, bool] | None:
    """(pid, joined): fork a child born in the new namespaces `flags` (CLONE_NEW*), and in the
    cgroup v2 directory cgroup_fd when one is given and the kernel takes it (joined). None when
    the kernel refused the namespaces: nothing was forked, and stage1 makes them the usual way,
    which reports such an error in full."""
    if cgroup_fd >= 0:
        try:
            return kernel().fork3(flags | CLONE_INTO_CGROUP, cgroup_fd, "clone3(CLONE_INTO_CGROUP)"), True
        except SetupError:
            pass
    try:
        return kernel().fork3(flags, -1, "clone3(namespaces)"), False
    except SetupError:
        return None


def fork_into_cgroup(cgroup_fd: int) -> tuple[int, bool]:
    """(pid, joined): fork a child inside the cgroup v2 directory cgroup_fd. joined is False
    when the kernel or the cgroup refused (EBUSY: controllers enabled for its children,
    EOPNOTSUPP: threaded, ...): the child was forked where we are, and the caller moves it the
    usual way, which reports such an error in full."""
    try:
        return kernel().fork3(CLONE_INTO_CGROUP, cgroup_fd, "clone3(CLONE_INTO_CGROUP)"), True
    except SetupError:
        return posix.fork(), False


def start_elsewhere(pid: int) -> None:
    """Move the child we have just forked off the CPU we run on, then give it back every CPU
    it had: it stays on the other CPU's run queue, where it starts at once. The child's CPUs
    are its own again before this returns; a child we could not move runs where the kernel
    put it.

    Why: a kernel may queue a new child on its parent's CPU, where it waits until the parent
    blocks, while another CPU idles. Seen on this project's 2-vCPU hosts: in 15 creates of 25
    in one run (fewer in others), the init started ~1.5 ms late, once the runtime had done its
    work on the cgroups and the state. Moved, the two run side by side. Only while a CPU is
    idle (no more tasks running or waiting for one, us and the child among them, than the
    child has CPUs): on a busy host it would wait there too, away from the caches it shares
    with us (2-way parallel lifecycles: 5% fewer a second when it was always moved)."""
    k = kernel()
    try:
        cpus = k.affinity(pid, "sched_getaffinity (the child's CPUs)")
        here = k.getcpu("sched_getcpu")
        if here not in cpus or len(cpus) < 2 or k.runnable() > len(cpus):
            return
        k.set_affinity(pid, cpus - {here}, "sched_setaffinity (the child off our CPU)")
    except SetupError:
        return
    try:
        k.set_affinity(pid, cpus, "sched_setaffinity (the child's CPUs, given back)")
    except SetupError as e:
        # Left with fewer CPUs, the child would run the container on them. Gone, it reports why.
        if e.errno != 3:  # ESRCH
            raise
