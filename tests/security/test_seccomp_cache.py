"""A compiled seccomp program kept under --root (linux/bpfcache.py) is loaded into a container only
from a file nobody but root could have written: a program planted in an entry others may write
is never what confines a container. The control shows the planted program is well-formed (from
a root-owned file it is used), so that only the ownership and mode checks stop it."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from ociruntime.config import Seccomp
from ociruntime.linux import bpfcache, seccomp
from tests.conftest import Runtime

PROFILE = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
           "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}
ALLOW_ALL = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_LOG"}]}
TRY_MKDIR = ["sh", "-c", "mkdir /dev/shm/x && echo made || echo refused"]


def confined(oci: Runtime, bundle_dir: Path) -> str:
    res = oci.run("run", "-b", str(bundle_dir), oci.new_id(), check=True)
    return res.stdout.decode().strip()


def plant(oci: Runtime) -> Path:
    """Replace the program of the (only) kept entry with one that denies nothing, keeping what
    it says it was compiled from: to the runtime it is the profile's entry."""
    (entry,) = (oci.root / bpfcache.CACHE_DIR).iterdir()
    data = entry.read_bytes()
    head = data[:12 + int.from_bytes(data[8:12], "little")]  # MAGIC, the source's length, the source
    entry.write_bytes(head + seccomp.compile_filter(Seccomp(ALLOW_ALL)).bpf)
    return entry


def _root_owned(entry: Path) -> None:
    pass


def _world_writable(entry: Path) -> None:
    entry.chmod(0o666)


def _someone_elses(entry: Path) -> None:
    os.chown(entry, 65534, 65534)


def _in_a_directory_others_write(entry: Path) -> None:
    entry.parent.chmod(0o777)


@pytest.mark.parametrize("how", [_root_owned, _world_writable, _someone_elses, _in_a_directory_others_write],
                         ids=["control-root-owned", "world-writable", "someone-elses", "directory-others-write"])
def test_a_planted_program_confines_no_container(oci: Runtime, bundle, how: Callable[[Path], None]) -> None:
    b = bundle(TRY_MKDIR, edit=lambda cfg: cfg["linux"].__setitem__("seccomp", PROFILE))
    assert confined(oci, b) == "refused"  # compiled, and kept
    how(plant(oci))
    want = "made" if how is _root_owned else "refused"
    assert confined(oci, b) == want


def test_exec_is_confined_by_the_kept_program(oci: Runtime, bundle) -> None:
    b = bundle(["sleep", "100"], edit=lambda cfg: cfg["linux"].__setitem__("seccomp", PROFILE))
    cid = oci.new_id()
    oci.run("run", "-d", "-b", str(b), cid, check=True)
    assert len(list((oci.root / bpfcache.CACHE_DIR).iterdir())) == 1
    res = oci.run("exec", cid, *TRY_MKDIR, check=True)
    assert res.stdout.decode().strip() == "refused"
    assert len(list((oci.root / bpfcache.CACHE_DIR).iterdir())) == 1, "exec compiled a second program"
