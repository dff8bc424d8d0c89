"""Formats the v1 and v2 controllers share (the same files on both): device numbers in
blkio/io rules, rdma.max lines."""

from __future__ import annotations


def dev(entry: dict) -> str:
    return f"{entry['major']}:{entry['minor']}"


def rdma_lines(rdma: dict) -> list[str]:
    """rdma.max lines: `<device> hca_handle=N hca_object=M` (only the limits given)."""
    out = []
    for device, lim in rdma.items():
        parts = []
        if lim.get("hcaHandles") is not None:
            parts.append(f"hca_handle={lim['hcaHandles']}")
        if lim.get("hcaObjects") is not None:
            parts.append(f"hca_object={lim['hcaObjects']}")
        if parts:
            out.append(f"{device} {' '.join(parts)}")
    return out
