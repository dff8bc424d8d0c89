"""The machinery every check uses: driving a runtime binary, building bundles, cleaning up.

Nothing here knows about ociruntime's internals: a runtime is a binary with runc's command line
(`--root`, `--log`, create/start/state/kill/delete/run), and everything a check learns comes from
that CLI, from files the container writes into a bind-mounted directory, or from the host kernel
(/proc/<pid>/..., cgroup files) about the container's process.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from conformance import bundle as bundlelib

# Directories the shared base rootfs gets beyond bundle.make_rootfs's: mount points for the
# checks, created up front because most bundles keep root.readonly and a runtime may refuse to
# create a mount point on a read-only root.
EXTRA_ROOTFS_DIRS = ("out", "mnt/a", "mnt/b", "mnt/c", "mnt/d", "data")

DEFAULT_TIMEOUT = 30.0


class CheckFailed(Exception):
    """The runtime did something the spec forbids (or failed to do what it requires)."""


class CheckSkipped(Exception):
    """The check could not decide here: host lacks a feature, or the spec allows what happened."""


def fail(msg: str) -> None:
    raise CheckFailed(msg)


def skip(msg: str) -> None:
    raise CheckSkipped(msg)


def expect(cond: object, msg: str) -> None:
    if not cond:
        raise CheckFailed(msg)


@dataclass
class Check:
    id: str
    func: Callable[[Context], str | None]
    timeout: float
    doc: str


CHECKS: dict[str, Check] = {}


def check(check_id: str, timeout: float = DEFAULT_TIMEOUT) -> Callable:
    """Register a check. Its function gets a Context; returning a string adds a pass note."""

    def register(func: Callable[[Context], str | None]) -> Callable[[Context], str | None]:
        if check_id in CHECKS:
            raise ValueError(f"duplicate check id {check_id}")
        CHECKS[check_id] = Check(check_id, func, timeout, (func.__doc__ or "").strip())
        return func

    return register


@dataclass
class Proc:
    """A finished runtime (or container) invocation."""

    code: int
    out: str
    err: str

    @property
    def ok(self) -> bool:
        return self.code == 0

    def tail(self, n: int = 300) -> str:
        text = (self.err.strip() or self.out.strip()).replace("\n", " | ")
        return text[-n:]


@dataclass
class Bundle:
    path: Path
    config: dict

    def write(self) -> None:
        bundlelib.write_config(self.path, self.config)


_id_counter = itertools.count(1)


@dataclass
class Context:
    """Per-check state: a temp dir, a private --root, and the containers to clean up."""

    binary: str
    tmp: Path
    base_rootfs: Path
    check_id: str
    deadline: float
    containers: list[str] = field(default_factory=list)
    cleanups: list[Callable[[], None]] = field(default_factory=list)
    outputs: dict[str, Path] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root = self.tmp / "root"
        self.log = self.tmp / "runtime.log"
        self.out = self.tmp / "out"
        self.out.mkdir(parents=True, exist_ok=True)
        os.chmod(self.out, 0o777)

    # --- time and ids -------------------------------------------------------------------

    def remaining(self, cap: float = DEFAULT_TIMEOUT) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise CheckFailed("check timed out")
        return min(left, cap)

    def new_id(self, hint: str = "c") -> str:
        # Unique across concurrent runs and across checks: pid + counter.
        short = self.check_id.split(".")[-1].replace("_", "-")[:18]
        return f"conf-{short}-{hint}-{os.getpid()}-{next(_id_counter)}"

    # --- bundles ------------------------------------------------------------------------

    def bundle(self, args: list[str] | None = None, name: str | None = None,
               out_mount: bool = True) -> Bundle:
        """A busybox bundle sharing the base rootfs (hard links) with /out bound to self.out."""
        path = self.tmp / (name or f"bundle{next(_id_counter)}")
        config = bundlelib.default_config(args)
        config["ociVersion"] = "1.0.2"
        if out_mount:
            config["mounts"].append(bind_mount(str(self.out), "/out"))
        bundlelib.make_bundle(path, config=config, rootfs_from=self.base_rootfs)
        return Bundle(path, config)

    def sh_bundle(self, script: str, **kw: object) -> Bundle:
        return self.bundle(["sh", "-c", script], **kw)  # type: ignore[arg-type]

    # --- the runtime CLI ----------------------------------------------------------------

    def cmd(self, *args: str) -> list[str]:
        return [self.binary, "--root", str(self.root), "--log", str(self.log), *args]

    def rt(self, *args: str, timeout: float = 20.0, cwd: Path | None = None,
           env_oom: int | None = None) -> Proc:
        """Run a runtime command that does not leave a container holding its stdio."""
        preexec = _oom_setter(env_oom) if env_oom is not None else None
        try:
            r = subprocess.run(self.cmd(*args), capture_output=True, text=True, cwd=cwd,
                               timeout=self.remaining(timeout), stdin=subprocess.DEVNULL,
                               preexec_fn=preexec)
        except subprocess.TimeoutExpired:
            raise CheckFailed(f"`{' '.join(args[:2])}` did not return in time") from None
        return Proc(r.returncode, r.stdout, r.stderr)

    def _stdio_call(self, args: list[str], name: str, timeout: float,
                    env_oom: int | None = None, cwd: Path | None = None) -> Proc:
        # Files, not pipes: a created container keeps its stdio open, so reading a pipe to
        # EOF would wait for the container to exit.
        # Ids under test may hold '/' or be empty: file names come from a counter instead.
        stem = f"call{next(_id_counter)}"
        self.outputs[name] = self.tmp / f"{stem}.stdout"
        out_path, err_path = self.tmp / f"{stem}.stdout", self.tmp / f"{stem}.stderr"
        preexec = _oom_setter(env_oom) if env_oom is not None else None
        with open(out_path, "w") as out, open(err_path, "w") as err:
            try:
                r = subprocess.run(self.cmd(*args), stdout=out, stderr=err,
                                   stdin=subprocess.DEVNULL, timeout=self.remaining(timeout),
                                   preexec_fn=preexec, cwd=cwd)
                code = r.returncode
            except subprocess.TimeoutExpired:
                code = -999
        proc = Proc(code, out_path.read_text(errors="replace"), err_path.read_text(errors="replace"))
        if code == -999:
            raise CheckFailed(f"`{args[0]}` did not return in time; output: {proc.tail()}")
        return proc

    def run(self, b: Bundle, cid: str | None = None, timeout: float = 20.0,
            env_oom: int | None = None) -> Proc:
        """`run` in the foreground: the container's stdout/stderr come back in the Proc."""
        cid = self.new_id("run") if cid is None else cid
        self.containers.append(cid)
        b.write()
        return self._stdio_call(["run", "--bundle", str(b.path), cid], cid, timeout, env_oom)

    def create(self, b: Bundle, cid: str | None = None, timeout: float = 20.0,
               env_oom: int | None = None, extra: tuple[str, ...] = ()) -> tuple[str, Proc]:
        cid = self.new_id("cr") if cid is None else cid
        self.containers.append(cid)
        b.write()
        proc = self._stdio_call(["create", *extra, "--bundle", str(b.path), cid], cid + ".create",
                                timeout, env_oom)
        return cid, proc

    def container_output(self, cid: str) -> str:
        """What a created container wrote to the stdout it inherited from `create`."""
        p = self.outputs.get(cid + ".create")
        return p.read_text(errors="replace") if p and p.exists() else ""

    def created(self, b: Bundle, **kw: object) -> str:
        """Create and insist on success."""
        cid, proc = self.create(b, **kw)  # type: ignore[arg-type]
        expect(proc.ok, f"create failed ({proc.code}): {proc.tail()}")
        return cid

    def started(self, b: Bundle) -> str:
        cid = self.created(b)
        p = self.rt("start", cid)
        expect(p.ok, f"start failed ({p.code}): {p.tail()}")
        return cid

    def state(self, cid: str) -> dict:
        p = self.rt("state", cid)
        expect(p.ok, f"state {cid} failed ({p.code}): {p.tail()}")
        try:
            return json.loads(p.out)
        except json.JSONDecodeError:
            fail(f"state output is not JSON: {p.out[:200]!r}")
        raise AssertionError  # unreachable, keeps type checkers calm

    def wait_status(self, cid: str, status: str, timeout: float = 10.0) -> dict:
        end = time.monotonic() + self.remaining(timeout)
        last: dict = {}
        while time.monotonic() < end:
            last = self.state(cid)
            if last.get("status") == status:
                return last
            time.sleep(0.05)
        fail(f"container never reached status {status!r} (last: {last.get('status')!r})")
        return last

    def wait_file(self, path: Path, timeout: float = 10.0) -> str:
        end = time.monotonic() + self.remaining(timeout)
        while time.monotonic() < end:
            if path.exists() and path.stat().st_size > 0:
                time.sleep(0.02)  # let the writer finish its line
                return path.read_text(errors="replace")
            time.sleep(0.03)
        fail(f"{path.name} was never written")
        return ""

    # --- cleanup ------------------------------------------------------------------------

    def cleanup(self) -> list[str]:
        """Force-delete every container this check made, kill leftovers, remove the temp dir.
        Returns problems worth reporting (leaks), never raises."""
        problems: list[str] = []
        for fn in reversed(self.cleanups):
            try:
                fn()
            except Exception as e:  # cleanup must go on whatever one step raised
                problems.append(f"cleanup hook: {e}")
        for cid in self.containers:
            pid = _state_pid(self.cmd("state", cid))
            try:
                subprocess.run(self.cmd("delete", "--force", cid), capture_output=True,
                               timeout=15, stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired:
                problems.append(f"delete --force {cid} hung")
            if pid and _alive(pid):
                # The runtime did not reap it: do it ourselves so later checks start clean.
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        problems += _kill_stragglers(self.tmp)
        _rmtree(self.tmp)
        return problems


def _state_pid(cmd: list[str]) -> int:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=10,
                           stdin=subprocess.DEVNULL)
        return int(json.loads(r.stdout).get("pid") or 0) if r.returncode == 0 else 0
    except (subprocess.TimeoutExpired, ValueError, json.JSONDecodeError):
        return 0


def _kill_stragglers(tmp: Path) -> list[str]:
    """Runtime processes still naming this check's private temp dir (say a created
    container's init that delete --force missed) would outlive the run: kill them. The temp
    dir is unique to this check, so nothing else can match."""
    found = []
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if str(tmp).encode() in cmdline:
            found.append(entry.name)
            try:
                os.kill(int(entry.name), signal.SIGKILL)
            except ProcessLookupError:
                pass
    return [f"killed leftover process(es) {', '.join(found)}"] if found else []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie would be reaped by its parent; only a live process matters here.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _rmtree(path: Path) -> None:
    # A mount left behind under tmp (a failed check's host mount) would make rmtree fail or,
    # worse, recurse into it: unmount first, lazily.
    for line in reversed(Path("/proc/self/mountinfo").read_text().splitlines()):
        mnt = unescape(line.split()[4])
        if mnt.startswith(str(path) + "/"):
            subprocess.run(["umount", "-l", mnt], capture_output=True)
    shutil.rmtree(path, ignore_errors=True)


def _oom_setter(value: int) -> Callable[[], None]:
    def setter() -> None:
        Path("/proc/self/oom_score_adj").write_text(str(value))

    return setter


# --- helpers shared by check modules --------------------------------------------------------


def bind_mount(source: str, dest: str, options: list[str] | None = None) -> dict:
    return {"destination": dest, "type": "bind", "source": source,
            "options": options if options is not None else ["rbind", "rw"]}


def tmpfs_mount(dest: str, options: list[str] | None = None) -> dict:
    return {"destination": dest, "type": "tmpfs", "source": "tmpfs",
            "options": options if options is not None else []}


def unescape(s: str) -> str:
    return s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace(
        "\\134", "\\")


@dataclass
class MountInfo:
    mount_id: str
    parent: str
    root: str
    point: str
    opts: set[str]
    optional: list[str]
    fstype: str
    source: str
    super_opts: set[str]


def parse_mountinfo(text: str) -> list[MountInfo]:
    mounts = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 10 or "-" not in parts:
            continue
        sep = parts.index("-", 6)
        mounts.append(MountInfo(
            parts[0], parts[1], unescape(parts[3]), unescape(parts[4]), set(parts[5].split(",")),
            parts[6:sep], parts[sep + 1], unescape(parts[sep + 2]),
            set(parts[sep + 3].split(",")) if len(parts) > sep + 3 else set()))
    return mounts


def mount_at(mounts: list[MountInfo], point: str) -> MountInfo | None:
    """The topmost mount at `point` (the last one listed)."""
    found = [m for m in mounts if m.point == point]
    return found[-1] if found else None


def kv_lines(text: str) -> dict[str, str]:
    """Parse KEY=VALUE lines a container script printed."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def host_cgroup_dir(pid: int, controller: str) -> Path | None:
    """The host directory of `pid`'s cgroup for a v1 controller (or the v2 dir)."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, ctrls, path = line.split(":", 2)
        names = ctrls.split(",") if ctrls else [""]
        if controller in names:
            for mnt in parse_mountinfo(Path("/proc/self/mountinfo").read_text()):
                if mnt.fstype == "cgroup" and controller in mnt.super_opts:
                    rel = os.path.relpath(path, mnt.root) if mnt.root != "/" else path.lstrip("/")
                    return Path(mnt.point) / rel
    return None


def cgroup_v2_only() -> bool:
    return (Path("/sys/fs/cgroup/cgroup.controllers").exists())


def deep_merge(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def caps_mask(names: list[str]) -> int:
    mask = 0
    for n in names:
        if n in CAP_NUMBERS:
            mask |= 1 << CAP_NUMBERS[n]
    return mask


# capabilities(7) numbering; stable kernel ABI.
CAP_NAMES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
    "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
]
CAP_NUMBERS = {n: i for i, n in enumerate(CAP_NAMES)}


def host_bounding_mask() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapBnd:"):
            return int(line.split()[1], 16)
    return 0


def status_field(text: str, name: str) -> str:
    for line in text.splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    return ""


def iter_ids(n: int) -> Iterator[int]:
    yield from range(n)
