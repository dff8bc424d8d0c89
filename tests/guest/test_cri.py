"""Kubernetes' path through the CRI on cgroup v2 with systemd, without kubelet: containerd 1.6's
CRI plugin (a private daemon) with the runtime handlers `ociruntime` and `runc` (runc v2 shim,
BinaryName), driven by the tests' own CRI client through the calls kubelet makes for a pod
(tests/guest/cri/lifecycle.py). Each handler, the same assertions."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import OCIRUNTIME, RUNC
from tests.guest.cri.containerd import CriContainerd, cri_containerd
from tests.guest.cri.lifecycle import check_pod_lifecycle

# The shim's SystemdCgroup option (kubelet's cgroupDriver: systemd, the default on systemd hosts):
# true passes --systemd-cgroup to the runtime, makes the pods' cgroup parents slices and checks
# that each container is a cri-containerd-<id>.scope systemd runs, as kubelet's nodes have it.
SYSTEMD_CGROUP = True
HANDLERS = {"ociruntime": OCIRUNTIME, "runc": RUNC}


@pytest.fixture(scope="module")
def ctd() -> Iterator[CriContainerd]:
    with cri_containerd(HANDLERS, systemd_cgroup=SYSTEMD_CGROUP) as daemon:
        yield daemon


@pytest.mark.parametrize("handler", list(HANDLERS))
def test_pod_lifecycle_through_cri(ctd: CriContainerd, handler: str) -> None:
    check_pod_lifecycle(ctd, handler)
