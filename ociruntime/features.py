"""`ociruntime features`: the runtime-spec features document, derived from the code itself, so
what it claims is exactly what the modules implement."""

from __future__ import annotations

from ociruntime import SPEC_VERSION, __version__, jsonio
from ociruntime.linux import lsm, mountflags, procattrs
from ociruntime.linux.caps import CAPABILITIES
from ociruntime.spectables import (
    CLONE_FLAGS,
    HOOK_KINDS,
    SECCOMP_ACTIONS,
    SECCOMP_ARCHITECTURES,
    SECCOMP_FLAGS,
    SECCOMP_OPERATORS,
)


def mount_options() -> list[str]:
    return sorted([*mountflags.FLAG_OPTIONS, *mountflags.PROPAGATION_OPTIONS,
                   *mountflags.RECURSIVE_OPTIONS, *mountflags.NO_OP_OPTIONS,
                   *mountflags.RUNTIME_OPTIONS])


def document() -> dict:
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": SPEC_VERSION,
        "hooks": list(HOOK_KINDS),
        "mountOptions": mount_options(),
        "linux": {
            "namespaces": list(CLONE_FLAGS),
            "capabilities": list(CAPABILITIES),
            # --systemd-cgroup asks systemd for the unit over D-Bus (cgroups/systemd.py);
            # the user instance (rootless) is not tested yet.
            "cgroup": {"v1": True, "v2": True, "systemd": True, "systemdUser": False,
                       "rdma": True},
            "seccomp": {
                "enabled": True,
                "actions": sorted(SECCOMP_ACTIONS),
                "operators": sorted(SECCOMP_OPERATORS),
                "archs": list(SECCOMP_ARCHITECTURES),
                "knownFlags": list(SECCOMP_FLAGS),
                "supportedFlags": list(SECCOMP_FLAGS),
            },
            # Applied when the host has the LSM; refused (never ignored) when it has not.
            "apparmor": {"enabled": lsm.apparmor_enabled()},
            "selinux": {"enabled": lsm.selinux_enabled()},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": True}},
            "netDevices": {"enabled": True},
            "memoryPolicy": {"modes": list(procattrs.MPOL_MODES), "flags": list(procattrs.MPOL_FLAGS)},
        },
        "annotations": {
            "io.github.ociruntime.version": __version__,
            # Applied properties the features document has no field for (features-linux.md).
            "io.github.ociruntime.process": "scheduler,ioPriority,execCPUAffinity",
            "io.github.ociruntime.process.scheduler.policies": ",".join(procattrs.SCHED_POLICIES),
            "io.github.ociruntime.linux": "personality",
            # As runc's org.opencontainers.runc.checkpoint.enabled: the commands exist (they need criu).
            "io.github.ociruntime.checkpoint.enabled": "true",
        },
    }


def document_text() -> str:
    return jsonio.dumps_pretty(document())


def unsupported(config) -> list[str]:
    """Parts of a valid config this runtime does not implement (the features document says
    so too): refused with a clear message rather than silently ignored."""
    linux = config.linux
    problems = []
    if linux.intel_rdt:
        problems.append("linux.intelRdt: not supported by ociruntime (Intel RDT needs the resctrl "
                        "filesystem; no machine this runtime is tested on has it, so it is refused, not "
                        "applied untested)")
    if config.process is not None and config.process.scheduler:
        problems += procattrs.unsupported_scheduler(config.process.scheduler)
    if linux.seccomp is not None:
        for i, rule in enumerate(linux.seccomp.syscalls):
            if rule.action not in SECCOMP_ACTIONS:
                problems.append(f"linux.seccomp.syscalls[{i}].action: {rule.action} is not "
                                f"supported (supported: {', '.join(sorted(SECCOMP_ACTIONS))})")
        if linux.seccomp.default_action not in SECCOMP_ACTIONS:
            problems.append(f"linux.seccomp.defaultAction: {linux.seccomp.default_action} "
                            "is not supported")
        for i, flag in enumerate(linux.seccomp.flags):
            if flag not in SECCOMP_FLAGS:
                problems.append(f"linux.seccomp.flags[{i}]: {flag} is not supported")
    for i, m in enumerate(config.mounts):
        if m.idmap() and not m.is_bind():
            problems.append(f"mounts[{i}].options: {m.idmap()} is supported on bind mounts only")
    return problems
