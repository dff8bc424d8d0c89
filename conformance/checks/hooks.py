"""config.md POSIX-platform Hooks and the hook steps of runtime.md's lifecycle.

Every hook appends its name to one log (out/hooks.log, bound into the container at /out), saves
the state it got on stdin and the mount namespace it ran in. The runner notes what the log held
after each operation returned.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from conformance.harness import Bundle, Context, check, expect, fail

PHASES = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart",
          "poststop"]
RUNTIME_NS = ["prestart", "createRuntime", "poststart", "poststop"]
HOST_BUSYBOX = "/bin/busybox"

HOOK_BODY = """#!/bin/sh
echo {name} >> {log}
cat > {out}/{name}.state
readlink /proc/self/ns/mnt > {out}/{name}.mnt
readlink /proc/self/ns/pid > {out}/{name}.pidns
pid=$(sed -n 's/.*"pid": *\\([0-9][0-9]*\\).*/\\1/p' {out}/{name}.state)
[ -n "$pid" ] && tr '\\0' ' ' < /proc/$pid/cmdline > {out}/{name}.cmdline 2>/dev/null
exit {code}
"""


def write_hook(path: Path, name: str, log: str, out: str, code: int = 0) -> None:
    path.write_text(HOOK_BODY.format(name=name, log=log, out=out, code=code))
    path.chmod(0o755)


@dataclass
class Scenario:
    cid: str
    bundle: Bundle
    after_create: list[str] = field(default_factory=list)
    after_start: list[str] = field(default_factory=list)
    after_delete: list[str] = field(default_factory=list)
    create_ok: bool = True
    start_ok: bool = True
    delete_ok: bool = True
    container_mnt: str = ""
    state_pid: int = 0
    status_after_failure: str = ""


def hooked_bundle(ctx: Context, fail_phase: str | None = None,
                  phases: list[str] | None = None) -> Bundle:
    b = ctx.sh_bundle("echo program >> /out/hooks.log; sleep 60")
    hooks: dict[str, list[dict]] = {}
    hookdir = ctx.tmp / "hooks"
    hookdir.mkdir(exist_ok=True)
    for name in phases or PHASES:
        code = 1 if name == fail_phase else 0
        if name == "startContainer":
            # Resolved in the container: the script lives in the rootfs, writes to /out.
            write_hook(b.path / "rootfs" / "bin" / "conf-hook", name, "/out/hooks.log", "/out",
                       code)
            path = "/bin/conf-hook"
        else:
            path = str(hookdir / f"{name}.sh")
            write_hook(Path(path), name, str(ctx.out / "hooks.log"), str(ctx.out), code)
        hooks[name] = [{"path": path}]
    b.config["hooks"] = hooks
    return b


def log_lines(ctx: Context) -> list[str]:
    p = ctx.out / "hooks.log"
    return p.read_text().split() if p.exists() else []


def run_scenario(ctx: Context, fail_phase: str | None = None) -> Scenario:
    b = hooked_bundle(ctx, fail_phase)
    cid, p = ctx.create(b)
    sc = Scenario(cid, b, create_ok=p.ok)
    sc.after_create = log_lines(ctx)
    if p.ok:
        st = ctx.state(cid)
        sc.state_pid = int(st.get("pid") or 0)
        try:
            sc.container_mnt = os.readlink(f"/proc/{sc.state_pid}/ns/mnt")
        except OSError:
            pass
        sc.start_ok = ctx.rt("start", cid).ok
        sc.after_start = log_lines(ctx)
        if sc.start_ok:
            time.sleep(0.1)
            ctx.rt("kill", cid, "KILL")
            ctx.wait_status(cid, "stopped", 5)
    q = ctx.rt("state", cid)
    sc.status_after_failure = json.loads(q.out).get("status", "") if q.ok else "gone"
    if q.ok:
        if sc.status_after_failure != "stopped":
            ctx.rt("kill", cid, "KILL")
            time.sleep(0.2)
        sc.delete_ok = ctx.rt("delete", cid).ok
    time.sleep(0.05)
    sc.after_delete = log_lines(ctx)
    return sc


def hook_state(ctx: Context, name: str) -> dict:
    p = ctx.out / f"{name}.state"
    expect(p.exists(), f"{name} hook did not run")
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError:
        fail(f"{name} hook got no JSON state on stdin: {p.read_text()[:100]!r}")
    return {}


def _ok_scenario(ctx: Context) -> Scenario:
    sc = run_scenario(ctx)
    expect(sc.create_ok and sc.start_ok, "create or start failed with all hooks succeeding")
    return sc


def _before(lines: list[str], a: str, b: str) -> bool:
    return a in lines and b in lines and lines.index(a) < lines.index(b)


@check("hooks.prestart")
def prestart(ctx: Context) -> None:
    """prestart runs during create, before createRuntime."""
    sc = _ok_scenario(ctx)
    expect("prestart" in sc.after_create, f"log after create: {sc.after_create}")
    expect(_before(sc.after_create, "prestart", "createRuntime"),
           f"order after create: {sc.after_create}")


@check("hooks.create_runtime")
def create_runtime(ctx: Context) -> None:
    """createRuntime runs during create."""
    sc = _ok_scenario(ctx)
    expect("createRuntime" in sc.after_create, f"log after create: {sc.after_create}")


@check("hooks.create_container")
def create_container(ctx: Context) -> None:
    """createContainer runs during create, after createRuntime."""
    sc = _ok_scenario(ctx)
    expect(_before(sc.after_create, "createRuntime", "createContainer"),
           f"log after create: {sc.after_create}")


@check("hooks.start_container")
def start_container(ctx: Context) -> None:
    """startContainer runs during start, before the program (path resolved in the container)."""
    sc = _ok_scenario(ctx)
    expect("startContainer" not in sc.after_create, "startContainer ran during create")
    ctx.wait_file(ctx.out / "hooks.log")
    lines = log_lines(ctx)
    expect(_before(lines, "startContainer", "program"), f"log: {lines}")


@check("hooks.poststart")
def poststart(ctx: Context) -> None:
    """poststart ran by the time start returned, after the program was executed."""
    sc = _ok_scenario(ctx)
    expect("poststart" in sc.after_start, f"log when start returned: {sc.after_start}")
    cmd_file = ctx.out / "poststart.cmdline"
    cmd = cmd_file.read_text() if cmd_file.exists() else ""
    expect("sleep" in cmd or "program" in cmd,
           f"at poststart the container process runs {cmd!r}, not the user program")


@check("hooks.poststop")
def poststop(ctx: Context) -> None:
    """poststop runs after the container is deleted, before delete returns."""
    sc = _ok_scenario(ctx)
    expect("poststop" not in sc.after_start, "poststop ran before delete")
    expect(sc.delete_ok, "delete failed")
    expect("poststop" in sc.after_delete, f"log when delete returned: {sc.after_delete}")


@check("hooks.state_stdin")
def state_stdin(ctx: Context) -> None:
    """Every hook gets the container state as JSON on stdin."""
    sc = _ok_scenario(ctx)
    bad = []
    for name in PHASES:
        st = hook_state(ctx, name)
        if st.get("id") != sc.cid or not st.get("bundle") or not st.get("ociVersion") \
                or not st.get("status"):
            bad.append(f"{name}: {json.dumps(st)[:120]}")
    expect(not bad, "; ".join(bad))


@check("hooks.runtime_namespace")
def runtime_namespace(ctx: Context) -> None:
    """prestart, createRuntime, poststart, poststop run in the runtime's mount namespace."""
    _ok_scenario(ctx)
    mine = os.readlink("/proc/self/ns/mnt")
    wrong = [n for n in RUNTIME_NS
             if (ctx.out / f"{n}.mnt").exists() and (ctx.out / f"{n}.mnt").read_text().strip()
             != mine]
    missing = [n for n in RUNTIME_NS if not (ctx.out / f"{n}.mnt").exists()]
    expect(not wrong and not missing, f"wrong namespace: {wrong}; did not run: {missing}")


@check("hooks.container_namespace")
def container_namespace(ctx: Context) -> None:
    """createContainer and startContainer run in the container's mount namespace."""
    sc = _ok_scenario(ctx)
    got = {n: (ctx.out / f"{n}.mnt").read_text().strip() if (ctx.out / f"{n}.mnt").exists()
           else None for n in ("createContainer", "startContainer")}
    wrong = {n: v for n, v in got.items() if v != sc.container_mnt}
    expect(not wrong, f"container mnt ns {sc.container_mnt}, hooks ran in {wrong}")


@check("hooks.state_pid_runtime")
def state_pid_runtime(ctx: Context) -> None:
    """Hooks in the runtime namespace see the pid as the runtime does."""
    sc = _ok_scenario(ctx)
    pid = hook_state(ctx, "poststart").get("pid")
    expect(pid == sc.state_pid, f"poststart got pid {pid}, state says {sc.state_pid}")


@check("hooks.state_pid_container")
def state_pid_container(ctx: Context) -> None:
    """Hooks in the container namespace see the pid as the container does."""
    _ok_scenario(ctx)
    pid = hook_state(ctx, "startContainer").get("pid")
    expect(pid == 1, f"startContainer got pid {pid}; in the container's pid namespace it is 1")


@check("hooks.array_order")
def array_order(ctx: Context) -> None:
    """Hooks of one kind run in the listed order."""
    b = ctx.sh_bundle("sleep 60")
    hooks = []
    for i in range(3):
        path = ctx.tmp / f"h{i}.sh"
        path.write_text(f"#!/bin/sh\necho h{i} >> {ctx.out}/order.log\n")
        path.chmod(0o755)
        hooks.append({"path": str(path)})
    b.config["hooks"] = {"createRuntime": hooks}
    ctx.created(b)
    got = (ctx.out / "order.log").read_text().split() if (ctx.out / "order.log").exists() else []
    expect(got == ["h0", "h1", "h2"], f"order: {got}")


@check("hooks.args_env")
def args_env(ctx: Context) -> None:
    """A hook gets its args (args[0] as argv[0]) and env."""
    b = ctx.sh_bundle("sleep 60")
    b.config["hooks"] = {"createRuntime": [{
        "path": HOST_BUSYBOX,
        "args": ["sh", "-c", f'echo "$0|$1|$CONF_HOOK" > {ctx.out}/args', "zero", "one"],
        "env": ["CONF_HOOK=yes", "PATH=/bin:/usr/bin"]}]}
    ctx.created(b)
    got = (ctx.out / "args").read_text().strip() if (ctx.out / "args").exists() else ""
    expect(got == "zero|one|yes", f"hook saw {got!r}")


def _failing(phase: str) -> None:
    def run(ctx: Context) -> None:
        sc = run_scenario(ctx, fail_phase=phase)
        in_create = phase in ("prestart", "createRuntime", "createContainer")
        op_ok = sc.create_ok if in_create else sc.start_ok
        expect(not op_ok, f"{'create' if in_create else 'start'} succeeded although {phase} "
                          "failed")
        lines = log_lines(ctx)
        if phase != "poststart":
            expect("program" not in lines, "the user program ran after a failing hook")
        expect(sc.status_after_failure in ("stopped", "gone"),
               f"container left {sc.status_after_failure!r} after the failure")
        expect("poststop" in lines, "the lifecycle did not go on to poststop (step 12-13)")

    run.__doc__ = f"A failing {phase} hook is an error; the container is stopped and destroyed."
    check(f"hooks.{phase}_fails")(run)


for _phase in ("prestart", "createRuntime", "createContainer", "startContainer", "poststart"):
    _failing(_phase)


@check("hooks.poststop_fail_continues")
def poststop_fail(ctx: Context) -> None:
    """A failing poststop hook is only a warning: the next hook runs, delete succeeds."""
    b = ctx.sh_bundle("true")
    first, second = ctx.tmp / "p1.sh", ctx.tmp / "p2.sh"
    first.write_text("#!/bin/sh\nexit 1\n")
    second.write_text(f"#!/bin/sh\necho second > {ctx.out}/second\n")
    first.chmod(0o755)
    second.chmod(0o755)
    b.config["hooks"] = {"poststop": [{"path": str(first)}, {"path": str(second)}]}
    cid = ctx.started(b)
    ctx.wait_status(cid, "stopped")
    p = ctx.rt("delete", cid)
    expect(p.ok, f"delete failed because of the poststop hook: {p.tail()}")
    expect((ctx.out / "second").exists(), "the poststop hook after the failing one did not run")
    expect(not ctx.rt("state", cid).ok, "the container still exists")


@check("hooks.timeout", timeout=40)
def timeout(ctx: Context) -> None:
    """A hook running past its timeout is aborted and fails the operation."""
    b = ctx.sh_bundle("sleep 60")
    slow = ctx.tmp / "slow.sh"
    slow.write_text("#!/bin/sh\nexec sleep 20\n")
    slow.chmod(0o755)
    b.config["hooks"] = {"createRuntime": [{"path": str(slow), "timeout": 1}]}
    start = time.monotonic()
    _, p = ctx.create(b, timeout=30)
    took = time.monotonic() - start
    expect(not p.ok, "create succeeded although the hook timed out")
    expect(took < 15, f"the hook was not aborted (create took {took:.1f}s)")


@check("hooks.timeout_zero_rejected")
def timeout_zero(ctx: Context) -> None:
    """timeout 0 is invalid and refused."""
    b = ctx.sh_bundle("sleep 60")
    b.config["hooks"] = {"createRuntime": [{"path": "/bin/true", "timeout": 0}]}
    _, p = ctx.create(b)
    expect(not p.ok, "a hook timeout of 0 was accepted")


@check("hooks.relative_path_rejected")
def relative_path(ctx: Context) -> None:
    """A relative hook path is invalid and refused."""
    b = ctx.sh_bundle("sleep 60")
    b.config["hooks"] = {"createRuntime": [{"path": "bin/true"}]}
    _, p = ctx.create(b)
    expect(not p.ok, "a relative hook path was accepted")
