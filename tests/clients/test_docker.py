"""dockerd (Debian's 20.10, with its own containerd and the runc v2 shim) started by the fixture
in a network namespace of its own, with the runtime under test as its default runtime (`oci`
added with --add-runtime, or the built-in `runc`), so that `docker build`'s RUN steps use it
too. Each scenario runs against both daemons, the same outcome asserted."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

from tests.clients.conftest import (
    DOCKER,
    DOCKER_IMAGE,
    INDEX_HTML,
    Docker,
    Terminal,
    cgroup_read,
    cpu_quota,
    memory_limit,
    out,
    pids_limit,
    run,
    runtime_status,
    wait_for,
)

# A shell that exits 0 on SIGTERM (as pid 1 it would otherwise ignore it).
TRAP_LOOP = "trap 'exit 0' TERM; while :; do sleep 0.2; done"


def name() -> str:
    return f"dk-{uuid.uuid4().hex[:10]}"


def started_by_runtime(docker: Docker, cname: str) -> dict:
    """The container runs, with the runtime under test: dockerd says which, and the runtime
    itself knows it under the root dockerd gave the shim."""
    info = docker.inspect(cname)
    assert info["State"]["Running"], info["State"]
    assert info["HostConfig"]["Runtime"] == docker.runtime_name
    assert runtime_status(docker.rt, docker.runtime_root(info["Id"]), info["Id"]) == "running"
    return info


def test_info_names_the_runtime_under_test(docker: Docker) -> None:
    info = json.loads(docker.ok("info", "--format", "{{json .}}"))
    assert info["DefaultRuntime"] == docker.runtime_name
    path = info["Runtimes"][docker.runtime_name].get("path", "")
    assert path in (docker.rt.binary, "runc"), info["Runtimes"]
    assert info["CgroupDriver"] == "cgroupfs"
    assert info["Driver"] == "overlay2"


def test_run_it_with_resize(docker: Docker) -> None:
    term = Terminal([DOCKER, "run", "--rm", "-it", DOCKER_IMAGE, "sh"], rows=31, cols=101,
                    env=docker.env)
    try:
        term.prompt()
        assert term.wait_size(31, 101) == (31, 101)
        term.send("tty\r")
        term.expect(r"/dev/pts/\d+")
        term.resize(45, 132)
        assert term.wait_size(45, 132) == (45, 132)
        term.send("exit 5\r")
        assert term.wait() == 5
    finally:
        term.close()


def test_run_detached_with_a_published_port(docker: Docker) -> None:
    cname = name()
    docker.ok("run", "-d", "--name", cname, "-p", "127.0.0.1:18080:80", DOCKER_IMAGE,
              "httpd", "-f", "-p", "80", "-h", "/www")
    info = started_by_runtime(docker, cname)
    ip = info["NetworkSettings"]["IPAddress"]
    assert ip.startswith("172.31.250."), ip
    fetch = ("import sys, urllib.request\n"
             "print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode(), end='')")

    def get(url: str) -> str:
        res = docker.in_netns("python3", "-c", fetch, url)
        return out(res) if res.returncode == 0 else ""

    # Through the published port (docker-proxy and iptables DNAT in the daemon's netns) ...
    assert wait_for("httpd through the published port", lambda: get("http://127.0.0.1:18080/"),
                    timeout=20) == INDEX_HTML
    # ... and straight to the container's address on the bridge.
    assert get(f"http://{ip}/") == INDEX_HTML
    docker.ok("rm", "-f", cname)


def test_bind_volumes(docker: Docker, tmp_path: Path) -> None:
    rw, ro = tmp_path / "rw", tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    (rw / "in").write_text("from the host\n")
    (ro / "f").write_text("read-only\n")
    res = docker("run", "--rm", "-v", f"{rw}:/data", "-v", f"{ro}:/ro:ro", DOCKER_IMAGE, "sh", "-c",
                 "cat /data/in; echo from the container > /data/out;"
                 "cat /ro/f; echo x > /ro/g 2>/dev/null && echo ro-writable || echo ro-refused")
    assert res.returncode == 0, res.stderr
    assert out(res) == "from the host\nread-only\nro-refused\n"
    assert (rw / "out").read_text() == "from the container\n"
    assert not (ro / "g").exists()


def test_exec_it_and_attach(docker: Docker) -> None:
    cname = name()
    docker.ok("run", "-dit", "--name", cname, DOCKER_IMAGE, "sh")
    started_by_runtime(docker, cname)
    term = Terminal([DOCKER, "exec", "-it", cname, "sh"], rows=29, cols=87, env=docker.env)
    try:
        term.prompt()
        assert term.wait_size(29, 87) == (29, 87)
        term.resize(35, 140)
        assert term.wait_size(35, 140) == (35, 140)
        term.send("exit 3\r")
        assert term.wait() == 3
    finally:
        term.close()
    # attach to the container's own shell: type a command, see its output, detach (^P^Q).
    term = Terminal([DOCKER, "attach", cname], rows=30, cols=90, env=docker.env)
    try:
        time.sleep(0.5)
        term.send("echo ATTACHED-$((40+2))\r")
        term.expect(r"ATTACHED-42")
        term.send("\x10\x11")
        term.expect("read escape sequence")
        assert term.wait(20) == 1  # the 20.10 client's status for a detach
    finally:
        term.close()
    assert docker.inspect(cname)["State"]["Running"]
    docker.ok("rm", "-f", cname)


def test_cp_both_ways(docker: Docker, tmp_path: Path) -> None:
    cname = name()
    docker.ok("run", "-d", "--name", cname, DOCKER_IMAGE, "sleep", "1000")
    src = tmp_path / "to-container"
    src.write_text("copied in\n")
    docker.ok("cp", str(src), f"{cname}:/tmp/copied")
    assert docker.ok("exec", cname, "cat", "/tmp/copied") == "copied in\n"
    docker.ok("exec", cname, "sh", "-c", "echo made inside > /tmp/made")
    docker.ok("cp", f"{cname}:/tmp/made", str(tmp_path / "from-container"))
    assert (tmp_path / "from-container").read_text() == "made inside\n"
    docker.ok("rm", "-f", cname)


def test_inspect_stop_start_restart(docker: Docker) -> None:
    cname = name()
    docker.ok("run", "-d", "--name", cname, DOCKER_IMAGE, "sh", "-c", TRAP_LOOP)
    info = started_by_runtime(docker, cname)
    pid1 = info["State"]["Pid"]
    assert pid1 > 0 and info["State"]["Status"] == "running"
    t0 = time.monotonic()
    docker.ok("stop", "-t", "20", cname)
    assert time.monotonic() - t0 < 15  # SIGTERM reached the trap: no wait for the SIGKILL
    st = docker.inspect(cname)["State"]
    assert (st["Status"], st["Running"], st["ExitCode"]) == ("exited", False, 0), st
    docker.ok("start", cname)
    info = started_by_runtime(docker, cname)
    pid2 = info["State"]["Pid"]
    assert pid2 > 0 and pid2 != pid1
    docker.ok("restart", "-t", "20", cname)
    info = started_by_runtime(docker, cname)
    assert info["State"]["Pid"] not in (0, pid2)
    docker.ok("rm", "-f", cname)


def test_update_limits_read_back_from_the_cgroup(docker: Docker) -> None:
    cname = name()
    docker.ok("run", "-d", "--name", cname, "--memory", "64m", "--memory-swap", "-1", DOCKER_IMAGE,
              "sleep", "1000")
    pid = docker.pid(cname)
    assert memory_limit(pid) == 64 * 1024 * 1024
    docker.ok("update", "--memory", "96m", "--memory-swap", "-1", "--cpus", "0.5",
              "--pids-limit", "50", cname)
    assert memory_limit(pid) == 96 * 1024 * 1024
    assert pids_limit(pid) == "50"
    quota, period = cpu_quota(pid)
    assert quota * 2 == period, (quota, period)
    host = docker.inspect(cname)["HostConfig"]
    assert (host["Memory"], host["NanoCpus"], host["PidsLimit"]) == (96 * 1024 * 1024, 500_000_000, 50)
    docker.ok("rm", "-f", cname)


def test_stats_no_stream(docker: Docker) -> None:
    cname = name()
    docker.ok("run", "-d", "--name", cname, "--memory", "64m", DOCKER_IMAGE, "sh", "-c",
              "sleep 1000 & sleep 1000")
    line = docker.ok("stats", "--no-stream", "--format", "{{json .}}", cname, timeout=60)
    stats = json.loads(line)
    assert stats["Name"] == cname
    assert stats["PIDs"] == "2", stats  # sh and its background sleep: sh execs the last one
    used, limit = (s.strip() for s in stats["MemUsage"].split("/"))
    assert limit == "64MiB", stats
    assert used not in ("0B", ""), stats
    docker.ok("rm", "-f", cname)


def test_build_with_a_run_step(docker: Docker, tmp_path: Path) -> None:
    """The classic builder (DOCKER_BUILDKIT=0) runs the RUN step in a container of the daemon's
    default runtime, the one under test."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "added").write_text("added file\n")
    (ctx / "Dockerfile").write_text(
        f"FROM {DOCKER_IMAGE}\n"
        "COPY added /added\n"
        "RUN echo built by RUN in $(hostname) > /built && cat /added >> /built && test -f /www/index.html\n"
        'CMD ["cat", "/built"]\n')
    tag = f"built:{uuid.uuid4().hex[:8]}"
    res = docker("build", "-t", tag, str(ctx), timeout=180)
    assert res.returncode == 0, out(res) + res.stderr.decode(errors="replace")
    try:
        got = docker.ok("run", "--rm", tag).splitlines()
        assert got[0].startswith("built by RUN in ") and got[1:] == ["added file"], got
    finally:
        docker("rmi", "-f", tag)


def test_nsenter_into_a_container(docker: Docker) -> None:
    cname = name()
    docker.ok("run", "-d", "--name", cname, "--hostname", "nsx", DOCKER_IMAGE, "sleep", "1000")
    info = started_by_runtime(docker, cname)
    pid = info["State"]["Pid"]
    ip = info["NetworkSettings"]["IPAddress"]
    res = run(["nsenter", "--target", str(pid), "-n", "-m", "-u", "-p", "-i", "sh", "-c",
               "hostname; tr '\\0' ' ' < /proc/1/cmdline; echo; ip -o -4 addr show eth0 | awk '{print $4}';"
               "ls /www"])
    assert res.returncode == 0, res.stderr
    assert out(res).splitlines() == ["nsx", "sleep 1000 ", f"{ip}/24", "index.html"]
    docker.ok("rm", "-f", cname)


def test_top_pause_unpause(docker: Docker) -> None:
    """`docker top` asks the runtime (`ps --format json`) for the container's pids; pause and
    unpause are the runtime's pause and resume (the freezer)."""
    cname = name()
    docker.ok("run", "-d", "--name", cname, DOCKER_IMAGE, "sh", "-c", "sleep 1000 & sleep 1001")
    started_by_runtime(docker, cname)
    top = docker.ok("top", cname, "-o", "pid,args")
    assert "sleep 1000" in top and "sleep 1001" in top, top
    docker.ok("pause", cname)
    st = docker.inspect(cname)["State"]
    assert (st["Status"], st["Paused"]) == ("paused", True), st
    pid = st["Pid"]
    assert cgroup_read(pid, "freezer", "freezer.state", "cgroup.freeze") in ("FROZEN", "1")
    docker.ok("unpause", cname)
    st = docker.inspect(cname)["State"]
    assert (st["Status"], st["Paused"]) == ("running", False), st
    assert cgroup_read(pid, "freezer", "freezer.state", "cgroup.freeze") in ("THAWED", "0")
    assert docker.ok("exec", cname, "echo", "after-unpause") == "after-unpause\n"
    docker.ok("rm", "-f", cname)
