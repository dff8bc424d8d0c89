"""Files of the image read during set-up (/etc/passwd, for HOME) are hostile: /dev/zero made the
init read until it was OOM-killed (host memory without a limit), a FIFO hung create.
Protection: read in-root, regular files only, with a size bound; a bad one is a clear error."""

from __future__ import annotations

import os

import pytest

from tests.conftest import Runtime, assert_clean_error, leaks
from tests.security.helpers import replace_with_symlink

pytestmark = pytest.mark.cgroupv2


def no_home(c: dict) -> None:
    c["process"]["env"] = [e for e in c["process"]["env"] if not e.startswith("HOME=")]


@pytest.mark.parametrize("plant", ["dev-zero-symlink", "fifo", "huge", "directory"])
def test_hostile_passwd_is_a_clear_error(oci: Runtime, bundle, plant: str) -> None:
    b = bundle(["true"], edit=no_home)
    passwd = b / "rootfs" / "etc" / "passwd"
    passwd.unlink()  # a hard link to the shared base rootfs: replace, never write through
    if plant == "dev-zero-symlink":
        replace_with_symlink(passwd, "/dev/zero")
    elif plant == "fifo":
        os.mkfifo(passwd)
    elif plant == "huge":
        with open(passwd, "wb") as f:
            f.truncate(64 << 20)
    else:
        passwd.mkdir()
    cid = oci.new_id()
    res = oci.run("run", "-b", str(b), cid, timeout=20)
    assert_clean_error(res, "/etc/passwd")
    assert leaks(oci.root, cid, b) == []


def test_passwd_is_not_read_when_home_is_given(oci: Runtime, bundle) -> None:
    def with_home(c: dict) -> None:
        c["process"]["env"].append("HOME=/custom")
    b = bundle(["sh", "-c", "echo $HOME"], edit=with_home)
    passwd = b / "rootfs" / "etc" / "passwd"
    passwd.unlink()
    replace_with_symlink(passwd, "/dev/zero")
    assert oci.run("run", "-b", str(b), oci.new_id(), check=True).stdout.strip() == b"/custom"


def test_exec_reads_passwd_the_same_way(oci: Runtime, bundle) -> None:
    b = bundle(["sleep", "100"], edit=no_home)
    cid = oci.new_id()
    oci.run("run", "-d", "-b", str(b), cid, check=True)
    passwd = b / "rootfs" / "etc" / "passwd"
    passwd.unlink()
    os.mkfifo(passwd)
    res = oci.run("exec", cid, "true", timeout=20)
    assert res.returncode != 0 and b"/etc/passwd" in res.stderr, res.stderr
