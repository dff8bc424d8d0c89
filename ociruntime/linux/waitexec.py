"""The plan csrc/waitexec.c carries out: the init, done with Python once it reported `ready`,
unmaps the interpreter while the container waits, then reads `start`'s byte and execs.

The plan is one bytes object: a header of eight native-order u32 (fifo fd, argc, envc, filter
instructions, seccomp flags, the two report prefixes' lengths, the signals that end the waiting
process as a mask: bit n-1 for signal n), the BPF program loaded after
the byte (none: 0 instructions), the report prefixes, then path, argv and env, each string
NUL-terminated. A failed step writes its prefix, a NUL and the errno in decimal to exec.fifo:
`start` turns that into the error's text (report_text)."""

from __future__ import annotations

import posix
import sys

from ociruntime.signals import SIGNALS

# A created container's init ends on these, as runc's does (its Go runtime exits on them); any
# other signal leaves it waiting for `start`. Exit status 128 + the signal's number.
ENDING_SIGNALS = (SIGNALS["HUP"], SIGNALS["INT"], SIGNALS["QUIT"], SIGNALS["TERM"])
SECCOMP_REPORT = b"load seccomp filter: "
# csrc/waitexec.c refuses a report prefix longer than a page.
MAX_REPORT = 4000


def _u32(n: int) -> bytes:
    return n.to_bytes(4, sys.byteorder)


def _c(text: str) -> bytes:
    """As posix.execve encodes a str."""
    return text.encode("utf-8", "surrogateescape")


def pack(fifo_fd: int, path: str, args: list[str], env: dict[str, str], bpf: bytes = b"",
         filter_flags: int = 0, ending_signals: tuple[int, ...] = ()) -> bytes:
    exec_report = _c(f"exec {path}: ")[:MAX_REPORT]
    strings = b"".join(_c(s) + b"\0" for s in (path, *args, *(f"{k}={v}" for k, v in env.items())))
    header = b"".join(_u32(n) for n in (fifo_fd, len(args), len(env), len(bpf) // 8, filter_flags,
                                        len(SECCOMP_REPORT), len(exec_report),
                                        sum(1 << (n - 1) for n in ending_signals)))
    return header + bpf + SECCOMP_REPORT + exec_report + strings


def report_text(report: bytes) -> str:
    """What the init wrote on exec.fifo when it failed after `start`'s byte: a message, or from
    the shim (which has no strerror) a prefix, a NUL and the errno in decimal."""
    text, nul, number = report.partition(b"\0")
    message = text.decode(errors="replace")
    if nul and number.isdigit():
        return message + posix.strerror(int(number))
    return message.strip()
