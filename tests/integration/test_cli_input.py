"""CLI bad input (issue 3) and runc's flag shapes (issue 2 point 2).

Bad input must give exit 1, one clear line, no traceback, and create nothing (no state dir,
no cgroup). Good input must be accepted in every place runc accepts it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import OCIRUNTIME, Runtime, assert_clean_error, host_cgroup_dirs

BAD_IDS = {
    "dotdot-slash": "../x",
    "slash": "a/b",
    "empty": "",
    "one-kb": "a" * 1024,
    "dotdot": "..",
    "space": "a b",
    "nul-free-unicode": "caf\u00e9",
}


def root_entries(rt: Runtime) -> list[str]:
    return sorted(p.name for p in rt.root.iterdir()) if rt.root.is_dir() else []


@pytest.mark.parametrize("bad", list(BAD_IDS.values()), ids=list(BAD_IDS))
def test_create_rejects_bad_id(bad: str, oci: Runtime, bundle, tmp_path: Path) -> None:
    b = bundle()
    res = oci.run("create", "--bundle", str(b), bad)
    assert_clean_error(res, "id")
    assert root_entries(oci) == [], "a rejected ID left something under --root"
    # '../x' must not have escaped --root either.
    assert not (oci.root.parent / "x").exists()
    if bad:
        assert host_cgroup_dirs(bad.rsplit("/", 1)[-1]) == []


@pytest.mark.parametrize("command", ["start", "state", "kill", "delete"])
@pytest.mark.parametrize("bad", ["../x", "a/b", "a" * 1024], ids=["dotdot", "slash", "one-kb"])
def test_other_commands_reject_bad_id(command: str, bad: str, oci: Runtime) -> None:
    oci.root.mkdir(parents=True)
    assert_clean_error(oci.run(command, bad))


def test_leading_dash_id_is_not_a_container(oci: Runtime, bundle) -> None:
    """`create -b B -x` reads -x as an unknown flag: a clear error, nothing created."""
    res = oci.run("create", "--bundle", str(bundle()), "-x")
    assert_clean_error(res, "-x")
    assert root_entries(oci) == []


@pytest.mark.parametrize("sig", ["SIGNOPE", "99", "65", "RTMIN+99", "SIG", "KILLL", "9x"])
def test_kill_unknown_signal(sig: str, oci: Runtime, bundle) -> None:
    cid = oci.new_id()
    oci.run("run", "-d", "-b", str(bundle(args=["sleep", "100"])), cid, check=True)
    assert_clean_error(oci.run("kill", cid, sig), "signal")
    assert oci.state(cid)["status"] == "running"


@pytest.mark.parametrize("command", [["list"], ["state", "x"], ["start", "x"], ["kill", "x", "KILL"],
                                     ["delete", "x"], ["create", "-b", "BUNDLE", "x"]],
                         ids=lambda c: c[0])
def test_root_is_a_regular_file(command: list[str], tmp_path: Path, bundle) -> None:
    not_dir = tmp_path / "rootfile"
    not_dir.write_text("i am a file")
    rt = Runtime(OCIRUNTIME, not_dir)
    args = [str(bundle()) if a == "BUNDLE" else a for a in command]
    res = rt.run(*args)
    assert_clean_error(res, str(not_dir))
    assert not_dir.read_text() == "i am a file"
    assert host_cgroup_dirs("x") == []


@pytest.mark.parametrize("argv", [
    ["--bogus", "list"],
    ["create", "--bogus", "-b", "B", "ID"],
    ["delete", "-x", "ID"],
    ["kill", "--force", "ID"],
    ["list", "--all"],
    ["bogus-command"],
    ["--log-format", "xml", "list"],
    ["list", "-f", "yaml"],
    ["create", "--preserve-fds", "-1", "-b", "B", "ID"],
    ["create", "--preserve-fds", "many", "-b", "B", "ID"],
], ids=lambda a: " ".join(a))
def test_unknown_flags_and_bad_values(argv: list[str], oci: Runtime, bundle) -> None:
    b = str(bundle())
    args = [b if a == "B" else oci.new_id() if a == "ID" else a for a in argv]
    res = oci.run(*args)
    assert_clean_error(res)
    assert root_entries(oci) == []


@pytest.mark.parametrize("argv", [
    ["create"], ["create", "-b", "B"], ["run"], ["start"], ["state"], ["kill"], ["delete"],
    ["create", "ID", "-b"], ["--root"], ["create", "ID", "--pid-file"],
    ["start", "ID", "extra"], ["state", "ID", "extra"], ["kill", "ID", "KILL", "extra"],
], ids=lambda a: " ".join(a))
def test_missing_or_extra_arguments(argv: list[str], oci: Runtime, bundle) -> None:
    b = str(bundle())
    args = [b if a == "B" else oci.new_id() if a == "ID" else a for a in argv]
    res = oci.run(*args)
    assert_clean_error(res)
    assert root_entries(oci) == []


def test_no_command_prints_usage_and_fails(oci: Runtime) -> None:
    res = oci.run()
    assert res.returncode != 0
    assert b"usage" in (res.stdout + res.stderr).lower()


# --- accepted shapes ----------------------------------------------------------------------
@pytest.mark.parametrize("order", ["flags-first", "id-first", "mixed"])
def test_flags_before_or_after_id(order: str, oci: Runtime, bundle, tmp_path: Path) -> None:
    b = str(bundle(args=["sleep", "100"]))
    cid = oci.new_id()
    pid_file = tmp_path / "pid"
    args = {
        "flags-first": ["create", "--bundle", b, "--pid-file", str(pid_file), cid],
        "id-first": ["create", cid, "--bundle", b, "--pid-file", str(pid_file)],
        "mixed": ["create", "-b", b, cid, "--pid-file", str(pid_file)],
    }[order]
    oci.run(*args, check=True)
    st = oci.state(cid)
    assert st["status"] == "created"
    assert st["bundle"] == b
    assert pid_file.read_text().strip() == str(st["pid"])
    oci.run("delete", cid, "-f", check=True)   # -f after the ID too
    assert oci.run("state", cid).returncode == 1


def test_equals_form_of_flags(oci: Runtime, bundle) -> None:
    cid = oci.new_id()
    oci.run(f"--root={oci.root}", "create", f"--bundle={bundle(args=['sleep', '100'])}", cid, check=True)
    assert oci.state(cid)["status"] == "created"


def test_kill_all_and_delete_force(oci: Runtime, bundle) -> None:
    cid = oci.new_id()
    oci.run("run", "-d", "-b", str(bundle(args=["sh", "-c", "sleep 100 & sleep 100"])), cid, check=True)
    oci.run("kill", "-a", cid, "KILL", check=True)
    oci.run("delete", "-f", cid, check=True)
    assert oci.run("state", cid).returncode == 1
    assert host_cgroup_dirs(cid) == []


def test_list_formats(oci: Runtime, runc: Runtime, bundle) -> None:
    b = bundle(args=["sleep", "100"])
    ids = {}
    for rt in (oci, runc):
        ids[rt.binary] = [rt.new_id("a"), rt.new_id("b")]
        rt.run("create", "-b", str(b), ids[rt.binary][0], check=True)
        rt.run("run", "-d", "-b", str(b), ids[rt.binary][1], check=True)
    for rt in (oci, runc):
        docs = json.loads(rt.run("list", "--format", "json", check=True).stdout)
        got = {d["id"]: d["status"] for d in docs}
        assert got == {ids[rt.binary][0]: "created", ids[rt.binary][1]: "running"}, rt.binary
        for d in docs:
            assert {"id", "pid", "status", "bundle", "created", "owner"} <= set(d), d
            assert d["owner"] == "root"
        quiet = rt.run("list", "-q", check=True).stdout.decode().split()
        assert sorted(quiet) == sorted(ids[rt.binary]), rt.binary
        table = rt.run("list", check=True).stdout.decode().splitlines()
        assert table[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"], rt.binary
        assert len(table) == 3


def test_list_empty_root_matches_runc(oci: Runtime, runc: Runtime) -> None:
    for flags in (["-f", "json"], ["-q"], []):
        a = oci.run("list", *flags)
        b = runc.run("list", *flags)
        assert (a.returncode, a.stdout.split()) == (b.returncode, b.stdout.split()), flags


def test_version_shape(oci: Runtime) -> None:
    res = oci.run("--version", check=True)
    lines = res.stdout.decode().splitlines()
    # runc: "runc version 1.1.5", "commit: ...", "spec: 1.0.2-dev", ... one "key: value" per line.
    assert re.fullmatch(r"ociruntime version \d+\.\d+\.\d+\S*", lines[0]), lines
    assert "spec: 1.3.0" in lines
    assert all(re.fullmatch(r"[a-z]+: \S.*", ln) for ln in lines[1:]), lines
    assert oci.run("-v", check=True).stdout == res.stdout
