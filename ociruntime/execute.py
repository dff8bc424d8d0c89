"""`exec`: run another process inside a running container, in all of its namespaces and its
cgroup, with the container's process settings as the base (runc's behaviour) and the command
line's or process.json's on top."""

from __future__ import annotations

import os

from ociruntime import bundle, log, state, timing
from ociruntime.config import Config, Process
from ociruntime.container import child_after_fork, non_negative, wait_child
from ociruntime.errors import ConfigError, InvalidState, NotRunning, OciError, SetupError, UsageError
from ociruntime.state import StateDir

# /proc/<pid>/ns names in joining order: user first, mount last (see namespaces.JOIN_ORDER).
NS_FILES = (("user", "user"), ("pid", "pid"), ("uts", "uts"), ("ipc", "ipc"), ("network", "net"),
            ("cgroup", "cgroup"), ("time", "time"), ("mount", "mnt"))


class ExecOptions:
    __slots__ = (
        "additional_gids",
        "apparmor",
        "args",
        "caps",
        "cgroups",
        "console_socket",
        "cwd",
        "detach",
        "env",
        "ignore_paused",
        "no_new_privs",
        "pid_file",
        "pidfd_socket",
        "preserve_fds",
        "process_file",
        "process_label",
        "tty",
        "user",
    )

    def __init__(self, opts: dict[str, object], args: list[str]) -> None:
        self.args = args
        self.cwd = opts.get("cwd")
        self.env = list(opts.get("env") or [])
        self.tty = bool(opts.get("tty"))
        self.user = opts.get("user")
        self.additional_gids = list(opts.get("additional_gids") or [])
        self.process_file = opts.get("process")
        self.detach = bool(opts.get("detach"))
        self.pid_file = opts.get("pid_file")
        self.caps = list(opts.get("cap") or [])
        self.no_new_privs = bool(opts.get("no_new_privs"))
        self.preserve_fds = non_negative(opts.get("preserve_fds"), "--preserve-fds")
        self.console_socket = opts.get("console_socket")
        self.ignore_paused = bool(opts.get("ignore_paused"))
        self.cgroups = [str(c) for c in opts.get("cgroup") or []]
        self.pidfd_socket = str(opts.get("pidfd_socket") or "")
        self.apparmor = str(opts.get("apparmor") or "")
        self.process_label = str(opts.get("process_label") or "")


def process_document(base: dict, eo: ExecOptions) -> dict:
    """The process to run: process.json as given, or the container's process with flags on top."""
    if eo.process_file:
        doc = bundle.read_document(str(eo.process_file), "process.json")
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
    if eo.user:
        uid, _, gid = str(eo.user).partition(":")
        if not uid.isdigit() or (gid and not gid.isdigit()):
            raise UsageError(f"exec --user {eo.user!r}: expected UID[:GID] as numbers")
        user["uid"] = int(uid)
        if gid:
            user["gid"] = int(gid)
    if eo.additional_gids:
        if not all(str(g).isdigit() for g in eo.additional_gids):
            raise UsageError("exec --additional-gids: expected numbers")
        user["additionalGids"] = [int(g) for g in eo.additional_gids]
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
            theirs, ours = os.stat(path), os.stat(f"/proc/self/ns/{name}")
        except FileNotFoundError:
            continue
        if (theirs.st_ino, theirs.st_dev) != (ours.st_ino, ours.st_dev):
            joins.append((ns_type, path))
    return joins


def exec_in(root: str, cid: str, eo: ExecOptions) -> int:
    sd = StateDir.open(root, cid)
    try:
        data = sd.load()
        status = state.status_of(sd, data)
        if status == "stopped":
            raise NotRunning(cid, "exec in")
        if status == "creating" or (status == "paused" and not eo.ignore_paused):
            raise InvalidState(f"cannot exec in container {cid!r}: it is {status}")
        raw = bundle.read_document(sd.file(state.CONFIG_COPY), sd.file(state.CONFIG_COPY))
    finally:
        sd.unlock()
    assert isinstance(raw, dict)
    doc = dict(raw)
    doc["process"] = process_document(raw.get("process") or {}, eo)
    config = Config(doc, str(data.get("bundle", "/")))
    _check_terminal(config.process, eo)
    pid = int(data["pid"])
    if not eo.detach:
        from ociruntime.linux import security

        security.prctl(security.PR_SET_CHILD_SUBREAPER, 1, "prctl(PR_SET_CHILD_SUBREAPER)")
    exec_pid, master = _spawn(config, data, namespaces_to_join(pid), eo)
    if _needs_exec_record(data):
        _record_exec(root, cid, exec_pid)
    if eo.pidfd_socket:
        from ociruntime.container import send_pidfd

        send_pidfd(eo.pidfd_socket, exec_pid)
    if eo.pid_file:
        target = os.path.abspath(str(eo.pid_file))
        try:
            state.write_atomic(target, str(exec_pid).encode())
        except OSError as e:
            raise state.io_error("cannot write pid file", target, e) from None
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
        sd = StateDir.open(root, cid)
    except OciError:
        return  # deleted meanwhile: its delete has already run
    try:
        data = sd.load()
        alive = [[p, t] for p, t in data.get("exec_pids") or () if state.is_same_process(p, t)]
        start_time = state.process_start_time(exec_pid)
        if start_time is not None:
            alive.append([exec_pid, start_time])
        data["exec_pids"] = alive
        sd.save(data)
    finally:
        sd.unlock()


def _check_terminal(process: Process | None, eo: ExecOptions) -> None:
    assert process is not None
    if process.terminal and eo.detach and not eo.console_socket:
        raise UsageError("exec: --tty with --detach needs --console-socket")
    if eo.console_socket and not process.terminal:
        raise UsageError("exec: --console-socket was given without --tty")


def join_sub_cgroups(paths: dict[str, str], specs: list[str], pid: int) -> None:
    """exec --cgroup [CONTROLLER:]PATH (runc's): move pid into an existing sub-cgroup of the
    container's, in the hierarchy of CONTROLLER or in all of them."""
    from ociruntime.linux.cgroups import CgroupError, clean_path, write_file

    for spec in specs:
        ctrl, _, sub = spec.rpartition(":")
        cleaned = clean_path(sub)
        if not sub or sub.startswith("/") or cleaned in ("", ".") or cleaned != sub.strip("/"):
            raise UsageError(f"exec --cgroup {spec!r}: expected [CONTROLLER:]PATH, a path below the "
                             "container's cgroup")
        keys = [k for k in paths if not ctrl or ctrl in k.split(",") or (ctrl == "unified" and k == "")]
        if not keys:
            raise UsageError(f"exec --cgroup {spec!r}: the container has no {ctrl} cgroup")
        for key in keys:
            try:
                write_file(f"{paths[key]}/{cleaned}/cgroup.procs", str(pid))
            except CgroupError as e:
                raise UsageError(f"exec --cgroup {spec!r}: {e}") from None


def _open_root_of(pid: int) -> int:
    try:
        return os.open(f"/proc/{pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise OciError(f"cannot open the root of the container's init (pid {pid}): {e.strerror}") from None


def _spawn(config: Config, data: dict, joins: list[tuple[str, str]], eo: ExecOptions) -> tuple[int, int]:
    from ociruntime.linux import cgroups, sync
    from ociruntime.linux.init import InitArgs, exec_stage1
    from ociruntime.linux.namespaces import NamespacePlan

    plan = NamespacePlan(config.linux)
    own_mount_namespace = "mount" in plan.new_types
    plan.join, plan.new_user, plan.new_types, plan.unshare_flags = joins, False, set(), 0
    a = InitArgs(config, str(data.get("bundle", "/")), plan)
    a.keep_fds = eo.preserve_fds
    a.new_keyring = False
    a.container_id = str(data.get("id", ""))  # for the seccomp listener's state
    if not own_mount_namespace:  # shared with the runtime or joined: the init chrooted
        a.root_fd = _open_root_of(int(data["pid"]))
    master = -1
    peer = -1
    assert config.process is not None
    if config.linux.seccomp:
        from ociruntime.linux.seccomp import compile_filter

        a.seccomp = compile_filter(config.linux.seccomp)
    if config.process.terminal:
        from ociruntime.linux import terminal

        if eo.console_socket:
            a.console_fd = terminal.connect_console_socket(str(eo.console_socket))
        else:
            peer, a.console_fd = terminal.console_socketpair()
    parent_fd, a.sync_fd = sync.socketpair()
    parent = os.getpid()
    stage1_pid = os.fork()
    if stage1_pid == 0:
        child_after_fork(parent)  # a killed `exec` leaves no stage1 in the container's cgroup
        os.close(parent_fd)
        if peer >= 0:
            os.close(peer)
        exec_stage1(a)
    exec_pid = 0
    try:
        for fd in (a.sync_fd, a.console_fd):
            if fd >= 0:
                os.close(fd)
        timing.mark("exec-clone")
        from ociruntime.linux.procattrs import set_initial_affinity

        set_initial_affinity(stage1_pid, config.process)  # before the cgroup move (the spec)
        if data.get("cgroup"):
            cg = cgroups.from_state(data["cgroup"])
            cg.join(stage1_pid)
            if eo.cgroups:
                join_sub_cgroups(cg.paths(), eo.cgroups, stage1_pid)
        elif eo.cgroups:
            raise UsageError("exec --cgroup: the container has no cgroup")
        timing.mark("exec-cgroup")
        sync.send(parent_fd, "go")
        while (msg := sync.recv(parent_fd)) is not None:
            if msg["t"] == "error":
                raise SetupError(f"exec: {msg.get('msg')}")
            if msg["t"] == "pid":
                exec_pid = int(msg["pid"])
                os.waitpid(stage1_pid, 0)
                stage1_pid = 0
                timing.mark("exec-pid")
        if not exec_pid:
            raise SetupError("exec: the process could not be started")
        if peer >= 0:
            from ociruntime.linux import terminal

            master, peer = terminal.receive_master(peer), -1  # receive_master closes the socket
    except BaseException:
        if stage1_pid:
            os.kill(stage1_pid, 9)
            os.waitpid(stage1_pid, 0)
        raise
    finally:
        os.close(parent_fd)
        if peer >= 0:
            os.close(peer)
    log.debug(f"exec: pid {exec_pid}")
    return exec_pid, master


__all__ = ["ExecOptions", "OciError", "exec_in"]
