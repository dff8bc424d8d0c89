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
