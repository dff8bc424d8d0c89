"""linux.sysctl is written from inside the container: a key that is not namespaced (vm.*,
kernel.core_pattern, ...) would change the host. Protection: only keys of a namespace the
container has of its own are accepted (ipc: kernel.msg*/sem/shm*, fs.mqueue.*; net.* with a
network namespace; kernel.hostname/domainname with a uts namespace); the rest are refused
before anything is created, with runc's meaning."""

from __future__ import annotations

import pytest

from tests.conftest import Runtime, assert_clean_error, leaks

pytestmark = pytest.mark.cgroupv2


def host_value(key: str) -> str:
    with open("/proc/sys/" + key.replace(".", "/")) as f:
        return f.read()


@pytest.mark.parametrize("key,value,drop_ns", [
    ("vm.swappiness", "7", None),
    ("kernel.core_pattern", "|/tmp/pwned", None),
    ("net.ipv4.ip_forward", "1", "network"),
    ("kernel.shmmax", "4096", "ipc"),
    ("kernel.domainname", "x", "uts"),
])
def test_host_wide_or_unowned_sysctls_are_refused(oci: Runtime, runc: Runtime, bundle, key: str, value: str,
                                                  drop_ns: str | None) -> None:
    before = host_value(key)

    def edit(c: dict) -> None:
        c["linux"]["sysctl"] = {key: value}
        c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != drop_ns]
        c.pop("hostname", None) if drop_ns == "uts" else None
    b = bundle(["true"], edit=edit)
    cid = oci.new_id()
    res = oci.run("run", "-b", str(b), cid)
    assert_clean_error(res, key, "not in a separate kernel namespace")
    assert leaks(oci.root, cid, b) == []
    chk = oci.run("check", "-b", str(b))
    assert chk.returncode == 1 and b"not in a separate kernel namespace" in chk.stdout, chk.stdout
    assert runc.run("run", "-b", str(b), runc.new_id()).returncode != 0  # runc refuses too
    assert host_value(key) == before


def test_namespaced_sysctls_apply_inside_only(oci: Runtime, bundle) -> None:
    keys = {"net.ipv4.ip_forward": "1", "kernel.shmmax": "8192", "fs.mqueue.msg_max": "20"}
    before = {k: host_value(k) for k in keys}
    script = "; ".join(f"cat /proc/sys/{k.replace('.', '/')}" for k in keys)

    def edit(c: dict) -> None:
        c["linux"]["sysctl"] = keys
    res = oci.run("run", "-b", str(bundle(["sh", "-c", script], edit=edit)), oci.new_id(), check=True)
    assert res.stdout.decode().split() == list(keys.values())
    assert {k: host_value(k) for k in keys} == before
