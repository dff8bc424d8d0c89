"""CVE-2024-45310: a mount target below a shared volume is created by the runtime. A racer who
swaps a directory of that volume for a symlink to a host directory made runc (and us, before)
create directories on the host. Protection: each missing component is created at an fd of its
verified parent; a component that turns into a symlink is resolved again in-root, never on the
host, and so is the whole target once made."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Runtime, host_mounts_mentioning
from tests.security.helpers import run_while_racing

# Host only: races are not cgroup-specific, and 200 containers under emulation take minutes.


# /vol/a/b/c: three components to make, component by component (Rootfs._create_in_root); /vol/a/b:
# only the last, at the fd of its parent, which the racer swaps (Rootfs._create_last).
@pytest.mark.parametrize("target", ["/vol/a/b/c", "/vol/a/b"])
def test_racing_volume_symlink_never_creates_host_directories(oci: Runtime, bundle, tmp_path: Path,
                                                              target: str) -> None:
    host = tmp_path / "host-target"   # what the racer's symlink points at, on the host
    host.mkdir()
    vol = tmp_path / "vol"
    vol.mkdir()

    def edit(c: dict) -> None:
        c["mounts"] += [{"destination": "/vol", "type": "bind", "source": str(vol), "options": ["rbind"]},
                        {"destination": target, "type": "tmpfs", "source": "tmpfs"}]
        c["root"]["readonly"] = False
    b = bundle(["true"], edit=edit)
    (b / "rootfs" / "vol").mkdir()

    def nothing_on_the_host() -> None:
        assert list(host.iterdir()) == [], f"created on the host: {list(host.iterdir())}"
        assert host_mounts_mentioning(str(host)) == []
    run_while_racing(oci, b, vol, "a", str(host), nothing_on_the_host)
