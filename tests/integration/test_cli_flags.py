"""runc flags that callers pass and expect honoured (issue 10 point 4), compared with runc."""

from __future__ import annotations

from tests.conftest import Runtime


def test_ps_passes_its_arguments_to_ps(oci: Runtime, runc: Runtime, bundle) -> None:
    """`ps ID -o pid,comm`: the options after the ID are ps(1)'s, as with runc."""
    outputs = []
    for rt in (oci, runc):
        cid = rt.new_id()
        rt.run("run", "-d", "-b", str(bundle(["sleep", "1000"])), cid, check=True)
        res = rt.run("ps", cid, "-o", "pid,comm", check=True)
        lines = res.stdout.decode().split("\n")
        assert lines[0].split() == ["PID", "COMMAND"], res.stdout
        outputs.append([ln.split()[1] for ln in lines[1:] if ln.strip()])
    assert outputs[0] == outputs[1] == ["sleep"]


def test_error_wording_that_callers_match(oci: Runtime, bundle, tmp_path) -> None:
    """containerd's shim (checkKillError) and podman match runc's words in the error: "container
    not running", "does not exist", "already exists". Each is in our message and the JSON log."""
    cid = oci.new_id()
    b = bundle(["true"])
    oci.run("create", "-b", str(b), cid, check=True)
    oci.run("start", cid, check=True)
    assert oci.wait_status(cid, "stopped") == "stopped"
    for args, phrase in ((["kill", cid, "KILL"], b"container not running"),
                         (["exec", cid, "true"], b"container not running"),
                         (["state", "no-such-id"], b"does not exist"),
                         (["kill", "no-such-id"], b"does not exist"),
                         (["create", "-b", str(b), cid], b"already exists")):
        log = tmp_path / f"log-{args[0]}.json"
        res = oci.run(*args, log_json=log)
        assert res.returncode == 1 and phrase in res.stderr, (args, res.stderr)
        assert phrase in log.read_bytes(), (args, log.read_bytes())


def test_run_keep_leaves_the_stopped_container(oci: Runtime, runc: Runtime, bundle) -> None:
    b = bundle(["sh", "-c", "exit 3"])
    for rt in (oci, runc):
        cid = rt.new_id()
        assert rt.run("run", "--keep", "-b", str(b), cid).returncode == 3
        assert rt.state(cid)["status"] == "stopped"
        rt.run("delete", cid, check=True)
        assert rt.status(cid) == "absent"
