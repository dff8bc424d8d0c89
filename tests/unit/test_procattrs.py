"""Pure parts of issue 12's process attributes, id-mapped mounts and their config model."""

from __future__ import annotations

import pytest

from ociruntime import features, semantics
from ociruntime.config import Config
from ociruntime.linux import mountflags, procattrs


@pytest.mark.parametrize(("text", "want"), [
    ("0", {0}), ("0-3,7", {0, 1, 2, 3, 7}), ("1,1", {1}), ("", set()),
    ("0-7:2/4", {0, 1, 4, 5}), ("2-9:1/3", {2, 5, 8}),
])
def test_kernel_list_format(text: str, want: set[int]) -> None:
    assert procattrs.parse_list(text) == want


def test_scheduler_refusals_name_what_the_kernel_cannot_do() -> None:
    assert procattrs.unsupported_scheduler({"policy": "SCHED_BATCH", "flags": ["SCHED_FLAG_RESET_ON_FORK"]}) == []
    problems = procattrs.unsupported_scheduler({"policy": "SCHED_ISO", "flags": ["SCHED_FLAG_UTIL_CLAMP_MIN"]})
    assert len(problems) == 2 and "SCHED_ISO" in problems[0] and "UTIL_CLAMP_MIN" in problems[1]


def config(**linux: object) -> Config:
    doc = {"ociVersion": "1.3.0", "root": {"path": "rootfs"},
           "process": {"args": ["true"], "cwd": "/",
                       "scheduler": {"policy": "SCHED_FIFO", "priority": 1},
                       "ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 4},
                       "execCPUAffinity": {"final": "0"}},
           "mounts": [{"destination": "/a", "source": "/x", "options": ["bind", "ridmap"],
                       "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}],
                       "gidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]},
                      {"destination": "/b", "type": "tmpfs", "options": ["idmap"]}],
           "linux": {"personality": {"domain": "LINUX32"},
                     "memoryPolicy": {"mode": "MPOL_BIND", "nodes": "0"},
                     "netDevices": {"eth9": {"name": "ceth0"}}, **linux}}
    return Config(doc, "/bundle")


def test_issue_12_fields_are_accepted_except_idmap_off_bind_mounts() -> None:
    c = config()
    assert c.process is not None and c.process.scheduler and c.process.io_priority
    assert c.mounts[0].idmap() == "ridmap" and c.mounts[0].uid_mappings[0].host_id == 1
    assert semantics.unsupported(c) == ["mounts[1].options: idmap is supported on bind mounts only"]
    assert not mountflags.parse_options(["bind", "ridmap"]).data  # never handed to mount(2)


def test_features_lists_what_is_applied() -> None:
    doc = features.document()
    assert doc["linux"]["netDevices"] == {"enabled": True}
    assert doc["linux"]["mountExtensions"]["idmap"] == {"enabled": True}
    assert "MPOL_BIND" in doc["linux"]["memoryPolicy"]["modes"]
    assert "SCMP_ACT_NOTIFY" in doc["linux"]["seccomp"]["actions"]
    assert {"idmap", "ridmap"} <= set(doc["mountOptions"])
    assert "scheduler" in doc["annotations"]["io.github.ociruntime.process"]
