"""podman (Debian's 4.3, cgroupfs manager, private --root/--runroot) with `--runtime`: each
scenario with ociruntime and with runc, the same outcome asserted."""

from __future__ import annotations

import uuid

from tests.clients.conftest import (
    INDEX_HTML,
    PODMAN_IMAGE,
    Podman,
    RuntimeUnderTest,
    Terminal,
    memory_limit,
    out,
    pids_limit,
    runtime_status,
    wait_for,
)


def name() -> str:
    return f"pm-{uuid.uuid4().hex[:10]}"


def test_run_rm_output_and_exit_status(podman: Podman, runtime: RuntimeUnderTest) -> None:
    cname = name()
    res = podman(*podman.run_args(runtime, "--rm", "--name", cname), PODMAN_IMAGE,
                 "sh", "-c", "echo hello from podman; id -u; exit 3")
    assert res.returncode == 3, res.stderr
    assert out(res) == "hello from podman\n0\n", res.stderr
    # --rm: nothing left.
    assert podman("container", "exists", cname).returncode == 1


def test_run_read_only_with_tmpcopyup(podman: Podman, runtime: RuntimeUnderTest) -> None:
    """--read-only: the root is read-only, and podman's tmpfs on /tmp, /var/tmp and /run have
    `tmpcopyup`: the image's files there are copied into the tmpfs (runc does it)."""
    res = podman(*podman.run_args(runtime, "--rm", "--read-only"), PODMAN_IMAGE, "sh", "-c",
                 "touch /rootfile 2>/dev/null && echo root-writable || echo root-readonly;"
                 "cat /tmp/from-image /var/tmp/from-image;"
                 "echo x > /tmp/new && echo tmp-writable;"
                 "grep -E ' /(tmp|var/tmp|run) ' /proc/mounts | cut -d' ' -f2,3 | sort")
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    assert out(res).splitlines() == [
        "root-readonly",
        "tmp content of the image", "var/tmp content of the image",
        "tmp-writable",
        "/run tmpfs", "/tmp tmpfs", "/var/tmp tmpfs",
    ], res.stderr


def test_run_tmpfs_option(podman: Podman, runtime: RuntimeUnderTest) -> None:
    """--tmpfs (podman adds tmpcopyup): on a directory the image lacks, the tmpfs root has the
    mode= given; on one the image has (/home, 0755), it keeps the covered directory's mode,
    whatever mode= said (runc's rule), and starts with a copy of its content."""
    res = podman(*podman.run_args(runtime, "--rm", "--tmpfs", "/scratch:rw,size=2m,mode=1777",
                                  "--tmpfs", "/www:mode=1777"),
                 PODMAN_IMAGE, "sh", "-c",
                 "grep ' /scratch ' /proc/mounts | cut -d' ' -f3; stat -c %a /scratch;"
                 "df -k /scratch | tail -n 1 | awk '{print $2}';"
                 "echo hi > /scratch/f && cat /scratch/f;"
                 "grep ' /www ' /proc/mounts | cut -d' ' -f3; stat -c %a /www; cat /www/index.html")
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    assert out(res).splitlines() == ["tmpfs", "1777", "2048", "hi",
                                     "tmpfs", "755", INDEX_HTML.strip()], res.stderr


def test_run_it_with_resize(podman: Podman, runtime: RuntimeUnderTest) -> None:
    """-it on a real pty: the container's terminal has the size of ours, and follows a resize
    (a new window size, then SIGWINCH)."""
    term = Terminal(podman.cmd(*podman.run_args(runtime, "--rm", "-it"), PODMAN_IMAGE, "sh"),
                    rows=33, cols=111, env=podman.env)
    try:
        term.prompt()
        assert term.wait_size(33, 111) == (33, 111)
        term.send("tty\r")
        term.expect(r"/dev/pts/\d+")
        term.resize(41, 97)
        assert term.wait_size(41, 97) == (41, 97)
        term.resize(20, 60)
        assert term.wait_size(20, 60) == (20, 60)
        term.send("exit 5\r")
        assert term.wait() == 5
    finally:
        term.close()


def test_memory_and_pids_limits_in_the_cgroup(podman: Podman, runtime: RuntimeUnderTest) -> None:
    cname = name()
    res = podman(*podman.run_args(runtime, "-d", "--name", cname, "--memory", "48m",
                                  "--pids-limit", "77"), PODMAN_IMAGE, "sleep", "1000")
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    try:
        cid = out(res).strip()
        pid = int(out(podman("inspect", "--format", "{{.State.Pid}}", cname)).strip())
        assert pid > 0
        # The runtime under test made it: it knows the container (podman uses its default root).
        assert runtime_status(runtime, None, cid) == "running"
        assert memory_limit(pid) == 48 * 1024 * 1024
        assert pids_limit(pid) == "77"
        # And a fork bomb stops at the limit: the 78th process cannot be made.
        ex = podman("exec", cname, "sh", "-c",
                    "for i in $(seq 1 100); do sleep 30 & done 2>/dev/null; sleep 0.5;"
                    "ls /proc | grep -c '^[0-9]'")
        assert int(out(ex).strip() or 0) <= 77, ex.stderr
    finally:
        podman("rm", "-f", "-t", "0", cname)
    wait_for("the container to be gone", lambda: podman("container", "exists", cname).returncode == 1)
