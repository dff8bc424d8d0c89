"""The container lifecycle: creating -> created -> running -> stopped, every transition here.

`create` builds the container and returns once its init is blocked before the user program;
`start` releases it; `state`, `kill` and `delete` read the state dir and ask the kernel.
Everything `create` makes is undone, in reverse order, if any later step fails."""

from __future__ import annotations

import os
import select
import time

from ociruntime import jsonio, log, state, timing
from ociruntime.errors import ContainerNotFound, InvalidState, NotRunning, OciError, SetupError
from ociruntime.state import EXEC_FIFO, StateDir


class CreateOptions:
    __slots__ = (
        "bundle",
        "console_peer",
        "console_socket",
        "foreground",
        "no_new_keyring",
        "no_pivot",
        "pid_file",
        "pidfd_socket",
        "preserve_fds",
        "rootless",
        "systemd_cgroup",
    )

    def __init__(self, opts: dict[str, object], gopts: dict[str, object], foreground: bool) -> None:
        self.bundle = str(opts.get("bundle") or ".")
        self.pid_file = str(opts["pid_file"]) if opts.get("pid_file") else None
        self.pidfd_socket = str(opts["pidfd_socket"]) if opts.get("pidfd_socket") else None
        self.console_socket = str(opts["console_socket"]) if opts.get("console_socket") else None
        self.no_pivot = bool(opts.get("no_pivot"))
        self.no_new_keyring = bool(opts.get("no_new_keyring"))
        self.preserve_fds = non_negative(opts.get("preserve_fds"), "--preserve-fds")
        self.systemd_cgroup = bool(gopts.get("systemd_cgroup"))
        self.rootless = str(gopts.get("rootless") or "auto")
        self.foreground = foreground
        self.console_peer = -1  # foreground run with a terminal: our end of the console socket


def non_negative(value: object, flag: str) -> int:
    if value is None:
        return 0
    text = str(value)
    if not text.isdigit():
        raise OciError(f"{flag}: {text!r} is not a non-negative number")
    return int(text)


def rfc3339_now() -> str:
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"


def public_state(cid: str, data: dict, status: str) -> dict:
    """The spec's State plus runc's extra fields, in runc's order."""
    doc = {
        "ociVersion": data.get("ociVersion", ""), "id": cid,
        "pid": data.get("pid", 0) if status != "stopped" else 0,
        "status": status, "bundle": data.get("bundle", ""), "rootfs": data.get("rootfs", ""),
        "created": data.get("created", ""), "owner": "",
    }
    if data.get("annotations"):
        doc["annotations"] = data["annotations"]
    return doc


# --- create --------------------------------------------------------------------------------
class Creation:
    """One `create` in progress: what exists so far, so a failure can undo exactly that."""

    def __init__(self, root: str, cid: str, opts: CreateOptions) -> None:
        self.root = root
        self.cid = cid
        self.opts = opts
        self.sd: StateDir | None = None
        self.cgroup = None
        self.stage1_pid = 0
        self.init_pid = 0
        self.data: dict = {}

    def undo(self) -> None:
        """Reverse order of making; each step best-effort so that one failure (or the state
        dir already removed by delete -f) does not stop the rest."""
        if self.init_pid:
            try:
                _kill_and_wait(self.init_pid)
            except OciError as e:
                log.warning(f"cleanup: {e}")
        if self.stage1_pid:
            try:
                os.kill(self.stage1_pid, 9)
                os.waitpid(self.stage1_pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        if self.cgroup is not None:
            try:
                _kill_cgroup(self.cgroup, self.data)
                self.cgroup.destroy()
            except OciError as e:
                log.warning(f"cleanup: {e}")
        if self.sd is not None:
            try:
                self.sd.remove()
            except OciError as e:
                log.warning(f"cleanup: {e}")


def create(root: str, cid: str, opts: CreateOptions, build=None) -> Creation:
    """build(c, config) makes the init (default: _build; restore: criu); everything before it
    (config, cgroup plan, state dir) and the undo on failure are the same for both."""
    from ociruntime import bundle

    config = bundle.load(opts.bundle, systemd_cgroup=opts.systemd_cgroup)
    _check_terminal(config.process is not None and config.process.terminal, opts)
    _check_rootless(config)
    c = Creation(root, cid, opts)
    c.cgroup = _cgroup_manager(config, c)
    c.sd = StateDir.create(root, cid)
    try:
        timing.mark("statedir")
        # Recorded before anything else is made: from here on, whatever kills us, `delete -f`
        # finds which cgroup directories are ours and removes exactly those.
        c.cgroup.plan()
        c.data = _state_data(c, config)
        c.sd.save(c.data)
        _warn_foreign_processes(c.cgroup)
        (build or _build)(c, config)
    except BaseException:
        c.undo()
        raise
    c.sd.unlock()
    return c


def _cgroup_manager(config, c: Creation):
    from ociruntime.linux import cgroups, rootless

    return cgroups.manager(config.linux.cgroups_path, c.cid, systemd=c.opts.systemd_cgroup,
                           rootless=rootless.cgroups_rootless(c.opts.rootless))


def _check_rootless(config) -> None:
    from ociruntime.linux import rootless

    problem = rootless.check_namespaces(config.linux.namespace("user") is not None)
    if problem:
        raise OciError(problem)


def _warn_foreign_processes(cg) -> None:
    """runc's behaviour for a cgroupsPath naming a cgroup that already holds processes: join it,
    say so; those processes are never killed, nor the cgroup removed, with this container."""
    if cg.owned():
        return
    foreign = cg.pids()
    if foreign:
        log.warning(f"cgroup {next(iter(cg.paths().values()), '?')} already holds {len(foreign)} "
                    "process(es) not of this container: they are left alone, and so is the cgroup")


def _check_terminal(terminal: bool, opts: CreateOptions) -> None:
    if terminal and not opts.console_socket and not opts.foreground:
        raise OciError("process.terminal is true: --console-socket is required (the pty master "
                       "is sent there)")
    if not terminal and opts.console_socket:
        raise OciError("--console-socket was given but process.terminal is false")


def _listen_fds() -> int:
    """Socket activation (sd_listen_fds): fds handed to us are passed on, as runc does, only
    when LISTEN_PID names us: a stray LISTEN_FDS must not pass the caller's fds inside."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return 0
    value = os.environ.get("LISTEN_FDS", "")
    return int(value) if value.isdigit() else 0


def _build(c: Creation, config) -> None:
    from ociruntime.linux import namespaces, sync
    from ociruntime.linux.init import InitArgs, stage1

    sd = c.sd
    assert sd is not None
    a = InitArgs(config, os.path.abspath(c.opts.bundle), namespaces.NamespacePlan(config.linux))
    a.no_pivot = c.opts.no_pivot
    a.new_keyring = not c.opts.no_new_keyring
    a.container_id = c.cid
    listen = _listen_fds()
    a.keep_fds = listen + c.opts.preserve_fds
    if listen:
        a.extra_env = [f"LISTEN_FDS={listen}", "LISTEN_PID=1"]
    if config.linux.seccomp:
        from ociruntime.linux.seccomp import compile_filter

        a.seccomp = compile_filter(config.linux.seccomp)
        timing.mark("seccomp")
    a.fifo_fd = _make_fifo(sd)
    if config.process is not None and config.process.terminal:
        from ociruntime.linux import terminal

        if c.opts.console_socket:
            a.console_fd = terminal.connect_console_socket(c.opts.console_socket)
        else:  # foreground run: the pty master comes to us, and we relay our stdio to it
            c.opts.console_peer, a.console_fd = terminal.console_socketpair()
    a.cgroup_paths = c.cgroup.paths() if _wants_cgroup_mount(config) else None
    if a.cgroup_paths and list(a.cgroup_paths) == [""] and _new_cgroupns(config):
        # cgroup v2 and a cgroup namespace: a cgroup2 mount, whose root is the container's cgroup
        # (the init unshares the namespace inside it), as a delegated subtree needs.
        a.cgroup_paths = {}
    parent_fd, a.sync_fd = sync.socketpair()
    try:
        parent = os.getpid()
        joined = _fork_stage1(c)
        if c.stage1_pid == 0:
            child_after_fork(parent)
            timing.fault_channel(a.sync_fd)
            os.close(parent_fd)
            stage1(a)
        for fd in (a.sync_fd, a.fifo_fd, a.console_fd):
            if fd >= 0:
                os.close(fd)
        timing.mark("clone")
        sync.send(parent_fd, "go")
        if not joined:
            c.cgroup.apply(c.stage1_pid)
        # stage1 forks the init inside the cgroup: the pids limit waits until the init exists
        # (_drive), so that a limit of 0 or 1 does not forbid that very fork.
        set_resources(c.cgroup, _resources_before_init(config))
        if _new_cgroupns(config) and list(c.cgroup.paths()) == [""]:
            from ociruntime.linux.cgroups.v2 import delegate_to_container

            delegate_to_container(c.cgroup.paths()[""], config)
        sync.send(parent_fd, "cgroup")
        timing.mark("cgroups")
        _drive(c, config, parent_fd)
    finally:
        os.close(parent_fd)
    finish_create(c, config)


def finish_create(c: Creation, config) -> None:
    """The init exists and c.data records it: the state says so, the caller gets its pid."""
    sd = c.sd
    assert sd is not None
    c.data.pop("creating", None)
    sd.save(c.data)
    # `exec` needs the config as it was at create: later edits of config.json MUST NOT matter.
    sd.save_config(config.raw)
    if c.opts.pid_file:
        _write_pid_file(c.opts.pid_file, c.init_pid)
    if c.opts.pidfd_socket:
        send_pidfd(c.opts.pidfd_socket, c.init_pid)
    timing.mark("state")


def _fork_stage1(c: Creation) -> bool:
    """Fork stage1 into c.stage1_pid; True if it was born inside its cgroup (one cgroup v2
    directory: clone3 CLONE_INTO_CGROUP), False if it must be moved there."""
    target = c.cgroup.clone_target()
    if target < 0:
        c.stage1_pid = os.fork()
        return False
    from ociruntime.linux import fork

    try:
        c.stage1_pid, joined = fork.fork_into_cgroup(target)
    except BaseException:
        os.close(target)
        raise
    if c.stage1_pid:
        os.close(target)  # the child closes its copy with every other inherited fd
    return joined


def send_pidfd(path: str, pid: int) -> None:
    """--pidfd-socket (runc 1.2): a pidfd of the process, sent with SCM_RIGHTS over the unix
    socket at path, so the caller can wait for it and signal it without pid reuse races."""
    from ociruntime.linux import unixsock

    try:
        pidfd = os.pidfd_open(pid)
    except OSError as e:
        raise SetupError(f"--pidfd-socket: pidfd_open of pid {pid}: {e.strerror}") from None
    try:
        unixsock.send_fd(unixsock.connect(path, "--pidfd-socket"), b"pidfd", pidfd, f"--pidfd-socket {path}")
    finally:
        os.close(pidfd)


def _write_pid_file(path: str, pid: int) -> None:
    target = os.path.abspath(path)
    try:
        state.write_atomic(target, f"{pid}".encode())
    except OSError as e:
        raise state.io_error("cannot write pid file", target, e) from None


def _make_fifo(sd: StateDir) -> int:
    """exec.fifo, made and opened through the locked directory's fd."""
    try:
        os.mkfifo(EXEC_FIFO, 0o600, dir_fd=sd.dir_fd())
        # O_RDWR never blocks on a FIFO; the init inherits this fd and reads `start`'s byte.
        return os.open(EXEC_FIFO, os.O_RDWR | os.O_CLOEXEC, dir_fd=sd.dir_fd())
    except FileNotFoundError:
        raise OciError(f"container {sd.id!r} was deleted meanwhile (delete --force)") from None
    except OSError as e:
        raise state.io_error("cannot make", sd.file(EXEC_FIFO), e) from None


def child_after_fork(parent: int) -> None:
    """First thing in a child the runtime forks: SIGTERM has its default meaning again (see
    state._on_sigterm), and the child dies with the runtime (PR_SET_PDEATHSIG), so a runtime
    killed half-way leaves no stage1 behind."""
    state.reset_child_signals()
    from ociruntime.linux import security

    security.prctl(1, 9, "prctl(PR_SET_PDEATHSIG)")  # PR_SET_PDEATHSIG, SIGKILL
    if os.getppid() != parent:
        os._exit(1)  # the runtime died before the prctl: nobody is left to talk to


def _resources_with_default_devices(config) -> dict:
    from ociruntime.linux.cgroups import with_default_devices

    resources = dict(config.linux.resources or {})
    devices = (config.raw.get("linux") or {}).get("devices")
    resources["devices"] = with_default_devices(resources.get("devices"), devices)
    return resources


def set_resources(cg, resources: dict) -> None:
    """cg.set(), then log what the driver accepted but could not apply on this host."""
    cg.set(resources)
    for warning in cg.warnings:
        log.warning(warning)
    cg.warnings.clear()


def _resources_before_init(config) -> dict:
    """Everything but the pids limits (linux.resources.pids and unified pids.* keys)."""
    resources = _resources_with_default_devices(config)
    resources.pop("pids", None)
    unified = {k: v for k, v in (resources.get("unified") or {}).items() if not k.startswith("pids.")}
    if unified:
        resources["unified"] = unified
    else:
        resources.pop("unified", None)
    return resources


def _pids_resources(config) -> dict:
    """The pids limits, set once the init exists; unified pids.* keys after (so over) them."""
    resources = config.linux.resources or {}
    out = {"pids": resources["pids"]} if resources.get("pids") else {}
    unified = {k: v for k, v in (resources.get("unified") or {}).items() if k.startswith("pids.")}
    if unified:
        out["unified"] = unified
    return out


def _wants_cgroup_mount(config) -> bool:
    return any(m.type == "cgroup" for m in config.mounts)


def _new_cgroupns(config) -> bool:
    return any(ns.type == "cgroup" and not ns.path for ns in config.linux.namespaces)


def _drive(c: Creation, config, fd: int) -> None:
    """Answer the children's requests until the init reports `ready`."""
    from ociruntime import hooks
    from ociruntime.linux import namespaces, sync

    while True:
        msg = sync.recv(fd)
        if msg is None:
            raise SetupError("container init exited during set-up without reporting an error")
        kind = msg["t"]
        if kind == "error":
            if msg.get("hook"):
                # A failed hook stops the container and the lifecycle goes on at delete.
                _run_poststop(config.hooks["poststop"], c.cid, c.data)
            raise SetupError(str(msg.get("msg")))
        if kind == "userns":
            namespaces.write_id_maps(c.stage1_pid, config.linux)
            sync.send(fd, "idmaps")
        elif kind == "pid":
            c.init_pid = int(msg["pid"])
            os.waitpid(c.stage1_pid, 0)
            c.stage1_pid = 0
            set_resources(c.cgroup, _pids_resources(config))
            c.data = _state_data(c, config)
            # Saved now so that even a create killed half-way can be cleaned up by delete -f.
            c.sd.save(c.data)
            sync.send(fd, "state", state=hook_state(c.cid, c.data, "creating"), **_rootless_view(c, config))
        elif kind == "createRuntime":
            _run_create_hooks(c, config, hooks)
            sync.send(fd, "createContainer")
        elif kind == "fault":
            os.kill(os.getpid(), 9)  # test-only: see timing._fault
        elif kind == "ready":
            timing.merge(msg.get("timings") or [])
            return


def _rootless_view(c: Creation, config) -> dict:
    """Rootless: which cgroups the container's cgroup mount shows is known only now that the
    undelegated ones were skipped (the init then shows the cgroup it runs in, as runc)."""
    from ociruntime.linux import cgroups, rootless

    if not (_wants_cgroup_mount(config) and rootless.cgroups_rootless(c.opts.rootless)):
        return {}

    return {"cgroup_paths": cgroups.rootless_view(c.cgroup.paths())}


def _run_create_hooks(c: Creation, config, hooks) -> None:
    st = hook_state(c.cid, c.data, "creating")
    try:
        hooks.run_hooks("prestart", config.hooks["prestart"], st)
        hooks.run_hooks("createRuntime", config.hooks["createRuntime"], st)
    except OciError:
        _run_poststop(config.hooks["poststop"], c.cid, c.data)
        raise


def _run_poststop(poststop: list, cid: str, data: dict) -> None:
    """Every poststop hook runs; a failure is a warning (the container is gone either way)."""
    if not poststop:
        return
    from ociruntime import hooks

    for failure in hooks.run_all_hooks("poststop", poststop, hook_state(cid, data, "stopped")):
        log.warning(f"{failure} (the container is deleted anyway)")


def _state_data(c: Creation, config) -> dict:
    """What delete -f needs to undo this create, whatever step it stopped at: `creating`
    until the end; the cgroup directories that are ours; the init's pid, start time and pid
    namespace once known (a recycled pid, or a process outside the container, is never hit)."""
    from ociruntime import SPEC_VERSION

    pid = c.init_pid
    return {
        "ociVersion": SPEC_VERSION, "id": c.cid, "pid": pid,
        "start_time": (state.process_start_time(pid) or -1) if pid else -1,
        "pidns": state.pid_namespace(pid) if pid else 0,
        "host_pidns": state.pid_namespace("self"),
        "bundle": os.path.abspath(c.opts.bundle), "rootfs": config.root_path,
        "created": c.data.get("created") or rfc3339_now(), "annotations": config.annotations,
        "cgroup": c.cgroup.to_state(),
        "hooks": {k: config.raw.get("hooks", {}).get(k) or [] for k in ("poststart", "poststop")},
        "creating": True,
    }


def hook_state(cid: str, data: dict, status: str) -> dict:
    """The state on a hook's stdin (README "Hooks": which status each kind sees, and why)."""
    doc = {"ociVersion": data.get("ociVersion", ""), "id": cid, "status": status,
           "pid": data.get("pid", 0), "bundle": data.get("bundle", "")}
    if status == "stopped":
        del doc["pid"]  # OPTIONAL when stopped: the process is gone and its pid may be reused
    if data.get("annotations"):
        doc["annotations"] = data["annotations"]
    return doc


def _hooks_from(data: dict, kind: str) -> list:
    """The hooks create recorded; the config model is imported only when there are some."""
    recorded = data.get("hooks", {}).get(kind)
    if not recorded:
        return []
    from ociruntime.config import Hook

    return [Hook(h) for h in recorded]


# --- start / state / kill / delete ----------------------------------------------------------
def start(root: str, cid: str) -> None:
    with state.locked(root, cid) as held:
        if held.status != "created":
            raise InvalidState(f"cannot start container {cid!r}: it is {held.status}, not created")
        _release_init(held.sd, cid, held.data["pid"])
        try:
            os.unlink(EXEC_FIFO, dir_fd=held.sd.dir_fd())
        except FileNotFoundError:
            raise OciError(f"container {cid!r} was deleted while it was being started") from None
        timing.mark("started")
        poststart = _hooks_from(held.data, "poststart")
        if poststart:
            _run_poststart(cid, held.data, poststart)


def start_timeout() -> float:
    """How long `start` waits for the init to exec the user program: the startContainer hooks
    run in between, and a stopped or stuck init must not hold the lock (and the caller) forever.
    OCIRUNTIME_START_TIMEOUT (seconds) overrides the default."""
    value = os.environ.get("OCIRUNTIME_START_TIMEOUT", "")
    try:
        return float(value) if value else 60.0
    except ValueError:
        return 60.0


def _release_init(sd: StateDir, cid: str, pid: int) -> None:
    """Write one byte to exec.fifo, then wait until the init has exec'd the user program
    (its copy of the fifo closes at execve, which shows here as POLLHUP)."""
    try:
        rfd = os.open(EXEC_FIFO, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=sd.dir_fd())
    except FileNotFoundError:
        raise OciError(f"container {cid!r} was deleted while it was being started") from None
    try:
        wfd = os.open(EXEC_FIFO, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=sd.dir_fd())
        try:
            os.write(wfd, b"0")
        finally:
            os.close(wfd)
        _wait_exec(sd, cid, pid, rfd)
        try:
            leftover = os.read(rfd, 4096)
        except BlockingIOError:
            leftover = b""
        if leftover == b"0":
            raise SetupError(f"container {cid!r}: the init exited before it could be started")
        if leftover:
            # The init wrote its failure (a startContainer hook, or execve) after our byte.
            raise SetupError(f"container {cid!r}: start failed: "
                             f"{leftover.decode(errors='replace').strip()}")
    finally:
        os.close(rfd)


def _wait_exec(sd: StateDir, cid: str, pid: int, rfd: int) -> None:
    """Until POLLHUP (every writer gone: the init exec'd or died), bounded by start_timeout();
    meanwhile notice a delete -f that removed the container under us."""
    poller = select.poll()
    poller.register(rfd, select.POLLHUP)
    timeout = start_timeout()
    deadline = time.monotonic() + timeout
    while True:
        events = poller.poll(50)
        if any(ev & select.POLLHUP for _, ev in events):
            return
        if events:
            time.sleep(0.0002)  # our byte is still unread: the init is about to read it
        if sd.removed():
            raise OciError(f"container {cid!r} was deleted while it was being started")
        if time.monotonic() >= deadline:
            raise SetupError(f"container {cid!r}: start gave up after {timeout:g} s waiting for "
                             f"the init (pid {pid}) {_what_init_does(pid, bool(events))}")


def _what_init_does(pid: int, byte_unread: bool) -> str:
    if state.process_state(pid) == "T":
        return "to read the start signal: it is stopped (SIGSTOP or a debugger)"
    if byte_unread:
        return "to read the start signal from exec.fifo"
    return "to run its startContainer hooks and exec the user program"


def _run_poststart(cid: str, data: dict, poststart: list) -> None:
    from ociruntime import hooks

    try:
        hooks.run_hooks("poststart", poststart, hook_state(cid, data, "running"))
    except OciError:
        # runtime-spec 1.3.0: a failing poststart hook is an error and stops the container.
        _kill_and_wait(int(data["pid"]))
        raise


def state_json(root: str, cid: str) -> str:
    sd = StateDir(root, cid)
    data = sd.load()
    return jsonio.dumps_pretty(public_state(cid, data, state.status_of(sd, data)))


def kill(root: str, cid: str, sig: str, all_processes: bool) -> None:
    from ociruntime.signals import parse_signal

    number = parse_signal(sig)
    with state.locked(root, cid) as held:
        if held.status == "stopped" and not all_processes:
            raise NotRunning(cid, "kill")
        if held.status == "creating":
            raise InvalidState(f"cannot kill container {cid!r}: it is still being created "
                               "(delete --force removes it)")
        if all_processes:
            _signal_cgroup(held.data, number)
        else:
            _signal_init(cid, int(held.data["pid"]), int(held.data["start_time"]), number)


def _signal_init(cid: str, pid: int, start_time: int, number: int) -> None:
    import _signal  # the C module: `signal` would import enum (~3 ms)

    # A pidfd pins the process: once it is checked, a recycled pid can never be signalled.
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        raise NotRunning(cid, "kill") from None
    try:
        if not state.is_same_process(pid, start_time):
            raise NotRunning(cid, "kill")
        try:
            _signal.pidfd_send_signal(pidfd, number)
        except OSError as e:
            raise SetupError(f"send signal {number} to pid {pid}: {e.strerror}") from None
    finally:
        os.close(pidfd)


def _signal_cgroup(data: dict, number: int) -> None:
    for pid in _own_pids(_cgroup_of(data), data):
        try:
            os.kill(pid, number)
        except ProcessLookupError:
            pass


def delete(root: str, cid: str, force: bool) -> None:
    if force:
        try:
            sd = StateDir.open_forced(root, cid)
        except ContainerNotFound:
            return  # runc and crun: delete -f of a container that does not exist succeeds
    else:
        sd = StateDir.open(root, cid)
    try:
        if force:
            data, problem = sd.load_salvage()
            if problem:
                log.warning(f"{problem} (removing what can be trusted of it)")
        else:
            data = sd.load()
        status = state.status_of(sd, data)
        if status in ("running", "paused") and not force:
            raise InvalidState(f"cannot delete container {cid!r}: it is {status} (stop it first, "
                               "or use delete --force)")
        if status != "stopped":
            # runc deletes a `created` container without --force; callers rely on it. A
            # `creating` one here is left by a create that died (we hold its lock) or is
            # being removed by force: its init, if already recorded, goes too.
            if status == "paused":
                _cgroup_of(data).thaw()  # frozen tasks would not die of SIGKILL until thawed
            if data.get("pid"):
                _kill_and_wait(data["pid"], data.get("start_time", -1))
        timing.mark("delete-killed")
        destroy(sd, cid, data)
    finally:
        sd.unlock()


def destroy(sd: StateDir, cid: str, data: dict) -> None:
    """Undo create: processes, cgroup, state dir; then the poststop hooks."""
    if data.get("cgroup"):
        cg = _cgroup_of(data)
        _kill_cgroup(cg, data)
        cg.destroy()
    timing.mark("delete-cgroup")
    sd.remove()
    _run_poststop(_hooks_from(data, "poststop"), cid, data)


def _own_pids(cg, data: dict) -> list[int]:
    """The processes of the cgroup that are this container's: all of them in a cgroup it
    created; in a cgroup it joined, only those in the container's own pid namespace (its init,
    their children, exec'd processes), or without one the exec'd processes recorded in the
    state; never a process someone else put there."""
    pids = cg.pids()
    if cg.owned():
        return pids
    ns = data.get("pidns") or 0
    if not ns or ns == data.get("host_pidns"):
        # It shares a pid namespace: besides the init (signalled by pidfd), only the processes
        # that entered through `exec`, as recorded with their start times.
        recorded = {(p, t) for p, t in data.get("exec_pids") or ()}
        return [p for p in pids if (p, state.process_start_time(p)) in recorded]
    return [p for p in pids if state.pid_namespace(p) == ns]


def _kill_cgroup(cg, data: dict) -> None:
    """SIGKILL whatever of the container's is left in its cgroup (processes outside its pid
    namespace survive its init)."""
    if cg.owned() and cg.kill_all():
        return
    for _ in range(50):
        pids = _own_pids(cg, data)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        _wait_gone(pids, 0.1)
    raise SetupError("processes in the container's cgroup survive SIGKILL")


def _wait_gone(pids: list[int], timeout: float) -> None:
    poller = select.poll()
    fds = []
    for pid in pids:
        try:
            fds.append(os.pidfd_open(pid))
            poller.register(fds[-1], select.POLLIN)
        except ProcessLookupError:
            pass
    try:
        deadline = time.monotonic() + timeout
        remaining = len(fds)
        while remaining and time.monotonic() < deadline:
            for fd, _ in poller.poll(max(1, int((deadline - time.monotonic()) * 1000))):
                poller.unregister(fd)  # exited: a pidfd stays readable, count it once
                remaining -= 1
    finally:
        for fd in fds:
            os.close(fd)


def _kill_and_wait(pid: int, start_time: int | None = None) -> None:
    """SIGKILL the init and wait (pidfd) until it has exited, or is exiting: the init of a pid
    namespace stays in the kernel until every other process of the namespace is reaped, and
    an exec'd process orphaned by a killed `exec` is reaped by the host's init, which may take
    its time. It has left the cgroup by then; we need not wait for the reaping."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        if start_time is not None and not state.is_same_process(pid, start_time):
            return
        import _signal

        try:
            _signal.pidfd_send_signal(pidfd, 9)
        except ProcessLookupError:
            return
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        deadline = time.monotonic() + 10
        while not poller.poll(10):
            if state.is_exiting(pid):
                return
            if time.monotonic() > deadline:
                raise SetupError(f"container init (pid {pid}) did not die within 10 s of SIGKILL")
    finally:
        os.close(pidfd)


# --- pause / resume / ps -------------------------------------------------------------------
def _cgroup_of(data: dict):
    from ociruntime.linux import cgroups

    if not data.get("cgroup"):
        raise InvalidState("the container has no cgroup")
    try:
        return cgroups.from_state(data["cgroup"])
    except (KeyError, TypeError, ValueError, AttributeError):
        raise OciError(f"container {data.get('id', '')!r}: corrupt state file: the cgroup record "
                       "is incomplete") from None


def pause(root: str, cid: str) -> None:
    _freeze_or_thaw(root, cid, "running", freeze=True)


def resume(root: str, cid: str) -> None:
    _freeze_or_thaw(root, cid, "paused", freeze=False)


def _freeze_or_thaw(root: str, cid: str, expected: str, freeze: bool) -> None:
    with state.locked(root, cid) as held:
        if held.status != expected:
            verb = "pause" if freeze else "resume"
            raise InvalidState(f"cannot {verb} container {cid!r}: it is {held.status}, not {expected}")
        cg = _cgroup_of(held.data)
        if freeze:
            cg.freeze()
        else:
            cg.thaw()


def stats_event(root: str, cid: str) -> dict:
    """One `events --stats` record, in runc's shape."""
    sd = StateDir(root, cid)
    data = sd.load()
    if state.status_of(sd, data) == "stopped":
        raise NotRunning(cid, "get statistics of")
    return {"type": "stats", "id": cid, "data": _cgroup_of(data).stats()}


def oom_watch(root: str, cid: str):
    """A linux.cgroups.oom.OomWatch on the container's memory cgroup (None without one), for
    the `oom` events of `events`."""
    from ociruntime.linux.cgroups import oom

    sd = StateDir(root, cid)
    data = sd.load()
    if state.status_of(sd, data) == "stopped":
        raise NotRunning(cid, "watch the events of")
    return oom.watch(_cgroup_of(data).paths())


def update(root: str, cid: str, resources: dict) -> None:
    """Apply new linux.resources to a live container (and remember them for `exec`)."""
    with state.locked(root, cid) as held:
        if held.status == "stopped":
            raise NotRunning(cid, "update")
        set_resources(_cgroup_of(held.data), resources)


def container_pids(root: str, cid: str) -> list[int]:
    sd = StateDir(root, cid)
    data = sd.load()
    if state.status_of(sd, data) == "stopped":
        raise NotRunning(cid, "list the processes of")
    return sorted(_own_pids(_cgroup_of(data), data))


# --- list ----------------------------------------------------------------------------------
def list_containers(root: str, fmt: str, quiet: bool) -> str:
    entries = []
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        names = []
    except NotADirectoryError:
        raise OciError(f"--root {root}: not a directory") from None
    except OSError as e:
        raise state.io_error("cannot list", root, e) from None
    for name in names:
        doc = _list_entry(root, name)
        if doc is not None:
            entries.append(doc)
    if quiet:
        return "".join(e["id"] + "\n" for e in entries)
    if fmt == "json":
        return (jsonio.dumps(entries) if entries else "null") + "\n"
    rows = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
    rows += [[e["id"], str(e["pid"]), e["status"], e["bundle"], e["created"], e["owner"]]
             for e in entries]
    return _table(rows)


def _list_entry(root: str, name: str) -> dict | None:
    """One container's line; a corrupt one is listed as `unknown` (the others still are)."""
    try:
        sd = StateDir(root, name)
    except OciError:
        return None  # not a container ID: some other file
    if not os.path.isdir(sd.path):
        return None
    try:
        data, problem = sd.load_salvage()
    except OciError:
        return None  # deleted right now
    status = "unknown" if problem else state.status_of(sd, data)
    doc = public_state(name, data, status)
    if problem:
        doc["pid"] = 0
    doc["owner"] = _owner(sd.path)
    return doc


def _owner(path: str) -> str:
    import pwd

    try:
        uid = os.stat(path).st_uid
    except OSError:
        return ""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"#{uid}"


def _table(rows: list[list[str]]) -> str:
    """Columns padded like runc's tabwriter (min width 12, padding 3)."""
    widths = [max(12, max(len(r[i]) for r in rows) + 3) for i in range(len(rows[0]) - 1)]
    return "".join("".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + r[-1] + "\n" for r in rows)


# --- run -----------------------------------------------------------------------------------
def run(root: str, cid: str, opts: CreateOptions, detach: bool, subreaper: bool = True,
        on_created=None, keep: bool = False) -> int:
    """create + start; in the foreground, wait and return the container's exit status, then
    delete it (unless `keep`: it stays `stopped` for the caller to inspect and delete)."""
    from ociruntime.linux import security

    if not detach and subreaper:
        # The init is our grandchild: as a subreaper we can wait for it and get its status.
        security.prctl(security.PR_SET_CHILD_SUBREAPER, 1, "prctl(PR_SET_CHILD_SUBREAPER)")
    c = create(root, cid, opts)
    if on_created is not None:
        on_created()
    master = -1
    try:
        if opts.console_peer >= 0:
            from ociruntime.linux import terminal

            master = terminal.receive_master(opts.console_peer)
        start(root, cid)
    except BaseException:
        _delete_quietly(root, cid)
        raise
    if detach:
        return 0
    if master >= 0:
        from ociruntime.linux import terminal

        terminal.relay(master, c.init_pid)
    return _wait_foreground(root, cid, c.init_pid, keep)


def _wait_foreground(root: str, cid: str, pid: int, keep: bool) -> int:
    code = wait_child(pid)
    if not keep:
        _delete_quietly(root, cid)
    return code


def wait_child(pid: int) -> int:
    """Wait for pid (our child, or grandchild while we are a subreaper), forwarding the usual
    signals to it; its exit status as a shell reports it (128+N for a signal)."""
    import _signal

    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for signum in (1, 2, 3, 10, 12, 15, 28):
        _signal.signal(signum, forward)
    status = 0
    while True:
        try:
            reaped, st = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        if reaped == pid:
            status = st
            break
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def _delete_quietly(root: str, cid: str) -> None:
    try:
        delete(root, cid, force=True)
    except OciError as e:
        log.warning(f"delete {cid}: {e}")
