"""Per-task kernel attributes of the container process: scheduler, I/O priority, CPU affinity,
execution domain (personality) and NUMA memory policy.

All of them are inherited across fork and execve, so setting them on the runtime's child before
execve is setting them on the container's program. Each needs privileges the process may lose
with its credentials (CAP_SYS_NICE, CAP_SYS_ADMIN): callers apply them before that."""

from __future__ import annotations

import posix

from ociruntime.errors import SetupError, SyscallError
from ociruntime.linux.kernel import kernel

# sched(7) policy numbers; SCHED_ISO (4) was reserved but never merged into Linux.
SCHED_POLICIES = {"SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3,
                  "SCHED_IDLE": 5, "SCHED_DEADLINE": 6}
SCHED_FLAGS = {"SCHED_FLAG_RESET_ON_FORK": 0x01, "SCHED_FLAG_RECLAIM": 0x02,
               "SCHED_FLAG_DL_OVERRUN": 0x04, "SCHED_FLAG_KEEP_POLICY": 0x08,
               "SCHED_FLAG_KEEP_PARAMS": 0x10}
# The utilisation clamps need values (sched_util_min/max) that the spec does not carry.
SCHED_FLAGS_WITHOUT_VALUES = ("SCHED_FLAG_UTIL_CLAMP_MIN", "SCHED_FLAG_UTIL_CLAMP_MAX")
IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}
IOPRIO_WHO_PROCESS = 1
IOPRIO_CLASS_SHIFT = 13
PERSONALITY_DOMAINS = {"LINUX": 0x0000, "LINUX32": 0x0008}
MPOL_MODES = {"MPOL_DEFAULT": 0, "MPOL_PREFERRED": 1, "MPOL_BIND": 2, "MPOL_INTERLEAVE": 3,
              "MPOL_LOCAL": 4, "MPOL_PREFERRED_MANY": 5, "MPOL_WEIGHTED_INTERLEAVE": 6}
MPOL_FLAGS = {"MPOL_F_NUMA_BALANCING": 1 << 13, "MPOL_F_RELATIVE_NODES": 1 << 14,
              "MPOL_F_STATIC_NODES": 1 << 15}
LONG_BITS = 64


def unsupported_scheduler(sched: dict) -> list[str]:
    """What of process.scheduler the kernel cannot do (refused at create, not ignored)."""
    problems = []
    if sched["policy"] not in SCHED_POLICIES:
        problems.append(f"process.scheduler.policy: {sched['policy']} is not a Linux scheduling "
                        f"policy (supported: {', '.join(SCHED_POLICIES)})")
    for flag in sched.get("flags") or []:
        if flag in SCHED_FLAGS_WITHOUT_VALUES:
            problems.append(f"process.scheduler.flags: {flag} needs a clamp value, which the "
                            "runtime-spec does not define")
    return problems


def set_scheduler(sched: dict) -> None:
    """sched_setattr(2) of the caller: policy, nice, priority, flags, deadline parameters."""
    flags = 0
    for name in sched.get("flags") or []:
        flags |= SCHED_FLAGS[name]
    kernel().sched_setattr(SCHED_POLICIES[sched["policy"]], flags, sched.get("nice", 0), sched.get("priority", 0),
                           sched.get("runtime", 0), sched.get("deadline", 0), sched.get("period", 0),
                           f"process.scheduler: sched_setattr {sched['policy']}")


def set_io_priority(iop: dict) -> None:
    value = (IOPRIO_CLASSES[iop["class"]] << IOPRIO_CLASS_SHIFT) | iop["priority"]
    kernel().ioprio_set(IOPRIO_WHO_PROCESS, 0, value,
                        f"process.ioPriority: ioprio_set {iop['class']} {iop['priority']}")


def parse_list(text: str) -> set[int]:
    """The kernel's list format (cpuset(7)): `0-3,7`, a range may have a stride `0-7:2/4`
    (in each group of 4 from the start, the first 2). Validation checked the syntax."""
    out: set[int] = set()
    for item in filter(None, text.split(",")):
        span, _, stride = item.partition(":")
        low, _, high = span.partition("-")
        first, last = int(low), int(high or low)
        used, group = (int(x) for x in stride.split("/")) if stride else (1, 1)
        for start in range(first, last + 1, group):
            out.update(range(start, min(start + used, last + 1)))
    return out


def set_affinity(cpus: str, what: str) -> None:
    try:
        posix.sched_setaffinity(0, parse_list(cpus))
    except OSError as e:
        raise SyscallError.from_os(e, f"{what}: sched_setaffinity {cpus!r}") from None


def set_personality(pers: dict) -> None:
    """The execution domain; flags were refused at validation (the spec defines none)."""
    kernel().personality(PERSONALITY_DOMAINS[pers["domain"]], f"linux.personality: personality {pers['domain']}")


def set_memory_policy(policy: dict) -> None:
    """set_mempolicy(2): the mode with its flags, over a node bit mask (no mask for
    MPOL_DEFAULT/MPOL_LOCAL, and an empty one for MPOL_PREFERRED means local allocation)."""
    mode = MPOL_MODES[policy["mode"]]
    for name in policy.get("flags") or []:
        mode |= MPOL_FLAGS[name]
    nodes = parse_list(policy.get("nodes") or "")
    if not nodes:
        kernel().set_mempolicy(mode, [], 0, f"linux.memoryPolicy: set_mempolicy {policy['mode']}")
        return
    words = max(nodes) // LONG_BITS + 1
    mask = [0] * words
    for node in nodes:
        mask[node // LONG_BITS] |= 1 << (node % LONG_BITS)
    # maxnode counts one bit more than the mask holds: the kernel drops the last (historic).
    kernel().set_mempolicy(mode, mask, words * LONG_BITS + 1,
                           f"linux.memoryPolicy: set_mempolicy {policy['mode']} nodes {policy.get('nodes')}")


def set_initial_affinity(pid: int, cpus: str) -> None:
    """execCPUAffinity.initial (`cpus`) of an exec'd process: set by the runtime on its child
    (`pid`, not yet reaped, so the pid cannot be reused) between fork and the move into the
    container's cgroup, which the spec puts it before."""
    try:
        posix.sched_setaffinity(pid, parse_list(cpus))
    except OSError as e:
        raise SetupError(f"process.execCPUAffinity.initial: sched_setaffinity {cpus!r}: "
                         f"{e.strerror}") from None
