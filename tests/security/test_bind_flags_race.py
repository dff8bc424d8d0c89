"""A read-only bind mount whose destination lies in a shared volume. Binding first and making
the mount read-only afterwards by path (MS_REMOUNT on the destination resolved again) lets a
racer in the volume swap the destination for a symlink between the two steps: the remount then
lands on another mount and the bind stays writable — a container writes to a host directory it
was given read-only. Protection: the bind is made as a detached mount (open_tree), made
read-only while detached (mount_setattr), and attached at the target's fd (move_mount): it is
never reachable without its flags."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Runtime
from tests.security.helpers import run_while_racing

# Host only, like the other races: 200 containers under emulation take minutes.
WRITE_EVERYWHERE = "for d in /vol/ro /vol/alt /vol; do echo pwned > $d/pwned; done 2>/dev/null; true"


def test_racing_volume_never_leaves_a_readonly_bind_writable(oci: Runtime, bundle, tmp_path: Path) -> None:
    given_ro = tmp_path / "readonly-source"  # the host directory the container may only read
    given_ro.mkdir()
    vol = tmp_path / "vol"

    def edit(c: dict) -> None:
        c["mounts"] += [{"destination": "/vol", "type": "bind", "source": str(vol), "options": ["rbind"]},
                        {"destination": "/vol/ro", "type": "bind", "source": str(given_ro),
                         "options": ["bind", "ro"]}]
    b = bundle(["sh", "-c", WRITE_EVERYWHERE], edit=edit)
    (b / "rootfs" / "vol").mkdir()

    def source_untouched() -> None:
        assert list(given_ro.iterdir()) == [], "the container wrote to its read-only bind's source"
    run_while_racing(oci, b, vol, "ro", ".", source_untouched)  # ".": in-root, /vol itself
