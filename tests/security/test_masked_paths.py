"""CVE-2025-31133: maskedPaths bind /dev/null over each path. With /dev bound from a directory
the image controls, where `null` is a symlink to /proc/sys/kernel/core_pattern, a runtime that
binds "/dev/null" by path gives the container a writable window on the host's core_pattern.
Protection: the mask source is opened once, verified to be the character device 1:3, and every
mask is attached read-only, by fd."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import Runtime, assert_clean_error, leaks
from tests.security.helpers import core_pattern, replace_with_symlink

pytestmark = pytest.mark.cgroupv2

# A write of what it reads back: the null device takes it harmlessly, core_pattern would not.
PROBE = ("v=$(cat /proc/keys) && [ -n \"$v\" ] && printf '%s\\n' \"$v\"  > /proc/keys && echo ESCAPE-writable; "
         "grep -q . /proc/keys  && echo ESCAPE-readable:$(head -c 60 /proc/keys); echo probed")


def image_dev_bundle(bundle, make_null) -> Path:
    """/dev is a bind of rootfs/devsrc, a directory of the image; make_null(path) plants `null`."""
    def edit(c: dict) -> None:
        c["mounts"] = [m for m in c["mounts"] if not m["destination"].startswith("/dev")]
        c["mounts"].insert(1, {"destination": "/dev", "type": "bind", "source": "PLACEHOLDER",
                               "options": ["rbind", "rw"]})
        c["root"]["readonly"] = False
    b = bundle(["sh", "-c", PROBE], edit=edit)
    devsrc = b / "rootfs" / "devsrc"
    devsrc.mkdir()
    make_null(devsrc / "null")
    config = (b / "config.json").read_text().replace("PLACEHOLDER", str(devsrc))
    (b / "config.json").write_text(config)
    return b


@pytest.mark.parametrize("plant", ["symlink-to-core_pattern", "regular-file", "zero-device"])
def test_a_fake_dev_null_is_never_used_as_a_mask(oci: Runtime, bundle, plant: str) -> None:
    def make_null(path: Path) -> None:
        if plant == "symlink-to-core_pattern":
            replace_with_symlink(path, "/proc/sys/kernel/core_pattern")
        elif plant == "regular-file":
            path.write_text("not a device\n")
        else:
            os.mknod(path, 0o666 | 0o020000, os.makedev(1, 5))

    before = core_pattern()
    b = image_dev_bundle(bundle, make_null)
    cid = oci.new_id()
    res = oci.run("run", "-b", str(b), cid)
    assert b"ESCAPE" not in res.stdout, res.stdout
    assert_clean_error(res, "maskedPaths", "/dev/null")
    assert leaks(oci.root, cid, b) == []
    assert core_pattern() == before


def test_masks_are_read_only_and_empty(oci: Runtime, bundle) -> None:
    """With the real /dev/null, masked files read empty, masked directories are empty, and
    every mask is a read-only mount."""
    script = PROBE + "; ls /sys/firmware | wc -l; grep -E ' /(proc/keys|sys/firmware) ' /proc/self/mountinfo"
    out = oci.run("run", "-b", str(bundle(["sh", "-c", script])), oci.new_id(), check=True).stdout.decode()
    assert "ESCAPE" not in out and "probed" in out, out
    lines = out.split("probed\n", 1)[1].splitlines()
    assert lines[0].strip() == "0", out
    assert len(lines[1:]) == 2 and all(" ro," in ln or " ro " in ln for ln in lines[1:]), out
