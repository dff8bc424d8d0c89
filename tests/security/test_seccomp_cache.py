"""A compiled seccomp program the runtime keeps (linux/bpfcache.py, beside its package's bytecode)
is loaded into a container only from a file nobody but root could have written: a program
planted in an entry others may write is never what confines a container. The control shows the
planted program is well-formed (from a root-owned file it is used), so that only the ownership
and mode checks stop it. The cache is the install's: nothing of it is left under --root."""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ociruntime.config import Seccomp
from ociruntime.linux import seccomp
from tests.conftest import Runtime, runtime_package_dir

ALLOW_ALL = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_LOG"}]}
TRY_MKDIR = ["sh", "-c", "mkdir /dev/shm/x && echo made || echo refused"]


def profile() -> dict:
    """mkdir refused; and a rule no other test has (a personality value drawn now), so that its
    entry in the runtime's cache is this test's own."""
    return {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                         {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                          "args": [{"index": 0, "value": random.randrange(1 << 20, 1 << 31), "op": "SCMP_CMP_EQ"}]}]}


@pytest.fixture
def kept() -> Iterator[tuple[Path, list[Path]]]:
    """The runtime's cache directory, and a list the test adds the entries it made to: removed
    afterwards, with the directory's mode put back (the mode the runtime makes it with, 0755,
    if this test's create made it)."""
    cache = Path(runtime_package_dir()) / "__pycache__" / "seccomp"
    mode = cache.stat().st_mode & 0o7777 if cache.is_dir() else 0o755
    made: list[Path] = []
    try:
        yield cache, made
    finally:
        if cache.is_dir():
            cache.chmod(mode)
        for entry in made:
            entry.unlink(missing_ok=True)


def confined(oci: Runtime, bundle_dir: Path) -> str:
    res = oci.run("run", "-b", str(bundle_dir), oci.new_id(), check=True)
    return res.stdout.decode().strip()


def new_entry(cache: Path, before: set[str]) -> Path:
    (name,) = {p.name for p in cache.iterdir()} - before
    return cache / name


def plant(entry: Path) -> None:
    """Replace the entry's program with one that denies nothing, keeping what it says it was
    compiled from: to the runtime it is the profile's entry."""
    data = entry.read_bytes()
    head = data[:12 + int.from_bytes(data[8:12], "little")]  # MAGIC, the source's length, the source
    entry.write_bytes(head + seccomp.compile_filter(Seccomp(ALLOW_ALL)).bpf)


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
def test_a_planted_program_confines_no_container(oci: Runtime, bundle, kept, how: Callable[[Path], None]) -> None:
    cache, made = kept
    prof = profile()
    b = bundle(TRY_MKDIR, edit=lambda cfg: cfg["linux"].__setitem__("seccomp", prof))
    before = {p.name for p in cache.iterdir()} if cache.is_dir() else set()
    assert confined(oci, b) == "refused"  # compiled, and kept
    entry = new_entry(cache, before)
    made.append(entry)
    plant(entry)
    how(entry)
    assert confined(oci, b) == ("made" if how is _root_owned else "refused")


def test_exec_is_confined_by_the_kept_program_and_nothing_is_left_under_root(oci: Runtime, bundle, kept) -> None:
    cache, made = kept
    prof = profile()
    b = bundle(["sleep", "100"], edit=lambda cfg: cfg["linux"].__setitem__("seccomp", prof))
    before = {p.name for p in cache.iterdir()} if cache.is_dir() else set()
    cid = oci.new_id()
    oci.run("run", "-d", "-b", str(b), cid, check=True)
    made.append(new_entry(cache, before))
    res = oci.run("exec", cid, *TRY_MKDIR, check=True)
    assert res.stdout.decode().strip() == "refused"
    assert {p.name for p in cache.iterdir()} - before == {made[0].name}, "exec compiled a second program"
    oci.run("delete", "-f", cid, check=True)
    assert os.listdir(oci.root) == [], "the seccomp cache, or anything else, was left in the state root"
