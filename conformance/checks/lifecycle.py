"""runtime.md: the operations, the lifecycle, errors and state."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from conformance.harness import (
    Context,
    bind_mount,
    check,
    expect,
    fail,
    host_cgroup_dir,
    skip,
)

SLEEPER = ["sleep", "60"]
# A program that stops cleanly on SIGTERM even as pid 1 of a pid namespace (which ignores
# signals it has no handler for).
TRAPPER = "trap 'exit 0' TERM; trap 'echo got > /out/usr1' USR1; while :; do sleep 0.05; done"


@check("lifecycle.full_cycle")
def full_cycle(ctx: Context) -> None:
    """create -> created, start -> running, kill -> stopped, delete -> gone."""
    b = ctx.sh_bundle(TRAPPER)
    cid = ctx.created(b)
    st = ctx.state(cid)
    expect(st.get("status") == "created", f"after create status is {st.get('status')!r}")
    p = ctx.rt("start", cid)
    expect(p.ok, f"start failed: {p.tail()}")
    ctx.wait_status(cid, "running", 5)
    p = ctx.rt("kill", cid, "TERM")
    expect(p.ok, f"kill failed: {p.tail()}")
    ctx.wait_status(cid, "stopped", 10)
    p = ctx.rt("delete", cid)
    expect(p.ok, f"delete failed: {p.tail()}")
    expect(not ctx.rt("state", cid).ok, "state still answers after delete")


@check("lifecycle.create_not_run")
def create_not_run(ctx: Context) -> None:
    """The program does not run at create; it runs at start."""
    marker = ctx.out / "ran"
    b = ctx.sh_bundle("echo yes > /out/ran; sleep 60")
    cid = ctx.created(b)
    time.sleep(0.4)
    expect(not marker.exists(), "the user program ran during create")
    p = ctx.rt("start", cid)
    expect(p.ok, f"start failed: {p.tail()}")
    ctx.wait_file(marker, 5)


@check("lifecycle.config_change_after_create")
def config_change_after_create(ctx: Context) -> None:
    """Rewriting config.json between create and start changes nothing."""
    b = ctx.sh_bundle("echo first > /out/which; sleep 60")
    cid = ctx.created(b)
    b.config["process"]["args"] = ["sh", "-c", "echo second > /out/which; sleep 60"]
    b.config["hostname"] = "changed"
    b.write()
    p = ctx.rt("start", cid)
    expect(p.ok, f"start failed: {p.tail()}")
    got = ctx.wait_file(ctx.out / "which", 5).strip()
    expect(got == "first", f"the container ran the edited config ({got!r})")


@check("lifecycle.create_applies_config")
def create_applies_config(ctx: Context) -> None:
    """After create (before start) namespaces exist and the hostname is set."""
    b = ctx.sh_bundle("sleep 60")
    b.config["hostname"] = "conf-created"
    cid = ctx.created(b)
    pid = int(ctx.state(cid).get("pid") or 0)
    expect(pid > 0, "no pid in state after create")
    for ns in ("uts", "net", "ipc", "pid", "mnt"):
        mine = os.readlink(f"/proc/self/ns/{ns}")
        expect(os.readlink(f"/proc/{pid}/ns/{ns}") != mine,
               f"{ns} namespace not created at create time")
    r = subprocess.run(["nsenter", "-t", str(pid), "-u", "hostname"], capture_output=True,
                       text=True, timeout=5)
    expect(r.stdout.strip() == "conf-created",
           f"hostname after create is {r.stdout.strip()!r}, not the configured one")


@check("lifecycle.create_bad_config")
def create_bad_config(ctx: Context) -> None:
    """A config the runtime cannot realise (missing root dir) makes create fail, leaving
    no container behind."""
    b = ctx.sh_bundle("true")
    b.config["root"]["path"] = "does-not-exist"
    cid, p = ctx.create(b)
    expect(not p.ok, "create succeeded with a nonexistent root.path")
    expect(not ctx.rt("state", cid).ok, "a container exists after the failed create")


@check("lifecycle.cannot_apply_errors")
def cannot_apply_errors(ctx: Context) -> None:
    """A property that cannot be applied (unknown rlimit) fails create, no container left."""
    b = ctx.sh_bundle("true")
    b.config["process"]["rlimits"] = [{"type": "RLIMIT_CONFORMANCE_BOGUS", "soft": 1, "hard": 1}]
    cid, p = ctx.create(b)
    expect(not p.ok, "create accepted an rlimit type no kernel has")
    expect(not ctx.rt("state", cid).ok, "a container exists after the failed create")


@check("lifecycle.failed_create_leaves_nothing")
def failed_create_leaves_nothing(ctx: Context) -> None:
    """After a failed create: no state, no cgroup, and the id is free again."""
    b = ctx.sh_bundle("sleep 60")
    cid = ctx.new_id()
    cg = f"/conformance-{cid}"
    b.config["linux"]["cgroupsPath"] = cg
    b.config["linux"]["namespaces"].append({"type": "network", "path": "/proc/self/ns/uts"})
    _, p = ctx.create(b, cid=cid)
    expect(not p.ok, "create succeeded with a network namespace path of the wrong type")
    expect(not ctx.rt("state", cid).ok, "state answers for a container whose create failed")
    for ctrl in ("pids", "memory", "cpu", "devices"):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            f = line.split()
            if "cgroup" in f and ctrl in f[-1].split(",") and os.path.isdir(f[4] + cg):
                fail(f"cgroup {f[4] + cg} left behind by the failed create")
    b.config["linux"]["namespaces"].pop()
    _, p = ctx.create(b, cid=cid)
    expect(p.ok, f"the id cannot be reused after a failed create: {p.tail()}")


@check("lifecycle.create_duplicate_id")
def create_duplicate_id(ctx: Context) -> None:
    """A second create with a used id fails and leaves the first container untouched."""
    b1 = ctx.sh_bundle("sleep 60")
    cid = ctx.created(b1)
    before = ctx.state(cid)
    b2 = ctx.sh_bundle("sleep 60")
    _, p = ctx.create(b2, cid=cid)
    expect(not p.ok, "create accepted an id already in use")
    after = ctx.state(cid)
    expect(after.get("pid") == before.get("pid") and after.get("bundle") == before.get("bundle")
           and after.get("status") == "created", "the first container changed")


@check("lifecycle.create_invalid_id")
def create_invalid_id(ctx: Context) -> None:
    """Ids that cannot name a container (path separators, dot-dot, empty) are refused."""
    bad = ["bad/id", "..", ""]
    accepted = []
    for cid in bad:
        b = ctx.sh_bundle("sleep 60")
        _, p = ctx.create(b, cid=cid)
        if p.ok:
            accepted.append(cid)
    expect(not accepted, f"create accepted invalid ids: {accepted}")


@check("lifecycle.start_twice")
def start_twice(ctx: Context) -> None:
    """start on a running container fails and does not run the program again."""
    b = ctx.sh_bundle("echo x >> /out/count; sleep 60")
    cid = ctx.started(b)
    ctx.wait_file(ctx.out / "count")
    pid = ctx.state(cid).get("pid")
    p = ctx.rt("start", cid)
    expect(not p.ok, "second start succeeded")
    time.sleep(0.3)
    st = ctx.state(cid)
    expect(st.get("status") == "running" and st.get("pid") == pid, "second start changed it")
    expect((ctx.out / "count").read_text().count("x") == 1, "the program ran twice")


@check("lifecycle.start_stopped")
def start_stopped(ctx: Context) -> None:
    """start on a stopped container fails and it stays stopped."""
    b = ctx.sh_bundle("echo x >> /out/count")
    cid = ctx.started(b)
    ctx.wait_status(cid, "stopped")
    p = ctx.rt("start", cid)
    expect(not p.ok, "start of a stopped container succeeded")
    expect(ctx.state(cid).get("status") == "stopped", "status changed")
    expect((ctx.out / "count").read_text().count("x") == 1, "the program ran twice")


@check("lifecycle.start_without_process")
def start_without_process(ctx: Context) -> None:
    """Without `process`, start fails (refusing create already is fine too)."""
    b = ctx.bundle()
    del b.config["process"]
    cid, p = ctx.create(b)
    if not p.ok:
        return "create refused it"
    expect(not ctx.rt("start", cid).ok, "start succeeded without a process")


@check("lifecycle.kill_signal")
def kill_signal(ctx: Context) -> None:
    """kill delivers the named signal to the container process."""
    b = ctx.sh_bundle(TRAPPER)
    cid = ctx.started(b)
    time.sleep(0.2)  # let the shell install its traps
    p = ctx.rt("kill", cid, "USR1")
    expect(p.ok, f"kill USR1 failed: {p.tail()}")
    ctx.wait_file(ctx.out / "usr1", 5)
    expect(ctx.state(cid).get("status") == "running", "USR1 stopped the container")


@check("lifecycle.kill_created")
def kill_created(ctx: Context) -> None:
    """kill works on a created (not yet started) container."""
    b = ctx.sh_bundle("sleep 60")
    cid = ctx.created(b)
    p = ctx.rt("kill", cid, "KILL")
    expect(p.ok, f"kill of a created container failed: {p.tail()}")
    ctx.wait_status(cid, "stopped", 5)


@check("lifecycle.kill_stopped")
def kill_stopped(ctx: Context) -> None:
    """kill on a stopped container fails and changes nothing."""
    b = ctx.sh_bundle("true")
    cid = ctx.started(b)
    ctx.wait_status(cid, "stopped")
    p = ctx.rt("kill", cid, "TERM")
    expect(not p.ok, "kill of a stopped container succeeded")
    expect(ctx.state(cid).get("status") == "stopped", "status changed")


@check("lifecycle.delete_running")
def delete_running(ctx: Context) -> None:
    """delete (without force) of a running container fails and it keeps running."""
    b = ctx.sh_bundle("sleep 60")
    cid = ctx.started(b)
    p = ctx.rt("delete", cid)
    expect(not p.ok, "delete of a running container succeeded")
    expect(ctx.state(cid).get("status") == "running", "the container no longer runs")


@check("lifecycle.delete_created")
def delete_created(ctx: Context) -> None:
    """delete (without force) of a created container fails: it is not stopped."""
    b = ctx.sh_bundle("sleep 60")
    cid = ctx.created(b)
    p = ctx.rt("delete", cid)
    expect(not p.ok, "delete of a created (not stopped) container succeeded")
    expect(ctx.state(cid).get("status") == "created", "the container changed")


@check("lifecycle.delete_removes")
def delete_removes(ctx: Context) -> None:
    """delete removes what create made: state, process, cgroup."""
    b = ctx.sh_bundle("sleep 60")
    cid = ctx.started(b)
    pid = int(ctx.state(cid)["pid"])
    cg = host_cgroup_dir(pid, "pids") or host_cgroup_dir(pid, "")
    ctx.rt("kill", cid, "KILL")
    ctx.wait_status(cid, "stopped")
    p = ctx.rt("delete", cid)
    expect(p.ok, f"delete failed: {p.tail()}")
    expect(not ctx.rt("state", cid).ok, "state still answers")
    time.sleep(0.1)
    if cg is not None and cg != Path("/sys/fs/cgroup/pids") and cg.exists():
        fail(f"cgroup {cg} still exists after delete")


@check("lifecycle.delete_keeps_foreign")
def delete_keeps_foreign(ctx: Context) -> None:
    """Deleting a container that joined another's namespace and bound a host dir leaves
    both intact."""
    host_dir = ctx.tmp / "shared"
    host_dir.mkdir()
    (host_dir / "keep").write_text("kept")
    a = ctx.sh_bundle("sleep 60", name="a")
    aid = ctx.started(a)
    apid = int(ctx.state(aid)["pid"])
    netns = os.readlink(f"/proc/{apid}/ns/net")
    b = ctx.sh_bundle("true", name="b")
    b.config["linux"]["namespaces"] = [
        n if n["type"] != "network" else {"type": "network", "path": f"/proc/{apid}/ns/net"}
        for n in b.config["linux"]["namespaces"]]
    b.config["mounts"].append(bind_mount(str(host_dir), "/data"))
    r = ctx.run(b)
    expect(r.ok, f"run of the joining container failed: {r.tail()}")
    cids = [c for c in ctx.containers if c != aid]
    ctx.rt("delete", "--force", cids[-1])
    expect(ctx.state(aid).get("status") == "running", "the other container stopped")
    expect(os.readlink(f"/proc/{apid}/ns/net") == netns, "the joined namespace changed")
    expect((host_dir / "keep").read_text() == "kept", "the bind-mount source was touched")


@check("lifecycle.id_reuse")
def id_reuse(ctx: Context) -> None:
    """After delete the id can name a new container (MAY)."""
    b = ctx.sh_bundle("true")
    cid = ctx.new_id()
    r = ctx.run(b, cid=cid)
    expect(r.ok, f"run failed: {r.tail()}")
    ctx.rt("delete", "--force", cid)
    r = ctx.run(b, cid=cid)
    if not r.ok:
        skip(f"the id was not reusable (allowed): {r.tail()}")


# --- CLI arguments ------------------------------------------------------------------------


def _missing_arg(ctx: Context, *args: str) -> None:
    p = ctx.rt(*args)
    expect(not p.ok, f"`{' '.join(args)}` without a container id succeeded")


@check("cli.state_no_id")
def state_no_id(ctx: Context) -> None:
    """state without an id fails."""
    _missing_arg(ctx, "state")


@check("cli.start_no_id")
def start_no_id(ctx: Context) -> None:
    """start without an id fails."""
    _missing_arg(ctx, "start")


@check("cli.kill_no_id")
def kill_no_id(ctx: Context) -> None:
    """kill without an id fails."""
    _missing_arg(ctx, "kill")


@check("cli.delete_no_id")
def delete_no_id(ctx: Context) -> None:
    """delete without an id fails."""
    _missing_arg(ctx, "delete")


@check("cli.create_no_id")
def create_no_id(ctx: Context) -> None:
    """create without an id fails."""
    b = ctx.sh_bundle("true")
    b.write()
    _missing_arg(ctx, "create", "--bundle", str(b.path))


@check("cli.create_no_bundle")
def create_no_bundle(ctx: Context) -> None:
    """create without a bundle (from a directory holding none) fails."""
    empty = ctx.tmp / "empty"
    empty.mkdir()
    cid = ctx.new_id()
    ctx.containers.append(cid)
    p = ctx.rt("create", cid, cwd=empty)
    expect(not p.ok, "create without any bundle succeeded")


@check("cli.missing_container")
def missing_container(ctx: Context) -> None:
    """state/start/kill/delete of an id that does not exist fail."""
    ghost = ctx.new_id("ghost")
    for args in (("state", ghost), ("start", ghost), ("kill", ghost, "TERM"),
                 ("delete", ghost)):
        expect(not ctx.rt(*args).ok, f"`{args[0]}` of a nonexistent container succeeded")


# --- state ------------------------------------------------------------------------------

STATUSES = {"creating", "created", "running", "stopped"}


def _check_state_shape(st: dict, cid: str, bundle: Path) -> list[str]:
    errs = []
    for key in ("ociVersion", "id", "status", "bundle"):
        if not isinstance(st.get(key), str):
            errs.append(f"{key} missing or not a string")
    if st.get("id") != cid:
        errs.append(f"id is {st.get('id')!r}")
    if st.get("status") not in STATUSES:
        errs.append(f"status {st.get('status')!r} is not a spec value")
    b = st.get("bundle")
    if not (isinstance(b, str) and os.path.isabs(b) and Path(b).resolve() == bundle.resolve()):
        errs.append(f"bundle {b!r} is not the bundle's absolute path")
    if st.get("status") in ("created", "running"):
        if not (isinstance(st.get("pid"), int) and st["pid"] > 0):
            errs.append(f"pid {st.get('pid')!r} missing while {st.get('status')}")
    ann = st.get("annotations")
    if ann is not None and not (isinstance(ann, dict)
                                and all(isinstance(v, str) for v in ann.values())):
        errs.append("annotations is not a string map")
    return errs


@check("state.fields")
def state_fields(ctx: Context) -> None:
    """state carries ociVersion, id, status, pid, bundle with the right types and values."""
    b = ctx.sh_bundle("sleep 60")
    cid = ctx.created(b)
    errs = _check_state_shape(ctx.state(cid), cid, b.path)
    expect(not errs, "; ".join(errs))


@check("state.schema")
def state_schema(ctx: Context) -> None:
    """The state JSON matches the state schema in every phase (created, running, stopped)."""
    b = ctx.sh_bundle("sleep 0.5")
    cid = ctx.created(b)
    errs = _check_state_shape(ctx.state(cid), cid, b.path)
    ctx.rt("start", cid)
    errs += _check_state_shape(ctx.state(cid), cid, b.path)
    errs += _check_state_shape(ctx.wait_status(cid, "stopped"), cid, b.path)
    expect(not errs, "; ".join(sorted(set(errs))))


@check("state.status_values")
def state_status_values(ctx: Context) -> None:
    """Each phase reports exactly the spec's status value."""
    b = ctx.sh_bundle("sleep 0.6")
    cid = ctx.created(b)
    seen = [ctx.state(cid).get("status")]
    ctx.rt("start", cid)
    seen.append(ctx.state(cid).get("status"))
    seen.append(ctx.wait_status(cid, "stopped", 5).get("status"))
    expect(seen == ["created", "running", "stopped"], f"statuses seen: {seen}")


@check("state.pid_is_process")
def state_pid_is_process(ctx: Context) -> None:
    """The state pid is the container process (as the host sees it)."""
    b = ctx.bundle(["sleep", "61"])
    cid = ctx.started(b)
    pid = ctx.state(cid).get("pid")
    time.sleep(0.1)
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    expect(b"61" in cmdline, f"pid {pid} runs {cmdline!r}, not the container program")


@check("state.annotations")
def state_annotations(ctx: Context) -> None:
    """Annotations from config.json appear in state."""
    b = ctx.sh_bundle("sleep 60")
    b.config["annotations"] = {"com.example.conformance": "yes", "com.example.empty": ""}
    cid = ctx.created(b)
    ann = ctx.state(cid).get("annotations") or {}
    expect(ann.get("com.example.conformance") == "yes" and ann.get("com.example.empty") == "",
           f"state annotations are {json.dumps(ann)}")
