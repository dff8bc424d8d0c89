"""`checkpoint` and `restore`: a running container to criu images and back (runc's commands).

checkpoint: criu dumps the container's process tree from its init, with what criu cannot
take from inside the container declared external: the bind mounts from the host (keyed by
their destination, as runc does, so images move between the two runtimes), a network or pid
namespace the container joined by path. The paths of the init's stdio go to descriptors.json
in the image directory. After a full dump (not --leave-running, not --pre-dump) the container
is gone, as with runc: its processes were killed by criu, its cgroup and state are removed.

restore: `create`'s own first steps (config, cgroup, state directory: so a failure undoes
exactly what was made, and delete -f works at every step), then criu instead of the init: in
a private mount namespace where the rootfs is a mount point of its own (criu's --root), with
the external mounts bound from the new config's sources, the caller's stdio in place of the
pipes the old process had, and the tasks placed in the new container's cgroup (--cgroup-root).
The restored container is a normal one: state, kill, exec, delete, ps work on it."""

from __future__ import annotations

import os

from ociruntime import jsonio, log, state
from ociruntime.errors import ContainerExists, InvalidState, NotRunning, OciError, OptionError
from ociruntime.linux import criu

DESCRIPTORS = "descriptors.json"  # runc's name and shape: the init's fds 0-2 as readlink shows them
# Ours, beside it: {fd: criu's key tty[rdev:dev]} of the init's stdio terminals from outside.
TTYS = "outside-ttys.json"
TTY_MAJORS = frozenset((4, 5, *range(136, 144)))  # VTs and serial, /dev/tty and console, pty slaves
STDIO = ("stdin", "stdout", "stderr")
INVENTORY = "inventory.img"  # the first image criu reads on restore
MANAGE_CGROUPS_MODES = ("soft", "full", "strict", "ignore")
EMPTY_NS = {"network": "net"}  # runc's --empty-ns names -> criu's
# Namespaces joined by path that criu is told are external: spec type -> (criu type, key).
EXTERNAL_NS = {"network": ("net", "extRootNetNS"), "pid": ("pid", "extRootPidNS")}
# Boolean flags passed to criu as they are (the same names in runc and criu).
CRIU_SWITCHES = {
    "tcp_established": "--tcp-established", "ext_unix_sk": "--ext-unix-sk",
    "shell_job": "--shell-job", "file_locks": "--file-locks", "auto_dedup": "--auto-dedup",
    "lazy_pages": "--lazy-pages", "leave_running": "--leave-running",
}


class CriuOptions:
    """What checkpoint and restore share (their flags, typed): where the images are
    (image_path, runc's default ./checkpoint) and criu's work files (work_path, default: with
    the images), which criu (None: `criu` in $PATH), criu's switches (the keywords of
    CRIU_SWITCHES), manage_cgroups_mode, and empty_ns (spec namespace names, only "network")."""

    __slots__ = ("criu", "empty_ns", "image_path", "manage_cgroups_mode", "switches", "work_path")

    def __init__(self, image_path: str = "checkpoint", *, work_path: str | None = None,
                 criu: str | None = None, manage_cgroups_mode: str = "soft",
                 empty_ns: list[str] | tuple[str, ...] = (), **switches: bool) -> None:
        unknown = sorted(set(switches) - set(CRIU_SWITCHES))
        if unknown:
            raise TypeError(f"{type(self).__name__}: unexpected keyword argument {unknown[0]!r}")
        self.criu = criu or None
        self.image_path = os.path.abspath(image_path or "checkpoint")
        self.work_path = os.path.abspath(work_path) if work_path else self.image_path
        self.switches = [flag for name, flag in CRIU_SWITCHES.items() if switches.get(name)]
        if manage_cgroups_mode not in MANAGE_CGROUPS_MODES:
            raise OptionError("manage_cgroups_mode", f"invalid value {manage_cgroups_mode!r} (expected "
                              f"{', '.join(MANAGE_CGROUPS_MODES[:-1])} or {MANAGE_CGROUPS_MODES[-1]})",
                              runc="Invalid manage cgroups mode")
        self.manage_cgroups_mode = manage_cgroups_mode
        self.empty_ns = []
        for name in empty_ns:
            if name not in EMPTY_NS:
                raise OptionError("empty_ns", f"namespace {name!r} is not supported (only {', '.join(EMPTY_NS)})",
                                  runc=f'namespace "{name}" is not supported')
            self.empty_ns.append(EMPTY_NS[name])

    def common_args(self) -> list[str]:
        args = [f"--manage-cgroups={self.manage_cgroups_mode}", *self.switches]
        for ns in self.empty_ns:
            args += ["--empty-ns", ns]
        return args


class CheckpointOptions(CriuOptions):
    """checkpoint's own: parent_path (a pre-dump's images, relative to image_path), pre_dump,
    status_fd (an fd open for writing, -1: none), page_server ("ADDRESS:PORT"), and the
    switch leave_running."""

    __slots__ = ("page_server", "parent_path", "pre_dump", "status_fd")

    def __init__(self, image_path: str = "checkpoint", *, parent_path: str | None = None,
                 pre_dump: bool = False, status_fd: int = -1, page_server: str | None = None,
                 **common) -> None:
        super().__init__(image_path, **common)
        self.parent_path = parent_path or None
        self.pre_dump = pre_dump
        self.status_fd = _status_fd(status_fd)
        self.page_server = _page_server(page_server)


def _status_fd(fd: int) -> int:
    if fd == -1:
        return -1
    if not isinstance(fd, int) or fd < 0:
        raise OptionError("status_fd", f"{fd!r} is not a file descriptor number")
    import fcntl

    try:
        mode = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE
    except OSError:
        raise OptionError("status_fd", f"{fd} is not an open file descriptor") from None
    if mode == os.O_RDONLY:
        raise OptionError("status_fd", f"{fd} is not open for writing (criu writes its readiness byte to it)")
    return fd


def _page_server(value: str | None) -> tuple[str, str] | None:
    if not value:
        return None
    address, sep, port = value.rpartition(":")
    if not sep or not address or not port.isdigit() or not 0 < int(port) < 65536:
        raise OptionError("page_server", f"{value!r} is not ADDRESS:PORT",
                          runc="Use --page-server ADDRESS:PORT to specify page server")
    return address.strip("[]"), port


# --- checkpoint ----------------------------------------------------------------------------
def checkpoint(root: str, cid: str, opts: CheckpointOptions) -> None:
    from ociruntime import container

    with state.locked(root, cid) as held:
        sd, data, status = held.sd, held.data, held.status
        if status == "stopped":
            raise NotRunning(cid, "checkpoint")
        if status not in ("running", "paused"):
            raise InvalidState(f"cannot checkpoint container {cid!r}: it is {status}, not running")
        config = _saved_config(sd, data)
        _refuse_terminal(config, f"cannot checkpoint container {cid!r}")
        binary = criu.find(opts.criu)
        pid = int(data["pid"])
        ttys = {} if opts.pre_dump else _outside_ttys(cid, pid, "--shell-job" in opts.switches)
        _make_dirs(opts)
        cg = container.cgroup_of(data) if data.get("cgroup") else None
        args = ["pre-dump" if opts.pre_dump else "dump", "-t", str(pid), "-D", opts.image_path,
                *opts.common_args(), *_dump_externals(config, pid, cg), *_dump_extra(opts, cg)]
        fds = {}
        if opts.status_fd >= 0 and "--lazy-pages" in opts.switches:
            # criu writes to it once its lazy-pages server listens; runc passes it only then.
            args += ["--status-fd", str(opts.status_fd)]
            fds[opts.status_fd] = opts.status_fd
        if not opts.pre_dump:
            args += [arg for key in sorted(set(ttys.values())) for arg in ("--external", key)]
            _save_descriptors(opts.image_path, pid)
            _write_image_json(opts.image_path, TTYS, {str(n): key for n, key in ttys.items()})
        criu.run(binary, args, opts.work_path, "pre-dump.log" if opts.pre_dump else "dump.log", fds=fds)
        if not (opts.pre_dump or "--leave-running" in opts.switches):
            # criu killed the processes; what is left of the container goes, as with runc.
            container.destroy(sd, cid, data)


def _saved_config(sd: state.StateDir, data: dict):
    """The config as it was at create (the state dir's copy), as the config model."""
    from ociruntime.config import Config

    raw = sd.saved_config()
    if not isinstance(raw, dict):
        raise OciError(f"{sd.file(state.CONFIG_COPY)}: not a JSON object")
    return Config(raw, str(data.get("bundle") or "/"))


def _refuse_terminal(config, what: str) -> None:
    """A container with a terminal has its pty master outside (the --console-socket peer):
    restoring it needs a new master from criu, which only criu's RPC hands back."""
    if config.process is not None and config.process.terminal:
        raise InvalidState(f"{what}: it has a terminal (process.terminal), whose pty master is "
                           "held outside the container; ociruntime runs criu's command line, which "
                           "cannot hand a new pty master back (not supported)")


def _make_dirs(opts: CriuOptions) -> None:
    for option, path in (("image_path", opts.image_path), ("work_path", opts.work_path)):
        try:
            os.makedirs(path, 0o700, exist_ok=True)
        except OSError as e:
            raise OptionError(option, f"{path}: cannot create directory: {e.strerror}") from None


def _dump_externals(config, pid: int, cg) -> list[str]:
    """Bind mounts from the host, keyed by destination (the container's cgroup directories
    bound into a `type: cgroup` mount too); namespaces joined by path, by inode."""
    args = []
    for dest, _ in _external_mounts(config, "/", cg.paths() if cg is not None else {}):
        args += ["--external", f"mnt[{dest}]:{dest}"]
    for ns in config.linux.namespaces:
        if ns.path and ns.type in EXTERNAL_NS:
            kind, key = EXTERNAL_NS[ns.type]
            proc = f"/proc/{pid}/ns/{kind}"
            try:
                inode = os.stat(proc).st_ino
            except OSError as e:
                raise OciError(f"{proc}: {e.strerror}") from None
            args += ["--external", f"{kind}[{inode}]:{key}"]
    return args


def _dump_extra(opts: CheckpointOptions, cg) -> list[str]:
    args = []
    if opts.parent_path:
        # criu takes it relative to the image directory, as runc documents for --parent-path.
        args += ["--prev-images-dir", opts.parent_path, "--track-mem"]
    elif opts.pre_dump:
        args.append("--track-mem")
    if opts.page_server:
        # Without --lazy-pages criu sends the pages to the page server there; with it, criu is
        # the server: it listens there for the lazy-pages daemon (criu's --page-server would
        # make it connect out as well).
        lazy = "--lazy-pages" in opts.switches
        args += [*([] if lazy else ["--page-server"]), "--address", opts.page_server[0],
                 "--port", opts.page_server[1]]
    if cg is not None and cg.owned():
        # Freezing the cgroup stops the tree from forking during the dump; only a cgroup the
        # container made (a joined one may hold processes that are not the container's).
        freezer = _freezer_dir(cg.paths())
        if freezer:
            args += ["--freeze-cgroup", freezer]
    return args


def _freezer_dir(paths: dict[str, str]) -> str | None:
    for key, path in paths.items():
        if "freezer" in key.split(","):
            return path
    return paths.get("")


def _outside_ttys(cid: str, pid: int, shell_job: bool) -> dict[int, str]:
    """{fd: criu's key} of the init's stdio that is a terminal: without process.terminal it is
    the caller's, whose devpts is not in the container, so criu can neither take it nor name
    it ("Can't lookup mount=N for fd=0 path=/dev/pts/0") unless it is declared external
    (--external tty[rdev:dev]) and handed back on restore (--inherit-fd). That is --shell-job."""
    import stat

    ttys = {}
    for n in range(3):
        try:
            st = os.stat(f"/proc/{pid}/fd/{n}")
        except OSError:
            continue  # closed
        if stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) in TTY_MAJORS:
            if not shell_job:
                raise OptionError("shell_job", f"required to checkpoint container {cid!r}: its {STDIO[n]} "
                                  "is a terminal from outside the container, which criu takes only as a "
                                  "shell job (and restore {shell_job} on a terminal)", mentions=("shell_job",))
            ttys[n] = f"tty[{st.st_rdev:x}:{st.st_dev:x}]"
    return ttys


def _save_descriptors(image_path: str, pid: int) -> None:
    fds = []
    for n in range(3):
        try:
            fds.append(os.readlink(f"/proc/{pid}/fd/{n}"))
        except OSError:
            fds.append("")  # closed: nothing to hand over on restore
    _write_image_json(image_path, DESCRIPTORS, fds)


def _write_image_json(image_path: str, name: str, doc: object) -> None:
    path = os.path.join(image_path, name)
    try:
        state.write_atomic(path, jsonio.dumps(doc).encode(), 0o600)
    except OSError as e:
        raise state.io_error("cannot write", path, e) from None


# --- restore -------------------------------------------------------------------------------
class RestoreOptions(CriuOptions):
    """restore's own: lsm_profile ("apparmor:NAME" or "selinux:LABEL") and lsm_mount_context."""

    __slots__ = ("lsm_mount_context", "lsm_profile")

    def __init__(self, image_path: str = "checkpoint", *, lsm_profile: str | None = None,
                 lsm_mount_context: str | None = None, **common) -> None:
        super().__init__(image_path, **common)
        self.lsm_profile = lsm_profile or None
        self.lsm_mount_context = lsm_mount_context or None
        if self.lsm_profile and self.lsm_profile.partition(":")[0] not in ("apparmor", "selinux"):
            raise OptionError("lsm_profile", f"{self.lsm_profile!r} is not TYPE:NAME with TYPE apparmor or selinux")


def restore(root: str, cid: str, copts, ropts: RestoreOptions, detach: bool,
            subreaper: bool = True) -> int:
    """Restore the images as container `cid` from bundle copts.bundle; in the foreground
    (not detach) wait for it and return its exit status, as `run` does."""
    from ociruntime import container, create

    # The caller's mistakes first, in the order of the command line; nothing is made yet.
    if not detach and not subreaper:
        # The restored init is criu's child, not ours: without a subreaper we could neither
        # wait for it nor report its exit status.
        raise OptionError("detach", "required with the subreaper off ({subreaper}): the restored init is "
                          "criu's child, and only as a subreaper can restore wait for it in the foreground",
                          mentions=("subreaper",))
    if ropts.manage_cgroups_mode == "strict" and copts.systemd_cgroup:
        # systemd makes a scope's cgroup itself; strict has criu refuse any that exists.
        raise OptionError("manage_cgroups_mode", "strict needs criu to create the container's cgroup, "
                          "which the systemd cgroup driver ({systemd_cgroup}) creates; use soft, full or "
                          "ignore", mentions=("systemd_cgroup",))
    if os.path.isdir(state.StateDir(root, cid).path):
        raise ContainerExists(cid)
    _check_images(ropts.image_path)
    _outside_tty_fds(ropts)  # the shell-job mistakes before anything is made
    binary = criu.find(ropts.criu)
    if not detach and subreaper:
        # The restored init is criu's child; criu exits after restoring it: as a subreaper we
        # get it as our child and can wait for it.
        from ociruntime.spawn import become_subreaper

        become_subreaper()
    c = create.create(root, cid, copts,
                         build=lambda c, config: _restore_build(c, config, binary, ropts))
    try:
        poststart = container.hooks_from(c.data, "poststart")
        if poststart:
            container.run_poststart(cid, c.data, poststart)
    except BaseException:
        container.delete_quietly(root, cid)
        raise
    if detach:
        return 0
    return create.wait_foreground(root, cid, c.init_pid, keep=False)


def restore_from(rt, cid: str, bundle: str, image_path: str, options: dict) -> int:
    """The Python API's restore (api.Container.restore): options split between CreateOptions
    and RestoreOptions, detach and subreaper as run() takes them."""
    from ociruntime.create import CreateOptions

    detach, subreaper = options.pop("detach", False), options.pop("subreaper", True)
    create_options = {k: options.pop(k) for k in list(options) if k in CreateOptions.__slots__}
    return restore(rt.root, cid, rt._create_options(bundle, not detach, create_options),
                   RestoreOptions(image_path, **options), detach=detach, subreaper=subreaper)


def _check_images(path: str) -> None:
    """Before anything is made: a missing or unusable image directory is the caller's mistake."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise OptionError("image_path", f"{path}: no such directory (nothing to restore)") from None
    except NotADirectoryError:
        raise OptionError("image_path", f"{path}: not a directory") from None
    except OSError as e:
        raise OptionError("image_path", f"{path}: {e.strerror}") from None
    try:
        try:
            st = os.stat(INVENTORY, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            raise OptionError("image_path", f"{path}: not a checkpoint (no {INVENTORY}: checkpoint makes "
                              "one)") from None
        import stat

        if not stat.S_ISREG(st.st_mode) or st.st_size == 0:
            raise OptionError("image_path", f"{path}: {INVENTORY} is not a checkpoint image (empty or "
                              "not a regular file)")
    finally:
        os.close(fd)


def _restore_build(c, config, binary: str, ropts: RestoreOptions) -> None:
    """create.create's build step for restore: criu makes the init."""
    from ociruntime import container, create

    _refuse_terminal(config, f"cannot restore container {c.cid!r}")
    c.sd.save_config(config.raw)
    if ropts.manage_cgroups_mode == "strict":
        _restore_strict(c, config, binary, ropts)
        create.finish_create(c)
        return
    holder, release = _cgroup_holder()
    try:
        c.cgroup.apply(holder)
        container.set_resources(c.cgroup, create.resources_with_default_devices(config))
        _restore_with_criu(c, config, binary, ropts)
    finally:
        os.close(release)  # the holder reads EOF and exits; the restored processes hold the cgroup
        try:
            os.waitpid(holder, 0)
        except ChildProcessError:
            pass
    create.finish_create(c)


def _restore_strict(c, config, binary: str, ropts: RestoreOptions) -> None:
    """--manage-cgroups-mode strict: criu makes the container's cgroup itself, with the
    properties the dump recorded, and refuses one that exists ("Abort restore of existing
    cgroups"), so nothing is made there before criu. The config's resources are set afterwards,
    as create sets them (criu 3.17 restores no cgroup v2 limits)."""
    from ociruntime import container, create

    _restore_with_criu(c, config, binary, ropts)
    container.set_resources(c.cgroup, create.resources_with_default_devices(config))


def _cgroup_holder() -> tuple[int, int]:
    """A child that sits in the new container's cgroup until criu has put the restored
    processes there: the systemd driver starts the container's scope with a process in it (and
    systemd drops an empty one), and criu itself stays out of the cgroup (the container's device
    rules would deny criu's own probes, /dev/net/tun). Its pid and the pipe end whose closing
    ends it (it dies with us too)."""
    from ociruntime.spawn import child_after_fork

    r, w = os.pipe2(os.O_CLOEXEC)
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        try:
            child_after_fork(parent)
            os.close(w)
            os.read(r, 1)
        finally:
            os._exit(0)
    os.close(r)
    return pid, w


def _restore_with_criu(c, config, binary: str, ropts: RestoreOptions) -> None:
    from ociruntime import create

    sd = c.sd
    bundle = os.path.abspath(c.opts.bundle)
    _make_mount_points(config, bundle)
    pidfile = sd.file(state.CRIU_PIDFILE)
    fds, inherit = _restore_fds(ropts.image_path, config)
    for n, key in _outside_tty_fds(ropts).items():
        fds[120 + n] = n
        inherit += ["--inherit-fd", f"fd[{120 + n}]:{key}"]
    args = ["restore", "-d", "-D", ropts.image_path, "--root", os.path.abspath(config.root_path),
            "--pidfile", pidfile, *ropts.common_args(), *_restore_externals(config, bundle, c.cgroup.paths()), *inherit,
            *_cgroup_roots(c.cgroup.paths())]
    if ropts.lsm_profile:
        args += ["--lsm-profile", ropts.lsm_profile]
    if ropts.lsm_mount_context:
        args += ["--lsm-mount-context", ropts.lsm_mount_context]
    # criu places the tasks in the new cgroup (--cgroup-root); with "ignore" it leaves them
    # where criu is, so then criu runs there. Otherwise it stays out: the container's device
    # rules would deny criu's own probes (/dev/net/tun).
    joins = c.cgroup.procs_files() if ropts.manage_cgroups_mode == "ignore" else []
    try:
        criu.run(binary, args, ropts.work_path, "restore.log", fds=fds,
                 setup=lambda: _restore_child_setup(config, joins))
    finally:
        for fd in fds.values():
            if fd > 2:
                os.close(fd)
    c.init_pid = _read_pidfile(pidfile)
    c.data = create.state_data(c, config)


def _make_mount_points(config, bundle: str) -> None:
    """criu mounts on the paths the old container had: a fresh rootfs (another bundle) may
    lack the ones create made. Made in-root, as create makes them."""
    from ociruntime.linux.rootfs import Rootfs

    root = Rootfs(config.root_path, in_userns=False)
    try:
        for m in config.mounts:
            is_dir = True
            if m.is_bind():
                source = m.source if m.source.startswith("/") else os.path.join(bundle, m.source)
                is_dir = os.path.isdir(source)
            os.close(root.make_target(m.destination, is_dir))
    finally:
        root.close()


def _restore_fds(image_path: str, config) -> tuple[dict[int, int], list[str]]:
    """{fd number in criu: our fd} and the --inherit-fd arguments: our stdio in place of the
    pipes the old init had as its stdio (descriptors.json), a namespace joined by path."""
    fds: dict[int, int] = {}
    inherit: list[str] = []
    for n, resource in enumerate(_descriptors(image_path)):
        if resource.startswith("pipe:") and _is_open(n):
            fds[100 + n] = n
            inherit += ["--inherit-fd", f"fd[{100 + n}]:{resource}"]
    for i, ns in enumerate(config.linux.namespaces):
        if ns.path and ns.type in EXTERNAL_NS:
            try:
                fd = os.open(ns.path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as e:
                for opened in fds.values():
                    if opened > 2:
                        os.close(opened)
                raise OciError(f"linux.namespaces[{i}].path {ns.path}: {e.strerror}") from None
            fds[110 + i] = fd
            inherit += ["--inherit-fd", f"fd[{110 + i}]:{EXTERNAL_NS[ns.type][1]}"]
    return fds, inherit


def _descriptors(image_path: str) -> list[str]:
    doc = _read_image_json(image_path, DESCRIPTORS, [])
    if not isinstance(doc, list) or not all(isinstance(x, str) for x in doc):
        raise OciError(f"{os.path.join(image_path, DESCRIPTORS)}: not a list of 3 paths (corrupt checkpoint)")
    return doc[:3]


def _read_image_json(image_path: str, name: str, missing: object) -> object:
    """One of the stdio records checkpoint wrote among the images (absent: `missing`); read as
    any document the caller hands us (a FIFO planted there must not hang restore)."""
    from ociruntime import jsonfile

    path = os.path.join(image_path, name)
    if not os.path.lexists(path):
        return missing
    return jsonfile.read_document(path, f"the checkpoint's {name}")


def _outside_tty_fds(ropts: RestoreOptions) -> dict[int, str]:
    """{our fd: criu's key} handing our stdio terminals over for the ones the init had from
    outside (a --shell-job checkpoint): criu reopens none itself."""
    import re

    doc = _read_image_json(ropts.image_path, TTYS, {})
    path = os.path.join(ropts.image_path, TTYS)
    # Checked to the letter: each value becomes part of criu's argument list.
    if not isinstance(doc, dict) or not all(k in ("0", "1", "2") and isinstance(v, str) and
                                            re.fullmatch(r"tty\[[0-9a-f]+:[0-9a-f]+\]", v)
                                            for k, v in doc.items()):
        raise OciError(f"{path}: not a map of stdio fds to tty[RDEV:DEV] (corrupt checkpoint)")
    if doc and "--shell-job" not in ropts.switches:
        raise OptionError("shell_job", "required: the checkpoint holds a terminal from outside the "
                          "container (made as a shell job); restore it on a terminal")
    fds = {}
    for n, key in sorted((int(k), v) for k, v in doc.items()):
        if key in fds.values():
            continue  # the same terminal on several fds: criu needs it once
        if not os.isatty(n):
            raise OptionError("shell_job", f"the checkpointed container's {STDIO[n]} was a terminal; "
                              f"restore's {STDIO[n]} must be one to hand over")
        fds[n] = key
    return fds


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


def _restore_externals(config, bundle: str, cgroup_paths: dict[str, str]) -> list[str]:
    """Each external mount bound from the new config's source (the new cgroup's directories
    for the cgroup view)."""
    args = []
    for dest, source in _external_mounts(config, bundle, cgroup_paths):
        args += ["--external", f"mnt[{dest}]:{source}"]
    return args


def _external_mounts(config, bundle: str, cgroup_paths: dict[str, str]) -> list[tuple[str, str]]:
    """(destination, host source) of every mount whose source is outside the container."""
    from ociruntime.linux.rootfs import cgroup_view_binds

    out = []
    for m in config.mounts:
        dest = "/" + m.destination.strip("/")  # as rootfs.py mounts it, as criu names it
        if m.is_bind():
            out.append((os.path.normpath(dest), os.path.join(bundle, m.source)))
        elif m.type == "cgroup":
            out += [(os.path.normpath(d), s) for d, s in cgroup_view_binds(dest, cgroup_paths)]
    return out


def _cgroup_roots(paths: dict[str, str]) -> list[str]:
    """--cgroup-root: the new container's cgroup, as a path from each hierarchy's root (what
    criu sees in /proc/self/cgroup); one for all when they agree."""
    from ociruntime.linux import cgroups

    layout = cgroups.read_layout()
    mounts = dict(layout.v1)
    if layout.unified:
        mounts[""] = layout.unified
    rel = {}
    for key, path in paths.items():
        point, mount_root = mounts.get(key, ("", "/"))
        if not point or not (path == point or path.startswith(point.rstrip("/") + "/")):
            continue
        rel[key] = (mount_root.rstrip("/") + path[len(point.rstrip("/")):]) or "/"
    if len(set(rel.values())) == 1:
        return ["--cgroup-root", next(iter(rel.values()))]
    args = []
    for key, path in rel.items():
        args += ["--cgroup-root", f"{key}:{path}" if key else path]
    return args


def _restore_child_setup(config, procs_files: list[str]) -> None:
    """In criu's process before execve: a mount namespace of its own in which the rootfs is a
    mount point (criu's --root must be one; nothing of it reaches the host); the cgroups in
    procs_files joined."""
    from ociruntime.linux import cgroups
    from ociruntime.linux.kernel import kernel
    from ociruntime.linux.namespaces import CLONE_FLAGS
    from ociruntime.linux.rootfs import prepare_root

    kernel().unshare(CLONE_FLAGS["mount"], "unshare(CLONE_NEWNS) for criu")
    prepare_root(config)
    for procs in procs_files:
        cgroups.write_file(procs, "0")


def _read_pidfile(path: str) -> int:
    try:
        with open(path, "rb") as f:
            text = f.read(64).decode(errors="replace").strip()
        os.unlink(path)
    except OSError as e:
        raise OciError(f"criu restore: cannot read its pid file {path}: {e.strerror}") from None
    if not text.isdigit() or int(text) <= 0:
        raise OciError(f"criu restore: its pid file {path} holds {text!r}, not a pid")
    log.debug(f"criu restored the init as pid {text}")
    return int(text)
