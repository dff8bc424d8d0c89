"""Cross-check our schemas against upstream's (Debian's golang-github-opencontainers-specs-dev).

Upstream's schema there is runtime-spec 1.0.2 plus 118 commits (1.1-era, draft-04); ours is 1.3.0.
The package is installed at test time and never committed. Every way the two may disagree is listed
below, each with a concrete document showing it (test_intended_difference), and the hypothesis tests
check that on generated documents they disagree in no other way.

Upstream stricter (we accept, upstream rejects)          why
  U1  state.status "paused"                              runc reports it; runtime.md allows runtime-defined states
  U2  resources.pids without limit                       1.3.0 made limit OPTIONAL
  U3  rootfsPropagation rprivate/rshared/rslave/...      runc accepts them; a runc drop-in must too
  U4  seccomp architectures newer than upstream          1.2.1/1.3.0 list (libseccomp 2.6): SH, SHEB, M68K...
  U5  namespace type "time"                              added in 1.1.0
  U6  intelRdt.memBwSchema not starting with MB:         checked by semantics.py (error), not by the schema
  U7  hugepageLimits[].pageSize not like 2MB             checked by semantics.py (error)
  U8  rlimits[].type not RLIMIT_*                        checked by semantics.py against the known list (error)
  U9  devices[].fileMode above 512                       spec says uint32; podman writes type bits (8630)
  U10 windows/solaris/vm/zos contents                    a Linux runtime only checks they are objects

Ours stricter (we reject, upstream accepts)
  O1  empty strings where a value is needed              ociVersion, root.path, cwd, destination, hook path...
  O2  process.args missing or empty                      config.md: at least one entry (non-Windows)
  O3  consoleSize above 65535                            the kernel's winsize is 16-bit
  O4  oomScoreAdj outside -1000..1000                    the kernel's range
  O5  seccomp args[].index above 5                       syscalls have six arguments
  O6  empty keys in annotations, sysctl, unified...      config.md: annotation keys MUST NOT be empty
  O7  mount uidMappings without gidMappings (and back)   config.md: MUST be specified together;
      seccomp listenerMetadata without listenerPath      config-linux.md: MUST NOT be set alone
  O8  weightDevice without weight/leafWeight; rdma       config-linux.md: at least one MUST be given
      entry without hcaHandles/hcaObjects
  O9  devices (not type p) without major/minor           config-linux.md: REQUIRED unless type is p
  O10 state without pid while created/running            runtime.md: REQUIRED on Linux then
  O11 fields from 1.1-1.3 that upstream does not know    scheduler, ioPriority, execCPUAffinity, memoryPolicy,
                                                         netDevices, intelRdt.schemata/enableMonitoring...
  O12 process.user without uid or gid                    config.md: both REQUIRED (POSIX platforms)
  O13 blockIO throttle*Device entry without rate         config-linux.md: rate REQUIRED
Both: "integer" is a JSON number without fraction (1.0 is rejected), as draft-04 upstream does.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest
import referencing
from hypothesis import HealthCheck, given, settings
from oci_strategies import documents, mutated
from referencing.jsonschema import DRAFT4
from test_schema import CI_SHARE, spec_config

from ociruntime import schema, semantics

UPSTREAM_DIR = "/usr/share/gocode/src/github.com/opencontainers/runtime-spec/schema"
UPSTREAM_PACKAGE = "golang-github-opencontainers-specs-dev"
RELAXED = settings(deadline=None, suppress_health_check=list(HealthCheck))
OTHER_PLATFORMS = ("windows", "solaris", "vm", "zos", "freebsd")
# Properties that upstream's schema does not describe (O11): anything below them is ours alone.
NEWER_FIELDS = {"scheduler", "ioPriority", "execCPUAffinity", "memoryPolicy", "netDevices", "schemata",
                "enableMonitoring", "personality", "freebsd", "timeOffsets", "domainname"}
# Properties that we require and upstream does not (O2, O9, O10, O11, O12, O13).
OURS_REQUIRED = {"args", "major", "minor", "pid", "domain", "class", "priority", "policy", "mode",
                 "uid", "gid", "rate"}
# Bounds that we set and upstream does not (O3, O4, O5, O10).
OURS_BOUNDED = {"consoleSize", "oomScoreAdj", "index", "pid"}


def _install_upstream() -> None:
    if os.path.isdir(UPSTREAM_DIR):
        return
    if os.geteuid() != 0:
        pytest.skip(f"{UPSTREAM_PACKAGE} is not installed and installing it needs root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", UPSTREAM_PACKAGE]
    if subprocess.run(cmd, env=env, capture_output=True, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, check=False)
        if subprocess.run(cmd, env=env, capture_output=True, check=False).returncode != 0:
            pytest.skip(f"cannot install {UPSTREAM_PACKAGE}")


@pytest.fixture(scope="module")
def upstream() -> dict[str, Any]:
    """Upstream's config and state validators (draft-04, files referring to each other)."""
    _install_upstream()
    resources = []
    for name in sorted(os.listdir(UPSTREAM_DIR)):
        if name.endswith(".json"):
            with open(os.path.join(UPSTREAM_DIR, name), encoding="utf-8") as f:
                contents = json.load(f)
            resources.append((f"file://{UPSTREAM_DIR}/{name}", referencing.Resource.from_contents(contents, DRAFT4)))
    registry: referencing.Registry[Any] = referencing.Registry().with_resources(resources)
    return {
        kind: jsonschema.Draft4Validator({"$ref": f"file://{UPSTREAM_DIR}/{kind}-schema.json"}, registry=registry)
        for kind in ("config", "state")
    }


def _upstream_archs(upstream: dict[str, Any]) -> set[str]:
    probe = {"ociVersion": "1.0.0", "linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["?"]}}}
    (error,) = [e for e in upstream["config"].iter_errors(probe) if e.validator == "enum"]
    return set(error.validator_value)


@pytest.mark.parametrize(("tool", "rootless"), [("runc", False), ("runc", True), ("crun", False), ("crun", True)])
def test_both_accept_real_default_configs(tmp_path: Any, upstream: dict[str, Any], tool: str, rootless: bool) -> None:
    doc = spec_config(tmp_path, tool, rootless)
    assert list(upstream["config"].iter_errors(doc)) == []
    assert schema.explain(doc, "config") == []


# -- the intended differences, one concrete document each ----------------------------------------


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node.setdefault(p, {})
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return apply


def _delete(path: str) -> Callable[[dict[str, Any]], None]:
    def apply(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        del node[last]
    return apply


# (id, change to runc's default config, we accept, semantics.py rejects)
UPSTREAM_STRICTER = [
    ("U2", _set("linux.resources.pids", {}), True, False),
    ("U3", _set("linux.rootfsPropagation", "rprivate"), True, False),
    ("U4", _set("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_M68K"]}),
     True, False),
    ("U5", _set("linux.namespaces.0", {"type": "time"}), True, False),
    ("U6", _set("linux.intelRdt", {"memBwSchema": "L3:0=1"}), True, True),
    ("U7", _set("linux.resources.hugepageLimits", [{"pageSize": "2M", "limit": 1}]), True, True),
    ("U8", _set("process.rlimits.0.type", "NOFILE"), True, True),
    ("U9", _set("linux.devices", [{"type": "c", "path": "/dev/fuse", "major": 10, "minor": 229, "fileMode": 8630}]),
     True, False),
    ("U10", _set("windows", {}), True, False),
]
OURS_STRICTER = [
    ("O1", _set("process.cwd", "")),
    ("O2", _delete("process.args")),
    ("O3", _set("process.consoleSize", {"height": 70000, "width": 80})),
    ("O4", _set("process.oomScoreAdj", 5000)),
    ("O5", _set("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW",
                                  "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                                                "args": [{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]}]})),
    ("O6", _set("annotations", {"": "value"})),
    ("O7", _set("mounts.0.uidMappings", [{"containerID": 0, "hostID": 1000, "size": 1}])),
    ("O8", _set("linux.resources.blockIO", {"weightDevice": [{"major": 8, "minor": 0}]})),
    ("O9", _set("linux.devices", [{"type": "c", "path": "/dev/fuse"}])),
    ("O11", _set("process.ioPriority", {"class": "IOPRIO_CLASS_RT", "priority": 9})),
    ("O12", _delete("process.user.gid")),
    ("O13", _set("linux.resources.blockIO", {"throttleReadBpsDevice": [{"major": 8, "minor": 0}]})),
]


@pytest.mark.parametrize(("key", "change", "ours_valid", "semantic_error"), UPSTREAM_STRICTER,
                         ids=[c[0] for c in UPSTREAM_STRICTER])
def test_intended_difference_upstream_stricter(
    tmp_path: Any, upstream: dict[str, Any], key: str, change: Callable[[dict[str, Any]], None],
    ours_valid: bool, semantic_error: bool
) -> None:
    doc = spec_config(tmp_path)
    change(doc)
    assert not upstream["config"].is_valid(doc)
    assert schema.explain(doc, "config") == []
    errors, _ = semantics.check_config(doc)
    assert bool(errors) is semantic_error, errors


def test_intended_difference_paused_state(upstream: dict[str, Any]) -> None:  # U1, O10
    state = {"ociVersion": "1.3.0", "id": "c1", "status": "paused", "pid": 42, "bundle": "/b"}
    assert not upstream["state"].is_valid(state)
    assert schema.validate(state, "state") == []
    running = {**state, "status": "running"}
    del running["pid"]
    assert upstream["state"].is_valid(running)
    assert schema.validate(running, "state") == ["pid: required property is missing"]


@pytest.mark.parametrize(("key", "change"), OURS_STRICTER, ids=[c[0] for c in OURS_STRICTER])
def test_intended_difference_ours_stricter(
    tmp_path: Any, upstream: dict[str, Any], key: str, change: Callable[[dict[str, Any]], None]
) -> None:
    doc = spec_config(tmp_path)
    change(doc)
    assert upstream["config"].is_valid(doc)
    assert schema.explain(doc, "config") != []


# -- no other difference, on generated documents ---------------------------------------------------


def _normalize_for_upstream(doc: dict[str, Any], archs: set[str]) -> dict[str, Any]:
    """Take out of a valid-for-us config what upstream rejects on purpose (U2-U10)."""
    doc = copy.deepcopy(doc)
    for key in OTHER_PLATFORMS:
        doc.pop(key, None)
    linux = doc.get("linux", {})
    pids = linux.get("resources", {}).get("pids")
    if pids is not None:
        pids.setdefault("limit", -1)
    if "rootfsPropagation" in linux:
        linux["rootfsPropagation"] = linux["rootfsPropagation"].removeprefix("r")
    if "architectures" in linux.get("seccomp", {}):
        linux["seccomp"]["architectures"] = [a for a in linux["seccomp"]["architectures"] if a in archs]
    if "namespaces" in linux:
        linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] != "time"]
    if "memBwSchema" in linux.get("intelRdt", {}):
        linux["intelRdt"]["memBwSchema"] = "MB:0=20"
    for hp in linux.get("resources", {}).get("hugepageLimits", []):
        hp["pageSize"] = "2MB"
    for rl in doc.get("process", {}).get("rlimits", []):
        rl["type"] = "RLIMIT_NOFILE"
    for dev in linux.get("devices", []):
        dev.pop("fileMode", None)
    return doc


@pytest.mark.slow
@settings(RELAXED, max_examples=400 // CI_SHARE)
@given(doc=documents("config"))
def test_upstream_accepts_what_we_accept(upstream: dict[str, Any], doc: dict[str, Any]) -> None:
    archs = _upstream_archs(upstream)
    errors = [e.message for e in upstream["config"].iter_errors(_normalize_for_upstream(doc, archs))]
    assert errors == []


def _explained_by_ours_stricter(err: Any) -> bool:
    path = [str(p) for p in err.absolute_schema_path]
    instance_path = {str(p) for p in err.absolute_path}
    if err.validator in ("minLength", "dependentRequired", "anyOf") or "propertyNames" in path:
        return True  # O1, O6, O7, O8
    if err.validator == "required":
        missing = {p for p in err.validator_value if isinstance(err.instance, dict) and p not in err.instance}
        if missing <= OURS_REQUIRED:
            return True  # O2, O9, O10, O11, O12, O13
    if err.validator == "minItems" and path[-2] == "args":
        return True  # O2
    if err.validator in ("minimum", "maximum") and instance_path & OURS_BOUNDED:
        return True  # O3, O4, O5, O10
    return bool(instance_path & NEWER_FIELDS or set(path) & NEWER_FIELDS)  # O11


def _explained_by_upstream_stricter(err: Any, kind: str) -> bool:
    path = [str(p) for p in err.absolute_schema_path]
    last = path[-2] if len(path) > 1 else ""
    if set(path) & set(OTHER_PLATFORMS):
        return True  # U10
    if kind == "state":
        return err.validator == "enum" and err.instance == "paused"  # U1
    if "pids" in path:
        return True  # U2
    if last in ("rootfsPropagation", "type") and err.validator in ("enum", "pattern"):
        return True  # U3, U8
    if err.validator == "enum" and "architectures" in path:
        return True  # U4
    inst = err.instance
    if "namespaces" in path and (inst == "time" or (isinstance(inst, dict) and inst.get("type") == "time")):
        return True  # U5
    if err.validator == "pattern" and last in ("memBwSchema", "pageSize"):
        return True  # U6, U7
    return err.validator == "maximum" and last == "fileMode"  # U9


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["config", "state"])
def test_disagreements_on_broken_documents_are_all_intended(upstream: dict[str, Any], kind: str) -> None:
    ours = schema._reference_validator(kind)

    @settings(RELAXED, max_examples=(1500 if kind == "config" else 400) // CI_SHARE)
    @given(mutated(kind))
    def check(doc: Any) -> None:
        ours_valid, upstream_valid = ours.is_valid(doc), upstream[kind].is_valid(doc)
        if upstream_valid and not ours_valid:
            unexplained = [e.message for e in ours.iter_errors(doc) if not _explained_by_ours_stricter(e)]
            assert unexplained == []
        if ours_valid and not upstream_valid:
            unexplained = [e.message for e in upstream[kind].iter_errors(doc)
                           if not _explained_by_upstream_stricter(e, kind)]
            assert unexplained == []

    check()
