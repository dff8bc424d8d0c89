"""Process credentials and limits: rlimits, oom_score_adj, user and groups, capabilities, no_new_privs."""

from __future__ import annotations

import errno
import posix

from ociruntime import lean, log
from ociruntime.config import Capabilities, Process
from ociruntime.errors import SetupError, SyscallError
from ociruntime.linux.caps import CAPABILITIES
from ociruntime.linux.kernel import kernel

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4


def prctl(option: int, a2: int = 0, what: str = "prctl") -> None:
    kernel().prctl(option, a2, 0, what)


def set_dumpable(on: bool) -> None:
    """Non-dumpable until execve: nothing in the container can ptrace or read our /proc files."""
    prctl(PR_SET_DUMPABLE, 1 if on else 0, "prctl(PR_SET_DUMPABLE)")


def set_rlimits(process: Process) -> None:
    """Through the shim, not the `resource` module: loading that extension (~0.2 ms) would sit
    on create's critical path, in the child."""
    k = kernel()
    for r in process.rlimits:
        what = f"setrlimit {r.type} soft={r.soft} hard={r.hard}"
        try:
            k.setrlimit(r.type, r.soft, r.hard, what)
        except SetupError as e:
            if e.errno != errno.EPERM:
                raise
            raise SyscallError(e.errno, what, reason="raising a hard limit needs CAP_SYS_RESOURCE "
                               "in the host's user namespace") from None


def set_oom_score_adj(value: int) -> None:
    try:
        fd = posix.open("/proc/self/oom_score_adj", posix.O_WRONLY | posix.O_CLOEXEC)
        try:
            posix.write(fd, str(value).encode())
        finally:
            posix.close(fd)
    except OSError as e:
        raise SyscallError.from_os(e, f"write {value} to /proc/self/oom_score_adj") from None


def cap_mask(names: list[str]) -> int:
    """Unknown names were already warned about at validation (the spec says: not fatal)."""
    last = last_cap()
    mask = 0
    for name in names:
        number = CAPABILITIES.get(name)
        if number is not None and number <= last:
            mask |= 1 << number
    return mask


_LAST_CAP: list[int] = []


def last_cap() -> int:
    """The highest capability number this kernel knows (read once, from the host's procfs in
    stage1: the container may have no /proc of ours, or a chroot without one)."""
    if not _LAST_CAP:
        text = lean.read_small("/proc/sys/kernel/cap_last_cap")
        if not text:
            raise SetupError("cannot read /proc/sys/kernel/cap_last_cap")
        _LAST_CAP.append(int(text))
    return _LAST_CAP[0]


def drop_bounding(keep: int) -> None:
    for number in range(last_cap() + 1):
        if not keep & (1 << number):
            prctl(PR_CAPBSET_DROP, number, f"drop capability {number} from the bounding set")


def switch_user(process: Process) -> None:
    """setgroups, setgid, setuid, keeping capabilities across the uid change (we set them next)."""
    user = process.user
    prctl(PR_SET_KEEPCAPS, 1, "prctl(PR_SET_KEEPCAPS)")
    k = kernel()
    try:
        k.setgroups(user.additional_gids, f"setgroups {user.additional_gids}")
    except SetupError as e:
        _setgroups_failed(user.additional_gids, e)
    k.setresgid(user.gid, f"setresgid {user.gid}")
    k.setresuid(user.uid, f"setresuid {user.uid}")
    prctl(PR_SET_KEEPCAPS, 0, "prctl(PR_SET_KEEPCAPS)")
    if user.umask is not None:
        posix.umask(user.umask)


def _setgroups_failed(wanted: list[int], err: SetupError) -> None:
    """setgroups(2) failed. In a user namespace whose setgroups file says "deny" (an ordinary
    user mapped its own gid: the kernel allows that mapping only so), nobody may change the
    groups; the process keeps the groups it came with, as with runc. Only when the config asked
    for groups is that an error. EPERM for any other reason stays an error."""
    if err.errno == errno.EPERM and not wanted and _setgroups_denied():
        log.debug("setgroups is denied in this user namespace (rootless): groups left as they are")
        return
    if err.errno == errno.EPERM and _setgroups_denied():
        raise SetupError(f"process.user.additionalGids {wanted}: setgroups is denied in this user "
                         "namespace (an unprivileged user mapped only its own gid; map a range "
                         "from /etc/subgid with newgidmap to allow it)")
    raise err


def _setgroups_denied() -> bool:
    return lean.read_small("/proc/self/setgroups").strip() == b"deny"


def set_capabilities(caps: Capabilities) -> None:
    eff, perm, inh = cap_mask(caps.effective), cap_mask(caps.permitted), cap_mask(caps.inheritable)
    k = kernel()
    k.capset([eff & 0xFFFFFFFF, perm & 0xFFFFFFFF, inh & 0xFFFFFFFF, eff >> 32, perm >> 32, inh >> 32],
             "capset (effective/permitted/inheritable)")
    k.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, "clear ambient set")
    ambient = cap_mask(caps.ambient)
    for number in range(last_cap() + 1):
        if ambient & (1 << number):
            name = next((n for n, v in CAPABILITIES.items() if v == number), str(number))
            try:
                k.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, number,
                        f"process.capabilities.ambient: {name} not raised")
            except SetupError as e:
                # Ambient needs the cap in permitted and inheritable too; runc's own default spec
                # lists ambient caps that are not inheritable, so this is expected, not an error.
                log.debug(str(e))


def warn_ungrantable(caps: Capabilities) -> None:
    """Known names this kernel predates (CAP_BPF before 5.8, ...) cannot be granted: the spec
    (1.3.0) asks for a warning and no failure, so a config written for newer kernels still runs.
    Names nobody knows were warned about at validation."""
    last = last_cap()
    names = {n for kind in (caps.bounding, caps.effective, caps.permitted, caps.inheritable,
                            caps.ambient) for n in kind}
    for name in sorted(n for n in names if CAPABILITIES.get(n, -1) > last):
        log.warning(f"process.capabilities: {name} is not known to this kernel: not granted")


def apply_credentials(process: Process) -> None:
    warn_ungrantable(process.capabilities)
    drop_bounding(cap_mask(process.capabilities.bounding))
    switch_user(process)
    set_capabilities(process.capabilities)


def no_new_privileges() -> None:
    prctl(PR_SET_NO_NEW_PRIVS, 1, "prctl(PR_SET_NO_NEW_PRIVS)")


KEY_POSSESSOR_AND_USER_ALL = 0x3F3F0000


def new_session_keyring(container_id: str) -> None:
    """Like runc: each container gets its own session keyring unless --no-new-keyring."""
    k = kernel()
    serial = k.join_session_keyring(f"_ses.{container_id}", "join a new session keyring")
    k.keyctl_setperm(serial, KEY_POSSESSOR_AND_USER_ALL, "set session keyring permissions")
