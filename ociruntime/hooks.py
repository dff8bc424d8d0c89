"""The six hook kinds (config.md "POSIX-platform Hooks"): run each with the state on stdin,
honour `timeout`, and report a failure with the hook's path, status and output."""

from __future__ import annotations

import posix
import select
import time

from ociruntime import jsonio, log
from ociruntime.config import Hook
from ociruntime.errors import HookError
from ociruntime.signals import IGNORED_BY_PYTHON

MAX_OUTPUT = 4096


def run_hooks(kind: str, hooks: list[Hook], state: dict) -> None:
    """Run hooks in order; the first failure raises HookError (callers decide what it means)."""
    if not hooks:
        return
    payload = jsonio.dumps(state).encode()
    for i, hook in enumerate(hooks):
        run_hook(f"{kind}[{i}]", hook, payload)


def run_all_hooks(kind: str, hooks: list[Hook], state: dict) -> list[str]:
    """Run every hook even when some fail (poststop: failures are warnings); the failures."""
    payload = jsonio.dumps(state).encode()
    failures = []
    for i, hook in enumerate(hooks):
        try:
            run_hook(f"{kind}[{i}]", hook, payload)
        except HookError as e:
            failures.append(str(e))
    return failures


def run_hook(name: str, hook: Hook, payload: bytes) -> None:
    started = time.monotonic()
    stdin_r, stdin_w = posix.pipe2(posix.O_CLOEXEC)
    out_r, out_w = posix.pipe2(posix.O_CLOEXEC)
    try:
        try:
            env = dict(e.split("=", 1) for e in hook.env if "=" in e)
            pid = posix.posix_spawn(hook.path, hook.args, env, file_actions=[
                (posix.POSIX_SPAWN_DUP2, stdin_r, 0), (posix.POSIX_SPAWN_DUP2, out_w, 1),
                (posix.POSIX_SPAWN_DUP2, out_w, 2)], setsigdef=IGNORED_BY_PYTHON)
        except OSError as e:
            raise HookError(f"hook {name} {hook.path}: cannot run: {e.strerror}") from None
        posix.close(stdin_r)
        posix.close(out_w)
        stdin_r = out_w = -1
        # A pidfd: once the hook is reaped, a kill through it can never hit a recycled pid.
        pidfd = posix.pidfd_open(pid)
        try:
            _feed(stdin_w, payload)
            posix.close(stdin_w)
            stdin_w = -1
            status, output = _wait(pid, pidfd, out_r, hook.timeout, name, hook.path)
        except BaseException:
            _reap(pid, pidfd)  # we are failing (interrupted by delete -f, say): the hook goes too
            raise
        finally:
            posix.close(pidfd)
    finally:
        for fd in (stdin_r, stdin_w, out_r, out_w):
            if fd >= 0:
                posix.close(fd)
    log.debug(f"hook {name} {hook.path}: {(time.monotonic() - started) * 1000:.1f} ms")
    if status != 0:
        detail = f", output: {output.decode(errors='replace').strip()[:MAX_OUTPUT]!r}" if output.strip() else ""
        raise HookError(f"hook {name} {hook.path} failed: {_describe(status)}{detail}")


def _feed(fd: int, payload: bytes) -> None:
    try:
        view = memoryview(payload)
        while view:
            view = view[posix.write(fd, view):]
    except BrokenPipeError:
        pass  # a hook need not read its stdin


def _wait(pid: int, pidfd: int, out_fd: int, timeout: int | None, name: str,
          path: str) -> tuple[int, bytes]:
    """Collect output while waiting for exit; kill the hook when its timeout passes."""
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    poller.register(out_fd, select.POLLIN)
    deadline = None if timeout is None else time.monotonic() + timeout
    output = b""
    while True:
        wait_ms = None if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
        events = poller.poll(wait_ms)
        if not events:
            _reap(pid, pidfd)
            raise HookError(f"hook {name} {path}: timed out after {timeout}s (killed)")
        for fd, _ in events:
            if fd == out_fd:
                chunk = posix.read(out_fd, 65536)
                if not chunk:
                    poller.unregister(out_fd)
                elif len(output) < MAX_OUTPUT:
                    output += chunk
            elif fd == pidfd:
                return posix.waitpid(pid, 0)[1], output


def _reap(pid: int, pidfd: int) -> None:
    """SIGKILL and reap a hook we stop waiting for; already reaped is fine."""
    import _signal  # the C module: `signal` would import enum

    try:
        _signal.pidfd_send_signal(pidfd, 9)
        posix.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def _describe(status: int) -> str:
    if posix.WIFSIGNALED(status):
        return f"killed by signal {posix.WTERMSIG(status)}"
    return f"exit status {posix.WEXITSTATUS(status)}"
