"""The Python API: what the command line itself calls, for programs that drive containers
directly. Failures raise the types of ociruntime.errors (ContainerNotFound, ContainerExists,
InvalidState/NotRunning, ConfigError, UsageError, SetupError/CgroupError/HookError, all OciError).

    from ociruntime import Runtime

    rt = Runtime(root="/run/ociruntime")
    c = rt.create("web", bundle="/srv/web")
    c.start()
    c.state()["status"]          # "running"
    c.exec(["ps", "-ef"])        # the exit status
    c.kill("SIGTERM")
    c.delete(force=True)

Modules are imported where they are used: `create` and `exec` load the config model and the
child side, `state`/`kill`/`delete` only the state directory and the cgroup drivers."""

from ociruntime import container
from ociruntime.state import validate_id


class Runtime:
    """The containers under one state directory (runc's --root). `systemd_cgroup` and
    `rootless` are runc's --systemd-cgroup and --rootless (true, false or auto)."""

    __slots__ = ("root", "rootless", "systemd_cgroup")

    def __init__(self, root: str | None = None, *, systemd_cgroup: bool = False, rootless: str = "auto") -> None:
        if not root:
            from ociruntime.state import default_root

            root = default_root()
        self.root = root
        self.systemd_cgroup = systemd_cgroup
        self.rootless = rootless

    def container(self, container_id: str) -> "Container":
        """An existing container (nothing is checked until a method is called)."""
        return Container(self, container_id)

    def create(self, container_id: str, bundle: str = ".", **options) -> "Container":
        """Create the container from its bundle; it is `created`, its init waiting for start().
        options: console_socket, pid_file, pidfd_socket, preserve_fds, no_pivot, no_new_keyring
        (the flags of `create`)."""
        from ociruntime import create

        create.create(self.root, validate_id(container_id), self._create_options(bundle, False, options))
        return Container(self, container_id)

    def run(self, container_id: str, bundle: str = ".", *, detach: bool = False, keep: bool = False,
            subreaper: bool = True, on_created=None, **options) -> int:
        """create + start. In the foreground (the default) wait for the container's process
        and return its exit status (128+N for a signal), then delete it unless `keep`; with
        `detach`, return 0 once it runs. The container's stdio is the caller's."""
        from ociruntime import create

        opts = self._create_options(bundle, not detach, options)
        return create.run(self.root, validate_id(container_id), opts, subreaper=subreaper, keep=keep,
                          on_created=on_created)

    def list(self) -> list[dict]:
        """Every container: its state() record plus `owner`, sorted by ID."""
        from ociruntime import running

        return running.list_containers(self.root)

    def _create_options(self, bundle: str, foreground: bool, options: dict):
        from ociruntime.create import CreateOptions

        return CreateOptions(bundle, systemd_cgroup=self.systemd_cgroup, rootless=self.rootless,
                             foreground=foreground, **options)


class Container:
    """One container of a Runtime, by ID."""

    __slots__ = ("id", "runtime")

    def __init__(self, runtime: "Runtime", container_id: str) -> None:
        self.runtime = runtime
        self.id = validate_id(container_id)

    def state(self) -> dict:
        """The runtime-spec state (ociVersion, id, status, pid, bundle, annotations) with runc's
        extra fields (rootfs, created, owner); the status is read from the kernel."""
        return container.read_state(self.runtime.root, self.id)

    def start(self) -> None:
        """Run the user program; returns once it has been exec'd (and poststart hooks ran)."""
        container.start(self.runtime.root, self.id)

    def kill(self, signal: str | int = "SIGTERM", *, all_processes: bool = False) -> None:
        """Send a signal (a number, or a name such as "KILL" or "SIGKILL") to the init, or with
        `all_processes` to every process of the container."""
        container.kill(self.runtime.root, self.id, str(signal), all_processes=all_processes)

    def delete(self, force: bool = False) -> None:
        """Remove a created or stopped container; `force` kills a running one first."""
        container.delete(self.runtime.root, self.id, force=force)

    def pause(self) -> None:
        from ociruntime import running

        running.pause(self.runtime.root, self.id)

    def resume(self) -> None:
        from ociruntime import running

        running.resume(self.runtime.root, self.id)

    def update(self, resources) -> None:
        """Apply new linux.resources (resources.Resources, or a dict of the config's shape)."""
        from ociruntime import running

        running.update(self.runtime.root, self.id, resources)

    def pids(self) -> list[int]:
        """The container's processes (in a cgroup it joined, only its own)."""
        from ociruntime import running

        return running.container_pids(self.runtime.root, self.id)

    def stats(self) -> dict:
        """The record `events --stats` prints: {"type": "stats", "id": ..., "data": the cgroup's
        statistics in runc's shape (cpu, memory, pids, blkio, hugetlb)}."""
        from ociruntime import running

        return running.stats_event(self.runtime.root, self.id)

    def events(self, interval: float = 5.0):
        """The records `events` prints, as they come (see running.events); ends when the
        container stops."""
        from ociruntime import running

        return running.events(self.runtime.root, self.id, interval)

    def exec(self, process: list[str] | dict | None = None, **options) -> int:
        """Run another process in the container: `process` is a list of args (run with the
        container's own process settings, as `exec ID CMD...`) or a process document (as
        `exec --process`). In the foreground (the default) wait and return its exit status;
        with detach=True return 0 once it runs. options: the flags of `exec` (cwd, env, tty,
        user=(uid, gid), additional_gids, caps, no_new_privs, detach, pid_file, pidfd_socket,
        console_socket, preserve_fds, ignore_paused, cgroups, apparmor, process_label)."""
        from ociruntime import execute

        if isinstance(process, dict):
            options["process"] = process
        elif process is not None:
            options["args"] = list(process)
        return execute.exec_in(self.runtime.root, self.id, execute.ExecOptions(**options))

    def checkpoint(self, image_path: str = "checkpoint", **options) -> None:
        """criu dumps the container to image_path (gone after, unless leave_running or
        pre_dump); options: checkpoint.CheckpointOptions' keywords."""
        from ociruntime import checkpoint

        checkpoint.checkpoint(self.runtime.root, self.id, checkpoint.CheckpointOptions(image_path, **options))

    def restore(self, bundle: str = ".", image_path: str = "checkpoint", **options) -> int:
        """This container, from criu's images and the bundle; as run(): detach, subreaper,
        create()'s options, and checkpoint.RestoreOptions' keywords."""
        from ociruntime import checkpoint

        return checkpoint.restore_from(self.runtime, self.id, bundle, image_path, options)
