"""Rootless (issue 13) with a user systemd: an ordinary user with a lingering systemd session
(user@UID.service, so a delegated cgroup v2 subtree), subuid/subgid ranges and Debian's uidmap and
slirp4netns. Each scenario with ociruntime and with runc, the same outcome.

- podman: run --rm, -d + exec + stop, --memory, -p with a request through the published port.
  podman runs the runtime as root of the user namespace it made for the user. With
  `--cgroup-manager cgroupfs` podman puts itself in a scope of the user's session, and the
  runtime makes the container's cgroup in the delegated slice above it; with `systemd` (podman's
  default) the runtime asks the user's systemd over the user's D-Bus for a scope (authenticating
  as the user's uid, not as the namespace's root).
- the runtime alone (`--systemd-cgroup`, a `spec --rootless` bundle run by the user): the scope
  in the user's systemd with Delegate=yes and the limits, the container in it; delete removes it.

No registry: the busybox image of tests/clients is imported by the user."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clients.conftest import INDEX_HTML, image_tar  # noqa: F401  (image_tar: a fixture)
from tests.conftest import OCIRUNTIME, base_rootfs  # noqa: F401  (base_rootfs: a fixture)

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
        """argv as the user; output through files, not pipes: a container the runtime starts
        keeps its stdio open."""
        cmd = ["runuser", "-u", self.name, "--", "env", "-i", *self.env, *argv]
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            res = subprocess.run(cmd, stdout=out, stderr=err, timeout=timeout, stdin=subprocess.DEVNULL, cwd="/")
            out.seek(0)
            err.seek(0)
            res.stdout, res.stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        return res

    def podman(self, *args: str, manager: str = "cgroupfs", timeout: float = 180) -> subprocess.CompletedProcess:
        return self.run("podman", "--cgroup-manager", manager, *args, timeout=timeout)

    def unit(self, unit: str, *props: str) -> dict[str, str]:
        """`systemctl --user show` of a unit of the user's systemd."""
        res = self.run("systemctl", "--user", "show", unit, *(f"--property={p}" for p in props))
        assert res.returncode == 0, res.stderr
        return dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)


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


@pytest.fixture(params=["cgroupfs", "systemd"])
def manager(request: pytest.FixtureRequest) -> str:
    """podman's --cgroup-manager (systemd is its default)."""
    return request.param


def cname() -> str:
    return f"rl-{uuid.uuid4().hex[:8]}"


def test_run_rm_output_and_exit_status(user: User, runtime: str, manager: str) -> None:
    res = user.podman("run", "--rm", "--runtime", runtime, IMAGE, "sh", "-c",
                      "echo hello rootless; id -u; wc -l < /proc/self/uid_map; exit 3", manager=manager)
    assert res.returncode == 3, res.stderr
    # root inside; podman's namespace maps the user and its subuid range (two lines)
    assert res.stdout.split() == ["hello", "rootless", "0", "2"], res.stderr


def test_detached_exec_and_stop(user: User, runtime: str, manager: str) -> None:
    name = cname()
    res = user.podman("run", "-d", "--name", name, "--runtime", runtime, IMAGE, "sleep", "600", manager=manager)
    assert res.returncode == 0, res.stderr
    try:
        assert user.podman("inspect", "-f", "{{.OCIRuntime}}", name).stdout.strip() in (runtime, Path(runtime).name)
        res = user.podman("exec", name, "sh", "-c", "echo in exec; id -u", manager=manager)
        assert (res.returncode, res.stdout) == (0, "in exec\n0\n"), res.stderr
        # sleep ignores SIGTERM as pid 1: SIGKILL after 2 s
        res = user.podman("stop", "-t", "2", name, manager=manager)
        assert res.returncode == 0, res.stderr
        state = user.podman("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", name).stdout.split()
        assert state == ["exited", "137"], state
    finally:
        user.podman("rm", "-f", "-t", "0", name, manager=manager)


def test_memory_limit_in_the_delegated_cgroup(user: User, runtime: str, manager: str) -> None:
    name = cname()
    res = user.podman("run", "-d", "--name", name, "--memory", "64m", "--runtime", runtime, IMAGE, "sleep", "600",
                      manager=manager)
    assert res.returncode == 0, res.stderr
    unit = None
    try:
        pid = int(user.podman("inspect", "-f", "{{.State.Pid}}", name).stdout)
        path = Path(f"/proc/{pid}/cgroup").read_text().strip().removeprefix("0::")
        cgroup = Path("/sys/fs/cgroup" + path)
        # In the user's delegated tree, not where root keeps its containers.
        assert f"/user@{user.uid}.service/" in path, path
        assert (cgroup / "memory.max").read_text().strip() == str(64 << 20)
        if manager == "systemd":
            # A scope of the user's systemd, which knows the limit and delegates the cgroup.
            unit = cgroup.name
            assert unit.endswith(".scope") and unit.startswith("libpod-"), path
            shown = user.unit(unit, "ActiveState", "Delegate", "ControlGroup", "MemoryMax")
            assert shown == {"ActiveState": "active", "Delegate": "yes", "ControlGroup": path,
                             "MemoryMax": str(64 << 20)}, shown
        # The container's own cgroup namespace: its cgroup is its /sys/fs/cgroup.
        res = user.podman("exec", name, "cat", "/sys/fs/cgroup/memory.max", manager=manager)
        assert (res.returncode, res.stdout) == (0, f"{64 << 20}\n"), res.stderr
    finally:
        user.podman("rm", "-f", "-t", "0", name, manager=manager)
    assert not cgroup.exists(), f"{cgroup} left behind"
    if unit:
        wait_for(f"{unit} to go", lambda: user.unit(unit, "LoadState")["LoadState"] == "not-found", 30)


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


# --- the runtime alone: `--systemd-cgroup` as the user, a scope of the user's systemd ----------
def user_bundle(user: User, rootfs: Path, cid: str, args: list[str], resources: dict) -> Path:
    """A `spec --rootless` bundle the user wrote, with a cgroup namespace (so both runtimes mount
    the container's own cgroup at /sys/fs/cgroup) and the scope named by cgroupsPath."""
    ws = user.home / f"ws-{cid}"
    ws.mkdir()
    shutil.copytree(rootfs, ws / "rootfs", symlinks=True)
    subprocess.run(["chown", "-R", f"{user.uid}", str(ws)], check=True)
    res = user.run(OCIRUNTIME, "spec", "--rootless", "-b", str(ws))
    assert res.returncode == 0, res.stderr
    cfg = json.loads((ws / "config.json").read_text())
    cfg["process"].update(terminal=False, args=args)
    cfg["root"]["path"] = str(ws / "rootfs")
    cfg["linux"]["namespaces"].append({"type": "cgroup"})
    cfg["linux"]["cgroupsPath"] = f"user.slice:ocitest:{cid}"
    cfg["linux"]["resources"] = resources
    (ws / "config.json").write_text(json.dumps(cfg))
    return ws


def test_systemd_cgroup_scope_of_the_users_systemd(user: User, runtime: str, base_rootfs: Path) -> None:  # noqa: F811
    cid = cname()
    unit = f"ocitest-{cid}.scope"
    b = user_bundle(user, base_rootfs, cid, ["sleep", "600"],
                    {"memory": {"limit": 64 << 20}, "pids": {"limit": 99}})
    rt = [runtime, "--root", str(b / "state"), "--systemd-cgroup"]
    res = user.run(*rt, "run", "-d", "-b", str(b), cid)
    cgroup = None
    try:
        assert res.returncode == 0, res.stderr
        pid = json.loads(user.run(*rt, "state", cid).stdout)["pid"]
        path = Path(f"/proc/{pid}/cgroup").read_text().strip().removeprefix("0::")
        # Where the user's systemd puts it: under user@UID.service, in the slice asked for.
        assert path == f"/user.slice/user-{user.uid}.slice/user@{user.uid}.service/user.slice/{unit}", path
        shown = user.unit(unit, "ActiveState", "Delegate", "ControlGroup", "MemoryMax", "TasksMax")
        assert shown == {"ActiveState": "active", "Delegate": "yes", "ControlGroup": path,
                         "MemoryMax": str(64 << 20), "TasksMax": "99"}, shown
        cgroup = Path("/sys/fs/cgroup" + path)
        assert [(cgroup / f).read_text().strip() for f in ("memory.max", "pids.max")] == [str(64 << 20), "99"]
        # exec joins the container's cgroup namespace, whose root is the scope
        res = user.run(*rt, "exec", cid, "cat", "/sys/fs/cgroup/memory.max")
        assert (res.returncode, res.stdout) == (0, f"{64 << 20}\n"), res.stderr
    finally:
        res = user.run(*rt, "delete", "-f", cid)
    assert res.returncode == 0, res.stderr
    assert cgroup is not None and not cgroup.exists(), f"{cgroup} left behind"
    wait_for(f"{unit} to go", lambda: user.unit(unit, "LoadState")["LoadState"] == "not-found", 30)
