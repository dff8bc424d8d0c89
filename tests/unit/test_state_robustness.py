"""The state directory under damage and contention, without containers (issue 18)."""

from __future__ import annotations

import json
import os
import posix
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ociruntime import jsonio, state
from ociruntime.errors import ContainerNotFound, OciError

ROOT = str(Path(__file__).resolve().parents[2])


def make(root: Path, cid: str, doc: object | bytes) -> state.StateDir:
    (root / cid).mkdir(parents=True)
    raw = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    (root / cid / "state.json").write_bytes(raw)
    return state.StateDir(str(root), cid)


@pytest.mark.parametrize(("doc", "problem"), [
    ({"pid": "abc"}, "pid is 'abc', not a number"),
    ({"pid": True}, "pid is True, not a number"),
    ({"cgroup": 5}, "cgroup is 5, not an object"),
    ({"bundle": 7}, "bundle is 7, not a string"),
    ({"hooks": {"poststop": [{"path": 1}]}}, "hooks is not a list of hooks per kind"),
    ([1], "not a JSON object"),
])
def test_a_field_of_the_wrong_type_is_named(tmp_path: Path, doc: object, problem: str) -> None:
    sd = make(tmp_path, "c", doc)
    with pytest.raises(OciError) as err:
        sd.load()
    assert str(err.value) == f"{tmp_path}/c/state.json: corrupt state file: {problem}"


@pytest.mark.parametrize("raw", [b"", b'{"pid": 1', b'{"bundle": "\xff"}', b'{"bundle": "\\ud800"}'])
def test_unparseable_state_names_the_file(tmp_path: Path, raw: bytes) -> None:
    with pytest.raises(OciError, match=f"^{tmp_path}/c/state.json: corrupt state file: "):
        make(tmp_path, "c", raw).load()


def test_salvage_keeps_what_can_be_trusted(tmp_path: Path) -> None:
    sd = make(tmp_path, "c", b'{"pid": 12, "start_time": 34, "bundle": "\\ud800x", "cgroup": {"a": 1}}')
    data, problem = sd.load_salvage()
    assert data == {"pid": 12, "start_time": 34, "cgroup": {"a": 1}}
    assert problem and "surrogate" in problem
    sd = make(tmp_path, "d", {"pid": "abc", "start_time": 34, "cgroup": {"a": 1}})
    data, problem = sd.load_salvage()
    assert data == {"cgroup": {"a": 1}}, "a pid without its start time is never trusted"
    assert problem and "its init is not signalled by pid" in problem
    data, problem = make(tmp_path, "e", b"{").load_salvage()
    assert data == {} and problem and "its init and its cgroups cannot be identified" in problem


def test_a_fifo_for_a_state_file_does_not_block_salvage(tmp_path: Path) -> None:
    """delete -f never hangs: a FIFO named state.json (no writer) reads as empty, not forever."""
    import signal

    (tmp_path / "c").mkdir()
    os.mkfifo(tmp_path / "c" / "state.json")
    sd = state.StateDir.open(str(tmp_path), "c")
    signal.signal(signal.SIGALRM, lambda *_: pytest.fail("load_salvage blocked on the FIFO"))
    signal.alarm(5)
    try:
        data, problem = sd.load_salvage()
    finally:
        signal.alarm(0)
        sd.unlock()
    assert data == {} and problem and "corrupt state file" in problem


def test_a_directory_without_state_json_is_a_container_being_created(tmp_path: Path) -> None:
    (tmp_path / "c").mkdir()
    sd = state.StateDir.open(str(tmp_path), "c")
    try:
        assert sd.load() == {"id": "c", "creating": True}
        assert state.status_of(sd, sd.load()) == "creating"
    finally:
        sd.unlock()
    with pytest.raises(ContainerNotFound):
        state.StateDir.open(str(tmp_path), "missing")


def test_a_directory_replaced_under_its_holder_is_not_taken_for_the_new_one(tmp_path: Path) -> None:
    """The holder's directory removed (delete -f) and the ID made again (a new create): what the
    holder reads is its own directory's, gone; never the new one's `creating`."""
    (tmp_path / "c").mkdir()
    sd = state.StateDir.open(str(tmp_path), "c")
    try:
        (tmp_path / "c").rename(tmp_path / "old")
        (tmp_path / "c").mkdir()
        with pytest.raises(ContainerNotFound):
            sd.load()
    finally:
        sd.unlock()


def test_remove_unlinks_state_json_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sd = make(tmp_path, "c", {"pid": 1})
    for name in ("exec.fifo", "state.json.77.tmp", "criu.pid", "config.json"):
        (tmp_path / "c" / name).write_text("x")
    order: list[str] = []
    real = posix.unlink  # what state.py calls (see ociruntime/lean.py)
    monkeypatch.setattr(posix, "unlink", lambda p, *a, **k: (order.append(str(p)), real(p, *a, **k))[1])
    sd.remove()
    assert order[-1].endswith("state.json") and len(order) == 5
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize(("name", "own"), [
    ("state.json", True), ("config.json", True), ("exec.fifo", True), ("criu.pid", True),
    ("config.json.4242.tmp", True), ("state.json..tmp", False), ("state.json.x1.tmp", False),
    ("notes.txt", False), ("state.json.bak", False), (".tmp", False), ("lib", False),
])
def test_only_the_runtimes_own_names_are_its_files(name: str, own: bool) -> None:
    assert state.is_own_file(name) is own


def test_a_directory_holding_anything_else_is_not_a_container(tmp_path: Path) -> None:
    """A mistyped --root: a stateless directory with files of its own is not a container being
    created, and remove() unlinks none of them."""
    (tmp_path / "c" / "data").mkdir(parents=True)
    (tmp_path / "c" / "data" / "keep").write_text("x")
    (tmp_path / "c" / "exec.fifo").write_text("x")
    sd = state.StateDir.open(str(tmp_path), "c")
    try:
        with pytest.raises(OciError, match=r"/c is not a container's state directory: it holds 'data'"):
            sd.load()
        with pytest.raises(OciError, match="it holds 'data'"):
            sd.check_own()
        with pytest.raises(OciError, match="it holds 'data'"):
            sd.remove()
    finally:
        sd.unlock()
    assert (tmp_path / "c" / "data" / "keep").read_text() == "x"
    assert (tmp_path / "c" / "exec.fifo").exists(), "not even the names it shares with ours"


def test_write_atomic_leaves_no_temporary_file_on_failure(tmp_path: Path) -> None:
    (tmp_path / "target").mkdir()  # rename of a file over a directory fails (EISDIR)
    with pytest.raises(OSError):
        state.write_atomic(str(tmp_path / "target"), b"x")
    assert sorted(os.listdir(tmp_path)) == ["target"]


def test_writes_go_through_the_locked_directory(tmp_path: Path) -> None:
    """A directory removed and made again under the same name is not the one we write into."""
    sd = state.StateDir.create(str(tmp_path), "c")
    try:
        sd.save({"pid": 1})
        os.rename(tmp_path / "c", tmp_path / "old")
        (tmp_path / "c").mkdir()
        assert sd.removed()
        sd.save({"pid": 2})
        assert not (tmp_path / "c" / "state.json").exists()
        assert json.loads((tmp_path / "old" / "state.json").read_text()) == {"pid": 2}
    finally:
        sd.unlock()


HOLDER = """
import fcntl, os, sys, time
sys.path.insert(0, {root!r})
from ociruntime import state
sd = state.StateDir.open({path!r}, "c")
print("locked", flush=True)
try:
    while True:
        time.sleep(0.01)
except state.Interrupted as e:
    print("interrupted:", e, flush=True)
    time.sleep({linger})
"""


@pytest.mark.parametrize("linger", [0.0, 30.0])
def test_open_forced_does_not_wait_for_the_lock_holder(tmp_path: Path, linger: float) -> None:
    """The holder is told to stop (SIGTERM becomes Interrupted, and it unwinds), or killed when
    it does not let go: either way the lock is ours within a second."""
    make(tmp_path, "c", {"pid": 0})
    holder = subprocess.Popen([sys.executable, "-c", HOLDER.format(root=ROOT, path=str(tmp_path),
                                                                    linger=linger)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        started = time.monotonic()
        sd = state.StateDir.open_forced(str(tmp_path), "c")
        elapsed = time.monotonic() - started
        assert sd.locked and elapsed < 1.0, elapsed
        sd.unlock()
        out = holder.communicate(timeout=5)[0]
        assert "interrupted: container 'c': interrupted by SIGTERM" in out
        assert holder.returncode == (0 if linger == 0 else -9)
    finally:
        holder.kill()
        holder.wait()


def test_lone_surrogates_are_refused_but_pairs_accepted() -> None:
    assert jsonio.loads('["\\ud83d\\ude00"]') == ["\U0001f600"]
    with pytest.raises(ValueError, match="lone surrogate"):
        jsonio.loads('{"k": {"\\udfff": 1}}')
    assert jsonio.loads(b'["\xff"]', lenient=True) == ["\ufffd"]


def test_a_process_is_read_from_proc_whatever_its_name(tmp_path: Path) -> None:
    """/proc/PID/stat's second field is the command's name, which may hold spaces and
    parentheses: the fields after it are found from the last ')'; a reaped process is gone."""
    odd = tmp_path / "a) b (c) d"
    odd.write_bytes(Path("/bin/sleep").read_bytes())
    odd.chmod(0o755)
    proc = subprocess.Popen([str(odd), "30"])
    try:
        deadline = time.monotonic() + 5
        while state.process_state(proc.pid) != "S" and time.monotonic() < deadline:
            time.sleep(0.01)  # forked, then exec'ing: its name is the child's until execve
        assert Path(f"/proc/{proc.pid}/comm").read_text() == "a) b (c) d\n"
        assert state.process_state(proc.pid) == "S"
        want = int(Path(f"/proc/{proc.pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[19])
        assert state.process_start_time(proc.pid) == want
    finally:
        proc.kill()
        proc.wait()
    assert state.process_start_time(proc.pid) is None and state.process_state(proc.pid) == ""


class Exchanges:
    """The real kernel's exchange (renameat2 RENAME_EXCHANGE), recorded; or refused with an
    errno, as a filesystem without it (EINVAL) would."""

    def __init__(self, refuse: int = 0) -> None:
        from ociruntime.linux.kernel import Kernel

        self.real, self.refuse, self.calls = Kernel(), refuse, []

    def exchange(self, dir_fd: int, a: str, b: str, what: str) -> None:
        from ociruntime.errors import SyscallError

        self.calls.append((a, b))
        if self.refuse:
            raise SyscallError(self.refuse, what)
        self.real.exchange(dir_fd, a, b, what)


@pytest.mark.parametrize("refuse", [0, 22], ids=["exchanged", "EINVAL: renamed"])
def test_an_update_of_the_state_replaces_it_whole_and_leaves_nothing_else(tmp_path: Path, refuse: int) -> None:
    """create's later steps and exec swap the new state.json with the old one (on ext4 a rename
    over it would write the new file's blocks at once, and delete would free them); where the
    kernel or filesystem cannot, a rename. Either way: the new document, no temporary file."""
    from ociruntime.linux import kernel

    sd = state.StateDir.create(str(tmp_path), "c1")
    fake = Exchanges(refuse)
    prev = kernel.use(fake)
    try:
        sd.save({"id": "c1", "pid": 1, "creating": True})
        old = os.stat(tmp_path / "c1" / "state.json").st_ino
        sd.update({"id": "c1", "pid": 2})
    finally:
        kernel.use(prev)
        sd.unlock()
    assert fake.calls == [(f"state.json.{os.getpid()}.tmp", "state.json")]
    assert json.loads((tmp_path / "c1" / "state.json").read_bytes()) == {"id": "c1", "pid": 2}
    assert os.stat(tmp_path / "c1" / "state.json").st_ino != old
    assert sorted(os.listdir(tmp_path / "c1")) == ["state.json"]
