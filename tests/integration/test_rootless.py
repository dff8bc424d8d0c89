"""Rootless (issue 13): an ordinary user runs `ociruntime spec --rootless` bundles on this cgroup
v1 host, where nothing is delegated to users, so containers run without cgroups. Each scenario
runs as the same user with ociruntime and with runc on the same bundle, and asserts the same
outcome; where runc 1.1.5 fails and the kernel allows it (a fresh sysfs without a network
namespace, locked mount flags on a bind remount), the test says so and checks ours alone.

The user is made by the tests (useradd, with a range in /etc/subuid and /etc/subgid for
newuidmap) and removed at the end; every bundle and state directory is in a directory it owns."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import OCIRUNTIME, RUNC
from tests.dbusd import private_bus

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class User:
    """An ordinary user made for the tests, and a workspace directory it owns."""

    def __init__(self, name: str, uid: int, gid: int, home: Path) -> None:
        self.name, self.uid, self.gid, self.home = name, uid, gid, home

    def subid(self, kind: str) -> tuple[int, int]:
        """(first, count) of the user's range in /etc/subuid or /etc/subgid."""
        for line in Path(f"/etc/sub{kind}").read_text().splitlines():
            name, first, count = line.split(":")
            if name == self.name:
                return int(first), int(count)
        raise AssertionError(f"no /etc/sub{kind} range for {self.name}")

    def run(self, argv: list[str], env: dict[str, str] | None = None, timeout: float = 60,
            cwd: Path | None = None) -> subprocess.CompletedProcess:
        """argv as the user, no supplementary groups, a clean environment; output to files (a
        detached container keeps our stdio open)."""
        base = {"PATH": PATH, "HOME": str(self.home), "USER": self.name}
        base.update(env or {})
        cmd = ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups", "env", "-i",
               *(f"{k}={v}" for k, v in base.items() if v is not None), *argv]
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            res = subprocess.run(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, timeout=timeout,
                                 cwd=cwd)
            out.seek(0)
            err.seek(0)
            res.stdout, res.stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        return res


@pytest.fixture(scope="module")
def user() -> Iterator[User]:
    for tool in ("useradd", "userdel", "setpriv", "newuidmap", "newgidmap"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is not installed (newuidmap/newgidmap: apt-get install uidmap)")
    name = f"ocirl{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True,
                   capture_output=True)
    u = None
    try:
        u = User(name, int(_id(name, "-u")), int(_id(name, "-g")), Path(tempfile.mkdtemp(prefix="ocirl-", dir="/tmp")))
        os.chown(u.home, u.uid, u.gid)
        os.chmod(u.home, 0o755)
        for kind in ("uid", "gid"):
            try:
                u.subid(kind)
            except AssertionError:  # useradd adds ranges only where /etc/sub*id existed
                first = 2_000_000 + (u.uid % 1000) * 65536
                subprocess.run(["usermod", f"--add-sub{kind}s", f"{first}-{first + 65535}", name],
                               check=True, capture_output=True)
        yield u
    finally:
        subprocess.run(["userdel", name], capture_output=True)  # also removes its sub*id ranges
        if u is not None:
            shutil.rmtree(u.home, ignore_errors=True)


def _id(name: str, flag: str) -> str:
    return subprocess.run(["id", flag, name], check=True, capture_output=True, text=True).stdout.strip()


class UserRuntime:
    """A runtime binary run as the user, with its own --root (None: the default) in the user's
    workspace; `cleanup` deletes what it made."""

    def __init__(self, user: User, binary: str, root: Path | None, xdg: Path | None) -> None:
        self.user, self.binary, self.root, self.xdg = user, binary, root, xdg
        self.ids: list[str] = []

    def new_id(self) -> str:
        cid = f"rl-{uuid.uuid4().hex[:10]}"
        self.ids.append(cid)
        return cid

    def __call__(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
        root = ["--root", str(self.root)] if self.root else []
        env = {"XDG_RUNTIME_DIR": str(self.xdg) if self.xdg else None}
        return self.user.run([self.binary, *root, *args], env=env, cwd=cwd)

    def cleanup(self) -> None:
        for cid in self.ids:
            self("delete", "-f", cid)


@pytest.fixture
def workspace(user: User) -> Iterator[Path]:
    ws = Path(tempfile.mkdtemp(prefix="ws-", dir=user.home))
    os.chown(ws, user.uid, user.gid)
    yield ws
    shutil.rmtree(ws, ignore_errors=True)


@pytest.fixture
def runtimes(user: User, workspace: Path) -> Iterator[dict[str, UserRuntime]]:
    """ociruntime and runc as the user, state in the workspace ($XDG_RUNTIME_DIR there too)."""
    xdg = workspace / "xdg"
    xdg.mkdir(mode=0o700)
    os.chown(xdg, user.uid, user.gid)
    rts = {name: UserRuntime(user, binary, workspace / f"state-{name}", xdg)
           for name, binary in (("ociruntime", OCIRUNTIME), ("runc", RUNC))}
    yield rts
    for rt in rts.values():
        rt.cleanup()


@pytest.fixture
def rootless_bundle(user: User, workspace: Path, base_rootfs: Path) -> Callable[..., Path]:
    """A bundle whose config.json the user wrote with `ociruntime spec --rootless`, edited."""
    made = [0]

    def make(args: list[str], edit: Callable[[dict], None] | None = None) -> Path:
        made[0] += 1
        b = workspace / f"bundle{made[0]}"
        b.mkdir()
        os.chown(b, user.uid, user.gid)
        shutil.copytree(base_rootfs, b / "rootfs", symlinks=True, copy_function=os.link)
        res = user.run([OCIRUNTIME, "spec", "--rootless", "-b", str(b)])
        assert res.returncode == 0, res.stderr
        cfg = json.loads((b / "config.json").read_text())
        cfg["process"]["terminal"] = False
        cfg["process"]["args"] = args
        # runc wants an absolute rootfs path that is no symlink: the same for both.
        cfg["root"]["path"] = str(b / "rootfs")
        if edit is not None:
            edit(cfg)
        (b / "config.json").write_text(json.dumps(cfg))
        return b
    return make


def both(runtimes: dict[str, UserRuntime], bundle: Path, *args: str) -> dict[str, subprocess.CompletedProcess]:
    """`run` of the bundle with each runtime (extra global flags in args before `run`)."""
    out = {}
    for name, rt in runtimes.items():
        out[name] = rt(*args, "run", "-b", str(bundle), rt.new_id())
    return out


def state_dirs(rt: UserRuntime) -> list[str]:
    return sorted(os.listdir(rt.root)) if rt.root and rt.root.exists() else []


# --- 2: `spec --rootless` bundles run as an ordinary user -------------------------------------
INSIDE = ("id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups; hostname; "
          "stat -c '%F %t:%T' /dev/null /dev/zero /dev/tty; echo x > /dev/null && echo null-writable; "
          "awk '$5 == \"/sys\" {print $9, $6}' /proc/self/mountinfo; ls /sys/class >/dev/null && echo sys-readable")


def test_spec_rootless_bundle_runs_as_an_ordinary_user_like_runc(user: User, runtimes, rootless_bundle) -> None:
    b = rootless_bundle(["sh", "-c", INSIDE])
    res = both(runtimes, b)
    for name, r in res.items():
        assert r.returncode == 0, f"{name}: {r.stderr}"
    ours, theirs = res["ociruntime"].stdout, res["runc"].stdout
    assert ours == theirs, f"ociruntime:\n{ours}\nrunc:\n{theirs}"
    lines = ours.splitlines()
    assert lines[:2] == ["0", "0"]  # root inside ...
    assert lines[2].split() == ["0", str(user.uid), "1"]  # ... which is the user outside
    assert lines[3].split() == ["0", str(user.gid), "1"]
    assert lines[4] == "deny"  # the kernel's price for mapping one's own gid
    # Devices are the host's nodes, bind-mounted (mknod is refused in a user namespace).
    assert lines[6:9] == ["character special file 1:3", "character special file 1:5",
                          "character special file 5:0"]
    assert "null-writable" in lines
    assert "sysfs ro,nosuid,nodev,noexec,relatime" in lines  # the rbind of /sys, read-only
    assert not any(state_dirs(rt) for rt in runtimes.values())


def test_exec_kill_delete_of_a_rootless_container_like_runc(runtimes, rootless_bundle) -> None:
    b = rootless_bundle(["sleep", "60"])
    for name, rt in runtimes.items():
        cid = rt.new_id()
        r = rt("run", "-d", "-b", str(b), cid)
        assert r.returncode == 0, f"{name}: {r.stderr}"
        r = rt("exec", cid, "sh", "-c", "id -u; cat /proc/self/uid_map | wc -l; tr '\\0' ' ' < /proc/1/cmdline")
        assert r.returncode == 0 and r.stdout.split() == ["0", "1", "sleep", "60"], f"{name}: {r.stdout!r} {r.stderr}"
        assert json.loads(rt("state", cid).stdout)["status"] == "running"
        assert rt("kill", cid, "KILL").returncode == 0
        r = rt("delete", "-f", cid)
        assert r.returncode == 0, f"{name}: {r.stderr}"
        assert rt("state", cid).returncode != 0


# --- 1: the --rootless decision and the state directory ---------------------------------------
def test_state_goes_under_xdg_runtime_dir_like_runc(user: User, workspace: Path, rootless_bundle) -> None:
    """No --root: $XDG_RUNTIME_DIR/ociruntime (runc: $XDG_RUNTIME_DIR/runc), private and sticky."""
    b = rootless_bundle(["sleep", "60"])
    xdg = workspace / "xdg-default"
    xdg.mkdir(mode=0o700)
    os.chown(xdg, user.uid, user.gid)
    for name, binary in (("ociruntime", OCIRUNTIME), ("runc", RUNC)):
        rt = UserRuntime(user, binary, None, xdg)
        cid = rt.new_id()
        try:
            r = rt("run", "-d", "-b", str(b), cid)
            assert r.returncode == 0, f"{name}: {r.stderr}"
            root = xdg / ("ociruntime" if name == "ociruntime" else "runc")
            assert (root / cid).is_dir(), f"{name}: no state under {root}"
            st = root.stat()
            assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (user.uid, 0o1700), f"{name}: {oct(st.st_mode)}"
            assert cid in rt("list", "-q").stdout
        finally:
            rt.cleanup()
        assert not (root / cid).exists()


def test_no_xdg_runtime_dir_and_an_unwritable_default_root_is_a_clear_error(runtimes, rootless_bundle) -> None:
    b = rootless_bundle(["true"])
    for name, binary in (("ociruntime", OCIRUNTIME), ("runc", RUNC)):
        rt = UserRuntime(runtimes[name].user, binary, None, None)
        for args in (("list",), ("run", "-b", str(b), rt.new_id())):
            r = rt(*args)
            assert r.returncode == 1, f"{name} {args}: {r.stdout} {r.stderr}"
            if name == "ociruntime":
                assert r.stderr.count("\n") == 1, r.stderr
                assert "XDG_RUNTIME_DIR" in r.stderr and "--root" in r.stderr, r.stderr
                assert "internal error" not in r.stderr and "Traceback" not in r.stderr


def test_rootless_auto_skips_undelegated_cgroups_and_false_does_not(runtimes, rootless_bundle, workspace) -> None:
    """auto (the default) for an ordinary user: the cgroups it may not create are skipped, a
    debug line says so; `--rootless false`: the permission error, as runc."""
    b = rootless_bundle(["true"])
    log = workspace / "debug.log"
    r = runtimes["ociruntime"]("--debug", "--log", str(log), "--rootless", "auto", "run", "-b", str(b),
                               runtimes["ociruntime"].new_id())
    assert r.returncode == 0, r.stderr
    assert "rootless: cgroup /sys/fs/cgroup/" in log.read_text() and "not used" in log.read_text()
    res = both(runtimes, b, "--rootless", "false")
    for name, r in res.items():
        assert r.returncode == 1 and "permission denied" in r.stderr, f"{name}: {r.stderr}"
    assert "internal error" not in res["ociruntime"].stderr
    res = both(runtimes, b, "--rootless", "true")
    assert [r.returncode for r in res.values()] == [0, 0], {n: r.stderr for n, r in res.items()}
    assert not any(state_dirs(rt) for rt in runtimes.values())


# --- 3: resources without cgroups ---------------------------------------------------------------
@pytest.mark.parametrize(("resources", "words"), [
    ({"memory": {"limit": 64 << 20}}, "cannot set memory limit"),
    ({"pids": {"limit": 20}}, "cannot set pids limit"),
])
def test_resources_asked_for_without_a_cgroup_are_an_error_like_runc(runtimes, rootless_bundle, resources,
                                                                     words) -> None:
    b = rootless_bundle(["true"], lambda c: c["linux"].__setitem__("resources", resources))
    res = both(runtimes, b)
    for name, r in res.items():
        assert r.returncode == 1, f"{name}: {r.stdout} {r.stderr}"
        assert f"{words}: container could not join or create cgroup" in r.stderr, f"{name}: {r.stderr}"
    assert res["ociruntime"].stderr.count("\n") == 1, res["ociruntime"].stderr
    assert state_dirs(runtimes["ociruntime"]) == []  # nothing left behind


def test_device_rules_alone_do_not_need_a_cgroup_like_runc(runtimes, rootless_bundle) -> None:
    """A rootless container cannot load device rules (CAP_SYS_ADMIN in the host's namespace); it
    has only the host's nodes, bound: rules are best effort, as with runc."""
    rules = {"devices": [{"allow": False, "access": "rwm"}]}
    b = rootless_bundle(["sh", "-c", "echo x > /dev/null && echo ok"],
                        lambda c: c["linux"].__setitem__("resources", rules))
    res = both(runtimes, b)
    for name, r in res.items():
        assert r.returncode == 0 and r.stdout == "ok\n", f"{name}: {r.stdout!r} {r.stderr}"


# --- what the kernel refuses an ordinary user ----------------------------------------------------
def test_a_config_without_a_user_namespace_is_refused_like_runc(runtimes, rootless_bundle) -> None:
    def no_userns(c: dict) -> None:
        c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "user"]
        del c["linux"]["uidMappings"], c["linux"]["gidMappings"]
    b = rootless_bundle(["true"], no_userns)
    res = both(runtimes, b)
    for name, r in res.items():
        assert r.returncode == 1 and "rootless container requires user namespaces" in r.stderr, f"{name}: {r.stderr}"
    assert state_dirs(runtimes["ociruntime"]) == []


def test_additional_gids_where_setgroups_is_denied_are_refused_like_runc(runtimes, rootless_bundle) -> None:
    b = rootless_bundle(["true"], lambda c: c["process"]["user"].__setitem__("additionalGids", [0]))
    res = both(runtimes, b)
    for name, r in res.items():
        assert r.returncode == 1, f"{name}: {r.stdout} {r.stderr}"
    assert "runc" not in res["ociruntime"].stderr
    assert "process.user.additionalGids [0]: setgroups is denied" in res["ociruntime"].stderr
    assert "additional groups" in res["runc"].stderr
    assert state_dirs(runtimes["ociruntime"]) == []


# --- 2: ranges through newuidmap/newgidmap ---------------------------------------------------------
def test_subuid_ranges_are_mapped_with_newuidmap_like_runc(user: User, runtimes, rootless_bundle) -> None:
    (uid0, ucount), (gid0, gcount) = user.subid("uid"), user.subid("gid")

    def ranges(c: dict) -> None:
        c["linux"]["uidMappings"].append({"containerID": 1, "hostID": uid0, "size": ucount})
        c["linux"]["gidMappings"].append({"containerID": 1, "hostID": gid0, "size": gcount})
        for kind in ("bounding", "effective", "permitted"):
            c["process"]["capabilities"][kind].append("CAP_CHOWN")
    script = ("cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups; "
              "touch /dev/shm/f && chown 1000:1000 /dev/shm/f && stat -c %u:%g /dev/shm/f")
    b = rootless_bundle(["sh", "-c", script], ranges)
    res = both(runtimes, b)
    for name, r in res.items():
        assert r.returncode == 0, f"{name}: {r.stderr}"
    assert res["ociruntime"].stdout == res["runc"].stdout
    lines = [ln.split() for ln in res["ociruntime"].stdout.splitlines()]
    assert lines[:4] == [["0", str(user.uid), "1"], ["1", str(uid0), str(ucount)],
                         ["0", str(user.gid), "1"], ["1", str(gid0), str(gcount)]]
    assert lines[4:] == [["allow"], ["1000:1000"]]  # newgidmap allows setgroups with a range


def test_a_range_not_in_subuid_is_a_clear_error(user: User, runtimes, rootless_bundle) -> None:
    def foreign(c: dict) -> None:
        c["linux"]["uidMappings"].append({"containerID": 1, "hostID": 1, "size": 10})
    b = rootless_bundle(["true"], foreign)
    res = both(runtimes, b)
    for name, r in res.items():
        assert r.returncode == 1, f"{name}: {r.stdout} {r.stderr}"
    line = res["ociruntime"].stderr
    assert line.count("\n") == 1 and "linux.uidMappings" in line and "newuidmap" in line, line
    assert state_dirs(runtimes["ociruntime"]) == []


# --- 2: what runc 1.1.5 cannot do and the kernel allows ---------------------------------------------
def test_sysfs_without_a_network_namespace_is_bound_from_the_host(runtimes, rootless_bundle) -> None:
    """A new sysfs needs a network namespace the user namespace owns: without one the host's
    /sys is bound, read-only as asked (crun does so; runc 1.1.5 fails with EPERM)."""
    def fresh_sysfs(c: dict) -> None:
        for m in c["mounts"]:
            if m["destination"] == "/sys":
                m.update(type="sysfs", source="sysfs", options=["nosuid", "noexec", "nodev", "ro"])
    b = rootless_bundle(["sh", "-c", "awk '$5 == \"/sys\" {print $9, $6}' /proc/self/mountinfo; "
                                     "ls /sys/kernel >/dev/null && echo readable; touch /sys/x || true"], fresh_sysfs)
    rt = runtimes["ociruntime"]
    r = rt("run", "-b", str(b), rt.new_id())
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[:2] == ["sysfs ro,nosuid,nodev,noexec,relatime", "readable"], r.stdout
    assert "Read-only file system" in r.stderr


@pytest.fixture
def locked_mount(user: User, workspace: Path) -> Iterator[Path]:
    """A tmpfs with nosuid,nodev,noexec,noatime, mounted by root: a user namespace made later
    inherits it with those flags locked."""
    path = workspace / "locked"
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "nosuid,nodev,noexec,noatime,size=1m,mode=0777", "tmpfs",
                    str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def test_bind_remount_keeps_the_locked_flags_of_the_source(runtimes, rootless_bundle, locked_mount) -> None:
    """`bind,ro` of a nosuid,nodev,noexec,noatime mount: the remount must repeat those flags or
    the kernel says EPERM (runc 1.1.5 does not and fails; runc 1.2 does)."""
    mount = {"destination": "/mnt", "type": "bind", "source": str(locked_mount), "options": ["bind", "ro"]}
    b = rootless_bundle(["sh", "-c", "awk '$5 == \"/mnt\" {print $6}' /proc/self/mountinfo"],
                        lambda c: c["mounts"].append(mount))
    rt = runtimes["ociruntime"]
    r = rt("run", "-b", str(b), rt.new_id())
    assert r.returncode == 0, r.stderr
    assert r.stdout == "ro,nosuid,nodev,noexec,noatime\n"


def test_changing_a_locked_atime_flag_is_a_clear_error(runtimes, rootless_bundle, locked_mount) -> None:
    mount = {"destination": "/mnt", "type": "bind", "source": str(locked_mount),
             "options": ["bind", "ro", "strictatime"]}
    b = rootless_bundle(["true"], lambda c: c["mounts"].append(mount))
    res = both(runtimes, b)
    for name, r in res.items():
        assert r.returncode == 1, f"{name}: {r.stdout} {r.stderr}"
    line = res["ociruntime"].stderr
    assert line.count("\n") == 1 and "bind mount" in line and "on /mnt" in line, line
    assert "in a user namespace the kernel keeps" in line, line
    assert state_dirs(runtimes["ociruntime"]) == []


def test_spec_rootless_maps_the_callers_own_ids(user: User, workspace: Path) -> None:
    r = user.run([OCIRUNTIME, "spec", "--rootless", "-b", str(workspace)])
    assert r.returncode == 0, r.stderr
    linux = json.loads((workspace / "config.json").read_text())["linux"]
    assert linux["uidMappings"] == [{"containerID": 0, "hostID": user.uid, "size": 1}]
    assert linux["gidMappings"] == [{"containerID": 0, "hostID": user.gid, "size": 1}]
    assert {"type": "user"} in linux["namespaces"] and {"type": "network"} not in linux["namespaces"]



def test_root_of_a_user_namespace_is_rootless_as_podman_runs_it(user: User, runtimes, rootless_bundle) -> None:
    """podman's rootless mode: the runtime runs as root of a user namespace podman made, with a
    config that has no user namespace of its own. `auto` makes it rootless: no mknod, cgroups
    skipped, state under $XDG_RUNTIME_DIR (USER is not root)."""
    def no_userns(c: dict) -> None:
        c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "user"]
        del c["linux"]["uidMappings"], c["linux"]["gidMappings"]
    b = rootless_bundle(["sh", "-c", INSIDE], no_userns)
    outs = {}
    for name, rt in runtimes.items():
        cid = rt.new_id()
        r = user.run(["unshare", "--user", "--map-root-user", rt.binary, "run", "-b", str(b), cid],
                     env={"XDG_RUNTIME_DIR": str(rt.xdg)})
        assert r.returncode == 0, f"{name}: {r.stderr}"
        outs[name] = r.stdout
        assert not (rt.xdg / ("ociruntime" if name == "ociruntime" else "runc") / cid).exists()
    assert outs["ociruntime"] == outs["runc"], outs
    lines = outs["ociruntime"].splitlines()
    assert lines[2].split() == ["0", str(user.uid), "1"] and lines[6] == "character special file 1:3"


# --- 3: --systemd-cgroup without a user systemd that delegates ---------------------------------
# (the scope from a user's systemd on cgroup v2: tests/guest/test_rootless_podman.py)
def test_systemd_cgroup_without_delegation_runs_without_a_cgroup(runtimes, rootless_bundle, workspace) -> None:
    """cgroup v1 (this host): a user's systemd delegates nothing, so `--systemd-cgroup` runs the
    container without a cgroup and says why on a debug line; resources asked for are then one
    clear error naming why, and nothing is left behind. runc 1.1.5 refuses both (it requires
    systemd as PID 1), which is why this is ours alone."""
    rt = runtimes["ociruntime"]
    b = rootless_bundle(["sh", "-c", "echo ran"])
    log = workspace / "sd.log"
    r = rt("--debug", "--log", str(log), "--systemd-cgroup", "run", "-b", str(b), rt.new_id())
    assert (r.returncode, r.stdout) == (0, "ran\n"), r.stderr
    assert ("rootless, systemd cgroup driver: no cgroup: systemd delegates no cgroup to an ordinary user "
            "on cgroup v1") in log.read_text()
    b = rootless_bundle(["true"], lambda c: c["linux"].__setitem__("resources", {"memory": {"limit": 64 << 20}}))
    r = rt("--systemd-cgroup", "run", "-b", str(b), rt.new_id())
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert "cannot set memory limit" in r.stderr and "rootless, systemd cgroup driver: no cgroup" in r.stderr, r.stderr
    assert state_dirs(rt) == []
    assert runtimes["runc"]("--systemd-cgroup", "run", "-b", str(b), runtimes["runc"].new_id()).returncode != 0


CONNECT = ("from ociruntime.linux.cgroups.systemd import Systemd\n"
           "try:\n    Systemd('user')\nexcept Exception as e:\n    print(e)\n")


def test_user_bus_authentication_from_podmans_user_namespace(user: User, workspace: Path) -> None:
    """The user's own D-Bus daemon (a real one, run by the user; no systemd on it here) checks the
    uid EXTERNAL authentication claims against the socket's peer credentials, which it reads in
    its own user namespace. As root of a user namespace the user made (podman's rootless mode)
    the driver must claim the user's uid, not 0: it is accepted and gets as far as asking for
    systemd, from outside and from inside the namespace."""
    base = ["setpriv", f"--reuid={user.uid}", f"--regid={user.gid}", "--clear-groups"]
    with private_bus(workspace, base) as sock:
        root = Path(__file__).resolve().parent.parent.parent
        env = {"DBUS_SESSION_BUS_ADDRESS": f"unix:path={sock}", "PYTHONPATH": str(root)}
        for userns in ([], ["unshare", "--user", "--map-root-user"]):
            r = user.run([*userns, sys.executable, "-c", CONNECT], env=env)
            assert r.returncode == 0, r.stderr
            assert "cannot reach systemd on the user bus" in r.stdout, r.stdout
            # Past authentication and Hello: the bus answered that nobody provides systemd.
            assert "org.freedesktop.systemd1" in r.stdout and "NameHasNoOwner" in r.stdout, (userns, r.stdout)
