"""linux.seccomp: the filter compiled by libseccomp in the runtime is in force in the container."""

from __future__ import annotations

import pytest

from tests.conftest import Runtime

pytestmark = pytest.mark.cgroupv2


def with_seccomp(profile: dict):
    def edit(cfg: dict) -> None:
        cfg["linux"]["seccomp"] = profile
    return edit


def test_errno_rule_blocks_the_syscall_with_that_errno(oci: Runtime, bundle) -> None:
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}
    b = bundle(["sh", "-c", "mkdir /dev/shm/x; echo rc=$?; echo ok > /dev/shm/f && cat /dev/shm/f"],
               edit=with_seccomp(profile))
    res = oci.run("run", "-b", str(b), oci.new_id(), check=True)
    out, err = res.stdout.decode(), res.stderr.decode()
    assert "rc=1" in out and "ok" in out
    assert "Permission denied" in err  # errno 13 = EACCES, not the default EPERM


def test_argument_conditions_and_repeated_syscalls(oci: Runtime, bundle) -> None:
    # The same syscall in several rules (as engines' default profiles do); only
    # personality(0xffffffff) -- a query -- is refused, other personality calls pass.
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
         "args": [{"index": 0, "value": 4294967295, "op": "SCMP_CMP_EQ"}]},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 97,
         "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_EQ"}]},
        {"names": ["socket", "getpid"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["no_such_syscall_anywhere"], "action": "SCMP_ACT_ERRNO"},
    ]}
    b = bundle(["sh", "-c", "echo alive; ls / >/dev/null && echo ls-ok"], edit=with_seccomp(profile))
    res = oci.run("run", "-b", str(b), oci.new_id(), check=True)
    assert res.stdout.decode().split() == ["alive", "ls-ok"]


def test_default_errno_with_allow_list_kills_nothing_it_allows(oci: Runtime, bundle) -> None:
    """A whitelist profile: everything busybox `true` needs is allowed, uname is not."""
    needed = ["execve", "brk", "arch_prctl", "set_tid_address", "exit_group", "exit", "mmap",
              "munmap", "mprotect", "rt_sigaction", "rt_sigprocmask", "getpid", "getuid", "geteuid",
              "write", "read", "close", "fstat", "newfstatat", "prlimit64", "getrandom", "rseq",
              "set_robust_list", "ioctl", "uname"]
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
               "syscalls": [{"names": needed, "action": "SCMP_ACT_ALLOW"}]}
    b = bundle(["echo", "whitelisted"], edit=with_seccomp(profile))
    res = oci.run("run", "-b", str(b), oci.new_id())
    assert res.returncode == 0, res.stderr
    assert res.stdout == b"whitelisted\n"


def test_unknown_action_is_refused_with_the_field_named(oci: Runtime, bundle) -> None:
    profile = {"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/tmp/nowhere"}
    cid = oci.new_id()
    res = oci.run("create", "-b", str(bundle(["true"], edit=with_seccomp(profile))), cid)
    assert res.returncode == 1
    assert b"linux.seccomp" in res.stderr
    assert not (oci.root / cid).exists()
