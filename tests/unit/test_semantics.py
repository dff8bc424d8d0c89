"""Semantic checks of config.json beyond the schema (no containers are created)."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from oci_strategies import documents
from test_schema import assert_messages_well_formed, spec_config

from ociruntime import semantics


@pytest.fixture
def doc(tmp_path: Any) -> dict[str, Any]:
    return spec_config(tmp_path)


def errors_of(doc: dict[str, Any], **kw: Any) -> list[str]:
    return semantics.check_config(doc, **kw)[0]


def warnings_of(doc: dict[str, Any], **kw: Any) -> list[str]:
    return semantics.check_config(doc, **kw)[1]


@pytest.mark.parametrize(("tool", "rootless"), [("runc", False), ("runc", True), ("crun", False)])
def test_default_configs_are_clean(tmp_path: Any, tool: str, rootless: bool) -> None:
    config = spec_config(tmp_path, tool, rootless)
    assert semantics.check_config(config) == ([], [])
    assert semantics.check_config(config, systemd_cgroup=True) == ([], [])


def test_crun_rootless_spec_relies_on_automatic_mappings(tmp_path: Any) -> None:
    # crun fills in mappings for an unprivileged caller; we (like runc as root) need them in the config.
    assert errors_of(spec_config(tmp_path, "crun", rootless=True)) == [
        "linux.uidMappings: required: a new user namespace needs uid and gid mappings",
        "linux.gidMappings: required: a new user namespace needs uid and gid mappings",
    ]


@pytest.mark.parametrize(
    ("version", "errors", "warnings"),
    [
        ("1.0.2-dev", [], []),
        ("1.3.0", [], []),
        ("2.0.0", ['ociVersion: "2.0.0" is not supported: expected a 1.x version (this runtime implements 1.3.0)'], []),
        ("0.5.0", ['ociVersion: "0.5.0" is not supported: expected a 1.x version (this runtime implements 1.3.0)'], []),
        ("banana", ['ociVersion: "banana" is not a SemVer 2.0.0 version (expected e.g. 1.3.0)'], []),
        ("1.0", [], ['ociVersion: "1.0" is not a SemVer 2.0.0 version (expected e.g. 1.3.0)']),
        ("1.9.0", [], ['ociVersion: "1.9.0" is newer than 1.3.0: properties this runtime does not know are ignored']),
    ],
)
def test_oci_version(doc: dict[str, Any], version: str, errors: list[str], warnings: list[str]) -> None:
    doc["ociVersion"] = version
    assert semantics.check_config(doc) == (errors, warnings)


def test_root_and_process_presence(doc: dict[str, Any]) -> None:
    del doc["root"], doc["process"]
    assert errors_of(doc) == ["root: required property is missing (on Linux the container needs a root filesystem)"]
    assert errors_of(doc, require_process=True)[-1] == (
        "process: required property is missing (it names what the container runs)"
    )


def test_process_checks(doc: dict[str, Any]) -> None:
    proc = doc["process"]
    proc["cwd"] = "relative/dir"
    proc["args"] = ["", "a\x00b"]
    proc["env"] = ["PATH=/bin", "NOEQUALS", "=value"]
    proc["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "soft": 10, "hard": 5},
        {"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1},
        {"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1},
    ]
    proc["user"]["umask"] = 1000
    proc["scheduler"] = {"policy": "SCHED_FIFO", "nice": 30, "priority": 0}
    proc["execCPUAffinity"] = {"initial": "0-3,7", "final": "3-1"}
    errors = errors_of(doc)
    assert errors[:10] == [
        'process.cwd: "relative/dir" must be an absolute path',
        'process.args[1]: "a\\x00b" contains a NUL byte',
        "process.args[0]: must not be empty: it names the program to run",
        'process.env[1]: "NOEQUALS" is not of the form KEY=value',
        'process.env[2]: "=value" has an empty variable name',
        "process.rlimits[0]: soft limit 10 is above the hard limit 5",
        "process.rlimits[1].type: RLIMIT_NOFILE is set twice (first in process.rlimits[0])",
        'process.rlimits[2].type: "RLIMIT_BOGUS" is not one of ' + ", ".join(sorted(semantics.RLIMITS)),
        "process.scheduler.nice: 30 is out of range: expected an integer from -20 to 19",
        "process.scheduler.priority: 0 is out of range for SCHED_FIFO: expected 1 to 99",
    ]
    assert errors[10:] == [
        "process.user.umask: 1000 is not a umask: expected 0 to 511 (0o777)",
        'process.execCPUAffinity.final: "3-1" is not a list like 0-3,7',
    ]


def test_unknown_capabilities_are_warnings_not_errors(doc: dict[str, Any]) -> None:
    doc["process"]["capabilities"]["bounding"].append("CAP_TIME_TRAVEL")
    assert semantics.check_config(doc) == (
        [], ['process.capabilities.bounding[3]: unknown capability "CAP_TIME_TRAVEL" is ignored']
    )


def test_check_process_for_exec(doc: dict[str, Any]) -> None:
    proc = doc["process"]
    proc["cwd"] = "x"
    assert semantics.check_process(proc) == (['cwd: "x" must be an absolute path'], [])


def test_duplicate_namespaces(doc: dict[str, Any]) -> None:
    doc["linux"]["namespaces"].append({"type": "network"})
    assert errors_of(doc) == ['linux.namespaces[5].type: "network" is listed twice (first at linux.namespaces[1])']


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/proc/self/ns/net", None),
        (f"/proc/{os.getpid()}/ns/net", None),
        ("/proc/self/ns/pid", '"/proc/self/ns/pid" is a pid namespace, expected a network namespace'),
        ("/nonexistent/ns/net", '"/nonexistent/ns/net" does not exist'),
        ("/etc/hostname", '"/etc/hostname" is not a namespace file'),
        ("proc/self/ns/net", '"proc/self/ns/net" must be an absolute path'),
    ],
)
def test_namespace_paths(doc: dict[str, Any], path: str, message: str | None) -> None:
    doc["linux"]["namespaces"][1] = {"type": "network", "path": path}
    assert errors_of(doc) == ([] if message is None else [f"linux.namespaces[1].path: {message}"])


def test_namespace_type_of_knows_for_children_links() -> None:
    assert semantics.namespace_type_of("/proc/self/ns/pid_for_children") == "pid"
    assert semantics.namespace_type_of("/proc/self/ns/mnt") == "mount"


def test_user_namespace_and_mappings(doc: dict[str, Any]) -> None:
    mapping = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    doc["linux"]["uidMappings"] = mapping
    doc["linux"]["gidMappings"] = mapping
    assert errors_of(doc) == [
        'linux.uidMappings: uid/gid mappings need a user namespace: add {"type": "user"} to linux.namespaces'
    ]
    doc["linux"]["namespaces"].append({"type": "user"})
    assert semantics.check_config(doc) == ([], [])
    del doc["linux"]["gidMappings"]
    assert errors_of(doc) == ["linux.gidMappings: required: a new user namespace needs uid and gid mappings"]
    doc["linux"]["namespaces"][-1]["path"] = "/proc/self/ns/user"
    assert warnings_of(doc) == [
        "linux.uidMappings: ignored: the user namespace is joined by path and keeps its own mappings"
    ]
    doc["linux"]["uidMappings"] = [
        {"containerID": 0, "hostID": 4294967295, "size": 2},
        {"containerID": 0, "hostID": 0, "size": 0},
    ]
    assert errors_of(doc) == [
        "linux.uidMappings[0]: hostID 4294967295 + size 2 goes past 4294967296",
        "linux.uidMappings[1].size: must be at least 1",
    ]


def test_time_offsets_need_a_time_namespace(doc: dict[str, Any]) -> None:
    doc["linux"]["timeOffsets"] = {"monotonic": {"secs": 10}, "realtime": {"nanosecs": 2_000_000_000}}
    assert errors_of(doc) == [
        'linux.timeOffsets: needs a time namespace: add {"type": "time"} to linux.namespaces',
        'linux.timeOffsets.realtime: "realtime" is not one of boottime, monotonic',
        "linux.timeOffsets.realtime.nanosecs: must be below 1000000000",
    ]
    doc["linux"]["namespaces"].append({"type": "time"})
    del doc["linux"]["timeOffsets"]["realtime"]
    assert errors_of(doc) == []


def test_hostname_needs_uts_namespace(doc: dict[str, Any]) -> None:
    doc["linux"]["namespaces"] = [ns for ns in doc["linux"]["namespaces"] if ns["type"] != "uts"]
    assert errors_of(doc) == [
        'hostname: setting it needs a uts namespace: add {"type": "uts"} to linux.namespaces'
    ]


@pytest.mark.parametrize(
    ("path", "systemd", "errors", "warnings"),
    [
        ("system.slice:ociruntime:c1", True, [], []),
        (":ociruntime:c1", True, [], []),
        ("/machine/c1", True, [('linux.cgroupsPath: "/machine/c1" is not of the form slice:prefix:name '
                               "(e.g. system.slice:ociruntime:ID), as --systemd-cgroup requires")], []),
        ("user.slice:x:", True, [('linux.cgroupsPath: "user.slice:x:" is not of the form slice:prefix:name '
                                 "(e.g. system.slice:ociruntime:ID), as --systemd-cgroup requires")], []),
        ("/machine/c1", False, [], []),
        ("/a/../../etc", False, ['linux.cgroupsPath: "/a/../../etc" must not contain .. components'], []),
        ("system.slice:ociruntime:c1", False, [], [('linux.cgroupsPath: "system.slice:ociruntime:c1" looks like a '
                                                   "systemd slice:prefix:name but --systemd-cgroup is not set: it is "
                                                   "used as a directory path")]),
    ],
)
def test_cgroups_path(doc: dict[str, Any], path: str, systemd: bool, errors: list[str], warnings: list[str]) -> None:
    doc["linux"]["cgroupsPath"] = path
    assert semantics.check_config(doc, systemd_cgroup=systemd) == (errors, warnings)


def test_seccomp_checks(doc: dict[str, Any]) -> None:
    doc["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_NOTIFY",
        "defaultErrnoRet": 1,
        "syscalls": [
            {"names": ["mkdir"], "action": "SCMP_ACT_KILL", "errnoRet": 1},
            {"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
            {"names": ["mount"], "action": "SCMP_ACT_NOTIFY"},
        ],
    }
    assert errors_of(doc) == [
        ("linux.seccomp.defaultErrnoRet: not allowed with defaultAction SCMP_ACT_NOTIFY: "
        "only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take an errno"),
        "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default action",
        ("linux.seccomp.syscalls[0].errnoRet: not allowed with action SCMP_ACT_KILL: "
        "only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take an errno"),
        "linux.seccomp.syscalls[2].action: SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath",
    ]


def test_mount_checks(doc: dict[str, Any]) -> None:
    doc["mounts"] = [
        {"destination": "data", "type": "tmpfs", "source": "tmpfs"},
        {"destination": "/b", "type": "none", "options": ["rbind"]},
        {"destination": "/c", "type": "none", "source": "/src", "options": ["bind", "idmap"]},
        {"destination": "/d", "type": "none", "source": "/src", "options": ["bind"],
         "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}],
         "gidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]},
    ]
    assert semantics.check_config(doc) == (
        ["mounts[1].source: required for a bind mount",
         "mounts[2].options: idmap needs uidMappings/gidMappings on the mount or a user namespace"],
        ['mounts[0].destination: "data" is relative (deprecated): it is taken as relative to /',
         "mounts[3].options: should contain idmap or ridmap when uidMappings/gidMappings are set"],
    )


def test_linux_paths_devices_and_resources(doc: dict[str, Any]) -> None:
    linux = doc["linux"]
    linux["maskedPaths"] = ["proc/kcore"]
    linux["devices"] = [
        {"type": "c", "path": "/dev/fuse", "major": 10, "minor": 229},
        {"type": "c", "path": "/dev/fuse", "major": 10, "minor": 229},
        {"type": "p", "path": "fifo"},
    ]
    linux["resources"] = {
        "devices": [{"allow": True, "access": "rwx"}],
        "memory": {"limit": 200, "swap": 100},
        "unified": {"../escape": "1"},
    }
    linux["sysctl"] = {"../../etc/passwd": "x"}
    assert errors_of(doc) == [
        'linux.devices[1].path: "/dev/fuse" is listed twice (first at linux.devices[0])',
        'linux.devices[2].path: "fifo" must be an absolute path',
        'linux.resources.devices[0].access: "rwx" is not a combination of r, w and m',
        "linux.resources.memory.swap: 100 is below memory.limit 200 (swap is memory+swap)",
        "linux.resources.unified[\"../escape\"]: must name a file of the container's cgroup (no / or ..)",
        'linux.maskedPaths[0]: "proc/kcore" must be an absolute path',
        'linux.sysctl["../../etc/passwd"]: is not a sysctl name like net.ipv4.ip_forward',
    ]


def test_memory_policy_net_devices_and_rdt(doc: dict[str, Any]) -> None:
    linux = doc["linux"]
    linux["memoryPolicy"] = {"mode": "MPOL_BIND", "flags": ["MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"]}
    linux["netDevices"] = {"eth0": {"name": "a/b"}, "this-name-is-too-long": {}}
    linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] != "network"]
    linux["intelRdt"] = {"closID": "../x", "memBwSchema": "L3:0=1"}
    assert errors_of(doc) == [
        'linux.netDevices: needs a network namespace: add {"type": "network"} to linux.namespaces',
        'linux.netDevices.eth0.name: "a/b" is not a valid interface name',
        'linux.netDevices.this-name-is-too-long: "this-name-is-too-long" is not a valid interface name',
        'linux.intelRdt.closID: "../x" must be a single directory name (or / for the default group)',
        'linux.intelRdt.memBwSchema: "L3:0=1" must start with MB:',
        "linux.memoryPolicy.nodes: required for MPOL_BIND: at least one memory node",
        "linux.memoryPolicy.flags: MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES exclude each other",
    ]


@pytest.mark.slow
@settings(deadline=None, max_examples=300, suppress_health_check=list(HealthCheck))
@given(config=documents("config"))
def test_never_raises_on_schema_valid_configs(config: dict[str, Any]) -> None:
    for systemd in (False, True):
        errors, warnings = semantics.check_config(config, systemd_cgroup=systemd, require_process=True)
        assert_messages_well_formed(errors[:20])
        assert_messages_well_formed(warnings[:20])


def test_is_cheap(doc: dict[str, Any]) -> None:
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(100):
            semantics.check_config(doc)
        best = min(best, (time.perf_counter() - start) / 100)
    assert best < 0.0005, f"{best * 1e6:.0f} us per check"
