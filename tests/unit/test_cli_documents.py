"""`spec` and `features`: what they print is valid against our schemas and true of the code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ociruntime import config as config_model
from ociruntime import features, schema, spec
from ociruntime.linux import mountflags, namespaces, seccomp
from ociruntime.linux.caps import CAPABILITIES
from tests.conftest import OCIRUNTIME


def test_spec_writes_a_config_our_schema_accepts(tmp_path: Path) -> None:
    subprocess.run([OCIRUNTIME, "spec", "--bundle", str(tmp_path)], check=True)
    doc = json.loads((tmp_path / "config.json").read_text())
    assert schema.validate(doc, "config") == []
    assert doc["process"]["capabilities"]["bounding"] == spec.DEFAULT_CAPS
    assert [n["type"] for n in doc["linux"]["namespaces"]] == ["pid", "network", "ipc", "uts", "mount"]
    assert "/proc/kcore" in doc["linux"]["maskedPaths"]


def test_spec_rootless_maps_the_caller_and_is_valid(tmp_path: Path) -> None:
    subprocess.run([OCIRUNTIME, "spec", "--rootless", "-b", str(tmp_path)], check=True)
    doc = json.loads((tmp_path / "config.json").read_text())
    assert schema.validate(doc, "config") == []
    assert {"type": "user"} in doc["linux"]["namespaces"]
    assert doc["linux"]["uidMappings"] == [{"containerID": 0, "hostID": 0, "size": 1}]


def test_spec_refuses_to_overwrite(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    res = subprocess.run([OCIRUNTIME, "spec", "-b", str(tmp_path)], capture_output=True)
    assert res.returncode == 1 and b"exists" in res.stderr
    assert (tmp_path / "config.json").read_text() == "{}"


def test_features_document_is_valid_and_matches_the_code() -> None:
    out = subprocess.run([OCIRUNTIME, "features"], capture_output=True, check=True).stdout
    doc = json.loads(out)
    assert schema.validate(doc, "features") == []
    assert doc["hooks"] == list(config_model.HOOK_KINDS)
    assert set(doc["linux"]["namespaces"]) == set(namespaces.CLONE_FLAGS)
    assert set(doc["linux"]["capabilities"]) == set(CAPABILITIES)
    assert set(doc["linux"]["seccomp"]["actions"]) == set(seccomp.ACTIONS)
    assert set(doc["linux"]["seccomp"]["operators"]) == set(seccomp.OPERATORS)
    # Every listed mount option is one the option parser knows.
    assert all(mountflags.is_known_option(o) for o in doc["mountOptions"])
    assert doc == features.document()


def test_every_seccomp_architecture_listed_is_known_to_libseccomp() -> None:
    from ociruntime.linux.sys import lib

    for arch in seccomp.ARCHITECTURES:
        assert lib.seccomp_arch_resolve_name(arch[len("SCMP_ARCH_"):].lower().encode()) != 0, arch


def test_import_budget_of_hot_commands() -> None:
    """state/start/kill/delete/list must never import jsonschema or other heavy modules."""
    probe = (
        "import sys\n"
        "from ociruntime import cli, container, state, signals\n"
        "from ociruntime.linux import cgroups\n"
        "heavy = {'jsonschema', 'json', 're', 'typing', 'dataclasses', 'argparse', 'subprocess',"
        " 'enum', 'pathlib', 'signal', 'inspect', 'pyroute2', 'ctypes'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    root = str(Path(__file__).resolve().parents[2])
    res = subprocess.run([sys.executable, "-I", "-S", "-c", f"import sys; sys.path.append({root!r})\n" + probe],
                         capture_output=True, text=True, check=True, cwd="/")
    assert res.stdout.strip() == "[]"
