"""The container lifecycle after `create` (create.py): `start` releases the init blocked before
the user program; `state`, `kill`, `delete`, `pause`, `resume`, `update`, `ps` and `list` read
the state dir and ask the kernel. Kept free of create's code: these are the hot commands."""

import posix
import select
import time

from ociruntime import lean, log, state, timing
from ociruntime.errors import ContainerNotFound, InvalidState, NotRunning, OciError, SetupError, SyscallError
from ociruntime.state import EXEC_FIFO, StateDir


def public_state(cid: str, data: dict, status: str) -> dict:
    """The spec's State plus runc's extra fields, in runc's order."""
    doc = {
        "ociVersion": data.get("ociVersion", ""), "id": cid,
        "pid": data.get("pid", 0) if status != "stopped" else 0,
        "status": status, "bundle": data.get("bundle", ""), "rootfs": data.get("rootfs", ""),
        "created": data.get("created", ""), "owner": "",
    }
    if data.get("annotations"):
        doc["annotations"] = data["annotations"]
    return doc


def set_resources(cg, resources) -> None:
    """cg.set(), then log what the driver accepted but could not apply on this host."""
    cg.set(resources)
    for warning in cg.warnings:
        log.warning(warning)
    cg.warnings.clear()


def run_poststop(poststop: list, cid: str, data: dict) -> None:
    """Every poststop hook runs; a failure is a warning (the container is gone either way)."""
    if not poststop:
        return
    from ociruntime import hooks

    for failure in hooks.run_all_hooks("poststop", poststop, hook_state(cid, data, "stopped")):
        log.warning(f"{failure} (the container is deleted anyway)")


def hook_state(cid: str, data: dict, status: str) -> dict:
    """The state on a hook's stdin (README "Hooks": which status each kind sees, and why)."""
    doc = {"ociVersion": data.get("ociVersion", ""), "id": cid, "status": status,
           "pid": data.get("pid", 0), "bundle": data.get("bundle", "")}
    if status == "stopped":
        del doc["pid"]  # OPTIONAL when stopped: the process is gone and its pid may be reused
    if data.get("annotations"):
        doc["annotations"] = data["annotations"]
    return doc


def hooks_from(data: dict, kind: str) -> list:
    """The hooks create recorded; the config model is imported only when there are some."""
    recorded = data.get("hooks", {}).get(kind)
    if not recorded:
        return []
    from ociruntime.config import Hook

    return [Hook(h) for h in recorded]


# --- start / state / kill / delete ----------------------------------------------------------
def start(root: str, cid: str) -> None:
    with state.locked(root, cid) as held:
        if held.status != "created":
            raise InvalidState(f"cannot start container {cid!r}: it is {held.status}, not created")
        _release_init(held.sd, cid, held.data["pid"])
        try:
            posix.unlink(EXEC_FIFO, dir_fd=held.sd.dir_fd())
        except FileNotFoundError:
            raise OciError(f"container {cid!r} was deleted while it was being started") from None
        timing.mark("started")
        poststart = hooks_from(held.data, "poststart")
        if poststart:
            run_poststart(cid, held.data, poststart)


def start_timeout() -> float:
    """How long `start` waits for the init to exec the user program: the startContainer hooks
    run in between, and a stopped or stuck init must not hold the lock (and the caller) forever.
    OCIRUNTIME_START_TIMEOUT (seconds) overrides the default."""
    value = lean.getenv("OCIRUNTIME_START_TIMEOUT")
    try:
        return float(value) if value else 60.0
    except ValueError:
        return 60.0


def _release_init(sd: StateDir, cid: str, pid: int) -> None:
    """Write one byte to exec.fifo, then wait until the init has exec'd the user program
    (its copy of the fifo closes at execve, which shows here as POLLHUP)."""
    try:
        rfd = posix.open(EXEC_FIFO, posix.O_RDONLY | posix.O_NONBLOCK | posix.O_CLOEXEC, dir_fd=sd.dir_fd())
    except FileNotFoundError:
        raise OciError(f"container {cid!r} was deleted while it was being started") from None
    try:
        wfd = posix.open(EXEC_FIFO, posix.O_WRONLY | posix.O_NONBLOCK | posix.O_CLOEXEC, dir_fd=sd.dir_fd())
        try:
            posix.write(wfd, b"0")
        finally:
            posix.close(wfd)
        _wait_exec(sd, cid, pid, rfd)
        try:
            leftover = posix.read(rfd, 4096)
        except BlockingIOError:
            leftover = b""
        if leftover == b"0":
            raise SetupError(f"container {cid!r}: the init exited before it could be started")
        if leftover:
            # The init wrote its failure (a startContainer hook, or execve) after our byte.
            from ociruntime.linux import waitexec

            raise SetupError(f"container {cid!r}: start failed: {waitexec.report_text(leftover)}")
    finally:
        posix.close(rfd)


def _wait_exec(sd: StateDir, cid: str, pid: int, rfd: int) -> None:
    """Until POLLHUP (every writer gone: the init exec'd or died), bounded by start_timeout();
    meanwhile notice a delete -f that removed the container under us."""
    poller = select.poll()
    poller.register(rfd, select.POLLHUP)
    timeout = start_timeout()
    deadline = time.monotonic() + timeout
    while True:
        events = poller.poll(50)
        if any(ev & select.POLLHUP for _, ev in events):
            return
        if events:
            time.sleep(0.0002)  # our byte is still unread: the init is about to read it
        if sd.removed():
            raise OciError(f"container {cid!r} was deleted while it was being started")
        if time.monotonic() >= deadline:
            raise SetupError(f"container {cid!r}: start gave up after {timeout:g} s waiting for "
                             f"the init (pid {pid}) {_what_init_does(pid, bool(events))}")


def _what_init_does(pid: int, byte_unread: bool) -> str:
    if state.process_state(pid) == "T":
        return "to read the start signal: it is stopped (SIGSTOP or a debugger)"
    if byte_unread:
        return "to read the start signal from exec.fifo"
    return "to run its startContainer hooks and exec the user program"


def run_poststart(cid: str, data: dict, poststart: list) -> None:
    from ociruntime import hooks

    try:
        hooks.run_hooks("poststart", poststart, hook_state(cid, data, "running"))
    except OciError:
        # runtime-spec 1.3.0: a failing poststart hook is an error and stops the container.
        kill_and_wait(int(data["pid"]))
        raise


def read_state(root: str, cid: str) -> dict:
    """The container's public state (`state`'s document)."""
    sd = StateDir(root, cid)
    data = sd.load()
    return public_state(cid, data, state.status_of(sd, data))


def kill(root: str, cid: str, sig: str, all_processes: bool) -> None:
    from ociruntime.signals import parse_signal

    number = parse_signal(sig)
    with state.locked(root, cid) as held:
        if held.status == "stopped" and not all_processes:
            raise NotRunning(cid, "kill")
        if held.status == "creating":
            raise InvalidState(f"cannot kill container {cid!r}: it is still being created "
                               "(a forced delete removes it)")
        if all_processes:
            _signal_cgroup(held.data, number)
        else:
            _signal_init(cid, int(held.data["pid"]), int(held.data["start_time"]), number)


def _signal_init(cid: str, pid: int, start_time: int, number: int) -> None:
    import _signal  # the C module: `signal` would import enum (~3 ms)

    # A pidfd pins the process: once it is checked, a recycled pid can never be signalled.
    try:
        pidfd = posix.pidfd_open(pid)
    except ProcessLookupError:
        raise NotRunning(cid, "kill") from None
    try:
        if not state.is_same_process(pid, start_time):
            raise NotRunning(cid, "kill")
        try:
            _signal.pidfd_send_signal(pidfd, number)
        except OSError as e:
            raise SetupError(f"send signal {number} to pid {pid}: {e.strerror}") from None
    finally:
        posix.close(pidfd)


def _signal_cgroup(data: dict, number: int) -> None:
    for pid in own_pids(cgroup_of(data), data):
        try:
            posix.kill(pid, number)
        except ProcessLookupError:
            pass


def delete(root: str, cid: str, force: bool) -> None:
    if force:
        try:
            sd = StateDir.open_forced(root, cid)
        except ContainerNotFound:
            return  # runc and crun: delete -f of a container that does not exist succeeds
    else:
        sd = StateDir.open(root, cid)
    try:
        if force:
            data, problem = sd.load_salvage()
            if problem:
                log.warning(f"{problem} (removing what can be trusted of it)")
        else:
            data = sd.load()
        status = state.status_of(sd, data)
        if status in ("running", "paused") and not force:
            raise InvalidState(f"cannot delete container {cid!r}: it is {status} (stop it first, "
                               "or force the delete)")
        if status != "stopped":
            # runc deletes a `created` container without --force; callers rely on it. A
            # `creating` one here is left by a create that died (we hold its lock) or is
            # being removed by force: its init, if already recorded, goes too.
            if status == "paused":
                cgroup_of(data).thaw()  # frozen tasks would not die of SIGKILL until thawed
            if data.get("pid"):
                kill_and_wait(data["pid"], data.get("start_time", -1))
        timing.mark("delete-killed")
        destroy(sd, cid, data)
    finally:
        sd.unlock()


def destroy(sd: StateDir, cid: str, data: dict) -> None:
    """Undo create: processes, cgroup, state dir; then the poststop hooks."""
    if data.get("cgroup") and not _removed_while_empty(data["cgroup"]):
        cg = cgroup_of(data)
        kill_cgroup(cg, data)
        cg.destroy()
    timing.mark("delete-cgroup")
    sd.remove()
    run_poststop(hooks_from(data, "poststop"), cid, data)


def _removed_while_empty(record: dict) -> bool:
    """The usual delete, of a stopped container whose cgroups are directories it made: the
    kernel removes a cgroup only while it has no process and no child cgroup, so when every
    rmdir succeeds there was nothing left to kill, and the driver (~1 ms of imports) is not
    needed. False when the record names no such directories or one is still busy: the driver
    then kills what is left and removes the rest (a directory already gone is fine to it)."""
    removable = record.get("removable")
    if not removable:
        return False
    for path, levels in removable:
        try:
            posix.rmdir(path)
        except FileNotFoundError:
            pass
        except OSError:
            return False
        lean.rmdir_parents(path, levels - 1)
    return True


def own_pids(cg, data: dict) -> list[int]:
    """The processes of the cgroup that are this container's: all of them in a cgroup it
    created; in a cgroup it joined, only those in the container's own pid namespace (its init,
    their children, exec'd processes), or without one the exec'd processes recorded in the
    state; never a process someone else put there."""
    pids = cg.pids()
    if cg.owned():
        return pids
    ns = data.get("pidns") or 0
    if not ns or ns == data.get("host_pidns"):
        # It shares a pid namespace: besides the init (signalled by pidfd), only the processes
        # that entered through `exec`, as recorded with their start times.
        recorded = {(p, t) for p, t in data.get("exec_pids") or ()}
        return [p for p in pids if (p, state.process_start_time(p)) in recorded]
    return [p for p in pids if state.pid_namespace(p) == ns]


def kill_cgroup(cg, data: dict) -> None:
    """SIGKILL whatever of the container's is left in its cgroup (processes outside its pid
    namespace survive its init)."""
    if cg.owned() and cg.kill_all():
        return
    for _ in range(50):
        pids = own_pids(cg, data)
        if not pids:
            return
        for pid in pids:
            try:
                posix.kill(pid, 9)
            except ProcessLookupError:
                pass
        _wait_gone(pids, 0.1)
    raise SetupError("processes in the container's cgroup survive SIGKILL")


def _wait_gone(pids: list[int], timeout: float) -> None:
    poller = select.poll()
    fds = []
    for pid in pids:
        try:
            fds.append(posix.pidfd_open(pid))
            poller.register(fds[-1], select.POLLIN)
        except ProcessLookupError:
            pass
    try:
        deadline = time.monotonic() + timeout
        remaining = len(fds)
        while remaining and time.monotonic() < deadline:
            for fd, _ in poller.poll(max(1, int((deadline - time.monotonic()) * 1000))):
                poller.unregister(fd)  # exited: a pidfd stays readable, count it once
                remaining -= 1
    finally:
        for fd in fds:
            posix.close(fd)


def kill_and_wait(pid: int, start_time: int | None = None) -> None:
    """SIGKILL the init and wait (pidfd) until it has exited, or is exiting: the init of a pid
    namespace stays in the kernel until every other process of the namespace is reaped, and
    an exec'd process orphaned by a killed `exec` is reaped by the host's init, which may take
    its time. It has left the cgroup by then; we need not wait for the reaping."""
    try:
        pidfd = posix.pidfd_open(pid)
    except ProcessLookupError:
        return
    except OSError as e:  # EMFILE, ENOMEM: said as ours, so that a create's undo reports it and goes on
        raise SyscallError.from_os(e, f"pidfd_open of the container init (pid {pid})") from None
    try:
        if start_time is not None and not state.is_same_process(pid, start_time):
            return
        import _signal

        try:
            _signal.pidfd_send_signal(pidfd, 9)
        except ProcessLookupError:
            return
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        deadline = time.monotonic() + 10
        while not poller.poll(10):
            if state.is_exiting(pid):
                return
            if time.monotonic() > deadline:
                raise SetupError(f"container init (pid {pid}) did not die within 10 s of SIGKILL")
    finally:
        posix.close(pidfd)


def cgroup_of(data: dict):
    from ociruntime.linux import cgroups

    if not data.get("cgroup"):
        raise InvalidState("the container has no cgroup")
    try:
        return cgroups.from_state(data["cgroup"])
    except (KeyError, TypeError, ValueError, AttributeError):
        raise OciError(f"container {data.get('id', '')!r}: corrupt state file: the cgroup record "
                       "is incomplete") from None


def delete_quietly(root: str, cid: str) -> None:
    try:
        delete(root, cid, force=True)
    except OciError as e:
        log.warning(f"delete {cid}: {e}")
