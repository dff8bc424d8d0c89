"""A small D-Bus client for talking to systemd: connect to the system bus (root) or to the
user's bus (rootless: $DBUS_SESSION_BUS_ADDRESS, else $XDG_RUNTIME_DIR/bus), call methods, and
wait for signals.

The wire protocol is ours (the D-Bus specification's "Type System" and "Message Protocol"), on
builtin modules only. A client library was ~10 ms of imports in every `create` with the systemd
driver (jeepney: typing, enum, re, socket, selectors), and ~20 times that in the emulated guest,
to send the handful of messages below. The authentication claims the uid the bus daemon sees
(peer_uid), which in a user namespace is not our euid. This module is imported only by the
systemd cgroup driver: no other command pays for it.
"""

from __future__ import annotations

import _socket
import _struct
import posix
import time
from _collections import deque

from ociruntime import lean
from ociruntime.errors import CgroupError, OptionError

SYSTEM_BUS = "unix:path=/run/dbus/system_bus_socket"
BUS_NAMES = {"system": "system bus", "user": "user bus"}
CALL_TIMEOUT = 30.0  # seconds; systemd answers in milliseconds unless it is stuck
DAEMON = ("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus")
MAX_MESSAGE = 1 << 27  # the specification's limit: 128 MiB
MAX_DEPTH = 64  # of nested containers (arrays, structs, variants), as the specification says

# Message types, and the header fields (code: what it holds).
METHOD_CALL, METHOD_RETURN, ERROR, SIGNAL = 1, 2, 3, 4
PATH, INTERFACE, MEMBER, ERROR_NAME, REPLY_SERIAL, DESTINATION, SENDER, SIGNATURE = 1, 2, 3, 4, 5, 6, 7, 8
# A watch() rule's keys, as header fields.
RULE_FIELDS = {"path": PATH, "interface": INTERFACE, "member": MEMBER, "sender": SENDER}

# Each type code's alignment; the integers' (size, signed).
ALIGN = {"y": 1, "b": 4, "n": 2, "q": 2, "i": 4, "u": 4, "x": 8, "t": 8, "d": 8, "h": 4,
         "s": 4, "o": 4, "g": 1, "a": 4, "(": 8, "{": 8, "v": 1}
INTEGERS = {"y": (1, False), "n": (2, True), "q": (2, False), "i": (4, True), "u": (4, False),
            "x": (8, True), "t": (8, False), "h": (4, False)}
BASIC = "ybnqiuxtdhsog"  # what a dict entry's key may be
ORDERS = {ord("l"): "little", ord("B"): "big"}


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


class Malformed(ValueError):
    """A signature or a message that breaks the wire format."""


# ---------------------------------------------------------------- signatures and values


def _type_end(sig: str, i: int, element: bool = False) -> int:
    """The index past the single complete type that begins at sig[i] (`element`: of an array,
    the only place for a dict entry, {key value} with a basic key)."""
    if i >= len(sig) or sig[i] not in ALIGN:
        raise Malformed(f"bad D-Bus signature {sig!r}")
    code = sig[i]
    if code == "a":
        return _type_end(sig, i + 1, True)
    if code not in "({":
        return i + 1
    close, count = (")" if code == "(" else "}"), 0
    i += 1
    while i < len(sig) and sig[i] != close:
        if code == "{" and count == 0 and sig[i] not in BASIC:
            break
        i = _type_end(sig, i)
        count += 1
    if i >= len(sig) or sig[i] != close or not count or (code == "{" and (count != 2 or not element)):
        raise Malformed(f"bad D-Bus signature {sig!r}")
    return i + 1


def split(sig: str) -> list[str]:
    """The complete types of a signature, in order: "sa(sv)b" -> ["s", "a(sv)", "b"]."""
    types, i = [], 0
    while i < len(sig):
        end = _type_end(sig, i)
        types.append(sig[i:end])
        i = end
    return types


def marshal(buf: bytearray, sig: str, value) -> None:
    """Append `value` as the single complete type `sig`, little-endian, aligned from the start of
    `buf` (a message body: it begins on an 8-byte boundary, which every alignment divides). A
    variant is (signature, value); an array of bytes may be bytes; a{..} a dict or pairs."""
    code = sig[0]
    buf += bytes(-len(buf) % ALIGN[code])
    if code in INTEGERS:
        size, signed = INTEGERS[code]
        buf += int(value).to_bytes(size, "little", signed=signed)
    elif code == "b":
        buf += (1 if value else 0).to_bytes(4, "little")
    elif code == "d":
        buf += _struct.pack("<d", value)
    elif code in "so":
        data = value.encode()
        buf += len(data).to_bytes(4, "little") + data + b"\0"
    elif code == "g":
        data = value.encode()
        buf.append(len(data))
        buf += data + b"\0"
    elif code == "v":
        inner, inner_value = value
        if len(split(inner)) != 1:
            raise Malformed(f"a variant holds one complete type, not {inner!r}")
        marshal(buf, "g", inner)
        marshal(buf, inner, inner_value)
    elif code in "({":
        fields = split(sig[1:-1])
        if len(fields) != len(value):
            raise Malformed(f"{sig} needs {len(fields)} values, got {len(value)}")
        for field, field_value in zip(fields, value, strict=True):
            marshal(buf, field, field_value)
    else:  # "a"
        element = sig[1:]
        at = len(buf)
        buf += bytes(4)
        buf += bytes(-len(buf) % ALIGN[element[0]])  # padding before the first element, not counted
        start = len(buf)
        if element == "y" and isinstance(value, (bytes, bytearray)):
            buf += value
        else:
            for item in (value.items() if isinstance(value, dict) else value):
                marshal(buf, element, item)
        buf[at:at + 4] = (len(buf) - start).to_bytes(4, "little")


def unmarshal(data: bytes, pos: int, sig: str, order: str, depth: int = 0) -> tuple:
    """(the value of the single complete type `sig` at `pos`, the position after it). A variant
    is (signature, value), a struct a tuple, a{..} a dict, ay bytes, other arrays lists.
    `depth`: of the containers around it, at most MAX_DEPTH (variants nest without limit in
    the data)."""
    code = sig[0]
    if depth > MAX_DEPTH:
        raise Malformed(f"values nested deeper than {MAX_DEPTH}")
    pos += -pos % ALIGN[code]
    if code in INTEGERS:
        size, signed = INTEGERS[code]
        return int.from_bytes(_take(data, pos, size), order, signed=signed), pos + size
    if code == "b":
        return int.from_bytes(_take(data, pos, 4), order) != 0, pos + 4
    if code == "d":
        return _struct.unpack("<d" if order == "little" else ">d", _take(data, pos, 8))[0], pos + 8
    if code in "so":
        size = int.from_bytes(_take(data, pos, 4), order)
        return _take(data, pos + 4, size).decode(), pos + 5 + size
    if code == "g":
        size = _take(data, pos, 1)[0]
        return _take(data, pos + 1, size).decode(), pos + 2 + size
    if code == "v":
        inner, pos = unmarshal(data, pos, "g", order, depth)
        if len(split(inner)) != 1:
            raise Malformed(f"a variant holds one complete type, not {inner!r}")
        value, pos = unmarshal(data, pos, inner, order, depth + 1)
        return (inner, value), pos
    if code in "({":
        values = []
        for field in split(sig[1:-1]):
            value, pos = unmarshal(data, pos, field, order, depth + 1)
            values.append(value)
        return tuple(values), pos
    size = int.from_bytes(_take(data, pos, 4), order)
    element = sig[1:]
    pos += 4
    pos += -pos % ALIGN[element[0]]
    end = pos + size
    if element == "y":
        return bytes(_take(data, pos, size)), end
    items = []
    while pos < end:
        item, pos = unmarshal(data, pos, element, order, depth + 1)
        items.append(item)
    if pos != end:
        raise Malformed("an array's elements overrun its length")
    return (dict(items) if element[0] == "{" else items), end


def _take(data: bytes, pos: int, size: int) -> bytes:
    if pos + size > len(data):
        raise Malformed("a message ends inside a value")
    return data[pos:pos + size]


# ---------------------------------------------------------------- messages


class Message:
    """One message received: its type, serial, header fields (code -> value) and body."""

    __slots__ = ("body", "fields", "kind", "serial")

    def __init__(self, kind: int, serial: int, fields: dict, body: tuple) -> None:
        self.kind, self.serial, self.fields, self.body = kind, serial, fields, body


def method_call(serial: int, destination: str, path: str, interface: str, member: str,
                signature: str = "", body: tuple = ()) -> bytes:
    """A METHOD_CALL message, ready to send."""
    payload = bytearray()
    types = split(signature)
    if len(types) != len(body):
        raise Malformed(f"{member}({signature}) takes {len(types)} values, got {len(body)}")
    for sig, value in zip(types, body, strict=True):
        marshal(payload, sig, value)
    fields = [(PATH, ("o", path)), (INTERFACE, ("s", interface)), (MEMBER, ("s", member)),
              (DESTINATION, ("s", destination))]
    if signature:
        fields.append((SIGNATURE, ("g", signature)))
    head = bytearray(b"l" + bytes([METHOD_CALL, 0, 1]))
    head += len(payload).to_bytes(4, "little") + serial.to_bytes(4, "little")
    marshal(head, "a(yv)", fields)
    head += bytes(-len(head) % 8)
    return bytes(head + payload)


def frame_length(data: bytes | bytearray) -> int:
    """The length of the message at the start of `data` (its first 16 bytes), 0 if fewer."""
    if len(data) < 16:
        return 0
    order = ORDERS.get(data[0])
    if order is None or data[3] != 1:
        raise Malformed("not a D-Bus message of protocol version 1")
    header = 16 + int.from_bytes(data[12:16], order)
    length = header + (-header % 8) + int.from_bytes(data[4:8], order)
    if length > MAX_MESSAGE:
        raise Malformed(f"a message of {length} bytes")
    return length


def parse(data: bytes) -> Message:
    """The whole message `data` (frame_length(data) bytes)."""
    order = ORDERS[data[0]]
    try:
        fields, pos = unmarshal(data, 12, "a(yv)", order)
        header = {code: value for code, (_, value) in fields}
        pos += -pos % 8
        values, body_pos = [], pos
        for sig in split(header.get(SIGNATURE, "")):
            value, body_pos = unmarshal(data, body_pos, sig, order)
            values.append(value)
    except (UnicodeDecodeError, TypeError) as e:  # a string not UTF-8, a header field of another type
        raise Malformed(f"a malformed message: {e}") from None
    if body_pos != len(data):
        raise Malformed("a message's body does not match its signature")
    return Message(data[1], int.from_bytes(data[8:12], order), header, tuple(values))


# ---------------------------------------------------------------- the bus


def bus_address(kind: str) -> str:
    """The D-Bus address of the bus `kind` ("system" or "user"), found the way sd-bus does."""
    if kind == "system":
        return lean.getenv("DBUS_SYSTEM_BUS_ADDRESS") or SYSTEM_BUS
    if kind == "user":
        address = lean.getenv("DBUS_SESSION_BUS_ADDRESS")
        if address:
            return address
        runtime_dir = lean.getenv("XDG_RUNTIME_DIR")
        if not runtime_dir:
            raise BusUnusable("cannot find the user bus: neither "
                              "DBUS_SESSION_BUS_ADDRESS nor XDG_RUNTIME_DIR is set")
        return f"unix:path={runtime_dir}/bus"
    raise ValueError(kind)


def socket_path(kind: str, address: str) -> str:
    """The first unix socket among the address's entries ("unix:path=..." or
    "unix:abstract=...", ';'-separated, values %-escaped); an abstract one begins with NUL."""
    for entry in address.split(";"):
        transport, _, params = entry.partition(":")
        if transport != "unix":
            continue
        keys = dict(p.partition("=")[::2] for p in params.split(",") if p)
        try:
            if keys.get("path"):
                return _unescape(keys["path"])
            if keys.get("abstract"):
                return "\0" + _unescape(keys["abstract"])
        except ValueError:
            break
    raise BusUnusable(f"unsupported address of the {BUS_NAMES[kind]} "
                      f"{address!r} (only unix sockets are supported)")


def _unescape(value: str) -> str:
    """A D-Bus address value: %XX is the byte XX."""
    parts = value.split("%")
    out = bytearray(parts[0].encode())
    for part in parts[1:]:
        out += bytes.fromhex(part[:2]) + part[2:].encode()
    return out.decode()


def peer_uid() -> int:
    """The uid to claim in EXTERNAL authentication: the one the bus daemon reads from the socket
    (SO_PEERCRED), which is our euid as the daemon's user namespace sees it. Root of podman's
    rootless user namespace is the user's own uid to the user's bus, not 0; the daemon rejects
    a claim that differs. Mapped through /proc/self/uid_map, i.e. into the namespace ours was
    made from, where the user's bus runs; outside any user namespace the map is the identity."""
    euid = posix.geteuid()
    for line in lean.read_text("/proc/self/uid_map").splitlines():
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


def _reason(err: BaseException) -> str:
    why = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
    why = why or type(err).__name__
    return why[:1].lower() + why[1:]


class Bus:
    """One connection to a bus. Signals matching a watch() rule are queued, also those that
    arrive while a call waits for its reply."""

    __slots__ = ("kind", "path", "pending", "serial", "sock", "watches")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.path = socket_path(kind, bus_address(kind))
        self.serial = 0
        self.pending = bytearray()  # received bytes not yet a whole message
        self.watches: list[tuple[dict, deque]] = []
        self.sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC, 0)
        try:
            self.sock.settimeout(CALL_TIMEOUT)
            self.sock.connect(self.path)
            authenticate(self.sock, peer_uid())
            self.call(*DAEMON, "Hello")  # the bus's first message must be Hello
        except BusUnusable:  # the connection failed during Hello: said already
            self.sock.close()
            raise
        except Exception as e:  # OSError (refused, rejected, timed out), an error reply to Hello
            self.sock.close()
            raise self.unreachable(e) from None

    def where(self) -> str:
        return f"the {BUS_NAMES[self.kind]} ({self.path.replace(chr(0), '@')})"

    def unreachable(self, err: BaseException) -> CgroupError:
        return BusUnusable(f"cannot reach systemd on {self.where()}: "
                           f"{_reason(err)}")

    def call(self, dest: str, path: str, interface: str, member: str,
             signature: str | None = None, body: tuple = ()) -> tuple:
        """Call a method and return its reply's body; an error reply raises DBusError."""
        self.serial += 1
        serial = self.serial
        deadline = time.monotonic() + CALL_TIMEOUT
        try:
            self.sock.sendall(method_call(serial, dest, path, interface, member, signature or "", body))
            while True:
                reply = self._receive(deadline)
                if reply.kind in (METHOD_RETURN, ERROR) and reply.fields.get(REPLY_SERIAL) == serial:
                    break
                self._dispatch(reply)
        except TimeoutError:
            raise CgroupError(f"cgroup: {member} on {self.where()}: no answer within "
                              f"{CALL_TIMEOUT:g}s") from None
        except (OSError, Malformed) as e:
            raise self.unreachable(e) from None
        if reply.kind == ERROR:
            name = reply.fields.get(ERROR_NAME, "")
            text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else ""
            raise DBusError(f"{text} ({name})" if text else name, name)
        return reply.body

    def watch(self, **rule: str) -> deque:
        """Queue from now on the signals matching `rule` (keys of a D-Bus match rule: interface,
        member, path, sender); AddMatch asks the bus to route them to us."""
        queue: deque = deque()
        self.watches.append(({RULE_FIELDS[key]: value for key, value in rule.items()}, queue))
        text = ",".join(["type='signal'", *(f"{key}='{value}'" for key, value in rule.items())])
        self.call(*DAEMON, "AddMatch", "s", (text,))
        return queue

    def next_message(self, queue: deque, timeout: float) -> Message:
        """The next message of a watch() queue; TimeoutError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        try:
            while not queue:
                self._dispatch(self._receive(deadline))
        except (OSError, Malformed) as e:
            if isinstance(e, TimeoutError):
                raise
            raise self.unreachable(e) from None
        return queue.popleft()

    def _dispatch(self, msg: Message) -> None:
        """A message that is not the reply awaited: into each watch it matches, else dropped."""
        for fields, queue in self.watches:
            if msg.kind == SIGNAL and all(msg.fields.get(code) == value for code, value in fields.items()):
                queue.append(msg)

    def _receive(self, deadline: float) -> Message:
        """The next whole message from the socket, reading until `deadline` (TimeoutError)."""
        while True:
            length = frame_length(self.pending)
            if length and len(self.pending) >= length:
                data = bytes(self.pending[:length])
                del self.pending[:length]
                return parse(data)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("timed out")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionResetError("the bus closed the connection")
            self.pending += chunk

    def close(self) -> None:
        self.sock.close()
