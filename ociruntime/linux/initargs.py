"""What the runtime hands the children it forks (ociruntime.spawn -> linux/init.py). Its own
module so that the runtime builds it without loading the child side: the child imports that
itself, right after the fork, while the runtime moves it into its cgroup."""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ociruntime.config import Config
    from ociruntime.linux.namespaces import NamespacePlan
    from ociruntime.linux.seccomp import Filter


class InitArgs:
    """What the runtime hands its children (inherited through fork, never serialised)."""

    __slots__ = (
        "bundle",
        "cgroup_paths",
        "config",
        "console_fd",
        "container_id",
        "exec_path",
        "extra_env",
        "fifo_fd",
        "idmapped",
        "is_exec",
        "keep_fds",
        "listener_fd",
        "net_mover",
        "new_keyring",
        "no_pivot",
        "pid_pipe",
        "plan",
        "root_fd",
        "seccomp",
        "state",
        "sync_fd",
    )

    def __init__(self, config: "Config", bundle: str, plan: "NamespacePlan", *, sync_fd: int,
                 container_id: str, is_exec: bool = False, keep_fds: int = 0, extra_env: list[str] | None = None,
                 seccomp: "Filter | None" = None, console_fd: int = -1, fifo_fd: int = -1, no_pivot: bool = False,
                 new_keyring: bool = True, cgroup_paths: dict[str, str] | None = None, root_fd: int = -1) -> None:
        """Built once by the runtime (ociruntime.spawn), complete; the children fill in only what
        they make themselves (idmapped, listener_fd, pid_pipe, state, net_mover, exec_path)."""
        self.config = config
        self.bundle = bundle
        self.plan = plan
        self.sync_fd = sync_fd
        self.container_id = container_id  # for the seccomp listener's state
        self.is_exec = is_exec  # an `exec`'d process, not the container's init
        self.keep_fds = keep_fds  # fds 3 .. 3+keep_fds-1 pass into the container
        self.extra_env = extra_env or []
        self.seccomp = seccomp
        self.console_fd = console_fd
        self.fifo_fd = fifo_fd
        self.no_pivot = no_pivot
        self.new_keyring = new_keyring
        self.cgroup_paths = cgroup_paths
        self.root_fd = root_fd  # exec into a container without its own mount namespace: its root
        self.exec_path = ""
        self.idmapped: dict = {}  # Mount -> detached id-mapped tree (stage1, idmap.prepare)
        self.listener_fd = -1  # connected to linux.seccomp.listenerPath (SCMP_ACT_NOTIFY)
        self.pid_pipe = -1  # stage1 writes the child's host pid here (for the listener)
        self.state: dict | None = None  # the container state `create` sent the init
        self.net_mover = None  # netdevices.DeviceMover for linux.netDevices (stage1 only)

    def needs_host_view(self) -> bool:
        """Whether the first child has work to do in the host's user and mount namespaces
        before entering the container's (init.prepare_from_host): id-mapped mounts, devices
        to move into the network namespace, the seccomp listener's socket."""
        config = self.config
        return (any(m.idmap() for m in config.mounts) or bool(config.linux.net_devices)
                or (self.seccomp is not None and bool(self.seccomp.listener_path)))
