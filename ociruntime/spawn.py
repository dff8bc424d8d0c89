"""The parent side of starting a process in a container, one path with two faces: a new
container (`create`: its init) and a process joining one (`exec`). Both make the child's fds
(sync socket, console, seccomp filter) and its InitArgs once, complete; fork the first child
(linux/init.py stage1 or exec_stage1); read its messages; and kill it if anything fails."""

from __future__ import annotations

import posix

from ociruntime import lean, load_block, state, timing
from ociruntime.errors import OciError, SetupError, SyscallError

# runc's words for a terminal without a console socket, and for a console socket without a
# terminal (create, run, exec, restore): callers of runc match them.
NO_CONSOLE_SOCKET = "cannot allocate tty if runc will detach without setting console socket"
UNUSED_CONSOLE_SOCKET = "cannot use console socket if runc will not detach or allocate tty"

class Spawn:
    """One child being started: `args` (what it inherits), `fd` (our end of the sync socket),
    `pid` (the first child until it has reported the process that stays, then 0), `child`
    (that process), `console_peer` (our end of the console socketpair when no --console-socket
    was given: the pty master comes here)."""

    __slots__ = ("args", "child", "console_peer", "fd", "joins", "label", "pid", "stage")

    def __init__(self, config, bundle: str, plan, stage, label: str, console_socket: str | None,
                 **fields) -> None:
        from ociruntime.linux import sync
        from ociruntime.linux.initargs import InitArgs

        self.stage, self.label = stage, label
        self.pid = self.child = 0
        self.fd = self.console_peer = -1
        self.joins: list[tuple[int, str]] = []  # the `tasks` files fork() opened, until go() sends them
        console_fd = sync_fd = -1
        seccomp = None
        try:
            if config.linux.seccomp:
                from ociruntime.linux import bpfcache

                seccomp = bpfcache.filter_for(config.linux.seccomp, bpfcache.directory())
                timing.mark(f"{label}seccomp")
            if config.process is not None and config.process.terminal:
                from ociruntime.linux import terminal

                if console_socket:
                    console_fd = terminal.connect_console_socket(console_socket)
                else:  # a foreground run or exec: the pty master comes to us, we relay our stdio
                    self.console_peer, console_fd = terminal.console_socketpair()
            self.fd, sync_fd = sync.socketpair()
        except BaseException:
            _close(console_fd, fields.get("fifo_fd", -1), fields.get("root_fd", -1))
            self.close()
            raise
        self.args = InitArgs(config, bundle, plan, sync_fd=sync_fd, console_fd=console_fd, seccomp=seccomp,
                             **fields)

    @classmethod
    def new_container(cls, config, bundle: str, container_id: str, *, console_socket: str | None,
                      preserve_fds: int, no_pivot: bool, new_keyring: bool, fifo_fd: int,
                      cgroup_paths: dict[str, str] | None) -> Spawn:
        """`create`: stage1 makes the namespaces and forks the init, which waits on exec.fifo."""
        from ociruntime.linux.namespaces import NamespacePlan

        listen = _listen_fds()
        return cls(config, bundle, NamespacePlan(config.linux), "stage1", "", console_socket,
                   container_id=container_id, keep_fds=listen + preserve_fds, no_pivot=no_pivot,
                   extra_env=[f"LISTEN_FDS={listen}", "LISTEN_PID=1"] if listen else None,
                   new_keyring=new_keyring, fifo_fd=fifo_fd, cgroup_paths=cgroup_paths)

    @classmethod
    def join_container(cls, config, data: dict, joins: list[tuple[str, str]], *, console_socket: str | None,
                       preserve_fds: int) -> Spawn:
        """`exec`: exec_stage1 enters the running container's namespaces (`joins`) and forks the
        process, which keeps the session keyring the init made."""
        from ociruntime.linux.namespaces import NamespacePlan

        own_mount_ns = any(ns.type == "mount" and not ns.path for ns in config.linux.namespaces)
        # Without a mount namespace of its own (shared with the runtime, or joined), the init
        # chrooted: the process goes into the same root.
        root_fd = -1 if own_mount_ns else _open_root_of(int(data["pid"]))
        return cls(config, str(data.get("bundle", "/")), NamespacePlan(config.linux, joins), "exec_stage1",
                   "exec-", console_socket, container_id=str(data.get("id", "")), is_exec=True,
                   keep_fds=preserve_fds, new_keyring=False, root_fd=root_fd)

    def fork(self, cgroup=None, *, born_in: bool = True) -> bool:
        """Fork the first child, which never returns here; close its ends of the fds. With
        `cgroup`, the child may be born in it (clone3 CLONE_INTO_CGROUP, a cgroup v2
        directory; not without `born_in`): True if it was, False if the caller must move it
        (apply), but for the v1 hierarchies, which it joins itself (cgroup.self_join): their
        directories are made and their `tasks` opened after the fork, while the child loads
        its side, and go to it with `go` (go()). The child starts on another CPU than ours
        where it may use one (fork.start_elsewhere)."""
        from ociruntime.linux import fork

        parent = posix.getpid()
        target = cgroup.clone_target() if cgroup is not None and born_in else -1
        try:
            joined = self._clone(target)
        finally:
            _close(target)
        if self.pid == 0:
            self._run_child(parent)
        fork.start_elsewhere(self.pid)
        _close(self.args.sync_fd, self.args.fifo_fd, self.args.console_fd, self.args.root_fd)
        self.joins = cgroup.self_join() if cgroup is not None else []
        timing.mark(f"{self.label}clone")
        return joined

    def go(self) -> None:
        """Let the first child go on, with the `tasks` files fork() opened (SCM_RIGHTS)."""
        joins, self.joins = self.joins, []
        try:
            self.send("go", fds=[fd for fd, _ in joins], tasks=[path for _, path in joins])
        finally:
            _close(*(fd for fd, _ in joins))

    def _clone(self, target: int) -> bool:
        """Fork the first child (self.pid), born in the cgroup v2 directory `target` if given
        and the kernel takes it (True); `create`'s init itself, born in its new pid namespace,
        when nothing has to happen before that is made (stage becomes init_in_namespaces:
        stage1 and its fork skipped; the init makes the other namespaces, as stage1 did)."""
        flags = self.args.plan.born_in_flags() if self.stage == "stage1" and not self.args.needs_host_view() else 0
        if flags or target >= 0:
            from ociruntime.linux import fork

            if flags and (born := fork.fork_into_namespaces(flags, target)) is not None:
                self.pid, joined = born
                self.stage = "init_in_namespaces"
                return joined
            if target >= 0:
                self.pid, joined = fork.fork_into_cgroup(target)
                return joined
        self.pid = posix.fork()
        return False

    def _run_child(self, parent: int) -> None:
        """The first child's whole life; it never returns. Nothing may escape from here into
        the runtime's code: an exception would run the runtime's cleanup of the half-made
        container in this child, which sits in the cgroup it would try to remove.

        The child side (linux/init.py) is loaded here, still in the host's filesystem, while
        the runtime sets the cgroup's limits: these ~3 ms of imports are off its path."""
        try:
            child_after_fork(parent)
            load_block("child")
            timing.fault_channel(self.args.sync_fd)
            _close(self.fd, self.console_peer)
            from ociruntime.linux import init

            getattr(init, self.stage)(self.args)  # a stage ends in _exit, its errors reported
        except BaseException as err:
            from ociruntime.linux import sync

            sync.send_error(self.args.sync_fd, err)
        finally:
            posix._exit(1)

    def send(self, kind: str, fds: list[int] | None = None, **fields) -> None:
        """Tell the children `kind` (with `fds`); if they have gone, raise the error they
        reported first."""
        from ociruntime.linux import sync

        try:
            sync.send(self.fd, kind, fds, **fields)
        except (BrokenPipeError, ConnectionResetError):
            for _ in self.messages():  # an "error" among them raises
                pass
            raise self.gone() from None

    def gone(self) -> SetupError:
        """The error when the children went away without reporting one."""
        who = "exec: the process" if self.label else "container init"
        return SetupError(f"{who} exited during set-up without reporting an error")

    def messages(self):
        """The children's messages until they close the socket. A failure they report raises
        (HookError for a failed hook); `pid` (the process that stays) reaps the first child."""
        from ociruntime.linux import sync

        if self.stage == "init_in_namespaces" and self.pid:
            # Born of us: we know its pid, and no stage1 is left to reap.
            self.child, self.pid = self.pid, 0
            timing.mark(f"{self.label}pid")
            yield {"t": "pid", "pid": self.child}
        while (msg := sync.recv(self.fd)) is not None:
            kind = msg["t"]
            if kind == "error":
                raise sync.error_from(msg, f"{self.label[:-1]}: " if self.label else "")
            if kind == "pid":
                self.child = int(msg["pid"])
                posix.waitpid(self.pid, 0)
                self.pid = 0
                timing.mark(f"{self.label}pid")
            yield msg

    def kill_first_child(self) -> None:
        """SIGKILL and reap the first child if it has not finished (its children die with it:
        PR_SET_PDEATHSIG, or the caller's cleanup of the cgroup)."""
        if self.pid:
            try:
                posix.kill(self.pid, 9)
                posix.waitpid(self.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
            self.pid = 0

    def take_console_peer(self) -> int:
        peer, self.console_peer = self.console_peer, -1
        return peer

    def close(self) -> None:
        """Our fds: the sync socket, the console peer unless it was taken, and the `tasks`
        files if `go` never took them."""
        _close(self.fd, self.console_peer, *(fd for fd, _ in self.joins))
        self.fd = self.console_peer = -1
        self.joins = []


def report_pid(pid: int, pid_file: str | None, pidfd_socket: str | None) -> None:
    """pid_file and pidfd_socket (--pid-file, --pidfd-socket): where the caller learns of the process."""
    if pid_file:
        _write_pid_file(pid_file, pid)
    if pidfd_socket:
        _send_pidfd(pidfd_socket, pid)


def _send_pidfd(path: str, pid: int) -> None:
    """pidfd_socket (runc 1.2's --pidfd-socket): a pidfd of the process, sent with SCM_RIGHTS over the unix
    socket at path, so the caller can wait for it and signal it without pid reuse races."""
    from ociruntime.linux import unixsock

    try:
        pidfd = posix.pidfd_open(pid)
    except OSError as e:
        raise SyscallError.from_os(e, f"pidfd socket: pidfd_open of pid {pid}") from None
    try:
        unixsock.send_fd(unixsock.connect(path, "pidfd socket"), b"pidfd", pidfd, f"pidfd socket {path}: send")
    finally:
        posix.close(pidfd)


def _write_pid_file(path: str, pid: int) -> None:
    target = lean.abspath(path)
    try:
        state.write_atomic(target, f"{pid}".encode())
    except OSError as e:
        raise state.io_error("cannot write pid file", target, e) from None


def _close(*fds: int) -> None:
    for fd in fds:
        if fd >= 0:
            posix.close(fd)


PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> None:
    """Orphans below us (the init of a container we run or exec into, a process criu restored)
    become our children, so that we can wait for them and get their status. Through the seam
    alone: linux/security.py (capabilities, rlimits) is the child side's, ~1 ms of imports."""
    from ociruntime.linux.kernel import kernel

    kernel().prctl(PR_SET_CHILD_SUBREAPER, 1, 0, "prctl(PR_SET_CHILD_SUBREAPER)")


def child_after_fork(parent: int) -> None:
    """First thing in a child the runtime forks: SIGTERM has its default meaning again (see
    state._on_sigterm), and the child dies with the runtime (PR_SET_PDEATHSIG), so a runtime
    killed half-way leaves no stage1 behind."""
    state.reset_child_signals()
    from ociruntime.linux import security

    security.prctl(security.PR_SET_PDEATHSIG, 9, "prctl(PR_SET_PDEATHSIG)")  # SIGKILL
    # The runtime died before the prctl: nobody is left to talk to. (0: born in a new pid
    # namespace, where the parent is not seen; the sync socket's end tells us then.)
    if posix.getppid() not in (parent, 0):
        posix._exit(1)


def _listen_fds() -> int:
    """Socket activation (sd_listen_fds): fds handed to us are passed on, as runc does, only
    when LISTEN_PID names us: a stray LISTEN_FDS must not pass the caller's fds inside."""
    if lean.getenv("LISTEN_PID") != str(posix.getpid()):
        return 0
    value = lean.getenv("LISTEN_FDS", "")
    return int(value) if value.isdigit() else 0


def _open_root_of(pid: int) -> int:
    try:
        return posix.open(f"/proc/{pid}/root", posix.O_PATH | posix.O_DIRECTORY | posix.O_CLOEXEC)
    except OSError as e:
        raise OciError(f"cannot open the root of the container's init (pid {pid}): {e.strerror}") from None


def wait_child(pid: int) -> int:
    """Wait for pid (our child, or grandchild while we are a subreaper), forwarding the usual
    signals to it; its exit status as a shell reports it (128+N for a signal)."""
    import _signal

    def forward(signum: int, _frame: object) -> None:
        try:
            posix.kill(pid, signum)
        except ProcessLookupError:
            pass

    for signum in (1, 2, 3, 10, 12, 15, 28):
        _signal.signal(signum, forward)
    status = 0
    while True:
        try:
            reaped, st = posix.waitpid(-1, 0)
        except ChildProcessError:
            break
        if reaped == pid:
            status = st
            break
    if posix.WIFSIGNALED(status):
        return 128 + posix.WTERMSIG(status)
    return posix.WEXITSTATUS(status)
