"""The engines that call a runc-compatible runtime, driven for real: podman, containerd (ctr and
its runc v2 shim) and dockerd, each started by a fixture with private state (its own root, run
and state directories, socket, and for dockerd a network namespace of its own), and each scenario
run once with ociruntime and once with runc (the `runtime` fixture), asserting the same outcome.

No registry is reachable: the image is a busybox-static tree (conformance/bundle.py) imported
into each engine from a tar made here. Every fixture cleans up after itself even when a test
fails: containers removed, daemons stopped, mounts, network namespace, cgroups and state
directories removed.

The engines' default rlimits above this host's hard limits (CAP_SYS_RESOURCE is not in the
bounding set) would make every container fail with any runtime, so they are lowered here: a
containers.conf for podman, --default-ulimit for dockerd."""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import tempfile
import termios
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conformance.bundle import make_rootfs
from tests.clients.cleanup import kill_processes_mentioning, rmdir_cgroup_tree, unmount_under
from tests.conftest import OCIRUNTIME, RUNC

RUNTIMES = {"ociruntime": OCIRUNTIME, "runc": RUNC}
DOCKER = "/usr/bin/docker"  # Debian's client, of the same release as its dockerd
INDEX_HTML = "hello from busybox httpd\n"
IMAGE_FILES = {
    "www/index.html": INDEX_HTML,
    # Files under the directories podman's --read-only puts tmpfs mounts on (with tmpcopyup):
    # with tmpcopyup they are copied into the tmpfs, as runc does.
    "tmp/from-image": "tmp content of the image\n",
    "var/tmp/from-image": "var/tmp content of the image\n",
}


@dataclass(frozen=True)
class RuntimeUnderTest:
    name: str  # "ociruntime" or "runc"
    binary: str


@pytest.fixture(params=sorted(RUNTIMES, reverse=True))  # ociruntime first, then runc
def runtime(request: pytest.FixtureRequest) -> RuntimeUnderTest:
    binary = RUNTIMES[request.param]
    if not os.access(binary, os.X_OK):
        pytest.fail(f"{binary} is not installed: scripts/install.sh installs it")
    return RuntimeUnderTest(request.param, binary)


def need(*binaries: str) -> None:
    missing = [b for b in binaries if not shutil.which(b) and not os.access(b, os.X_OK)]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: run scripts/install-engines.sh")


def short_base(prefix: str) -> Path:
    """A fresh directory with a short path (unix sockets have a 108-byte limit)."""
    base = Path(f"/tmp/{prefix}-{uuid.uuid4().hex[:8]}")
    base.mkdir(mode=0o711)
    return base


def run(cmd: list[str], timeout: float = 60, input: bytes | None = None, env: dict | None = None,
        check: bool = False) -> subprocess.CompletedProcess:
    """Run a command, its output to files, not pipes: a detached container or a daemon it
    starts may keep inherited pipes open long after the command returned."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        res = subprocess.run(cmd, stdout=out, stderr=err, timeout=timeout, env=env,
                             stdin=subprocess.DEVNULL if input is None else None, input=input)
        out.seek(0)
        err.seek(0)
        res.stdout, res.stderr = out.read(), err.read()
    if check and res.returncode != 0:
        raise AssertionError(f"{cmd} failed ({res.returncode}): {res.stderr.decode(errors='replace')}"
                             f"{res.stdout.decode(errors='replace')}")
    return res


def out(res: subprocess.CompletedProcess) -> str:
    return res.stdout.decode(errors="replace")


def wait_for(what: str, cond, timeout: float = 20, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


# --- the image -------------------------------------------------------------------------------
def make_image_tar(base: Path) -> Path:
    """base/busybox.tar: a tar of a busybox-static root (every applet, /etc/passwd,
    /www/index.html for httpd), the image's one layer for any engine."""
    rootfs = make_rootfs(base / "rootfs")
    for rel, text in IMAGE_FILES.items():
        (rootfs / rel).parent.mkdir(parents=True, exist_ok=True)
        (rootfs / rel).write_text(text)
    os.chmod(rootfs / "var" / "tmp", 0o1777)
    tar = base / "busybox.tar"
    run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(tar), "."], check=True)
    return tar


@pytest.fixture(scope="session")
def image_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_image_tar(tmp_path_factory.mktemp("image"))


# --- cgroups, read from the host -------------------------------------------------------------
def cgroup_dir(pid: int, controller: str) -> Path:
    """The host directory of `pid`'s cgroup for a v1 controller (or the v2 one if the host has
    no v1 hierarchy for it)."""
    lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return Path("/sys/fs/cgroup", controller, path.lstrip("/"))
    for line in lines:
        if line.startswith("0::"):
            return Path("/sys/fs/cgroup", line[3:].lstrip("/"))
    raise AssertionError(f"no {controller} cgroup for pid {pid}: {lines}")


def cgroup_read(pid: int, controller: str, v1_file: str, v2_file: str) -> str:
    d = cgroup_dir(pid, controller)
    f = d / v1_file if (d / v1_file).exists() else d / v2_file
    return f.read_text().strip()


def memory_limit(pid: int) -> int:
    v = cgroup_read(pid, "memory", "memory.limit_in_bytes", "memory.max")
    return -1 if v == "max" else int(v)


def pids_limit(pid: int) -> str:
    return cgroup_read(pid, "pids", "pids.max", "pids.max")


def cpu_quota(pid: int) -> tuple[int, int]:
    """(quota, period) in microseconds; quota -1 when unlimited."""
    d = cgroup_dir(pid, "cpu")
    if (d / "cpu.cfs_quota_us").exists():
        return int((d / "cpu.cfs_quota_us").read_text()), int((d / "cpu.cfs_period_us").read_text())
    quota, period = (d / "cpu.max").read_text().split()
    return (-1 if quota == "max" else int(quota)), int(period)


def runtime_status(rt: RuntimeUnderTest, root: str | Path | None, cid: str) -> str:
    """The status `rt` itself reports for container `cid` under `root` (its default root when
    None): proof that this runtime, and not another, made the container."""
    cmd = [rt.binary] + (["--root", str(root)] if root else []) + ["state", cid]
    res = run(cmd, timeout=30)
    assert res.returncode == 0, (f"{rt.name} does not know container {cid} under {root}: "
                                 f"{res.stderr.decode(errors='replace')}")
    return json.loads(res.stdout)["status"]


# --- a pseudo-terminal, as a user's terminal -------------------------------------------------
def set_winsize(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class Terminal:
    """Runs a command (`podman run -it`, `docker exec -it`, `ctr task exec -t`...) on a fresh pty
    that is its controlling terminal, like a shell in a terminal emulator. resize() changes the
    window size on the master: the kernel sends SIGWINCH to the command, which must pass the
    new size on to the container's terminal."""

    def __init__(self, cmd: list[str], rows: int = 24, cols: int = 80, env: dict | None = None) -> None:
        self.master, slave = os.openpty()
        set_winsize(self.master, rows, cols)

        def ctty() -> None:
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave,
                                     start_new_session=True, preexec_fn=ctty, env=env)
        os.close(slave)
        self.buf = b""

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def _read(self, timeout: float) -> bool:
        r, _, _ = select.select([self.master], [], [], timeout)
        if not r:
            return True
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: every slave end closed
            return False
        if not data:
            return False
        self.buf += data
        return True

    def expect(self, pattern: str, timeout: float = 20) -> re.Match:
        """Wait for `pattern` in the output since the last match; the match."""
        rx = re.compile(pattern.encode())
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.buf)
            if m:
                self.buf = self.buf[m.end():]
                return m
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(min(left, 0.2)):
                m = rx.search(self.buf)
                if m:
                    self.buf = self.buf[m.end():]
                    return m
                raise AssertionError(f"{pattern!r} not seen; the terminal shows {self.buf[-2000:]!r}")

    def size_inside(self, tag: str) -> tuple[int, int] | None:
        """Ask the container's shell for `stty size` (the marker keeps the typed command's echo
        from matching); None if stty could not tell (the terminal is not set up yet)."""
        self.send(f"echo {tag}=$(stty size 2>/dev/null)=\r")
        m = self.expect(rf"{tag}=([0-9 ]*)=")
        got = m.group(1).split()
        return (int(got[0]), int(got[1])) if len(got) == 2 else None

    def prompt(self, timeout: float = 30) -> None:
        """Wait for the shell's first prompt."""
        self.expect(r"[#$] ", timeout)

    def resize(self, rows: int, cols: int) -> None:
        set_winsize(self.master, rows, cols)
        self.winch()

    def winch(self) -> None:
        """SIGWINCH to the command: "look at the window's size again". The kernel signals the
        pty's foreground process group on a resize; this also reaches the command when it is not
        in the foreground (it is a session leader on this pty, so it is)."""
        try:
            os.kill(self.proc.pid, signal.SIGWINCH)
        except ProcessLookupError:
            pass

    def wait_size(self, rows: int, cols: int, timeout: float = 15) -> tuple[int, int]:
        """Poll `stty size` until it shows rows x cols (the engines pass a size on
        asynchronously, the first one too); fails with the sizes seen.

        Each poll that does not show it signals the command again. A client may start watching
        SIGWINCH only after the container's shell already answers at its first size (the API
        lets an engine create an exec with its size, ConsoleSize, before its CLI asks for
        SIGWINCH), and a SIGWINCH before that is lost, which nothing outside the client shows:
        CI once saw `docker exec -it` stay at its first size for 15 s after one resize. The
        window's size is state and the signal only says "read it again", as a terminal says on
        each change: a client or runtime that never passes a size on still fails here."""
        deadline = time.monotonic() + timeout
        seen: list = []
        n = 0
        while True:
            n += 1
            size = self.size_inside(f"SZ{n}")
            seen.append(size)
            if size == (rows, cols):
                return size
            self.winch()
            if time.monotonic() > deadline:
                state = "runs" if self.proc.poll() is None else f"exited {self.proc.returncode}"
                raise AssertionError(f"the terminal inside never became {rows}x{cols} in {timeout} s: "
                                     f"`stty size` said {seen[:3]}...{seen[-3:]} ({len(seen)} tries); "
                                     f"the command {state}")
            time.sleep(0.3)

    def wait(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self._read(0.1)
        return self.proc.wait(max(0.1, deadline - time.monotonic()))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        try:
            os.close(self.master)
        except OSError:
            pass


# --- podman ----------------------------------------------------------------------------------
class Podman:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.env = dict(os.environ, CONTAINERS_CONF=str(base / "containers.conf"))

    def cmd(self, *args: str) -> list[str]:
        b = self.base
        return ["podman", "--root", str(b / "root"), "--runroot", str(b / "runroot"),
                "--tmpdir", str(b / "tmp"), "--storage-driver", "overlay",
                "--cgroup-manager", "cgroupfs", "--events-backend", "file", *args]

    def __call__(self, *args: str, timeout: float = 90, input: bytes | None = None) -> subprocess.CompletedProcess:
        return run(self.cmd(*args), timeout=timeout, input=input, env=self.env)

    def run_args(self, rt: RuntimeUnderTest, *args: str) -> list[str]:
        # A cgroup parent of our own (conmon's cgroup goes there too): removed at the end.
        return ["run", "--runtime", rt.binary, "--network", "none",
                "--cgroup-parent", f"/{self.base.name}", *args]

    def cleanup(self) -> None:
        self("rm", "-a", "-f", "-t", "0", timeout=120)


PODMAN_IMAGE = "localhost/busybox:local"


@pytest.fixture(scope="module")
def podman(image_tar: Path) -> Iterator[Podman]:
    need("podman", "conmon")
    base = short_base("ocipm")
    pm = Podman(base)
    # nproc: podman itself runs with a hard RLIMIT_NPROC of 32768; no higher value can be set.
    (base / "containers.conf").write_text(
        '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=16384:16384"]\n'
        '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n')
    try:
        res = pm("import", str(image_tar), PODMAN_IMAGE, timeout=120)
        assert res.returncode == 0, f"podman import: {res.stderr.decode(errors='replace')}"
        yield pm
    finally:
        pm.cleanup()
        pm("system", "reset", "-f", timeout=120)
        kill_processes_mentioning(str(base))  # a conmon left by a podman that failed
        # The containers' and conmon's cgroups: <controller>/<base name>/{libpod-<id>,conmon}.
        remove_cgroups(base.name)
        unmount_under(base)
        shutil.rmtree(base, ignore_errors=True)


# --- containerd ------------------------------------------------------------------------------
class Containerd:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.sock = base / "containerd.sock"

    def runc_root(self, rt: RuntimeUnderTest) -> Path:
        return self.base / f"runc-root-{rt.name}"

    def ctr(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return run(["ctr", "--address", str(self.sock), *args], timeout=timeout)

    def ctr_cmd(self, *args: str) -> list[str]:
        return ["ctr", "--address", str(self.sock), *args]

    def runtime_args(self, rt: RuntimeUnderTest) -> list[str]:
        """ctr run's options for the runc v2 shim to call `rt` (BinaryName and Root of the
        shim's runtime options), with a root of its own so that we can ask `rt` about it."""
        return ["--runtime", "io.containerd.runc.v2", "--runc-binary", rt.binary,
                "--runc-root", str(self.runc_root(rt))]


@pytest.fixture(scope="module")
def containerd() -> Iterator[Containerd]:
    need("containerd", "ctr", "containerd-shim-runc-v2")
    base = short_base("ocictd")
    (base / "config.toml").write_text(
        f'version = 2\nroot = "{base}/root"\nstate = "{base}/state"\n'
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        f'[grpc]\n  address = "{base}/containerd.sock"\n'
        f'[ttrpc]\n  address = "{base}/containerd.sock.ttrpc"\n'
        f'[debug]\n  address = "{base}/debug.sock"\n')
    log = open(base / "log", "wb")
    daemon = subprocess.Popen(["containerd", "--config", str(base / "config.toml")], stdout=log,
                              stderr=log, stdin=subprocess.DEVNULL)
    ctd = Containerd(base)
    try:
        wait_for("containerd's socket", lambda: ctd.sock.exists() and ctd.ctr("version").returncode == 0,
                 timeout=30)
        yield ctd
    finally:
        ids = []
        for ns in ("default",):
            ids += out(ctd.ctr("-n", ns, "task", "ls", "-q")).split()
            for cid in ids:
                ctd.ctr("-n", ns, "task", "kill", "-s", "SIGKILL", cid)
            for cid in ids:
                ctd.ctr("-n", ns, "task", "rm", "-f", cid)
            for cid in out(ctd.ctr("-n", ns, "container", "ls", "-q")).split():
                ctd.ctr("-n", ns, "container", "rm", cid)
                ids.append(cid)
        daemon.terminate()
        try:
            daemon.wait(20)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait(10)
        log.close()
        kill_processes_mentioning(str(base))
        for cid in ids:
            remove_cgroups(cid)
        unmount_under(base)
        shutil.rmtree(base, ignore_errors=True)


# --- dockerd ---------------------------------------------------------------------------------
class Docker:
    def __init__(self, base: Path, netns: str, rt: RuntimeUnderTest, runtime_name: str) -> None:
        self.base = base
        self.netns = netns
        self.rt = rt
        self.runtime_name = runtime_name  # dockerd's name for it: "oci" or the built-in "runc"
        self.sock = base / "docker.sock"
        self.env = dict(os.environ, DOCKER_HOST=f"unix://{self.sock}", DOCKER_BUILDKIT="0",
                        DOCKER_CONFIG=str(base / "client"))

    def runtime_root(self, cid: str) -> Path:
        """Where dockerd told the shim (and so the runtime) to keep container `cid`'s state:
        <exec-root>/runtime-<name>/moby (20.10 says runtime-runc whatever the runtime)."""
        found = sorted((self.base / "exec").glob(f"runtime-*/moby/{cid}"))
        assert found, f"no runtime state directory for {cid} under {self.base / 'exec'}"
        return found[0].parent

    def cmd(self, *args: str) -> list[str]:
        return [DOCKER, *args]

    def __call__(self, *args: str, timeout: float = 90, input: bytes | None = None) -> subprocess.CompletedProcess:
        return run(self.cmd(*args), timeout=timeout, input=input, env=self.env)

    def ok(self, *args: str, timeout: float = 90, input: bytes | None = None) -> str:
        res = self(*args, timeout=timeout, input=input)
        assert res.returncode == 0, (f"docker {' '.join(args)} failed ({res.returncode}): "
                                     f"{res.stderr.decode(errors='replace')}")
        return out(res)

    def in_netns(self, *cmd: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return run(["nsenter", f"--net=/run/netns/{self.netns}", *cmd], timeout=timeout)

    def inspect(self, name: str) -> dict:
        return json.loads(self.ok("inspect", name))[0]

    def pid(self, name: str) -> int:
        return int(self.inspect(name)["State"]["Pid"])


DOCKER_IMAGE = "busybox:local"
DOCKER_BRIDGE = "172.31.250.1/24"  # inside the daemon's own network namespace only


@pytest.fixture(scope="module", params=sorted(RUNTIMES, reverse=True))
def docker(request: pytest.FixtureRequest, image_tar: Path) -> Iterator[Docker]:
    """dockerd with `runtime` as its default runtime (so that `docker build` uses it too), in
    a network namespace of its own with its bridge and iptables there."""
    need("dockerd", DOCKER, "iptables", "ip", "nsenter")
    rt = RuntimeUnderTest(request.param, RUNTIMES[request.param])
    base = short_base("ocidk")
    netns = base.name
    name = "oci" if rt.name == "ociruntime" else "runc"
    dk = Docker(base, netns, rt, name)
    (base / "client").mkdir()
    (base / "daemon.json").write_text("{}\n")  # not the host's /etc/docker/daemon.json
    cgroup_parent = f"/{base.name}"
    run(["ip", "netns", "add", netns], check=True)
    log = open(base / "dockerd.log", "wb")
    daemon = None
    try:
        run(["ip", "netns", "exec", netns, "ip", "link", "set", "lo", "up"], check=True)
        args = ["nsenter", f"--net=/run/netns/{netns}", "dockerd",
                "--config-file", str(base / "daemon.json"),
                "--data-root", str(base / "data"), "--exec-root", str(base / "exec"),
                "--pidfile", str(base / "docker.pid"), "-H", f"unix://{dk.sock}",
                "--add-runtime", f"oci={OCIRUNTIME}", "--default-runtime", name,
                "--default-ulimit", "nofile=1024:1024", "--storage-driver", "overlay2",
                "--exec-opt", "native.cgroupdriver=cgroupfs", "--cgroup-parent", cgroup_parent,
                "--bip", DOCKER_BRIDGE, "--iptables=true", "--ip-forward=true",
                "--log-level", "info"]
        daemon = subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL)

        def up() -> bool:
            if daemon.poll() is not None:
                raise AssertionError(f"dockerd exited {daemon.returncode}: "
                                     f"{(base / 'dockerd.log').read_text()[-3000:]}")
            return dk.sock.exists() and dk("version", timeout=20).returncode == 0

        wait_for("dockerd", up, timeout=60, interval=0.3)
        res = dk("import", str(image_tar), DOCKER_IMAGE, timeout=120)
        assert res.returncode == 0, f"docker import: {res.stderr.decode(errors='replace')}"
        yield dk
    finally:
        if daemon is not None:
            ids = out(dk("ps", "-aq", "--no-trunc", timeout=30)).split() if daemon.poll() is None else []
            if ids:
                dk("rm", "-f", *ids, timeout=120)
            daemon.terminate()
            try:
                daemon.wait(40)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait(10)
            # dockerd's own containerd, if it outlived it.
            cpid = base / "exec" / "containerd" / "containerd.pid"
            if cpid.exists():
                try:
                    os.kill(int(cpid.read_text().strip()), signal.SIGTERM)
                except (ValueError, ProcessLookupError):
                    pass
        log.close()
        kill_processes_mentioning(str(base))
        remove_cgroups(base.name)
        unmount_under(base)
        run(["ip", "netns", "del", netns])
        shutil.rmtree(base, ignore_errors=True)


# --- cleanup helpers (unmount_under, kill_processes_mentioning: tests/clients/cleanup.py) ----
def remove_cgroups(name: str) -> None:
    """Remove every cgroup directory called `name` (a name only our fixtures use), with its
    sub-cgroups, in every hierarchy, killing any process still in them first."""
    found = []
    for hier in Path("/sys/fs/cgroup").iterdir():
        if not hier.is_dir():
            continue
        for dirpath, dirnames, _ in os.walk(hier):
            if os.path.basename(dirpath) == name:
                found.append(dirpath)
                dirnames[:] = []
    for top in found:
        subs = sorted((d for d, _, _ in os.walk(top)), key=len, reverse=True)
        for sub in subs:
            try:
                for pid in Path(sub, "cgroup.procs").read_text().split():
                    os.kill(int(pid), signal.SIGKILL)
            except (OSError, ValueError):
                pass
        rmdir_cgroup_tree(top)
