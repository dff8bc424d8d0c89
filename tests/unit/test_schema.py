"""Our JSON Schemas, the generated fast validator and the messages (no containers are created)."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import time
import types
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from oci_strategies import documents, generated_module, load_module, mutated

from ociruntime import _schemagen, schema

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYTHON = sys.executable
RELAXED = settings(deadline=None, suppress_health_check=list(HealthCheck))
# Examples per kind; config is the one that matters most and gets the most.
# CI replays the same derandomized examples every run (tests/conftest.py): a third of them keeps
# it a regression check at a third of the time; by hand the full number explores afresh.
CI_SHARE = 3 if os.environ.get("CI") else 1
EXAMPLES = {k: n // CI_SHARE for k, n in {"config": 800, "process": 300, "state": 300, "features": 300}.items()}


@pytest.fixture(scope="module")
def gen() -> types.ModuleType:
    return generated_module()


def spec_config(tmp_path: Any, tool: str = "runc", rootless: bool = False) -> dict[str, Any]:
    """The default config.json that `runc spec` / `crun spec` write."""
    cmd = [tool, "spec"] + (["--rootless"] if rootless else [])
    subprocess.run(cmd, cwd=tmp_path, check=True, capture_output=True)
    with open(tmp_path / "config.json", encoding="utf-8") as f:
        doc: dict[str, Any] = json.load(f)
    return doc


@pytest.fixture
def runc_config(tmp_path: Any) -> dict[str, Any]:
    return spec_config(tmp_path)


# -- the schemas themselves ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", schema.KINDS)
def test_schemas_are_valid_2020_12(kind: str) -> None:
    jsonschema.Draft202012Validator.check_schema(schema.load_schema(kind))


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown document kind"):
        schema.validate({}, "bundle")


def test_unknown_properties_are_ignored(runc_config: dict[str, Any], gen: types.ModuleType) -> None:
    runc_config["x-vendor"] = {"anything": [1, None]}
    runc_config["linux"]["futureFeature"] = "on"
    runc_config["process"]["user"]["futureField"] = -1
    assert schema.explain(runc_config, "config") == []
    assert gen.is_valid("config", runc_config)


@pytest.mark.parametrize(("tool", "rootless"), [("runc", False), ("runc", True), ("crun", False), ("crun", True)])
def test_real_default_configs_are_valid(tmp_path: Any, gen: types.ModuleType, tool: str, rootless: bool) -> None:
    doc = spec_config(tmp_path, tool, rootless)
    assert schema.explain(doc, "config") == []
    assert gen.is_valid("config", doc)
    assert gen.is_valid("process", doc["process"])


# -- fast validator == jsonschema, always ---------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("kind", schema.KINDS)
def test_generated_documents_are_valid_for_both(kind: str, gen: types.ModuleType) -> None:
    @settings(RELAXED, max_examples=EXAMPLES[kind] // 2)
    @given(documents(kind))
    def check(doc: Any) -> None:
        assert schema.explain(doc, kind) == []
        assert gen.is_valid(kind, doc) is True

    check()


@pytest.mark.slow
@pytest.mark.parametrize("kind", schema.KINDS)
def test_fast_validator_agrees_with_jsonschema_on_broken_documents(kind: str, gen: types.ModuleType) -> None:
    @settings(RELAXED, max_examples=EXAMPLES[kind])
    @given(mutated(kind))
    def check(doc: Any) -> None:
        verdict = schema.reference_is_valid(doc, kind)
        assert gen.is_valid(kind, doc) is verdict
        messages = schema.explain(doc, kind)
        assert (messages == []) is verdict
        assert_messages_well_formed(messages)

    check()


def assert_messages_well_formed(messages: list[str]) -> None:
    assert len(messages) <= schema.MAX_MESSAGES
    for m in messages:
        assert m.isprintable(), m  # one line: no newline, NUL, control or separator characters
        assert len(m) < 600, m
        assert "Traceback" not in m
        assert ": " in m


@pytest.mark.parametrize(
    "value",
    [1.0, True, False, None, 2**32, -1, 2**70, float("nan"), float("inf"), "0", [], {}],
)
def test_integer_edge_values_agree(value: object, runc_config: dict[str, Any], gen: types.ModuleType) -> None:
    runc_config["process"]["user"]["uid"] = value
    assert gen.is_valid("config", runc_config) is schema.reference_is_valid(runc_config, "config") is False


def test_integers_must_be_written_without_fraction(runc_config: dict[str, Any], gen: types.ModuleType) -> None:
    runc_config["process"]["user"]["uid"] = 1.0
    assert schema.explain(runc_config, "config") == ["process.user.uid: expected an integer, got number"]
    assert not gen.is_valid("config", runc_config)


# -- messages -----------------------------------------------------------------------------------


def test_message_for_bad_enum(runc_config: dict[str, Any]) -> None:
    runc_config["linux"]["namespaces"][2]["type"] = "pidx"
    assert schema.validate(runc_config, "config") == [
        'linux.namespaces[2].type: "pidx" is not one of pid, network, mount, ipc, uts, user, cgroup, time'
    ]


def test_messages_for_root_problems() -> None:
    assert schema.validate([], "config") == ["(root): expected an object, got array"]
    assert schema.validate({}, "config") == ["ociVersion: required property is missing"]
    assert schema.validate({"ociVersionMin": "1.0.0"}, "features") == ["ociVersionMax: required property is missing"]


def test_messages_name_paths_and_expectations(runc_config: dict[str, Any]) -> None:
    doc = runc_config
    doc["process"]["user"]["uid"] = -1
    doc["process"]["args"] = []
    doc["mounts"][0]["uidMappings"] = []
    doc["hooks"] = {"prestart": [{"path": "/x", "timeout": 0}]}
    doc["annotations"] = {"": "x", "a\x00b": 3}
    doc["linux"]["devices"] = [{"type": "c", "path": "/dev/x"}]
    doc["linux"]["resources"]["blockIO"] = {"weightDevice": [{"major": 1, "minor": 2}]}
    doc["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ERRNO", "listenerMetadata": "m"}
    doc["linux"]["sysctl"] = {"net.ipv4.ip_forward": 1}
    assert schema.validate(doc, "config") == [
        "mounts[0].gidMappings: required when uidMappings is set",
        "process.args: must have at least one entry",
        "process.user.uid: -1 is out of range: expected an integer from 0 to 4294967295 (uint32)",
        "hooks.prestart[0].timeout: 0 is out of range: expected an integer from 1 to 2147483647 (timeout in seconds)",
        'annotations: key "" is not allowed: must not be empty',
        'annotations["a\\x00b"]: expected a string, got integer',
        "linux.devices[0].major: required property is missing",
        "linux.devices[0].minor: required property is missing",
        "linux.resources.blockIO.weightDevice[0]: needs at least one of weight, leafWeight",
        'linux.sysctl["net.ipv4.ip_forward"]: expected a string, got integer',
        "linux.seccomp.listenerPath: required when listenerMetadata is set",
    ]


def test_state_and_features_messages() -> None:
    state = {"ociVersion": "1.3.0", "id": "c1", "status": "running", "bundle": "/b"}
    assert schema.validate(state, "state") == ["pid: required property is missing"]
    assert schema.validate({**state, "status": "exploded", "pid": 1}, "state") == [
        'status: "exploded" is not one of creating, created, running, stopped, paused'
    ]
    features = {"ociVersionMin": "1.0.0", "ociVersionMax": "1.3.0", "linux": {"cgroup": {"v2": "yes"}}}
    assert schema.validate(features, "features") == ["linux.cgroup.v2: expected a boolean or null, got string"]
    assert schema.validate({**features, "linux": None, "hooks": None}, "features") == []


def test_process_kind_validates_process_json(runc_config: dict[str, Any]) -> None:
    proc = runc_config["process"]
    assert schema.validate(proc, "process") == []
    del proc["cwd"]
    proc["terminal"] = "yes"
    assert schema.validate(proc, "process") == [
        "cwd: required property is missing",
        "terminal: expected a boolean, got string",
    ]


def test_huge_and_odd_values_are_shown_short_and_escaped(runc_config: dict[str, Any]) -> None:
    runc_config["linux"]["namespaces"][0]["type"] = "\u202e" + "x" * 10_000 + "\x00"
    runc_config["process"]["rlimits"][0]["hard"] = 10**100
    runc_config["hostname"] = [[[[["deep"]]]]]
    messages = schema.validate(runc_config, "config")
    assert messages == [
        ("process.rlimits[0].hard: a 101-digit integer is out of range: expected an integer from 0 to "
         "18446744073709551615 (uint64)"),
        "hostname: expected a string, got array",
        'linux.namespaces[0].type: "\\u202e' + "x" * 58 + '"… (10002 characters) is not one of pid, network, '
        "mount, ipc, uts, user, cgroup, time",
    ]


def test_messages_are_capped(runc_config: dict[str, Any]) -> None:
    runc_config["mounts"] = [{"destination": ""} for _ in range(30)]
    messages = schema.validate(runc_config, "config")
    assert len(messages) == schema.MAX_MESSAGES
    assert messages[0] == "mounts[0].destination: must not be empty"
    assert messages[-1] == "... and 11 more problems"


def test_deep_nesting_does_not_break_messages(runc_config: dict[str, Any]) -> None:
    deep: Any = "leaf"
    for _ in range(500):  # JSON parsers refuse much deeper documents (recursion limit)
        deep = [deep]
    runc_config["process"]["env"] = deep
    runc_config["x-unknown"] = deep  # ignored, never descended into
    messages = schema.validate(runc_config, "config")
    assert messages == ["process.env[0]: expected a string, got array"]


def test_format_path_and_show() -> None:
    assert schema.format_path([]) == "(root)"
    assert schema.format_path(["linux", "sysctl", "kernel.shm_rmid_forced"]) == 'linux.sysctl["kernel.shm_rmid_forced"]'
    assert schema.format_path(["annotations", "a\nb", 3]) == 'annotations["a\\x0ab"][3]'
    assert schema.show("a\u2028b\"\\") == '"a\\u2028b\\"\\\\"'
    assert schema.show(2**64) == "18446744073709551616"
    assert schema.show({"a": 1}) == "an object with 1 properties"


# -- the hot path ---------------------------------------------------------------------------------


def test_validate_uses_the_fast_path_and_never_jsonschema_when_valid(
    runc_config: dict[str, Any], gen: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_reference(kind: str) -> None:
        raise AssertionError("jsonschema must not be used for a valid document")

    monkeypatch.setattr(schema, "_fast", gen)
    monkeypatch.setattr(schema, "_reference_validator", no_reference)
    assert schema.validate(runc_config, "config") == []


def test_without_generated_module_jsonschema_alone_decides(
    runc_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schema, "_fast", False)
    assert schema.validate(runc_config, "config") == []
    runc_config["ociVersion"] = 1
    assert schema.validate(runc_config, "config") == ["ociVersion: expected a string, got integer"]


def test_typical_config_validates_in_well_under_a_millisecond(
    runc_config: dict[str, Any], gen: types.ModuleType
) -> None:
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(100):
            gen.is_valid("config", runc_config)
        best = min(best, (time.perf_counter() - start) / 100)
    assert best < 0.001, f"{best * 1e6:.0f} us per validation"


def _import_cost_us(tmp_path: Any, module: str, setup: str = "") -> tuple[int, set[str]]:
    """CPU time of importing `module` (best of 5; CPU, not wall time, so that other work on the
    machine does not count) and the modules that importing it loaded. `os` is imported first:
    every command needs it (~2 ms under -S, the interpreter's floor, not the module's cost)."""
    code = (f"import sys, time, os; sys.path[:0] = [{str(tmp_path)!r}, {REPO!r}]; {setup}"
            f"before = set(sys.modules); t = time.thread_time_ns(); import {module}; "
            "t = time.thread_time_ns() - t; "
            "print(t // 1000, ' '.join(sorted(set(sys.modules) - before)))")
    best, loaded = 10**9, set()
    for _ in range(5):
        run = subprocess.run([PYTHON, "-I", "-S", "-c", code], capture_output=True, text=True, check=True)
        cost, *names = run.stdout.split()
        best = min(best, int(cost))
        loaded = set(names)
    return best, loaded


def test_generated_module_imports_in_under_2ms(tmp_path: Any) -> None:
    (tmp_path / "gen_validators.py").write_text(_schemagen.generate_from_files(), encoding="utf-8")
    cost, loaded = _import_cost_us(tmp_path, "gen_validators")
    assert cost < 2000, f"{cost} us"
    assert loaded == {"gen_validators"}


def test_schema_module_import_is_light(tmp_path: Any) -> None:
    cost, loaded = _import_cost_us(tmp_path, "ociruntime.schema")
    assert not loaded & {"json", "re", "jsonschema", "pathlib", "enum"}, loaded
    assert cost < 2000, f"{cost} us"


def test_semantics_module_import_is_light(tmp_path: Any) -> None:
    _, loaded = _import_cost_us(tmp_path, "ociruntime.semantics")
    assert not loaded & {"json", "re", "jsonschema", "pathlib", "enum", "fcntl"}, loaded


# -- the generator --------------------------------------------------------------------------------


def test_generator_is_deterministic_and_tracks_the_schemas() -> None:
    first = _schemagen.generate_from_files()
    assert first == _schemagen.generate_from_files()
    digest = re.search(r"SCHEMA_DIGEST = '([0-9a-f]+)'", first)
    assert digest
    other = copy.deepcopy({k: schema.load_schema(k) for k in schema.KINDS})
    other["state"]["properties"]["id"]["minLength"] = 2
    assert digest.group(1) not in _schemagen.generate(other)


@pytest.mark.parametrize(
    "node",
    [{"type": "string", "pattern": "^/"}, {"enum": [1, 2]}, {"$ref": "other.json#/x"}, {"uniqueItems": True}],
)
def test_generator_refuses_what_it_cannot_compile(node: dict[str, Any]) -> None:
    with pytest.raises(_schemagen.SchemaGenError):
        _schemagen.generate({"config": {"type": "object", "properties": {"x": node}}})


def test_generator_cli_writes_a_module(tmp_path: Any) -> None:
    out = tmp_path / "v.py"
    subprocess.run([PYTHON, "-m", "ociruntime._schemagen", str(out)], cwd=REPO, check=True)
    module = load_module(str(out), "cli_generated_validators")
    assert module.is_valid("state", {"ociVersion": "1", "id": "x", "status": "stopped", "bundle": "/"})
