"""Is a container's cgroup frozen? Read from its saved cgroup state without loading the cgroup
drivers: `state`, `kill` and `delete` ask this of every running container, and the drivers
(with `os`) are ~7 Mi instructions (~2 ms) to import. The drivers' frozen() answer through it."""

from ociruntime.lean import read_text


def v1_frozen(freezer_dir: str) -> bool:
    """cgroup v1: freezer.state is THAWED, FREEZING or FROZEN (FREEZING counts: its tasks are
    being stopped and will not run)."""
    text = read_text(f"{freezer_dir}/freezer.state").strip()
    return bool(text) and text != "THAWED"


def v2_frozen(path: str) -> bool:
    """cgroup v2: cgroup.events has "frozen 1" once every task is frozen."""
    return "frozen 1" in read_text(f"{path}/cgroup.events").splitlines()


def frozen(cgroup_state: dict) -> bool:
    """From a driver's to_state() record (v1, v2, or systemd around either)."""
    while cgroup_state.get("driver") == "systemd":
        cgroup_state = cgroup_state.get("inner") or {}
    driver = cgroup_state.get("driver")
    if driver == "v2":
        return v2_frozen(cgroup_state["path"])
    if driver == "v1":
        skipped = cgroup_state.get("skipped") or ()
        for key, path in (cgroup_state.get("paths") or {}).items():
            if "freezer" in key.split(",") and key not in skipped:
                return v1_frozen(path)
    return False
