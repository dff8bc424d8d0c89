"""CVE-2022-29162: `exec --cap` put the capability into the inheritable and ambient sets too, so
it survived into any program a non-root user exec'd. Protection: --cap adds to the bounding,
effective and permitted sets only; compared with runc on the same container."""

from __future__ import annotations

import pytest

from tests.conftest import Runtime

pytestmark = pytest.mark.cgroupv2

CAP_NET_RAW = 1 << 13


def cap_sets(rt: Runtime, bundle, *exec_flags: str) -> dict[str, int]:
    cid = rt.new_id()
    rt.run("run", "-d", "-b", str(bundle(["sleep", "100"])), cid, check=True)
    res = rt.run("exec", *exec_flags, cid, "grep", "^Cap", "/proc/self/status", check=True)
    rt.run("delete", "-f", cid)
    return {k: int(v, 16) for k, v in (ln.split(":\t") for ln in res.stdout.decode().splitlines())}


@pytest.mark.parametrize("user", ["1000:1000", "0:0"])
def test_exec_cap_reaches_neither_inheritable_nor_ambient(oci: Runtime, runc: Runtime, bundle, user: str) -> None:
    ours = cap_sets(oci, bundle, "-u", user, "--cap", "CAP_NET_RAW")
    assert ours["CapInh"] == 0 and ours["CapAmb"] == 0, ours
    assert ours["CapBnd"] & CAP_NET_RAW, ours
    # A non-root user's program keeps none after execve (no ambient set to carry them): the
    # kernel's rule, and exactly what runc gives; root keeps it in permitted and effective.
    assert bool(ours["CapPrm"] & CAP_NET_RAW) is (user == "0:0"), ours
    assert cap_sets(runc, bundle, "-u", user, "--cap", "CAP_NET_RAW") == ours
