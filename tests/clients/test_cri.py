"""Kubernetes' path through the CRI on this host (cgroup v1, no systemd: the cgroupfs driver):
containerd's CRI plugin with a runtime handler per runtime, driven by the tests' own CRI client
the way kubelet drives it (tests/guest/cri). The same pod lifecycle runs in the cgroup v2 guest
(tests/guest/test_cri.py)."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator

import pytest

from tests.clients.conftest import RUNTIMES, wait_for
from tests.clients.test_containerd import task_status
from tests.conftest import OCIRUNTIME
from tests.guest.cri.containerd import NAMESPACE, PAUSE_IMAGE, CriContainerd, cri_containerd
from tests.guest.cri.lifecycle import check_pod_lifecycle


@pytest.fixture(scope="module")
def ctd() -> Iterator[CriContainerd]:
    with cri_containerd(RUNTIMES, systemd_cgroup=False) as daemon:
        yield daemon


@pytest.mark.parametrize("handler", ["ociruntime", "runc"])
def test_pod_lifecycle_through_cri(ctd: CriContainerd, handler: str) -> None:
    check_pod_lifecycle(ctd, handler)


def test_pause_image_ends_on_sigterm(ctd: CriContainerd) -> None:
    """The local pause image's init, PID 1 of its namespace (which receives only the signals it
    handles), exits 0 at SIGTERM at once, as the real pause does; a bare `sleep` would not."""
    cid = f"pause-{uuid.uuid4().hex[:8]}"
    root = ctd.base / "ctr-runtime-root"
    fg = subprocess.Popen(["ctr", "--address", str(ctd.sock), "-n", NAMESPACE, "run", "--rm",
                           "--runc-binary", OCIRUNTIME, "--runc-root", str(root), PAUSE_IMAGE, cid],
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for("the pause container", lambda: task_status(ctd, cid) == "RUNNING", timeout=30)
        assert ctd.ctr("task", "kill", "-s", "SIGTERM", cid).returncode == 0
        assert fg.wait(15) == 0
    finally:
        if fg.poll() is None:
            ctd.ctr("task", "kill", "-s", "SIGKILL", cid)
            fg.wait(30)
