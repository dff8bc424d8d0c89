"""`events`: OOM kills of the container are reported as runc reports them, `{"type":"oom","id":ID}`
lines between the stats records (cgroup v1: the memory.oom_control eventfd; v2: memory.events'
oom_kill counter). Each scenario runs with runc too and must look the same. Runs on the v1 host
and in the cgroup v2 guest (marker cgroupv2)."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import Runtime

pytestmark = pytest.mark.cgroupv2

LIMIT = 32 << 20
# dd's 64 MiB buffer is touched by the read from /dev/zero: twice the limit, so every round is
# an OOM kill of dd while the shell (the init) lives on.
OOM_LOOP = "while true; do dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; sleep 0.5; done"


def host_has_swap() -> bool:
    return len(Path("/proc/swaps").read_text().splitlines()) > 1


def memory_limited(args: list[str]):
    def edit(cfg: dict) -> None:
        memory = {"limit": LIMIT}
        if host_has_swap():
            memory["swap"] = LIMIT  # memory+swap = memory: no way out into swap
        cfg["linux"].setdefault("resources", {})["memory"] = memory
        cfg["process"]["args"] = args
    return edit


class EventStream:
    """`RUNTIME events --interval 1s ID` in the background, its lines parsed as they come."""

    def __init__(self, rt: Runtime, cid: str) -> None:
        self.proc = subprocess.Popen(rt.cmd("events", "--interval", "1s", cid), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.append(raw.decode().rstrip("\n"))

    def events(self) -> list[dict]:
        return [json.loads(line) for line in list(self.lines)]

    def wait_for(self, kind: str, timeout: float) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not any(e["type"] == kind for e in self.events()):
            time.sleep(0.1)
        return self.events()

    def wait_end(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self.reader.join(5)


@pytest.mark.parametrize("which", ["oci", "runc"])
def test_oom_kill_is_an_oom_event(request, bundle, which: str) -> None:
    rt: Runtime = request.getfixturevalue(which)
    cid = rt.new_id("oom")
    rt.run("run", "-d", "-b", str(bundle(edit=memory_limited(["sh", "-c", OOM_LOOP]))), cid, check=True)
    stream = EventStream(rt, cid)
    try:
        seen = stream.wait_for("oom", timeout=30)
        ooms = [line for line in stream.lines if '"oom"' in line]
        assert ooms, f"{which}: no oom event within 30 s of OOM kills every 0.5 s; got {stream.lines[:3]}"
        # The exact line runc prints: no data, these two keys in this order.
        assert ooms[0] == json.dumps({"type": "oom", "id": cid}, separators=(",", ":")), ooms[0]
        assert {e["type"] for e in seen} <= {"oom", "stats"}, seen
        # The init survived its children's OOM kills: the container is still running.
        assert rt.status(cid) == "running"
    finally:
        stream.stop()


@pytest.mark.parametrize("which", ["oci", "runc"])
def test_no_oom_event_without_an_oom(request, bundle, which: str) -> None:
    """A container well inside its limit gets stats records only; deleting it (which, on v1,
    also signals the OOM eventfd) is not an OOM either."""
    rt: Runtime = request.getfixturevalue(which)
    cid = rt.new_id("calm")
    rt.run("run", "-d", "-b", str(bundle(edit=memory_limited(["sleep", "100"]))), cid, check=True)
    stream = EventStream(rt, cid)
    try:
        seen = stream.wait_for("stats", timeout=15)
        assert any(e["type"] == "stats" for e in seen), f"{which}: no stats record in 15 s: {stream.lines}"
        rt.run("delete", "-f", cid, check=True)
        if which == "oci":
            # ours ends the stream once the container is gone
            assert stream.wait_end(timeout=10) == 0, stream.proc.stderr.read() if stream.proc.stderr else ""
        else:
            time.sleep(2)
        assert not [e for e in stream.events() if e["type"] == "oom"], stream.lines
    finally:
        stream.stop()


def test_events_of_a_missing_container_fail_like_runc(oci: Runtime, runc: Runtime) -> None:
    for rt in (oci, runc):
        res = rt.run("events", "--interval", "1s", "no-such-container", timeout=10)
        assert res.returncode == 1 and b"does not exist" in res.stderr, (rt.binary, res.stderr)
