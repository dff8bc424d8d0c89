"""csrc/waitexec.c through its Python seam, in forked children (no container, no root): the
child unmaps its interpreter, waits for one byte on its end of a socket pair (exec.fifo in a
real init), then execs or reports on that same socket."""

from __future__ import annotations

import errno
import os
import signal
import socket
import sys
import time

import pytest

from ociruntime.config import Seccomp
from ociruntime.errors import SyscallError
from ociruntime.linux import seccomp, waitexec
from ociruntime.linux.kernel import kernel

SH = "/bin/sh"


class Waiting:
    """A forked child in oci_wait_exec: its pid, our end of its 'fifo', its stdout."""

    def __init__(self, plan_args: dict, before=None) -> None:
        self.sock, child_sock = socket.socketpair()
        out_r, out_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # never returns into pytest
            try:
                os.dup2(out_w, 1)
                if before is not None:
                    before()
                kernel().wait_exec(waitexec.pack(child_sock.fileno(), **plan_args), "wait")
            finally:
                os._exit(99)
        child_sock.close()
        os.close(out_w)
        self.pid, self.out = pid, out_r

    def wait_until_shed(self) -> list[str]:
        """The child's mappings once it sleeps on the byte (it unmapped before reading)."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with open(f"/proc/{self.pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            if state == "Z":
                raise AssertionError(f"pid {self.pid} died while shedding: {os.waitpid(self.pid, 0)}")
            sleeping = state == "S"  # on the socket, once shed
            with open(f"/proc/{self.pid}/maps") as f:
                maps = f.read().splitlines()
            if sleeping and not any("python" in line or "libc" in line for line in maps):
                return maps
            time.sleep(0.01)
        raise AssertionError(f"pid {self.pid} never shed its interpreter:\n" + "\n".join(maps))

    def start(self) -> tuple[int, bytes, bytes]:
        """Send the byte: (wait status, its stdout, what it reported on the socket)."""
        self.sock.sendall(b"0")
        _, status = os.waitpid(self.pid, 0)
        out = b""
        while chunk := os.read(self.out, 4096):
            out += chunk
        self.sock.settimeout(5)
        report = b""
        while chunk := self.sock.recv(4096):
            report += chunk
        return status, out, report

    def close(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        self.sock.close()
        os.close(self.out)


@pytest.fixture
def waiting():
    made: list[Waiting] = []

    def make(plan_args: dict, before=None) -> Waiting:
        made.append(Waiting(plan_args, before))
        return made[-1]

    yield make
    for w in made:
        w.close()


def test_the_waiting_process_keeps_a_few_pages_then_execs_its_plan(waiting) -> None:
    w = waiting({"path": SH, "args": ["sh", "-c", 'echo "$0 $GREETING"', "ran"],
                 "env": {"GREETING": "hello", "PATH": "/bin"}})
    maps = w.wait_until_shed()
    with open(f"/proc/{w.pid}/status") as f:
        rss_kib = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    assert len(maps) <= 8, "\n".join(maps)
    assert rss_kib < 512, f"VmRSS {rss_kib} kB while waiting"
    with open(f"/proc/{w.pid}/cmdline", "rb") as f:
        assert f.read(), "argv at the top of the stack is gone"
    status, out, report = w.start()
    assert (os.waitstatus_to_exitcode(status), out, report) == (0, b"ran hello\n", b"")


def test_a_failed_execve_is_reported_with_its_errno(waiting) -> None:
    w = waiting({"path": "/nonexistent/prog", "args": ["prog"], "env": {}})
    w.wait_until_shed()
    status, _, report = w.start()
    assert os.waitstatus_to_exitcode(status) == 1
    assert waitexec.report_text(report) == "exec /nonexistent/prog: No such file or directory"


def test_the_filter_is_loaded_after_the_byte_and_binds_the_program(waiting, tmp_path) -> None:
    spec = Seccomp({"defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]})
    bpf = seccomp.compile_filter(spec).bpf
    target = tmp_path / "made"
    w = waiting({"path": SH, "args": ["sh", "-c", f"mkdir {target} 2>/dev/null || echo refused"],
                 "env": {}, "bpf": bpf},
                before=lambda: kernel().prctl(38, 1, 0, "no_new_privs"))  # PR_SET_NO_NEW_PRIVS
    w.wait_until_shed()
    with open(f"/proc/{w.pid}/status") as f:
        assert "Seccomp:\t0" in f.read(), "the filter was loaded before the byte"
    status, out, _ = w.start()
    assert (os.waitstatus_to_exitcode(status), out) == (0, b"refused\n")
    assert not target.exists()


def test_a_signal_whose_handler_was_unmapped_gets_its_default_action(waiting) -> None:
    """Python's handler for SIGUSR1 lived in the unmapped interpreter: the signal must do what
    it would after execve (terminate), not jump into nothing (SIGSEGV)."""
    w = waiting({"path": SH, "args": ["sh", "-c", "true"], "env": {}},
                before=lambda: signal.signal(signal.SIGUSR1, lambda *_: None))
    w.wait_until_shed()
    for sig in (signal.SIGWINCH, signal.SIGCONT):  # ignored by default: it keeps waiting
        os.kill(w.pid, sig)
    time.sleep(0.05)
    os.kill(w.pid, signal.SIGUSR1)
    _, status = os.waitpid(w.pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGUSR1, status


@pytest.mark.parametrize("mangle", ["argc", "report", "tail"])
def test_a_plan_that_does_not_add_up_is_refused_before_anything_changes(mangle: str) -> None:
    plan = bytearray(waitexec.pack(5, SH, ["sh"], {}))
    if mangle == "argc":
        plan[4:8] = (2).to_bytes(4, sys.byteorder)  # two arguments, one string
    elif mangle == "report":
        plan[24:28] = (5000).to_bytes(4, sys.byteorder)  # a report prefix longer than a page
    else:
        plan += b"x"  # bytes after the last string
    with pytest.raises(SyscallError) as info:
        kernel().wait_exec(bytes(plan), "wait")
    assert info.value.errno == errno.EINVAL
    with open("/proc/self/maps") as f:
        assert "python" in f.read()  # still here, still whole


def test_an_ending_signal_ends_the_waiting_process_with_128_plus_its_number(waiting) -> None:
    w = waiting({"path": SH, "args": ["sh", "-c", "true"], "env": {},
                 "ending_signals": (signal.SIGHUP, signal.SIGTERM)})
    w.wait_until_shed()
    os.kill(w.pid, signal.SIGTERM)
    _, status = os.waitpid(w.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 128 + signal.SIGTERM
