"""linux/bpfcache.py: a compiled seccomp program is kept (beside the package's bytecode) and read back only for
exactly the profile it was compiled from, and only from a file nobody else could have written.
These compile real programs with libseccomp (no root needed, but for the chown)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from ociruntime.config import Seccomp
from ociruntime.linux import bpfcache, seccomp

PROFILE = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
           "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                        {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                         "args": [{"index": 0, "value": 4294967295, "op": "SCMP_CMP_EQ"}]}]}
# A program that denies nothing: what someone able to write the cache would plant.
ALLOW_ALL = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_LOG"}]}


def spec(**changes: object) -> Seccomp:
    return Seccomp({**PROFILE, **changes})


def cache(base: Path) -> str:
    """A cache directory below base (the runtime's is bpfcache.directory())."""
    return str(base / "seccomp")


def entries(base: Path) -> dict[str, os.stat_result]:
    d = base / "seccomp"
    return {p.name: p.stat() for p in d.iterdir()} if d.is_dir() else {}


def test_a_kept_program_is_read_back_not_compiled_again(tmp_path: Path) -> None:
    first = bpfcache.filter_for(spec(), cache(tmp_path))
    kept = entries(tmp_path)
    assert len(kept) == 1
    (name, st), = kept.items()
    # Readable by all, as the package's bytecode: another user trusts a file of root's.
    assert st.st_mode & 0o777 == 0o644 and (tmp_path / "seccomp").stat().st_mode & 0o777 == 0o755
    again = bpfcache.filter_for(spec(), cache(tmp_path))
    assert again.bpf == first.bpf == seccomp.compile_filter(spec()).bpf
    # Read back, not compiled and written anew (a write renames a new file into place).
    assert entries(tmp_path)[name].st_ino == st.st_ino


@pytest.mark.parametrize("change", [
    {"defaultAction": "SCMP_ACT_ERRNO"},
    {"defaultErrnoRet": 38},
    {"architectures": ["SCMP_ARCH_X86_64"]},
    {"syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]},
    {"syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]},
    {"syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL"}]},
    {"syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                   "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}]},
    {"syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                   "args": [{"index": 0, "value": 4294967295, "op": "SCMP_CMP_NE"}]}]},
], ids=["default-action", "default-errno", "architectures", "errno", "names", "action", "arg-value", "arg-op"])
def test_another_profile_never_gets_the_kept_program(tmp_path: Path, change: dict) -> None:
    bpfcache.filter_for(spec(), cache(tmp_path))
    other = bpfcache.filter_for(spec(**change), cache(tmp_path))
    assert other.bpf == seccomp.compile_filter(spec(**change)).bpf
    assert len(entries(tmp_path)) == 2


def test_the_filter_keeps_the_profiles_flags_and_listener(tmp_path: Path) -> None:
    notify = {"listenerPath": "/run/listener.sock", "listenerMetadata": "m", "flags": ["SECCOMP_FILTER_FLAG_LOG"],
              "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}
    bpfcache.filter_for(spec(**notify), cache(tmp_path))
    kept = bpfcache.filter_for(spec(**notify), cache(tmp_path))
    assert (kept.flags, kept.listener_path, kept.listener_metadata) == (2, "/run/listener.sock", "m")


def forge(tmp_path: Path) -> Path:
    """The profile's entry, its program replaced by one that denies nothing: only who may have
    written the file (and the directory) tells it from the real one."""
    bpfcache.filter_for(spec(), cache(tmp_path))
    (entry,) = (tmp_path / "seccomp").iterdir()
    real = seccomp.compile_filter(spec()).bpf
    data = entry.read_bytes()
    assert data.endswith(real)
    entry.write_bytes(data[:-len(real)] + seccomp.compile_filter(Seccomp(ALLOW_ALL)).bpf)
    return entry


def test_a_forged_program_from_a_trusted_file_is_used(tmp_path: Path) -> None:
    """The control for the next test: the forgery is well-formed, so only trust can stop it."""
    forge(tmp_path)
    assert bpfcache.filter_for(spec(), cache(tmp_path)).bpf == seccomp.compile_filter(Seccomp(ALLOW_ALL)).bpf


def _group_writable(entry: Path) -> None:
    entry.chmod(0o620)


def _world_writable_dir(entry: Path) -> None:
    entry.parent.chmod(0o777)


def _someone_elses(entry: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("chown to another user needs root (the unit phase runs as root)")
    os.chown(entry, 65534, 65534)


def _a_symlink(entry: Path) -> None:
    target = entry.with_name("elsewhere")
    entry.rename(target)
    entry.symlink_to(target.name)


def _dir_a_symlink(entry: Path) -> None:
    real = entry.parent.with_name("planted")
    entry.parent.rename(real)
    entry.parent.symlink_to(real.name)


@pytest.mark.parametrize("untrust", [_group_writable, _world_writable_dir, _someone_elses, _a_symlink, _dir_a_symlink],
                         ids=["group-writable", "world-writable-dir", "someone-elses", "symlink", "dir-symlink"])
def test_an_entry_others_could_write_is_compiled_anew(tmp_path: Path, untrust) -> None:
    untrust(forge(tmp_path))
    assert bpfcache.filter_for(spec(), cache(tmp_path)).bpf == seccomp.compile_filter(spec()).bpf


@pytest.mark.parametrize("damage", [
    lambda head, prog: head + prog[:-3],  # not whole instructions
    lambda head, prog: head,  # no program
    lambda head, prog: b"ociBPF99" + head[8:] + prog,  # another format
    # compiled from another profile (one byte of what it was compiled from differs)
    lambda head, prog: head[:20] + bytes([head[20] ^ 1]) + head[21:] + prog,
], ids=["torn-instruction", "no-program", "format", "source"])
def test_a_damaged_entry_is_compiled_anew(tmp_path: Path, damage) -> None:
    bpfcache.filter_for(spec(), cache(tmp_path))
    (entry,) = (tmp_path / "seccomp").iterdir()
    real = seccomp.compile_filter(spec()).bpf
    head = entry.read_bytes()[:-len(real)]
    entry.write_bytes(damage(head, seccomp.compile_filter(Seccomp(ALLOW_ALL)).bpf))
    assert bpfcache.filter_for(spec(), cache(tmp_path)).bpf == real
    assert entry.read_bytes().endswith(real), "the damaged entry is replaced"


def test_a_cache_that_cannot_be_kept_costs_only_the_compile(tmp_path: Path) -> None:
    (tmp_path / "seccomp").write_bytes(b"not a directory")
    assert bpfcache.filter_for(spec(), cache(tmp_path)).bpf == seccomp.compile_filter(spec()).bpf
    assert bpfcache.filter_for(spec(), cache(tmp_path / "missing")).bpf == seccomp.compile_filter(spec()).bpf
    assert (tmp_path / "seccomp").read_bytes() == b"not a directory"


def test_the_cache_stays_bounded(tmp_path: Path) -> None:
    d = tmp_path / "seccomp"
    bpfcache.filter_for(spec(), cache(tmp_path))
    for i in range(bpfcache.MAX_ENTRIES):
        (d / f"old{i}").write_bytes(b"")
    bpfcache.filter_for(spec(defaultErrnoRet=38), cache(tmp_path))
    assert len(entries(tmp_path)) == 1


def test_the_entry_is_named_alike_where_the_interpreter_has_no_sha256_module(tmp_path: Path, monkeypatch) -> None:
    """3.12 has no `_sha256` (hashlib then): the same profile keeps the same name."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    bpfcache.filter_for(spec(), cache(tmp_path / "a"))
    monkeypatch.setitem(sys.modules, "_sha256", None)  # `import _sha256` raises ImportError
    bpfcache.filter_for(spec(), cache(tmp_path / "b"))
    assert len(entries(tmp_path / "a")) == 1
    assert list(entries(tmp_path / "a")) == list(entries(tmp_path / "b"))

