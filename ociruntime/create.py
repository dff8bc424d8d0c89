"""`create` and `run`: a new container, from its bundle to its init blocked before the user
program (`start` releases it: container.py). Everything `create` makes is undone, in reverse
order, if any later step fails."""

from __future__ import annotations

import posix
import time

from ociruntime import lean, log, state, timing
from ociruntime.container import hook_state, run_poststop, set_resources
from ociruntime.errors import HookError, OciError, OptionError
from ociruntime.spawn import NO_CONSOLE_SOCKET, UNUSED_CONSOLE_SOCKET, Spawn, become_subreaper, report_pid
from ociruntime.state import EXEC_FIFO, StateDir

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ociruntime.resources import Resources


class CreateOptions:
    """How to create a container: the flags of `create` and `run`, typed. `foreground` (run
    without --detach): with a terminal and no console socket, the pty master comes to us."""

    __slots__ = ("bundle", "console_socket", "foreground", "no_new_keyring", "no_pivot", "pid_file",
                 "pidfd_socket", "preserve_fds", "rootless", "systemd_cgroup")

    def __init__(self, bundle: str = ".", *, console_socket: str | None = None, pid_file: str | None = None,
                 pidfd_socket: str | None = None, preserve_fds: int = 0, no_pivot: bool = False,
                 no_new_keyring: bool = False, systemd_cgroup: bool = False, rootless: str = "auto",
                 foreground: bool = False) -> None:
        if not isinstance(preserve_fds, int) or preserve_fds < 0:
            raise OptionError("preserve_fds", f"{preserve_fds!r} is not a non-negative number")
        if rootless not in ("true", "false", "auto"):
            raise OptionError("rootless", f"invalid value {rootless!r} (expected true, false or auto)")
        self.bundle = bundle
        self.console_socket = console_socket
        self.pid_file = pid_file
        self.pidfd_socket = pidfd_socket
        self.preserve_fds = preserve_fds
        self.no_pivot = no_pivot
        self.no_new_keyring = no_new_keyring
        self.systemd_cgroup = systemd_cgroup
        self.rootless = rootless
        self.foreground = foreground


def rfc3339_now() -> str:
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"


class Creation:
    """One `create` in progress: what exists so far, so a failure can undo exactly that."""

    def __init__(self, root: str, cid: str, opts: CreateOptions) -> None:
        self.root = root
        self.cid = cid
        self.opts = opts
        self.sd: StateDir | None = None
        self.cgroup = None
        self.spawn: Spawn | None = None
        self.init_pid = 0
        self.console_peer = -1  # foreground run with a terminal: our end of the console socket
        self.data: dict = {}

    def undo(self) -> None:
        """Reverse order of making; each step best-effort so that one failure (or the state
        dir already removed by delete -f) does not stop the rest."""
        from ociruntime.container import kill_and_wait, kill_cgroup

        if self.init_pid:
            try:
                kill_and_wait(self.init_pid)
            except OciError as e:
                log.warning(f"cleanup: {e}")
        if self.spawn is not None:
            self.spawn.kill_first_child()
            self.spawn.close()
        if self.console_peer >= 0:
            posix.close(self.console_peer)
            self.console_peer = -1
        if self.cgroup is not None:
            try:
                kill_cgroup(self.cgroup, self.data)
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
        c.data = state_data(c, config)
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
        raise OptionError("console_socket", "required: process.terminal is true and the container runs "
                          "detached (the pty master is sent there)", runc=NO_CONSOLE_SOCKET)
    if not terminal and opts.console_socket:
        raise OptionError("console_socket", "given, but process.terminal is false", runc=UNUSED_CONSOLE_SOCKET)


def _build(c: Creation, config) -> None:
    """The default build step: stage1 and the init, driven through their set-up."""
    assert c.sd is not None
    cgroup_paths = c.cgroup.paths() if _wants_cgroup_mount(config) else None
    if cgroup_paths and list(cgroup_paths) == [""] and _new_cgroupns(config):
        # cgroup v2 and a cgroup namespace: a cgroup2 mount, whose root is the container's cgroup
        # (the init unshares the namespace inside it), as a delegated subtree needs.
        cgroup_paths = {}
    sp = c.spawn = Spawn.new_container(
        config, lean.abspath(c.opts.bundle), c.cid, console_socket=c.opts.console_socket,
        preserve_fds=c.opts.preserve_fds, no_pivot=c.opts.no_pivot, new_keyring=not c.opts.no_new_keyring,
        fifo_fd=_make_fifo(c.sd), cgroup_paths=cgroup_paths)
    c.console_peer = sp.take_console_peer()
    joined = sp.fork(c.cgroup)
    sp.go()
    # stage1 forks the init inside the cgroup: the pids limit waits until the init exists
    # (_drive), so that a limit of 0 or 1 does not forbid that very fork.
    before_init = _resources_before_init(config)
    if not joined:
        c.cgroup.apply(sp.pid, before_init)
    set_resources(c.cgroup, before_init)
    if _new_cgroupns(config) and list(c.cgroup.paths()) == [""]:
        from ociruntime.linux.cgroups.v2 import delegate_to_container

        delegate_to_container(c.cgroup.paths()[""], config)
    sp.send("cgroup")
    timing.mark("cgroups")
    c.sd.save_config(config.raw)  # while the child loads its side: off create's critical path
    _drive(c, config, sp)
    sp.close()
    finish_create(c)


def finish_create(c: Creation) -> None:
    """The init exists and c.data records it (and the config copy is saved: StateDir.save_config):
    the state says so, the caller gets its pid."""
    sd = c.sd
    assert sd is not None
    c.data.pop("creating", None)
    sd.update(c.data)
    report_pid(c.init_pid, c.opts.pid_file, c.opts.pidfd_socket)
    timing.mark("state")


def _make_fifo(sd: StateDir) -> int:
    """exec.fifo, made and opened through the locked directory's fd."""
    try:
        posix.mkfifo(EXEC_FIFO, 0o600, dir_fd=sd.dir_fd())
        # O_RDWR never blocks on a FIFO; the init inherits this fd and reads `start`'s byte.
        return posix.open(EXEC_FIFO, posix.O_RDWR | posix.O_CLOEXEC, dir_fd=sd.dir_fd())
    except FileNotFoundError:
        raise OciError(f"container {sd.id!r} was deleted meanwhile (a forced delete)") from None
    except OSError as e:
        raise state.io_error("cannot make", sd.file(EXEC_FIFO), e) from None


def resources_with_default_devices(config) -> Resources:
    from ociruntime.resources import Resources, with_default_devices

    resources = config.linux.resources.copy() if config.linux.resources else Resources({})
    resources.devices = with_default_devices(resources.devices, config.linux.devices)
    return resources


def _resources_before_init(config) -> Resources:
    """Everything but the pids limits (linux.resources.pids and unified pids.* keys)."""
    resources = resources_with_default_devices(config)
    resources.pids = None
    resources.unified = {k: v for k, v in (resources.unified or {}).items() if not k.startswith("pids.")} or None
    return resources


def _pids_resources(config) -> Resources:
    """The pids limits, set once the init exists; unified pids.* keys after (so over) them."""
    from ociruntime.resources import Resources

    out, resources = Resources({}), config.linux.resources
    if resources:
        out.pids = resources.pids
        out.unified = {k: v for k, v in (resources.unified or {}).items() if k.startswith("pids.")} or None
    return out


def _wants_cgroup_mount(config) -> bool:
    return any(m.type == "cgroup" for m in config.mounts)


def _new_cgroupns(config) -> bool:
    return any(ns.type == "cgroup" and not ns.path for ns in config.linux.namespaces)


def _drive(c: Creation, config, sp: Spawn) -> None:
    """Answer the children's requests until the init reports `ready`."""
    from ociruntime.linux import namespaces

    messages = sp.messages()
    while True:
        try:
            msg = next(messages, None)
        except HookError:
            # A failed hook stops the container and the lifecycle goes on at delete.
            run_poststop(config.hooks["poststop"], c.cid, c.data)
            raise
        if msg is None:
            raise sp.gone()
        kind = msg["t"]
        if kind == "userns":
            namespaces.write_id_maps(sp.pid, config.linux)
            sp.send("idmaps")
        elif kind == "pid":
            c.init_pid = sp.child
            set_resources(c.cgroup, _pids_resources(config))
            c.data = state_data(c, config)
            # Saved now so that even a create killed half-way can be cleaned up by delete -f.
            c.sd.update(c.data)
            sp.send("state", state=hook_state(c.cid, c.data, "creating"), **_rootless_view(c, config))
        elif kind == "createRuntime":
            _run_create_hooks(c, config)
            sp.send("createContainer")
        elif kind == "fault":
            posix.kill(posix.getpid(), 9)  # test-only: see timing._fault
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


def _run_create_hooks(c: Creation, config) -> None:
    from ociruntime import hooks

    st = hook_state(c.cid, c.data, "creating")
    try:
        hooks.run_hooks("prestart", config.hooks["prestart"], st)
        hooks.run_hooks("createRuntime", config.hooks["createRuntime"], st)
    except OciError:
        run_poststop(config.hooks["poststop"], c.cid, c.data)
        raise


def state_data(c: Creation, config) -> dict:
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
        "bundle": lean.abspath(c.opts.bundle), "rootfs": config.root_path,
        "created": c.data.get("created") or rfc3339_now(), "annotations": config.annotations,
        "cgroup": c.cgroup.to_state(),
        "hooks": {k: config.raw.get("hooks", {}).get(k) or [] for k in ("poststart", "poststop")},
        "creating": True,
    }


def run(root: str, cid: str, opts: CreateOptions, subreaper: bool = True, on_created=None,
        keep: bool = False) -> int:
    """create + start; in the foreground (opts.foreground), wait and return the container's
    exit status, then delete it (unless `keep`: it stays `stopped` for the caller to inspect
    and delete); detached, return 0 once it runs."""
    from ociruntime.container import delete_quietly, start

    if opts.foreground and subreaper:
        become_subreaper()  # the init is our grandchild
    c = create(root, cid, opts)
    if on_created is not None:
        on_created()
    master = -1
    try:
        if c.console_peer >= 0:
            from ociruntime.linux import terminal

            master, c.console_peer = terminal.receive_master(c.console_peer), -1  # it closes the socket
        start(root, cid)
    except BaseException:
        delete_quietly(root, cid)
        raise
    if not opts.foreground:
        return 0
    if master >= 0:
        from ociruntime.linux import terminal

        terminal.relay(master, c.init_pid)
    return wait_foreground(root, cid, c.init_pid, keep)


def wait_foreground(root: str, cid: str, pid: int, keep: bool) -> int:
    from ociruntime.container import delete_quietly
    from ociruntime.spawn import wait_child

    code = wait_child(pid)
    if not keep:
        delete_quietly(root, cid)
    return code
