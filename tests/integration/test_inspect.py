"""`ociruntime inspect ID`: each field checked against what the test set up, for running,
created, paused and stopped containers, read by the runtime from the kernel; the differences
from config.json it reports; bad IDs; and that it stays lean (no config model, no schema)."""

from __future__ import annotations

import json
import os
import subprocess
import time

from tests.conftest import assert_clean_error, assert_json_error_log
from tests.integration.test_namespaces import USERNS_MAPS, userns_bundle  # noqa: F401  (a fixture)

MIB = 1024 * 1024
ALL_SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")


def inspect_json(oci, cid: str, flag: str = "-f") -> dict:
    res = oci.run("inspect", flag, "json", cid, check=True)
    return json.loads(res.stdout)


def inspect_text(oci, cid: str) -> str:
    return oci.run("inspect", cid, check=True).stdout.decode()


def wait_children(pid: int, count: int, timeout: float = 5) -> None:
    """Until the process has `count` children (the test's container forked them)."""
    deadline = time.monotonic() + timeout
    while True:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            if len(f.read().split()) >= count or time.monotonic() > deadline:
                return
        time.sleep(0.02)


def hardened(cfg: dict) -> None:
    """What the running-container test sets up and then reads back."""
    linux = cfg["linux"]
    linux["resources"] = {"memory": {"limit": 64 * MIB}, "pids": {"limit": 20}}
    caps = cfg["process"]["capabilities"]
    for name in ("bounding", "effective", "permitted"):
        caps[name] = ["CAP_AUDIT_WRITE", "CAP_NET_BIND_SERVICE"]  # CAP_KILL dropped
    cfg["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 777, "hard": 778}]
    linux["maskedPaths"] = [*linux.get("maskedPaths", []), "/secret-dir", "/secret-file"]
    linux["readonlyPaths"] = [*linux.get("readonlyPaths", []), "/ro-dir"]
    linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                        "syscalls": [{"names": ["ptrace"], "action": "SCMP_ACT_ERRNO"}]}
    cfg["hostname"] = "inspected"


def test_running_container_every_section(oci, bundle) -> None:
    b = bundle(["sh", "-c", "sleep 1000 & wait"], edit=hardened)
    (b / "rootfs" / "secret-dir").mkdir()
    (b / "rootfs" / "secret-dir" / "key").write_text("secret\n")
    (b / "rootfs" / "secret-file").write_text("secret\n")
    (b / "rootfs" / "ro-dir").mkdir()
    cid = oci.new_id("insp")
    oci.run("run", "-d", "-b", str(b), cid, check=True)
    pid = oci.state(cid)["pid"]
    wait_children(pid, 1)
    rec = inspect_json(oci, cid)
    assert inspect_json(oci, cid, "--format").keys() == rec.keys()
    assert (rec["id"], rec["status"], rec["pid"]) == (cid, "running", pid)

    # Namespaces: the container's own, with the kernel's inodes; the nsenter line works.
    ns = {e["type"]: e for e in rec["namespaces"]}
    link = {"mount": "mnt", "network": "net"}
    for t in ("mount", "uts", "ipc", "network", "pid"):
        assert ns[t]["shared_with"] is None, ns[t]
        assert ns[t]["config"] == "new"
        assert ns[t]["inode"] == os.stat(f"/proc/{pid}/ns/{link.get(t, t)}").st_ino
    assert ns["user"]["shared_with"] in ("host", "caller")
    assert rec["nsenter"] == f"nsenter --target {pid} --mount --uts --ipc --net --pid"
    entered = subprocess.run([*rec["nsenter"].split(), "hostname"], capture_output=True, timeout=10)
    assert entered.stdout == b"inspected\n", entered.stderr

    # Users: no user namespace: the identity mapping, root inside and out.
    users = rec["users"]
    assert users["uid_map"] == [{"container_id": 0, "host_id": 0, "size": 4294967295}]
    assert (users["container"]["uid"], users["host"]["uid"]) == (0, 0)

    # cgroup: the limits set, usage of the two processes, not frozen.
    cg = rec["cgroup"]
    v2 = cg["version"] == 2
    assert cg["limits"]["memory.max" if v2 else "memory.limit_in_bytes"] == str(64 * MIB)
    assert cg["limits"]["pids.max"] == "20"
    assert cg["usage"]["pids"] == 2
    assert 0 < cg["usage"]["memory"] < 64 * MIB
    assert cg["freezer"] == "THAWED"
    with open(f"/proc/{pid}/cgroup") as f:
        memory_line = next(ln for ln in f.read().splitlines() if ln.split(":")[1] in ("memory", ""))
    assert any(d.endswith(memory_line.split(":", 2)[2]) for d in cg["paths"].values())

    # Filesystem: read-only root, the masks (a directory, a file) and the read-only path.
    fs = rec["filesystem"]
    assert fs["rootfs"]["readonly"] is True
    assert fs["rootfs"]["path"] == str(b / "rootfs")
    mounts = {m["target"]: m for m in fs["mounts"]}
    assert mounts["/proc"]["type"] == "proc"
    assert mounts["/secret-dir"]["masked"] == "tmpfs"
    assert mounts["/secret-file"]["masked"] == "null"
    assert {"/secret-dir", "/secret-file"} <= set(fs["masked_paths"])
    assert "/ro-dir" in fs["readonly_paths"] and "/ro-dir" not in fs["masked_paths"]
    assert "/proc" not in fs["masked_paths"] and "/dev/null" not in fs["masked_paths"]

    # Security: CAP_KILL gone from every set, the filter, no_new_privs, the rlimit.
    sec = rec["security"]
    assert sec["capabilities"]["bounding"] == ["CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"]
    assert all("CAP_KILL" not in sec["capabilities"][s] for s in ALL_SETS)
    assert sec["no_new_privs"] is True
    assert sec["seccomp"]["mode"] == "filter" and sec["seccomp"]["filters"] >= 1
    assert sec["rlimits"]["RLIMIT_NOFILE"] | {"baseline": None} == {"soft": 777, "hard": 778, "baseline": None}

    # Processes: the init (pid 1 inside) and its child, with their command lines.
    procs = rec["processes"]
    assert [(p["pid_inside"], p["depth"]) for p in procs] == [(1, 0), (2, 1)]
    assert procs[0]["pid"] == pid and procs[1]["command"] == ["sleep", "1000"]

    # Everything asked was applied: nothing to report.
    assert rec["differences"] == []

    text = inspect_text(oci, cid)
    assert f"container {cid}: running, pid {pid}" in text
    assert "limits   memory" in text and "pids.max=20" in text
    assert "/secret-file [masked: null]" in text
    assert "bounding     net_bind_service audit_write" in text
    assert f"enter: nsenter --target {pid} --mount" in text
    assert "differences from config.json\n  none found" in text


def test_user_namespace_joined_namespace_and_differences(oci, bundle, userns_bundle) -> None:  # noqa: F811
    """A user namespace mapping and a non-root user: the ids inside and out. Capabilities asked
    for a non-root user without ambient ones are gone after execve: a difference to report. A
    network namespace joined by path: whose it is."""
    host = oci.new_id("owner")
    oci.run("run", "-d", "-b", str(bundle(["sleep", "1000"])), host, check=True)
    owner_pid = oci.state(host)["pid"]
    netns = f"/proc/{owner_pid}/ns/net"

    def edit(cfg: dict) -> None:
        linux = cfg["linux"]
        linux["namespaces"] = [n for n in linux["namespaces"] if n["type"] != "network"]
        linux["namespaces"] += [{"type": "network", "path": netns}]
        cfg["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [10]}
        cfg["root"]["readonly"] = False

    cid = oci.new_id("guest")
    oci.run("run", "-d", "-b", str(bundle(["sleep", "1001"], edit=edit)), cid, check=True)
    rec = inspect_json(oci, cid)
    net = next(e for e in rec["namespaces"] if e["type"] == "network")
    assert net["inode"] == os.stat(netns).st_ino
    assert net["config"] == f"joined {netns}"
    assert net["shared_with"] is None
    assert {"pid": owner_pid, "command": "sleep"} in net["also_in"]
    assert "--net" in rec["nsenter"].split()
    assert rec["users"]["container"] == {"uid": 1000, "gid": 1000, "groups": [10]}
    assert rec["filesystem"]["rootfs"]["readonly"] is False
    assert rec["security"]["capabilities"]["effective"] == []
    diffs = rec["differences"]
    assert any(d.startswith("process.capabilities.effective: asked but absent: CAP_AUDIT_WRITE, CAP_KILL, "
                            "CAP_NET_BIND_SERVICE (execve clears them") for d in diffs), diffs
    assert any(d.startswith("process.capabilities.permitted: asked but absent") for d in diffs), diffs
    assert len(diffs) == 2, diffs
    text = inspect_text(oci, cid)
    assert f"joined {netns} (also: pid {owner_pid} sleep" in text
    assert "  - process.capabilities.effective: asked but absent" in text

    userns = oci.new_id("userns")

    def mapped(cfg: dict) -> None:
        cfg["linux"]["namespaces"].append({"type": "user"})
        cfg["linux"].update(USERNS_MAPS)
        cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
        cfg["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [10]}
        # cgroupfs cannot be mounted from a user namespace without a cgroup namespace.
        cfg["mounts"] = [m for m in cfg["mounts"] if m["type"] != "cgroup"]

    oci.run("run", "-d", "-b", str(userns_bundle(["sleep", "1002"], mapped)), userns, check=True)
    rec = inspect_json(oci, userns)
    users = rec["users"]
    assert users["uid_map"] == [{"container_id": 0, "host_id": 100000, "size": 65536}]
    assert users["gid_map"] == [{"container_id": 0, "host_id": 200000, "size": 65536}]
    assert users["container"] == {"uid": 1000, "gid": 1000, "groups": [10]}
    assert (users["host"]["uid"], users["host"]["gid"], users["host"]["groups"]) == (101000, 201000, [200010])
    user_ns = next(e for e in rec["namespaces"] if e["type"] == "user")
    assert user_ns["shared_with"] is None and "--user" in rec["nsenter"].split()
    assert "uid      1000 -> 101000" in inspect_text(oci, userns)


def test_created_paused_and_stopped(oci, bundle) -> None:
    def limited(cfg: dict) -> None:
        cfg["linux"]["resources"] = {"memory": {"limit": 48 * MIB}}

    cid = oci.new_id("states")
    oci.run("create", "-b", str(bundle(["sleep", "1000"], edit=limited)), cid, check=True)
    rec = inspect_json(oci, cid)
    assert rec["status"] == "created"
    assert any(n.startswith(f"created: pid {rec['pid']} is the runtime's init waiting for `start`")
               for n in rec["notes"])
    assert "sleep" not in rec["processes"][0]["command"]  # not exec'd yet
    assert rec["differences"] == []

    oci.run("start", cid, check=True)
    oci.run("pause", cid, check=True)
    rec = inspect_json(oci, cid)
    assert (rec["status"], rec["cgroup"]["freezer"]) == ("paused", "FROZEN")
    assert rec["processes"][0]["command"] == ["sleep", "1000"]  # read while frozen
    assert "freezer  FROZEN" in inspect_text(oci, cid)
    oci.run("resume", cid, check=True)
    assert inspect_json(oci, cid)["cgroup"]["freezer"] == "THAWED"
    # The cgroup changed behind the config's back (update): the limit now differs from it.
    oci.run("update", "--memory", "32m", cid, check=True)
    rec = inspect_json(oci, cid)
    name = "memory.max" if rec["cgroup"]["version"] == 2 else "memory.limit_in_bytes"
    assert rec["differences"] == [f"linux.resources.memory.limit: asked {48 * MIB}, the cgroup has "
                                  f"{name} '{32 * MIB}'"]

    oci.run("kill", cid, "KILL", check=True)
    assert oci.wait_status(cid, "stopped") == "stopped"
    rec = inspect_json(oci, cid)
    assert (rec["status"], rec["pid"], rec["processes"]) == ("stopped", 0, [])
    assert "namespaces" not in rec and "security" not in rec
    assert any("process has exited" in n for n in rec["notes"])
    cg = rec["cgroup"]
    assert cg["exists"] is True  # until delete: the limit and the peak usage can still be read
    assert cg["limits"]["memory.max" if cg["version"] == 2 else "memory.limit_in_bytes"] == str(32 * MIB)
    assert cg["usage"]["memory_peak"] > 0
    text = inspect_text(oci, cid)
    assert text.startswith(f"container {cid}: stopped\n")
    assert "note: the container's process has exited" in text

    oci.run("delete", cid, check=True)
    assert_clean_error(oci.run("inspect", cid), "does not exist", cid)


def test_bad_ids_and_arguments(oci, tmp_path) -> None:
    assert_clean_error(oci.run("inspect", "no-such-container"), "container", "does not exist")
    log = tmp_path / "log.json"
    res = oci.run("inspect", "no-such-container", log_json=log)
    assert res.returncode == 1
    assert "does not exist" in assert_json_error_log(log)["msg"]
    assert_clean_error(oci.run("inspect", "../etc"), "invalid container ID")
    assert_clean_error(oci.run("inspect"), "requires a container ID")
    assert_clean_error(oci.run("inspect", "-f", "yaml", "x"), "invalid format", "yaml")
    assert_clean_error(oci.run("inspect", "a", "b"), "unexpected arguments")


def test_inspect_loads_neither_the_config_model_nor_the_schema(oci, bundle) -> None:
    cid = oci.new_id("lean")
    oci.run("run", "-d", "-b", str(bundle(["sleep", "1000"])), cid, check=True)
    res = subprocess.run(["/opt/ociruntime/bin/python", "-X", "importtime", oci.binary, "--root", str(oci.root),
                          "inspect", cid], capture_output=True, timeout=30)
    assert res.returncode == 0, res.stderr
    modules = {ln.rsplit("|", 1)[-1].strip() for ln in res.stderr.decode().splitlines() if "|" in ln}
    assert "ociruntime.inspect" in modules
    assert not modules & {"ociruntime.config", "ociruntime.schema", "ociruntime._validators",
                          "ociruntime.semantics", "jsonschema", "json"}, sorted(modules)
    # And the other commands do not import it.
    res = subprocess.run(["/opt/ociruntime/bin/python", "-X", "importtime", oci.binary, "--root", str(oci.root),
                          "state", cid], capture_output=True, timeout=30)
    assert "ociruntime.inspect" not in res.stderr.decode()


def test_a_config_copy_that_is_not_a_file_is_a_note_not_a_hang(oci, bundle) -> None:
    """The state directory's config.json replaced by a FIFO: inspect reads it non-blocking
    through the directory's fd and says so in a note; exec refuses it in one line."""
    cid = oci.new_id("fifo")
    oci.run("run", "-d", "-b", str(bundle(["sleep", "1000"])), cid, check=True)
    copy = oci.root / cid / "config.json"
    copy.unlink()
    os.mkfifo(copy)
    doc = json.loads(oci.run("inspect", "-f", "json", cid, check=True, timeout=10).stdout)
    assert any(f"{copy} is not a regular file" in note for note in doc["notes"]), doc["notes"]
    assert_clean_error(oci.run("exec", cid, "true", timeout=10), str(copy), "not a regular file")
    oci.run("delete", "-f", cid, check=True)
