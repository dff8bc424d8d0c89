"""The systemd cgroup driver against the guest's real systemd (cgroup v2, systemd PID 1): the
unit systemd makes for `--systemd-cgroup`, as `systemctl` shows it, each scenario also run with
runc (Debian's 1.1.5) and required to end the same way.

- create: a transient scope named from cgroupsPath "slice:prefix:name", Delegate=yes, the
  container's init in it before `start`, the limits as unit properties and in the cgroup files,
  both surviving `systemctl daemon-reload`;
- exec: the process joins the scope's cgroup (the unit is not started again);
- update: the unit's property and the file change together;
- delete: the unit is gone (`systemctl status` says not found); an OOM-killed container's scope
  goes away by itself; a failed leftover unit of the same name is reset for a new container, an
  active one is refused and left alone;
- podman (`--cgroup-manager systemd`) runs its containers in a scope. containerd's runc v2 shim
  with `SystemdCgroup = true` is tested through its CRI, as kubelet drives it (test_cri.py:
  each container a cri-containerd-<id>.scope in the pod's slice, Delegate=yes, MemoryMax set
  and updated).
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.clients.conftest import (  # noqa: F401 (fixtures used by name)
    RuntimeUnderTest,
    runtime,
    wait_for,
)
from tests.conftest import BundleFactory, Runtime

MIB = 1 << 20
LIMITS = {"memory": {"limit": 64 * MIB}, "pids": {"limit": 64},
          "cpu": {"quota": 50000, "period": 100000, "shares": 512}}
# Every property the driver sets, as `systemctl show` prints it.
SHOWN = ("ActiveState", "Delegate", "Slice", "MemoryMax", "TasksMax", "CPUQuotaPerSecUSec",
         "CPUQuotaPeriodUSec", "CPUWeight", "ControlGroup")


def show(unit: str, *props: str) -> dict[str, str]:
    res = subprocess.run(["systemctl", "show", unit, *(f"--property={p}" for p in props)],
                         capture_output=True, text=True, timeout=30, check=True)
    return dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)


def load_state(unit: str) -> str:
    return show(unit, "LoadState")["LoadState"]


def status_says_not_found(unit: str) -> bool:
    res = subprocess.run(["systemctl", "status", unit], capture_output=True, text=True, timeout=30)
    return res.returncode == 4 and "could not be found" in res.stderr


def cg_file(unit_cgroup: str, name: str) -> str:
    return Path(f"/sys/fs/cgroup{unit_cgroup}/{name}").read_text().strip()


def limits_in_files(cgroup: str) -> dict[str, str]:
    return {f: cg_file(cgroup, f) for f in ("memory.max", "pids.max", "cpu.max", "cpu.weight")}


def cgroup_of(pid: int) -> str:
    return Path(f"/proc/{pid}/cgroup").read_text().strip().removeprefix("0::")


def systemd_config(bundle: BundleFactory, cgroups_path: str, args: list[str],
                   resources: dict | None = None) -> Path:
    def edit(cfg: dict) -> None:
        cfg["linux"]["cgroupsPath"] = cgroups_path
        cfg["linux"]["resources"].update(resources or {})

    return bundle(args, edit=edit)


def names(prefix: str) -> tuple[str, str]:
    """A unique container name, and the scope systemd gets for "system.slice:<prefix>:<name>"."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    return name, f"{prefix}-{name}.scope"


@pytest.fixture(params=["ociruntime", "runc"])
def rt(request: pytest.FixtureRequest, oci: Runtime, runc: Runtime) -> Runtime:
    return oci if request.param == "ociruntime" else runc


def test_scope_limits_reload_update_delete(rt: Runtime, bundle: BundleFactory) -> None:
    cid, unit = names("sdtest")
    b = systemd_config(bundle, f"system.slice:sdtest:{cid}", ["sleep", "600"], LIMITS)
    rt.ids.append(cid)
    rt.run("--systemd-cgroup", "create", "--bundle", str(b), cid, check=True, timeout=120)
    pid = rt.state(cid)["pid"]
    # The init is in the scope while it waits for `start`: nothing of the container ran outside.
    assert cgroup_of(pid) == f"/system.slice/{unit}"
    props = show(unit, *SHOWN)
    assert props["ActiveState"] == "active" and props["Delegate"] == "yes", props
    assert props["Slice"] == "system.slice" and props["ControlGroup"] == f"/system.slice/{unit}"
    assert (props["MemoryMax"], props["TasksMax"]) == (str(64 * MIB), "64"), props
    assert props["CPUQuotaPerSecUSec"] == "500ms", props
    cgroup = props["ControlGroup"]
    files = limits_in_files(cgroup)
    assert files["memory.max"] == str(64 * MIB) and files["pids.max"] == "64"
    assert files["cpu.max"] == "50000 100000", files
    rt.run("start", cid, check=True)
    # exec joins the running scope's cgroup (containerd's shim passes --systemd-cgroup to exec too).
    res = rt.run("--systemd-cgroup", "exec", cid, "cat", "/proc/self/cgroup", check=True, timeout=60)
    assert res.stdout.decode().strip() == f"0::/system.slice/{unit}", res.stdout

    # systemd rewrites every cgroup attribute it manages on a reload: the limits stay.
    subprocess.run(["systemctl", "daemon-reload"], check=True, timeout=120)
    assert limits_in_files(cgroup) == files
    assert show(unit, *SHOWN) == props

    rt.run("update", "--memory", str(128 * MIB), "--pids-limit", "100", cid, check=True, timeout=60)
    after = show(unit, "MemoryMax", "TasksMax")
    assert cg_file(cgroup, "memory.max") == str(128 * MIB) and cg_file(cgroup, "pids.max") == "100"
    assert after == {"MemoryMax": str(128 * MIB), "TasksMax": "100"}, after
    subprocess.run(["systemctl", "daemon-reload"], check=True, timeout=120)
    assert cg_file(cgroup, "memory.max") == str(128 * MIB) and cg_file(cgroup, "pids.max") == "100"

    rt.run("delete", "-f", cid, check=True, timeout=60)
    assert load_state(unit) == "not-found" and status_says_not_found(unit)
    assert not Path(f"/sys/fs/cgroup{cgroup}").exists()


def test_oom_killed_container_scope_goes_away(rt: Runtime, bundle: BundleFactory) -> None:
    """The init is OOM killed under MemoryMax: the container stops, and systemd removes the
    emptied scope by itself (result success, not a failed unit: seen with both runtimes on
    systemd 252); delete still succeeds and the same name makes a new scope."""
    cid, unit = names("sdoom")
    hog = "a=xxxxxxxx; while true; do a=$a$a; done"  # doubles until the OOM kill
    b = systemd_config(bundle, f"system.slice:sdoom:{cid}", ["sh", "-c", hog],
                       {"memory": {"limit": 16 * MIB, "swap": 16 * MIB}})
    rt.ids.append(cid)
    rt.run("--systemd-cgroup", "run", "-d", "--bundle", str(b), cid, check=True, timeout=120)
    assert rt.wait_status(cid, "stopped", timeout=120) == "stopped"
    wait_for("systemd to drop the scope", lambda: load_state(unit) == "not-found", timeout=60,
             interval=0.5)
    rt.run("delete", "-f", cid, check=True, timeout=60)
    assert status_says_not_found(unit)
    rt.run("--systemd-cgroup", "create", "--bundle", str(b), cid, check=True, timeout=120)
    assert show(unit, "ActiveState")["ActiveState"] == "active"
    rt.run("delete", "-f", cid, check=True, timeout=60)
    assert status_says_not_found(unit)


def test_failed_leftover_unit_of_the_same_name(oci: Runtime, bundle: BundleFactory) -> None:
    """A failed unit left by an earlier run (here: a scope made by systemd-run that was OOM
    killed) has the name a new container wants: it is reset and the container gets the unit.
    Not compared with runc: runc 1.1.5 creates the container without any scope then, leaving it
    in runc's own cgroup (seen in this guest: /proc/PID/cgroup "0::/")."""
    rt = oci
    cid, unit = names("sdleft")
    res = subprocess.run(["systemd-run", "--scope", f"--unit={unit}", "-p", "MemoryMax=16M",
                          "-p", "MemorySwapMax=0", "tail", "/dev/zero"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode != 0
    assert show(unit, "ActiveState")["ActiveState"] == "failed"
    b = systemd_config(bundle, f"system.slice:sdleft:{cid}", ["sleep", "600"])
    rt.ids.append(cid)
    rt.run("--systemd-cgroup", "create", "--bundle", str(b), cid, check=True, timeout=120)
    assert cgroup_of(rt.state(cid)["pid"]) == f"/system.slice/{unit}"
    assert show(unit, "ActiveState")["ActiveState"] == "active"
    rt.run("delete", "-f", cid, check=True, timeout=60)
    assert status_says_not_found(unit)


def test_active_unit_of_the_same_name_is_refused(oci: Runtime, bundle: BundleFactory) -> None:
    """An active unit of that name belongs to someone else: create fails in one line and the
    unit and its process are left alone."""
    cid, unit = names("sdbusy")
    other = subprocess.Popen(["systemd-run", "--scope", f"--unit={unit}", "sleep", "600"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for("the other scope", lambda: show(unit, "ActiveState")["ActiveState"] == "active",
                 timeout=60, interval=0.2)
        b = systemd_config(bundle, f"system.slice:sdbusy:{cid}", ["true"])
        oci.ids.append(cid)
        res = oci.run("--systemd-cgroup", "create", "--bundle", str(b), cid, timeout=120)
        err = res.stderr.decode()
        assert res.returncode == 1 and "already exists" in err and "Traceback" not in err, err
        assert show(unit, "ActiveState")["ActiveState"] == "active" and other.poll() is None
        assert oci.status(cid) == "absent"
    finally:
        other.kill()
        other.wait(30)
        subprocess.run(["systemctl", "stop", unit], capture_output=True, timeout=60)


def test_features_say_systemd(oci: Runtime) -> None:
    doc = json.loads(oci.run("features", check=True).stdout)
    assert doc["linux"]["cgroup"]["systemd"] is True


# --- engines ---------------------------------------------------------------------------------

def podman_rootfs(tmp_path: Path, base_rootfs: Path) -> Path:
    import shutil

    rootfs = tmp_path / "podman-rootfs"
    shutil.copytree(base_rootfs, rootfs, symlinks=True)
    return rootfs


def test_podman_systemd_cgroup_manager(runtime: RuntimeUnderTest, base_rootfs: Path,  # noqa: F811
                                       tmp_path: Path) -> None:
    rootfs = podman_rootfs(tmp_path, base_rootfs)
    base = Path(f"/var/tmp/pm-{uuid.uuid4().hex[:8]}")
    pm = ["podman", "--root", str(base / "root"), "--runroot", str(base / "run"),
          "--cgroup-manager", "systemd", "--events-backend", "file"]
    name = f"sdpm-{uuid.uuid4().hex[:8]}"
    try:
        res = subprocess.run([*pm, "run", "-d", "--name", name, "--network", "none",
                              "--runtime", runtime.binary, "--memory", "64m", "--pids-limit", "50",
                              "--rootfs", str(rootfs), "sleep", "600"],
                             capture_output=True, text=True, timeout=180)
        assert res.returncode == 0, res.stderr
        ctr_id = res.stdout.strip()
        pid = int(subprocess.run([*pm, "inspect", "--format", "{{.State.Pid}}", name],
                                 capture_output=True, text=True, timeout=60, check=True).stdout)
        unit = f"libpod-{ctr_id}.scope"
        assert cgroup_of(pid) == f"/machine.slice/{unit}"
        props = show(unit, "ActiveState", "Delegate", "MemoryMax", "TasksMax")
        assert props == {"ActiveState": "active", "Delegate": "yes", "MemoryMax": str(64 * MIB),
                         "TasksMax": "50"}, props
        assert cg_file(f"/machine.slice/{unit}", "memory.max") == str(64 * MIB)
        res = subprocess.run([*pm, "rm", "-f", "-t", "0", name], capture_output=True, text=True,
                             timeout=120)
        assert res.returncode == 0, res.stderr
        assert status_says_not_found(unit)
    finally:
        subprocess.run([*pm, "rm", "-a", "-f", "-t", "0"], capture_output=True, timeout=120)
        subprocess.run([*pm, "system", "reset", "-f"], capture_output=True, timeout=120)
        subprocess.run(["rm", "-rf", str(base)], capture_output=True, timeout=120)
