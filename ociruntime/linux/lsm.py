"""Linux security modules: the AppArmor profile and SELinux label a container's process runs
under. A config that asks for one on a host without that LSM is refused, never run unconfined."""

from __future__ import annotations

import posix

from ociruntime import lean
from ociruntime.config import Config, Process
from ociruntime.errors import SetupError, SyscallError
from ociruntime.linux import procfs


def apparmor_enabled() -> bool:
    return lean.read_small("/sys/module/apparmor/parameters/enabled")[:1] == b"Y"


def selinux_enabled() -> bool:
    return lean.exists("/sys/fs/selinux/enforce")


def problems(config: Config) -> list[str]:
    """Every label the config asks for that this host cannot apply (also `check -b`)."""
    out = []
    process = config.process
    if process is not None and process.apparmor_profile and not apparmor_enabled():
        out.append(f"process.apparmorProfile: {process.apparmor_profile!r} cannot be applied: "
                   "AppArmor is not enabled on this host")
    if process is not None and process.selinux_label and not selinux_enabled():
        out.append(f"process.selinuxLabel: {process.selinux_label!r} cannot be applied: "
                   "SELinux is not enabled on this host")
    if config.linux.mount_label and not selinux_enabled():
        out.append(f"linux.mountLabel: {config.linux.mount_label!r} cannot be applied: "
                   "SELinux is not enabled on this host")
    return out


def check_enabled(config: Config) -> None:
    found = problems(config)
    if found:
        raise SetupError(found[0])


def set_exec_label(proc_fd: int, process: Process) -> None:
    """Label the next execve (before it, while we still may): AppArmor's attr/apparmor/exec
    (attr/exec on kernels without the per-LSM directory), SELinux's attr/exec."""
    pid = posix.getpid()
    if process.apparmor_profile:
        if not apparmor_enabled():
            raise SetupError(f"process.apparmorProfile: {process.apparmor_profile!r} cannot be "
                             "applied: AppArmor is not enabled on this host")
        data = f"exec {process.apparmor_profile}".encode()
        try:
            procfs.write_file(proc_fd, f"{pid}/attr/apparmor/exec", data)
        except FileNotFoundError:
            _write_attr(proc_fd, f"{pid}/attr/exec", data, "process.apparmorProfile")
        except OSError as e:
            raise SyscallError.from_os(e, f"process.apparmorProfile: {process.apparmor_profile!r}") from None
    if process.selinux_label:
        if not selinux_enabled():
            raise SetupError(f"process.selinuxLabel: {process.selinux_label!r} cannot be applied: "
                             "SELinux is not enabled on this host")
        _write_attr(proc_fd, f"{pid}/attr/exec", process.selinux_label.encode(), "process.selinuxLabel")


def _write_attr(proc_fd: int, rel: str, data: bytes, field: str) -> None:
    try:
        procfs.write_file(proc_fd, rel, data)
    except OSError as e:
        raise SyscallError.from_os(e, f"{field}: {data.decode(errors='replace')!r}") from None
