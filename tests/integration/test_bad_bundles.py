"""Bad bundles leave nothing behind (issue 3 point 7, issue 2 point 3).

Each broken bundle must make `create` exit 1 with one line naming the problem (and the same as
the last JSON line of `--log`), and afterwards the host must be as before: no state dir, cgroup,
host mount, process, fifo or socket, and the same ID can be created from a good bundle."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import Runtime, assert_clean_error, assert_json_error_log, leaks


def _write(data: bytes) -> Callable[[Path], None]:
    def apply(b: Path) -> None:
        (b / "config.json").write_bytes(data)
    return apply


def _truncated(b: Path) -> None:
    text = (b / "config.json").read_bytes()
    (b / "config.json").write_bytes(text[: len(text) // 2])


def _ten_mb(b: Path) -> None:
    (b / "config.json").write_bytes(b'{"ociVersion": "1.0.2", "x": "' + b"y" * (10 << 20))


def _dev_zero(b: Path) -> None:
    (b / "config.json").unlink()
    (b / "config.json").symlink_to("/dev/zero")


def _directory(b: Path) -> None:
    # We run as root, so mode 000 would still be readable: a directory cannot be read as a file.
    (b / "config.json").unlink()
    (b / "config.json").mkdir()


def _missing(b: Path) -> None:
    (b / "config.json").unlink()


def _edit(fn: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(b: Path) -> None:
        cfg = json.loads((b / "config.json").read_text())
        fn(cfg)
        (b / "config.json").write_text(json.dumps(cfg))
    return apply


def _no_rootfs(b: Path) -> None:
    os.rename(b / "rootfs", b / "elsewhere")


def _rootfs_is_file(b: Path) -> None:
    os.rename(b / "rootfs", b / "elsewhere")
    (b / "rootfs").write_text("not a dir")


def _ns(*types: str) -> Callable[[dict], None]:
    return lambda c: c["linux"].update(namespaces=[{"type": t} for t in types])


def _add_mount(mount: dict) -> Callable[[dict], None]:
    return lambda c: c["mounts"].append(mount)


def _ns_path(kind: str, path: str) -> Callable[[dict], None]:
    def apply(c: dict) -> None:
        for ns in c["linux"]["namespaces"]:
            if ns["type"] == kind:
                ns["path"] = path
    return apply


@dataclass
class Bad:
    name: str
    breaks: Callable[[Path], None]
    mentions: tuple[str, ...]
    runc_fails: bool = True   # runc on the same bundle fails too (proves the case is really bad)
    problems: int = 1         # lines on stderr: every problem of a config is listed at once


CASES = [
    Bad("empty", _write(b""), ("config.json",)),
    Bad("truncated", _truncated, ("config.json",)),
    Bad("binary", _write(bytes(range(256)) * 64), ("config.json",)),
    Bad("not-an-object", _write(b"[1, 2, 3]"), ("config.json",)),
    Bad("null", _write(b"null"), ("config.json",)),
    Bad("ten-mb", _ten_mb, ("config.json",)),
    # runc would read /dev/zero forever: we must stop at a size limit.
    Bad("symlink-dev-zero", _dev_zero, ("config.json",), runc_fails=False),
    Bad("config-is-directory", _directory, ("config.json",)),
    Bad("config-missing", _missing, ("config.json",)),
    Bad("rootfs-missing", _no_rootfs, ("rootfs",)),
    Bad("rootfs-is-file", _rootfs_is_file, ("rootfs",)),
    Bad("namespace-type", _edit(_ns("pid", "pidx", "mount")), ("namespaces", "pidx")),
    Bad("namespace-duplicate", _edit(_ns("pid", "uts", "mount", "pid")), ("namespaces", "pid")),
    Bad("oci-version-major", _edit(lambda c: c.update(ociVersion="2.0.0")), ("ociVersion",),
        runc_fails=False),
    Bad("user-ns-without-mappings", _edit(_ns("pid", "uts", "mount", "user")), ("uidMappings",),
        problems=2),  # uidMappings and gidMappings
    Bad("bind-source-missing", _edit(_add_mount({
        "destination": "/data", "type": "bind", "source": "/nonexistent-host-dir-for-test",
        "options": ["rbind"]})), ("/nonexistent-host-dir-for-test",)),
    Bad("mount-bad-fstype", _edit(_add_mount({
        "destination": "/data", "type": "nosuchfs", "source": "none"})), ("/data",)),
    Bad("args-nonexistent", _edit(lambda c: c["process"].update(args=["/nonexistent"])),
        ("/nonexistent",)),
    Bad("args-not-in-path", _edit(lambda c: c["process"].update(args=["no-such-command"])),
        ("no-such-command",)),
    Bad("args-empty", _edit(lambda c: c["process"].update(args=[])), ("args",)),
    Bad("cwd-relative", _edit(lambda c: c["process"].update(cwd="tmp")), ("cwd",)),
    Bad("cwd-is-a-file", _edit(lambda c: c["process"].update(cwd="/bin/busybox")), ("cwd",)),
    Bad("rlimit-unknown", _edit(lambda c: c["process"].update(
        rlimits=[{"type": "RLIMIT_NOPE", "hard": 1, "soft": 1}])), ("RLIMIT_NOPE",)),
    Bad("uid-type", _edit(lambda c: c["process"]["user"].update(uid="root")), ("uid",)),
    Bad("ns-path-missing", _edit(_ns_path("network", "/nonexistent/ns/net")), ("/nonexistent/ns/net",)),
    Bad("ns-path-wrong-type", _edit(_ns_path("network", f"/proc/{os.getpid()}/ns/uts")), ("network",)),
]


def _bundle_dir_cases() -> list[str]:
    return ["bundle-is-file", "bundle-missing"]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_bundle_fails_cleanly_and_leaves_nothing(case: Bad, oci: Runtime, runc: Runtime, bundle,
                                                     tmp_path: Path) -> None:
    b = bundle(args=["sleep", "100"])
    case.breaks(b)
    cid = oci.new_id("bad")
    log = tmp_path / "oci.log"
    started = time.monotonic()
    res = oci.run("create", "--bundle", str(b), cid, log_json=log, timeout=20)
    assert time.monotonic() - started < 10, "a bad bundle must fail fast"
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr.decode()
    assert leaks(oci.root, cid, b) == []
    entry = assert_json_error_log(log)
    for word in case.mentions:
        assert word.lower() in entry["msg"].lower(), entry
    # The same bundle without --log: one line on stderr.
    res = oci.run("create", "--bundle", str(b), cid, timeout=20)
    assert leaks(oci.root, cid, b) == []
    assert_clean_error(res, *case.mentions, problems=case.problems)

    if case.runc_fails:
        rcid = runc.new_id("bad")
        assert runc.run("create", "--bundle", str(b), rcid, timeout=20).returncode != 0, \
            "runc accepts this bundle: the case is not broken"

    # The ID is free again.
    good = bundle(args=["sleep", "100"])
    oci.run("create", "--bundle", str(good), cid, check=True)
    assert oci.state(cid)["status"] == "created"
    oci.run("delete", "-f", cid, check=True)
    assert leaks(oci.root, cid, good) == []


@pytest.mark.parametrize("kind", _bundle_dir_cases())
def test_bundle_not_a_directory(kind: str, oci: Runtime, tmp_path: Path, bundle) -> None:
    b = tmp_path / "bundle-file"
    if kind == "bundle-is-file":
        b.write_text("{}")
    cid = oci.new_id("bad")
    res = oci.run("create", "--bundle", str(b), cid)
    assert leaks(oci.root, cid, b) == []
    assert_clean_error(res, str(b))
    oci.run("create", "--bundle", str(bundle(args=["true"])), cid, check=True)


def test_failure_after_cgroup_and_mounts_leaves_nothing(oci: Runtime, bundle, tmp_path: Path) -> None:
    """A failure late in create (the last mount fails after many others succeeded, with a
    cgroup already made) still unwinds everything."""
    src = tmp_path / "src"
    src.mkdir()

    def late_failure(c: dict) -> None:
        c["mounts"].append({"destination": "/mnt/ok", "type": "bind", "source": str(src),
                            "options": ["rbind"]})
        c["mounts"].append({"destination": "/mnt/bad", "type": "bind",
                            "source": str(tmp_path / "missing"), "options": ["rbind"]})
        c["linux"]["resources"]["pids"] = {"limit": 100}
    b = bundle(args=["true"], edit=late_failure)
    cid = oci.new_id("late")
    res = oci.run("create", "--bundle", str(b), cid)
    assert leaks(oci.root, cid, b) == []
    assert host_mounts_of(src) == []
    assert_clean_error(res, str(tmp_path / "missing"))


def host_mounts_of(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [ln for ln in f if str(path) in ln]


def test_the_leak_check_sees_a_live_container(oci: Runtime, bundle) -> None:
    """The check above must be able to fail: a created container shows as state dir, cgroup,
    fifo and a process using the bundle."""
    b = bundle(args=["sleep", "100"])
    cid = oci.new_id("live")
    oci.run("create", "--bundle", str(b), cid, check=True)
    found = " ".join(leaks(oci.root, cid, b))
    for what in ("state dir", "cgroup", "fifo", "process"):
        assert what in found, f"{what} not detected: {found}"
    oci.run("delete", cid, check=True)
    assert leaks(oci.root, cid, b) == []
