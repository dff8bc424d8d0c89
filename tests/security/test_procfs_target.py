"""Class of CVE-2019-19921 / CVE-2023-27561 / CVE-2025-52881: an image whose /proc (or /sys)
is a symlink into a volume that a second container swaps while this one is set up. Without
protection the real procfs lands where no mask or read-only path applies, and the container
writes the host's core_pattern. Protection: procfs/sysfs are mounted only onto an ordinary
directory (no symlink on the way), by fd, verified, and masks go through the mount's own fd."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Runtime, assert_clean_error, leaks
from tests.security.helpers import core_pattern, racing, replace_with_symlink

# Host only: races are not cgroup-specific, and 200 containers under emulation take minutes.

# From inside: can any procfs core_pattern be written (its own value written back, so the host
# keeps its setting even when the attack works), or the keys file be read, anywhere?
PROBE = ("for d in /vol/p /vol/q /proc; do f=$d/sys/kernel/core_pattern; "
         "[ -e $f ] && v=$(cat $f) && printf '%s\\n' \"$v\"  > $f && echo ESCAPE-core_pattern:$d; "
         "[ -s $d/keys ] && grep -q . $d/keys  && echo ESCAPE-keys:$d; "
         "done; echo probed")


def volume_bundle(bundle, tmp_path: Path, fs_dir: str) -> tuple[Path, Path]:
    """A bundle whose /<fs_dir> -> /vol/p, /vol a host directory shared with the racer."""
    vol = tmp_path / "vol"
    (vol / "p").mkdir(parents=True)
    (vol / "q").mkdir()

    def edit(c: dict) -> None:
        c["mounts"].insert(0, {"destination": "/vol", "type": "bind", "source": str(vol),
                               "options": ["rbind", "rw"]})
    b = bundle(["sh", "-c", PROBE], edit=edit)
    (b / "rootfs" / "vol").mkdir()
    replace_with_symlink(b / "rootfs" / fs_dir, "/vol/p")
    return b, vol


@pytest.mark.cgroupv2
@pytest.mark.parametrize("fs_dir", ["proc", "sys"])
def test_symlinked_proc_or_sys_is_refused_with_a_clear_error(oci: Runtime, bundle, tmp_path: Path,
                                                             fs_dir: str) -> None:
    b, _ = volume_bundle(bundle, tmp_path, fs_dir)
    cid = oci.new_id()
    res = oci.run("run", "-b", str(b), cid)
    assert_clean_error(res, f"/{fs_dir}", "symlink")
    assert leaks(oci.root, cid, b) == []
    # `check` names it before anything is created.
    chk = oci.run("check", "-b", str(b))
    assert chk.returncode == 1 and f"/{fs_dir} is a symlink" in chk.stdout.decode(), chk.stdout


def test_racing_proc_swap_never_exposes_the_host(oci: Runtime, bundle, tmp_path: Path) -> None:
    """200 creates while a racer swaps /vol/p and /vol/q: never a writable core_pattern."""
    before = core_pattern()
    b, vol = volume_bundle(bundle, tmp_path, "proc")
    outcomes: dict[str, int] = {}
    with racing(vol / "p", vol / "q"):
        for _ in range(200):
            cid = oci.new_id()
            res = oci.run("run", "-b", str(b), cid)
            out = res.stdout.decode() + res.stderr.decode()
            assert "ESCAPE" not in out, out
            key = "ran" if res.returncode == 0 else "refused"
            outcomes[key] = outcomes.get(key, 0) + 1
            oci.run("delete", "-f", cid)
    assert core_pattern() == before
    # Every attempt is refused: the image's /proc is a symlink, whatever the racer does.
    assert outcomes == {"refused": 200}, outcomes
