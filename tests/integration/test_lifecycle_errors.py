"""Lifecycle error paths (issue 2 point 3), each checked against runc on the same bundle.

For every case both runtimes get a container in the same starting status, run the same command,
and must agree on success vs failure and on the status the container ends up in. ociruntime's
failures must also be one clear line with no traceback, and a JSON error line in `--log`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import Runtime, assert_clean_error, assert_json_error_log

ABSENT = "absent"


def prepare(rt: Runtime, bundle_dir: Path, start_as: str) -> str:
    """A container of `rt` in status `start_as` (created / running / stopped / absent)."""
    cid = rt.new_id("le")
    if start_as == ABSENT:
        return cid
    rt.run("create", "--bundle", str(bundle_dir), cid, check=True)
    if start_as in ("running", "stopped"):
        rt.run("start", cid, check=True)
    if start_as == "stopped":
        rt.run("kill", cid, "KILL", check=True)
        assert rt.wait_status(cid, "stopped") == "stopped"
    assert rt.status(cid) == start_as
    return cid


@dataclass
class Case:
    name: str
    start_as: str
    command: Callable[[str, Path], list[str]]
    ok: bool            # what runc does (and the spec, where it says)
    end_as: str         # the status afterwards
    mentions: tuple[str, ...] = ()   # what ociruntime's message must name


CASES = [
    Case("start-running", "running", lambda c, b: ["start", c], False, "running", ("running",)),
    Case("start-stopped", "stopped", lambda c, b: ["start", c], False, "stopped", ("stopped",)),
    Case("start-nonexistent", ABSENT, lambda c, b: ["start", c], False, ABSENT, ("not exist",)),
    Case("create-existing", "created", lambda c, b: ["create", "-b", str(b), c], False, "created",
         ("already exists",)),
    Case("create-existing-running", "running", lambda c, b: ["create", "-b", str(b), c], False,
         "running", ("already exists",)),
    Case("kill-stopped", "stopped", lambda c, b: ["kill", c, "KILL"], False, "stopped", ("not running",)),
    Case("kill-nonexistent", ABSENT, lambda c, b: ["kill", c, "KILL"], False, ABSENT, ("not exist",)),
    Case("delete-running-no-force", "running", lambda c, b: ["delete", c], False, "running", ("running",)),
    # runc deletes a created container without --force (callers rely on it; README says so).
    Case("delete-created-no-force", "created", lambda c, b: ["delete", c], True, ABSENT),
    Case("delete-stopped", "stopped", lambda c, b: ["delete", c], True, ABSENT),
    Case("delete-force-running", "running", lambda c, b: ["delete", "--force", c], True, ABSENT),
    Case("delete-nonexistent", ABSENT, lambda c, b: ["delete", c], False, ABSENT, ("not exist",)),
    Case("state-nonexistent", ABSENT, lambda c, b: ["state", c], False, ABSENT, ("not exist",)),
    Case("kill-unknown-signal", "running", lambda c, b: ["kill", c, "SIGNOPE"], False, "running",
         ("signal", "SIGNOPE")),
    Case("kill-signal-number", "running", lambda c, b: ["kill", c, "9"], True, "stopped"),
    Case("kill-signal-name", "running", lambda c, b: ["kill", c, "KILL"], True, "stopped"),
    Case("kill-signal-signame", "running", lambda c, b: ["kill", c, "SIGKILL"], True, "stopped"),
    Case("kill-signal-lowercase", "running", lambda c, b: ["kill", c, "sigkill"], True, "stopped"),
    Case("kill-created", "created", lambda c, b: ["kill", c, "KILL"], True, "stopped"),
    # pid 1 of a pid namespace ignores SIGTERM without a handler: `sleep` survives it.
    Case("kill-default-term-sleep-init", "running", lambda c, b: ["kill", c], True, "running"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_error_path_matches_runc(case: Case, oci: Runtime, runc: Runtime, bundle, tmp_path: Path) -> None:
    b = bundle(args=["sleep", "1000"])
    outcome = {}
    results = {}
    for rt in (runc, oci):
        cid = prepare(rt, b, case.start_as)
        res = rt.run(*case.command(cid, b))
        end = rt.wait_status(cid, case.end_as) if res.returncode == 0 else rt.status(cid)
        outcome[rt.binary] = (res.returncode == 0, end)
        results[rt.binary] = (cid, res)
    assert outcome[runc.binary] == (case.ok, case.end_as), f"runc itself: {outcome[runc.binary]}"
    assert outcome[oci.binary] == outcome[runc.binary], (
        f"ociruntime {outcome[oci.binary]} vs runc {outcome[runc.binary]}; "
        f"stderr: {results[oci.binary][1].stderr.decode()!r}")
    cid, res = results[oci.binary]
    if case.ok:
        assert res.stderr.strip() == b"", res.stderr
        return
    # The same command again with runc's JSON log: containerd reports the last error line.
    log = tmp_path / "log.json"
    again = oci.run(*case.command(cid, b), log_json=log)
    assert again.returncode == 1
    assert "Traceback" not in again.stderr.decode()
    entry = assert_json_error_log(log)
    for word in case.mentions:
        assert word.lower() in entry["msg"].lower(), entry
    assert oci.status(cid) == case.end_as, "a failing command changed the container"
    assert_clean_error(res, *case.mentions)


def test_signal_reaches_process_with_handler(oci: Runtime, runc: Runtime, bundle) -> None:
    """kill with USR1 given as number / name / SIGNAME: the init's trap sees each one."""
    script = "trap 'echo got >> /tmp/usr1' USR1; while :; do sleep 0.05; done"
    for rt in (runc, oci):
        b = bundle(args=["sh", "-c", script], edit=lambda c: c["root"].update(readonly=False))
        cid = prepare(rt, b, "running")
        time.sleep(0.2)  # let sh install the trap
        for sig in ("10", "USR1", "SIGUSR1"):
            rt.run("kill", cid, sig, check=True)
            time.sleep(0.15)
        got = (b / "rootfs" / "tmp" / "usr1")
        deadline = time.monotonic() + 3
        while (not got.exists() or got.read_text().count("got") < 3) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert got.exists() and got.read_text().count("got") == 3, f"{rt.binary}: {got.exists()}"
        assert rt.status(cid) == "running"


def test_kill_all_reaches_every_process(oci: Runtime, runc: Runtime, bundle) -> None:
    """kill -a KILL stops the init and its children; both runtimes end with `stopped`."""
    for rt in (runc, oci):
        b = bundle(args=["sh", "-c", "sleep 1000 & sleep 1000 & wait"])
        cid = prepare(rt, b, "running")
        res = rt.run("kill", "-a", cid, "KILL")
        assert res.returncode == 0, f"{rt.binary}: {res.stderr!r}"
        assert rt.wait_status(cid, "stopped") == "stopped", rt.binary
