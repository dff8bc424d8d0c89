"""Never stuck, never leaking (issue 18): whatever happens to the runtime, one `delete -f ID`
removes the container, and no command waits forever behind another.

Kill points are exact: OCIRUNTIME_TEST_KILL_AT=<phase> makes the runtime SIGKILL itself when it
reaches that `--debug` phase mark (ociruntime/timing.py), or, for the phases that run in the
init, makes the init ask the runtime to die at that moment. Every process of a test carries a
tag in its environment (the runtime's children inherit it; the container's process gets it
through process.env), so a leftover process is found even after it was reparented."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import (
    Runtime,
    assert_clean_error,
    host_cgroup_dirs,
    host_mounts_mentioning,
    launcher_interpreter,
    leaks,
    runtime_package_dir,
)

CREATE_PHASES = ("load", "validate", "statedir", "seccomp", "clone", "cgroups", "namespaces",
                 "mounts", "hooks", "pivot_root", "state")
RUN_PHASES = (*CREATE_PHASES, "started")
EXEC_PHASES = ("exec-clone", "exec-cgroup", "exec-pid")
DELETE_PHASES = ("delete-killed", "delete-cgroup")
LEFTOVER_KINDS = ("state dir", "fifo", "cgroup", "mount", "process")


# --- what a test left behind ----------------------------------------------------------------
def tagged_processes(tag: str) -> list[int]:
    """Processes whose environment carries the tag (runtime, stage1, init, container process)."""
    found = []
    needle = f"OCITEST_TAG={tag}".encode()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                env = f.read()
            with open(f"/proc/{name}/stat", "rb") as f:
                zombie = f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
        except OSError:
            continue
        if needle in env.split(b"\0") and not zombie:
            found.append(int(name))
    return found


def leftovers(rt: Runtime, cid: str, bundle_dir: Path, tag: str, settle: float = 2.0) -> dict[str, list]:
    """Each kind of leftover, by kind. A process of the container may still be on its way out
    (it exits by itself on EOF of the sync socket): allow it `settle` seconds."""
    found: dict[str, list] = {kind: [] for kind in LEFTOVER_KINDS}
    if (rt.root / cid).exists():
        found["state dir"].append(f"{rt.root / cid}: {sorted(os.listdir(rt.root / cid))}")
    if (rt.root / cid).is_dir():
        found["fifo"] = [str(p) for p in (rt.root / cid).iterdir() if p.name.endswith(".fifo")]
    found["cgroup"] = host_cgroup_dirs(cid)
    found["mount"] = [m.strip() for m in host_mounts_mentioning(str(bundle_dir.resolve()))]
    deadline = time.monotonic() + settle
    while (procs := tagged_processes(tag)) and time.monotonic() < deadline:
        time.sleep(0.02)
    found["process"] = [f"{p}: {Path(f'/proc/{p}/cmdline').read_bytes()!r}" for p in procs
                        if Path(f"/proc/{p}").exists()]
    return found


def assert_nothing_left(rt: Runtime, cid: str, bundle_dir: Path, tag: str, row: str) -> None:
    found = leftovers(rt, cid, bundle_dir, tag)
    # One table row per kill point (run with -s to see the table).
    print(f"PHASE-TABLE {row:<28} " + " ".join(f"{len(found[k])}" for k in LEFTOVER_KINDS))
    assert not any(found.values()), f"{row}: left behind {found}"


# --- bundles and runtimes ---------------------------------------------------------------------
def tagged_bundle(bundle, tag: str, args: list[str], hooks: bool = True, edit=None) -> Path:
    """A bundle whose process carries the tag, with a seccomp filter and a createRuntime hook
    (so that the `seccomp` and `hooks` phases exist)."""
    def cfg(c: dict) -> None:
        c["process"]["env"].append(f"OCITEST_TAG={tag}")
        c["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                                 "syscalls": [{"names": ["kexec_load"], "action": "SCMP_ACT_ERRNO"}]}
        if hooks:
            c["hooks"] = {"createRuntime": [{"path": "/bin/true"}]}
        if edit is not None:
            edit(c)
    return bundle(args=args, edit=cfg)


def tagged_env(tag: str, kill_at: str | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "OCIRUNTIME_TEST_KILL_AT"}
    env["OCITEST_TAG"] = tag
    if kill_at:
        env["OCIRUNTIME_TEST_KILL_AT"] = kill_at
    env.update(extra)
    return env


def killed(res: subprocess.CompletedProcess) -> bool:
    return res.returncode == -signal.SIGKILL or res.returncode == 128 + signal.SIGKILL


def force_delete_cleanly(rt: Runtime, cid: str) -> None:
    """One `delete -f`: exit 0, quiet, and fast."""
    started = time.monotonic()
    res = rt.run("delete", "-f", cid)
    elapsed = time.monotonic() - started
    assert res.returncode == 0, f"delete -f: {res.returncode} {res.stderr.decode()!r}"
    assert b"Traceback" not in res.stderr and b"internal error" not in res.stderr, res.stderr
    assert elapsed < 1.0, f"delete -f took {elapsed:.2f} s"


def listed(rt: Runtime, cid: str) -> dict | None:
    docs = json.loads(rt.run("list", "-f", "json", check=True).stdout) or []
    return next((d for d in docs if d["id"] == cid), None)


def recreate_at_once(rt: Runtime, bundle, cid: str, tag: str) -> None:
    b = tagged_bundle(bundle, tag, ["true"], hooks=False)
    rt.run("create", "-b", str(b), cid, check=True)
    force_delete_cleanly(rt, cid)
    assert leftovers(rt, cid, b, tag) == {k: [] for k in LEFTOVER_KINDS}


# --- 1. SIGKILL at every phase boundary ------------------------------------------------------
@pytest.mark.parametrize("phase", CREATE_PHASES)
@pytest.mark.parametrize("command", ["create", "run"])
def test_sigkill_of_create_or_run_at_each_phase_then_delete_force(oci: Runtime, bundle, command: str,
                                                                   phase: str) -> None:
    tag = uuid.uuid4().hex
    b = tagged_bundle(bundle, tag, ["sleep", "100"])
    cid = oci.new_id("kp")
    args = ["create", "-b", str(b), cid] if command == "create" else ["run", "-d", "-b", str(b), cid]
    res = oci.run(*args, env=tagged_env(tag, phase))
    assert killed(res), f"the runtime was not killed at {phase}: {res.returncode} {res.stderr!r}"
    if phase not in ("load", "validate"):
        entry = listed(oci, cid)
        assert entry is not None, f"a half-made container is not listed after a kill at {phase}"
        assert entry["status"] == ("created" if phase == "state" else "creating"), entry
    force_delete_cleanly(oci, cid)
    assert_nothing_left(oci, cid, b, tag, f"{command} {phase}")
    recreate_at_once(oci, bundle, cid, tag)


def test_sigkill_of_run_after_start_then_delete_force(oci: Runtime, bundle) -> None:
    tag = uuid.uuid4().hex
    b = tagged_bundle(bundle, tag, ["sleep", "100"])
    cid = oci.new_id("kp")
    res = oci.run("run", "-b", str(b), cid, env=tagged_env(tag, "started"))
    assert killed(res), res.stderr
    assert oci.status(cid) == "running"
    force_delete_cleanly(oci, cid)
    assert_nothing_left(oci, cid, b, tag, "run started")


def test_sigkill_of_start_then_delete_force(oci: Runtime, bundle) -> None:
    tag = uuid.uuid4().hex
    b = tagged_bundle(bundle, tag, ["sleep", "100"])
    cid = oci.new_id("kp")
    oci.run("create", "-b", str(b), cid, check=True, env=tagged_env(tag))
    res = oci.run("start", cid, env=tagged_env(tag, "started"))
    assert killed(res), res.stderr
    force_delete_cleanly(oci, cid)
    assert_nothing_left(oci, cid, b, tag, "start started")


@pytest.mark.parametrize("phase", EXEC_PHASES)
def test_sigkill_of_exec_at_each_phase_then_delete_force(oci: Runtime, bundle, phase: str) -> None:
    tag = uuid.uuid4().hex
    b = tagged_bundle(bundle, tag, ["sleep", "100"])
    cid = oci.new_id("kp")
    oci.run("run", "-d", "-b", str(b), cid, check=True, env=tagged_env(tag))
    res = oci.run("exec", cid, "sleep", "99", env=tagged_env(tag, phase))
    assert killed(res), f"{phase}: {res.returncode} {res.stderr!r}"
    assert oci.status(cid) == "running"
    force_delete_cleanly(oci, cid)
    assert_nothing_left(oci, cid, b, tag, f"exec {phase}")


@pytest.mark.parametrize("phase", DELETE_PHASES)
def test_sigkill_of_delete_at_each_phase_then_delete_force(oci: Runtime, bundle, phase: str) -> None:
    tag = uuid.uuid4().hex
    b = tagged_bundle(bundle, tag, ["sleep", "100"])
    cid = oci.new_id("kp")
    oci.run("run", "-d", "-b", str(b), cid, check=True, env=tagged_env(tag))
    res = oci.run("delete", "-f", cid, env=tagged_env(tag, phase))
    assert killed(res), f"{phase}: {res.returncode} {res.stderr!r}"
    force_delete_cleanly(oci, cid)
    assert_nothing_left(oci, cid, b, tag, f"delete {phase}")


@pytest.mark.parametrize("command", ["create", "run", "exec"])
def test_sigkill_at_random_moments_then_delete_force(oci: Runtime, bundle, command: str) -> None:
    """0..60 ms after the command started, in 2 ms steps (seeded: the same moments each run,
    though the machine decides where in the code each one falls)."""
    rng = random.Random(f"robustness-{command}")
    tag = uuid.uuid4().hex
    b = tagged_bundle(bundle, tag, ["sleep", "100"])
    for attempt in range(16):
        cid = oci.new_id("kr")
        if command == "exec":
            oci.run("run", "-d", "-b", str(b), cid, check=True, env=tagged_env(tag))
            argv = oci.cmd("exec", cid, "sleep", "99")
        else:
            argv = oci.cmd(*(["create"] if command == "create" else ["run", "-d"]), "-b", str(b), cid)
        delay = rng.randrange(0, 62, 2) / 1000
        proc = subprocess.Popen(argv, env=tagged_env(tag), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.kill()
        proc.wait(30)
        force_delete_cleanly(oci, cid)
        assert_nothing_left(oci, cid, b, tag, f"{command} random {attempt} {delay * 1000:.0f}ms")
        recreate_at_once(oci, bundle, cid, tag)


# --- 2. delete -f never waits behind another command ------------------------------------------
def wait_for(predicate, timeout: float = 10, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def finished_cleanly(proc: subprocess.Popen, *mentions: str) -> None:
    """The command that held the lock failed with one clean line."""
    out, err = proc.communicate(timeout=10)
    res = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    assert_clean_error(res, *mentions)


def test_delete_force_does_not_wait_for_a_hung_start_container_hook(oci: Runtime, bundle) -> None:
    tag = uuid.uuid4().hex

    def hook(c: dict) -> None:
        c["hooks"] = {"startContainer": [{"path": "/bin/sleep", "args": ["sleep", "1000"],
                                          "env": [f"OCITEST_TAG={tag}"]}]}
    b = tagged_bundle(bundle, tag, ["true"], hooks=False, edit=hook)
    cid = oci.new_id("hs")
    oci.run("create", "-b", str(b), cid, check=True, env=tagged_env(tag))
    init = oci.state(cid)["pid"]
    start = subprocess.Popen(oci.cmd("start", cid), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=tagged_env(tag))
    wait_for(lambda: any(b"1000" in Path(f"/proc/{p}/cmdline").read_bytes()
                         for p in tagged_processes(tag) if p != init and Path(f"/proc/{p}").exists()),
             what="the startContainer hook to run")
    force_delete_cleanly(oci, cid)
    finished_cleanly(start, cid)
    assert_nothing_left(oci, cid, b, tag, "hung startContainer hook")


def test_delete_force_does_not_wait_for_a_hung_create_runtime_hook(oci: Runtime, bundle,
                                                                  tmp_path: Path) -> None:
    tag = uuid.uuid4().hex
    marker = tmp_path / "hook-running"

    def hook(c: dict) -> None:
        c["hooks"] = {"createRuntime": [{"path": "/bin/sh", "args": [
            "sh", "-c", f"touch {marker}; exec sleep 1000"], "env": [f"OCITEST_TAG={tag}"]}]}
    b = tagged_bundle(bundle, tag, ["true"], hooks=False, edit=hook)
    cid = oci.new_id("hc")
    create = subprocess.Popen(oci.cmd("create", "-b", str(b), cid), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=tagged_env(tag))
    wait_for(marker.exists, what="the createRuntime hook to run")
    force_delete_cleanly(oci, cid)
    finished_cleanly(create, cid)
    assert_nothing_left(oci, cid, b, tag, "hung createRuntime hook")


def test_delete_force_does_not_wait_for_a_start_of_a_stopped_init(oci: Runtime, bundle) -> None:
    tag = uuid.uuid4().hex
    b = tagged_bundle(bundle, tag, ["true"], hooks=False)
    cid = oci.new_id("hz")
    oci.run("create", "-b", str(b), cid, check=True, env=tagged_env(tag))
    init = oci.state(cid)["pid"]
    os.kill(init, signal.SIGSTOP)
    start = subprocess.Popen(oci.cmd("start", cid), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=tagged_env(tag))
    time.sleep(0.3)  # `start` has written its byte and waits, holding the lock
    assert start.poll() is None
    force_delete_cleanly(oci, cid)
    finished_cleanly(start, cid)
    assert_nothing_left(oci, cid, b, tag, "stopped init")


def test_start_gives_up_on_a_stopped_init_and_says_why(oci: Runtime, bundle) -> None:
    tag = uuid.uuid4().hex
    b = tagged_bundle(bundle, tag, ["true"], hooks=False)
    cid = oci.new_id("hz")
    oci.run("create", "-b", str(b), cid, check=True, env=tagged_env(tag))
    os.kill(oci.state(cid)["pid"], signal.SIGSTOP)
    started = time.monotonic()
    res = oci.run("start", cid, env=tagged_env(tag, OCIRUNTIME_START_TIMEOUT="1"))
    assert 0.9 < time.monotonic() - started < 5
    assert_clean_error(res, "gave up after 1 s", "stopped")
    force_delete_cleanly(oci, cid)
    assert_nothing_left(oci, cid, b, tag, "start timeout")


# --- 3. delete -f of a missing ID --------------------------------------------------------------
def test_delete_force_of_a_missing_id_succeeds_like_runc(oci: Runtime, runc: Runtime) -> None:
    for rt in (runc, oci):
        res = rt.run("delete", "-f", rt.new_id("missing"))
        assert (res.returncode, res.stderr) == (0, b""), (rt.binary, res.returncode, res.stderr)
        plain = rt.run("delete", rt.new_id("missing"))
        assert plain.returncode == 1 and b"does not exist" in plain.stderr, (rt.binary, plain.stderr)


# --- 4. one failure, one line ------------------------------------------------------------------
@pytest.mark.parametrize("failure", ["exit 3", "timeout"])
def test_failing_create_runtime_hook_prints_only_its_own_error(oci: Runtime, bundle, failure: str) -> None:
    tag = uuid.uuid4().hex
    hook = {"path": "/bin/sh", "args": ["sh", "-c", "exit 3" if failure == "exit 3" else "sleep 30"]}
    if failure == "timeout":
        hook["timeout"] = 1

    def cfg(c: dict) -> None:
        c["hooks"] = {"createRuntime": [hook]}
    b = tagged_bundle(bundle, tag, ["sleep", "100"], hooks=False, edit=cfg)
    for _ in range(3):
        cid = oci.new_id("h1")
        res = oci.run("create", "-b", str(b), cid, env=tagged_env(tag))
        assert_clean_error(res, "createRuntime")  # exactly one line: no echo from the init
        assert_nothing_left(oci, cid, b, tag, f"hook {failure}")


# --- 5. broken files -------------------------------------------------------------------------
def made_container(oci: Runtime, bundle, tag: str, args: list[str] | None = None) -> tuple[str, Path]:
    b = tagged_bundle(bundle, tag, args or ["sleep", "100"], hooks=False)
    cid = oci.new_id("bf")
    oci.run("create", "-b", str(b), cid, check=True, env=tagged_env(tag))
    return cid, b


# How state.json gets damaged, and whether delete -f can still tell what is the container's:
# field by field, a record that parses (leniently) still names the init and the cgroups.
CORRUPTIONS = {
    "pid-not-a-number": (lambda doc, raw: json.dumps({**doc, "pid": "abc"}).encode(), True),
    "bad-utf8": (lambda doc, raw: raw.replace(b'"bundle":"', b'"bundle":"\xff\xfe'), True),
    "lone-surrogate": (lambda doc, raw: raw.replace(b'"bundle":"', b'"bundle":"\\ud800'), True),
    "truncated": (lambda doc, raw: raw[: len(raw) // 2], False),
    "empty": (lambda doc, raw: b"", False),
    "not-an-object": (lambda doc, raw: b"[1, 2]", False),
    "cgroup-not-an-object": (lambda doc, raw: json.dumps({**doc, "cgroup": 5}).encode(), False),
}


def remove_by_hand(init: int, cid: str) -> None:
    """What delete -f rightly refused to touch without a trustworthy record."""
    try:
        os.kill(init, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for d in host_cgroup_dirs(cid):
        wait_for(lambda d=d: not (Path(d) / "cgroup.procs").read_text().strip(), what=f"{d} empty")
        os.rmdir(d)


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_a_corrupt_state_file_breaks_only_its_own_container(oci: Runtime, bundle, kind: str) -> None:
    tag = uuid.uuid4().hex
    good, _ = made_container(oci, bundle, tag)
    bad, b = made_container(oci, bundle, tag)
    init = oci.state(bad)["pid"]
    path = oci.root / bad / "state.json"
    raw = path.read_bytes()
    corrupt, salvageable = CORRUPTIONS[kind]
    path.write_bytes(corrupt(json.loads(raw), raw))

    docs = json.loads(oci.run("list", "-f", "json", check=True).stdout)
    assert {d["id"]: d["status"] for d in docs} == {good: "created", bad: "unknown"}
    table = oci.run("list", check=True).stdout.decode()
    assert good in table and bad in table
    res = oci.run("state", bad)
    assert_clean_error(res, str(path), "corrupt")
    assert_clean_error(oci.run("kill", bad, "KILL"), str(path))
    assert_clean_error(oci.run("start", bad), str(path))
    res = oci.run("delete", "-f", bad)
    assert res.returncode == 0 and b"Traceback" not in res.stderr, res.stderr
    assert str(path).encode() in res.stderr, "delete -f says which file was corrupt"
    try:
        if salvageable:
            assert_nothing_left(oci, bad, b, tag + "-init", f"corrupt {kind}")
            assert not Path(f"/proc/{init}").exists() or b"Z" in Path(f"/proc/{init}/stat").read_bytes()
        else:
            assert b"left alone" in res.stderr, res.stderr
            assert not (oci.root / bad).exists()
    finally:
        remove_by_hand(init, bad)
    assert oci.status(good) == "created"


def test_delete_force_never_signals_a_pid_whose_start_time_differs(oci: Runtime, bundle) -> None:
    """A recycled pid: the state names a live process that is not the container's init."""
    tag = uuid.uuid4().hex
    cid, _ = made_container(oci, bundle, tag)
    stranger = subprocess.Popen(["sleep", "1000"])
    path = oci.root / cid / "state.json"
    doc = json.loads(path.read_bytes())
    init = doc["pid"]
    try:
        doc.update(pid=stranger.pid, cgroup=None)
        path.write_text(json.dumps(doc))
        force_delete_cleanly(oci, cid)
        assert stranger.poll() is None, "delete -f killed a process that was not the container's"
    finally:
        stranger.kill()
        stranger.wait()
        remove_by_hand(init, cid)  # the real init, which the doctored state hid


@pytest.fixture
def small_mount(tmp_path: Path):
    """A tmpfs of our own: made read-only or full by the test, unmounted afterwards."""
    where = tmp_path / "mnt"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_read_only_root_is_one_line_naming_the_path(oci: Runtime, bundle, small_mount: Path) -> None:
    tag = uuid.uuid4().hex
    b = tagged_bundle(bundle, tag, ["true"], hooks=False)
    ro = Runtime(oci.binary, small_mount / "root")
    (small_mount / "root").mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(small_mount)], check=True)
    cid = ro.new_id("ro")
    assert_clean_error(ro.run("create", "-b", str(b), cid), str(small_mount / "root"), "read-only")
    assert ro.run("list", "-q", check=True).stdout == b""
    assert ro.run("delete", "-f", cid).returncode == 0
    assert_nothing_left(ro, cid, b, tag, "read-only root")


def test_full_root_is_one_line_naming_the_path(oci: Runtime, bundle, small_mount: Path) -> None:
    tag = uuid.uuid4().hex
    b = tagged_bundle(bundle, tag, ["true"], hooks=False)
    full = Runtime(oci.binary, small_mount / "root")
    (small_mount / "root").mkdir()
    subprocess.run(["dd", "if=/dev/zero", f"of={small_mount}/filler", "bs=4k", "count=1000"],
                   capture_output=True, check=False)
    cid = full.new_id("full")
    res = full.run("create", "-b", str(b), cid, env=tagged_env(tag))
    assert_clean_error(res, str(small_mount / "root" / cid), "no space")
    assert_nothing_left(full, cid, b, tag, "full root")
    assert full.run("delete", "-f", cid).returncode == 0


def test_eio_reading_state_or_config_is_one_line_naming_the_path(oci: Runtime, bundle) -> None:
    """/proc/self/mem reads as EIO at offset 0 (nothing is mapped there): a file that fails."""
    tag = uuid.uuid4().hex
    cid, _ = made_container(oci, bundle, tag)
    init = oci.state(cid)["pid"]
    path = oci.root / cid / "state.json"
    path.unlink()
    path.symlink_to("/proc/self/mem")
    try:
        assert_clean_error(oci.run("state", cid), str(path), "input/output error")
        assert json.loads(oci.run("list", "-f", "json", check=True).stdout)[0]["status"] == "unknown"
        force_delete_cleanly(oci, cid)
        assert not (oci.root / cid).exists()
    finally:
        remove_by_hand(init, cid)
    bad = tagged_bundle(bundle, tag, ["true"], hooks=False)
    (bad / "config.json").unlink()
    (bad / "config.json").symlink_to("/proc/self/mem")
    assert_clean_error(oci.run("create", "-b", str(bad), oci.new_id("eio")), "config.json",
                       "input/output error")


@pytest.mark.parametrize("where", ["process.args", "hostname", "annotations"])
def test_lone_surrogate_in_config_is_one_line(oci: Runtime, bundle, where: str) -> None:
    b = bundle(args=["true"])
    text = (b / "config.json").read_text()
    doc = json.loads(text)
    if where == "process.args":
        doc["process"]["args"] = ["\udc80"]
    elif where == "hostname":
        doc["hostname"] = "a\ud800"
    else:
        doc["annotations"] = {"k\udfff": "v"}
    (b / "config.json").write_text(json.dumps(doc))  # ensure_ascii: written as \\udXXX escapes
    cid = oci.new_id("sur")
    assert_clean_error(oci.run("create", "-b", str(b), cid), "config.json", "surrogate")
    assert not (oci.root / cid).exists()


def run_together(rt: Runtime, commands: list[list[str]], env: dict) -> list[tuple[int, bytes, bytes]]:
    """Start all at once; (exit status, stdout, stderr) of each. Files, not pipes: a created
    container keeps the stdio of its `create` open."""
    with contextlib.ExitStack() as stack:
        files = [(stack.enter_context(tempfile.TemporaryFile()), stack.enter_context(tempfile.TemporaryFile()))
                 for _ in commands]
        procs = [subprocess.Popen(rt.cmd(*argv), stdout=out, stderr=err, env=env)
                 for argv, (out, err) in zip(commands, files, strict=True)]
        results = []
        for proc, (out, err) in zip(procs, files, strict=True):
            code = proc.wait(30)
            out.seek(0)
            err.seek(0)
            results.append((code, out.read(), err.read()))
        return results


# --- 7. concurrency ------------------------------------------------------------------------------
@pytest.mark.slow
def test_concurrent_lifecycle_commands_on_one_id_never_corrupt_or_double_start(oci: Runtime, bundle,
                                                                              tmp_path: Path) -> None:
    """200 rounds of 2-6 concurrent create/start/kill/delete -f/state on one ID."""
    tag = uuid.uuid4().hex
    starts = tmp_path / "starts"
    starts.mkdir()

    def shared(c: dict) -> None:
        c["mounts"].append({"destination": "/starts", "type": "bind", "source": str(starts),
                            "options": ["rbind", "rw"]})
    b = tagged_bundle(bundle, tag, ["sh", "-c", "echo x >> /starts/log; exec sleep 100"],
                      hooks=False, edit=shared)
    rng = random.Random("concurrency")
    cid = oci.new_id("cc")
    commands = {
        "create": ["create", "-b", str(b), cid], "start": ["start", cid],
        "kill": ["kill", cid, "KILL"], "delete": ["delete", "-f", cid], "state": ["state", cid],
    }
    log = starts / "log"
    for round_no in range(200):
        picked = [rng.choice(list(commands)) for _ in range(rng.randint(2, 6))]
        results = run_together(oci, [commands[name] for name in picked], tagged_env(tag))
        results = [(name, *res) for name, res in zip(picked, results, strict=True)]
        for name, code, out, err in results:
            assert b"Traceback" not in err and b"internal error" not in err, (round_no, name, err)
            if name == "state" and code == 0:
                assert json.loads(out)["id"] == cid, out
        ok_starts = sum(1 for name, code, _, _ in results if name == "start" and code == 0)
        ok_creates = sum(1 for name, code, _, _ in results if name == "create" and code == 0)
        # create, delete -f, create may all succeed in one round (two containers, one after the
        # other); but each container starts at most once, and its program runs at most once.
        assert ok_starts <= ok_creates, f"round {round_no}: a container was started twice: {results}"
        force_delete_cleanly(oci, cid)
        if log.exists():  # read once the round's containers are gone: nothing writes any more
            runs = log.read_text().count("x")
            assert runs <= ok_creates, f"round {round_no}: the program ran {runs} times: {results}"
            log.unlink()
        found = leftovers(oci, cid, b, tag)
        assert not any(found.values()), (round_no, picked, found)


# --- a child that fails before it reaches the container's set-up ----------------------------
@pytest.mark.cgroupv2
def test_child_failing_to_load_stays_out_of_the_runtime_cleanup(oci: Runtime, bundle, tmp_path: Path) -> None:
    """The runtime's first child loads the child side (linux/init.py, the C shim) after the
    fork. An install whose shim cannot load (here: cffi missing) fails there. The failure must
    reach the runtime as one error, and the child must not run the runtime's own cleanup of the
    half-made container: it used to, as a second runtime in the container's cgroup, printing a
    "cleanup: ... rmdir ...: device or resource busy" warning and an internal error. (On a
    cgroup v2 host the runtime loads the shim itself, to fork into the cgroup: the same line
    then comes from the runtime.)"""
    # The runtime's package, without the site-packages that hold cffi.
    shutil.copytree(runtime_package_dir(), tmp_path / "pkg" / "ociruntime",
                    ignore=shutil.ignore_patterns("__pycache__"))
    launcher = tmp_path / "ociruntime-no-cffi"
    launcher.write_text(f"#!{launcher_interpreter()} -IS\nimport sys\nsys.path.insert(0, {str(tmp_path / 'pkg')!r})\n"
                        "from ociruntime import main\nmain()\n")
    launcher.chmod(0o755)
    broken = Runtime(str(launcher), oci.root)
    b = bundle(["sleep", "60"])
    cid = oci.new_id()
    res = broken.run("create", "--bundle", str(b), cid)
    assert_clean_error(res, "_cffi_backend")
    assert leaks(oci.root, cid, b) == []
