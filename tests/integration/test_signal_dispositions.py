"""Every program the runtime starts gets SIGPIPE and SIGXFSZ at their defaults (signal(7)), as
runc's do. CPython ignores both when it starts, and an ignored signal stays ignored across execve:
without care the container's process, an exec'd one and each hook would start with them ignored,
and a shell started so cannot take them back (`yes | head -1` would leave `yes` looping on EPIPE
instead of dying). Compared with runc on the same bundles."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Runtime

pytestmark = pytest.mark.lifecycle

SIGPIPE, SIGXFSZ = 13, 25
SHOW_IGNORED = ["sh", "-c", "grep SigIgn /proc/self/status"]


def ignored(status_line: str) -> set[int]:
    """The signals a /proc/PID/status `SigIgn:` line names (bit n-1 is signal n)."""
    mask = int(status_line.split(":", 1)[1], 16)
    return {n for n in range(1, 65) if mask >> (n - 1) & 1}


def test_the_container_process_gets_sigpipe_and_sigxfsz_at_their_defaults(oci_or_runc: Runtime,
                                                                          bundle) -> None:
    rt = oci_or_runc
    res = rt.run("run", "--bundle", str(bundle(SHOW_IGNORED)), rt.new_id(), check=True)
    assert ignored(res.stdout.decode()) & {SIGPIPE, SIGXFSZ} == set(), res.stdout
    # What a user sees: a shell that sends itself SIGPIPE dies of it (128 + 13). Not the
    # container's pid 1, which the kernel shields from signals it has no handler for.
    inner = "sh -c 'kill -PIPE $$; echo survived'; echo status $?"
    res = rt.run("run", "--bundle", str(bundle(["sh", "-c", inner])), rt.new_id(), check=True)
    assert res.stdout == b"status %d\n" % (128 + SIGPIPE), res.stdout


def test_an_exec_process_gets_them_at_their_defaults(oci_or_runc: Runtime, bundle) -> None:
    rt = oci_or_runc
    cid = rt.new_id()
    rt.run("run", "--detach", "--bundle", str(bundle(["sleep", "60"])), cid, check=True)
    res = rt.run("exec", cid, *SHOW_IGNORED, check=True)
    assert ignored(res.stdout.decode()) & {SIGPIPE, SIGXFSZ} == set(), res.stdout


def test_a_hook_gets_them_at_their_defaults(oci: Runtime, bundle, tmp_path: Path) -> None:
    seen = tmp_path / "hook-sigign"

    def edit(cfg: dict) -> None:
        cfg["hooks"] = {"createRuntime": [{"path": "/bin/sh", "args": [
            "sh", "-c", f"grep SigIgn /proc/self/status > {seen}"]}]}

    oci.run("run", "--bundle", str(bundle(["true"], edit=edit)), oci.new_id(), check=True)
    assert ignored(seen.read_text()) & {SIGPIPE, SIGXFSZ} == set(), seen.read_text()
