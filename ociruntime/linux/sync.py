"""Messages between the runtime (parent) and its children over a SOCK_SEQPACKET socketpair:
one JSON object per packet, so a child's error reaches `create` as a sentence, not an exit code."""

from __future__ import annotations

import _socket
import os

from ociruntime import jsonio
from ociruntime.errors import SetupError

MAX_MESSAGE = 1 << 16


def socketpair() -> tuple[int, int]:
    a, b = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC, 0)
    return a.detach(), b.detach()


def send(fd: int, kind: str, **fields: object) -> None:
    fields["t"] = kind
    os.write(fd, jsonio.dumps(fields).encode())


def recv(fd: int) -> dict | None:
    """The next message, or None when the other side has gone (EOF)."""
    try:
        data = os.read(fd, MAX_MESSAGE)
    except ConnectionResetError:
        return None
    if not data:
        return None
    msg = jsonio.loads(data)
    if not isinstance(msg, dict):
        raise SetupError(f"sync: unexpected message {data[:80]!r}")
    return msg


def expect_one_of(fd: int, kinds: tuple[str, ...], what: str) -> str:
    """Wait for a message of one of `kinds`; returns which."""
    msg = recv(fd)
    if msg is None:
        raise SetupError(f"{what}: the other side exited")
    if msg["t"] == "error":
        raise SetupError(str(msg.get("msg")))
    if msg["t"] not in kinds:
        raise SetupError(f"{what}: expected one of {kinds}, got {msg['t']!r}")
    return str(msg["t"])


def expect(fd: int, kind: str, what: str) -> dict:
    """Wait for one message of `kind`; an 'error' message or EOF becomes a SetupError."""
    msg = recv(fd)
    if msg is None:
        raise SetupError(f"{what}: the other side exited")
    if msg["t"] == "error":
        raise SetupError(str(msg.get("msg")))
    if msg["t"] != kind:
        raise SetupError(f"{what}: expected {kind!r}, got {msg['t']!r}")
    return msg
