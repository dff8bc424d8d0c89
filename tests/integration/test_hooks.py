"""Hooks (issue 2 point 8; config.md "POSIX-platform Hooks", runtime-spec 1.3.0).

Hook scripts write what they saw (their stdin, their namespaces) into the test's tmp dir; the
tests look at which ones have run after each lifecycle step."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from tests.conftest import Runtime, assert_clean_error, leaks

HOST_KINDS = ("prestart", "createRuntime", "createContainer", "poststart", "poststop")


def host_hook(tmp: Path, kind: str, body: str = "") -> dict:
    """A hook whose path resolves on the host (and, for createContainer, before pivot_root)."""
    out = tmp / "hooks"
    out.mkdir(exist_ok=True)
    script = tmp / f"hook-{kind}.sh"
    script.write_text(
        "#!/bin/sh\n"
        f"cat > {out}/{kind}.json\n"
        f"readlink /proc/self/ns/uts > {out}/{kind}.uts\n"
        f"readlink /proc/self/ns/mnt > {out}/{kind}.mnt\n"
        f'echo "$1 $FOO" > {out}/{kind}.argenv\n'
        f"echo {kind} >> {out}/order\n"
        f"{body}\n")
    script.chmod(0o755)
    return {"path": str(script), "args": [f"hook-{kind}", f"arg-{kind}"], "env": [f"FOO=env-{kind}"]}


def start_container_hook() -> dict:
    """startContainer runs after pivot_root: the path must exist in the container's rootfs."""
    return {"path": "/bin/sh", "args": ["sh", "-c", "cat > /tmp/startContainer.json"]}


def ran(tmp: Path) -> list[str]:
    order = tmp / "hooks" / "order"
    return order.read_text().split() if order.exists() else []


def hook_state(tmp: Path, kind: str) -> dict:
    return json.loads((tmp / "hooks" / f"{kind}.json").read_text())


def ns_of(pid: int | str, kind: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def test_each_hook_runs_at_its_moment_with_state_on_stdin(oci: Runtime, bundle, tmp_path: Path) -> None:
    # Not compared with runc: runc 1.1.5 runs poststart hooks during `create` (fixed in 1.2).
    rt = oci

    def hooks(c: dict) -> None:
        c["root"]["readonly"] = False  # the startContainer hook writes into the rootfs
        c["hooks"] = {k: [host_hook(tmp_path, k)] for k in HOST_KINDS}
        c["hooks"]["startContainer"] = [start_container_hook()]
    b = bundle(args=["sh", "-c", "[ -e /tmp/startContainer.json ] && echo after > /tmp/user; "
                                 "sleep 100"], edit=hooks)
    cid = rt.new_id("hk")
    rt.run("create", "-b", str(b), cid, check=True)
    pid = rt.state(cid)["pid"]
    # create runs prestart, createRuntime and createContainer, in that order, and nothing else.
    assert ran(tmp_path) == ["prestart", "createRuntime", "createContainer"]
    assert not (b / "rootfs/tmp/startContainer.json").exists()
    # The state each kind sees (README "Hooks"): status by the spec's definitions, and the pid
    # as seen from where the hook runs (1 for createContainer: the container's pid namespace).
    for kind, seen_pid in (("prestart", pid), ("createRuntime", pid), ("createContainer", 1)):
        st = hook_state(tmp_path, kind)
        assert st["id"] == cid and st["pid"] == seen_pid and st["status"] == "creating", (kind, st)
        assert st["bundle"] == str(b) and st["ociVersion"], (kind, st)
        assert (tmp_path / "hooks" / f"{kind}.argenv").read_text().split() == [f"arg-{kind}",
                                                                               f"env-{kind}"]
    # createRuntime runs in the runtime's namespaces; createContainer in the container's.
    assert (tmp_path / "hooks/createRuntime.uts").read_text().strip() == ns_of("self", "uts")
    assert (tmp_path / "hooks/createRuntime.mnt").read_text().strip() == ns_of("self", "mnt")
    assert (tmp_path / "hooks/createContainer.uts").read_text().strip() == ns_of(pid, "uts")
    assert (tmp_path / "hooks/createContainer.mnt").read_text().strip() == ns_of(pid, "mnt")

    rt.run("start", cid, check=True)
    # poststart has run before `start` returned; startContainer before the user program.
    assert ran(tmp_path)[3:] == ["poststart"]
    st = json.loads((b / "rootfs/tmp/startContainer.json").read_text())
    assert (st["id"], st["pid"], st["status"]) == (cid, 1, "created"), st
    post = hook_state(tmp_path, "poststart")
    assert (post["pid"], post["status"]) == (pid, "running"), post
    deadline = time.monotonic() + 5
    while not (b / "rootfs/tmp/user").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert (b / "rootfs/tmp/user").read_text().strip() == "after"

    rt.run("kill", cid, "KILL", check=True)
    deadline = time.monotonic() + 5
    while rt.state(cid)["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "poststop" not in ran(tmp_path), "poststop runs at delete, not when the process dies"
    rt.run("delete", cid, check=True)
    assert ran(tmp_path)[-1] == "poststop"
    post = hook_state(tmp_path, "poststop")
    assert post["id"] == cid and post["status"] == "stopped"
    assert "pid" not in post, "the process is gone: a stale pid could name another process"


def test_failing_create_runtime_hook_fails_create_and_leaves_nothing(oci: Runtime, bundle,
                                                                      tmp_path: Path) -> None:
    def hooks(c: dict) -> None:
        c["hooks"] = {"createRuntime": [host_hook(tmp_path, "createRuntime", "echo boom >&2; exit 3")],
                      "poststop": [host_hook(tmp_path, "poststop")]}
    b = bundle(args=["sleep", "100"], edit=hooks)
    cid = oci.new_id("hk")
    res = oci.run("create", "-b", str(b), cid)
    assert leaks(oci.root, cid, b) == []
    # Spec: a failed createRuntime hook stops the container and the lifecycle goes on at delete.
    assert ran(tmp_path) == ["createRuntime", "poststop"]
    line = assert_clean_error(res, "createRuntime", "hook-createRuntime.sh")
    assert "3" in line  # the exit status tells the user what the hook said
    oci.run("create", "-b", str(bundle(args=["true"])), cid, check=True)


def test_failing_create_container_hook_fails_create_and_leaves_nothing(oci: Runtime, bundle,
                                                                        tmp_path: Path) -> None:
    def hooks(c: dict) -> None:
        c["hooks"] = {"createContainer": [host_hook(tmp_path, "createContainer", "exit 4")]}
    b = bundle(args=["sleep", "100"], edit=hooks)
    cid = oci.new_id("hk")
    res = oci.run("create", "-b", str(b), cid)
    assert leaks(oci.root, cid, b) == []
    assert_clean_error(res, "createContainer")


def test_hook_timeout_kills_the_hook(oci: Runtime, bundle, tmp_path: Path) -> None:
    pid_file = tmp_path / "hook.pid"

    def hooks(c: dict) -> None:
        h = host_hook(tmp_path, "createRuntime", f"echo $$ > {pid_file}; exec sleep 60")
        h["timeout"] = 1
        c["hooks"] = {"createRuntime": [h]}
    b = bundle(args=["sleep", "100"], edit=hooks)
    cid = oci.new_id("hk")
    started = time.monotonic()
    res = oci.run("create", "-b", str(b), cid)
    elapsed = time.monotonic() - started
    assert 0.9 < elapsed < 10, f"create took {elapsed:.1f}s with a 1 s hook timeout"
    hook_pid = int(pid_file.read_text())
    assert not Path(f"/proc/{hook_pid}").exists() or \
        Path(f"/proc/{hook_pid}/stat").read_text().split(") ")[1][0] == "Z", "hook still alive"
    assert leaks(oci.root, cid, b) == []
    assert_clean_error(res, "createRuntime", "time")


def test_failing_poststart_fails_start_and_stops_the_container(oci: Runtime, bundle,
                                                               tmp_path: Path) -> None:
    def hooks(c: dict) -> None:
        c["hooks"] = {"poststart": [host_hook(tmp_path, "poststart", "exit 5")],
                      "poststop": [host_hook(tmp_path, "poststop")]}
    b = bundle(args=["sleep", "100"], edit=hooks)
    cid = oci.new_id("hk")
    oci.run("create", "-b", str(b), cid, check=True)
    pid = oci.state(cid)["pid"]
    res = oci.run("start", cid)
    assert res.returncode == 1
    # runtime-spec 1.3.0: the container is stopped and the lifecycle continues at delete.
    deadline = time.monotonic() + 5
    while oci.state(cid)["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert oci.state(cid)["status"] == "stopped"
    assert not Path(f"/proc/{pid}/cmdline").exists() or Path(f"/proc/{pid}/cmdline").read_bytes() == b""
    oci.run("delete", cid, check=True)
    assert ran(tmp_path) == ["poststart", "poststop"]
    assert_clean_error(res, "poststart")


def test_failing_start_container_hook_fails_start(oci: Runtime, bundle, tmp_path: Path) -> None:
    def hooks(c: dict) -> None:
        c["root"]["readonly"] = False
        c["hooks"] = {"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 6"]}]}
    b = bundle(args=["sh", "-c", "touch /tmp/user-ran; sleep 100"], edit=hooks)
    cid = oci.new_id("hk")
    oci.run("create", "-b", str(b), cid, check=True)
    res = oci.run("start", cid)
    time.sleep(0.2)
    assert not (b / "rootfs/tmp/user-ran").exists(), "the user program ran despite the failed hook"
    assert oci.state(cid)["status"] == "stopped"
    assert_clean_error(res, "startContainer")


def test_failing_poststop_only_warns(oci: Runtime, bundle, tmp_path: Path) -> None:
    """Spec: poststop failures are logged as warnings; delete still succeeds and cleans up."""
    def hooks(c: dict) -> None:
        c["hooks"] = {"poststop": [host_hook(tmp_path, "poststop", "exit 7")]}
    b = bundle(args=["true"], edit=hooks)
    cid = oci.new_id("hk")
    oci.run("create", "-b", str(b), cid, check=True)
    res = oci.run("delete", cid)
    assert res.returncode == 0, res.stderr
    assert ran(tmp_path) == ["poststop"]
    assert b"warn" in res.stderr.lower()
    assert leaks(oci.root, cid, b) == []


def test_hooks_run_in_order_and_stop_at_first_failure(oci: Runtime, bundle, tmp_path: Path) -> None:
    second = tmp_path / "second-ran"

    def hooks(c: dict) -> None:
        c["hooks"] = {"createRuntime": [
            host_hook(tmp_path, "createRuntime", "exit 1"),
            {"path": "/bin/sh", "args": ["sh", "-c", f"touch {second}"]}]}
    b = bundle(args=["true"], edit=hooks)
    cid = oci.new_id("hk")
    assert oci.run("create", "-b", str(b), cid).returncode == 1
    assert not second.exists()
