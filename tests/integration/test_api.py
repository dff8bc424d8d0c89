"""The Python API (`from ociruntime import Runtime`), driving real containers: the lifecycle,
exec and run, and each error type a caller can catch. The calls that wait in the foreground
(`run`, `exec`) make the caller a subreaper and forward its signals, so they run in a child
interpreter; the others run in this process, as a program using the library would.

A detached exec is left out here: its process is reparented to the host's init, and a killed
container init stays `running` (exiting) until that zombie is reaped, which the sandbox's PID 1
does only every few seconds; test_exec.py covers `exec -d`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ociruntime import Runtime
from ociruntime.errors import (
    CgroupError,
    ConfigError,
    ContainerExists,
    ContainerNotFound,
    HookError,
    InvalidState,
    NotRunning,
    OptionError,
    SetupError,
    UsageError,
)
from tests.conftest import leaks

ROOT = str(Path(__file__).resolve().parents[2])


def wait_for(c, status: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while (now := c.state()["status"]) != status and time.monotonic() < deadline:
        time.sleep(0.02)
    return now



def test_stats_and_events_are_the_records_the_cli_prints(oci, bundle) -> None:
    """stats() is the record `events --stats` prints; events() yields such records every
    interval and ends by itself once the container has stopped."""
    rt = Runtime(root=str(oci.root))
    cid = oci.new_id()
    c = rt.create(cid, bundle=str(bundle(["sleep", "100"])))
    try:
        c.start()
        record = c.stats()
        printed = json.loads(oci.run("events", "--stats", cid, check=True).stdout)
        assert (record["type"], record["id"]) == (printed["type"], printed["id"]) == ("stats", cid)
        assert record["data"].keys() == printed["data"].keys() >= {"cpu", "memory", "pids"}
        assert record["data"]["pids"]["current"] == printed["data"]["pids"]["current"] == 1
        assert "usage" in record["data"]["memory"] and "raw" in record["data"]["memory"]  # runc's names
        with pytest.raises(OptionError, match="interval"):
            c.events(interval=0)
        stream = c.events(interval=0.1)
        first = next(stream)
        assert (first["type"], first["id"], first["data"]["pids"]["current"]) == ("stats", cid, 1)
        c.kill("SIGKILL")
        assert wait_for(c, "stopped") == "stopped"
        deadline = time.monotonic() + 10
        for later in stream:
            assert later["type"] == "stats"
            assert time.monotonic() < deadline, "events() went on after the container stopped"
        with pytest.raises(NotRunning):
            c.stats()
    finally:
        c.delete(force=True)

def test_lifecycle(oci, bundle) -> None:
    rt = Runtime(root=str(oci.root))
    cid = oci.new_id()
    c = rt.create(cid, bundle=str(bundle(["sleep", "100"])))
    st = c.state()
    assert (st["id"], st["status"]) == (cid, "created")
    assert st["pid"] > 0 and os.path.exists(f"/proc/{st['pid']}")
    assert [(e["id"], e["status"], e["owner"]) for e in rt.list()] == [(cid, "created", "root")]
    c.start()
    assert c.state()["status"] == "running"
    assert st["pid"] in c.pids()
    c.pause()
    assert c.state()["status"] == "paused"
    c.resume()
    assert c.state()["status"] == "running"
    c.kill("SIGKILL")
    assert wait_for(c, "stopped") == "stopped"
    c.delete()
    assert rt.list() == []
    with pytest.raises(ContainerNotFound, match="does not exist"):
        c.state()


def test_create_takes_the_cli_options(oci, bundle, tmp_path: Path) -> None:
    rt = Runtime(root=str(oci.root))
    cid = oci.new_id()
    pid_file = tmp_path / "pid"
    c = rt.create(cid, bundle=str(bundle(["sleep", "100"])), pid_file=str(pid_file))
    assert int(pid_file.read_text()) == c.state()["pid"]
    c.delete(force=True)
    assert not (oci.root / cid).exists()


def test_run_and_exec_in_the_foreground_return_the_exit_status(oci, bundle) -> None:
    run_id, sleeper = oci.new_id(), oci.new_id()
    script = f"""
import sys
sys.path.insert(0, {ROOT!r})
from ociruntime import Runtime
rt = Runtime(root={str(oci.root)!r})
code = rt.run({run_id!r}, bundle={str(bundle(["sh", "-c", "exit 3"]))!r})
c = rt.create({sleeper!r}, bundle={str(bundle(["sleep", "100"]))!r})
c.start()
status = c.exec(["sh", "-c", "exit 7"])
doc = c.exec({{"args": ["sh", "-c", "exit 9"], "cwd": "/", "user": {{"uid": 0, "gid": 0}}}})
c.delete(force=True)
print(code, status, doc, [e["id"] for e in rt.list()])
"""
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split("\n")[-2] == "3 7 9 []"


def test_importing_the_package_does_not_load_the_api() -> None:
    probe = (f"import sys; sys.path.insert(0, {ROOT!r}); import ociruntime\n"
             "before = 'ociruntime.api' in sys.modules\n"
             "from ociruntime import Runtime\n"
             "print(before, Runtime.__module__)")
    res = subprocess.run([sys.executable, "-I", "-c", probe], capture_output=True, text=True, check=True)
    assert res.stdout.split() == ["False", "ociruntime.api"]


# --- each error a caller can catch, by type -------------------------------------------------
def test_not_found_and_exists(oci, bundle) -> None:
    rt = Runtime(root=str(oci.root))
    with pytest.raises(ContainerNotFound):
        rt.container(oci.new_id()).kill("TERM")
    cid = oci.new_id()
    b = bundle(["sleep", "100"])
    rt.create(cid, bundle=str(b))
    with pytest.raises(ContainerExists, match="already exists"):
        rt.create(cid, bundle=str(b))
    assert rt.container(cid).state()["status"] == "created"  # the first one is untouched


def test_invalid_state_and_not_running(oci, bundle) -> None:
    rt = Runtime(root=str(oci.root))
    c = rt.create(oci.new_id(), bundle=str(bundle(["sleep", "100"])))
    c.start()
    with pytest.raises(InvalidState, match="not created"):
        c.start()
    with pytest.raises(InvalidState, match="running"):
        c.delete()
    c.kill(9)
    assert wait_for(c, "stopped") == "stopped"
    with pytest.raises(NotRunning, match="container not running"):
        c.kill("TERM")
    c.delete()


def test_usage_errors(oci, bundle) -> None:
    rt = Runtime(root=str(oci.root))
    with pytest.raises(UsageError, match="invalid container ID"):
        rt.create("../escape", bundle=str(bundle()))
    with pytest.raises(UsageError, match="preserve_fds"):
        rt.create(oci.new_id(), bundle=str(bundle()), preserve_fds=-1)
    c = rt.create(oci.new_id(), bundle=str(bundle(["sleep", "100"])))
    with pytest.raises(UsageError, match="invalid signal"):
        c.kill("SIGNOPE")
    assert c.state()["status"] == "created"
    assert sorted(os.listdir(oci.root)) == [c.id]


def test_config_error_lists_every_problem(oci, bundle) -> None:
    rt = Runtime(root=str(oci.root))
    cid = oci.new_id()

    def bad(cfg: dict) -> None:
        cfg["linux"]["namespaces"] += [{"type": "pidx"}, {"type": "netx"}]

    b = bundle(edit=bad)
    with pytest.raises(ConfigError) as info:
        rt.create(cid, bundle=str(b))
    assert len(info.value.problems) == 2
    assert "pidx" in info.value.problems[0] and "netx" in info.value.problems[1]
    assert leaks(oci.root, cid, b) == []


def test_hook_error_is_a_setup_error(oci, bundle) -> None:
    rt = Runtime(root=str(oci.root))
    cid = oci.new_id()
    b = bundle(["sleep", "100"], edit=lambda cfg: cfg.setdefault("hooks", {}).update(
        createRuntime=[{"path": "/bin/false"}]))
    with pytest.raises(HookError, match=r"hook createRuntime\[0\] /bin/false failed") as info:
        rt.create(cid, bundle=str(b))
    assert isinstance(info.value, SetupError)
    assert leaks(oci.root, cid, b) == []


def test_failure_in_the_init_is_a_setup_error(oci, bundle) -> None:
    rt = Runtime(root=str(oci.root))
    cid = oci.new_id()
    b = bundle(["sleep", "100"], edit=lambda cfg: cfg["process"].update(cwd="/etc/passwd/x"))
    with pytest.raises(SetupError) as info:
        rt.create(cid, bundle=str(b))
    assert "/etc/passwd/x" in str(info.value)
    assert leaks(oci.root, cid, b) == []


def test_cgroup_error(oci, bundle) -> None:
    rt = Runtime(root=str(oci.root))
    cid = oci.new_id()
    b = bundle(["sleep", "100"], edit=lambda cfg: cfg["linux"].setdefault("resources", {}).update(
        cpu={"cpus": "4095"}))
    with pytest.raises(CgroupError, match=r"cpuset\.cpus"):
        rt.create(cid, bundle=str(b))
    assert leaks(oci.root, cid, b) == []



def test_the_callers_sigterm_handler_survives(oci, bundle) -> None:
    """While it holds a container's lock the runtime turns SIGTERM (delete --force) into an
    error; a program using the API gets its own handler back afterwards."""
    import signal

    def mine(_signum: int, _frame: object) -> None:
        pass

    before = signal.signal(signal.SIGTERM, mine)
    try:
        rt = Runtime(root=str(oci.root))
        c = rt.create(oci.new_id(), bundle=str(bundle(["sleep", "100"])))
        c.start()
        c.kill("KILL")
        c.delete(force=True)
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, before)
