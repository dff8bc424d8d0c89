"""The systemd driver's D-Bus client (linux/cgroups/dbus.py) on a real bus: the reference daemon
(dbus-daemon), which checks every message it is sent against the wire format and drops a client
that breaks it, and dbus-send to emit signals. There is no systemd here: the driver's calls to
it are tested in the guest (tests/guest/test_systemd_driver.py)."""

from __future__ import annotations

import posix
import socket
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest

from ociruntime.linux.cgroups import dbus
from ociruntime.linux.cgroups.systemd import resource_properties
from ociruntime.resources import Resources
from tests.dbusd import private_bus

TEST_PATH, TEST_INTERFACE = "/org/ociruntime/test", "org.ociruntime.Test"


@pytest.fixture
def bus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[dbus.Bus, str]]:
    """Our client connected, as the system bus, to a private daemon; and that bus's address."""
    with private_bus(tmp_path) as sock:
        address = f"unix:path={sock}"
        # lean.getenv reads posix.environ (os.environ's changes do not reach it)
        monkeypatch.setitem(posix.environ, b"DBUS_SYSTEM_BUS_ADDRESS", address.encode())
        client = dbus.Bus("system")
        try:
            yield client, address
        finally:
            client.close()


def send_signal(address: str, member: str, *args: str) -> None:
    subprocess.run(["dbus-send", f"--bus={address}", "--type=signal", TEST_PATH,
                    f"{TEST_INTERFACE}.{member}", *args], check=True, timeout=10)


def test_calls_and_error_replies(bus: tuple[dbus.Bus, str]) -> None:
    client, _ = bus
    (bus_id,) = client.call(*dbus.DAEMON, "GetId")
    assert len(bus_id) == 32 and int(bus_id, 16) >= 0
    (names,) = client.call(*dbus.DAEMON, "ListNames")
    assert "org.freedesktop.DBus" in names and any(n.startswith(":") for n in names)
    with pytest.raises(dbus.DBusError) as err:
        client.call(*dbus.DAEMON, "GetNameOwner", "s", ("org.freedesktop.systemd1",))
    assert err.value.name == "org.freedesktop.DBus.Error.NameHasNoOwner"
    assert "org.freedesktop.systemd1" in str(err.value)


def test_the_daemon_accepts_the_drivers_calls(bus: tuple[dbus.Bus, str]) -> None:
    """StartTransientUnit as the driver sends it, with real properties, to a name nobody owns:
    the daemon validates the whole message before it answers that nobody is there (a message
    that breaks the format would cost us the connection instead)."""
    client, _ = bus
    props = resource_properties(Resources({"memory": {"limit": 1 << 26}, "cpu": {"cpus": "0"},
                                           "pids": {"limit": 8}}), True)
    start = [("Delegate", ("b", True)), ("PIDs", ("au", [1])), *props]
    with pytest.raises(dbus.DBusError) as err:
        client.call("org.freedesktop.systemd1", "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager",
                    "StartTransientUnit", "ssa(sv)a(sa(sv))", ("x.scope", "replace", start, []))
    assert err.value.name == "org.freedesktop.DBus.Error.ServiceUnknown"
    (bus_id,) = client.call(*dbus.DAEMON, "GetId")  # still connected
    assert len(bus_id) == 32


def test_watched_signals_are_queued_also_while_a_call_waits(bus: tuple[dbus.Bus, str]) -> None:
    """As the driver waits for systemd's JobRemoved: a signal that matches the rule is queued,
    also one that arrives before the reply to a call; one that does not match is dropped."""
    client, address = bus
    jobs = client.watch(interface=TEST_INTERFACE, member="JobRemoved", path=TEST_PATH)
    send_signal(address, "Other", "string:not-this")
    send_signal(address, "JobRemoved", "uint32:7", "objpath:/job/7", "string:x.scope", "string:done")
    client.call(*dbus.DAEMON, "GetId")  # reads both signals before its reply
    assert len(jobs) == 1
    msg = client.next_message(jobs, 5)
    assert msg.body == (7, "/job/7", "x.scope", "done")
    send_signal(address, "JobRemoved", "uint32:8", "objpath:/job/8", "string:y.scope", "string:failed")
    assert client.next_message(jobs, 5).body == (8, "/job/8", "y.scope", "failed")
    with pytest.raises(TimeoutError):
        client.next_message(jobs, 0.2)


def test_a_closed_bus_is_said_in_one_line(bus: tuple[dbus.Bus, str]) -> None:
    client, _ = bus
    client.sock.shutdown(socket.SHUT_RDWR)  # as when the daemon goes away
    with pytest.raises(dbus.BusUnusable, match="cannot reach systemd on the system bus"):
        client.call(*dbus.DAEMON, "GetId")


def test_asking_systemd_loads_no_library(tmp_path: Path) -> None:
    """Connecting, authenticating, Hello, AddMatch and GetNameOwner (the driver's way to systemd, to
    a bus without it here) load nothing but our modules and the interpreter's builtin ones:
    before, the client library's imports cost ~10 ms in every `create --systemd-cgroup`."""
    root = Path(__file__).resolve().parent.parent.parent
    site = sysconfig.get_paths()["purelib"]  # as the launcher's sys.path: with the venv's packages
    probe = (f"import sys\nsys.path.insert(0, {str(root)!r})\nsys.path.append({site!r})\n"
             "before = set(sys.modules)\n"
             "from ociruntime.linux.cgroups.systemd import Systemd\n"
             "try:\n    Systemd('system')\nexcept Exception as e:\n    print(e)\n"
             "print(sorted(m for m in set(sys.modules) - before\n"
             "             if not m.startswith('ociruntime') and m not in sys.builtin_module_names))\n")
    with private_bus(tmp_path) as sock:
        r = subprocess.run([sys.executable, "-I", "-S", "-c", probe], capture_output=True, text=True, timeout=30,
                           env={"DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={sock}"})
    assert r.returncode == 0, r.stderr
    said, loaded = r.stdout.splitlines()
    assert "NameHasNoOwner" in said and "org.freedesktop.systemd1" in said, said  # asked whether systemd is there
    assert loaded == "['__future__']", loaded
