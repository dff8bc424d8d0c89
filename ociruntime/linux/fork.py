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
