"""linux.seccomp: compiled once per create (in the parent, with libseccomp) to a BPF program;
the init loads that program with seccomp(2) just before execve."""

from __future__ import annotations

import posix

from ociruntime.errors import ConfigError, SetupError, SyscallError
from ociruntime.linux.kernel import kernel, shim
from ociruntime.spectables import SECCOMP_ACTIONS as ACTIONS
from ociruntime.spectables import SECCOMP_ERRNO_ACTIONS as ACTIONS_WITH_ERRNO
from ociruntime.spectables import SECCOMP_FLAGS as FLAGS
from ociruntime.spectables import SECCOMP_OPERATORS as OPERATORS

SCMP_FLTATR_CTL_NNP = 3
# seccomp(2): load the filter and return a user-notification fd (SCMP_ACT_NOTIFY rules).
SECCOMP_FILTER_FLAG_NEW_LISTENER = 8
SCM_RIGHTS = 1
EPERM = 1
EEXIST = 17

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ociruntime.config import Seccomp, SeccompArg, SyscallRule


def libseccomp_version() -> str:
    v = shim()[1].seccomp_version()
    return f"{v.major}.{v.minor}.{v.micro}"


def _action(name: str, errno_ret: int | None) -> int:
    base = ACTIONS[name]
    if name in ACTIONS_WITH_ERRNO:
        return base | ((EPERM if errno_ret is None else errno_ret) & 0xFFFF)
    return base


class Filter:
    """A compiled filter: the BPF bytes and the seccomp(2) flags to load it with; with
    SCMP_ACT_NOTIFY rules, where its notify fd goes (listenerPath) and the metadata with it."""

    __slots__ = ("bpf", "flags", "listener_metadata", "listener_path")

    def __init__(self, bpf: bytes, flags: int, listener_path: str = "", listener_metadata: str = "") -> None:
        self.bpf = bpf
        self.flags = flags
        self.listener_path = listener_path
        self.listener_metadata = listener_metadata

    def load(self) -> int:
        """Load it into the calling thread: the notify fd when it has notify rules, else -1."""
        flags = self.flags | (SECCOMP_FILTER_FLAG_NEW_LISTENER if self.listener_path else 0)
        ret = kernel().seccomp_set_filter(flags, self.bpf, "load seccomp filter")
        return ret if self.listener_path else -1


def connect_listener(path: str) -> int:
    """A connected socket to linux.seccomp.listenerPath (made while the runtime's child still
    sees the host's filesystem); an unreachable listener fails `create`."""
    from ociruntime.linux import unixsock

    return unixsock.connect(path, "linux.seccomp.listenerPath")


def send_listener_state(sock_fd: int, notify_fd: int, state: dict, pid: int, metadata: str) -> None:
    """The ContainerProcessState (config-linux.md): one message, the JSON as its data and the
    notify fd as SCM_RIGHTS, as runc sends it."""
    # Only modules already loaded: after pivot_root the host's library is out of reach
    # (connect_listener imported unixsock; jsonio read the config).
    from ociruntime import jsonio
    from ociruntime.linux import unixsock

    doc = {"ociVersion": state.get("ociVersion", ""), "fds": ["seccompFd"], "pid": pid,
           "state": state}
    if metadata:
        doc["metadata"] = metadata
    unixsock.send_fd(sock_fd, jsonio.dumps(doc).encode(), notify_fd,
                     "linux.seccomp.listenerPath: send the seccomp fd")


def compile_filter(spec: Seccomp) -> Filter:
    ffi, lib = shim()
    default = _action(spec.default_action, spec.default_errno_ret)
    ctx = lib.seccomp_init(default)
    if ctx == ffi.NULL:
        raise SetupError("seccomp: cannot initialise a filter")
    try:
        # We set no_new_privs ourselves, when process.noNewPrivileges says so.
        lib.seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0)
        for arch in spec.architectures:
            token = lib.seccomp_arch_resolve_name(arch[len("SCMP_ARCH_"):].lower().encode())
            if token == 0:
                raise ConfigError([f"linux.seccomp.architectures: {arch} is unknown to libseccomp"])
            rc = lib.seccomp_arch_add(ctx, token)
            if rc < 0 and rc != -EEXIST:  # the native arch is always there
                raise SyscallError(-rc, f"seccomp: add architecture {arch}")
        for i, rule in enumerate(spec.syscalls):
            _add_rule(ctx, default, rule, i)
        return filter_of(spec, _export(ctx))
    finally:
        lib.seccomp_release(ctx)


def filter_of(spec: Seccomp, bpf: bytes) -> Filter:
    # `bpf`: compiled now, or kept from an earlier compile (linux/bpfcache.py)
    notify = any(r.action == "SCMP_ACT_NOTIFY" for r in spec.syscalls)
    return Filter(bpf, _flags(spec.flags), spec.listener_path if notify else "", spec.listener_metadata)


def _flags(names: list[str]) -> int:
    value = 0
    for name in names:
        value |= FLAGS[name]
    return value


def _add_rule(ctx: object, default: int, rule: SyscallRule, index: int) -> None:
    action = _action(rule.action, rule.errno_ret)
    if action == default:
        return  # libseccomp refuses rules equal to the default action; they change nothing
    ffi, lib = shim()
    # Several conditions on the same argument are alternatives (OR): one rule for each.
    groups: list[list[SeccompArg]] = [[]]
    for arg in rule.args:
        if any(a.index == arg.index for a in groups[-1]):
            groups.append([])
        groups[-1].append(arg)
    for name in rule.names:
        number = lib.seccomp_syscall_resolve_name(name.encode())
        if number < 0:
            continue  # a syscall this kernel/libseccomp does not know: nothing to filter
        for group in groups:
            cmp = ffi.new("struct scmp_arg_cmp[]", max(len(group), 1))
            for j, arg in enumerate(group):
                cmp[j].arg = arg.index
                cmp[j].op = OPERATORS[arg.op]
                cmp[j].datum_a = arg.value
                cmp[j].datum_b = arg.value_two
            rc = lib.seccomp_rule_add_array(ctx, action, number, len(group), cmp)
            if rc == -EEXIST:
                continue  # an equivalent rule for this syscall is already in the filter
            if rc < 0:
                raise SyscallError(-rc, f"linux.seccomp.syscalls[{index}]: add rule for {name}")


def _export(ctx: object) -> bytes:
    # A memfd, not a pipe: a large profile's program would fill a pipe and block the export.
    fd = posix.memfd_create("seccomp-bpf", posix.MFD_CLOEXEC)
    try:
        rc = shim()[1].seccomp_export_bpf(ctx, fd)
        if rc < 0:
            raise SyscallError(-rc, "seccomp: export BPF")
        size = posix.lseek(fd, 0, 1)  # SEEK_CUR
        return posix.pread(fd, size, 0)
    finally:
        posix.close(fd)
