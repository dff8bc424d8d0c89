"""On a cgroup v1 (or hybrid) host, moving a process between cgroups first waits for an RCU
grace period: the kernel's cgroup_threadgroup_rwsem switches its readers (every fork and exit on
the host) to a slow path before a writer may go on, and stays switched until a grace period after
the last writer. Measured here: the first cgroup.procs write of a create blocks ~14 ms, the next
ones ~20 us. runc and crun pay it too.

`start()`, at the beginning of create and exec, pays that wait on a thread, while the runtime
loads the config and makes the state directory, and its child loads the child side: the thread
writes the runtime's own pid to the cgroup.procs of the pids cgroup it is already in, a move to
where it is, which changes nothing but takes the lock. The container's own moves, a few ms later,
wait only for what is left of that grace period. The runtime forks while the thread may still be
blocked in that write: it holds no lock of the interpreter or of libc there, and the child does
not inherit it. On a cgroup v2 host the child is born in its cgroup (clone3), and no thread is
started."""

import _signal
import _thread
import posix

from ociruntime.errors import CgroupError
from ociruntime.linux.cgroups.fs import read_file
from ociruntime.linux.cgroups.layout import Layout, hierarchy_dir, parse_self_cgroup, read_layout


def start() -> None:
    """Start the thread if this is a v1 host and we are root (a rootless runtime moves nothing
    on v1)."""
    if posix.geteuid() != 0:
        return
    try:
        procs = own_cgroup_procs(read_layout(), parse_self_cgroup(read_file("/proc/self/cgroup")))
    except CgroupError:
        return
    if procs is not None:
        _thread.start_new_thread(move_to_where_we_are, (procs,))


def own_cgroup_procs(layout: Layout, own: dict[str, str]) -> str | None:
    """cgroup.procs of the v1 pids cgroup the runtime is in (found as the drivers find it: the
    mount point and root, our path); None without a v1 pids hierarchy (a cgroup v2 host)."""
    key = layout.controller_key("pids")
    if key is None or "pids" not in own:
        return None
    return hierarchy_dir(layout.v1[key], "", own["pids"]).rstrip("/") + "/cgroup.procs"


def move_to_where_we_are(procs: str) -> None:
    # Signals stay the main thread's (the kernel prefers it anyway): a SIGTERM must still
    # interrupt what the runtime waits on.
    _signal.pthread_sigmask(_signal.SIG_BLOCK, _signal.valid_signals())
    try:
        fd = posix.open(procs, posix.O_WRONLY | posix.O_CLOEXEC)
        try:
            posix.write(fd, str(posix.getpid()).encode())
        finally:
            posix.close(fd)
    except OSError:
        pass  # only a head start: the container's own moves report their errors
