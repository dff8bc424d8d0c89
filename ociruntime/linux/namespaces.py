"""Namespaces: which to create, which to join (and in what order), user ns id maps, time offsets.

The runtime only plans (NamespacePlan); its children make the calls, so the syscall seam
(linux/kernel.py, ~20 kB of bytecode) is imported where they are, already loaded in the child."""

from __future__ import annotations

import posix

from ociruntime.config import IdMapping, Linux
from ociruntime.errors import SyscallError
from ociruntime.spectables import CLONE_FLAGS, JOIN_ORDER


class NamespacePlan:
    __slots__ = ("join", "new_types", "new_user", "time_offsets", "unshare_flags")

    def __init__(self, linux: Linux, joins: list[tuple[str, str]] | None = None) -> None:
        """The config's namespaces; or, for `exec`, `joins` (the container's, in JOIN_ORDER)
        entered and none made."""
        self.time_offsets = linux.time_offsets
        self.unshare_flags = 0
        if joins is not None:
            self.new_user, self.join, self.new_types = False, joins, set()
            return
        by_type = {n.type: n for n in linux.namespaces}
        self.new_user = "user" in by_type and not by_type["user"].path
        self.join = [(t, by_type[t].path) for t in JOIN_ORDER if t in by_type and by_type[t].path]
        self.new_types = {t for t, n in by_type.items() if not n.path}
        for t in self.new_types - {"user"}:
            self.unshare_flags |= CLONE_FLAGS[t]

    def born_in_flags(self) -> int:
        """CLONE_NEWPID when `create`'s init can be born in its new pid namespace (clone3):
        stage1 forks only because a pid namespace applies to children; the init makes or
        joins the others itself. 0 (stage1) with a user namespace (made: its id maps are
        written in between; joined: it must own the pid namespace) or a time namespace (it
        too applies to children, its offsets set before any process is in it)."""
        if ("pid" not in self.new_types or self.new_user or "time" in self.new_types
                or any(t in ("user", "time") for t, _ in self.join)):
            return 0
        return CLONE_FLAGS["pid"]


def join_namespaces(joins: list[tuple[str, str]]) -> None:
    """Open every namespace first, then setns in order: once inside a joined user namespace,
    the other /proc/<pid>/ns files may no longer be openable."""
    fds: list[tuple[str, str, int]] = []
    try:
        for ns_type, path in joins:
            try:
                fds.append((ns_type, path, posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)))
            except OSError as e:
                raise SyscallError.from_os(e, f"join {ns_type} namespace {path}") from None
        from ociruntime.linux.kernel import kernel

        for ns_type, path, fd in fds:
            kernel().setns(fd, CLONE_FLAGS[ns_type], f"setns {ns_type} namespace {path}")
    finally:
        for _, _, fd in fds:
            posix.close(fd)


def unshare(flags: int, what: str) -> None:
    from ociruntime.linux.kernel import kernel

    kernel().unshare(flags, f"unshare {what}")


def id_map_text(mappings: list[IdMapping]) -> bytes:
    return "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in mappings).encode()


def write_id_maps(pid: int, linux: Linux) -> None:
    """Written by the parent, outside the new user namespace (user_namespaces(7))."""
    from ociruntime.linux import rootless

    if rootless.unprivileged():
        rootless.write_id_maps(pid, linux.uid_mappings, linux.gid_mappings, _write_proc_file)
        return
    for name, mappings in (("uid_map", linux.uid_mappings), ("gid_map", linux.gid_mappings)):
        _write_proc_file(f"/proc/{pid}/{name}", id_map_text(mappings))


def _write_proc_file(path: str, data: bytes) -> None:
    try:
        fd = posix.open(path, posix.O_WRONLY | posix.O_CLOEXEC)
        try:
            posix.write(fd, data)
        finally:
            posix.close(fd)
    except OSError as e:
        raise SyscallError.from_os(e, f"write {path}") from None


def write_time_offsets(offsets: dict) -> None:
    """Must happen after unshare(CLONE_NEWTIME) and before any process enters the namespace."""
    lines = "".join(f"{clock} {o.get('secs', 0)} {o.get('nanosecs', 0)}\n"
                    for clock, o in offsets.items())
    try:
        fd = posix.open("/proc/self/timens_offsets", posix.O_WRONLY | posix.O_CLOEXEC)
        try:
            posix.write(fd, lines.encode())
        finally:
            posix.close(fd)
    except OSError as e:
        raise SyscallError.from_os(e, "write /proc/self/timens_offsets") from None
