"""`exec`: run another process inside a running container, in all of its namespaces and its
cgroup, with the container's process settings as the base (runc's behaviour) and the command
line's or process.json's on top."""

from __future__ import annotations

import posix

from ociruntime import jsonfile, log, state, timing
from ociruntime.config import Config, Process
from ociruntime.errors import ConfigError, InvalidState, NotRunning, OciError, OptionError, UsageError
from ociruntime.spawn import NO_CONSOLE_SOCKET, UNUSED_CONSOLE_SOCKET, Spawn, become_subreaper, report_pid, wait_child
from ociruntime.spectables import JOIN_ORDER, NS_LINK_NAMES

# (spec type, /proc/<pid>/ns name) in joining order: user first, mount last.
NS_FILES = tuple((t, NS_LINK_NAMES[t]) for t in JOIN_ORDER)


class ExecOptions:
    """What to run and how (the flags of `exec`, typed): `args` on top of the container's own
    process, or a whole `process` document (process.json's shape; `process_file` names one to
    read); `user` is (uid, gid or None)."""

    __slots__ = ("additional_gids", "apparmor", "args", "caps", "cgroups", "console_socket", "cwd", "detach",
                 "env", "ignore_paused", "no_new_privs", "pid_file", "pidfd_socket", "preserve_fds", "process",
                 "process_file", "process_label", "tty", "user")

    def __init__(self, args: list[str] | None = None, *, process: dict | None = None,
                 process_file: str | None = None, cwd: str | None = None, env: list[str] | None = None,
                 tty: bool = False, user: tuple[int, int | None] | None = None,
                 additional_gids: list[int] | None = None, caps: list[str] | None = None,
                 no_new_privs: bool = False, apparmor: str = "", process_label: str = "",
                 detach: bool = False, pid_file: str | None = None, pidfd_socket: str | None = None,
                 console_socket: str | None = None, preserve_fds: int = 0, ignore_paused: bool = False,
                 cgroups: list[str] | None = None) -> None:
        if not isinstance(preserve_fds, int) or preserve_fds < 0:
            raise OptionError("preserve_fds", f"{preserve_fds!r} is not a non-negative number")
        self.args = list(args or [])
        self.process = process
        self.process_file = process_file
        self.cwd = cwd
        self.env = list(env or [])
        self.tty = tty
        self.user = user
        self.additional_gids = list(additional_gids or [])
        self.caps = list(caps or [])
        self.no_new_privs = no_new_privs
        self.apparmor = apparmor
        self.process_label = process_label
        self.detach = detach
        self.pid_file = pid_file
        self.pidfd_socket = pidfd_socket
        self.console_socket = console_socket
        self.preserve_fds = preserve_fds
        self.ignore_paused = ignore_paused
        self.cgroups = list(cgroups or [])


def process_document(base: dict, eo: ExecOptions) -> dict:
    """The process to run: process.json as given, or the container's process with flags on top."""
    doc = eo.process
    if doc is None and eo.process_file:
        doc = jsonfile.read_document(eo.process_file, "process.json")
    if doc is not None:
        from ociruntime import schema, semantics

        problems = schema.validate(doc, "process")
        if not problems:
            problems = semantics.check_process(doc)[0]
        if problems:
            raise ConfigError(problems, source="process.json")
        return doc  # type: ignore[return-value]
    if not eo.args:
        raise UsageError("exec: requires a command to run (usage: ociruntime exec [flags] ID COMMAND [ARGS...])")
    doc = dict(base)
    doc["args"] = eo.args
    doc["terminal"] = eo.tty
    if eo.tty and not eo.console_socket and not eo.detach:
        from ociruntime.linux.terminal import window_size

        # The exec'd program may ask for the size at once: set it before execve, not after.
        size = window_size(0)
        if size:
            doc["consoleSize"] = size
    doc["env"] = list(base.get("env") or []) + eo.env
    if eo.cwd:
        doc["cwd"] = eo.cwd
    user = dict(base.get("user") or {})
    if eo.user is not None:
        user["uid"] = eo.user[0]
        if eo.user[1] is not None:
            user["gid"] = eo.user[1]
    if eo.additional_gids:
        user["additionalGids"] = list(eo.additional_gids)
    doc["user"] = user
    if eo.caps:
        # Bounding, effective and permitted only (CVE-2022-29162): inheritable or ambient caps
        # would survive into programs a non-root user execs inside.
        caps = {k: list(v) for k, v in (base.get("capabilities") or {}).items()}
        for key in ("bounding", "effective", "permitted"):
            caps[key] = caps.get(key, []) + [c for c in eo.caps if c not in caps.get(key, [])]
        doc["capabilities"] = caps
    if eo.no_new_privs:
        doc["noNewPrivileges"] = True
    if eo.apparmor:
        doc["apparmorProfile"] = eo.apparmor
    if eo.process_label:
        doc["selinuxLabel"] = eo.process_label
    return doc


def namespaces_to_join(pid: int) -> list[tuple[str, str]]:
    """The init's namespaces that differ from ours (setns into our own user ns is EINVAL)."""
    joins = []
    for ns_type, name in NS_FILES:
        path = f"/proc/{pid}/ns/{name}"
        try:
            theirs, ours = posix.stat(path), posix.stat(f"/proc/self/ns/{name}")
        except FileNotFoundError:
            continue
        if (theirs.st_ino, theirs.st_dev) != (ours.st_ino, ours.st_dev):
            joins.append((ns_type, path))
    return joins


def exec_in(root: str, cid: str, eo: ExecOptions) -> int:
    with state.locked(root, cid) as held:
        data, status = held.data, held.status
        if status == "stopped":
            raise NotRunning(cid, "exec in")
        if status == "creating" or (status == "paused" and not eo.ignore_paused):
            raise InvalidState(f"cannot exec in container {cid!r}: it is {status}")
        raw = held.sd.saved_config()
    assert isinstance(raw, dict)
    doc = dict(raw)
    doc["process"] = process_document(raw.get("process") or {}, eo)
    config = Config(doc, str(data.get("bundle", "/")))
    _check_terminal(config.process, eo)
    pid = int(data["pid"])
    if not eo.detach:
        become_subreaper()
    exec_pid, master = _spawn(config, data, namespaces_to_join(pid), eo)
    if _needs_exec_record(data):
        _record_exec(root, cid, exec_pid)
    report_pid(exec_pid, eo.pid_file, eo.pidfd_socket)
    if eo.detach:
        return 0
    if master >= 0:
        from ociruntime.linux import terminal

        terminal.relay(master, exec_pid)
    return wait_child(exec_pid)


def _needs_exec_record(data: dict) -> bool:
    """A container that shares its pid namespace and joined a cgroup it did not create: delete
    can tell its processes from the others there only by the pids recorded here."""
    if not data.get("cgroup") or data.get("pidns") not in (0, None, data.get("host_pidns")):
        return False
    from ociruntime.linux import cgroups

    return not cgroups.from_state(data["cgroup"]).owned()


def _record_exec(root: str, cid: str, exec_pid: int) -> None:
    try:
        held = state.locked(root, cid)
    except OciError:
        return  # deleted meanwhile: its delete has already run
    with held:
        data = held.data
        alive = [[p, t] for p, t in data.get("exec_pids") or () if state.is_same_process(p, t)]
        start_time = state.process_start_time(exec_pid)
        if start_time is not None:
            alive.append([exec_pid, start_time])
        data["exec_pids"] = alive
        held.sd.update(data)


def _check_terminal(process: Process | None, eo: ExecOptions) -> None:
    assert process is not None
    if process.terminal and eo.detach and not eo.console_socket:
        raise OptionError("console_socket", "required: the process has a terminal ({tty}) and runs detached "
                          "({detach}); the pty master is sent there", mentions=("tty", "detach"),
                          runc=NO_CONSOLE_SOCKET)
    if eo.console_socket and not process.terminal:
        raise OptionError("console_socket", "given, but the process has no terminal ({tty})", mentions=("tty",),
                          runc=UNUSED_CONSOLE_SOCKET)


def join_sub_cgroups(paths: dict[str, str], specs: list[str], pid: int) -> None:
    """exec --cgroup [CONTROLLER:]PATH (runc's): move pid into an existing sub-cgroup of the
    container's, in the hierarchy of CONTROLLER or in all of them."""
    from ociruntime.linux.cgroups import CgroupError, clean_path, write_file

    for spec in specs:
        ctrl, _, sub = spec.rpartition(":")
        cleaned = clean_path(sub)
        if not sub or sub.startswith("/") or cleaned in ("", ".") or cleaned != sub.strip("/"):
            raise OptionError("cgroups", f"{spec!r}: expected [CONTROLLER:]PATH, a path below the "
                              "container's cgroup", runc=f"{sub} is not a sub cgroup path")
        keys = [k for k in paths if not ctrl or ctrl in k.split(",") or (ctrl == "unified" and k == "")]
        if not keys:
            raise OptionError("cgroups", f"{spec!r}: the container has no {ctrl} cgroup",
                              runc=f"unknown controller {ctrl} in SubCgroupPaths")
        for key in keys:
            try:
                write_file(f"{paths[key]}/{cleaned}/cgroup.procs", str(pid))
            except CgroupError as e:
                raise OptionError("cgroups", f"{spec!r}: {e}") from None


def _spawn(config: Config, data: dict, joins: list[tuple[str, str]], eo: ExecOptions) -> tuple[int, int]:
    """The process, started through exec_stage1 in the container's cgroup: (its pid, the pty
    master or -1)."""
    from ociruntime.linux import cgroups

    assert config.process is not None
    if eo.cgroups and not data.get("cgroup"):
        raise OptionError("cgroups", "the container has no cgroup")
    cg = cgroups.from_state(data["cgroup"]) if data.get("cgroup") else None
    initial = config.process.exec_cpu_affinity.get("initial")
    sp = Spawn.join_container(config, data, joins, console_socket=eo.console_socket,
                              preserve_fds=eo.preserve_fds)
    try:
        # The child joins the v1 cgroups itself, or is born in a hybrid host's unified one
        # (Spawn.fork), unless it must first run with the initial affinity, or go to sub-cgroups:
        # then it is moved (join). On cgroup v2 it is moved too: born there, its pages would be
        # charged to the container's memory from the start, for no gain measured in the guest.
        joined = sp.fork(cg if not (initial or eo.cgroups) else None, born_in=cg is not None and cg.driver == "v1")
        if initial:
            from ociruntime.linux.procattrs import set_initial_affinity

            set_initial_affinity(sp.pid, initial)  # before the cgroup move (the spec)
        if cg is not None and not joined:
            cg.join(sp.pid)
            if eo.cgroups:
                join_sub_cgroups(cg.paths(), eo.cgroups, sp.pid)
        timing.mark("exec-cgroup")
        sp.go()
        for _ in sp.messages():
            pass
        if not sp.child:
            raise sp.gone()
        master = -1
        if sp.console_peer >= 0:
            from ociruntime.linux import terminal

            master = terminal.receive_master(sp.take_console_peer())  # it closes the socket
    except BaseException:
        sp.kill_first_child()
        raise
    finally:
        sp.close()
    log.debug(f"exec: pid {sp.child}")
    return sp.child, master


__all__ = ["ExecOptions", "OciError", "exec_in"]
