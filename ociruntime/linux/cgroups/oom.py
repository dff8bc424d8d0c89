"""OOM notifications for `events`: the kernel tells us when a container's memory cgroup ran out.

cgroup v2: memory.events counts `oom_kill`s; the kernel signals a change of the file to poll()
as POLLPRI (kernfs notify, as for cgroup.events), so we wait on it and compare the counter.
cgroup v1: an eventfd registered on memory.oom_control through cgroup.event_control
(Documentation/admin-guide/cgroup-v1/memory.rst, "Memory thresholds"/"OOM control"); the
kernel adds to it on every OOM of the cgroup, and also once when the cgroup is removed, which
is told apart by the cgroup having gone.

Either way `ready()` says whether something new happened since the last call: one `oom` event
per wake-up with news, as runc reports them.
"""

from __future__ import annotations

import os
import select

from ociruntime.linux.cgroups import CgroupError, fail, write_file


class OomWatch:
    """An fd to poll (fileno(), events()) and ready() to consume what woke it."""

    __slots__ = ("_fds", "_last", "_path", "fd", "gone")

    def __init__(self, fd: int, path: str, extra: tuple[int, ...] = (), last: int = -1) -> None:
        self.fd = fd
        self._fds = (fd, *extra)
        self._path = path      # v2: memory.events; v1: the cgroup directory
        self._last = last      # v2: oom_kill count already reported; v1: -1
        self.gone = False      # the cgroup has been removed: nothing more will come

    def fileno(self) -> int:
        return self.fd

    def events(self) -> int:
        return select.POLLIN if self._last < 0 else select.POLLPRI | select.POLLERR

    def ready(self) -> bool:
        """After poll() reported the fd: True when there was a new OOM."""
        if self._last < 0:
            try:
                os.read(self.fd, 8)  # the eventfd counter; reading resets it
            except BlockingIOError:
                return False
            if not os.path.exists(self._path + "/cgroup.event_control"):
                self.gone = True  # the removal notification, not an OOM
                return False
            return True
        try:
            # Read through the polled fd: that read is what re-arms its POLLPRI.
            os.lseek(self.fd, 0, os.SEEK_SET)
            text = os.read(self.fd, 4096).decode()
        except OSError:
            self.gone = True  # ENODEV: the cgroup has been removed
            return False
        count = next((int(line.split()[1]) for line in text.splitlines()
                      if line.startswith("oom_kill ")), 0)
        news, self._last = count > self._last, max(count, self._last)
        return news

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = ()


def watch(paths: dict[str, str]) -> OomWatch | None:
    """A watch on the memory cgroup among a manager's paths() ({hierarchy key: directory}), or
    None when the container has no memory controller to watch."""
    v1 = next((d for key, d in paths.items() if "memory" in key.split(",")), None)
    if v1 is not None:
        return _watch_v1(v1)
    v2 = paths.get("")
    if v2 is not None and os.path.exists(v2 + "/memory.events"):
        return _watch_v2(v2 + "/memory.events")
    return None


def _watch_v2(events: str) -> OomWatch:
    try:
        fd = os.open(events, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise fail(f"open {events}", e) from e
    w = OomWatch(fd, events, last=0)
    w.ready()  # what happened before we started watching is not news
    return w


def _watch_v1(path: str) -> OomWatch:
    control = path + "/memory.oom_control"
    try:
        ctl = os.open(control, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise fail(f"open {control}", e) from e
    efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
    try:
        write_file(path + "/cgroup.event_control", f"{efd} {ctl}")
    except CgroupError:
        os.close(efd)
        os.close(ctl)
        raise
    return OomWatch(efd, path, extra=(ctl,))
