"""A small D-Bus client for talking to systemd: connect to the system bus (root) or to the
user's bus (rootless: $DBUS_SESSION_BUS_ADDRESS, else $XDG_RUNTIME_DIR/bus), call methods, and
wait for signals.

jeepney (pure Python, synchronous) does the wire protocol. It is imported here only, and this
module only by the systemd cgroup driver: no other command pays for it.
"""

from __future__ import annotations

import os
from collections import deque

from ociruntime.errors import CgroupError

SYSTEM_BUS = "unix:path=/run/dbus/system_bus_socket"
BUS_NAMES = {"system": "system bus", "user": "user bus"}
CALL_TIMEOUT = 30.0  # seconds; systemd answers in milliseconds unless it is stuck


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
            raise CgroupError("--systemd-cgroup: cannot find the user bus: neither "
                              "DBUS_SESSION_BUS_ADDRESS nor XDG_RUNTIME_DIR is set")
        return f"unix:path={runtime_dir}/bus"
    raise ValueError(kind)


def _socket_path(kind: str, address: str) -> str:
    from jeepney.bus import get_connectable_addresses

    try:
        return next(get_connectable_addresses(address))
    except (RuntimeError, ValueError, StopIteration):
        raise CgroupError(f"--systemd-cgroup: unsupported address of the {BUS_NAMES[kind]} "
                          f"{address!r} (only unix sockets are supported)") from None


def _reason(err: BaseException) -> str:
    why = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
    why = why or type(err).__name__
    return why[:1].lower() + why[1:]


class Bus:
    """One connection to a bus. Messages matching a watch() rule are queued, also those that
    arrive while a call waits for its reply (jeepney's connection filters)."""

    __slots__ = ("conn", "handles", "kind", "path")

    def __init__(self, kind: str) -> None:
        from jeepney.io.blocking import DBusConnection, prep_socket

        self.kind = kind
        self.path = _socket_path(kind, bus_address(kind))
        self.handles: list = []
        try:
            self.conn = DBusConnection(prep_socket(self.path, timeout=CALL_TIMEOUT))
        except Exception as e:  # OSError, TimeoutError, jeepney's AuthenticationError
            raise self.unreachable(e) from None

    def where(self) -> str:
        return f"the {BUS_NAMES[self.kind]} ({self.path.replace(chr(0), '@')})"

    def unreachable(self, err: BaseException) -> CgroupError:
        return CgroupError(f"--systemd-cgroup: cannot reach systemd on {self.where()}: "
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
