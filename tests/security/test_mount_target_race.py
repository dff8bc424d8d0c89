"""CVE-2024-45310: a mount target below a shared volume is created by the runtime. A racer who
swaps a directory of that volume for a symlink to a host directory made runc (and us, before)
create directories on the host. Protection: each missing component is created at an fd of its
verified parent; a component that turns into a symlink is resolved again in-root, never on the
host."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.conftest import Runtime, host_mounts_mentioning
from tests.security.helpers import racing

# Host only: races are not cgroup-specific, and 200 containers under emulation take minutes.


def test_racing_volume_symlink_never_creates_host_directories(oci: Runtime, bundle, tmp_path: Path) -> None:
    host = tmp_path / "host-target"   # what the racer's symlink points at, on the host
    host.mkdir()
    vol = tmp_path / "vol"
    vol.mkdir()

    def edit(c: dict) -> None:
        c["mounts"] += [{"destination": "/vol", "type": "bind", "source": str(vol), "options": ["rbind"]},
                        {"destination": "/vol/a/b/c", "type": "tmpfs", "source": "tmpfs"}]
        c["root"]["readonly"] = False
    b = bundle(["true"], edit=edit)
    (b / "rootfs" / "vol").mkdir()
    results = {"ran": 0, "refused": 0}
    for _ in range(200):
        shutil.rmtree(vol)
        vol.mkdir()
        (vol / "a").mkdir()
        (vol / "alt").symlink_to(host)
        cid = oci.new_id()
        with racing(vol / "a", vol / "alt"):
            res = oci.run("run", "-b", str(b), cid)
        results["ran" if res.returncode == 0 else "refused"] += 1
        oci.run("delete", "-f", cid)
        assert b"Traceback" not in res.stderr and b"internal error" not in res.stderr, res.stderr
        assert list(host.iterdir()) == [], f"created on the host: {list(host.iterdir())}"
        assert host_mounts_mentioning(str(host)) == []
    assert results["ran"] > 0, results  # the attack did not simply stop every container
