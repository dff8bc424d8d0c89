"""runc flags that callers pass and expect honoured (issue 10 point 4), compared with runc."""

from __future__ import annotations

import os

from tests.conftest import Runtime


def test_ps_passes_its_arguments_to_ps(oci: Runtime, runc: Runtime, bundle) -> None:
    """`ps ID -o pid,comm`: the options after the ID are ps(1)'s, as with runc."""
    outputs = []
    for rt in (oci, runc):
        cid = rt.new_id()
        rt.run("run", "-d", "-b", str(bundle(["sleep", "1000"])), cid, check=True)
        res = rt.run("ps", cid, "-o", "pid,comm", check=True)
        lines = res.stdout.decode().split("\n")
        assert lines[0].split() == ["PID", "COMMAND"], res.stdout
        outputs.append([ln.split()[1] for ln in lines[1:] if ln.strip()])
    assert outputs[0] == outputs[1] == ["sleep"]


def test_error_wording_that_callers_match(oci: Runtime, bundle, tmp_path) -> None:
    """containerd's shim (checkKillError) and podman match runc's words in the error: "container
    not running", "does not exist", "already exists". Each is in our message and the JSON log."""
    cid = oci.new_id()
    b = bundle(["true"])
    oci.run("create", "-b", str(b), cid, check=True)
    oci.run("start", cid, check=True)
    assert oci.wait_status(cid, "stopped") == "stopped"
    for args, phrase in ((["kill", cid, "KILL"], b"container not running"),
                         (["exec", cid, "true"], b"container not running"),
                         (["state", "no-such-id"], b"does not exist"),
                         (["kill", "no-such-id"], b"does not exist"),
                         (["create", "-b", str(b), cid], b"already exists")):
        log = tmp_path / f"log-{args[0]}.json"
        res = oci.run(*args, log_json=log)
        assert res.returncode == 1 and phrase in res.stderr, (args, res.stderr)
        assert phrase in log.read_bytes(), (args, log.read_bytes())


def test_run_keep_leaves_the_stopped_container(oci: Runtime, runc: Runtime, bundle) -> None:
    b = bundle(["sh", "-c", "exit 3"])
    for rt in (oci, runc):
        cid = rt.new_id()
        assert rt.run("run", "--keep", "-b", str(b), cid).returncode == 3
        assert rt.state(cid)["status"] == "stopped"
        rt.run("delete", cid, check=True)
        assert rt.status(cid) == "absent"


def test_run_no_subreaper_returns_the_container_status(oci: Runtime, runc: Runtime, bundle) -> None:
    """run --no-subreaper still waits for the container and returns its status (the process
    that execs is the runtime's own child), and the container's orphans are not ours to reap."""
    b = bundle(["sh", "-c", "sleep 0.3; exit 3"])
    for rt in (oci, runc):
        res = rt.run("run", "--no-subreaper", "-b", str(b), rt.new_id())
        assert res.returncode == 3, (rt.binary, res)
    # Without the flag the runtime is a subreaper: the container's own exit status too.
    assert oci.run("run", "-b", str(b), oci.new_id()).returncode == 3


def test_exec_cgroup_joins_a_sub_cgroup(oci: Runtime, runc: Runtime, bundle) -> None:
    """exec --cgroup memory:sub (runc's [CONTROLLER:]PATH): that hierarchy only, an existing sub-cgroup."""
    from pathlib import Path

    for rt in (oci, runc):
        cid = rt.new_id()
        rt.run("run", "-d", "-b", str(bundle(["sleep", "1000"])), cid, check=True)
        pid = rt.state(cid)["pid"]
        paths = dict(line.split(":", 2)[1:] for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines())
        sub = Path("/sys/fs/cgroup/memory") / paths["memory"].lstrip("/") / "sub"
        sub.mkdir()
        try:
            res = rt.run("exec", "--cgroup", "memory:sub", cid, "cat", "/proc/self/cgroup", check=True)
            seen = dict(line.split(":", 2)[1:] for line in res.stdout.decode().splitlines())
            assert seen["memory"].endswith("/sub") and not seen["pids"].endswith("/sub"), seen
            assert rt.run("exec", "--cgroup", "memory:missing", cid, "true").returncode != 0
        finally:
            rt.run("delete", "-f", cid)
            if sub.exists():
                sub.rmdir()


def test_pidfd_socket_receives_a_pidfd_of_the_process(oci: Runtime, bundle, tmp_path) -> None:
    """--pidfd-socket (runc 1.2, for create/run and exec): one SCM_RIGHTS message with a pidfd."""
    import socket
    import struct
    import threading

    def serve(path, got: list) -> threading.Thread:
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(str(path))
        srv.listen(1)

        def accept() -> None:
            conn, _ = srv.accept()
            _, anc, _, _ = conn.recvmsg(64, socket.CMSG_SPACE(4))
            got.extend(struct.unpack("i", data[:4])[0] for _, _, data in anc)
            conn.close()
            srv.close()
        t = threading.Thread(target=accept, daemon=True)
        t.start()
        return t

    def pid_of(pidfd: int) -> int:
        with open(f"/proc/self/fdinfo/{pidfd}") as f:
            return int(next(ln for ln in f if ln.startswith("Pid:")).split()[1])

    cid = oci.new_id()
    got: list[int] = []
    t = serve(tmp_path / "init.sock", got)
    oci.run("run", "-d", "--pidfd-socket", str(tmp_path / "init.sock"), "-b", str(bundle(["sleep", "100"])), cid,
            check=True)
    t.join(10)
    assert len(got) == 1 and pid_of(got[0]) == oci.state(cid)["pid"]
    exec_got: list[int] = []
    t = serve(tmp_path / "exec.sock", exec_got)
    oci.run("exec", "-d", "--pidfd-socket", str(tmp_path / "exec.sock"), "--pid-file", str(tmp_path / "pid"), cid,
            "sleep", "50", check=True)
    t.join(10)
    assert len(exec_got) == 1 and pid_of(exec_got[0]) == int((tmp_path / "pid").read_text())
    for fd in got + exec_got:
        os.close(fd)
