"""CVE-2024-21626 class, through socket activation: LISTEN_FDS without a LISTEN_PID naming the
runtime passed the caller's fd 3 into the container, which read host files through
/proc/self/fd/3. Protection: fds are passed only when LISTEN_PID is the runtime's own pid."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Runtime

pytestmark = pytest.mark.cgroupv2

# Make fd 3 a copy of argv[1], then run argv[2] with sh (whose $$ the runtime's pid becomes).
DUP_TO_3 = ("import os, sys; fd = int(sys.argv[1]); os.dup2(fd, 3); os.close(fd); "
            "os.execvp('sh', ['sh', '-c', sys.argv[2]])")
PROBE = "cat /proc/self/fd/3/secret 2>/dev/null && echo ESCAPE; echo probed"


def run_with_fd3(oci: Runtime, bundle_dir: Path, cid: str, host_dir: Path, listen_pid: str | None) -> str:
    """`ociruntime run` with fd 3 open on host_dir and LISTEN_FDS=1; LISTEN_PID: None (unset),
    "self" (the runtime's own pid, set by the shell that execs it) or a literal value."""
    env = {k: v for k, v in os.environ.items() if k not in ("LISTEN_PID", "LISTEN_FDS")}
    env["LISTEN_FDS"] = "1"
    prefix = ""
    if listen_pid == "self":
        prefix = "LISTEN_PID=$$ "
    elif listen_pid is not None:
        prefix = f"LISTEN_PID={listen_pid} "
    cmd = " ".join(oci.cmd("run", "-b", str(bundle_dir), cid))
    fd = os.open(host_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        # fd 3 is set up in the child only: pytest's own fd 3 must stay as it is.
        res = subprocess.run([sys.executable, "-c", DUP_TO_3, str(fd), f"{prefix}exec {cmd}"], env=env,
                             pass_fds=(fd,), capture_output=True, timeout=30)
    finally:
        os.close(fd)
    return res.stdout.decode() + res.stderr.decode()


@pytest.mark.parametrize("listen_pid", [None, "1", "999999"])
def test_stray_listen_fds_pass_nothing(oci: Runtime, bundle, tmp_path: Path, listen_pid: str | None) -> None:
    host = tmp_path / "host"
    host.mkdir()
    (host / "secret").write_text("host secret\n")
    out = run_with_fd3(oci, bundle(["sh", "-c", PROBE]), oci.new_id(), host, listen_pid)
    assert "probed" in out and "ESCAPE" not in out and "host secret" not in out, out


def test_listen_fds_for_the_runtime_itself_are_passed(oci: Runtime, bundle, tmp_path: Path) -> None:
    """Socket activation still works (runc's behaviour): the fd arrives as fd 3."""
    host = tmp_path / "host"
    host.mkdir()
    (host / "secret").write_text("activation fd\n")
    out = run_with_fd3(oci, bundle(["sh", "-c", "cat /proc/self/fd/3/secret; echo $LISTEN_FDS $LISTEN_PID"]),
                       oci.new_id(), host, "self")
    assert "activation fd" in out and "1 1" in out, out
