"""Kubernetes' path through the CRI on this host (cgroup v1, no systemd: the cgroupfs driver):
containerd's CRI plugin with a runtime handler per runtime, driven by the tests' own CRI client
the way kubelet drives it (tests/guest/cri). The same pod lifecycle runs in the cgroup v2 guest
(tests/guest/test_cri.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.clients.conftest import RUNTIMES
from tests.guest.cri.containerd import CriContainerd, cri_containerd
from tests.guest.cri.lifecycle import check_pod_lifecycle


@pytest.fixture(scope="module")
def ctd() -> Iterator[CriContainerd]:
    with cri_containerd(RUNTIMES, systemd_cgroup=False) as daemon:
        yield daemon


@pytest.mark.parametrize("handler", ["ociruntime", "runc"])
def test_pod_lifecycle_through_cri(ctd: CriContainerd, handler: str) -> None:
    check_pod_lifecycle(ctd, handler)
