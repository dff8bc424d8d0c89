"""Fixtures shared by every test that creates real containers.

Each test gets its own --root, unique container IDs and a bundle made from busybox-static;
whatever it created is deleted afterwards even when the test fails (delete -f, then a check
that no state dir, cgroup or process is left)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from conformance.bundle import default_config, make_bundle, make_rootfs

OCIRUNTIME = os.environ.get("OCIRUNTIME", "/usr/local/bin/ociruntime")

# In CI the hypothesis searches are derandomized: the same examples every run, so a red CI means
# a change broke something, not that a random search got lucky. By hand they explore afresh.
if os.environ.get("CI"):
    from hypothesis import settings

    settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
    settings.load_profile("ci")
RUNC = shutil.which("runc") or "/usr/sbin/runc"

# --- nothing left in the host's mount table ------------------------------------------------
# A runtime must leave no mount behind, and neither may a test. Mounts that appear during the
# session and mention what containers are built from are a leak: the session fails, listing
# them, and they are detached so that the next run starts clean.
LEAK_MARKERS = ("ociruntime", "/bundle", "rootfs", "/pytest-of-")
_MOUNTS_BEFORE = pytest.StashKey[set]()


def _mount_points() -> dict[str, str]:
    """{mount id: mount point} of this mount namespace (mountinfo fields 1 and 5)."""
    with open("/proc/self/mountinfo") as f:
        return {fields[0]: fields[4] for fields in (line.split() for line in f)}


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_MOUNTS_BEFORE] = set(_mount_points().items())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    before = session.config.stash.get(_MOUNTS_BEFORE, None)
    if before is None:
        return
    leaked = sorted((point for mid, point in set(_mount_points().items()) - before
                     if any(m in point for m in LEAK_MARKERS)), key=len, reverse=True)
    if not leaked:
        return
    sys.stderr.write("\nmounts left in the host's mount table by this session (detached now):\n"
                     + "".join(f"  {p}\n" for p in leaked))
    for point in leaked:  # deepest first
        subprocess.run(["umount", "-l", point], capture_output=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED



@pytest.fixture(scope="session")
def base_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_rootfs(tmp_path_factory.mktemp("base") / "rootfs")


class Runtime:
    """One runtime binary with a private --root; remembers the containers it made."""

    def __init__(self, binary: str, root: Path) -> None:
        self.binary = binary
        self.root = root
        self.ids: list[str] = []

    def new_id(self, prefix: str = "t") -> str:
        cid = f"{prefix}-{uuid.uuid4().hex[:10]}"
        self.ids.append(cid)
        return cid

    def cmd(self, *args: str, log_json: Path | None = None) -> list[str]:
        extra = ["--log", str(log_json), "--log-format", "json"] if log_json else []
        return [self.binary, "--root", str(self.root), *extra, *args]

    def run(self, *args: str, check: bool = False, timeout: float = 30, input: bytes | None = None,
            log_json: Path | None = None, **kw: object) -> subprocess.CompletedProcess:
        # Files, not pipes: after `create` or `run -d` the container keeps our stdio open, and
        # waiting for EOF on a pipe would wait for the container to exit.
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            res = subprocess.run(self.cmd(*args, log_json=log_json), stdout=out, stderr=err,
                                 timeout=timeout, input=input, **kw)
            out.seek(0)
            err.seek(0)
            res.stdout, res.stderr = out.read(), err.read()
        if check and res.returncode != 0:
            raise AssertionError(f"{args} failed ({res.returncode}): {res.stderr.decode()}")
        return res

    def state(self, cid: str) -> dict:
        return json.loads(self.run("state", cid, check=True).stdout)

    def status(self, cid: str) -> str:
        """The container's status, or "absent" when `state` fails (no such container yet)."""
        res = self.run("state", cid)
        return json.loads(res.stdout)["status"] if res.returncode == 0 else "absent"

    def wait_status(self, cid: str, want: str, timeout: float = 10) -> str:
        """Poll until `want` (a killed init takes a moment to be reaped; a foreground `run`
        may not have created the container yet); the last status seen."""
        deadline = time.monotonic() + timeout
        st = self.status(cid)
        while st != want and time.monotonic() < deadline:
            time.sleep(0.02)
            st = self.status(cid)
        return st

    def cleanup(self) -> None:
        for cid in self.ids:
            subprocess.run([self.binary, "--root", str(self.root), "delete", "-f", cid],
                           capture_output=True, timeout=30)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def oci(tmp_path: Path) -> Iterator[Runtime]:
    rt = Runtime(OCIRUNTIME, tmp_path / "state-oci")
    yield rt
    rt.cleanup()


@pytest.fixture
def runc(tmp_path: Path) -> Iterator[Runtime]:
    if not os.path.exists(RUNC):
        pytest.fail("runc is not installed: scripts/test.sh installs it (apt-get install runc)")
    rt = Runtime(RUNC, tmp_path / "state-runc")
    yield rt
    rt.cleanup()


@pytest.fixture(params=["oci", "runc"])
def oci_or_runc(request, oci: Runtime, runc: Runtime) -> Runtime:
    """The test once with ours, once with runc (the reference); `rt is oci` tells which."""
    return oci if request.param == "oci" else runc


class BundleFactory:
    def __init__(self, tmp: Path, base: Path) -> None:
        self.tmp = tmp
        self.base = base
        self.n = 0

    def __call__(self, args: list[str] | None = None, config: dict | None = None,
                 edit=None) -> Path:
        self.n += 1
        cfg = config if config is not None else default_config(args or ["true"])
        if edit is not None:
            edit(cfg)
        return make_bundle(self.tmp / f"bundle{self.n}", config=cfg, rootfs_from=self.base)


@pytest.fixture
def bundle(tmp_path: Path, base_rootfs: Path) -> BundleFactory:
    return BundleFactory(tmp_path, base_rootfs)


def launcher_interpreter() -> str:
    """The interpreter of the runtime under test (scripts/install.sh's launcher, or a dev one)."""
    with open(OCIRUNTIME, "rb") as f:
        first = f.readline().decode(errors="replace")
    interpreter = first[2:].split()[0] if first.startswith("#!") else ""
    if "python" not in interpreter:
        pytest.fail(f"{OCIRUNTIME} is not a Python launcher (first line {first.strip()!r}): this test "
                    "needs scripts/install.sh's launcher")
    return interpreter


def runtime_package_dir() -> str:
    """Where the runtime under test loads its `ociruntime` package from (python -v says)."""
    res = subprocess.run([launcher_interpreter(), "-I", "-S", "-v", OCIRUNTIME, "--version"],
                         capture_output=True, timeout=30)
    for line in res.stderr.decode(errors="replace").splitlines():
        if line.startswith("# ") and " matches " in line and line.endswith("/ociruntime/__init__.py"):
            return line.rsplit(" matches ", 1)[1].removesuffix("/__init__.py")
    raise AssertionError(f"cannot tell where {OCIRUNTIME} loads its code from: {res.stderr[-2000:]!r}")


def host_cgroup_dirs(cid: str) -> list[str]:
    """Any cgroup directory named after the container, in any hierarchy."""
    found = []
    for dirpath, dirnames, _ in os.walk("/sys/fs/cgroup"):
        found += [os.path.join(dirpath, d) for d in dirnames if d == cid]
    return found


def host_mounts_mentioning(text: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if text in line]


# --- helpers for the error-path and leak tests (tests/integration/test_lifecycle_errors.py,
# test_cli_input.py, test_bad_bundles.py, test_hooks.py) ------------------------------------
def error_lines(res: subprocess.CompletedProcess) -> list[str]:
    """The non-empty lines a failed command wrote to stderr."""
    return [ln for ln in res.stderr.decode(errors="replace").splitlines() if ln.strip()]


def assert_clean_error(res: subprocess.CompletedProcess, *mentions: str, problems: int = 1) -> str:
    """A failure the user can act on: exit 1, no traceback anywhere, one stderr line per problem
    (a bad config lists all its `problems` at once), the first naming the problem (each of
    `mentions`, case-insensitive). Returns the first line."""
    out = res.stdout.decode(errors="replace") + res.stderr.decode(errors="replace")
    assert res.returncode == 1, f"exit {res.returncode}, expected 1; output: {out!r}"
    assert "Traceback" not in out, out
    assert "internal error" not in out, f"an internal error is a bug: {out!r}"
    lines = error_lines(res)
    assert lines, "failed without saying why"
    first = lines[-problems] if len(lines) >= problems else lines[0]
    for word in mentions:
        assert word.lower() in first.lower(), f"{word!r} not named in {first!r}"
    # Checked last so that any other problem shows first: the same message twice is noise.
    assert len(lines) == problems, f"expected {problems} error line(s) on stderr, got {len(lines)}: {lines}"
    return lines[0]


def assert_json_error_log(path: Path) -> dict:
    """runc's --log-format json contract: the last line is {"level":"error","msg":..,"time":..}."""
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    assert lines, f"{path} is empty"
    entry = json.loads(lines[-1])
    assert entry.get("level") == "error", entry
    assert isinstance(entry.get("msg"), str) and entry["msg"], entry
    assert isinstance(entry.get("time"), str) and entry["time"], entry
    assert "Traceback" not in entry["msg"]
    return entry


def processes_using(path: str) -> list[str]:
    """Processes whose root, cwd or any mount (in their own mount namespace) is under `path`."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            links = [os.readlink(f"/proc/{pid}/root"), os.readlink(f"/proc/{pid}/cwd")]
            with open(f"/proc/{pid}/mountinfo") as f:
                mounts = f.read()
        except OSError:
            continue  # exited meanwhile, or a kernel thread
        if any(link.startswith(path) for link in links) or f" {path}" in mounts:
            found.append(pid)
    return found


def leaks(root: Path, cid: str, bundle_dir: Path) -> list[str]:
    """Everything a failed create may have left on the host (issue 3 point 7)."""
    problems = []
    if (root / cid).exists():
        problems.append(f"state dir {root / cid} exists: {sorted(os.listdir(root / cid))}")
    if root.is_dir():
        for dirpath, _, files in os.walk(root):
            for name in files:
                p = os.path.join(dirpath, name)
                if name.endswith((".fifo", ".sock")) or not os.path.isfile(p):
                    problems.append(f"leftover fifo/socket {p}")
    problems += [f"cgroup {d}" for d in host_cgroup_dirs(cid)]
    bpath = str(bundle_dir.resolve())
    problems += [f"host mount {m.strip()}" for m in host_mounts_mentioning(bpath)]
    problems += [f"process {pid} uses the bundle" for pid in processes_using(bpath)]
    return problems
