"""The mount, device and credential sequences, run against the recording kernel (no root).

The rootfs is a real scratch directory: targets are resolved and created in it by the real
openat2(RESOLVE_IN_ROOT), so these tests also prove where a mount would land (in-root, even
through an image's absolute symlink) and what is refused before any mount is attempted."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from ociruntime.config import Device, Mount, Process
from ociruntime.errors import SetupError, SyscallError
from ociruntime.linux import devices, kernel, mountapi, rootfs, security
from ociruntime.linux import mountflags as mf
from tests.unit.fake_kernel import RecordingKernel


@pytest.fixture
def tree(tmp_path: Path):
    """(rootfs dir, recording kernel installed for the test, Rootfs on the dir)."""
    root_dir = tmp_path / "rootfs"
    root_dir.mkdir()
    (tmp_path / "scratch").mkdir()
    fake = RecordingKernel(str(root_dir), str(tmp_path / "scratch"))
    prev = kernel.use(fake)
    root = rootfs.Rootfs(str(root_dir), in_userns=False)
    try:
        yield root_dir, fake, root
    finally:
        root.close()
        kernel.use(prev)


CLONE = mountapi.OPEN_TREE_CLONE | mountapi.OPEN_TREE_CLOEXEC | mountapi.AT_EMPTY_PATH
ATTACH = mountapi.MOVE_MOUNT_F_EMPTY_PATH | mountapi.MOVE_MOUNT_T_EMPTY_PATH


def test_bind_mount_ro_nosuid_gets_its_flags_before_it_is_attached(tree, tmp_path: Path) -> None:
    """A detached copy, made ro/nosuid (exactly those: the others cleared, atime relatime),
    then attached at the target's fd: never reachable writable, no path resolved again."""
    root_dir, fake, root = tree
    src = tmp_path / "src"
    src.mkdir()
    root.mount(Mount({"destination": "/data", "type": "bind", "source": str(src),
                      "options": ["rbind", "ro", "nosuid"]}), str(tmp_path), None)
    ro_nosuid = mf.MOUNT_ATTR_RDONLY | mf.MOUNT_ATTR_NOSUID
    assert fake.calls == [
        ("open_tree", str(src), "", CLONE | mountapi.AT_RECURSIVE),
        ("mount_setattr", f"open_tree:{src}", "", mountapi.AT_EMPTY_PATH, ro_nosuid,
         (mountapi.PER_MOUNT_ATTRS & ~ro_nosuid) | mf.MOUNT_ATTR__ATIME, 0),
        ("move_mount", f"open_tree:{src}", "", "<root>/data", "", ATTACH),
    ]
    assert (root_dir / "data").is_dir()


def test_recursive_attributes_of_a_bind_are_set_before_it_is_attached(tree, tmp_path: Path) -> None:
    """rro on an rbind: mount_setattr(AT_RECURSIVE) on the detached tree, never on the target
    looked up again after the attach."""
    _, fake, root = tree
    src = tmp_path / "src"
    src.mkdir()
    root.mount(Mount({"destination": "/data", "type": "bind", "source": str(src), "options": ["rbind", "rro"]}),
               str(tmp_path), None)
    recursive = mountapi.AT_EMPTY_PATH | mountapi.AT_RECURSIVE
    assert fake.calls == [
        ("open_tree", str(src), "", CLONE | mountapi.AT_RECURSIVE),
        ("mount_setattr", f"open_tree:{src}", "", recursive, mf.MOUNT_ATTR_RDONLY, 0, 0),
        ("move_mount", f"open_tree:{src}", "", "<root>/data", "", ATTACH),
    ]


def test_bind_target_behind_an_absolute_symlink_lands_inside_the_rootfs(tree, tmp_path: Path) -> None:
    root_dir, fake, root = tree
    (root_dir / "data").symlink_to("/outside-the-rootfs")
    src = tmp_path / "src.txt"
    src.write_text("x")
    root.mount(Mount({"destination": "/data", "type": "bind", "source": str(src), "options": ["bind"]}),
               str(tmp_path), None)
    assert fake.calls == [("open_tree", str(src), "", CLONE),
                          ("move_mount", f"open_tree:{src}", "", "<root>/outside-the-rootfs", "", ATTACH)]
    assert (root_dir / "outside-the-rootfs").is_file()
    assert not Path("/outside-the-rootfs").exists()


def test_a_target_missing_its_last_component_is_made_in_root_through_a_symlinked_parent(tree, tmp_path: Path) -> None:
    """Only the last component missing: made at its parent's fd (Rootfs._create_last), the
    parent resolved in-root. The image's absolute symlink names a directory that exists on the
    host too: the host's is never touched."""
    root_dir, _, root = tree
    host_dir = tmp_path / "host-dir"
    host_dir.mkdir()
    in_root = root_dir / str(host_dir).lstrip("/")
    in_root.mkdir(parents=True)
    (root_dir / "link").symlink_to(host_dir)
    fd = root.make_target("/link/new", True)
    try:
        assert os.readlink(f"/proc/self/fd/{fd}") == str(in_root / "new")
    finally:
        os.close(fd)
    assert list(host_dir.iterdir()) == []


def test_a_dangling_symlink_as_the_target_is_followed_in_root(tree) -> None:
    root_dir, _, root = tree
    (root_dir / "dangling").symlink_to("/made/here")
    os.close(root.make_target("/dangling", True))
    assert (root_dir / "made" / "here").is_dir() and not Path("/made").exists()


def test_a_strict_target_behind_a_symlink_is_refused_and_nothing_is_made(tree) -> None:
    root_dir, _, root = tree
    (root_dir / "real").mkdir()
    (root_dir / "link").symlink_to("real")
    with pytest.raises(SetupError, match=r"/link/new is .* a symlink in rootfs"):
        root.make_target("/link/new", True, strict=True)
    assert list((root_dir / "real").iterdir()) == []


def test_procfs_on_a_symlink_is_refused_before_any_mount(tree, tmp_path: Path) -> None:
    root_dir, fake, root = tree
    (root_dir / "proc").symlink_to("/etc")
    with pytest.raises(SetupError, match="proc must be mounted on an ordinary directory"):
        root.mount(Mount({"destination": "/proc", "type": "proc", "source": "proc"}), str(tmp_path), None)
    assert fake.calls == []


def test_a_masked_directory_gets_a_read_only_tmpfs_attached_by_fd(tree) -> None:
    root_dir, fake, root = tree
    (root_dir / "proc" / "acpi").mkdir(parents=True)
    rootfs.mask_paths(root, ["/proc/acpi", "/proc/not-there"])
    assert fake.calls == [
        ("fsopen", "tmpfs", mountapi.FSOPEN_CLOEXEC),
        ("fsconfig", "fsopen:tmpfs", mountapi.FSCONFIG_SET_STRING, "source", "tmpfs", 0),
        ("fsconfig", "fsopen:tmpfs", mountapi.FSCONFIG_CMD_CREATE, None, None, 0),
        ("fsmount", "fsopen:tmpfs", mountapi.FSMOUNT_CLOEXEC, mf.MOUNT_ATTR_RDONLY),
        ("move_mount", "fsmount:tmpfs", "", "<root>/proc/acpi", "",
         mountapi.MOVE_MOUNT_F_EMPTY_PATH | mountapi.MOVE_MOUNT_T_EMPTY_PATH),
    ]


def test_a_file_is_never_masked_with_a_dev_null_that_is_not_the_null_device(tree) -> None:
    root_dir, fake, root = tree
    (root_dir / "dev").mkdir()
    (root_dir / "dev" / "null").write_text("")  # a regular file planted by the image
    (root_dir / "secret").write_text("")
    with pytest.raises(SetupError, match="not the character device 1:3"):
        rootfs.mask_paths(root, ["/secret"])
    assert fake.calls == []


def test_readonly_paths_and_readonly_root(tree) -> None:
    root_dir, fake, root = tree
    (root_dir / "sys").mkdir()
    rootfs.readonly_paths(root, ["/sys", "/missing"])
    rootfs.readonly_root(in_userns=False)
    flags = mountapi.AT_EMPTY_PATH | mountapi.AT_RECURSIVE
    assert fake.calls == [
        ("open_tree", "<root>/sys", "", mountapi.OPEN_TREE_CLONE | mountapi.OPEN_TREE_CLOEXEC | flags),
        ("mount_setattr", "open_tree:<root>/sys", "", flags, mountapi.READONLY_ATTRS, 0, 0),
        ("move_mount", "open_tree:<root>/sys", "", "<root>/sys", "",
         mountapi.MOVE_MOUNT_F_EMPTY_PATH | mountapi.MOVE_MOUNT_T_EMPTY_PATH),
        ("mount", None, "/", None, mf.MS_REMOUNT | mf.MS_BIND | mf.MS_RDONLY, None),
    ]


def test_a_device_node_is_made_then_given_the_config_mode_and_owner(tree) -> None:
    root_dir, fake, root = tree
    dev = Device({"type": "p", "path": "/dev/fifo0", "fileMode": 0o640, "uid": 1000, "gid": 1001})
    devices.create_device(root, dev, in_userns=False)
    assert fake.calls == [
        ("mknod", "<root>/dev", "fifo0", stat.S_IFIFO | 0o640, 0),
        ("chown", "<root>/dev/fifo0", 1000, 1001),
    ]
    st = os.stat(root_dir / "dev" / "fifo0")
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o640


def test_a_device_node_swapped_for_a_file_is_refused(tree) -> None:
    _, fake, root = tree
    dev = Device({"type": "c", "path": "/dev/null", "major": 1, "minor": 3, "fileMode": 0o666})
    with pytest.raises(SetupError, match="/dev/null: replaced while it was being made"):
        devices.create_device(root, dev, in_userns=False)
    assert fake.calls == [("mknod", "<root>/dev", "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))]


def test_in_a_user_namespace_the_host_device_is_bound_instead(tree) -> None:
    root_dir, fake, root = tree
    devices.create_device(root, Device({"type": "c", "path": "/dev/null", "major": 1, "minor": 3}),
                          in_userns=True)
    assert fake.calls == [("mount", "/dev/null", "<root>/dev/null", None, mf.MS_BIND, None)]
    assert (root_dir / "dev" / "null").is_file()


def test_mknod_failure_names_the_device_and_keeps_the_errno(tree) -> None:
    _, fake, root = tree
    fake.fail["mknod"] = errno.EPERM
    with pytest.raises(SyscallError) as exc:
        devices.create_device(root, Device({"type": "c", "path": "/dev/zero", "major": 1, "minor": 5}),
                              in_userns=False)
    assert str(exc.value) == "create device /dev/zero (c 1:5): Operation not permitted"
    assert exc.value.errno == errno.EPERM


def test_credentials_bounding_set_first_then_groups_gid_uid_then_capabilities(tree) -> None:
    _, fake, _ = tree
    caps = ["CAP_CHOWN", "CAP_KILL"]
    process = Process({"user": {"uid": 1000, "gid": 1001, "additionalGids": [5]},
                       "capabilities": {"bounding": caps, "effective": caps, "permitted": caps,
                                        "ambient": ["CAP_KILL"]}})
    security.apply_credentials(process)
    drops = [c for c in fake.calls if c[:2] == ("prctl", security.PR_CAPBSET_DROP)]
    assert {c[2] for c in drops} == set(range(security.last_cap() + 1)) - {0, 5}
    order = [c for c in fake.calls if c not in drops]
    assert order == [
        ("prctl", security.PR_SET_KEEPCAPS, 1, 0),
        ("setgroups", [5]),
        ("setresgid", 1001),
        ("setresuid", 1000),
        ("prctl", security.PR_SET_KEEPCAPS, 0, 0),
        ("capset", [(1 << 0) | (1 << 5), (1 << 0) | (1 << 5), 0, 0, 0, 0]),
        ("prctl", security.PR_CAP_AMBIENT, security.PR_CAP_AMBIENT_CLEAR_ALL, 0),
        ("prctl", security.PR_CAP_AMBIENT, security.PR_CAP_AMBIENT_RAISE, 5),
    ]
    assert fake.calls.index(drops[-1]) < fake.calls.index(order[0])


def test_a_refused_setgroups_stops_before_the_uid_changes(tree) -> None:
    _, fake, _ = tree
    fake.fail["setgroups"] = errno.EINVAL
    with pytest.raises(SyscallError, match=r"^setgroups \[5\]: Invalid argument$"):
        security.switch_user(Process({"user": {"uid": 1000, "gid": 1000, "additionalGids": [5]}}))
    assert not fake.named("setresgid", "setresuid")


def test_the_real_kernel_reports_errno_operation_and_path() -> None:
    with pytest.raises(SyscallError) as exc:
        kernel.Kernel().mount(None, "/nonexistent-target-for-a-test", None, mf.MS_REMOUNT, None, "remount x")
    assert exc.value.errno in (errno.ENOENT, errno.EPERM)
    assert exc.value.operation == "remount x"
    assert exc.value.path == "/nonexistent-target-for-a-test"
    assert str(exc.value) == f"remount x: {os.strerror(exc.value.errno)}"


def test_rlimits_go_through_the_shim_by_name_in_config_order(tree) -> None:
    _, fake, _ = tree
    process = Process({"rlimits": [{"type": "RLIMIT_NOFILE", "soft": 300, "hard": 600},
                                   {"type": "RLIMIT_LOCKS", "soft": 5, "hard": 2**64 - 1}]})
    security.set_rlimits(process)
    assert fake.named("setrlimit") == [("setrlimit", "RLIMIT_NOFILE", 300, 600),
                                       ("setrlimit", "RLIMIT_LOCKS", 5, 2**64 - 1)]


def test_a_hard_limit_above_the_hosts_names_the_rlimit_and_the_capability(tree) -> None:
    _, fake, _ = tree
    fake.fail["setrlimit"] = errno.EPERM
    with pytest.raises(SyscallError) as exc:
        security.set_rlimits(Process({"rlimits": [{"type": "RLIMIT_NOFILE", "soft": 9, "hard": 9}]}))
    assert str(exc.value) == ("setrlimit RLIMIT_NOFILE soft=9 hard=9: raising a hard limit needs "
                              "CAP_SYS_RESOURCE in the host's user namespace")
    assert exc.value.errno == errno.EPERM


def test_the_shim_knows_every_rlimit_the_spec_names_by_this_architectures_number() -> None:
    """The numbers come from <sys/resource.h> at build time (RLIMIT_LOCKS among them, which
    Python's `resource` module lacks); on x86-64 and the generic ABI they are 0..15."""
    import resource

    from ociruntime.spectables import RLIMITS

    lib = kernel.shim()[1]
    numbers = {name: getattr(lib, name) for name in RLIMITS}
    assert sorted(numbers.values()) == list(range(len(RLIMITS)))
    assert all(numbers[n] == getattr(resource, n) for n in RLIMITS if hasattr(resource, n))


def test_the_real_setrlimit_lowers_a_limit_in_a_child() -> None:
    import resource

    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            kernel.Kernel().setrlimit("RLIMIT_NOFILE", 100, 200, "setrlimit")
            code = 0 if resource.getrlimit(resource.RLIMIT_NOFILE) == (100, 200) else 2
        finally:
            os._exit(code)
    assert os.waitpid(pid, 0)[1] == 0
