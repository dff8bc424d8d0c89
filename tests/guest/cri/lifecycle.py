"""Kubernetes' pod lifecycle through the CRI, the calls kubelet makes for a one-container pod,
each checked where a user (or kubelet) would see it: the CRI's answers, the runtime's own
`state`/`list` under the shim's root, the container's cgroup, its CRI log file."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

from tests.clients.conftest import memory_limit, out, run, wait_for
from tests.guest.cri.containerd import BUSYBOX_IMAGE, CriContainerd

MiB = 1 << 20
# The container greets on stdout (its CRI log) with a variable from the CRI's envs, then waits;
# SIGTERM ends it with status 0, so a StopContainer that delivers it returns long before the
# grace period is over.
CONTAINER_SCRIPT = "trap 'exit 0' TERM; echo started-$GREETING; while :; do sleep 86400 & wait $!; done"
STOP_GRACE = 30  # seconds; the stop must take far less


def leftover_cgroups(*ids: str) -> list[str]:
    """Cgroup directories of these containers, in any hierarchy and for either driver
    (cgroupfs: <parent>/<id>; systemd: cri-containerd-<id>.scope)."""
    names = set(ids) | {f"cri-containerd-{i}.scope" for i in ids}
    found = []
    for dirpath, dirnames, _ in os.walk("/sys/fs/cgroup"):
        found += [f"{dirpath}/{d}" for d in dirnames if d in names]
    return found


def unit_properties(unit: str) -> dict[str, str]:
    """What systemd says of the container's unit (the systemd cgroup driver)."""
    res = run(["systemctl", "show", unit, "--property=ActiveState,Delegate,Slice,MemoryMax"])
    assert res.returncode == 0, res
    return dict(line.split("=", 1) for line in out(res).splitlines() if "=" in line)


def pod_config(ctd: CriContainerd, name: str, uid: str) -> dict:
    """PodSandboxConfig as kubelet sends it for a hostNetwork pod: the node's network (no CNI
    here), a PID namespace per container (kubelet's default), the pod's IPC namespace."""
    ns = {"network": "NODE", "pid": "CONTAINER", "ipc": "POD"}
    return {
        "metadata": {"name": name, "uid": uid, "namespace": "default", "attempt": 0},
        "log_directory": str(ctd.base / "pods" / f"default_{name}_{uid}"),
        "labels": {"io.kubernetes.pod.name": name},
        "linux": {"cgroup_parent": ctd.pod_cgroup_parent(uid),
                  "security_context": {"namespace_options": ns}},
    }


def container_config(ctd: CriContainerd) -> dict:
    return {
        "metadata": {"name": "busybox", "attempt": 0},
        "image": {"image": BUSYBOX_IMAGE},
        "command": ["/bin/sh", "-c", CONTAINER_SCRIPT],
        "envs": [{"key": "GREETING", "value": "cri"}],
        "log_path": "busybox/0.log",
        "linux": {
            "resources": {"memory_limit_in_bytes": 64 * MiB, "cpu_shares": 256},
            "security_context": {"namespace_options": {"network": "NODE", "pid": "CONTAINER", "ipc": "POD"}},
        },
    }


def container_state(ctd: CriContainerd, cid: str):
    return ctd.cri.call("ContainerStatus", {"container_id": cid}).status


def check_pod_lifecycle(ctd: CriContainerd, handler: str) -> None:
    """RunPodSandbox, CreateContainer, StartContainer, ExecSync, ContainerStats,
    UpdateContainerResources, StopContainer, RemoveContainer, StopPodSandbox, RemovePodSandbox
    with runtime handler `handler`; afterwards neither the runtime nor the cgroup tree holds
    anything of the pod."""
    pb = ctd.cri.pb
    name = f"cri-{handler}-{uuid.uuid4().hex[:6]}"
    uid = str(uuid.uuid4())
    pod = pod_config(ctd, name, uid)
    (ctd.base / "pods" / f"default_{name}_{uid}" / "busybox").mkdir(parents=True)

    # kubelet's first question: is the runtime ready (the network is not: no CNI, see containerd.py)?
    conditions = {c.type: c.status for c in ctd.cri.call("Status").status.conditions}
    assert conditions["RuntimeReady"] is True, conditions
    sandbox = ctd.cri.call("RunPodSandbox", {"config": pod, "runtime_handler": handler}).pod_sandbox_id
    status = ctd.cri.call("PodSandboxStatus", {"pod_sandbox_id": sandbox}).status
    assert (status.state, status.runtime_handler) == (pb.SANDBOX_READY, handler)
    # The handler's runtime made the pause container (it answers for it under the shim's root).
    assert ctd.runtime_state(handler, sandbox)["status"] == "running"

    cid = ctd.cri.call("CreateContainer", {"pod_sandbox_id": sandbox, "config": container_config(ctd),
                                           "sandbox_config": pod}).container_id
    assert container_state(ctd, cid).state == pb.CONTAINER_CREATED
    ctd.cri.call("StartContainer", {"container_id": cid})
    assert container_state(ctd, cid).state == pb.CONTAINER_RUNNING
    state = ctd.runtime_state(handler, cid)
    assert state["status"] == "running"
    pid = state["pid"]
    assert sorted(ctd.runtime_list(handler)) == sorted([sandbox, cid])
    assert memory_limit(pid) == 64 * MiB
    unit = f"cri-containerd-{cid}.scope"
    if ctd.systemd_cgroup:  # the systemd driver: the container is a unit systemd knows and runs
        slice_ = pod["linux"]["cgroup_parent"]
        assert Path(f"/proc/{pid}/cgroup").read_text().rstrip().endswith(f"/{slice_}/{unit}")
        assert unit_properties(unit) == {"ActiveState": "active", "Delegate": "yes", "Slice": slice_,
                                         "MemoryMax": str(64 * MiB)}
    log = ctd.base / "pods" / f"default_{name}_{uid}" / "busybox" / "0.log"
    wait_for("the container's greeting in its CRI log",
             lambda: log.exists() and " stdout F started-cri\n" in log.read_text(), timeout=30)

    # ExecSync: kubelet's exec probes and `kubectl exec` without a terminal.
    res = ctd.cri.call("ExecSync", {"container_id": cid, "timeout": 60,
                                    "cmd": ["/bin/sh", "-c", "echo out-$((6*7)); echo err >&2; "
                                            "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/"
                                            "memory.limit_in_bytes 2>/dev/null; exit 3"]})
    assert (res.exit_code, res.stderr) == (3, b"err\n"), res
    assert res.stdout.decode().split() == ["out-42", str(64 * MiB)], res

    # ContainerStats: what kubelet's summary API and `kubectl top` report.
    stats = ctd.cri.call("ContainerStats", {"container_id": cid}).stats
    assert stats.attributes.id == cid
    assert stats.memory.working_set_bytes.value > 0, stats
    assert stats.cpu.usage_core_nano_seconds.value > 0, stats

    # UpdateContainerResources: in-place pod resize; the new limit is in the container's cgroup.
    ctd.cri.call("UpdateContainerResources", {"container_id": cid, "linux": {
        "memory_limit_in_bytes": 96 * MiB, "cpu_shares": 512}})
    assert memory_limit(pid) == 96 * MiB
    if ctd.systemd_cgroup:  # through SetUnitProperties too: systemd keeps it on a daemon-reload
        assert unit_properties(unit)["MemoryMax"] == str(96 * MiB)

    # StopContainer: SIGTERM, then SIGKILL after the grace period; this container exits on TERM.
    started = time.monotonic()
    ctd.cri.call("StopContainer", {"container_id": cid, "timeout": STOP_GRACE})
    took = time.monotonic() - started
    st = container_state(ctd, cid)
    assert (st.state, st.exit_code, st.reason) == (pb.CONTAINER_EXITED, 0, "Completed"), st
    assert took < STOP_GRACE / 2, f"StopContainer took {took:.1f} s: SIGTERM did not end the container"
    ctd.cri.call("RemoveContainer", {"container_id": cid})
    assert not ctd.cri.call("ListContainers", {"filter": {"pod_sandbox_id": sandbox}}).containers
    assert ctd.runtime_list(handler) == [sandbox]

    ctd.cri.call("StopPodSandbox", {"pod_sandbox_id": sandbox})
    assert ctd.cri.call("PodSandboxStatus", {"pod_sandbox_id": sandbox}).status.state == pb.SANDBOX_NOTREADY
    ctd.cri.call("RemovePodSandbox", {"pod_sandbox_id": sandbox})
    assert not ctd.cri.call("ListPodSandbox", {"filter": {"id": sandbox}}).items
    assert ctd.runtime_list(handler) == []
    assert leftover_cgroups(sandbox, cid) == []
