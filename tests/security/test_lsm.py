"""AppArmor/SELinux: a profile or label the config asks for is applied, or create fails naming
the field. Silently running unconfined (Docker's docker-default profile dropped without a word)
is the failure this guards against. On a host without the LSM the refusal is what is tested;
where the LSM is enabled (the cgroup v2 guest has AppArmor; OCIRUNTIME_EXPECT_APPARMOR=1 there
makes its absence a failure) a profile that denies one file is loaded and enforced."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Runtime, assert_clean_error, leaks

pytestmark = pytest.mark.cgroupv2

PROFILE = "ociruntime-test-deny"
PROFILE_TEXT = f"""
profile {PROFILE} flags=(attach_disconnected,mediate_deleted) {{
  file,
  capability,
  network,
  signal,
  ptrace,
  unix,
  deny /secret rw,
}}
"""


def apparmor_enabled() -> bool:
    try:
        return Path("/sys/module/apparmor/parameters/enabled").read_text().startswith("Y")
    except OSError:
        return False


def selinux_enabled() -> bool:
    return os.path.exists("/sys/fs/selinux/enforce")


def test_features_report_the_hosts_lsms(oci: Runtime) -> None:
    doc = json.loads(oci.run("features", check=True).stdout)
    assert doc["linux"]["apparmor"]["enabled"] is apparmor_enabled()
    assert doc["linux"]["selinux"]["enabled"] is selinux_enabled()
    if os.environ.get("OCIRUNTIME_EXPECT_APPARMOR"):
        assert apparmor_enabled(), "this machine should have AppArmor enabled"


@pytest.mark.parametrize("field", ["process.apparmorProfile", "process.selinuxLabel", "linux.mountLabel"])
def test_a_label_the_host_cannot_apply_fails_create(oci: Runtime, bundle, field: str) -> None:
    enabled = apparmor_enabled() if field == "process.apparmorProfile" else selinux_enabled()
    if enabled:
        return  # applied for real: see the confinement test
    section, key = field.split(".")
    value = "docker-default" if "apparmor" in key else "system_u:system_r:container_t:s0"

    def edit(c: dict) -> None:
        c[section][key] = value
    b = bundle(["true"], edit=edit)
    cid = oci.new_id()
    assert_clean_error(oci.run("run", "-b", str(b), cid), field, "not enabled")
    assert leaks(oci.root, cid, b) == []
    chk = oci.run("check", "-b", str(b))
    assert chk.returncode == 1 and field.encode() in chk.stdout, chk.stdout


@pytest.mark.parametrize("flag", ["--apparmor", "--process-label"])
def test_exec_label_the_host_cannot_apply_fails(oci: Runtime, bundle, flag: str) -> None:
    if (apparmor_enabled() if flag == "--apparmor" else selinux_enabled()):
        return  # applied for real: see the confinement test
    cid = oci.new_id()
    oci.run("run", "-d", "-b", str(bundle(["sleep", "100"])), cid, check=True)
    res = oci.run("exec", flag, "unconfined_or_label", cid, "true")
    assert res.returncode != 0 and b"not enabled" in res.stderr, res.stderr


def load_profile(tmp_path: Path) -> None:
    path = tmp_path / PROFILE
    path.write_text(PROFILE_TEXT)
    subprocess.run(["apparmor_parser", "-r", str(path)], check=True, capture_output=True)


def test_apparmor_profile_confines_the_container(oci: Runtime, bundle, tmp_path: Path) -> None:
    if not apparmor_enabled():
        assert not os.environ.get("OCIRUNTIME_EXPECT_APPARMOR"), "AppArmor should be enabled here"
        return  # refusal is tested above
    load_profile(tmp_path)
    script = "cat /secret 2>&1; cat /proc/self/attr/current"

    def confined(c: dict) -> None:
        c["process"]["apparmorProfile"] = PROFILE
        c["root"]["readonly"] = False
    b = bundle(["sh", "-c", script], edit=confined)
    (b / "rootfs" / "secret").write_text("top secret\n")
    out = oci.run("run", "-b", str(b), oci.new_id()).stdout.decode()
    assert "top secret" not in out and f"{PROFILE} (enforce)" in out, out
    # The same container without the profile reads the file: the denial is the profile's.
    b2 = bundle(["cat", "/secret"])
    (b2 / "rootfs" / "secret").write_text("top secret\n")
    assert b"top secret" in oci.run("run", "-b", str(b2), oci.new_id(), check=True).stdout
    # exec --apparmor applies the profile to the exec'd process.
    cid = oci.new_id()
    oci.run("run", "-d", "-b", str(bundle(["sleep", "100"])), cid, check=True)
    res = oci.run("exec", "--apparmor", PROFILE, cid, "cat", "/proc/self/attr/current", check=True)
    assert f"{PROFILE} (enforce)" in res.stdout.decode()
