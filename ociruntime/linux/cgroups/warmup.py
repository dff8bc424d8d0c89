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

from ociruntime.lean import read_text


def start() -> bool:
    """Start the thread if this is a v1 host and we are root (a rootless runtime moves nothing
    on v1); whether it was started."""
    if posix.geteuid() != 0:
        return False
    procs = own_pids_cgroup_procs(read_text("/proc/self/cgroup"))
    if procs is None:
        return False
    _thread.start_new_thread(move_to_where_we_are, (procs,))
    return True


def own_pids_cgroup_procs(text: str) -> str | None:
    """cgroup.procs of the v1 pids cgroup /proc/self/cgroup names; None without a v1 pids
    hierarchy (a cgroup v2 host)."""
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        if "pids" in controllers.split(","):
            return f"/sys/fs/cgroup/pids{path.rstrip('/')}/cgroup.procs"
    return None


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

