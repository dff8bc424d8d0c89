"""`ociruntime inspect` on containers an engine made with ociruntime as its runtime: podman
(overlay storage: the rootfs is an overlay whose layers inspect lists) and containerd (ctr and
the runc v2 shim), each with a memory limit inspect must find in the cgroup."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from tests.clients.conftest import (
    OCIRUNTIME,
    PODMAN_IMAGE,
    Containerd,
    Podman,
    RuntimeUnderTest,
    out,
    run,
)

OCI = RuntimeUnderTest("ociruntime", OCIRUNTIME)


def inspect(root: str | Path | None, cid: str, *fmt: str) -> str:
    res = run([OCIRUNTIME, *(["--root", str(root)] if root else []), "inspect", *fmt, cid], timeout=30)
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    return out(res)


def memory_limit_of(rec: dict) -> str:
    cg = rec["cgroup"]
    return cg["limits"]["memory.max" if cg["version"] == 2 else "memory.limit_in_bytes"]


def test_podman_container_overlay_and_limit(podman: Podman) -> None:
    cname = f"pm-{uuid.uuid4().hex[:10]}"
    res = podman(*podman.run_args(OCI, "-d", "--name", cname, "--memory", "48m", "--read-only",
                                  "--cap-drop", "CAP_NET_RAW"), PODMAN_IMAGE, "sleep", "1000")
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    try:
        cid = out(res).strip()
        pid = int(out(podman("inspect", "--format", "{{.State.Pid}}", cname)).strip())
        rec = json.loads(inspect(None, cid, "-f", "json"))  # podman uses the runtime's default root
        assert (rec["status"], rec["pid"]) == ("running", pid)
        root = rec["filesystem"]["rootfs"]
        assert root["type"] == "overlay" and root["readonly"] is True
        overlay = root["overlay"]
        assert overlay["lowerdir"] and overlay["upperdir"] and overlay["workdir"]
        assert all(Path(d).is_dir() for d in (*overlay["lowerdir"], overlay["upperdir"]))
        assert "/storage" in overlay["upperdir"] or str(podman.base) in overlay["upperdir"]
        assert memory_limit_of(rec) == str(48 * 1024 * 1024)
        assert all("CAP_NET_RAW" not in caps for caps in rec["security"]["capabilities"].values())
        assert rec["processes"][0]["command"] == ["sleep", "1000"]
        assert rec["differences"] == [], rec["differences"]
        text = inspect(None, cid)
        assert f"container {cid}: running, pid {pid}" in text
        assert "    upperdir " + overlay["upperdir"] in text
        assert "memory." in text.split("limits   ", 1)[1].splitlines()[0]
    finally:
        podman("rm", "-f", "-t", "0", cname)


def test_containerd_task_limit_and_stopped(containerd: Containerd, base_rootfs: Path) -> None:
    cid = f"ctd-{uuid.uuid4().hex[:8]}"
    root = containerd.runc_root(OCI) / "default"
    res = containerd.ctr("run", "-d", *containerd.runtime_args(OCI), "--memory-limit", str(40 * 1024 * 1024),
                         "--rootfs", str(base_rootfs), cid, "/bin/sleep", "1000")
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    try:
        rec = json.loads(inspect(root, cid, "--format", "json"))
        assert rec["status"] == "running"
        assert memory_limit_of(rec) == str(40 * 1024 * 1024)
        assert rec["processes"][0]["command"] == ["/bin/sleep", "1000"]
        assert rec["differences"] == [], rec["differences"]
        assert containerd.ctr("task", "kill", "-s", "SIGKILL", cid).returncode == 0
        containerd.ctr("task", "wait", cid, timeout=30)
        rec = json.loads(inspect(root, cid, "-f", "json"))
        assert rec["status"] == "stopped" and rec["processes"] == []
        assert any("process has exited" in n for n in rec["notes"])
    finally:
        containerd.ctr("task", "kill", "-s", "SIGKILL", cid)
        containerd.ctr("task", "rm", "-f", cid)
        containerd.ctr("container", "rm", cid)
    res = run([OCIRUNTIME, "--root", str(root), "inspect", cid], timeout=30)
    assert res.returncode == 1 and b"does not exist" in res.stderr
