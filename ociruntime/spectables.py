"""The runtime-spec's tables, each written once: pure data, no imports.

Validation (semantics, features), the config model and the kernel layer (namespaces, seccomp,
devices, cgroups) all read these, so loading and validating a config never needs the kernel
layer or the compiled shim, and a fact cannot drift between two copies."""

# config.md "POSIX-platform Hooks", in lifecycle order.
HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")

# config-linux.md "Namespaces": spec type -> CLONE_NEW* flag (the order `features` lists them).
CLONE_FLAGS = {
    "mount": 0x00020000, "uts": 0x04000000, "ipc": 0x08000000, "user": 0x10000000,
    "pid": 0x20000000, "network": 0x40000000, "cgroup": 0x02000000, "time": 0x00000080,
}
# spec type -> the name of its link in /proc/<pid>/ns.
NS_LINK_NAMES = {"mount": "mnt", "uts": "uts", "ipc": "ipc", "user": "user", "pid": "pid",
                 "network": "net", "cgroup": "cgroup", "time": "time"}
# Joining order: the user namespace first (it decides what we may do in the others), the
# mount namespace last (joining it changes how every later path resolves).
JOIN_ORDER = ("user", "pid", "uts", "ipc", "network", "cgroup", "time", "mount")

# config.md "POSIX process": the rlimit types (getrlimit(2) names). Their numbers differ between
# architectures: the shim takes them from the C headers (csrc/build_shim.py declares these).
RLIMITS = ("RLIMIT_AS", "RLIMIT_CORE", "RLIMIT_CPU", "RLIMIT_DATA", "RLIMIT_FSIZE", "RLIMIT_LOCKS",
           "RLIMIT_MEMLOCK", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_RSS",
           "RLIMIT_RTPRIO", "RLIMIT_RTTIME", "RLIMIT_SIGPENDING", "RLIMIT_STACK")

# config-linux.md "Seccomp": actions (SCMP_ACT_* values of libseccomp), comparison operators,
# architectures and filter flags this runtime implements.
SECCOMP_ACTIONS = {
    "SCMP_ACT_KILL": 0x00000000, "SCMP_ACT_KILL_THREAD": 0x00000000,
    "SCMP_ACT_KILL_PROCESS": 0x80000000, "SCMP_ACT_TRAP": 0x00030000,
    "SCMP_ACT_ERRNO": 0x00050000, "SCMP_ACT_TRACE": 0x7FF00000,
    "SCMP_ACT_LOG": 0x7FFC0000, "SCMP_ACT_ALLOW": 0x7FFF0000,
    "SCMP_ACT_NOTIFY": 0x7FC00000,
}
# The actions that carry a return value (errnoRet / defaultErrnoRet).
SECCOMP_ERRNO_ACTIONS = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")
SECCOMP_OPERATORS = {
    "SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7,
}
SECCOMP_ARCHITECTURES = (
    "SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390", "SCMP_ARCH_S390X", "SCMP_ARCH_RISCV64",
)
SECCOMP_FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC": 1, "SECCOMP_FILTER_FLAG_LOG": 2,
                 "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4}

# config-linux.md "Default Devices": (path, major, minor) of the character devices the runtime
# MUST supply (mode 0666, owned by root); the cgroup device rules allow the same ones.
DEFAULT_DEVICES = (("/dev/null", 1, 3), ("/dev/zero", 1, 5), ("/dev/full", 1, 7),
                   ("/dev/random", 1, 8), ("/dev/urandom", 1, 9), ("/dev/tty", 5, 0))
# What a container always gets in the device cgroup: the default devices above, plus mknod of
# anything, /dev/ptmx and /dev/pts/*, as spec-shaped allow rules (appended after the config's).
DEFAULT_DEVICE_RULES = (
    {"allow": True, "type": "c", "access": "m"},
    {"allow": True, "type": "b", "access": "m"},
    *({"allow": True, "type": "c", "major": ma, "minor": mi, "access": "rwm"} for _, ma, mi in DEFAULT_DEVICES),
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},    # ptmx
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},              # pts/*
)
DEFAULT_DEVICE_SYMLINKS = (("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"),
                           ("/proc/self/fd/1", "/dev/stdout"), ("/proc/self/fd/2", "/dev/stderr"))
