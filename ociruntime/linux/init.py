"""Child-side code: everything between fork and execve, in the order the kernel requires.

stage1 (forked by the runtime): joins namespaces given by path (user first), creates a user
namespace and waits while the runtime writes its id maps, unshares the other namespaces, then
forks the init -- a pid namespace only applies to children -- reports its pid and exits.
init: builds the rootfs, asks the runtime to run the runtime-namespace hooks, pivots, drops to
the container's credentials, reports `ready`, and blocks on exec.fifo until `start`.

Nothing here prints: failures travel to the runtime as an `error` message."""

from __future__ import annotations

import posix
import sys

from ociruntime import lean, signals, timing
from ociruntime.config import Config
from ociruntime.errors import OciError, SetupError, SyscallError
from ociruntime.linux import devices, fork, lsm, namespaces, procfs, rootfs, rootless, security, sync, waitexec
from ociruntime.linux.initargs import InitArgs
from ociruntime.linux.kernel import kernel, shim
from ociruntime.linux.mountflags import TMPCOPYUP

# The shim is loaded here, in the runtime, before it forks: a child that joins a container's
# mount namespace or chroots before its first kernel call would otherwise resolve the shim's
# path in the container's filesystem (an image could plant a library there).
shim()


def _fail(a: InitArgs, err: BaseException) -> None:
    try:
        # Typed: a failed hook (HookError) stops the container and the lifecycle goes on at
        # delete (poststop); the parent tells it by the error's class.
        sync.send_error(a.sync_fd, err)
    except OSError:
        # The runtime has gone: it failed first and reports its own error (our failure is
        # then only its echo, "the other side exited"), or it was killed and nobody listens.
        # A line on the container's stderr, which is the caller's, would be a spurious second
        # error; stay silent.
        pass


def stage1(a: InitArgs) -> None:
    """The first child of `create`; never returns."""
    _first_child(a, init, own_cgroup=True)


def exec_stage1(a: InitArgs) -> None:
    """The first child of `exec` (already in the container's cgroup); never returns."""
    _first_child(a, exec_child, own_cgroup=False)


def _first_child(a: InitArgs, child_main, own_cgroup: bool, born_with: int = 0) -> None:
    """Enter the namespaces, then fork the process that will exec (a new or joined pid
    namespace only applies to children), report its pid to the runtime, and exit. born_with:
    the namespaces we were born in (init_in_namespaces): we are that process, and go on."""
    code = 1
    try:
        enter_cgroup(a)
        # The runtime sets the cgroup's limits meanwhile (the systemd driver, or a move by pid,
        # may take a while longer): namespaces need not wait for it, the init does.
        seen: set[str] = set()
        pid_w = -1
        if a.needs_host_view():
            if own_cgroup:
                # A failure here must reach the runtime, which is busy with the cgroup until then.
                sync.expect(a.sync_fd, "cgroup", "waiting for the cgroup")
                seen.add("cgroup")
            pid_w = prepare_from_host(a)
        load_what_the_namespaces_need(a)
        refuse_imports_from_disk()
        enter_namespaces(a, seen, born_with)
        if a.root_fd >= 0:
            # Joining a mount namespace resets our root to its root: the container's own only
            # when it pivoted there. Without a mount namespace of its own, it chrooted.
            rootfs.chroot_root(f"/proc/self/fd/{a.root_fd}")
            posix.close(a.root_fd)
        if a.net_mover is not None:
            a.net_mover.finish()  # before the fork: the init inherits none of its pipes
            a.net_mover = None
        if own_cgroup and "cgroup" not in seen:
            sync.expect(a.sync_fd, "cgroup", "waiting for the cgroup")
        if own_cgroup and "cgroup" in a.plan.new_types:
            # After joining the cgroup, so that it is the root of the container's cgroup view.
            namespaces.unshare(namespaces.CLONE_FLAGS["cgroup"], "cgroup namespace")
        if born_with:
            child_main(a)  # the runtime knows our pid: it forked us
        # The runtime's own child (CLONE_PARENT), as runc's: `run --no-subreaper` and `exec`
        # wait for it and get its status; stage1 exits next.
        pid = fork.fork_sibling()
        if pid == 0:
            child_main(a)
        if pid_w >= 0:
            posix.write(pid_w, str(pid).encode())
        sync.send(a.sync_fd, "pid", pid=pid)
        code = 0
    except BaseException as err:
        _fail(a, err)
    posix._exit(code)


def init_in_namespaces(a: InitArgs) -> None:
    """The init of `create`, born of the runtime in its new pid namespace (Spawn._clone):
    stage1's part without its fork, then the init's. Never returns."""
    _first_child(a, init, own_cgroup=True, born_with=a.plan.born_in_flags())


def enter_cgroup(a: InitArgs) -> None:
    """The first child's start, in the host's view: our fds only, the runtime's go, the
    container's v1 cgroups joined, non-dumpable, and what is read through the host's /proc."""
    close_inherited_fds(a)
    msg, fds = sync.expect_fds(a.sync_fd, "go", "waiting for the runtime")
    join_cgroups(list(zip(fds, msg.get("tasks") or [], strict=True)))
    security.set_dumpable(False)
    # Through the host's /proc while we still see it, inherited by the process we fork: as
    # the host's root, so a negative oomScoreAdj is allowed even in a user namespace.
    security.last_cap()
    if a.config.process is not None and a.config.process.oom_score_adj is not None:
        security.set_oom_score_adj(a.config.process.oom_score_adj)


def join_cgroups(joins: list[tuple[int, str]]) -> None:
    """Move ourselves into the container's v1 cgroups: write "0" to each `tasks` file (fd, path)
    the runtime opened (cgroups.v1 self_join) and sent with `go`, then close it. Still in the
    host's namespaces, and before we fork what inherits them."""
    from ociruntime.linux.cgroups import fs

    try:
        for fd, path in joins:
            try:
                posix.write(fd, b"0")
            except OSError as e:
                raise fs.fail(f"write 0 to {path}", e) from None
    finally:
        for fd, _ in joins:
            posix.close(fd)


def load_what_the_namespaces_need(a: InitArgs) -> None:
    """The modules used only once we are inside the container's namespaces, and only for some
    configs, loaded now (or never: each is ~0.1 ms of imports on create's critical path). A
    seccomp filter's module (connect_listener, send_listener_state) came with the filter:
    the runtime compiled it (linux/bpfcache.py)."""
    if "network" in a.plan.new_types and not a.is_exec:
        from ociruntime.linux import network  # noqa: F401  (loopback_up)
    if not a.is_exec and any(TMPCOPYUP in m.options for m in a.config.mounts):
        from ociruntime.linux import copyup  # noqa: F401  (rootfs.Rootfs._mount_tmpfs_copy_up)
    if not a.is_exec and (a.config.hooks["createContainer"] or a.config.hooks["startContainer"]):
        from ociruntime import hooks  # noqa: F401
    if a.config.process is not None and wants_task_attributes(a):
        from ociruntime.linux import procattrs  # noqa: F401


class _NoImportFromDisk:
    """The last finder once the child may see a filesystem that is not the host's (a joined
    mount namespace, or the container's root): a module found there would be the image's
    code, run by us as root. A module not loaded by then is our bug, reported as one."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        raise SetupError(f"runtime bug: module {name} was not loaded before entering the container's "
                         "namespaces (refused: it would be read from the container's filesystem)")


def refuse_imports_from_disk() -> None:
    """Only built-in and frozen modules (inside the interpreter's binary) may still load."""
    keep = [f for f in sys.meta_path if getattr(f, "__name__", "") in ("BuiltinImporter", "FrozenImporter")]
    sys.meta_path[:] = [*keep, _NoImportFromDisk]


def prepare_from_host(a: InitArgs) -> int:
    """What must be made while we are still in the host's user and mount namespaces: the
    id-mapped trees (see idmap.py) and the connection to the seccomp listener, which the
    child that loads the filter uses to send its notify fd with its pid as the runtime sees
    it (written to the returned pipe once forked; -1 when there is no listener)."""
    if not a.is_exec and any(m.idmap() for m in a.config.mounts):
        from ociruntime.linux import idmap

        a.idmapped = idmap.prepare(a.config, a.bundle)
    if not a.is_exec and a.config.linux.net_devices:
        from ociruntime.linux.netdevices import DeviceMover

        a.net_mover = DeviceMover(a.config.linux.net_devices)
        a.net_mover.start()
    if a.seccomp is None or not a.seccomp.listener_path:
        return -1
    from ociruntime.linux import seccomp

    a.listener_fd = seccomp.connect_listener(a.seccomp.listener_path)
    a.pid_pipe, pid_w = posix.pipe2(posix.O_CLOEXEC)
    return pid_w


def close_inherited_fds(a: InitArgs) -> None:
    """Drop every fd of the runtime's we do not need: above all the state dir's lock, whose
    flock would otherwise be held by the waiting init until `start`."""
    from ociruntime import log

    keep = {a.sync_fd, a.fifo_fd, a.console_fd, a.root_fd, log.fd()} | set(range(3 + a.keep_fds))
    for name in posix.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            try:
                posix.close(fd)
            except OSError:
                pass  # the directory fd listdir itself used


def exec_child(a: InitArgs) -> None:
    """The exec'd process before execve: terminal, limits, credentials, seccomp. Never returns."""
    try:
        process = a.config.process
        assert process is not None
        if process.terminal:
            from ociruntime.linux import terminal

            terminal.setup(a.console_fd, process.console_size, bind=False)
            a.console_fd = -1
        set_process_attributes(a)
        exec_process(a)
    except BaseException as err:
        _fail(a, err)
    posix._exit(127)


def enter_namespaces(a: InitArgs, seen: set[str], born_with: int = 0) -> None:
    """Join, then create, every namespace but the cgroup one (see stage1) and those we were
    born in. `seen` collects the runtime's `cgroup` message if it arrives while we wait for
    the id maps."""
    plan = a.plan
    namespaces.join_namespaces(plan.join)
    if any(ns_type == "user" for ns_type, _ in plan.join):
        # Become the joined namespace's root: an unmapped uid could not create files (EOVERFLOW).
        posix.setresgid(0, 0, 0)
        posix.setresuid(0, 0, 0)
    if plan.new_user:
        # A runtime without root in the initial user namespace can open our /proc/PID/uid_map
        # only while we are dumpable (the files of a non-dumpable process belong to the
        # host's root until our root is mapped): for that window only, as runc does.
        dumpable = rootless.unprivileged() or rootless.in_user_namespace()
        namespaces.unshare(namespaces.CLONE_FLAGS["user"], "user namespace")
        if dumpable:
            security.set_dumpable(True)
        sync.send(a.sync_fd, "userns")
        while (msg := sync.expect_one_of(a.sync_fd, ("idmaps", "cgroup"), "waiting for uid/gid maps")) != "idmaps":
            seen.add(msg)
        if dumpable:
            security.set_dumpable(False)
        posix.setresgid(0, 0, 0)
        posix.setresuid(0, 0, 0)
    flags = plan.unshare_flags & ~namespaces.CLONE_FLAGS["cgroup"] & ~born_with
    if flags:
        names = ", ".join(t for t in sorted(plan.new_types) if namespaces.CLONE_FLAGS[t] & flags)
        namespaces.unshare(flags, f"namespaces ({names})")
    if "time" in plan.new_types and plan.time_offsets:
        namespaces.write_time_offsets(plan.time_offsets)


def init(a: InitArgs) -> None:
    """The container's first process; never returns (execve or _exit)."""
    timing.marks().clear()  # the runtime's own marks, copied by fork: it has them already
    try:
        msg = sync.expect(a.sync_fd, "state", "waiting for the container state")
        a.state = msg["state"]
        if "cgroup_paths" in msg:  # rootless: the cgroups joined, and ours where none was
            a.cgroup_paths = msg["cgroup_paths"]
        # createContainer and startContainer hooks run in the container's namespaces: the
        # runtime-spec gives them the pid as the container sees it (1 in a new pid namespace).
        state = dict(a.state, pid=posix.getpid())
        prepare_container(a, state)
        hold_ending_signals()
        # Born of the runtime itself (init_in_namespaces), we have its death signal, which
        # kept a create killed half-way from leaving us behind; the container outlives create.
        security.prctl(security.PR_SET_PDEATHSIG, 0, "prctl(PR_SET_PDEATHSIG)")
        sync.send(a.sync_fd, "ready", timings=timing.marks())
    except BaseException as err:
        _fail(a, err)
        posix._exit(1)
    try:
        posix.close(a.sync_fd)
        a.sync_fd = -1
        exec_when_started(a)
        end_waiting_on_signals()
        wait_for_start(a)
        if a.config.process is None:
            # process is OPTIONAL in config.json: such a container can be created (its
            # namespaces and mounts used by others), never started.
            raise SetupError("config.json has no process: there is no program to start")
        state["status"] = "created"
        if a.config.hooks["startContainer"]:
            from ociruntime import hooks

            hooks.run_hooks("startContainer", a.config.hooks["startContainer"], state)
        exec_process(a)
    except BaseException as err:
        # `start` is waiting on the fifo: what we write there is the error it reports.
        msg = str(err) if isinstance(err, OciError) else f"{type(err).__name__}: {err}"
        try:
            posix.write(a.fifo_fd, msg.encode(errors="replace")[:4000])
        except OSError:
            posix.write(2, f"ociruntime: {msg}\n".encode(errors="replace"))
    posix._exit(1)


def prepare_container(a: InitArgs, state: dict) -> None:
    config = a.config
    # Also a runtime that is itself in a user namespace (podman's rootless mode): the kernel
    # forbids mknod and keeps inherited mount flags locked there too.
    in_userns = config.linux.namespace("user") is not None or rootless.in_user_namespace()
    timing.mark("namespaces")
    if "network" in a.plan.new_types:
        from ociruntime.linux.network import loopback_up

        loopback_up()
    if "uts" in a.plan.new_types:
        set_names(config)
    if a.new_keyring:
        security.new_session_keyring(a.container_id)
    lsm.check_enabled(config)
    if "mount" not in a.plan.new_types:
        enter_root_in_foreign_mount_namespace(a, state)
        return
    root = build_rootfs(a, in_userns)
    try:
        _run_create_container_hooks(a, state)
        if a.no_pivot:
            rootfs.move_root(config.root_path)
        else:
            rootfs.pivot_root(config.root_path)
        timing.mark("pivot_root")
        finish_rootfs(a, root, in_userns)
        if config.process is not None:
            set_process_attributes(a, root.special_fd("proc", "/proc"))
    finally:
        root.close()


def enter_root_in_foreign_mount_namespace(a: InitArgs, state: dict) -> None:
    """A mount namespace shared with the runtime or joined by path is someone else's: nothing
    is mounted in it (semantics refused every field that would mount) and its root mount is
    left alone; the process is confined to root.path with chroot(2), as pivot_root would
    move the root of every process in that namespace."""
    config = a.config
    _run_create_container_hooks(a, state)
    rootfs.chroot_root(config.root_path)
    timing.mark("pivot_root")
    if config.process is not None and config.process.terminal:
        from ociruntime.linux import terminal

        terminal.setup(a.console_fd, config.process.console_size)
        a.console_fd = -1
    if config.process is not None:
        set_process_attributes(a)  # an LSM label goes through a detached procfs of our own


def _run_create_container_hooks(a: InitArgs, state: dict) -> None:
    config = a.config
    if any(config.hooks[k] for k in ("prestart", "createRuntime", "createContainer")):
        sync.send(a.sync_fd, "createRuntime")
        sync.expect(a.sync_fd, "createContainer", "waiting for createRuntime hooks")
        if config.hooks["createContainer"]:
            from ociruntime import hooks

            hooks.run_hooks("createContainer", config.hooks["createContainer"], state)
        timing.mark("hooks")


def set_names(config: Config) -> None:
    from ociruntime.linux.kernel import kernel

    if config.hostname is not None:
        kernel().sethostname(config.hostname, f"sethostname {config.hostname!r}")
    if config.domainname is not None:
        kernel().setdomainname(config.domainname, f"setdomainname {config.domainname!r}")


def build_rootfs(a: InitArgs, in_userns: bool) -> rootfs.Rootfs:
    """Every mount and device; the Rootfs stays open (its fds are used after pivot_root)."""
    config = a.config
    rootfs.prepare_root(config)
    root = rootfs.Rootfs(config.root_path, in_userns)
    root.idmapped, a.idmapped = a.idmapped, {}
    try:
        for m in config.mounts:
            root.mount(m, a.bundle, a.cgroup_paths)
        if devices.needs_dev_setup(config):
            devices.populate_dev(root, config, in_userns)
        if config.process is not None:
            posix.close(root.make_target(config.process.cwd, True))
    except BaseException:
        root.close()
        raise
    timing.mark("mounts")
    return root


def finish_rootfs(a: InitArgs, root: rootfs.Rootfs, in_userns: bool) -> None:
    config = a.config
    if config.linux.sysctl:
        with procfs.Procfs(root.special_fd("proc", "/proc")) as proc:
            write_sysctls(proc.fd, config.linux.sysctl)
    rootfs.mask_paths(root, config.linux.masked_paths)
    rootfs.readonly_paths(root, config.linux.readonly_paths)
    if config.process is not None and config.process.terminal:
        from ociruntime.linux import terminal

        terminal.setup(a.console_fd, config.process.console_size)  # closes the socket
        a.console_fd = -1
    else:
        # A session of its own, as runc's init has (terminal.setup makes one too), and the
        # container's /dev/null for the host's: criu checkpoints a process tree only when its
        # session leader and its files are inside the container.
        posix.setsid()
        rootfs.reopen_null_stdio(root)
    if config.root_readonly:
        rootfs.readonly_root(in_userns)
    rootfs.set_root_propagation(config.linux.rootfs_propagation)


def write_sysctls(proc_fd: int, sysctl: dict[str, str]) -> None:
    """Through a verified procfs fd, never a path: only namespaced keys reach here (semantics
    refuses the rest), and the kernel applies them to the namespaces of the writer: ours."""
    for key, value in sysctl.items():
        rel = "sys/" + key.replace(".", "/")
        try:
            procfs.write_file(proc_fd, rel, value.encode())
        except OSError as e:
            raise SyscallError.from_os(e, f"linux.sysctl: write {value!r} to /proc/{rel}") from None


def set_process_attributes(a: InitArgs, proc_fd: int = -1) -> None:
    """Limits, cwd, seccomp (if it must precede the credential change), LSM label, credentials.
    proc_fd: the verified procfs of the container, if we mounted one."""
    process = a.config.process
    assert process is not None
    if process.apparmor_profile or process.selinux_label:
        with procfs.Procfs(proc_fd) as proc:
            lsm.set_exec_label(proc.fd, process)
    set_task_attributes(a)
    security.set_rlimits(process)
    try:
        posix.chdir(process.cwd)
    except OSError as e:
        raise SyscallError.from_os(e, f"process.cwd {process.cwd}") from None
    if a.seccomp is not None and filter_loaded_last(a) is None:
        # Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it while we have it.
        load_seccomp(a)
    security.apply_credentials(process)
    if process.no_new_privileges:
        security.no_new_privileges()
    a.exec_path = find_executable(process.args, process.path_env())
    if not any(e.startswith("HOME=") for e in process.env):
        a.extra_env.append(f"HOME={home_directory(process.user.uid)}")


def set_task_attributes(a: InitArgs) -> None:
    """Scheduler, I/O priority, execution domain, memory policy and (exec'd processes only)
    the final CPU affinity: inherited across execve, set while we still have the capabilities
    they may need and before a seccomp filter could refuse the syscalls. Not in the runtime's
    stages before this: a SCHED_DEADLINE task cannot fork, nor should a memory policy or a
    low priority slow the set-up down."""
    if not wants_task_attributes(a):
        return
    from ociruntime.linux import procattrs

    process = a.config.process
    assert process is not None
    linux = a.config.linux
    if process.exec_cpu_affinity.get("final") and a.is_exec:
        # After the move into the container's cgroup (the spec; a v1 cpuset move resets it).
        procattrs.set_affinity(process.exec_cpu_affinity["final"], "process.execCPUAffinity.final")
    if linux.personality:
        procattrs.set_personality(linux.personality)
    if linux.memory_policy:
        procattrs.set_memory_policy(linux.memory_policy)
    if process.io_priority:
        procattrs.set_io_priority(process.io_priority)
    if process.scheduler:
        procattrs.set_scheduler(process.scheduler)


def wants_task_attributes(a: InitArgs) -> bool:
    """Whether set_task_attributes has anything to set (a process is configured)."""
    process, linux = a.config.process, a.config.linux
    return bool((process.exec_cpu_affinity.get("final") and a.is_exec) or linux.personality
                or linux.memory_policy or process.io_priority or process.scheduler)


MAX_PASSWD_BYTES = 4 << 20


def home_directory(uid: int) -> str:
    """runc sets HOME from the container's /etc/passwd when the config does not; "/" if none.
    The image's file may be a FIFO, /dev/zero or huge: read in-root, regular files only, bounded."""
    data = rootfs.read_image_file("/etc/passwd", MAX_PASSWD_BYTES)
    for line in (data or b"").split(b"\n"):
        fields = line.decode(errors="replace").split(":")
        if len(fields) >= 6 and fields[2] == str(uid) and fields[5]:
            return fields[5]
    return "/"


def find_executable(args: list[str], path_env: str) -> str:
    """execvp's lookup, done before `ready` so a missing program fails `create`, like runc."""
    if not args:
        raise SetupError("process.args: must name a program to run")
    name = args[0]
    candidates = [name] if "/" in name else [f"{d or '.'}/{name}" for d in path_env.split(":")]
    for path in candidates:
        if lean.is_file(path) and posix.access(path, posix.X_OK):
            return path
    if "/" in name:
        raise SetupError(f"exec {name!r}: no such executable file in the container")
    raise SetupError(f"exec {name!r}: executable file not found in $PATH ({path_env})")


def load_seccomp(a: InitArgs) -> None:
    """Load the filter; with notify rules, send its fd and the container state to the
    listener (from here on, a notified syscall of ours waits for that listener)."""
    assert a.seccomp is not None
    notify_fd = a.seccomp.load()
    if notify_fd < 0:
        return
    from ociruntime.linux import seccomp

    try:
        seccomp.send_listener_state(a.listener_fd, notify_fd, listener_state(a), _host_pid(a),
                                    a.seccomp.listener_metadata)
    finally:
        a.listener_fd = -1  # closed by send_listener_state
        posix.close(notify_fd)


def listener_state(a: InitArgs) -> dict:
    """The container state for the listener: the one `create` sent us; an exec'd process has
    none, so it is made from what we know (the container runs)."""
    if a.state is not None:
        return a.state
    from ociruntime import SPEC_VERSION

    return {"ociVersion": SPEC_VERSION, "id": a.container_id, "status": "running",
            "bundle": a.bundle}


def _host_pid(a: InitArgs) -> int:
    """Our pid in the runtime's pid namespace (in ours we may be 1), from stage1."""
    data = posix.read(a.pid_pipe, 32)
    posix.close(a.pid_pipe)
    a.pid_pipe = -1
    return int(data)


def exec_when_started(a: InitArgs) -> None:
    """Wait for `start` with the interpreter unmapped (csrc/waitexec.c): execve then has almost
    nothing to tear down, which took ~1.4 ms between `start`'s byte and the program (perf:
    exit_mmap of this process's ~10 MiB). The teardown happens now, while the container waits.
    Only when nothing after the byte needs Python: a process to run, no startContainer hook,
    no seccomp listener to hand the last filter's fd to. (A filter loaded before `ready`, without
    noNewPrivileges, governs the shim as it governs Python, whose own allocator makes the same
    mmap and munmap calls meanwhile.) Returns only if the shim could not begin; nothing has
    changed then, and the caller waits in Python."""
    process = a.config.process
    if process is None or a.config.hooks["startContainer"]:
        return
    last = filter_loaded_last(a)
    if last is not None and a.listener_fd >= 0:
        return
    plan = waitexec.pack(a.fifo_fd, a.exec_path, process.args, exec_environ(a),
                         last.bpf if last else b"", last.flags if last else 0,
                         waitexec.ENDING_SIGNALS)
    signals.restore_defaults()
    pass_fds(a)
    try:
        kernel().wait_exec(plan, "wait for start")
    except SetupError:
        pass  # not this architecture, or no memory for the plan's copy: the Python way


def hold_ending_signals() -> None:
    """From `ready` on, `kill` may end the waiting init (waitexec.ENDING_SIGNALS): blocked
    until their handlers are in place (the shim's, or end_waiting_on_signals), so that one sent
    meanwhile is delivered then, not lost. As the init of a pid namespace we get no signal we
    have no handler for, and Python's own (SIGINT's) would only set a flag nobody reads."""
    import _signal

    _signal.pthread_sigmask(_signal.SIG_BLOCK, waitexec.ENDING_SIGNALS)


def end_waiting_on_signals() -> None:
    """What the shim's waiting init does with waitexec.ENDING_SIGNALS, waiting in Python."""
    import _signal

    for number in waitexec.ENDING_SIGNALS:
        _signal.signal(number, _end_by_signal)
    _signal.pthread_sigmask(_signal.SIG_UNBLOCK, waitexec.ENDING_SIGNALS)


def _end_by_signal(number: int, _frame: object) -> None:
    posix._exit(128 + number)


def wait_for_start(a: InitArgs) -> None:
    if not posix.read(a.fifo_fd, 1):
        posix._exit(1)


def exec_environ(a: InitArgs) -> dict[str, str]:
    """As execve gets it; entries without '=' cannot be expressed and were refused earlier."""
    process = a.config.process
    assert process is not None
    return dict(e.split("=", 1) for e in process.env + a.extra_env if "=" in e)


def pass_fds(a: InitArgs) -> None:
    """Only stdio and the preserved fds may reach the container program (the fifo is close-on-
    exec: it stays open until execve succeeds, so a failing execve can still report)."""
    for fd in range(3, 3 + a.keep_fds):
        posix.set_inheritable(fd, True)
    low = 3 + a.keep_fds
    if a.fifo_fd >= low:
        posix.closerange(low, a.fifo_fd)
        posix.closerange(a.fifo_fd + 1, 1 << 20)
    else:
        posix.closerange(low, 1 << 20)


def filter_loaded_last(a: InitArgs):
    """The seccomp filter loaded right before execve, or None: with no_new_privs loading needs
    no privilege, so the filter waits until then (without, set_process_attributes loads it
    before the credentials change)."""
    process = a.config.process
    return a.seccomp if process is not None and process.no_new_privileges else None


def exec_process(a: InitArgs) -> None:
    process = a.config.process
    assert process is not None
    signals.restore_defaults()  # before the seccomp filter, which may refuse rt_sigaction
    env = exec_environ(a)
    last = filter_loaded_last(a)
    if last is not None and a.listener_fd >= 0:
        load_seccomp(a)  # the listener gets its fd before the fds below are closed
        last = None
    pass_fds(a)
    if last is not None:
        last.load()
    try:
        posix.execve(a.exec_path, process.args, env)
    except OSError as e:
        raise SetupError(f"exec {a.exec_path}: {e.strerror}", errno=e.errno) from None
