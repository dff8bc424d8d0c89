"""The D-Bus wire format of the systemd driver's client (linux/cgroups/dbus.py), checked against
an independent implementation (jeepney, a test dependency only): what we write, jeepney reads as
the same message; what jeepney writes, in either byte order, we read as the same. The client on a
real bus: tests/integration/test_dbus_client.py; with systemd: tests/guest."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jeepney import DBusAddress, new_method_call
from jeepney.low_level import Endianness, HeaderFields, Parser

from ociruntime.errors import CgroupError
from ociruntime.linux.cgroups import dbus
from ociruntime.linux.cgroups.systemd import resource_properties
from ociruntime.resources import Resources
from ociruntime.spectables import DEFAULT_DEVICE_RULES

BASIC = {
    "y": st.integers(0, 255), "b": st.booleans(), "n": st.integers(-(1 << 15), (1 << 15) - 1),
    "q": st.integers(0, (1 << 16) - 1), "i": st.integers(-(1 << 31), (1 << 31) - 1),
    "u": st.integers(0, (1 << 32) - 1), "x": st.integers(-(1 << 63), (1 << 63) - 1),
    "t": st.integers(0, (1 << 64) - 1), "d": st.floats(allow_nan=False),
    "s": st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=12),
    "o": st.from_regex(r"\A(/|(/[A-Za-z0-9_]{1,6}){1,3})\Z"),
    "g": st.sampled_from(["", "s", "a(sv)", "ua{sv}"]),
}
# Signatures: basic types, and arrays, structs, dicts and variants of them, nested.
SIGNATURES = st.recursive(
    st.sampled_from(sorted(BASIC)),
    lambda inner: st.one_of(
        inner.map(lambda s: "a" + s),
        st.lists(inner, min_size=1, max_size=3).map(lambda ts: "(" + "".join(ts) + ")"),
        st.tuples(st.sampled_from(sorted(BASIC)), inner).map(lambda kv: "a{" + kv[0] + kv[1] + "}"),
        st.just("v"),
    ),
    max_leaves=6,
)


def values(sig: str) -> st.SearchStrategy:
    """Values of the single complete type `sig`, as both implementations represent them."""
    code = sig[0]
    if code in BASIC:
        return BASIC[code]
    if code == "v":
        return SIGNATURES.flatmap(lambda inner: st.tuples(st.just(inner), values(inner)))
    if code == "(":
        return st.tuples(*(values(t) for t in dbus.split(sig[1:-1])))
    if sig.startswith("a{"):
        key, value = dbus.split(sig[2:-1])
        return st.dictionaries(values(key), values(value), max_size=3)
    if sig == "ay":
        return st.binary(max_size=8)
    return st.lists(values(sig[1:]), max_size=3)


BODIES = st.lists(SIGNATURES, min_size=1, max_size=3).flatmap(
    lambda sigs: st.tuples(st.just("".join(sigs)), st.tuples(*(values(s) for s in sigs))))
ADDRESS = ("org.example.Test", "/org/example/test", "org.example.Test", "Method")


def jeepney_reads(data: bytes):
    parser = Parser()
    parser.add_data(data)
    msg = parser.get_next_message()
    assert msg is not None and parser.get_next_message() is None  # one whole message, no more
    return msg


@settings(max_examples=300, deadline=None)
@given(BODIES)
def test_jeepney_reads_our_calls(body: tuple[str, tuple]) -> None:
    signature, args = body
    data = dbus.method_call(5, *ADDRESS, signature, args)
    assert dbus.frame_length(data) == len(data)
    msg = jeepney_reads(data)
    fields = msg.header.fields
    assert (fields[HeaderFields.destination], fields[HeaderFields.path], fields[HeaderFields.interface],
            fields[HeaderFields.member], fields[HeaderFields.signature]) == (*ADDRESS, signature)
    assert msg.header.serial == 5 and msg.body == args


@settings(max_examples=300, deadline=None)
@given(BODIES, st.sampled_from([Endianness.little, Endianness.big]))
def test_we_read_jeepneys_messages(body: tuple[str, tuple], order: Endianness) -> None:
    signature, args = body
    destination, path, interface, member = ADDRESS
    msg = new_method_call(DBusAddress(path, bus_name=destination, interface=interface), member,
                          signature, args)
    msg.header.endianness = order
    data = msg.serialise(serial=9)
    assert dbus.frame_length(data[:16]) == len(data)
    ours = dbus.parse(data)
    assert (ours.kind, ours.serial, ours.body) == (dbus.METHOD_CALL, 9, args)
    assert ours.fields[dbus.PATH] == path and ours.fields[dbus.MEMBER] == member
    assert ours.fields[dbus.SIGNATURE] == signature


def test_systemds_calls_as_the_driver_sends_them() -> None:
    """StartTransientUnit's and SetUnitProperties' bodies, made of the driver's real properties."""
    props = resource_properties(Resources({
        "memory": {"limit": 1 << 26}, "cpu": {"shares": 512, "quota": 20000, "period": 100000, "cpus": "0-1"},
        "pids": {"limit": 32}, "devices": [{"allow": False, "access": "rwm"}, *DEFAULT_DEVICE_RULES,
                                           {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}]}),
        True)
    calls = [("StartTransientUnit", "ssa(sv)a(sa(sv))",
              ("x.scope", "replace", [("Delegate", ("b", True)), ("PIDs", ("au", [1234])), *props], [])),
             ("SetUnitProperties", "sba(sv)", ("x.scope", True, props))]
    for member, signature, args in calls:
        msg = jeepney_reads(dbus.method_call(1, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                                             "org.freedesktop.systemd1.Manager", member, signature, args))
        assert msg.body == args


@pytest.mark.parametrize("sig", ["a", "(", "(s", "()", "a{s", "z", "sa", "(sv", "{sv}", "a{vs}", "a{s}",
                                 "a{sss}", "s)"])
def test_bad_signatures_are_refused(sig: str) -> None:
    with pytest.raises(dbus.Malformed):
        dbus.split(sig)


def test_values_that_do_not_fit_their_signature_are_refused() -> None:
    with pytest.raises(dbus.Malformed):
        dbus.method_call(1, *ADDRESS, "ss", ("only one",))
    with pytest.raises(dbus.Malformed):
        dbus.method_call(1, *ADDRESS, "(su)", (("one",),))
    with pytest.raises(dbus.Malformed):
        dbus.method_call(1, *ADDRESS, "v", (("su", ("two", 2)),))


def test_a_message_cut_short_or_of_another_protocol_is_refused() -> None:
    data = dbus.method_call(3, *ADDRESS, "sa(sv)", ("unit", [("Delegate", ("b", True))]))
    assert dbus.frame_length(data[:15]) == 0  # not even the fixed header yet
    for end in (len(data) - 1, len(data) - 9, 40):
        with pytest.raises(dbus.Malformed):
            dbus.parse(data[:end])
    with pytest.raises(dbus.Malformed):
        dbus.frame_length(b"l\x01\x00\x02" + data[4:])  # protocol version 2
    with pytest.raises(dbus.Malformed):
        dbus.frame_length(b"x" + data[1:])  # neither byte order
    not_utf8 = dbus.method_call(3, *ADDRESS, "s", ("zz",)).replace(b"zz\0", b"\xff\xfe\0")
    with pytest.raises(dbus.Malformed, match="malformed message"):
        dbus.parse(not_utf8)
    # the signature header field (8) holding a number, not a signature
    odd = bytearray(b"l\1\0\1") + bytes(4) + (3).to_bytes(4, "little")
    dbus.marshal(odd, "a(yv)", [(dbus.PATH, ("o", "/a")), (dbus.MEMBER, ("s", "M")), (dbus.SIGNATURE, ("u", 7))])
    odd += bytes(-len(odd) % 8)
    with pytest.raises(dbus.Malformed, match="malformed message"):
        dbus.parse(bytes(odd))
    huge = data[:4] + (1 << 28).to_bytes(4, "little") + data[8:]
    with pytest.raises(dbus.Malformed):
        dbus.frame_length(huge)


def test_values_nested_past_the_limit_are_refused() -> None:
    """Variants nest in the data, not the signature: a message can ask for any depth. The
    specification's limit, 64, is kept; past it, one clear error instead of a RecursionError."""
    def nested(depth: int) -> tuple:
        value: tuple = ("u", 7)
        for _ in range(depth - 1):
            value = ("v", value)
        return value

    ok = dbus.parse(dbus.method_call(1, *ADDRESS, "v", (nested(64),)))
    assert ok.body == (nested(64),)
    # 2000 variants, each a signature "v" and the next; the last holds a u (written by hand:
    # our own marshal() is only ever given the driver's shallow values).
    one = dbus.method_call(1, *ADDRESS, "v", (("u", 7),))
    body = b"\1v\0" * 1999 + b"\1u\0"
    body += bytes(-len(body) % 4) + (7).to_bytes(4, "little")
    head = one[:len(one) - 8]  # the one-level body: b"\1u\0" + padding + u32
    deep = head[:4] + len(body).to_bytes(4, "little") + head[8:] + body
    with pytest.raises(dbus.Malformed, match="nested deeper than 64"):
        dbus.parse(deep)


@pytest.mark.parametrize(("address", "path"), [
    ("unix:path=/run/dbus/system_bus_socket", "/run/dbus/system_bus_socket"),
    ("unix:abstract=/tmp/dbus-x,guid=00ff", "\0/tmp/dbus-x"),
    ("tcp:host=localhost,port=1;unix:path=/run/user/1000/bus", "/run/user/1000/bus"),
    ("unix:path=/tmp/a%20b%2c", "/tmp/a b,"),
])
def test_socket_of_an_address(address: str, path: str) -> None:
    assert dbus.socket_path("user", address) == path


@pytest.mark.parametrize("address", ["tcp:host=localhost,port=1", "unix:tmpdir=/tmp", "garbage", "unix:path=/a%zz"])
def test_addresses_without_a_usable_socket(address: str) -> None:
    with pytest.raises(CgroupError, match="only unix sockets are supported") as err:
        dbus.socket_path("system", address)
    assert isinstance(err.value, dbus.BusUnusable) and "system bus" in str(err.value)
