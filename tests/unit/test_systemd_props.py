"""linux.resources -> systemd unit properties (the systemd cgroup driver). That they marshal as
the signatures systemd's StartTransientUnit/SetUnitProperties take: tests/unit/test_dbus_wire.py
and tests/integration/test_dbus_client.py. The driver itself runs against a real systemd in the
guest (tests/guest/test_systemd_driver.py)."""

from __future__ import annotations

import pytest

from ociruntime.errors import CgroupError
from ociruntime.linux.cgroups.systemd import (
    INFINITY,
    cpu_mask,
    device_properties,
    resource_properties,
)
from ociruntime.resources import DeviceRule, Resources
from ociruntime.spectables import DEFAULT_DEVICE_RULES


def props(resources: dict, v2: bool = True) -> dict:
    return dict(resource_properties(Resources(resources), v2))


def device_props(rules: list) -> dict:
    return dict(device_properties([DeviceRule(r) for r in rules]))


def test_memory_cpu_pids_io() -> None:
    p = props({"memory": {"limit": 1 << 26, "reservation": 1 << 25, "swap": 1 << 27},
               "cpu": {"shares": 1024, "quota": 50000, "period": 100000},
               "pids": {"limit": 64}, "blockIO": {"weight": 500}})
    assert p["MemoryMax"] == ("t", 1 << 26) and p["MemoryLow"] == ("t", 1 << 25)
    assert p["MemorySwapMax"] == ("t", (1 << 27) - (1 << 26))  # the spec's swap is memory+swap
    assert p["CPUWeight"] == ("t", 39) and p["TasksMax"] == ("t", 64)
    assert p["CPUQuotaPerSecUSec"] == ("t", 500000) and p["CPUQuotaPeriodUSec"] == ("t", 100000)
    assert p["IOWeight"] == ("t", 4950)


def test_unlimited_and_zero() -> None:
    p = props({"memory": {"limit": -1, "swap": -1}, "cpu": {"quota": -1}, "pids": {"limit": -1}})
    assert p["MemoryMax"] == p["MemorySwapMax"] == p["TasksMax"] == ("t", INFINITY)
    assert p["CPUQuotaPerSecUSec"] == ("t", INFINITY)
    # systemd refuses TasksMax=0; a limit of 0 goes to pids.max only.
    assert "TasksMax" not in props({"pids": {"limit": 0}})


def test_quota_rounds_up_so_systemd_writes_back_at_least_the_quota() -> None:
    per_sec = props({"cpu": {"quota": 33333, "period": 300000}})["CPUQuotaPerSecUSec"][1]
    assert per_sec * 300000 // 1_000_000 >= 33333
    # An update of the period alone keeps the current quota (read from the cgroup).
    p = dict(resource_properties(Resources({"cpu": {"period": 50000}}), True, lambda: 25000))
    assert p["CPUQuotaPerSecUSec"] == ("t", 500000) and p["CPUQuotaPeriodUSec"] == ("t", 50000)


def test_v1_names() -> None:
    p = props({"memory": {"limit": 1 << 26, "reservation": 1}, "cpu": {"shares": 512},
               "blockIO": {"weight": 100}}, v2=False)
    assert p == {"MemoryLimit": ("t", 1 << 26), "CPUShares": ("t", 512),
                 "BlockIOWeight": ("t", 100)}


def test_cpu_mask() -> None:
    assert cpu_mask("0", "cpus") == b"\x01"
    assert cpu_mask("0-2,9", "cpus") == b"\x07\x02"
    with pytest.raises(CgroupError, match="cpus"):
        cpu_mask("3-1", "cpus")
    assert props({"cpu": {"cpus": "1", "mems": "0"}})["AllowedCPUs"] == ("ay", b"\x02")


def test_unified_keys() -> None:
    p = props({"unified": {"memory.high": "1000000", "memory.min": "max", "cpu.max": "20000 50000",
                           "pids.max": "7", "io.max": "8:0 rbps=1"}})
    assert p["MemoryHigh"] == ("t", 1000000) and p["MemoryMin"] == ("t", INFINITY)
    assert p["CPUQuotaPerSecUSec"] == ("t", 400000) and p["TasksMax"] == ("t", 7)
    assert set(p) == {"MemoryHigh", "MemoryMin", "CPUQuotaPerSecUSec", "CPUQuotaPeriodUSec",
                      "TasksMax"}  # io.max has no property: cgroupfs only


def test_devices_default_rules_are_expressed_exactly() -> None:
    rules = [{"allow": False, "access": "rwm"}, *DEFAULT_DEVICE_RULES]
    p = device_props(rules)
    assert p["DevicePolicy"] == ("s", "strict")
    allow = p["DeviceAllow"][1]
    assert ("char-*", "m") in allow and ("block-*", "m") in allow
    assert ("/dev/char/1:3", "rwm") in allow and ("/dev/char/5:2", "rwm") in allow
    assert ("char-pts", "rwm") in allow  # 136:* by its /proc/devices name


def test_devices_systemd_cannot_express_leave_it_to_the_bpf_program() -> None:
    for rules in ([{"allow": True, "access": "rwm"}],  # privileged: no deny-all
                  [{"allow": False, "access": "rwm"},
                   {"allow": True, "type": "c", "minor": 3, "access": "r"}],  # any major, minor 3
                  [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "access": "rwm"},
                   {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"}]):
        assert device_props(rules) == {"DevicePolicy": ("s", "auto"),
                                                  "DeviceAllow": ("a(ss)", [])}
