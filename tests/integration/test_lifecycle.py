"""The normal lifecycle, observed from outside (state JSON, /proc) and from inside (what the
container prints about itself)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import OCIRUNTIME, Runtime, host_cgroup_dirs

pytestmark = [pytest.mark.lifecycle, pytest.mark.cgroupv2]


def test_run_echo_prints_and_exits_zero(oci: Runtime, bundle) -> None:
    res = oci.run("run", "-b", str(bundle(["echo", "hi"])), oci.new_id())
    assert res.returncode == 0, res.stderr
    assert res.stdout == b"hi\n"


def test_foreground_run_exits_with_container_status(oci: Runtime, bundle) -> None:
    res = oci.run("run", "--bundle", str(bundle(["sh", "-c", "exit 7"])), oci.new_id())
    assert res.returncode == 7


def test_foreground_run_reports_death_by_signal_as_128_plus_n(oci: Runtime, bundle) -> None:
    # (pid 1 of a pid namespace cannot SIGKILL itself: the signal comes from outside.)
    cid = oci.new_id()
    proc = subprocess.Popen(oci.cmd("run", "-b", str(bundle(["sleep", "100"])), cid))
    try:
        assert oci.wait_status(cid, "running") == "running"
        oci.run("kill", cid, "SIGKILL", check=True)
        assert proc.wait(10) == 128 + 9
    finally:
        proc.kill()
        proc.wait()


def test_foreground_run_forwards_signals_to_the_container(oci: Runtime, bundle) -> None:
    cid = oci.new_id()
    script = "trap 'echo got-term; exit 5' TERM; while :; do sleep 0.05; done"
    proc = subprocess.Popen(oci.cmd("run", "-b", str(bundle(["sh", "-c", script])), cid),
                            stdout=subprocess.PIPE)
    try:
        assert oci.wait_status(cid, "running") == "running"
        time.sleep(0.2)  # let sh install its trap
        proc.terminate()
        assert proc.wait(10) == 5
        assert proc.stdout is not None and proc.stdout.read() == b"got-term\n"
    finally:
        proc.kill()
        proc.wait()


def test_run_removes_the_container_afterwards(oci: Runtime, bundle) -> None:
    cid = oci.new_id()
    oci.run("run", "-b", str(bundle(["true"])), cid, check=True)
    assert not (oci.root / cid).exists()
    assert oci.run("state", cid).returncode == 1
    assert host_cgroup_dirs(cid) == []


def test_create_start_state_kill_delete(oci: Runtime, bundle, tmp_path: Path) -> None:
    cid = oci.new_id()
    b = bundle(["sleep", "1000"])
    pid_file = tmp_path / "pid"
    oci.run("create", "-b", str(b), "--pid-file", str(pid_file), cid, check=True)

    st = oci.state(cid)
    assert st["status"] == "created"
    assert st["id"] == cid and st["bundle"] == str(b) and st["rootfs"] == str(b / "rootfs")
    assert st["ociVersion"] == "1.3.0" and st["created"].endswith("Z") and "owner" in st
    pid = st["pid"]
    assert int(pid_file.read_text()) == pid
    # Blocked before the user program: the init has not exec'd sleep yet.
    assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0] != b"sleep"
    assert host_cgroup_dirs(cid), "create must put the container in its cgroup"

    oci.run("start", cid, check=True)
    st = oci.state(cid)
    assert st["status"] == "running" and st["pid"] == pid
    assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0] == b"sleep"

    oci.run("kill", cid, "KILL", check=True)
    assert oci.wait_status(cid, "stopped") == "stopped"
    oci.run("delete", cid, check=True)
    assert oci.run("state", cid).returncode == 1
    assert not (oci.root / cid).exists()
    assert host_cgroup_dirs(cid) == []


def test_the_init_is_in_the_containers_cgroup_in_every_hierarchy(oci: Runtime, runc: Runtime, bundle) -> None:
    """Every hierarchy the host mounts (v1 controllers, named ones, and cgroup2: the unified one
    of a hybrid host), as runc: the init's line names the container's own cgroup in each, not
    the runtime's. On v1 the runtime's child moves itself (cgroups.v1 self_join), on cgroup2
    it is born there (CLONE_INTO_CGROUP)."""
    own = Path("/proc/self/cgroup").read_text().splitlines()
    b = bundle(["sleep", "1000"])
    for rt in (oci, runc):
        cid = rt.new_id()
        rt.run("create", "-b", str(b), cid, check=True)
        try:
            lines = Path(f"/proc/{rt.state(cid)['pid']}/cgroup").read_text().splitlines()
            assert len(lines) == len(own), (rt.binary, lines)
            assert [ln for ln in lines if not ln.endswith("/" + cid)] == [], (rt.binary, lines, own)
        finally:
            rt.run("delete", "-f", cid)


def test_start_runs_the_program_once_it_has_exited_state_is_stopped(oci: Runtime, bundle) -> None:
    cid = oci.new_id()
    oci.run("create", "-b", str(bundle(["sh", "-c", "echo started"])), cid, check=True)
    res = oci.run("start", cid, check=True)
    assert res.returncode == 0
    assert oci.wait_status(cid, "stopped") == "stopped"


def test_status_comes_from_the_kernel_not_the_file(oci: Runtime, bundle) -> None:
    """A recorded pid whose start time differs (a recycled pid) must read as stopped."""
    cid = oci.new_id()
    oci.run("create", "-b", str(bundle(["sleep", "100"])), cid, check=True)
    state_file = oci.root / cid / "state.json"
    data = json.loads(state_file.read_text())
    real_pid = data["pid"]
    data["pid"] = os.getpid()  # alive, but not the container's init
    state_file.write_text(json.dumps(data))
    assert oci.state(cid)["status"] == "stopped"
    data["pid"] = real_pid
    state_file.write_text(json.dumps(data))
    assert oci.state(cid)["status"] == "created"


def test_delete_of_created_container_without_force_like_runc(oci: Runtime, bundle) -> None:
    cid = oci.new_id()
    oci.run("create", "-b", str(bundle(["sleep", "100"])), cid, check=True)
    pid = oci.state(cid)["pid"]
    oci.run("delete", cid, check=True)
    assert not Path(f"/proc/{pid}").exists() or b"Z" in Path(f"/proc/{pid}/stat").read_bytes().split(b")")[1][:3]
    assert host_cgroup_dirs(cid) == []


def test_delete_force_kills_a_running_container(oci: Runtime, bundle) -> None:
    cid = oci.new_id()
    oci.run("run", "-d", "-b", str(bundle(["sleep", "100"])), cid, check=True)
    assert oci.state(cid)["status"] == "running"
    assert oci.run("delete", cid).returncode == 1
    started = time.monotonic()
    oci.run("delete", "--force", cid, check=True)
    assert time.monotonic() - started < 2, "delete -f waits on a pidfd, not in 100 ms steps"
    assert oci.run("state", cid).returncode == 1


def test_list_shows_containers_in_table_json_and_quiet(oci: Runtime, bundle) -> None:
    a, b = oci.new_id("a"), oci.new_id("b")
    for cid in (a, b):
        oci.run("create", "-b", str(bundle(["sleep", "100"])), cid, check=True)
    table = oci.run("list", check=True).stdout.decode().splitlines()
    assert table[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert {line.split()[0] for line in table[1:]} == {a, b}
    assert all(line.split()[2] == "created" and line.split()[5] == "root" for line in table[1:])
    docs = json.loads(oci.run("list", "-f", "json", check=True).stdout)
    assert {d["id"] for d in docs} == {a, b}
    assert oci.run("list", "-q", check=True).stdout.decode().split() == sorted([a, b])


def test_concurrent_commands_on_one_id_never_corrupt_state(oci: Runtime, bundle) -> None:
    cid = oci.new_id()
    oci.run("create", "-b", str(bundle(["sleep", "100"])), cid, check=True)
    results: list[int] = []

    def hammer() -> None:
        for _ in range(5):
            results.append(oci.run("state", cid).returncode)
            results.append(oci.run("kill", cid, "0").returncode)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(results) == {0}
    assert oci.state(cid)["status"] == "created"


def test_two_creates_of_one_id_race_exactly_one_wins(oci: Runtime, bundle) -> None:
    cid = oci.new_id()
    b = bundle(["sleep", "100"])
    procs = [subprocess.Popen(oci.cmd("create", "-b", str(b), cid), stderr=subprocess.PIPE)
             for _ in range(2)]
    codes = sorted(p.wait(30) for p in procs)
    assert codes == [0, 1]
    assert oci.state(cid)["status"] == "created"


def test_python_m_entry_point_and_version(tmp_path: Path) -> None:
    out = subprocess.run([OCIRUNTIME, "--version"], capture_output=True, check=True).stdout.decode()
    assert out.startswith("ociruntime version ") and "\nspec: 1.3.0\n" in out
    py = Path(sys.executable)
    res = subprocess.run([str(py), "-m", "ociruntime", "--version"], capture_output=True, cwd=tmp_path)
    assert res.returncode == 0 and res.stdout.decode() == out


def test_inside_view_of_default_bundle(oci: Runtime, bundle) -> None:
    script = ("hostname; cat /proc/self/status | grep -E '^(CapEff|NoNewPrivs)'; "
              "touch /x 2>/dev/null && echo rw || echo ro; cat /proc/self/mountinfo; echo pid=$$")
    res = oci.run("run", "-b", str(bundle(["sh", "-c", script])), oci.new_id(), check=True)
    out = res.stdout.decode()
    lines = out.splitlines()
    assert lines[0] == "busybox"
    assert "CapEff:\t0000000020000420" in out  # AUDIT_WRITE, KILL, NET_BIND_SERVICE
    assert "NoNewPrivs:\t1" in out
    assert "ro" in lines  # root.readonly
    assert "pid=1" in lines
    mounts = {line.split()[4]: line for line in lines if line.count(" - ") == 1}
    for dest in ("/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/proc/sys"):
        assert dest in mounts, dest
    assert " ro," in mounts["/proc/sys"] or mounts["/proc/sys"].split()[5].startswith("ro")


@pytest.mark.parametrize("flag", [[], ["--no-new-keyring"]])
def test_session_keyring_is_the_containers_own_unless_no_new_keyring(oci: Runtime, bundle, flag) -> None:
    def unmask_keys(cfg: dict) -> None:
        cfg["linux"]["maskedPaths"].remove("/proc/keys")

    cid = oci.new_id()
    b = bundle(["cat", "/proc/keys"], edit=unmask_keys)
    out = oci.run("run", *flag, "-b", str(b), cid, check=True).stdout.decode()
    assert (f"_ses.{cid}" in out) == (not flag), out


def test_foreground_run_with_terminal_relays_the_pty(oci: Runtime, bundle) -> None:
    """terminal: true without --console-socket: like runc, `run` itself holds the pty master."""
    def tty(cfg: dict) -> None:
        cfg["process"]["terminal"] = True

    b = bundle(["sh", "-c", "tty; test -t 0 && echo stdin-is-a-tty; exit 3"], edit=tty)
    res = oci.run("run", "-b", str(b), oci.new_id(), input=b"")
    assert res.returncode == 3, res.stderr
    lines = res.stdout.decode().replace("\r", "").splitlines()
    assert lines[:2] == ["/dev/pts/0", "stdin-is-a-tty"]


def test_create_with_terminal_needs_a_console_socket(oci: Runtime, bundle) -> None:
    def tty(cfg: dict) -> None:
        cfg["process"]["terminal"] = True

    cid = oci.new_id()
    res = oci.run("create", "-b", str(bundle(["true"], edit=tty)), cid)
    assert res.returncode == 1 and b"--console-socket" in res.stderr
    assert not (oci.root / cid).exists()
