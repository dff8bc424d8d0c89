"""What is done to a created or running container through its cgroup (pause, resume, update,
ps, stats, OOM events), and `list`: off the path of the hot commands (container.py)."""

from __future__ import annotations

import os

from ociruntime import state
from ociruntime.container import cgroup_of, own_pids, public_state, set_resources
from ociruntime.errors import InvalidState, NotRunning, OciError
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
    """One `events --stats` record, in runc's shape."""
    sd = StateDir(root, cid)
    data = sd.load()
    if state.status_of(sd, data) == "stopped":
        raise NotRunning(cid, "get statistics of")
    return {"type": "stats", "id": cid, "data": cgroup_of(data).stats()}


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
