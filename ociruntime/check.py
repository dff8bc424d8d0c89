"""`ociruntime check` (not in runc): is this bundle runnable *here*? Validates the config (schema,
semantics, unsupported features) and the host it would run on, and lists every problem at once."""

from __future__ import annotations

import os

from ociruntime.errors import OciError
from ociruntime.spectables import NS_LINK_NAMES


def check_bundle(path: str, *, systemd_cgroup: bool = False) -> list[str]:
    from ociruntime import bundle
    from ociruntime.errors import ConfigError

    try:
        # The rootfs is one of the host checks below, listed with the others.
        config = bundle.load(path, systemd_cgroup=systemd_cgroup, require_rootfs=False)
    except ConfigError as e:
        return e.details()
    except OciError as e:
        return [str(e)]
    return check_host(config)


def check_host(config) -> list[str]:
    problems = []
    if not os.path.isdir(config.root_path):
        problems.append(f"root.path: {config.root_path} does not exist or is not a directory")
    for i, ns in enumerate(config.linux.namespaces):
        proc_name = NS_LINK_NAMES[ns.type]
        if not os.path.exists(f"/proc/self/ns/{proc_name}"):
            problems.append(f"linux.namespaces[{i}]: this kernel has no {ns.type} namespaces")
    for i, m in enumerate(config.mounts):
        if m.is_bind():
            src = m.source if m.source.startswith("/") else os.path.join(os.path.dirname(config.root_path), m.source)
            if not os.path.exists(src):
                problems.append(f"mounts[{i}].source: {src} does not exist (bind mount on {m.destination})")
        elif m.type and m.type not in ("cgroup", "none") and not _filesystem_known(m.type):
            problems.append(f"mounts[{i}].type: this kernel does not know filesystem {m.type!r}")
    for kind, hooks in config.hooks.items():
        for i, hook in enumerate(hooks):
            if kind in ("startContainer",):
                continue  # resolved inside the container
            if not os.access(hook.path, os.X_OK):
                problems.append(f"hooks.{kind}[{i}].path: {hook.path} is not an executable file")
    if config.linux.seccomp and not os.path.exists("/proc/sys/kernel/seccomp/actions_avail"):
        problems.append("linux.seccomp: this kernel has no seccomp filter support")
    problems += _check_cgroups(config)
    problems += _check_special_targets(config)
    from ociruntime.linux import lsm

    problems += lsm.problems(config)
    if not _has_mount_setattr():
        problems.append("kernel: mount_setattr(2) is missing (Linux >= 5.12 needed for recursive "
                        "read-only mounts)")
    return problems


def _check_special_targets(config) -> list[str]:
    """procfs/sysfs/cgroupfs go only onto ordinary directories: a symlink on the way in the
    image is refused at create (it could move them where a racer wants)."""
    from ociruntime.linux.rootfs import SPECIAL_FS

    problems = []
    for i, m in enumerate(config.mounts):
        if (m.type in SPECIAL_FS or m.type == "cgroup") and not m.is_bind():
            link = _first_symlink(config.root_path, m.destination)
            if link:
                problems.append(f"mounts[{i}].destination: {m.type} must be mounted on an ordinary "
                                f"directory, but {link} is a symlink in the rootfs")
    return problems


def _first_symlink(root: str, dest: str) -> str | None:
    path = root
    for part in [p for p in dest.split("/") if p and p != "."]:
        path = os.path.join(path, part)
        if os.path.islink(path):
            return path[len(root):]
    return None


def _filesystem_known(fstype: str) -> bool:
    with open("/proc/filesystems") as f:
        return any(line.split()[-1] == fstype for line in f if line.strip())


def _check_cgroups(config) -> list[str]:
    from ociruntime.linux import cgroups

    resources = config.linux.resources
    layout = cgroups.read_layout()
    available = {c for key in layout.v1 for c in key.split(",")}
    if layout.unified:
        try:
            with open(os.path.join(layout.unified[0], "cgroup.controllers")) as f:
                available |= set(f.read().split())
        except OSError:
            pass
    wanted = (("memory", "memory", "memory"), ("cpu", "cpu", "cpu"), ("pids", "pids", "pids"),
              ("blockIO", "block_io", "blkio"), ("hugepageLimits", "hugepage_limits", "hugetlb"),
              ("network", "network", "net_cls"), ("rdma", "rdma", "rdma"))
    problems = []
    for key, attr, controller in wanted:
        if (resources and getattr(resources, attr) and controller not in available
                and not (controller == "blkio" and "io" in available)):
            problems.append(f"linux.resources.{key}: the {controller} cgroup controller is not "
                            "available on this host")
    return problems


def _has_mount_setattr() -> bool:
    import errno

    from ociruntime.errors import SetupError
    from ociruntime.linux.kernel import kernel

    # An invalid call: ENOSYS means the syscall is missing, anything else that it exists.
    try:
        kernel().mount_setattr(-1, "", 0, 0, 0, 0, "mount_setattr")
    except SetupError as e:
        return e.errno != errno.ENOSYS
    return True
