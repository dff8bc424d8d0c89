"""The container process (issue 2 point 7): what the user program sees from inside.

Each test runs busybox in the foreground (`run`, stdio passed through), lets it print what it
sees, and compares with the config and, where runc implements the same thing, with runc's output
on the same bundle."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import Runtime


def inside(rt: Runtime, b: Path, *, input: bytes | None = None, extra: tuple[str, ...] = ()) -> str:
    res = rt.run("run", "-b", str(b), *extra, rt.new_id("pr"), input=input)
    assert res.returncode == 0, f"{rt.binary}: exit {res.returncode}: {res.stderr.decode()}"
    return res.stdout.decode()


def status_fields(text: str) -> dict[str, str]:
    return {k: v.strip() for k, _, v in (ln.partition(":") for ln in text.splitlines()) if v}


def cap_mask(names: list[str]) -> int:
    numbers = {"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_FOWNER": 3, "CAP_KILL": 5, "CAP_SETGID": 6,
               "CAP_SETUID": 7, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_RAW": 13, "CAP_SYS_CHROOT": 18,
               "CAP_AUDIT_WRITE": 29}
    mask = 0
    for n in names:
        mask |= 1 << numbers[n]
    return mask


def test_args_are_found_through_the_containers_path(oci: Runtime, runc: Runtime, bundle) -> None:
    def path_only_bin(c: dict) -> None:
        c["process"]["env"] = ["PATH=/bin"]
    b = bundle(args=["echo", "found via PATH"], edit=path_only_bin)
    assert inside(oci, b) == inside(runc, b) == "found via PATH\n"


def test_args_not_in_the_containers_path_fail_at_create(oci: Runtime, bundle) -> None:
    """The host's PATH (which has /bin) must not be used: the container's PATH has no /bin."""
    def no_bin(c: dict) -> None:
        c["process"]["env"] = ["PATH=/usr/local/bin"]
    b = bundle(args=["echo", "hi"], edit=no_bin)
    cid = oci.new_id()
    res = oci.run("create", "-b", str(b), cid)
    assert res.returncode == 1
    assert b"echo" in res.stderr
    assert not (oci.root / cid).exists()


def test_env_is_exactly_the_configs_like_runc(oci: Runtime, runc: Runtime, bundle) -> None:
    def env(c: dict) -> None:
        c["process"]["env"] = ["PATH=/bin", "A=1", "B=two words", "EMPTY="]
    b = bundle(args=["env"], edit=env)
    got = sorted(inside(oci, b).splitlines())
    assert {"A=1", "B=two words", "EMPTY=", "PATH=/bin"} <= set(got)
    assert not any(ln.startswith("PYTEST_CURRENT_TEST=") for ln in got), "host env leaked in"
    # runc adds HOME from the container's /etc/passwd when the config has none (programs rely on
    # it); everything else comes from the config.
    assert got == sorted(inside(runc, b).splitlines())


@pytest.mark.parametrize("readonly", [True, False], ids=["ro-root", "rw-root"])
def test_cwd_is_used_and_created_if_missing(readonly: bool, oci: Runtime, runc: Runtime, bundle) -> None:
    def cwd(c: dict) -> None:
        c["process"]["cwd"] = "/work/dir/deep"
        c["root"]["readonly"] = readonly
    for rt in (runc, oci):
        b = bundle(args=["pwd"], edit=cwd)
        assert inside(rt, b) == "/work/dir/deep\n", rt.binary


def test_user_ids_groups_and_umask(oci: Runtime, runc: Runtime, bundle) -> None:
    def user(c: dict) -> None:
        c["process"]["user"] = {"uid": 1000, "gid": 1001, "additionalGids": [5, 2000], "umask": 0o027}
    b = bundle(args=["cat", "/proc/self/status"], edit=user)
    st = status_fields(inside(oci, b))
    assert st["Uid"].split() == ["1000"] * 4
    assert st["Gid"].split() == ["1001"] * 4
    assert sorted(st["Groups"].split(), key=int) == ["5", "2000"] or \
        sorted(st["Groups"].split(), key=int) == ["5", "1001", "2000"]
    assert st["Umask"] == "0027"
    ref = status_fields(inside(runc, b))
    assert sorted(st["Groups"].split()) == sorted(ref["Groups"].split())


def test_rlimits_are_applied(oci: Runtime, bundle) -> None:
    # Within this host's hard limits: CAP_SYS_RESOURCE is not in our bounding set, so raising a
    # hard limit above the host's would fail for a reason unrelated to the runtime.
    def limits(c: dict) -> None:
        c["process"]["rlimits"] = [
            {"type": "RLIMIT_NOFILE", "soft": 300, "hard": 600},
            {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
            {"type": "RLIMIT_NPROC", "soft": 77, "hard": 88},
            {"type": "RLIMIT_MSGQUEUE", "soft": 4096, "hard": 8192},
            {"type": "RLIMIT_LOCKS", "soft": 20, "hard": 30},  # not in Python's `resource`
            {"type": "RLIMIT_RTTIME", "soft": 1000, "hard": 2**64 - 1},  # RLIM_INFINITY
        ]
    out = inside(oci, bundle(args=["cat", "/proc/self/limits"], edit=limits))
    rows = {m.group(1): (m.group(2), m.group(3))
            for m in re.finditer(r"^Max (.+?)\s{2,}(\S+)\s+(\S+)", out, re.M)}
    assert rows["open files"] == ("300", "600")
    assert rows["core file size"] == ("0", "0")
    assert rows["processes"] == ("77", "88")
    assert rows["msgqueue size"] == ("4096", "8192")
    assert rows["file locks"] == ("20", "30")
    assert rows["realtime timeout"] == ("1000", "unlimited")


def test_rlimit_above_the_hard_limit_fails_clearly(oci: Runtime, bundle) -> None:
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]

    def too_high(c: dict) -> None:
        c["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": hard + 1, "hard": hard + 1}]
    cid = oci.new_id()
    res = oci.run("create", "-b", str(bundle(args=["true"], edit=too_high)), cid)
    assert res.returncode == 1
    assert b"RLIMIT_NOFILE" in res.stderr and b"Traceback" not in res.stderr
    assert not (oci.root / cid).exists()


def test_capability_sets_match_config_and_runc(oci: Runtime, runc: Runtime, bundle) -> None:
    caps = {
        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SETUID"],
        "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"],
        "effective": ["CAP_KILL"],
        "inheritable": ["CAP_CHOWN", "CAP_NET_RAW"],
        "ambient": ["CAP_CHOWN"],
    }

    def set_caps(c: dict) -> None:
        c["process"]["capabilities"] = caps
    b = bundle(args=["cat", "/proc/self/status"], edit=set_caps)
    st = status_fields(inside(oci, b))
    got = {k: int(st[k], 16) for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}
    # uid 0 execve: permitted/effective are recomputed from bounding ∩ (inheritable | ...);
    # the observable contract is runc's, so compare with it and check the sets that survive exec.
    ref = status_fields(inside(runc, b))
    assert got == {k: int(ref[k], 16) for k in got}
    assert got["CapBnd"] == cap_mask(caps["bounding"])
    assert got["CapInh"] == cap_mask(caps["inheritable"])
    assert got["CapAmb"] == cap_mask(caps["ambient"])


def test_capabilities_of_a_non_root_user(oci: Runtime, runc: Runtime, bundle) -> None:
    """For uid != 0 only ambient capabilities survive execve into effective."""
    def set_caps(c: dict) -> None:
        c["process"]["user"] = {"uid": 1000, "gid": 1000}
        c["process"]["capabilities"] = {
            "bounding": ["CAP_CHOWN", "CAP_KILL"], "permitted": ["CAP_CHOWN", "CAP_KILL"],
            "effective": ["CAP_CHOWN", "CAP_KILL"], "inheritable": ["CAP_CHOWN"], "ambient": ["CAP_CHOWN"]}
    b = bundle(args=["cat", "/proc/self/status"], edit=set_caps)
    st = status_fields(inside(oci, b))
    assert int(st["CapEff"], 16) == cap_mask(["CAP_CHOWN"])
    assert int(st["CapAmb"], 16) == cap_mask(["CAP_CHOWN"])
    assert int(st["CapBnd"], 16) == cap_mask(["CAP_CHOWN", "CAP_KILL"])
    ref = status_fields(inside(runc, b))
    assert {k: st[k] for k in st if k.startswith("Cap")} == {k: ref[k] for k in ref if k.startswith("Cap")}


@pytest.mark.parametrize("nnp", [True, False])
def test_no_new_privileges(nnp: bool, oci: Runtime, bundle) -> None:
    b = bundle(args=["cat", "/proc/self/status"], edit=lambda c: c["process"].update(noNewPrivileges=nnp))
    assert status_fields(inside(oci, b))["NoNewPrivs"] == ("1" if nnp else "0")


def test_oom_score_adj(oci: Runtime, bundle) -> None:
    b = bundle(args=["cat", "/proc/self/oom_score_adj"], edit=lambda c: c["process"].update(oomScoreAdj=432))
    assert inside(oci, b).strip() == "432"


def _run_with_fds(rt: Runtime, b: Path, cid: str, preserve: int, tmp: Path) -> subprocess.CompletedProcess:
    """Start the runtime with fd 3 and fd 4 open (via the shell: exact fd numbers matter)."""
    (tmp / "fd3").write_text("content-of-fd3")
    (tmp / "fd4").write_text("content-of-fd4")
    cmd = " ".join(f"'{a}'" for a in rt.cmd("run", "--preserve-fds", str(preserve), "-b", str(b), cid))
    return subprocess.run(["sh", "-c", f"exec {cmd} 3<{tmp}/fd3 4<{tmp}/fd4"], capture_output=True,
                          timeout=30)


# Builtins only: a pipeline would open pipe fds in the shell and muddle the listing.
LIST_FDS = "for fd in 0 1 2 3 4 5 6 7 8 9 10 11 12; do [ -e /proc/$$/fd/$fd ] && echo -n \"$fd \"; done; true"


def test_preserve_fds(oci: Runtime, runc: Runtime, bundle, tmp_path: Path) -> None:
    b = bundle(args=["sh", "-c", f"cat <&3; echo; {LIST_FDS}"])
    outs = {}
    for rt in (runc, oci):
        res = _run_with_fds(rt, b, rt.new_id("fd"), 1, tmp_path)
        assert res.returncode == 0, (rt.binary, res.stderr)
        outs[rt.binary] = res.stdout.decode()
    lines = outs[oci.binary].splitlines()
    assert lines[0] == "content-of-fd3"
    assert lines[1].split() == ["0", "1", "2", "3"], "fd 4 was not preserved and must be closed"
    assert outs[oci.binary] == outs[runc.binary]


def test_without_preserve_fds_only_stdio_is_open(oci: Runtime, bundle, tmp_path: Path) -> None:
    b = bundle(args=["sh", "-c", LIST_FDS])
    res = _run_with_fds(oci, b, oci.new_id("fd"), 0, tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.decode().split() == ["0", "1", "2"]


def test_pid_file_written_atomically(oci: Runtime, bundle, tmp_path: Path) -> None:
    piddir = tmp_path / "pids"
    piddir.mkdir()
    cid = oci.new_id()
    oci.run("create", "-b", str(bundle(args=["sleep", "100"])), "--pid-file", str(piddir / "c.pid"),
            cid, check=True)
    assert os.listdir(piddir) == ["c.pid"], "a temporary file was left next to the pid file"
    text = (piddir / "c.pid").read_text()
    assert text == str(oci.state(cid)["pid"]), repr(text)  # runc writes the bare number


def test_pid_file_relative_to_the_callers_cwd(oci: Runtime, bundle, tmp_path: Path) -> None:
    cid = oci.new_id()
    b = bundle(args=["sleep", "100"])
    res = subprocess.run(oci.cmd("create", "-b", str(b), "--pid-file", "rel.pid", cid), cwd=tmp_path,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL,  # a pipe would stay open in the container
                         timeout=30)
    assert res.returncode == 0
    assert (tmp_path / "rel.pid").read_text() == str(oci.state(cid)["pid"])


def test_stdio_is_passed_through(oci: Runtime, runc: Runtime, bundle) -> None:
    b = bundle(args=["sh", "-c", "echo out; echo err >&2; cat; exit 3"])
    for rt in (runc, oci):
        res = rt.run("run", "-b", str(b), rt.new_id("io"), input=b"from-stdin\n")
        assert res.returncode == 3, rt.binary
        assert res.stdout == b"out\nfrom-stdin\n", rt.binary
        assert res.stderr == b"err\n", rt.binary


def test_detached_container_writes_to_the_callers_stdio(oci: Runtime, bundle, tmp_path: Path) -> None:
    """create's stdout/stderr are the container's, even though create itself has exited."""
    out = tmp_path / "out"
    cid = oci.new_id()
    b = bundle(args=["sh", "-c", "echo late-output; echo late-err >&2"])
    with open(out, "wb") as f:
        subprocess.run(oci.cmd("create", "-b", str(b), cid), stdout=f, stderr=f,
                       stdin=subprocess.DEVNULL, check=True, timeout=30)
    oci.run("start", cid, check=True)
    deadline = time.monotonic() + 5
    while b"late-err" not in out.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sorted(out.read_bytes().splitlines()) == [b"late-err", b"late-output"]
