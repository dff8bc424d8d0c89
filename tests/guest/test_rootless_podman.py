"""Rootless podman (issue 13): an ordinary user with a lingering systemd session (user@UID.service,
so a delegated cgroup v2 subtree), subuid/subgid ranges and Debian's uidmap and slirp4netns runs
containers with `podman --runtime`: run --rm, -d + exec + stop, --memory, -p with a request
through the published port. Each scenario with ociruntime and with runc, the same outcome.

podman runs the runtime as root of the user namespace it made for the user. The cgroup manager is
cgroupfs: podman then puts itself in a scope of the user's session, and the runtime makes the
container's cgroup in the delegated slice above it (with the systemd manager the runtime must
create a scope through the user's D-Bus instead: that driver is not wired yet).

No registry: the busybox image of tests/clients is imported by the user."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clients.conftest import INDEX_HTML, image_tar  # noqa: F401  (image_tar: a fixture)
from tests.conftest import OCIRUNTIME

RUNTIMES = {"ociruntime": OCIRUNTIME, "runc": "/usr/bin/runc"}
IMAGE = "localhost/busybox:rootless"


class User:
    def __init__(self, name: str) -> None:
        pw = pwd.getpwnam(name)
        self.name, self.uid, self.home = name, pw.pw_uid, Path(pw.pw_dir)
        self.env = [f"XDG_RUNTIME_DIR=/run/user/{self.uid}",
                    f"DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/{self.uid}/bus",
                    f"HOME={self.home}", f"USER={name}", "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"]

    def run(self, *argv: str, timeout: float = 180) -> subprocess.CompletedProcess:
        cmd = ["runuser", "-u", self.name, "--", "env", "-i", *self.env, *argv]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                              cwd="/")

    def podman(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        return self.run("podman", "--cgroup-manager", "cgroupfs", *args, timeout=timeout)


def wait_for(what: str, cond, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def user(image_tar: Path) -> Iterator[User]:  # noqa: F811
    for tool in ("podman", "newuidmap", "slirp4netns", "loginctl"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is missing in the guest (tests/vm/build installs it)")
    name = f"ocirl{uuid.uuid4().hex[:6]}"
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", name], check=True, capture_output=True)
    try:
        u = User(name)
        for kind in ("uid", "gid"):  # useradd adds the ranges; the test needs them
            assert any(line.startswith(f"{name}:") for line in Path(f"/etc/sub{kind}").read_text().splitlines()), \
                f"no /etc/sub{kind} range for {name}"
        subprocess.run(["loginctl", "enable-linger", name], check=True, capture_output=True)
        wait_for(f"user@{u.uid}.service", lambda: subprocess.run(
            ["systemctl", "is-active", "--quiet", f"user@{u.uid}.service"]).returncode == 0)
        wait_for("the user's D-Bus socket", lambda: os.path.exists(f"/run/user/{u.uid}/bus"))
        tar = u.home / "busybox.tar"
        shutil.copyfile(image_tar, tar)
        os.chown(tar, u.uid, -1)
        res = u.podman("import", str(tar), IMAGE)
        assert res.returncode == 0, res.stderr
        yield u
    finally:
        subprocess.run(["runuser", "-u", name, "--", "env", f"XDG_RUNTIME_DIR=/run/user/{pwd.getpwnam(name).pw_uid}",
                        "podman", "rm", "-a", "-f", "-t", "0"], capture_output=True, timeout=180)
        subprocess.run(["loginctl", "disable-linger", name], capture_output=True)
        subprocess.run(["loginctl", "terminate-user", name], capture_output=True)
        subprocess.run(["userdel", "--remove", "--force", name], capture_output=True)


@pytest.fixture(params=sorted(RUNTIMES, reverse=True))  # ociruntime first, then runc
def runtime(request: pytest.FixtureRequest) -> str:
    return RUNTIMES[request.param]


def cname() -> str:
    return f"rl-{uuid.uuid4().hex[:8]}"


def test_run_rm_output_and_exit_status(user: User, runtime: str) -> None:
    res = user.podman("run", "--rm", "--runtime", runtime, IMAGE, "sh", "-c",
                      "echo hello rootless; id -u; wc -l < /proc/self/uid_map; exit 3")
    assert res.returncode == 3, res.stderr
    # root inside; podman's namespace maps the user and its subuid range (two lines)
    assert res.stdout.split() == ["hello", "rootless", "0", "2"], res.stderr


def test_detached_exec_and_stop(user: User, runtime: str) -> None:
    name = cname()
    res = user.podman("run", "-d", "--name", name, "--runtime", runtime, IMAGE, "sleep", "600")
    assert res.returncode == 0, res.stderr
    try:
        assert user.podman("inspect", "-f", "{{.OCIRuntime}}", name).stdout.strip() in (runtime, Path(runtime).name)
        res = user.podman("exec", name, "sh", "-c", "echo in exec; id -u")
        assert (res.returncode, res.stdout) == (0, "in exec\n0\n"), res.stderr
        res = user.podman("stop", "-t", "2", name)  # sleep ignores SIGTERM as pid 1: SIGKILL after 2 s
        assert res.returncode == 0, res.stderr
        state = user.podman("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", name).stdout.split()
        assert state == ["exited", "137"], state
    finally:
        user.podman("rm", "-f", "-t", "0", name)


def test_memory_limit_in_the_delegated_cgroup(user: User, runtime: str) -> None:
    name = cname()
    res = user.podman("run", "-d", "--name", name, "--memory", "64m", "--runtime", runtime, IMAGE, "sleep", "600")
    assert res.returncode == 0, res.stderr
    try:
        pid = int(user.podman("inspect", "-f", "{{.State.Pid}}", name).stdout)
        path = Path(f"/proc/{pid}/cgroup").read_text().strip().removeprefix("0::")
        cgroup = Path("/sys/fs/cgroup" + path)
        # In the user's delegated tree, not where root keeps its containers.
        assert f"/user@{user.uid}.service/" in path, path
        assert (cgroup / "memory.max").read_text().strip() == str(64 << 20)
        res = user.podman("exec", name, "sh", "-c", "echo inside")
        assert res.returncode == 0, res.stderr
    finally:
        user.podman("rm", "-f", "-t", "0", name)
    assert not cgroup.exists(), f"{cgroup} left behind"


def test_published_port_answers(user: User, runtime: str) -> None:
    name = cname()
    port = 18080 + sorted(RUNTIMES.values()).index(runtime)
    res = user.podman("run", "-d", "--name", name, "-p", f"{port}:80", "--runtime", runtime, IMAGE,
                      "httpd", "-f", "-p", "80", "-h", "/www")
    assert res.returncode == 0, res.stderr
    try:
        body = None
        deadline = time.monotonic() + 60
        while body is None:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=10).read().decode()
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        assert body == INDEX_HTML
    finally:
        user.podman("rm", "-f", "-t", "0", name)
