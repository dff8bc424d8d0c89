"""A mistyped --root: `ociruntime --root /var delete -f lib` must not remove /var/lib, nor
`--root / delete -f bin` what the symbolic link /bin leads to.

runc removes <root>/<id> whole when it holds no state.json (it takes it for an aborted create).
A container's directory is never a symbolic link and only ever holds the runtime's own files
(state.OWN_FILES), so anything else is refused by every command before anything is read,
signalled, killed or removed; a directory of our own files only (a create killed early) is
still deleted."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Runtime, assert_clean_error, assert_json_error_log

REFUSAL = "is not a container's state directory"


def tree(path: Path) -> dict[str, bytes | None]:
    """Every entry under path with its content (None for a directory)."""
    return {str(p.relative_to(path)): (None if p.is_dir() else p.read_bytes()) for p in sorted(path.rglob("*"))}


def start_time(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen]:
    proc = subprocess.Popen(["sleep", "1000"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def precious(oci: Runtime, name: str, state_json: bytes | None = None) -> Path:
    """<root>/<name>: somebody's directory, with a file and a subdirectory of its own."""
    d = oci.root / name
    (d / "data").mkdir(parents=True)
    (d / "data" / "db").write_bytes(b"rows")
    (d / "README").write_bytes(b"keep me")
    if state_json is not None:
        (d / "state.json").write_bytes(state_json)
    return d


@pytest.mark.parametrize("force", [True, False], ids=["delete-f", "delete"])
def test_delete_refuses_a_directory_that_is_not_a_containers(oci: Runtime, tmp_path: Path, force: bool) -> None:
    d = precious(oci, "lib")
    before = tree(d)
    log = tmp_path / "log.json"
    res = oci.run("delete", *(["-f"] if force else []), "lib", log_json=log)
    assert_clean_error(res, str(d), REFUSAL, "'README'")
    assert REFUSAL in assert_json_error_log(log)["msg"]
    assert tree(d) == before, "nothing in it may be removed"


def test_a_state_json_among_foreign_files_kills_nothing(oci: Runtime, sleeper: subprocess.Popen) -> None:
    """A directory that happens to hold a state.json naming a live process (and a cgroup): its
    other files say it is not ours, so the process is not killed and nothing is removed."""
    doc = {"id": "app", "pid": sleeper.pid, "start_time": start_time(sleeper.pid), "bundle": "/",
           "cgroup": {"v1": {"memory": "/"}}}
    d = precious(oci, "app", json.dumps(doc).encode())
    before = tree(d)
    for args in (("delete", "-f", "app"), ("delete", "app"), ("kill", "app", "KILL")):
        res = oci.run(*args)
        assert res.returncode != 0, f"{args} succeeded on a foreign directory"
    assert sleeper.poll() is None, "delete killed a process named by a directory it did not make"
    assert tree(d) == before


@pytest.mark.parametrize("force", [True, False], ids=["delete-f", "delete"])
def test_delete_refuses_a_symbolic_link(oci: Runtime, bundle, force: bool) -> None:
    """<root>/alias -> <root>/real, a live container's directory, whose files are all ours: only
    the link itself says it is not a container's directory. Neither it nor the container goes."""
    real = oci.new_id()
    oci.run("create", "--bundle", str(bundle(["sleep", "60"])), real, check=True, stdin=subprocess.DEVNULL)
    (oci.root / "alias").symlink_to(real)
    res = oci.run("delete", *(["-f"] if force else []), "alias")
    assert_clean_error(res, str(oci.root / "alias"), REFUSAL, "symbolic link")
    assert_clean_error(oci.run("state", "alias"), "symbolic link")
    assert oci.status(real) == "created", "the container behind the link was deleted"
    assert (oci.root / "alias").is_symlink()


@pytest.mark.parametrize("planted", ["other-user", "others-may-write"])
def test_a_record_another_user_could_write_kills_nothing(oci: Runtime, sleeper: subprocess.Popen,
                                                         planted: str) -> None:
    """A state directory of our files only, but one another user made (or may rewrite): its
    record could name any process, so no command acts on it (a --root others may write into)."""
    doc = {"id": "app", "pid": sleeper.pid, "start_time": start_time(sleeper.pid), "bundle": "/"}
    d = oci.root / "app"
    d.mkdir(parents=True)
    (d / "state.json").write_text(json.dumps(doc))
    if planted == "other-user":
        os.chown(d, 65534, 65534)
        os.chown(d / "state.json", 65534, 65534)
        why = "belongs to uid 65534"
    else:
        d.chmod(0o777)
        why = "others may write into it"
    for args in (("delete", "-f", "app"), ("delete", "app"), ("kill", "app", "KILL"), ("state", "app")):
        assert_clean_error(oci.run(*args), str(d), REFUSAL, why)
    assert sleeper.poll() is None, "a command killed a process named by a record it did not write"
    assert (d / "state.json").exists()


def test_state_and_list_do_not_take_it_for_a_container_being_created(oci: Runtime) -> None:
    d = precious(oci, "lib")
    assert_clean_error(oci.run("state", "lib"), str(d), REFUSAL)
    listed = json.loads(oci.run("list", "--format", "json", check=True).stdout or b"null") or []
    assert [c["id"] for c in listed] == []


def test_a_directory_of_our_own_files_is_still_deleted(oci: Runtime) -> None:
    """The control: what a create killed before its first state write leaves (its fifo and a
    temporary state file) is a container being created, and delete -f removes it."""
    d = oci.root / "half"
    d.mkdir(parents=True)
    os.mkfifo(d / "exec.fifo")
    (d / f"state.json.{os.getpid()}.tmp").write_bytes(b"{")
    assert oci.state("half")["status"] == "creating"
    oci.run("delete", "-f", "half", check=True)
    assert not d.exists()
