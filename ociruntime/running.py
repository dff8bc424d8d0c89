"""What is done to a created or running container through its cgroup (pause, resume, update,
ps, stats, OOM events), and `list`: off the path of the hot commands (container.py)."""

from __future__ import annotations

import os

from ociruntime import state
from ociruntime.container import cgroup_of, own_pids, public_state, set_resources
from ociruntime.errors import InvalidState, NotRunning, OciError, OptionError
from ociruntime.state import StateDir

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ociruntime.resources import Resources


def pause(root: str, cid: str) -> None:
    _freeze_or_thaw(root, cid, "running", freeze=True)


def resume(root: str, cid: str) -> None:
    _freeze_or_thaw(root, cid, "paused", freeze=False)


def _freeze_or_thaw(root: str, cid: str, expected: str, freeze: bool) -> None:
    with state.locked(root, cid) as held:
        if held.status != expected:
            verb = "pause" if freeze else "resume"
            raise InvalidState(f"cannot {verb} container {cid!r}: it is {held.status}, not {expected}")
        cg = cgroup_of(held.data)
        if freeze:
            cg.freeze()
        else:
            cg.thaw()


def stats_event(root: str, cid: str) -> dict:
    """One `events --stats` record, in runc's shape: {"type": "stats", "id", "data"}."""
    sd = StateDir(root, cid)
    data = sd.load()
    if state.status_of(sd, data) == "stopped":
        raise NotRunning(cid, "get statistics of")
    return {"type": "stats", "id": cid, "data": runc_stats(cgroup_of(data).stats())}


def events(root: str, cid: str, interval: float):
    """runc's `events` stream, an iterator: a stats record (stats_event's) every `interval`
    seconds and an {"type": "oom", "id"} record whenever the container's memory cgroup has an
    OOM kill, until the container stops (nothing when it is not running to begin with)."""
    if not interval > 0:
        raise OptionError("interval", f"{interval!r} is not a positive number of seconds")
    return _events(root, cid, interval)


def _events(root: str, cid: str, interval: float):
    try:
        watch = oom_watch(root, cid)
    except NotRunning:
        return
    try:
        yield from _event_stream(root, cid, interval, watch)
    finally:
        if watch is not None:
            watch.close()


def _event_stream(root: str, cid: str, interval: float, watch):
    import select
    import time

    poller = select.poll()
    if watch is not None:
        poller.register(watch.fd, watch.events())
    next_stats = time.monotonic() + interval
    while True:
        left = next_stats - time.monotonic()
        if left > 0:
            if watch is None:
                time.sleep(left)
            elif poller.poll(left * 1000):
                if watch.ready():
                    yield {"type": "oom", "id": cid}
                if watch.gone:
                    poller.unregister(watch.fd)
                    watch = None
            continue
        next_stats += interval
        try:
            record = stats_event(root, cid)
        except OciError:
            return  # the container has gone: the stream ends
        yield record


def oom_watch(root: str, cid: str):
    """A linux.cgroups.oom.OomWatch on the container's memory cgroup (None without one), for
    the `oom` events of `events`."""
    from ociruntime.linux.cgroups import oom

    sd = StateDir(root, cid)
    data = sd.load()
    if state.status_of(sd, data) == "stopped":
        raise NotRunning(cid, "watch the events of")
    return oom.watch(cgroup_of(data).paths())


def update(root: str, cid: str, resources: Resources | dict) -> None:
    """Apply new linux.resources to a live container: a resources.Resources, or a dict of
    config.json's shape (the sections and fields given change, the others stay)."""
    if isinstance(resources, dict):
        from ociruntime.resources import Resources

        resources = Resources(resources)
    with state.locked(root, cid) as held:
        if held.status == "stopped":
            raise NotRunning(cid, "update")
        set_resources(cgroup_of(held.data), resources)


def container_pids(root: str, cid: str) -> list[int]:
    sd = StateDir(root, cid)
    data = sd.load()
    if state.status_of(sd, data) == "stopped":
        raise NotRunning(cid, "list the processes of")
    return sorted(own_pids(cgroup_of(data), data))


def list_containers(root: str) -> list[dict]:
    """Every container under root, as `state` shows it plus its `owner`, sorted by ID."""
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    except NotADirectoryError:
        raise state.root_not_a_directory(root) from None
    except OSError as e:
        raise state.io_error("cannot list", root, e) from None
    return [doc for doc in (_list_entry(root, name) for name in names) if doc is not None]


def _list_entry(root: str, name: str) -> dict | None:
    """One container's line; a corrupt one is listed as `unknown` (the others still are)."""
    try:
        sd = StateDir(root, name)
    except OciError:
        return None  # not a container ID: some other file
    if not os.path.isdir(sd.path):
        return None
    try:
        data, problem = sd.load_salvage()
    except OciError:
        return None  # deleted right now
    status = "unknown" if problem else state.status_of(sd, data)
    doc = public_state(name, data, status)
    if problem:
        doc["pid"] = 0
    doc["owner"] = _owner(sd.path)
    return doc


def _owner(path: str) -> str:
    import pwd

    try:
        uid = os.stat(path).st_uid
    except OSError:
        return ""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"#{uid}"


# ---------------------------------------------------------------- runc's statistics shape


def runc_stats(stats: dict) -> dict:
    """The library's statistics in the shape `runc events` prints (docker stats and ctr task
    metrics read these names): memory swap/kernel/kernelTCP/raw, camelCase CPU throttling, and
    the zero values of runc's omitempty fields left out as Go leaves them out."""
    out = dict(stats)
    cpu = stats.get("cpu")
    if cpu:
        throttling = cpu.get("throttling") or {}
        usage = cpu.get("usage") or {}
        out["cpu"] = {"usage": {**_nonzero(usage, ("total", "percpu")),
                                "kernel": usage.get("kernel", 0), "user": usage.get("user", 0)},
                      "throttling": _nonzero({"periods": throttling.get("periods", 0),
                                              "throttledPeriods": throttling.get("throttled_periods", 0),
                                              "throttledTime": throttling.get("throttled_time", 0)})}
    memory = stats.get("memory")
    if memory:
        out["memory"] = {**_nonzero(memory, ("cache",)),
                         **{name: _memory_entry(memory.get(key) or {}) for name, key in (
                             ("usage", "usage"), ("swap", "swap_usage"), ("kernel", "kernel_usage"),
                             ("kernelTCP", "kernel_tcp_usage"))},
                         "raw": memory.get("stats", {})}
    pids = stats.get("pids")
    if pids:
        out["pids"] = {k: v for k, v in pids.items() if v or k == "current"}
    blkio = stats.get("blkio")
    if blkio:
        out["blkio"] = {k: [_nonzero(e) for e in entries] for k, entries in blkio.items()}
    hugetlb = stats.get("hugetlb")
    if hugetlb:
        out["hugetlb"] = {size: {**_nonzero(h, ("usage", "max")), "failcnt": h.get("failcnt", 0)}
                          for size, h in hugetlb.items()}
    out.setdefault("intel_rdt", {})
    out.setdefault("network_interfaces", None)
    return out


def _nonzero(entry: dict, keys: tuple[str, ...] | None = None) -> dict:
    """`entry` (or its `keys`) without zero or empty values: Go's omitempty."""
    return {k: entry[k] for k in (entry if keys is None else keys) if entry.get(k)}


def _memory_entry(entry: dict) -> dict:
    """runc's MemoryEntry: limit and failcnt always, usage and max when not zero."""
    return {"limit": entry.get("limit", 0), **_nonzero(entry, ("usage", "max")),
            "failcnt": entry.get("failcnt", 0)}
