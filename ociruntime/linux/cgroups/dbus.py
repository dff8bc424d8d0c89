"""A small D-Bus client for talking to systemd: connect to the system bus (root) or to the
user's bus (rootless: $DBUS_SESSION_BUS_ADDRESS, else $XDG_RUNTIME_DIR/bus), call methods, and
wait for signals.

jeepney (pure Python, synchronous) does the wire protocol; the authentication is ours, because
jeepney claims os.geteuid(), which is wrong in a user namespace (see peer_uid). jeepney is
imported here only, and this module only by the systemd cgroup driver: no other command pays
for it.
"""

from __future__ import annotations

import os
from collections import deque

from ociruntime.errors import CgroupError, OptionError

SYSTEM_BUS = "unix:path=/run/dbus/system_bus_socket"
BUS_NAMES = {"system": "system bus", "user": "user bus"}
CALL_TIMEOUT = 30.0  # seconds; systemd answers in milliseconds unless it is stuck


class BusUnusable(OptionError, CgroupError):
    """The bus of the systemd_cgroup option (runc's --systemd-cgroup) cannot be found or reached:
    a CgroupError that names the option the way OptionError does (the CLI says the flag)."""

    def __init__(self, reason: str) -> None:
        super().__init__("systemd_cgroup", reason)


class DBusError(CgroupError):
    """An error reply: `name` is the D-Bus error name (org.freedesktop.systemd1.NoSuchUnit)."""

    def __init__(self, message: str, name: str = "") -> None:
        super().__init__(message)
        self.name = name


def bus_address(kind: str) -> str:
    """The D-Bus address of the bus `kind` ("system" or "user"), found the way sd-bus does."""
    if kind == "system":
        return os.environ.get("DBUS_SYSTEM_BUS_ADDRESS") or SYSTEM_BUS
    if kind == "user":
        if os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
            return os.environ["DBUS_SESSION_BUS_ADDRESS"]
        runtime_dir = os.environ.get("XDG_RUNTIME_DIR", "")
        if not runtime_dir:
            raise BusUnusable("cannot find the user bus: neither "
                              "DBUS_SESSION_BUS_ADDRESS nor XDG_RUNTIME_DIR is set")
        return f"unix:path={runtime_dir}/bus"
    raise ValueError(kind)


def _socket_path(kind: str, address: str) -> str:
    from jeepney.bus import get_connectable_addresses

    try:
        return next(get_connectable_addresses(address))
    except (RuntimeError, ValueError, StopIteration):
        raise BusUnusable(f"unsupported address of the {BUS_NAMES[kind]} "
                          f"{address!r} (only unix sockets are supported)") from None


def peer_uid() -> int:
    """The uid to claim in EXTERNAL authentication: the one the bus daemon reads from the socket
    (SO_PEERCRED), which is our euid as the daemon's user namespace sees it. Root of podman's
    rootless user namespace is the user's own uid to the user's bus, not 0; the daemon rejects
    a claim that differs. Mapped through /proc/self/uid_map, i.e. into the namespace ours was
    made from, where the user's bus runs; outside any user namespace the map is the identity."""
    euid = os.geteuid()
    try:
        with open("/proc/self/uid_map", "rb") as f:
            lines = f.read().decode().splitlines()
    except OSError:
        return euid
    for line in lines:
        inside, outside, count = (int(v) for v in line.split())
        if inside <= euid < inside + count:
            return outside + euid - inside
    return euid


class AuthRejected(ConnectionError):
    pass


def _read_line(sock) -> bytes:
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = sock.recv(512)
        if not chunk or len(data) > 4096:
            raise AuthRejected("the bus closed the connection during authentication")
        data += chunk
    return data.strip()


def authenticate(sock, uid: int) -> None:
    """SASL EXTERNAL as `uid` (the D-Bus specification's "Authentication protocol"): a NUL byte,
    AUTH EXTERNAL <uid as hex of its decimal digits>, OK <server guid>, BEGIN."""
    sock.sendall(b"\0AUTH EXTERNAL " + str(uid).encode().hex().encode() + b"\r\n")
    answer = _read_line(sock)
    if not answer.startswith(b"OK "):
        raise AuthRejected(f"EXTERNAL authentication as uid {uid} rejected "
                           f"({answer.decode(errors='replace')[:80]})")
    sock.sendall(b"BEGIN\r\n")


def _connect(path: str):
    import socket

    from jeepney.io.blocking import DBusConnection

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.settimeout(CALL_TIMEOUT)
        sock.connect(path)
        authenticate(sock, peer_uid())
        return DBusConnection(sock)
    except BaseException:
        sock.close()
        raise


def _reason(err: BaseException) -> str:
    why = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
    why = why or type(err).__name__
    return why[:1].lower() + why[1:]


class Bus:
    """One connection to a bus. Messages matching a watch() rule are queued, also those that
    arrive while a call waits for its reply (jeepney's connection filters)."""

    __slots__ = ("conn", "handles", "kind", "path")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.path = _socket_path(kind, bus_address(kind))
        self.handles: list = []
        try:
            self.conn = _connect(self.path)
        except Exception as e:  # OSError (refused, rejected, timed out), a bad Hello reply
            raise self.unreachable(e) from None

    def where(self) -> str:
        return f"the {BUS_NAMES[self.kind]} ({self.path.replace(chr(0), '@')})"

    def unreachable(self, err: BaseException) -> CgroupError:
        return BusUnusable(f"cannot reach systemd on {self.where()}: "
                           f"{_reason(err)}")

    def call(self, dest: str, path: str, interface: str, member: str,
             signature: str | None = None, body: tuple = ()) -> tuple:
        """Call a method and return its reply's body; an error reply raises DBusError."""
        from jeepney import DBusAddress, MessageType, new_method_call
        from jeepney.low_level import HeaderFields

        msg = new_method_call(DBusAddress(path, bus_name=dest, interface=interface), member,
                              signature, body)
        try:
            reply = self.conn.send_and_get_reply(msg, timeout=CALL_TIMEOUT)
        except TimeoutError:
            raise CgroupError(f"cgroup: {member} on {self.where()}: no answer within "
                              f"{CALL_TIMEOUT:g}s") from None
        except OSError as e:
            raise self.unreachable(e) from None
        if reply.header.message_type == MessageType.error:
            name = reply.header.fields.get(HeaderFields.error_name, "")
            text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else ""
            raise DBusError(f"{text} ({name})" if text else name, name)
        return tuple(reply.body)

    def watch(self, **rule: str) -> deque:
        """Queue from now on the messages matching `rule` (jeepney MatchRule fields: type,
        interface, member, path, ...); AddMatch asks the bus to route them to us."""
        from jeepney import MatchRule

        match = MatchRule(**rule)
        queue: deque = deque()
        self.handles.append(self.conn.filter(match, queue=queue))
        self.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                  "AddMatch", "s", (match.serialise(),))
        return queue

    def next_message(self, queue: deque, timeout: float):
        """The next message of a watch() queue; TimeoutError after `timeout` seconds."""
        try:
            return self.conn.recv_until_filtered(queue, timeout=timeout)
        except OSError as e:
            if isinstance(e, TimeoutError):
                raise
            raise self.unreachable(e) from None

    def close(self) -> None:
        self.conn.close()
