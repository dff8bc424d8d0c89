"""Side-by-side benchmark of OCI runtimes (ociruntime, runc, crun) on one busybox bundle.

A benchmark, not a test: it measures, prints a markdown table of medians and ratios, and can write
every sample as JSON. See bench/README.md for what each row means and how it is measured.

Design notes (why it looks the way it does):
- Runtimes are measured interleaved (A, B, C, A, B, C, ...) so that drift on a shared 2-core machine
  (page cache, CPU frequency, other tenants) hits all of them alike.
- Each CLI call is timed with perf_counter_ns around os.posix_spawn + os.wait4: no subprocess
  module, no pipes, no threads in the measured interval.
- Peak RSS is NOT taken from that wait4: Linux folds the pre-exec address space into ru_maxrss
  (exec_mmap records the old mm's high-water mark), and posix_spawn's vfork child runs in our
  ~18 MiB Python address space, so every command would read ~18 MiB. Instead separate, interleaved
  RSS rounds run each command as a child of GNU time (`/usr/bin/time -f %M`, a ~1 MiB C process
  that fork+execs and reports its child's wait4 ru_maxrss). Timing rounds stay wrapper-free.
- The benchmark makes itself a child subreaper, so a container's init is re-parented to it when the
  runtime's `create` exits and "wait for exit" is a plain wait4 of the init, as containerd's shim
  does it.
- crun refuses this host's hybrid cgroup layout (cgroup2 at /sys/fs/cgroup/unified carries hugetlb),
  so the whole run happens in a private mount namespace with that mount removed: all three runtimes
  then see the same pure cgroup v1 layout. The program re-executes itself under
  `flock LOCK unshare -m --propagation private` (os.unshare only exists from Python 3.12).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime
import hashlib
import json
import math
import os
import platform
import re
import resource
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from conformance.bundle import default_config, make_bundle, make_rootfs, write_config  # noqa: E402
from tests.clients.cleanup import kill_processes_mentioning, rmdir_cgroup_tree, unmount_under  # noqa: E402

# Shared with the test suites and the VM runner: never load the 2 cores concurrently.
LOCK_FILE = "/tmp/ociruntime-heavy.lock"
INNER_ENV = "OCIBENCH_INNER"
# Set by tests/vm/job.sh in the cgroup v2 guest. The VM runner holds the host's heavy lock for the
# whole boot; the guest's /tmp is its own disk, so the bench takes no lock there.
GUEST_ENV = "OCIRUNTIME_IN_GUEST"
VM_RUN = REPO / "tests" / "vm" / "run"
GIT_ENV = "OCIBENCH_GIT"  # `git describe` of the tree, from the host (the guest has no .git)
GUEST_TIMEOUT_S = 1800  # boot + install (~1.5 min) + the bench under TCG + poweroff
UNIFIED = "/sys/fs/cgroup/unified"
DEFAULT_RUNTIMES = [
    ("ociruntime", "/usr/local/bin/ociruntime"),
    ("runc", "/usr/sbin/runc"),
    ("crun", "/usr/bin/crun"),
]
MEASUREMENTS = ["baseline", "installs", "imports", "cmds", "rss", "lifecycle", "run", "throughput", "memlimit",
                "podman", "ctr", "docker"]
CLI_TIMEOUT_S = 30.0
# What the spawned runtimes see: a fixed, small environment so nothing from the caller's shell
# (pyenv shims, PYTHON* variables) changes what is measured.
CHILD_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
}
PR_SET_CHILD_SUBREAPER = 36
GNU_TIME = "/usr/bin/time"
DOCKER_CLIENT = "/usr/bin/docker"  # Debian's, of the same release as its dockerd
DOCKER_IMAGE = "ocibench-busybox:local"
DOCKER_RUNTIME_PREFIX = "ocibench-"  # dockerd's name for each measured runtime: ocibench-NAME
MEM_LO = 256 * 1024
MEM_HI = 64 * 1024 * 1024
PAGE = 4096
# Throwaway venvs for the install-path rows (never /opt/ociruntime): rebuilt when the sources change.
VENV_PREFIX = "/tmp/ociruntime-bench-venv-"
INSTALL_SOURCES = ("ociruntime", "csrc", "schemas", "setup.py", "pyproject.toml", "scripts/ociruntime")
# pip 23's console-script wrapper, verbatim: what `pip install .` wrote before setup.py shipped
# scripts/ociruntime. Measured for comparison.
PIP_CONSOLE_WRAPPER = """#!{python}
# -*- coding: utf-8 -*-
import re
import sys
from ociruntime.cli import main
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit(main())
"""


def install_sh_launcher(python: Path, site: Path) -> str:
    """scripts/install.sh's launcher (its heredoc), the reference every install path is compared
    with, for this interpreter and site-packages: read from the script, so the two never drift."""
    text = (REPO / "scripts" / "install.sh").read_text()
    body = text.split("<<EOT\n", 1)[1].split("\nEOT\n", 1)[0] + "\n"
    return body.replace("$PREFIX/bin/python3", str(python)).replace("$site", str(site))


# A runtime wrapper for an engine's BinaryName that logs each call's arguments and execs the
# runtime: one run through it names the calls (create, start, ...) that ExecTrace times in the
# others, where nothing stands between the shim and the runtime. The same for every runtime.
CALLLOG = """#!/bin/sh
printf '%s\\n' "$*" >> {log}
exec {real} "$@"
"""


# Each runtime call an engine's shim makes, timed by the kernel: the tracepoints of every fork,
# exec and exit, in a tracefs instance of the bench's own (its ring buffer, nothing else's
# tracing touched). A call lasts from the shim's fork to the exit of the call's main thread.
# A wrapper that timed the calls (bash around the runtime, as this bench had) changed what it
# measured: under it runc's `ctr run --rm` took 10-13 ms longer, ours 4-8. Traced, the engine's
# total and its calls come from the same runs, and nothing runs between the shim and the runtime.
TRACEFS = "/sys/kernel/tracing"
TRACE_EVENTS = ("sched_process_fork", "sched_process_exec", "sched_process_exit")
TRACE_LINE = re.compile(r"\s(\d+\.\d+): (sched_process_\w+): (.*)$")
SHIM_COMM = "containerd-shim"  # containerd-shim-runc-v2, as the kernel keeps it (15 characters)


class ExecTrace:
    def __init__(self, name: str) -> None:
        if not os.path.isdir(f"{TRACEFS}/instances"):
            # The bench runs in its private mount namespace: a mount made here goes with it.
            subprocess.run(["mount", "-t", "tracefs", "nodev", TRACEFS], check=False, capture_output=True)
        self.dir = f"{TRACEFS}/instances/{name}"
        os.mkdir(self.dir)
        try:
            for event in TRACE_EVENTS:
                Path(f"{self.dir}/events/sched/{event}/enable").write_text("1")
        except OSError:
            self.close()
            raise

    def clear(self) -> None:
        with open(f"{self.dir}/trace", "w"):
            pass  # opened for writing with O_TRUNC: the buffer is emptied

    def calls(self, binary: str) -> list[float]:
        """The wall time (ms) of each process a shim forked that executed `binary`, in order."""
        return shim_calls(Path(f"{self.dir}/trace").read_text(errors="replace"), binary)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.rmdir(self.dir)  # the instance, its events and its buffer


def remove_stale_traces() -> None:
    """The instances of benches that were killed (ocibench-PID, PID gone): a ring buffer stays
    allocated until its instance is removed."""
    base = f"{TRACEFS}/instances"
    for name in os.listdir(base) if os.path.isdir(base) else []:
        pid = name.removeprefix("ocibench-")
        if name != pid and pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            with contextlib.suppress(OSError):
                os.rmdir(f"{base}/{name}")


def shim_calls(text: str, binary: str) -> list[float]:
    """From a trace of TRACE_EVENTS: per process forked by a shim that executed `binary`, the
    milliseconds from its fork to its main thread's exit, in the order of the forks."""
    forked: dict[str, float] = {}
    ran: set[str] = set()
    ended: dict[str, float] = {}
    for line in text.splitlines():
        m = TRACE_LINE.search(line)
        if m is None:
            continue
        ts, event, fields = float(m.group(1)) * 1000, m.group(2), dict(
            f.split("=", 1) for f in m.group(3).split() if "=" in f)
        if event == "sched_process_fork" and fields.get("comm", "").startswith(SHIM_COMM):
            forked[fields["child_pid"]] = ts
        elif event == "sched_process_exec" and fields.get("filename") == binary:
            ran.add(fields["pid"])
        elif event == "sched_process_exit":
            ended.setdefault(fields["pid"], ts)
    return [ended[pid] - ts for pid, ts in sorted(forked.items(), key=lambda kv: kv[1])
            if pid in ran and pid in ended]


# --------------------------------------------------------------------------------------------
# Spawning and timing


class Watchdog:
    """Kills children that exceed their deadline, without putting a timer in the measured path.

    The measured path is a blocking wait4; this single daemon thread wakes twice a second and
    SIGKILLs overdue children through a pidfd (no pid-reuse race: a pidfd names one process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[int, tuple[int, float]] = {}  # pid -> (pidfd, deadline)
        self._thread = threading.Thread(target=self._loop, name="watchdog", daemon=True)
        self._thread.start()

    def add(self, pid: int, timeout: float) -> None:
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            return  # already gone: nothing to guard
        with self._lock:
            self._entries[pid] = (pidfd, time.monotonic() + timeout)

    def remove(self, pid: int) -> None:
        with self._lock:
            entry = self._entries.pop(pid, None)
        if entry is not None:
            os.close(entry[0])

    def _loop(self) -> None:
        while True:
            time.sleep(0.5)
            now = time.monotonic()
            with self._lock:
                overdue = [fd for fd, deadline in self._entries.values() if deadline < now]
                for fd in overdue:
                    with contextlib.suppress(OSError):
                        signal.pidfd_send_signal(fd, signal.SIGKILL)


@dataclass
class Result:
    rc: int  # exit status, or -signal
    ns: int  # wall time of spawn..reap
    maxrss_kib: int  # ru_maxrss via GNU time when asked for (rss=True), else 0
    output: str = ""  # what the child wrote (only read on failure)


class Spawner:
    """posix_spawn + wait4 with the child's stdout/stderr in one scratch file.

    A regular file rather than a pipe: a detached container's init inherits the `create` call's
    stdio and would hold a pipe open; a file needs no reader and cannot block anyone."""

    def __init__(self, workdir: Path) -> None:
        self.devnull = os.open(os.devnull, os.O_RDONLY)
        self.out_path = workdir / "child-output"
        self.out = os.open(self.out_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_TRUNC, 0o644)
        self.rss_path = workdir / "rss"
        self.watchdog = Watchdog()
        self._lock = threading.Lock()

    def call(self, argv: list[str], timeout: float = CLI_TIMEOUT_S, capture: bool = True,
             rss: bool = False) -> Result:
        # The scratch file is shared by parallel callers, so only sequential callers truncate and
        # read it; parallel callers (capture=False) only get rc and time.
        if capture:
            os.ftruncate(self.out, 0)
        if rss:
            argv = [GNU_TIME, "-f", "%M", "-o", str(self.rss_path), *argv]
        actions = [
            (os.POSIX_SPAWN_DUP2, self.devnull, 0),
            (os.POSIX_SPAWN_DUP2, self.out, 1),
            (os.POSIX_SPAWN_DUP2, self.out, 2),
        ]
        t0 = time.perf_counter_ns()
        pid = os.posix_spawn(argv[0], argv, CHILD_ENV, file_actions=actions)
        self.watchdog.add(pid, timeout)
        _, status, _ = os.wait4(pid, 0)
        t1 = time.perf_counter_ns()
        self.watchdog.remove(pid)
        rc = os.waitstatus_to_exitcode(status)
        output = ""
        if capture and rc != 0:
            output = self.out_path.read_text(errors="replace")[-4000:]
        maxrss = 0
        if rss:
            # GNU time writes "Command exited with non-zero status N" before %M on failure.
            with contextlib.suppress(OSError, ValueError, IndexError):
                maxrss = int(self.rss_path.read_text().split()[-1])
        return Result(rc, t1 - t0, maxrss, output)

    @staticmethod
    def text(argv: list[str], timeout: float = 20.0) -> tuple[int, str]:
        """Untimed helper for setup/teardown: run and return (rc, stdout+stderr)."""
        try:
            p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=timeout, env=CHILD_ENV)
        except (OSError, subprocess.TimeoutExpired) as e:
            return 127, str(e)
        return p.returncode, (p.stdout + p.stderr)


def first_error_line(output: str) -> str:
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    # podman prints its verdict as "Error: ..." after the runtime's own log lines.
    for ln in lines:
        if ln.startswith("Error:"):
            return ln[:300]
    for ln in lines:
        if "error" in ln.lower() or "fail" in ln.lower():
            return ln[:300]
    return (lines[-1] if lines else "no output")[:300]


def wait_exit(pid: int, timeout: float = CLI_TIMEOUT_S) -> int:
    """Wait for a container init to exit; returns its exit code (or -1 if unknown).

    We are a child subreaper, so the init is normally our child once `create` has returned and
    wait4 reaps it. If a runtime kept it parented elsewhere, fall back to polling a pidfd."""
    try:
        _, status, _ = os.wait4(pid, 0)
        return os.waitstatus_to_exitcode(status)
    except ChildProcessError:
        pass
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return -1
    try:
        select.select([fd], [], [], timeout)
    finally:
        os.close(fd)
    return -1


def children_cpu_ms() -> float:
    """CPU time (user + system) of every descendant reaped so far: each process waits for its
    children, and we, the subreaper, for the orphans (a container's init whose runtime exited)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (r.ru_utime + r.ru_stime) * 1000


def reap_strays() -> None:
    """Reap re-parented orphans (conmon, runtime intermediates). Only called at points where no
    measured child is outstanding, so it never steals a wait4 from the timed path."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


# --------------------------------------------------------------------------------------------
# Runtimes and containers


@dataclass
class Runtime:
    name: str
    path: str
    root: Path
    version: str = ""
    exec_error: str | None = None  # set when `exec` does not work: reported as n/a
    podman_error: str | None = None
    ctr_error: str | None = None
    docker_error: str | None = None
    samples: dict[str, list[float]] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)

    def argv(self, *args: str) -> list[str]:
        return [self.path, "--root", str(self.root), *args]

    def add(self, metric: str, value: float) -> None:
        self.samples.setdefault(metric, []).append(value)


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.sp = Spawner(workdir)
        self.runtimes: list[Runtime] = []
        for name, path in args.runtime:
            root = workdir / f"root-{name}"
            root.mkdir()
            self.runtimes.append(Runtime(name, path, root))
        self._seq = 0
        self.stop = threading.Event()  # set on interrupt: throughput workers finish and return
        self._seq_lock = threading.Lock()
        self.live: set[tuple[str, str]] = set()  # (runtime name, id) possibly existing
        self.podman_names: set[str] = set()
        self.ctr_ids: set[str] = set()
        self.docker_names: set[str] = set()
        self.exec_trace: ExecTrace | None = None  # the engines' runtime calls (start_trace)
        self.install_samples: dict[str, list[float]] = {}
        self.errors: list[str] = []
        self.python = launcher_interpreter(self.runtimes[0].path)
        self.rootfs = make_rootfs(workdir / "rootfs")
        self.bundle_true = self._bundle("bundle-true", ["true"])
        self.bundle_sleep = self._bundle("bundle-sleep", ["sleep", "3600"])

    # ---- helpers

    def _bundle(self, name: str, args: list[str], config: dict | None = None) -> Path:
        # Hard-linked copies of one rootfs: the same files for every runtime, cheap to make.
        return make_bundle(self.workdir / name, args, config=config, rootfs_from=self.rootfs)

    def new_id(self, rt: Runtime) -> str:
        with self._seq_lock:
            self._seq += 1
            cid = f"ocibench-{os.getpid()}-{self._seq}"
            self.live.add((rt.name, cid))
        return cid

    def by_name(self, name: str) -> Runtime:
        return next(rt for rt in self.runtimes if rt.name == name)

    def force_delete(self, rt: Runtime, cid: str) -> None:
        """Untimed cleanup; tolerant of a container that is already gone."""
        if (rt.root / cid).exists():
            rc, out = self.sp.text(rt.argv("delete", "--force", cid))
            if rc != 0 and (rt.root / cid).exists():
                self.errors.append(f"{rt.name}: delete --force {cid}: {first_error_line(out)}")
        self.live.discard((rt.name, cid))

    def fail(self, rt: Runtime, what: str, res: Result) -> None:
        msg = f"{rt.name}: {what} exited {res.rc}: {first_error_line(res.output)}"
        if msg not in self.errors:
            self.errors.append(msg)

    def read_pid(self, pidfile: Path) -> int:
        return int(pidfile.read_text().strip())

    # ---- one runtime, one round

    def one_cmds(self, rt: Runtime, record: bool, rss: bool = False) -> None:
        """create, state, start, exec, kill, delete of a `sleep` container, each timed (or, with
        rss, each run under GNU time for its peak RSS); the waiting init's memory between create
        and start."""
        cid = self.new_id(rt)
        pidfile = self.workdir / f"{cid}.pid"
        try:
            r = self.sp.call(rt.argv("create", "--bundle", str(self.bundle_sleep),
                                     "--pid-file", str(pidfile), cid), rss=rss)
            if r.rc != 0:
                self.fail(rt, "create", r)
                return
            pid = self.read_pid(pidfile)
            # Memory of the init blocked on the exec fifo: what every created-but-not-started
            # container costs the host.
            hwm, pss = init_memory(pid)
            if rt is self.runtimes[0] and self.python and not rss:
                # The floor again, among the small commands it is the floor of: the baseline
                # rounds run minutes apart from these, and the machine drifts meanwhile.
                self.one_baseline(self.python, rt, record, key="cmds_floor_ms")
            timings = {"create": r}
            for cmd, argv in (
                ("state", rt.argv("state", cid)),
                ("start", rt.argv("start", cid)),
            ):
                timings[cmd] = self.sp.call(argv, rss=rss)
                if timings[cmd].rc != 0:
                    self.fail(rt, cmd, timings[cmd])
                    return
            if rt.exec_error is None:
                re_ = self.sp.call(rt.argv("exec", cid, "true"), rss=rss)
                if re_.rc == 0:
                    timings["exec"] = re_
                else:
                    rt.exec_error = first_error_line(re_.output)
            timings["kill"] = self.sp.call(rt.argv("kill", cid, "KILL"), rss=rss)
            if timings["kill"].rc != 0:
                self.fail(rt, "kill", timings["kill"])
                return
            wait_exit(pid)
            timings["delete"] = self.sp.call(rt.argv("delete", cid), rss=rss)
            if timings["delete"].rc != 0:
                self.fail(rt, "delete", timings["delete"])
                return
            self.live.discard((rt.name, cid))
            if record and rss:
                for cmd, res in timings.items():
                    rt.add(f"{cmd}_rss_mib", res.maxrss_kib / 1024)
            elif record:
                for cmd, res in timings.items():
                    rt.add(f"{cmd}_ms", res.ns / 1e6)
                if hwm is not None:
                    rt.add("init_hwm_mib", hwm / 1024)
                if pss is not None:
                    rt.add("init_pss_mib", pss / 1024)
        finally:
            self.force_delete(rt, cid)
            with contextlib.suppress(FileNotFoundError):
                pidfile.unlink()
            reap_strays()

    def lifecycle(self, rt: Runtime, capture: bool = True,
                  phases: dict[str, int] | None = None) -> tuple[bool, int]:
        """create -> start -> wait for exit -> delete of `true`; returns (ok, ns). `phases` gets
        each step's ns, to show where a slower total comes from."""
        cid = self.new_id(rt)
        pidfile = self.workdir / f"{cid}.pid"
        ok = False
        t0 = time.perf_counter_ns()
        try:
            r = self.sp.call(rt.argv("create", "--bundle", str(self.bundle_true),
                                     "--pid-file", str(pidfile), cid), capture=capture)
            if r.rc != 0:
                if capture:
                    self.fail(rt, "lifecycle create", r)
                return False, 0
            pid = self.read_pid(pidfile)
            t1 = time.perf_counter_ns()
            r = self.sp.call(rt.argv("start", cid), capture=capture)
            if r.rc != 0:
                if capture:
                    self.fail(rt, "lifecycle start", r)
                return False, 0
            t2 = time.perf_counter_ns()
            wait_exit(pid)
            t3 = time.perf_counter_ns()
            r = self.sp.call(rt.argv("delete", cid), capture=capture)
            if r.rc != 0:
                if capture:
                    self.fail(rt, "lifecycle delete", r)
                return False, 0
            ok = True
            self.live.discard((rt.name, cid))
            t4 = time.perf_counter_ns()
            if phases is not None:
                phases.update(create=t1 - t0, start=t2 - t1, wait=t3 - t2, delete=t4 - t3)
            return True, t4 - t0
        finally:
            if not ok:
                self.force_delete(rt, cid)
            with contextlib.suppress(FileNotFoundError):
                pidfile.unlink()

    def one_lifecycle(self, rt: Runtime, record: bool) -> None:
        phases: dict[str, int] = {}
        cpu = children_cpu_ms()
        ok, ns = self.lifecycle(rt, phases=phases)
        reap_strays()  # the init, exited: its CPU time counts too
        if ok and record:
            rt.add("lifecycle_ms", ns / 1e6)
            rt.add("lifecycle_cpu_ms", children_cpu_ms() - cpu)
            for phase, pns in phases.items():
                rt.add(f"lifecycle_{phase}_ms", pns / 1e6)

    def one_run(self, rt: Runtime, record: bool, rss: bool = False) -> None:
        cid = self.new_id(rt)
        try:
            r = self.sp.call(rt.argv("run", "--bundle", str(self.bundle_true), cid), rss=rss)
            if r.rc != 0:
                self.fail(rt, "run", r)
                return
            if record and rss:
                rt.add("run_rss_mib", r.maxrss_kib / 1024)
            elif record:
                rt.add("run_ms", r.ns / 1e6)
        finally:
            self.force_delete(rt, cid)
            reap_strays()

    def one_throughput(self, rt: Runtime, parallel: int) -> None:
        """N lifecycles with `parallel` workers; records containers/s and failures."""
        n = self.args.throughput_n
        counter = iter(range(n))
        counter_lock = threading.Lock()
        failures = [0]

        def worker() -> None:
            while not self.stop.is_set():
                with counter_lock:
                    if next(counter, None) is None:
                        return
                ok, _ = self.lifecycle(rt, capture=False)
                if not ok:
                    with counter_lock:
                        failures[0] += 1

        t0 = time.perf_counter_ns()
        threads = [threading.Thread(target=worker) for _ in range(parallel)]
        for t in threads:
            t.start()
        try:
            for t in threads:
                t.join()
        except BaseException:
            # ctrl-C lands in the main thread: let the workers finish their current lifecycle
            # before cleanup sweeps the state dirs, or they would race it.
            self.stop.set()
            for t in threads:
                t.join()
            raise
        wall = (time.perf_counter_ns() - t0) / 1e9
        reap_strays()
        key = "seq" if parallel == 1 else f"par{parallel}"
        if failures[0]:
            self.errors.append(f"{rt.name}: {failures[0]}/{n} lifecycles failed ({key} throughput)")
        rt.add(f"throughput_{key}_cps", (n - failures[0]) / wall)

    def one_baseline(self, python: str, holder: Runtime, record: bool, rss: bool = False,
                     key: str = "bare_python_ms") -> None:
        # The interpreter our launcher runs, started the way the launcher starts it: the floor
        # under every ociruntime CLI call (issue 14 asks for start/state/kill/delete within 1.5 ms
        # of it).
        r = self.sp.call([python, "-I", "-S", "-c", "pass"], rss=rss)
        if r.rc == 0 and record and rss:
            holder.add("bare_python_rss_mib", r.maxrss_kib / 1024)
        elif r.rc == 0 and record:
            holder.add(key, r.ns / 1e6)

    def one_rss(self, rt: Runtime, record: bool) -> None:
        if rt is self.runtimes[0] and self.python:
            self.one_baseline(self.python, rt, record, rss=True)
        self.one_cmds(rt, record, rss=True)
        self.one_run(rt, record, rss=True)

    # ---- memory limit

    def mem_probe(self, rt: Runtime, limit: int) -> bool:
        """Does `run` of `true` succeed under linux.resources.memory.limit = limit?"""
        bundle = self.workdir / f"bundle-mem-{rt.name}"
        config = default_config(["true"])
        config["linux"]["resources"]["memory"] = {"limit": limit}
        if bundle.exists():
            write_config(bundle, config)
        else:
            self._bundle(bundle.name, ["true"], config)
        cid = self.new_id(rt)
        try:
            r = self.sp.call(rt.argv("run", "--bundle", str(bundle), cid), timeout=20)
            return r.rc == 0
        finally:
            self.force_delete(rt, cid)
            reap_strays()

    def memlimit(self) -> None:
        """Bisect the smallest memory limit (log scale, page aligned) per runtime, interleaved."""
        bounds: dict[str, list[int]] = {}
        for rt in self.runtimes:
            if self.mem_probe(rt, MEM_LO):
                rt.notes["memlimit_min"] = f"<= {MEM_LO // 1024} KiB"
                rt.samples["memlimit_min_kib"] = [MEM_LO / 1024]
            elif not self.mem_probe(rt, MEM_HI):
                rt.notes["memlimit_min"] = f"> {MEM_HI // 1048576} MiB"
            else:
                bounds[rt.name] = [MEM_LO, MEM_HI]  # [fails, succeeds]
        for _ in range(self.args.bisect_steps):
            for rt in self.runtimes:
                if rt.name not in bounds:
                    continue
                lo, hi = bounds[rt.name]
                mid = int(math.sqrt(lo * hi)) // PAGE * PAGE
                if mid <= lo or mid >= hi:
                    continue
                if self.mem_probe(rt, mid):
                    bounds[rt.name][1] = mid
                else:
                    bounds[rt.name][0] = mid
        for rt in self.runtimes:
            if rt.name in bounds:
                lo, hi = bounds[rt.name]
                rt.samples["memlimit_min_kib"] = [hi / 1024]
                rt.notes["memlimit_min"] = f"{fmt_kib(lo / 1024)} fails, {fmt_kib(hi / 1024)} starts"
        # The issue's acceptance point, probed directly (a bisection can straddle a flaky edge).
        for _ in range(self.args.mem4_tries):
            for rt in self.runtimes:
                rt.add("mem4mib_ok", 1.0 if self.mem_probe(rt, 4 * 1024 * 1024) else 0.0)

    # ---- podman

    def podman_setup(self) -> str | None:
        """Returns why podman cannot be measured, or None."""
        podman = shutil.which("podman", path=CHILD_ENV["PATH"])
        if podman is None:
            return "podman is not installed (apt-get install podman)"
        self.podman = podman
        # podman writes /etc/hosts, /etc/resolv.conf, /run/.containerenv mount points into a
        # --rootfs tree: give it its own copy so the runtime bundles stay pristine.
        self.podman_rootfs = self.workdir / "podman-rootfs"
        shutil.copytree(self.rootfs, self.podman_rootfs, symlinks=True, copy_function=os.link)
        # No systemd here (pid 1 is not systemd) and no journald: cgroupfs manager, file events.
        # No registry is reachable: --rootfs. --network none: measure the runtime, not netavark.
        # podman's default ulimits (nofile/nproc 1048576) exceed this sandbox's hard limits and
        # CAP_SYS_RESOURCE is not in the bounding set: ask for limits the host allows.
        nofile_hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        nproc_hard = resource.getrlimit(resource.RLIMIT_NPROC)[1]
        nofile = min(1024, nofile_hard) if nofile_hard > 0 else 1024
        nproc = min(4096, nproc_hard) if nproc_hard > 0 else 4096
        self.podman_global = [podman]
        if not Path("/run/systemd/system").is_dir():
            self.podman_global += ["--cgroup-manager", "cgroupfs"]
        self.podman_global += ["--events-backend", "file"]
        self.podman_run_flags = ["--network", "none", "--ulimit", f"nofile={nofile}:{nofile}",
                                 "--ulimit", f"nproc={nproc}:{nproc}"]
        return None

    def one_podman(self, rt: Runtime, record: bool) -> None:
        if rt.podman_error is not None:
            return
        with self._seq_lock:
            self._seq += 1
            name = f"ocibench-{os.getpid()}-p{self._seq}"
        self.podman_names.add(name)
        try:
            r = self.sp.call([*self.podman_global, "run", "--rm", "--name", name,
                              "--runtime", rt.path, *self.podman_run_flags,
                              "--rootfs", str(self.podman_rootfs), "true"], timeout=60)
            if r.rc != 0:
                rt.podman_error = first_error_line(r.output)
                return
            if record:
                rt.add("podman_ms", r.ns / 1e6)
        finally:
            self.podman_rm(name)
            reap_strays()

    def podman_rm(self, name: str) -> None:
        rc, _ = self.sp.text([*self.podman_global, "container", "exists", name])
        if rc == 0:
            self.sp.text([*self.podman_global, "rm", "--force", name], timeout=60)
        self.podman_names.discard(name)

    # ---- install paths

    def installs(self) -> None:
        """`state` of one created container through each way of installing ociruntime (all the
        same code, from this tree): per-call cost against scripts/install.sh's launcher."""
        variants = install_variants()
        if isinstance(variants, str):
            self.errors.append(f"install paths not measured: {variants}")
            return
        root = self.workdir / "root-installs"
        root.mkdir()
        launcher = variants[0][1]
        cid = f"ocibench-{os.getpid()}-installs"
        r = self.sp.call([*launcher, "--root", str(root), "create", "--bundle", str(self.bundle_sleep), cid])
        try:
            if r.rc != 0:
                self.errors.append(f"install paths: create exited {r.rc}: {first_error_line(r.output)}")
                return
            for i in range(self.args.iterations + 1):
                for name, argv in variants:
                    res = self.sp.call([*argv, "--root", str(root), "state", cid])
                    if res.rc != 0:
                        self.errors.append(f"install path {name}: state exited {res.rc}: "
                                           f"{first_error_line(res.output)}")
                        return
                    if i:
                        self.install_samples.setdefault(name, []).append(res.ns / 1e6)
        finally:
            self.sp.text([*launcher, "--root", str(root), "delete", "--force", cid])
            reap_strays()
        progress("installs: done")

    # ---- import cost of create and run

    def one_imports(self, rt: Runtime, record: bool) -> None:
        """-X importtime of the bare interpreter, `create` and `run`, in one round: the import
        time above the bare interpreter's (issue 14: at most 2 ms)."""
        if rt is not self.runtimes[0] or not self.python:
            return
        prefix = [self.python, "-X", "importtime", "-I", "-S"]
        bare = self.import_us([*prefix, "-c", "pass"])
        cid = self.new_id(rt)
        try:
            create = self.import_us([*prefix, *rt.argv("create", "--bundle", str(self.bundle_sleep), cid)])
        finally:
            self.force_delete(rt, cid)
        cid = self.new_id(rt)
        try:
            run = self.import_us([*prefix, *rt.argv("run", "--bundle", str(self.bundle_true), cid)])
        finally:
            self.force_delete(rt, cid)
            reap_strays()
        if record and None not in (bare, create, run):
            rt.add("create_imports_ms", (create - bare) / 1000)
            rt.add("run_imports_ms", (run - bare) / 1000)

    def import_us(self, argv: list[str]) -> int | None:
        """Sum of -X importtime's self times (us) of one call; None if it failed."""
        r = self.sp.call(argv)
        text = self.sp.out_path.read_text(errors="replace")
        if r.rc != 0:
            self.fail(self.runtimes[0], "importtime " + " ".join(argv[5:7]), r)
            return None
        total = 0
        for line in text.splitlines():
            if line.startswith("import time:") and "self [us]" not in line:
                total += int(line.split(":", 1)[1].split("|", 1)[0])
        return total

    # ---- containerd (ctr run --rm)

    def ctr_setup(self) -> str | None:
        """Start a private containerd (as tests/clients/conftest.py does); why not, or None."""
        tools = {tool: shutil.which(tool, path=CHILD_ENV["PATH"])
                 for tool in ("containerd", "ctr", "containerd-shim-runc-v2")}
        for tool, path in tools.items():
            if path is None:
                return f"{tool} is not installed {install_hint()}"
        base = Path(tempfile.mkdtemp(prefix="ocibctd-", dir="/tmp"))  # short: socket paths
        self.ctr_base = base
        (base / "config.toml").write_text(
            f'version = 2\nroot = "{base}/root"\nstate = "{base}/state"\n'
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
            f'[grpc]\n  address = "{base}/containerd.sock"\n'
            f'[ttrpc]\n  address = "{base}/containerd.sock.ttrpc"\n'
            f'[debug]\n  address = "{base}/debug.sock"\n')
        log = open(base / "log", "wb")  # the daemon keeps its own copy
        self.ctr_daemon = subprocess.Popen(["containerd", "--config", str(base / "config.toml")],
                                           stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=CHILD_ENV)
        log.close()
        self.ctr_global = [str(tools["ctr"]), "--address", str(base / "containerd.sock")]
        deadline = time.monotonic() + 30
        while self.sp.text([*self.ctr_global, "version"])[0] != 0:
            if time.monotonic() > deadline or self.ctr_daemon.poll() is not None:
                return "containerd did not come up: " + (base / "log").read_text()[-300:]
            time.sleep(0.1)
        self.ctr_rootfs = self.workdir / "ctr-rootfs"
        shutil.copytree(self.rootfs, self.ctr_rootfs, symlinks=True, copy_function=os.link)
        self.write_calllog_wrappers()
        return None

    def write_calllog_wrappers(self) -> None:
        """Per runtime, an engine's BinaryName that logs each call's arguments (CALLLOG)."""
        for rt in self.runtimes:
            wrapper = self.calllog_wrapper(rt)
            wrapper.write_text(CALLLOG.format(real=rt.path, log=self.calllog(rt)))
            wrapper.chmod(0o755)

    def calllog_wrapper(self, rt: Runtime) -> Path:
        return self.workdir / f"calllog-{rt.name}"

    def calllog(self, rt: Runtime) -> Path:
        return self.workdir / f"calls-{rt.name}.log"

    def engine_run(self, rt: Runtime, engine: str, run: Callable[[bool], Result], record: bool) -> None:
        """One `ENGINE run --rm` (run(logged)). The warm-up round goes through the call-logging
        wrapper, which names the runtime calls the shim makes; a recorded round goes to the
        runtime itself, and the kernel's trace of it times each call (ExecTrace)."""
        if getattr(rt, f"{engine}_error") is not None:
            return
        if not record:
            self.calllog(rt).write_text("")
        elif self.exec_trace is not None:
            self.exec_trace.clear()
        r = run(not record)
        if r.rc != 0:
            setattr(rt, f"{engine}_error", first_error_line(r.output))
        elif not record:
            rt.notes[f"{engine}_calls"] = " ".join(parse_calllog(self.calllog(rt).read_text()))
        else:
            self.record_calls(rt, engine, r.ns / 1e6)

    def record_calls(self, rt: Runtime, engine: str, total_ms: float) -> None:
        """The engine's total, the runtime's calls in it (as the trace timed them: the sum, each
        by the name the wrapper logged at its place) and the rest: the engine's own time."""
        rt.add(f"{engine}_ms", total_ms)
        calls = self.exec_trace.calls(rt.path) if self.exec_trace is not None else []
        if not calls:
            return
        names = rt.notes.get(f"{engine}_calls", "").split()
        rt.add(f"{engine}_calls_ms", sum(calls))
        rt.add(f"{engine}_outside_ms", total_ms - sum(calls))
        if len(names) != len(calls):
            rt.notes[f"{engine}_calls_differ"] = f"{len(calls)} calls traced in a run, {len(names)} logged"
            return
        for name, ms in zip(names, calls, strict=True):
            rt.add(f"{engine}_call_{name}_ms", ms)

    def start_trace(self) -> ExecTrace | None:
        remove_stale_traces()
        try:
            return ExecTrace(f"ocibench-{os.getpid()}")
        except OSError as e:
            self.errors.append(f"the runtime's calls under the engines are not timed: tracefs at {TRACEFS}: "
                               f"{e.strerror}")
            return None

    def ctr_run(self, rt: Runtime, binary: str) -> Result:
        with self._seq_lock:
            self._seq += 1
            cid = f"ocibench-{os.getpid()}-c{self._seq}"
        self.ctr_ids.add(cid)
        r = self.sp.call([*self.ctr_global, "run", "--rm", "--runtime", "io.containerd.runc.v2",
                          "--runc-binary", binary, "--runc-root", str(self.workdir / f"ctr-root-{rt.name}"),
                          "--rootfs", str(self.ctr_rootfs), cid, "/bin/true"], timeout=60)
        if r.rc == 0:
            self.ctr_ids.discard(cid)
        return r

    def one_ctr(self, rt: Runtime, record: bool) -> None:
        self.engine_run(rt, "ctr", lambda logged: self.ctr_run(rt, str(self.calllog_wrapper(rt)) if logged
                                                               else rt.path), record)

    def ctr_teardown(self) -> None:
        daemon = getattr(self, "ctr_daemon", None)
        if daemon is None:
            return
        for cid in list(self.ctr_ids):
            self.sp.text([*self.ctr_global, "task", "kill", "-s", "SIGKILL", cid])
            self.sp.text([*self.ctr_global, "task", "rm", "-f", cid])
            self.sp.text([*self.ctr_global, "container", "rm", cid])
        daemon.terminate()
        try:
            daemon.wait(20)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait(10)
        unmount_under(self.ctr_base)
        shutil.rmtree(self.ctr_base, ignore_errors=True)

    # ---- dockerd (docker run --rm)

    def docker_setup(self) -> str | None:
        """A private dockerd: its own config, data-root, exec-root, pidfile and socket, no bridge and
        no iptables (the containers run with --network none), its containers' cgroups under a
        parent named after its directory, and every runtime added with --add-runtime the same way
        (runc too, not dockerd's built-in entry). The image is the bench's busybox rootfs, made
        with `docker import` of a tar (no registry). Returns why docker cannot be measured, or None."""
        dockerd = shutil.which("dockerd", path=CHILD_ENV["PATH"])
        # Debian's client, of the same release as its dockerd (as tests/clients uses).
        docker = DOCKER_CLIENT if os.access(DOCKER_CLIENT, os.X_OK) else shutil.which("docker", path=CHILD_ENV["PATH"])
        if dockerd is None or docker is None:
            return f"dockerd is not installed {install_hint()}"
        base = Path(tempfile.mkdtemp(prefix="ocibdk-", dir="/tmp"))  # short: socket paths
        self.docker_base = base
        (base / "daemon.json").write_text("{}\n")  # not the host's /etc/docker/daemon.json
        (base / "client").mkdir()
        sock = base / "docker.sock"
        argv = [dockerd, "--config-file", str(base / "daemon.json"), "--data-root", str(base / "data"),
                "--exec-root", str(base / "exec"), "--pidfile", str(base / "docker.pid"),
                "-H", f"unix://{sock}", "--bridge", "none", "--iptables=false", "--ip-masq=false",
                "--ip-forward=false", "--storage-driver", "overlay2",
                "--exec-opt", "native.cgroupdriver=cgroupfs", "--cgroup-parent", f"/{base.name}",
                # dockerd's default nofile exceeds this sandbox's hard limit (see podman_setup).
                "--default-ulimit", "nofile=1024:1024", "--log-level", "warn"]
        self.write_calllog_wrappers()
        for rt in self.runtimes:
            argv += ["--add-runtime", f"{DOCKER_RUNTIME_PREFIX}{rt.name}={rt.path}",
                     "--add-runtime", f"{DOCKER_RUNTIME_PREFIX}log-{rt.name}={self.calllog_wrapper(rt)}"]
        log = open(base / "dockerd.log", "wb")  # the daemon keeps its own copy
        self.docker_daemon = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                              env=CHILD_ENV)
        log.close()
        self.docker_global = [docker, "--config", str(base / "client"), "-H", f"unix://{sock}"]
        deadline = time.monotonic() + 60
        while self.sp.text([*self.docker_global, "version"])[0] != 0:
            if time.monotonic() > deadline or self.docker_daemon.poll() is not None:
                return "dockerd did not come up: " + (base / "dockerd.log").read_text()[-300:]
            time.sleep(0.2)
        tar = base / "busybox.tar"
        rc, out = self.sp.text(["tar", "-C", str(self.rootfs), "--numeric-owner", "-cf", str(tar), "."])
        if rc != 0:
            return f"tar of the rootfs: {out.strip()[-300:]}"
        rc, out = self.sp.text([*self.docker_global, "import", str(tar), DOCKER_IMAGE], timeout=120)
        if rc != 0:
            return f"docker import: {first_error_line(out)}"
        return None

    def docker_run(self, rt: Runtime, runtime_name: str) -> Result:
        with self._seq_lock:
            self._seq += 1
            name = f"ocibench-{os.getpid()}-d{self._seq}"
        self.docker_names.add(name)
        r = self.sp.call([*self.docker_global, "run", "--rm", "--name", name, "--runtime", runtime_name,
                          "--network", "none", DOCKER_IMAGE, "true"], timeout=60)
        if r.rc != 0:
            self.docker_rm(name)
        else:
            self.docker_names.discard(name)
        reap_strays()
        return r

    def one_docker(self, rt: Runtime, record: bool) -> None:
        self.engine_run(rt, "docker", lambda logged: self.docker_run(
            rt, f"{DOCKER_RUNTIME_PREFIX}{'log-' if logged else ''}{rt.name}"), record)

    def docker_rm(self, name: str) -> None:
        self.sp.text([*self.docker_global, "rm", "--force", name], timeout=60)
        self.docker_names.discard(name)

    def docker_teardown(self) -> None:
        daemon = getattr(self, "docker_daemon", None)
        if daemon is None:
            return
        base = self.docker_base
        if daemon.poll() is None:
            for name in list(self.docker_names):
                self.docker_rm(name)
        daemon.terminate()
        try:
            daemon.wait(40)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait(10)
        # What a daemon that did not stop cleanly left: its containerd and shims name our
        # private directory on their command line, which nothing else can.
        kill_processes_mentioning(str(base))
        unmount_under(base)
        remove_cgroup_dirs(base.name)
        shutil.rmtree(base, ignore_errors=True)

    # ---- orchestration

    def interleaved(self, label: str, fn: Callable[[Runtime, bool], None], rounds: int) -> None:
        """One unrecorded warm-up round (page cache, first-run setup), then `rounds` rounds of
        A, B, C."""
        for i in range(rounds + 1):
            for rt in self.runtimes:
                fn(rt, i > 0)
        progress(f"{label}: done")

    def run_all(self) -> None:
        only = self.args.only
        python = self.python
        if "baseline" in only and python:
            self.interleaved("baseline", lambda rt, rec: self.one_baseline(python, rt, rec)
                             if rt is self.runtimes[0] else None, self.args.iterations)
        if "installs" in only:
            self.installs()
        if "imports" in only:
            self.interleaved("imports", self.one_imports, self.args.iterations)
        if "cmds" in only:
            self.interleaved("cmds", self.one_cmds, self.args.iterations)
        if "rss" in only:
            if os.access(GNU_TIME, os.X_OK):
                self.interleaved("rss", self.one_rss, self.args.rss_iterations)
            else:
                self.errors.append(f"peak RSS not measured: {GNU_TIME} missing (apt-get install time)")
        if "lifecycle" in only:
            self.interleaved("lifecycle", self.one_lifecycle, self.args.iterations)
        if "run" in only:
            self.interleaved("run", self.one_run, self.args.iterations)
        if "throughput" in only:
            for _ in range(self.args.throughput_rounds):
                for rt in self.runtimes:
                    self.one_throughput(rt, 1)
                for rt in self.runtimes:
                    self.one_throughput(rt, 2)
            progress("throughput: done")
        if "memlimit" in only:
            self.memlimit()
            progress("memlimit: done")
        if "podman" in only:
            why = self.podman_setup()
            if why is not None:
                for rt in self.runtimes:
                    rt.podman_error = why
            else:
                self.interleaved("podman", self.one_podman, self.args.podman_iterations)
        if "ctr" in only or "docker" in only:
            self.exec_trace = self.start_trace()
        if "ctr" in only:
            why = self.ctr_setup()
            if why is not None:
                for rt in self.runtimes:
                    rt.ctr_error = why
            else:
                self.interleaved("ctr", self.one_ctr, self.args.podman_iterations)
        if "docker" in only:
            why = self.docker_setup()
            if why is not None:
                for rt in self.runtimes:
                    rt.docker_error = why
            else:
                self.interleaved("docker", self.one_docker, self.args.podman_iterations)

    def cleanup(self) -> None:
        for name, cid in list(self.live):
            self.force_delete(self.by_name(name), cid)
        # Anything a runtime left in its private root (a create that died half way).
        for rt in self.runtimes:
            for entry in rt.root.iterdir() if rt.root.exists() else []:
                if entry.name.startswith("ocibench-"):
                    self.force_delete(rt, entry.name)
        for name in list(self.podman_names):
            self.podman_rm(name)
        self.ctr_teardown()
        self.docker_teardown()
        if self.exec_trace is not None:
            self.exec_trace.close()
            self.exec_trace = None
        reap_strays()


# --------------------------------------------------------------------------------------------
# Engines' runtime calls and install paths


# The runtime commands an engine calls, in the order reported.
CALL_NAMES = ("create", "start", "state", "kill", "delete", "features", "exec", "other")


def parse_calllog(text: str) -> list[str]:
    """The command of each line of a CALLLOG log: the first known verb in its arguments."""
    return [next((a for a in line.split() if a in CALL_NAMES), "other") for line in text.splitlines() if line]


def source_key() -> str:
    """A hash of what an install builds from: venvs are rebuilt when it changes."""
    h = hashlib.sha256()
    for rel in INSTALL_SOURCES:
        base = REPO / rel
        files = [base] if base.is_file() else sorted(f for f in base.rglob("*") if f.is_file())
        for f in files:
            if "__pycache__" in f.parts or f.suffix in (".so", ".pyc") or f.name == "_validators.py":
                continue
            h.update(str(f.relative_to(REPO)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def venv_path(kind: str) -> Path:
    return Path(VENV_PREFIX + kind)


def build_install_venvs() -> str | None:
    """`pip install .` into one venv, a wheel built and installed into another, as a user does
    (deps from the package index). Reused while the sources are unchanged. Runs before the heavy
    lock is taken: it compiles, but creates no container. Returns why it failed, or None."""
    key = source_key()
    if all((venv_path(k) / ".ocibench-key").is_file() and (venv_path(k) / ".ocibench-key").read_text() == key
           for k in ("pip", "wheel")):
        return None
    progress("building the install-path venvs (pip install ., a wheel) in " + VENV_PREFIX + "*")
    with tempfile.TemporaryDirectory(prefix="ocibench-src-") as tmp:
        src = Path(tmp) / "src"  # a copy: pip's in-tree build must not touch the work tree
        for rel in INSTALL_SOURCES:
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            if (REPO / rel).is_dir():
                shutil.copytree(REPO / rel, src / rel, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
            else:
                shutil.copy2(REPO / rel, src / rel)
        wheels = Path(tmp) / "wheels"
        for kind in ("pip", "wheel"):
            venv = venv_path(kind)
            shutil.rmtree(venv, ignore_errors=True)
            steps = [["/usr/bin/python3", "-m", "venv", str(venv)]]
            pip = [str(venv / "bin" / "pip"), "--disable-pip-version-check", "-q"]
            if kind == "pip":
                steps.append([*pip, "install", str(src)])
            else:
                steps.append([*pip, "wheel", "--no-deps", "-w", str(wheels), str(src)])
                steps.append([*pip, "install", "WHEEL"])  # the file, never a name an index could answer
            for cmd in steps:
                cmd = [str(next(wheels.glob("ociruntime-*.whl"))) if a == "WHEEL" else a for a in cmd]
                p = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp)
                if p.returncode != 0:
                    return f"{' '.join(cmd[:4])}...: {(p.stderr or p.stdout).strip()[-300:]}"
        pip_venv = venv_path("pip")
        python = pip_venv / "bin" / "python3"
        site = next((pip_venv / "lib").glob("python3*/site-packages"))
        for name, text in (("ociruntime-install-sh", install_sh_launcher(python, site)),
                           ("ociruntime-console-script", PIP_CONSOLE_WRAPPER.format(python=python))):
            (pip_venv / "bin" / name).write_text(text)
            (pip_venv / "bin" / name).chmod(0o755)
        (site / f"{FLOOR_MODULE}.py").write_text('"""Empty: `python3 -m` of it is the floor of -m."""\n')
        for kind in ("pip", "wheel"):
            (venv_path(kind) / ".ocibench-key").write_text(key)
    return None


# Not judged, for reference: what was there before, and the floor of `python3 -m` (an empty
# module: site and runpy run before any module's code, ours or not).
FLOOR_OF_M = "`python3 -m` of an empty module (the floor of `-m`: site, runpy)"
FLOOR_MODULE = "ocibench_empty"
REFERENCE_ONLY = ("pip's console-script", FLOOR_OF_M)


def judged_install(name: str) -> bool:
    return not name.startswith(REFERENCE_ONLY)


def install_variants() -> list[tuple[str, list[str]]] | str:
    """(label, argv prefix) per install path; the first is the reference. Or why not."""
    pip_bin, wheel_bin = venv_path("pip") / "bin", venv_path("wheel") / "bin"
    variants = [
        ("scripts/install.sh's launcher (`#!python3 -IS`)", [str(pip_bin / "ociruntime-install-sh")]),
        ("`pip install .`", [str(pip_bin / "ociruntime")]),
        ("a wheel, `pip install ociruntime-*.whl`", [str(wheel_bin / "ociruntime")]),
        ("`python3 -m ociruntime`", [str(pip_bin / "python3"), "-m", "ociruntime"]),
        ("pip's console-script wrapper (what `pip install .` gave before)",
         [str(pip_bin / "ociruntime-console-script")]),
        (FLOOR_OF_M, [str(pip_bin / "python3"), "-m", FLOOR_MODULE]),
    ]
    for _, argv in variants:
        if not os.access(argv[0], os.X_OK):
            return f"{argv[0]} missing (the venvs are built before the lock is taken)"
    return variants


# --------------------------------------------------------------------------------------------
# Measurements of processes and the machine


def install_hint() -> str:
    return "(not in the test guest's image)" if os.environ.get(GUEST_ENV) else "(scripts/install-engines.sh)"


def remove_cgroup_dirs(name: str) -> None:
    """rmdir the cgroup `/name` (an engine's --cgroup-parent, named after our private directory)
    and what is below it, in every hierarchy; they are empty once the engine is gone."""
    cgroot = Path("/sys/fs/cgroup")
    tops = [cgroot / name] + [h / name for h in cgroot.iterdir() if h.is_dir() and not h.is_symlink()]
    for top in tops:
        if top.is_dir():
            rmdir_cgroup_tree(top)


def init_memory(pid: int) -> tuple[int | None, int | None]:
    """(VmHWM, Pss) in KiB of a process; None where unreadable."""
    hwm = pss = None
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
    return hwm, pss


def launcher_interpreter(path: str) -> str | None:
    """The interpreter named in a script's #! line (our launcher), or None for a binary."""
    try:
        with open(path, "rb") as f:
            head = f.readline()
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    parts = head[2:].decode().split()
    return parts[0] if parts and "python" in parts[0] else None


def machine_info(bench: Bench) -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = {}
    for rt in bench.runtimes:
        rc, out = bench.sp.text([rt.path, "--version"])
        rt.version = out.strip().splitlines()[0] if out.strip() else f"unknown (rc {rc})"
        versions[rt.name] = out.strip()
    rc, podman_v = bench.sp.text(["podman", "--version"])
    rc_git, git = bench.sp.text(["git", "-C", str(REPO), "describe", "--always", "--dirty"])
    mem_kib = 0
    with contextlib.suppress(OSError, ValueError):
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "kernel": platform.release(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "mem_gib": round(mem_kib / 1048576, 1),
        "os": distro(),
        "python": sys.version.split()[0],
        "versions": versions,
        "podman": podman_v.strip() if rc == 0 else None,
        "git": os.environ.get(GIT_ENV) or (git.strip() if rc_git == 0 else None),
        "cgroups": cgroup_layout(),
        "guest": bool(os.environ.get(GUEST_ENV)),
    }


def cgroup_layout() -> str:
    """What the runtimes see at /sys/fs/cgroup, in this (private) mount namespace."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == "/sys/fs/cgroup" and fields[fields.index("-") + 1] == "cgroup2":
                return "cgroup v2 unified"
    return ("v1 (hybrid host; cgroup2 at /sys/fs/cgroup/unified unmounted in the benchmark's private "
            "mount namespace)")


def distro() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    return ""


# --------------------------------------------------------------------------------------------
# Report

# (metric key, label, unit)
ROWS: list[tuple[str, str, str]] = [
    ("bare_python_ms", "bare interpreter `python3 -I -S -c pass` (the floor of our CLI)", "ms"),
    ("cmds_floor_ms", "... the same, in the rounds of the commands below (the floor their "
     "`floor + 1.5 ms` targets are judged on)", "ms"),
    # Both processes print: the child imports the child side after the fork, in parallel.
    ("create_imports_ms", "`create`: import time above the bare interpreter (`-X importtime`, the runtime "
     "and its child)", "ms"),
    ("run_imports_ms", "`run`: import time above the bare interpreter (`-X importtime`, the runtime and its "
     "child)", "ms"),
    ("create_ms", "`create` (sleep container)", "ms"),
    ("start_ms", "`start`", "ms"),
    ("state_ms", "`state` (created)", "ms"),
    ("exec_ms", "`exec ID true` (running)", "ms"),
    ("kill_ms", "`kill ID KILL` (running)", "ms"),
    ("delete_ms", "`delete` (stopped)", "ms"),
    ("lifecycle_ms", "lifecycle create→start→wait→delete of `true`", "ms"),
    ("lifecycle_create_ms", "... of which `create` (incl. reading the pid file)", "ms"),
    ("lifecycle_start_ms", "... of which `start`", "ms"),
    ("lifecycle_wait_ms", "... of which start returned → init exited", "ms"),
    ("lifecycle_delete_ms", "... of which `delete`", "ms"),
    ("lifecycle_cpu_ms", "... CPU time of all its processes, the init included (rusage: what a busy host pays)",
     "ms"),
    ("run_ms", "foreground `run` of `true`", "ms"),
    ("throughput_seq_cps", "lifecycles sequential", "containers/s"),
    ("throughput_par2_cps", "lifecycles 2-way parallel", "containers/s"),
    ("podman_ms", "`podman run --rm` of `true`", "ms"),
    ("ctr_ms", "`ctr run --rm` of `true` (containerd, runc v2 shim)", "ms"),
    ("ctr_calls_ms", "... of which inside the runtime's calls (sum; traced, from the shim's fork to the exit)", "ms"),
    ("ctr_outside_ms", "... of which outside them (ctr, containerd, the shim)", "ms"),
    *[(f"ctr_call_{c}_ms", f"... runtime `{c}` as the shim calls it (per call)", "ms") for c in CALL_NAMES],
    ("docker_ms", "`docker run --rm` of `true` (dockerd, runc v2 shim)", "ms"),
    ("docker_calls_ms", "... of which inside the runtime's calls (sum; traced, from the shim's fork to the exit)",
     "ms"),
    ("docker_outside_ms", "... of which outside them (docker, dockerd, containerd, the shim)", "ms"),
    *[(f"docker_call_{c}_ms", f"... runtime `{c}` as the shim calls it (per call)", "ms") for c in CALL_NAMES],
    ("bare_python_rss_mib", "peak RSS bare interpreter", "MiB"),
    ("create_rss_mib", "peak RSS `create`", "MiB"),
    ("start_rss_mib", "peak RSS `start`", "MiB"),
    ("state_rss_mib", "peak RSS `state`", "MiB"),
    ("exec_rss_mib", "peak RSS `exec`", "MiB"),
    ("kill_rss_mib", "peak RSS `kill`", "MiB"),
    ("delete_rss_mib", "peak RSS `delete`", "MiB"),
    ("run_rss_mib", "peak RSS `run`", "MiB"),
    ("init_hwm_mib", "waiting init VmHWM (between create and start)", "MiB"),
    ("init_pss_mib", "waiting init Pss (between create and start)", "MiB"),
    ("memlimit_min_kib", "smallest memory.limit that runs `true`", "KiB"),
    ("mem4mib_ok", "runs `true` under a 4 MiB limit (success rate)", ""),
]
CLI_COMMANDS = ("create", "start", "state", "exec", "kill", "delete", "run")
INSTALL_SLACK_MS = 1.0  # issue 14: every install path within 1 ms of the launcher per call


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def fmt_kib(kib: float) -> str:
    return f"{kib / 1024:.2f} MiB" if kib >= 1024 else f"{kib:.0f} KiB"


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "KiB":
        return fmt_kib(value)
    if unit == "":
        return f"{value:.0%}"
    if unit == "MiB":
        return f"{value:.1f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def fmt_spread(values: list[float], unit: str) -> str:
    """median, and (min-max) for timings."""
    mid = fmt(median(values), unit)
    if unit != "ms" or len(values) < 2:
        return mid
    return f"{mid} ({fmt(min(values), unit)}-{fmt(max(values), unit)})"


def na_reason(rt: Runtime, key: str) -> str:
    if key.startswith("exec") and rt.exec_error:
        return "n/a"
    if key == "podman_ms" and rt.podman_error:
        return "n/a"
    if key.startswith("ctr_") and rt.ctr_error:
        return "n/a"
    if key.startswith("docker_") and rt.docker_error:
        return "n/a"
    if key == "memlimit_min_kib" and "memlimit_min" in rt.notes and key not in rt.samples:
        return rt.notes["memlimit_min"]
    return "—"


def summary(bench: Bench) -> dict[str, dict[str, float | None]]:
    return {rt.name: {k: median(v) for k, v in rt.samples.items()} for rt in bench.runtimes}


def targets(bench: Bench, emulated: bool = False) -> dict[str, tuple[str, bool | None, str]]:
    """Issue 14's targets on this run's medians: metric key -> (target, met?, measured). Under
    emulation only the ratio targets are judged: absolute milliseconds mean nothing under TCG."""
    med = summary(bench)
    ours = bench.runtimes[0].name
    o, r = med[ours], med.get("runc", {})
    out: dict[str, tuple[str, bool | None, str]] = {}

    def vs_runc(key: str, op: str, limit: float) -> None:
        if o.get(key) is None or not r.get(key):
            return
        x = o[key] / r[key]
        out[key] = (f"{op} {limit:g}x runc", x <= limit if op == "≤" else x >= limit, f"{x:.2f}x")

    for key in ("create_imports_ms", "run_imports_ms"):
        if o.get(key) is not None and not emulated:
            out[key] = ("≤ 2 ms", o[key] <= 2.0, f"{o[key]:.2f} ms")
    bare = o.get("cmds_floor_ms", o.get("bare_python_ms")) if not emulated else None
    for cmd in ("start", "state", "kill", "delete"):
        key = f"{cmd}_ms"
        if bare is not None and o.get(key) is not None:
            over = o[key] - bare
            out[key] = ("≤ floor + 1.5 ms", over <= 1.5, f"floor + {over:.2f} ms")
    vs_runc("run_ms", "≤", 0.8)
    vs_runc("lifecycle_ms", "≤", 1.05)
    vs_runc("throughput_par2_cps", "≥", 1.0)
    for key in ("podman_ms", "ctr_ms", "docker_ms"):
        vs_runc(key, "≤", 1.03)
    for cmd in CLI_COMMANDS:
        vs_runc(f"{cmd}_rss_mib", "≤", 1.0)
    vs_runc("init_pss_mib", "≤", 1.0)
    if o.get("mem4mib_ok") is not None:
        out["mem4mib_ok"] = ("100%", o["mem4mib_ok"] == 1.0, f"{o['mem4mib_ok']:.0%}")
    return out


# Issue 14's targets, numbered as in the issue, with the rows (metric keys) that judge each.
ISSUE_TARGETS: list[tuple[int, str, tuple[str, ...]]] = [
    (1, "every install path within 1 ms of the launcher per call", ()),  # the install-path table
    (2, "`create`/`run` imports ≤ 2 ms above the bare interpreter", ("create_imports_ms", "run_imports_ms")),
    (3, "`start`/`state`/`kill`/`delete` each ≤ floor + 1.5 ms", ("start_ms", "state_ms", "kill_ms", "delete_ms")),
    (4, "foreground `run` ≤ 0.8x runc, lifecycle ≤ 1.05x runc, 2-way throughput ≥ runc",
     ("run_ms", "lifecycle_ms", "throughput_par2_cps")),
    (5, "engine level ≤ 1.03x runc: `ctr`, `podman`, `docker run --rm`", ("ctr_ms", "podman_ms", "docker_ms")),
    (6, "waiting-init Pss and CLI peak RSS ≤ runc, `true` runs under a 4 MiB limit",
     ("init_pss_mib", *(f"{c}_rss_mib" for c in CLI_COMMANDS), "mem4mib_ok")),
    (7, "the same bench in the cgroup v2 guest (ratios; emulated)", ()),
]


def short_key(key: str) -> str:
    for suffix in ("_ms", "_cps", "_mib", "_ok"):
        key = key.removesuffix(suffix)
    return key


def issue_target_rows(goals: dict[str, tuple[str, bool | None, str]],
                      installs: list[tuple[str, str, str, bool]], guest: bool) -> list[tuple[int, str, str, str]]:
    """(number, target, measured, verdict) per issue-14 target: its rows' verdicts folded, and what
    was not measured named, so a target never passes on missing rows."""
    out = []
    for num, text, keys in ISSUE_TARGETS:
        if num == 1:
            judged = [(name, diff, ok) for name, _, diff, ok in installs[1:]
                      if judged_install(name)]
            if guest:
                measured, verdict = "not run in the guest (no package index there; not cgroup-related)", "—"
            elif not judged:
                measured, verdict = "not measured (`--only installs`)", "not measured"
            else:
                measured = ", ".join(f"{name} {diff}" for name, diff, _ in judged)
                verdict = "pass" if all(ok for _, _, ok in judged) else "**FAIL**"
        elif num == 7:
            measured = "this report" if guest else "`bench/run --guest` writes bench/RESULTS-v2.md"
            verdict = "—"
        elif guest and num in (2, 3):
            measured, verdict = "absolute times: judged on the host only", "—"
        else:
            missing = [short_key(k) for k in keys if k not in goals]
            measured = ", ".join(f"{short_key(k)} {goals[k][2]}" for k in keys if k in goals)
            if missing:
                measured += ("; " if measured else "") + "not measured: " + ", ".join(missing)
            if any(goals[k][1] is False for k in keys if k in goals):
                verdict = "**FAIL**"
            else:
                verdict = "incomplete" if missing else "pass"
        out.append((num, text, measured, verdict))
    return out


def install_rows(bench: Bench) -> list[tuple[str, str, str, bool]]:
    """(install path, state ms spread, difference to the launcher, met?)"""
    samples = bench.install_samples
    if not samples:
        return []
    ref = median(next(iter(samples.values())))
    rows = []
    for i, (name, values) in enumerate(samples.items()):
        diff = median(values) - ref
        rows.append((name, fmt_spread(values, "ms"), "reference" if i == 0 else f"{diff:+.2f} ms",
                     diff <= INSTALL_SLACK_MS))
    return rows


def markdown(bench: Bench, meta: dict[str, Any], elapsed: float) -> str:
    rts = bench.runtimes
    ours = rts[0]
    others = rts[1:]
    med = summary(bench)
    guest = bool(meta.get("guest"))
    goals = targets(bench, emulated=guest)
    out: list[str] = []
    if guest:
        out.append("**cgroup v2 + systemd test guest under qemu TCG (emulated CPU; `bench/run --guest`): "
                   "absolute times are several times the host's and mean nothing by themselves; read the "
                   "ratios only.** Targets in absolute milliseconds (imports, floor + 1.5 ms) are judged "
                   "on the host (bench/RESULTS.md).")
        out.append("")
    out.append(f"Date {meta['date']}; {meta['os']}; kernel {meta['kernel']}; CPU {meta['cpu']} "
               f"x {meta['cpus']}; {meta['mem_gib']} GiB; {meta['cgroups']}.")
    out.append("")
    out.append("Versions: " + "; ".join(f"{rt.name}: {rt.version}" for rt in rts)
               + (f"; {meta['podman']}" if meta.get("podman") else "")
               + (f"; repo {meta['git']}" if meta.get("git") else "") + ".")
    out.append("")
    a = bench.args
    parts = [f"Medians (min-max) of {a.iterations} interleaved rounds (after one warm-up round each)"]
    if any(k.endswith("_rss_mib") for rt in rts for k in rt.samples):
        parts.append(f"peak RSS: {a.rss_iterations} rounds under GNU time")
    if "throughput" in a.only:
        parts.append(f"throughput: {a.throughput_n} lifecycles x {a.throughput_rounds} round(s)")
    engines = [e for e in ("podman", "ctr", "docker") if e in a.only]
    if engines:
        parts.append(f"{', '.join(engines)}: {a.podman_iterations} rounds")
    if "memlimit" in a.only:
        parts.append(f"memory limit: {a.bisect_steps} bisection steps, {a.mem4_tries} probes at 4 MiB")
    out.append("; ".join(parts) + f"; the run took {elapsed:.0f} s.")
    out.append("")
    header = ["metric", *[rt.name for rt in rts], *[f"{ours.name}/{o.name}" for o in others],
              "target", "pass"]
    out.append("| " + " | ".join(header) + " |")
    out.append("|" + "---|" * len(header))
    for key, label, unit in ROWS:
        if not any(key in rt.samples for rt in rts) and not (
                key.startswith("exec") and any(rt.exec_error for rt in rts)) and not (
                key == "podman_ms" and any(rt.podman_error for rt in rts)) and not (
                key == "ctr_ms" and any(rt.ctr_error for rt in rts)) and not (
                key == "docker_ms" and any(rt.docker_error for rt in rts)):
            continue
        cells = [f"{label} ({unit})" if unit and unit != "KiB" else label]
        for rt in rts:
            cells.append(fmt_spread(rt.samples[key], unit) if rt.samples.get(key) else na_reason(rt, key))
        for o in others:
            a_, b_ = med[ours.name].get(key), med[o.name].get(key)
            cells.append(f"{a_ / b_:.2f}" if a_ is not None and b_ else "—")
        goal = goals.get(key)
        cells += [goal[0], "pass" if goal[1] else "**FAIL**"] if goal else ["", ""]
        out.append("| " + " | ".join(cells) + " |")
    rows = install_rows(bench)
    if rows:
        out.append("")
        out.append(f"Install paths: `state` of one created container through each (the same code, from this "
                   f"tree; venvs in {VENV_PREFIX}*), medians (min-max) of {a.iterations} interleaved rounds:")
        out.append("")
        out.append("| install path | `state` (ms) | vs launcher | target | pass |")
        out.append("|---|---|---|---|---|")
        for i, (name, spread, diff, ok) in enumerate(rows):
            before = not judged_install(name)
            target = "" if i == 0 or before else f"≤ launcher + {INSTALL_SLACK_MS:g} ms"
            verdict = "" if i == 0 or before else ("pass" if ok else "**FAIL**")
            out.append(f"| {name} | {spread} | {diff} | {target} | {verdict} |")
    notes = []
    for rt in rts:
        if rt.exec_error:
            notes.append(f"- {rt.name} `exec`: n/a — {rt.exec_error}")
        if rt.podman_error:
            notes.append(f"- {rt.name} under podman: n/a — {rt.podman_error}")
        if rt.ctr_error:
            notes.append(f"- {rt.name} under containerd: n/a — {rt.ctr_error}")
        if rt.docker_error:
            notes.append(f"- {rt.name} under dockerd: n/a — {rt.docker_error}")
        for engine in ("ctr", "docker"):
            if f"{engine}_calls" in rt.notes:
                notes.append(f"- {rt.name}: runtime calls of one `{engine} run --rm`: {rt.notes[engine + '_calls']}")
            if f"{engine}_calls_differ" in rt.notes:
                notes.append(f"- {rt.name} under {engine}: calls not named: {rt.notes[engine + '_calls_differ']}")
        if "memlimit_min" in rt.notes:
            notes.append(f"- {rt.name} memory limit bisection: {rt.notes['memlimit_min']}")
    for err in bench.errors:
        notes.append(f"- error: {err}")
    if notes:
        out.append("")
        out.extend(notes)
    out.append("")
    out.append("Issue 14 targets:")
    out.append("")
    out.append("| # | target | measured (ours vs runc) | pass |")
    out.append("|---|---|---|---|")
    for num, text, measured, verdict in issue_target_rows(goals, rows, guest):
        out.append(f"| {num} | {text} | {measured} | {verdict} |")
    met = [k for k, g in goals.items() if g[1]]
    missed = [k for k, g in goals.items() if g[1] is False]
    missed += [name for name, _, _, ok in rows[1:] if not ok and judged_install(name)]
    out.append("")
    out.append(f"Issue 14 targets ({ours.name} vs runc): {len(met) + sum(1 for r_ in rows[1:-1] if r_[3])} met, "
               f"{len(missed)} not met" + (f" ({', '.join(missed)})" if missed else "") + ".")
    return "\n".join(out) + "\n"


def to_json(bench: Bench, meta: dict[str, Any], elapsed: float) -> dict[str, Any]:
    return {
        "meta": meta,
        "elapsed_s": round(elapsed, 1),
        "args": {k: v for k, v in vars(bench.args).items() if k not in ("json", "markdown")},
        "medians": summary(bench),
        "samples": {rt.name: rt.samples for rt in bench.runtimes},
        "notes": {rt.name: {**rt.notes, "exec_error": rt.exec_error,
                            "podman_error": rt.podman_error, "ctr_error": rt.ctr_error,
                            "docker_error": rt.docker_error} for rt in bench.runtimes},
        "errors": bench.errors,
    }


# --------------------------------------------------------------------------------------------
# Entry


def progress(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/run", description="Benchmark ociruntime against runc and crun (interleaved).")
    p.add_argument("-n", "--iterations", type=int,
                   help="recorded rounds for per-command, lifecycle, run (default 30; --guest 10)")
    p.add_argument("--throughput-n", type=int, help="lifecycles per throughput batch (default 50; --guest 20)")
    p.add_argument("--throughput-rounds", type=int,
                   help="throughput batches per runtime and mode (default 3; --guest 1)")
    p.add_argument("--rss-iterations", type=int, default=5,
                   help="recorded rounds of peak-RSS measurement (default 5)")
    p.add_argument("--podman-iterations", type=int,
                   help="recorded rounds of each engine row: podman, ctr, docker (default 20; --guest 5)")
    p.add_argument("--bisect-steps", type=int, default=6,
                   help="memory-limit bisection steps in log2 space (6: within ~9%%)")
    p.add_argument("--mem4-tries", type=int, default=3, help="direct probes of a 4 MiB limit")
    p.add_argument("--only",
                   help=f"comma-separated subset of: {','.join(MEASUREMENTS)} (default all; --guest all "
                        "but installs)")
    p.add_argument("--runtime", action="append", metavar="NAME=PATH",
                   help="runtime to measure (repeatable; first is 'ours' in ratios; "
                        "default ociruntime, runc, crun)")
    p.add_argument("--json", metavar="FILE", help="write all samples and medians as JSON")
    p.add_argument("--markdown", metavar="FILE", help="also write the markdown report here")
    p.add_argument("--keep-unified", action="store_true",
                   help="do not unmount /sys/fs/cgroup/unified (crun will then fail here)")
    p.add_argument("--guest", action="store_true",
                   help="run the bench in the cgroup v2 + systemd qemu guest (tests/vm/run: TCG, ratios "
                        "only) with this tree installed as /usr/local/bin/ociruntime; writes "
                        "bench/RESULTS-v2.md unless --markdown says otherwise")
    args = p.parse_args(argv)
    # TCG runs everything several times slower: fewer rounds, and no install-path venvs (the
    # guest has no package index; install paths do not depend on the cgroup layout).
    guest = args.guest
    for name, host, in_guest in (("iterations", 30, 10), ("throughput_n", 50, 20), ("throughput_rounds", 3, 1),
                                 ("podman_iterations", 20, 5)):
        if getattr(args, name) is None:
            setattr(args, name, in_guest if guest else host)
    if args.only is None:
        args.only = ",".join(m for m in MEASUREMENTS if not guest or m != "installs")
    if guest and args.markdown is None:
        args.markdown = str(REPO / "bench" / "RESULTS-v2.md")
    args.json = os.path.abspath(args.json) if args.json else None
    args.markdown = os.path.abspath(args.markdown) if args.markdown else None
    args.only = [m.strip() for m in args.only.split(",") if m.strip()]
    unknown = set(args.only) - set(MEASUREMENTS)
    if unknown:
        p.error(f"--only: unknown measurement(s) {', '.join(sorted(unknown))}")
    if guest:
        if args.runtime:
            p.error("--guest measures the guest's /usr/local/bin/ociruntime (this tree), runc and crun: "
                    "no --runtime")
        for opt in ("json", "markdown"):
            path = getattr(args, opt)
            if path and not Path(path).is_relative_to(REPO):
                p.error(f"--{opt} {path}: with --guest it must be inside {REPO} (the guest shares only "
                        "the tree)")
        return args
    if args.runtime:
        pairs = []
        for spec in args.runtime:
            name, sep, path = spec.partition("=")
            if not sep:
                p.error(f"--runtime {spec!r}: expected NAME=PATH")
            pairs.append((name, path))
        args.runtime = pairs
    else:
        args.runtime = list(DEFAULT_RUNTIMES)
    for name, path in args.runtime:
        if not os.access(path, os.X_OK):
            p.error(f"runtime {name}: {path} is not executable")
    return args


def reexec_isolated(argv: list[str]) -> None:
    """Take the shared heavy lock and enter a private mount namespace, then run this file again."""
    for tool in ("flock", "unshare"):
        if shutil.which(tool) is None:
            sys.exit(f"bench: {tool}(1) is required (util-linux)")
    # The inner process checks it really is in another mount namespace before unmounting.
    env = dict(os.environ, **{INNER_ENV: os.readlink("/proc/self/ns/mnt")})
    cmd = ["unshare", "--mount", "--propagation", "private",
           sys.executable, "-I", os.path.abspath(__file__), *argv]
    if os.environ.get(GUEST_ENV):
        # In the guest: the host's lock is held by tests/vm/run for the whole boot.
        progress("in the test guest: entering a private mount namespace")
    else:
        cmd = ["flock", LOCK_FILE, *cmd]
        progress(f"waiting for {LOCK_FILE}, then entering a private mount namespace")
    os.execvpe(cmd[0], cmd, env)


def run_in_guest(args: argparse.Namespace) -> None:
    """Run this bench in the cgroup v2 guest: tests/vm/run boots it (taking the host's heavy lock
    itself, or trusting OCIRUNTIME_HEAVY_LOCKED=1 from a caller that holds it), installs this tree
    as /usr/local/bin/ociruntime and runs bench.py there with the same, explicit, settings."""
    inner = ["-n", str(args.iterations), "--throughput-n", str(args.throughput_n),
             "--throughput-rounds", str(args.throughput_rounds), "--rss-iterations", str(args.rss_iterations),
             "--podman-iterations", str(args.podman_iterations), "--bisect-steps", str(args.bisect_steps),
             "--mem4-tries", str(args.mem4_tries), "--only", ",".join(args.only), "--markdown", args.markdown]
    if args.json:
        inner += ["--json", args.json]
    # The guest sees the tree but not its git directory: tell it what is being measured.
    rc, git = Spawner.text(["git", "-C", str(REPO), "describe", "--always", "--dirty"])
    cmd = [str(VM_RUN), "--timeout", str(GUEST_TIMEOUT_S), "--env", f"{GIT_ENV}={git.strip() if rc == 0 else ''}", "--",
           "/usr/bin/python3", "-I", os.path.abspath(__file__), *inner]
    progress("booting the cgroup v2 guest: " + " ".join(cmd))
    os.execv(cmd[0], cmd)


def prepare_namespace(keep_unified: bool) -> None:
    # Sanity: we must not be in the host's mount namespace, or the umount below would be global.
    if os.readlink("/proc/self/ns/mnt") == os.environ.get(INNER_ENV):
        sys.exit("bench: refusing to run in the host mount namespace (use bench/run)")
    if not keep_unified and os.path.ismount(UNIFIED):
        subprocess.run(["umount", UNIFIED], check=True)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.exit(f"bench: prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(ctypes.get_errno())}")


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM/SIGHUP unwind like ctrl-C so that cleanup runs."""
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")
    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("bench: must run as root (the runtimes create namespaces and cgroups)")
    if args.guest:
        run_in_guest(args)
    if not os.environ.get(INNER_ENV):
        if "installs" in args.only:
            why = build_install_venvs()
            if why is not None:
                progress(f"install-path venvs: {why}")
        reexec_isolated(argv)
    prepare_namespace(args.keep_unified)
    workdir = Path(tempfile.mkdtemp(prefix="ocibench-"))
    # Not the work tree: `python3 -m ociruntime` would import the tree's package from there.
    os.chdir(workdir)
    bench: Bench | None = None
    started = time.monotonic()
    rc = 0
    with terminate_as_interrupt():
        try:
            bench = Bench(args, workdir)
            meta = machine_info(bench)
            progress("versions: " + "; ".join(rt.version for rt in bench.runtimes))
            bench.run_all()
        except KeyboardInterrupt:
            progress("interrupted: cleaning up")
            rc = 130
        finally:
            if bench is not None:
                bench.cleanup()
            shutil.rmtree(workdir, ignore_errors=True)
    if bench is None or rc:
        return rc or 1
    elapsed = time.monotonic() - started
    report = markdown(bench, meta, elapsed)
    print(report)
    if args.markdown:
        Path(args.markdown).write_text(report)
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(to_json(bench, meta, elapsed), indent=2) + "\n")
        progress(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
