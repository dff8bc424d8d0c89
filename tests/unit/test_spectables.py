"""One table per spec fact (ociruntime/spectables.py), and validation that stays out of the
kernel layer (issue 15 item 5)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ociruntime import spectables
from ociruntime.linux import devices, introspect

ROOT = str(Path(__file__).resolve().parents[2])


def test_loading_and_validating_a_bundle_never_loads_the_shim(tmp_path: Path) -> None:
    """bundle.load runs the schema, the semantic checks and semantics.unsupported (seccomp
    actions included); none of it may dlopen the compiled shim or libseccomp."""
    (tmp_path / "rootfs").mkdir()
    probe = (
        "import sys\n"
        f"sys.path.insert(0, {ROOT!r})\n"
        "from ociruntime import bundle, spec\n"
        "doc = spec.default_config()\n"
        "doc['linux']['seccomp'] = {'defaultAction': 'SCMP_ACT_ERRNO', 'architectures': ['SCMP_ARCH_X86_64'],\n"
        "    'syscalls': [{'names': ['mount'], 'action': 'SCMP_ACT_LOG'}]}\n"
        f"open({str(tmp_path / 'config.json')!r}, 'w').write(__import__('json').dumps(doc))\n"
        f"config = bundle.load({str(tmp_path)!r})\n"
        "assert config.linux.seccomp.default_action == 'SCMP_ACT_ERRNO'\n"
        "assert [r.names for r in config.linux.seccomp.syscalls] == [['mount']]\n"
        "print(sorted(m for m in sys.modules if m in ('ociruntime._shim', '_cffi_backend')))\n"
    )
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd="/")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_the_namespace_tables_agree() -> None:
    assert set(spectables.NS_LINK_NAMES) == set(spectables.CLONE_FLAGS) == set(spectables.JOIN_ORDER)
    assert dict((t, link) for link, t in introspect.NAMESPACES) == spectables.NS_LINK_NAMES
    assert spectables.JOIN_ORDER[0] == "user" and spectables.JOIN_ORDER[-1] == "mount"


def test_default_devices_are_made_and_allowed_alike() -> None:
    made = {(d.path, d.major, d.minor) for d in devices.DEFAULT_DEVICES}
    assert made == set(spectables.DEFAULT_DEVICES)
    allowed = {(r.get("major"), r.get("minor")) for r in spectables.DEFAULT_DEVICE_RULES if r["access"] == "rwm"}
    assert {(ma, mi) for _, ma, mi in spectables.DEFAULT_DEVICES} <= allowed


def test_the_child_side_has_the_shim_loaded_before_any_fork() -> None:
    """The other half: linux/init (imported by the runtime before it forks a child) loads the
    shim, so no child resolves it after joining a container's mount namespace or chrooting."""
    probe = (f"import sys; sys.path.insert(0, {ROOT!r}); import ociruntime.linux.init; "
             "print('ociruntime._shim' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd="/")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "True"
