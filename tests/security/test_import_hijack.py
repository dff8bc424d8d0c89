"""The runtime's children are Python: a module they import after entering a filesystem that is
not the host's would be read from there. A container whose mount namespace another container
joins could then plant the runtime's own code and run it as root with every capability, before
the joining container's init drops them (runc's init is one binary, loaded before it moves).
Our children load everything they need first, then refuse any import from the disk."""

from __future__ import annotations

import shutil

from tests.conftest import Runtime, runtime_package_dir

# Runs as whoever imports it: it leaves a mark in the filesystem it was read from.
PAYLOAD = '''import posix
fd = posix.open("/planted-code-ran", posix.O_WRONLY | posix.O_CREAT, 0o644)
posix.write(fd, b"%s\\n" % str(posix.getuid()).encode())
posix.close(fd)


def loopback_up():
    pass
'''


def _joining(owner_pid: int):
    """A config joining that mount namespace, with a new network namespace (whose loopback the
    init brings up from Python), and nothing to mount."""
    def edit(c: dict) -> None:
        c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "mount"]
        c["linux"]["namespaces"].append({"type": "mount", "path": f"/proc/{owner_pid}/ns/mnt"})
        c["mounts"] = []
        c["root"]["readonly"] = False
        for field in ("maskedPaths", "readonlyPaths"):
            c["linux"].pop(field, None)
    return edit


def test_a_joined_mount_namespace_cannot_supply_the_runtimes_code(oci: Runtime, bundle) -> None:
    owner_bundle = bundle(["sleep", "100"], edit=lambda c: c["root"].update(readonly=False))
    owner_root = owner_bundle / "rootfs"
    # What an image (or its container, at run time) can write in its own filesystem.
    planted = owner_root / runtime_package_dir().lstrip("/") / "linux"
    planted.mkdir(parents=True)
    (planted / "network.py").write_text(PAYLOAD)
    owner = oci.new_id("owner")
    oci.run("run", "-d", "-b", str(owner_bundle), owner, check=True)
    joiner_bundle = bundle(["cat", "/marker"], edit=_joining(oci.state(owner)["pid"]))
    # root.path is found in the joined namespace: the owner's filesystem holds it too.
    inside = owner_root / str(joiner_bundle / "rootfs").lstrip("/")
    shutil.copytree(joiner_bundle / "rootfs", inside, symlinks=True)
    (inside / "marker").write_text("the joiner runs\n")
    res = oci.run("run", "-b", str(joiner_bundle), oci.new_id("joiner"), timeout=60)
    mark = owner_root / "planted-code-ran"
    assert not mark.exists(), f"the runtime ran code planted in the joined namespace: {mark.read_text()!r}"
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    assert res.stdout == b"the joiner runs\n"
