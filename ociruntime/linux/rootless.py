"""Rootless: running as an ordinary user, or as root of a user namespace (podman's rootless
mode), decided as runc decides it; and the id maps such a runtime may write.

The kernel's rules that shape this (user_namespaces(7)):
- a process without CAP_SETUID/CAP_SETGID in the parent namespace may write only one line to a
  child's uid_map/gid_map, mapping its own euid/egid, and gid_map only after "deny" was written
  to the child's setgroups file (so a user cannot drop a group that denies it access);
- anything more (ranges from /etc/subuid, /etc/subgid) is written by the setuid helpers
  newuidmap/newgidmap (Debian's package uidmap), which check those files.

Imported on every command's path (state.default_root): `posix` only (see ociruntime.lean)."""

import posix

from ociruntime import lean

# /proc/self/uid_map of the initial user namespace: every id mapped to itself.
_INITIAL_UID_MAP = ("0", "0", "4294967295")


def in_user_namespace() -> bool:
    """True inside any user namespace but the initial one (runc's userns.RunningInUserNS)."""
    data = lean.read_small("/proc/self/uid_map")  # more than 4 kB is many lines: not the initial map
    return bool(data) and tuple(data.decode().split()) != _INITIAL_UID_MAP


def unprivileged() -> bool:
    """runc's RootlessEUID: an ordinary user, who can only map its own ids itself."""
    return posix.geteuid() != 0


def cgroups_rootless(flag: str) -> bool:
    """--rootless true|false|auto for cgroups, as runc: `auto` is true for an ordinary user and
    for root of a user namespace (podman's rootless mode: root there, but cgroups are the
    host's, writable only where delegated), false for the real root."""
    if flag in ("true", "false"):
        return flag == "true"
    return unprivileged() or in_user_namespace()


def xdg_state_root() -> str | None:
    """$XDG_RUNTIME_DIR/ociruntime when runc would use $XDG_RUNTIME_DIR/runc: set and non-empty,
    and we are an ordinary user, or root of a user namespace not logged in as root (USER)."""
    xdg = lean.getenv("XDG_RUNTIME_DIR")
    if not xdg:
        return None
    if posix.geteuid() == 0 and (not in_user_namespace() or lean.getenv("USER") == "root"):
        return None
    return lean.join(xdg, "ociruntime")


def check_namespaces(has_user_ns: bool) -> str | None:
    """An ordinary user can make no namespace but a user namespace (and those it owns): a
    config without one cannot run. The problem, or None."""
    if has_user_ns or not unprivileged() or in_user_namespace():
        return None
    return ("rootless container requires user namespaces: linux.namespaces has no user "
            f"namespace and the runtime runs as uid {posix.geteuid()} (see `ociruntime spec --rootless`)")


def maps_itself(mappings: list, own_id: int) -> bool:
    """The one mapping an unprivileged process may write: a single id, its own."""
    return len(mappings) == 1 and mappings[0].size == 1 and mappings[0].host_id == own_id


def write_id_maps(pid: int, uid_mappings: list, gid_mappings: list, write) -> None:
    """An ordinary user's maps for the new user namespace of `pid`: its own id written by us
    (gid_map after setgroups "deny", as the kernel requires), anything more by newuidmap /
    newgidmap. `write(path, data)` writes one file and names it in its errors."""
    from ociruntime.linux.namespaces import id_map_text

    if maps_itself(uid_mappings, posix.geteuid()):
        write(f"/proc/{pid}/uid_map", id_map_text(uid_mappings))
    else:
        _run_helper("newuidmap", "uid", pid, uid_mappings)
    if maps_itself(gid_mappings, posix.getegid()):
        write(f"/proc/{pid}/setgroups", b"deny")
        write(f"/proc/{pid}/gid_map", id_map_text(gid_mappings))
    else:
        _run_helper("newgidmap", "gid", pid, gid_mappings)


def _run_helper(helper: str, kind: str, pid: int, mappings: list) -> None:
    """newuidmap/newgidmap PID ID HOSTID SIZE...: they check each range against /etc/sub{u,g}id
    (and allow the caller's own id)."""
    import shutil
    import subprocess

    from ociruntime.errors import SetupError

    field = f"linux.{kind}Mappings"
    own = posix.geteuid() if kind == "uid" else posix.getegid()
    path = shutil.which(helper)
    if path is None:
        raise SetupError(f"{field}: mapping more than {kind} {own} as an unprivileged user needs "
                         f"{helper} (Debian package uidmap) and a range in /etc/sub{kind}, and "
                         f"{helper} is not installed")
    args = [path, str(pid)] + [str(v) for m in mappings for v in (m.container_id, m.host_id, m.size)]
    try:
        res = subprocess.run(args, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SetupError(f"{field}: {helper}: {e}") from None
    if res.returncode != 0:
        why = res.stderr.decode(errors="replace").strip().replace("\n", "; ") or f"exit status {res.returncode}"
        raise SetupError(f"{field}: {' '.join(args[1:])} rejected by {helper} (is the range in "
                         f"/etc/sub{kind} for uid {posix.geteuid()}?): {why}")
