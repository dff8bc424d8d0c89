"""Between `create` and `start` the init waits with its interpreter unmapped (csrc/waitexec.c),
unless something after `start`'s byte needs Python -- a startContainer hook, or a seccomp
listener to send the filter's fd to -- and then it waits in Python. Either way
the program must start the same, a failure must read the same, and a created container must
answer signals as runc's does. `way` runs a test each way: "python" adds a startContainer hook."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import Runtime

pytestmark = pytest.mark.lifecycle

WAYS = ["shim", "python"]
# What the program sees of how it was started: fds, signals, privileges, filter, a refused mkdir.
SHOW = ("ls /proc/self/fd | tr '\\n' ' '; echo; readlink /proc/self/fd/3; "
        "grep -E '^(Sig(Blk|Ign|Cgt)|NoNewPrivs|Seccomp|Cap(Inh|Prm|Eff|Bnd|Amb)):' /proc/self/status; "
        "echo \"cwd $(pwd) env $GREETING\"; mkdir /made 2>/dev/null || echo mkdir refused")


def configure(way: str, edit=None):
    def apply(cfg: dict) -> None:
        if edit is not None:
            edit(cfg)
        if way == "python":
            cfg.setdefault("hooks", {}).setdefault("startContainer", []).append({"path": "/bin/true"})
    return apply


def filtered(cfg: dict) -> None:
    cfg["process"]["noNewPrivileges"] = True
    cfg["process"]["env"].append("GREETING=hello")
    cfg["process"]["cwd"] = "/tmp"
    cfg["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}


def test_either_way_the_program_starts_the_same(oci: Runtime, bundle) -> None:
    seen = {}
    for way in WAYS:
        b = bundle(["sh", "-c", SHOW], edit=configure(way, filtered))
        # fd 3 of `run` is /dev/null, passed on by --preserve-fds 1.
        res = subprocess.run(["sh", "-c", 'exec "$@" 3</dev/null', "sh",
                              *oci.cmd("run", "--preserve-fds", "1", "--bundle", str(b), oci.new_id())],
                             capture_output=True, timeout=30)
        assert res.returncode == 0, res.stderr.decode()
        seen[way] = res.stdout.decode()
    assert seen["shim"] == seen["python"]
    lines = seen["shim"].splitlines()
    assert lines[:2] == ["0 1 2 3 4 ", "/dev/null"], seen["shim"]  # 4: ls's own, on /proc/self/fd
    for line in ("NoNewPrivs:\t1", "Seccomp:\t2", "SigBlk:\t0000000000000000", "SigCgt:\t0000000000000000"):
        assert line in lines, seen["shim"]
    assert lines[-2:] == ["cwd /tmp env hello", "mkdir refused"], seen["shim"]


def pss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Pss:"))


@pytest.mark.parametrize("way", WAYS)
def test_a_waiting_init_holds_almost_no_memory_when_the_shim_waits(oci: Runtime, bundle, way: str) -> None:
    cid = oci.new_id()
    oci.run("create", "--bundle", str(bundle(["true"], edit=configure(way))), cid, check=True)
    pid = oci.state(cid)["pid"]
    if way == "shim":
        # It sheds right after `ready`, while `create` returns: allow it that moment.
        deadline = time.monotonic() + 10
        while pss_kib(pid) >= 1024 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert pss_kib(pid) < 1024, f"the waiting init's Pss is {pss_kib(pid)} kB"
    else:
        assert pss_kib(pid) > 1024  # the Python way keeps its interpreter: the test can tell
    oci.run("start", cid, check=True)
    assert oci.wait_status(cid, "stopped") == "stopped"


@pytest.mark.parametrize("way", WAYS)
def test_an_execve_failing_at_start_is_reported_by_start(oci: Runtime, bundle, way: str, tmp_path: Path) -> None:
    b = bundle(["/bin/junk"], edit=configure(way))
    junk = b / "rootfs" / "bin" / "junk"
    junk.write_text("not a program\n")  # executable, so `create` finds it; not ELF, no #!
    junk.chmod(0o755)
    cid = oci.new_id()
    oci.run("create", "--bundle", str(b), cid, check=True)
    log = tmp_path / f"log-{way}.json"
    res = oci.run("start", cid, log_json=log)
    assert res.returncode != 0
    want = f"container '{cid}': start failed: exec /bin/junk: Exec format error"
    assert res.stderr.decode().strip() == f"ociruntime: {want}"
    entry = json.loads(log.read_text().splitlines()[-1])
    assert (entry["level"], entry["msg"]) == ("error", want)
    assert oci.wait_status(cid, "stopped") == "stopped"
    oci.run("delete", cid, check=True)


REAPER = """
import ctypes, json, os, subprocess, sys, time
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: the init becomes our child
rt, root, bundle, cid, sig, patience = sys.argv[1:]
subprocess.run([rt, "--root", root, "create", "--bundle", bundle, cid], check=True,
               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)  # the init keeps no pipe of ours
pid = json.loads(subprocess.run([rt, "--root", root, "state", cid], capture_output=True).stdout)["pid"]
subprocess.run([rt, "--root", root, "kill", cid, sig], check=True)
deadline = time.monotonic() + float(patience)
while time.monotonic() < deadline:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        print(os.waitstatus_to_exitcode(status))
        break
    time.sleep(0.01)
else:
    print("waiting")
    subprocess.run([rt, "--root", root, "delete", "--force", cid], check=True)
    os.waitpid(pid, 0)
"""


@pytest.mark.parametrize("sig", ["TERM", "INT", "HUP", "QUIT", "USR1", "WINCH"])
def test_a_created_container_ends_on_the_signals_runcs_ends_on(oci: Runtime, runc: Runtime, bundle,
                                                              sig: str) -> None:
    """runc's waiting init (Go) exits on SIGTERM, SIGINT, SIGHUP and SIGQUIT and waits through
    the rest; so does ours, either way, with 128 + the signal's number (runc's: 2)."""
    waits = sig in ("USR1", "WINCH")
    got = {}
    for name, rt, way in (("runc", runc, "shim"), ("shim", oci, "shim"), ("python", oci, "python")):
        cid = rt.new_id()
        b = bundle(["true"], edit=configure(way))
        # A second to show it waits on; up to 10 for it to end (a busy CI machine).
        res = subprocess.run([sys.executable, "-c", REAPER, rt.binary, str(rt.root), str(b), cid, sig,
                              "1" if waits else "10"], capture_output=True, timeout=60)
        got[name] = res.stdout.decode().strip() or res.stderr.decode()[-500:]
    number = signal.Signals[f"SIG{sig}"].value
    if waits:
        assert got == {"runc": "waiting", "shim": "waiting", "python": "waiting"}
    else:
        assert got == {"runc": "2", "shim": str(128 + number), "python": str(128 + number)}

