"""tmpcopyup (runc's extension, what podman puts on every tmpfs with --read-only/--tmpfs): the
new tmpfs starts with a copy of the directory it covers -- contents, modes, owners, xattrs,
symlinks as symlinks (never followed out of the rootfs), FIFOs as FIFOs. Compared with runc."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import Runtime

pytestmark = pytest.mark.cgroupv2

SCRIPT = ("cd /data && stat -c '%n %a %u %g %F' file sub sub/inner escape fifo; "
          "cat file sub/inner; readlink escape; [ -p fifo ] && echo fifo-ok; "
          "getfattr -d file 2>/dev/null; echo new > created && echo writable; stat -c '%a %u %g' .")


def tmpcopyup_bundle(bundle, tmp_path: Path, options: list[str], fifo: bool = True) -> Path:
    def edit(c: dict) -> None:
        c["mounts"].append({"destination": "/data", "type": "tmpfs", "source": "tmpfs",
                            "options": ["tmpcopyup", *options]})
    b = bundle(["sh", "-c", SCRIPT], edit=edit)
    data = b / "rootfs" / "data"
    (data / "sub").mkdir(parents=True)
    os.chmod(data, 0o751)
    os.chown(data, 0, 34)
    (data / "file").write_text("copied content\n")
    os.chmod(data / "file", 0o604)
    os.chown(data / "file", 1000, 1001)
    os.setxattr(data / "file", "user.origin", b"image")
    (data / "sub" / "inner").write_text("nested\n")
    (data / "escape").symlink_to(str(tmp_path))  # a host path: must stay a symlink
    if fifo:  # runc 1.1.5 fails to copy a FIFO (lchown of the FIFO it did not create)
        os.mkfifo(data / "fifo")
    return b


def test_tmpcopyup_copies_what_it_covers(oci: Runtime, bundle, tmp_path: Path) -> None:
    b = tmpcopyup_bundle(bundle, tmp_path, [])
    out = oci.run("run", "-b", str(b), oci.new_id(), check=True).stdout.decode()
    assert "copied content\nnested\n" in out
    assert str(tmp_path) in out and "fifo-ok" in out and "writable" in out, out
    assert "file 604 1000 1001 regular file" in out and "escape 777 0 0 symbolic link" in out, out
    assert out.strip().endswith("751 0 0"), out  # the covered dir's mode (as runc), not its owner
    # The image is untouched, and the host path behind the symlink too.
    assert not (b / "rootfs" / "data" / "created").exists()
    assert list(tmp_path.iterdir()) and not (tmp_path / "created").exists()


def test_tmpcopyup_matches_runc_listing(oci: Runtime, runc: Runtime, bundle, tmp_path: Path) -> None:
    b = tmpcopyup_bundle(bundle, tmp_path, ["mode=1777"], fifo=False)
    ours = oci.run("run", "-b", str(b), oci.new_id(), check=True).stdout.decode()
    theirs = runc.run("run", "-b", str(b), runc.new_id(), check=True).stdout.decode()
    assert ours == theirs


def test_tmpcopyup_read_only_is_filled_then_read_only(oci: Runtime, bundle, tmp_path: Path) -> None:
    b = tmpcopyup_bundle(bundle, tmp_path, ["ro"])
    out = oci.run("run", "-b", str(b), oci.new_id()).stdout.decode()
    assert "copied content" in out and "writable" not in out, out


def test_tmpcopyup_on_a_non_tmpfs_is_refused(oci: Runtime, bundle) -> None:
    def edit(c: dict) -> None:
        c["mounts"].append({"destination": "/data", "type": "proc", "source": "proc", "options": ["tmpcopyup"]})
    res = oci.run("run", "-b", str(bundle(["true"], edit=edit)), oci.new_id())
    assert res.returncode == 1 and b"tmpcopyup applies to tmpfs mounts only" in res.stderr, res.stderr
