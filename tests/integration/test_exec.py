"""`exec`: a second process inside a running container, in its namespaces and cgroup."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import Runtime

pytestmark = pytest.mark.cgroupv2


@pytest.fixture
def running(oci: Runtime, bundle) -> str:
    cid = oci.new_id()
    oci.run("run", "-d", "-b", str(bundle(["sleep", "1000"])), cid, check=True)
    return cid


def test_exec_joins_the_containers_namespaces_and_cgroup(oci: Runtime, running: str) -> None:
    init_pid = oci.state(running)["pid"]
    out = oci.run("exec", running, "sh", "-c", "hostname; cat /proc/1/cmdline; echo; cat /proc/self/cgroup",
                  check=True).stdout.decode().splitlines()
    assert out[0] == "busybox"
    assert out[1].split("\0")[0] == "sleep"  # pid 1 of the container's pid namespace
    assert sorted(out[2:]) == sorted(Path(f"/proc/{init_pid}/cgroup").read_text().splitlines())


def test_exec_exit_status_env_cwd_and_user(oci: Runtime, running: str) -> None:
    res = oci.run("exec", "--env", "FOO=bar", "--cwd", "/proc", "-u", "1000:1001", running,
                  "sh", "-c", "echo $FOO $(pwd) $(id -u) $(id -g); exit 9")
    assert res.returncode == 9
    assert res.stdout.decode().split() == ["bar", "/proc", "1000", "1001"]


def test_exec_with_process_json(oci: Runtime, running: str, tmp_path: Path) -> None:
    proc = {"args": ["sh", "-c", "echo from-json $X"], "cwd": "/", "env": ["X=1"],
            "user": {"uid": 0, "gid": 0}}
    (tmp_path / "p.json").write_text(json.dumps(proc))
    res = oci.run("exec", "-p", str(tmp_path / "p.json"), running, check=True)
    assert res.stdout == b"from-json 1\n"


def test_exec_bad_process_json_names_the_field(oci: Runtime, running: str, tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text(json.dumps({"args": "not-a-list", "cwd": "/"}))
    res = oci.run("exec", "-p", str(tmp_path / "p.json"), running)
    assert res.returncode == 1 and b"process.json: args" in res.stderr


def test_exec_tty_relays_a_pty(oci: Runtime, running: str) -> None:
    res = oci.run("exec", "-t", running, "tty", input=b"")
    assert res.returncode == 0
    assert res.stdout.decode().strip() == "/dev/pts/0"


def test_exec_detached_writes_pid_file(oci: Runtime, running: str, tmp_path: Path) -> None:
    pid_file = tmp_path / "exec.pid"
    oci.run("exec", "-d", "--pid-file", str(pid_file), running, "sleep", "100", check=True)
    pid = int(pid_file.read_text())
    assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0] == b"sleep"
    oci.run("delete", "-f", running, check=True)
    assert not os.path.exists(f"/proc/{pid}") or b") Z" in Path(f"/proc/{pid}/stat").read_bytes()


def test_exec_in_missing_or_stopped_container_fails(oci: Runtime, bundle) -> None:
    assert oci.run("exec", "nope", "true").returncode == 1
    cid = oci.new_id()
    oci.run("create", "-b", str(bundle(["true"])), cid, check=True)
    oci.run("start", cid, check=True)
    assert oci.wait_status(cid, "stopped") == "stopped"
    res = oci.run("exec", cid, "true")
    assert res.returncode == 1 and b"stopped" in res.stderr


def test_exec_of_missing_program_is_a_clear_error(oci: Runtime, running: str) -> None:
    res = oci.run("exec", running, "no-such-program")
    assert res.returncode == 1
    assert b"no-such-program" in res.stderr and b"Traceback" not in res.stderr
