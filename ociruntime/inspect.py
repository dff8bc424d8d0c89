"""`ociruntime inspect ID`: what isolates a container, as the kernel sees it.

Everything is read from /proc/<pid> and cgroupfs (ociruntime/linux/introspect.py); the state
file names the process and the cgroup, and the copy of config.json the state directory keeps is
read (as plain JSON: no config model, no schema) only to say where the kernel's view differs
from what was asked. "The host" is the init of the pid namespace ociruntime runs in (/proc/1):
a namespace the container shares with it is the host's; one it shares only with the caller of
ociruntime (a shell in its own namespace) is called the caller's. rlimits are compared with
pid 1's too: the limits every process starts from unless someone changed them.

`inspect()` returns a plain record (dicts and lists, JSON-ready); `text()` words it for people.
Imported only by the inspect command."""

from __future__ import annotations

import os

from ociruntime import state
from ociruntime.errors import OciError
from ociruntime.linux import cgroups
from ociruntime.linux import introspect as ki
from ociruntime.state import StateDir

_LIVE = ("created", "running", "paused")


def inspect(root: str, cid: str) -> dict:
    sd = StateDir(root, cid)
    data = sd.load()  # ContainerNotFound: runc's "container ... does not exist"
    status = state.status_of(sd, data)
    config, config_note = _config_copy(sd)
    rec: dict = {"id": cid, "status": status, "pid": data.get("pid", 0) if status in _LIVE else 0,
                 "bundle": data.get("bundle", ""), "rootfs": data.get("rootfs", ""),
                 "created": data.get("created", ""), "notes": [], "differences": []}
    if config_note:
        rec["notes"].append(config_note)
    cg = _manager(data)
    if status in _LIVE:
        try:
            with ki.Proc(data["pid"], data["start_time"]) as proc:
                _live(rec, proc, data, config, cg)
        except ki.ProcessGone:
            status = rec["status"] = "stopped"
            rec["pid"] = 0
            rec["notes"].append("the container stopped while it was being inspected")
    if status not in _LIVE:
        rec["notes"].append(_gone_note(status))
        rec["cgroup"] = _cgroup_section(cg.paths() if cg else {}, cg, None)
        rec["processes"] = []
    if config is not None and rec.get("cgroup", {}).get("limits") is not None:
        _compare_resources(rec, config)
    rec["differences"] = rec.pop("differences")  # last: what the reader came for
    return rec


def _gone_note(status: str) -> str:
    if status == "creating":
        return ("the container is still being created (or its create was killed: delete -f removes "
                "it): only its state and cgroup can be shown")
    return ("the container's process has exited: its namespaces, ids, mounts and security settings "
            "went with it; only the state and the cgroup (while it exists: peak usage, OOM kills) "
            "can be shown")


def _config_copy(sd: StateDir) -> tuple[dict | None, str | None]:
    """The config.json create kept in the state directory, as plain JSON."""
    try:
        doc = sd.saved_config()
    except OciError as e:
        return None, f"{e}: no comparison with the config"
    return (doc, None) if isinstance(doc, dict) else (None, f"{sd.file(state.CONFIG_COPY)} is not a JSON object")


def _manager(data: dict):
    if not data.get("cgroup"):
        return None
    try:
        return cgroups.from_state(data["cgroup"])
    except (KeyError, TypeError, ValueError, AttributeError, OciError):
        return None


# ---------------------------------------------------------------- a live process


def _live(rec: dict, proc: ki.Proc, data: dict, config: dict | None, cg) -> None:
    pid = proc.pid
    if rec["status"] == "created":
        rec["notes"].append(
            f"created: pid {pid} is the runtime's init waiting for `start`; its namespaces, cgroup, "
            "mounts, ids, capabilities and rlimits are final, but the program is not exec'd yet: "
            "capabilities change at execve (capabilities(7)), and the LSM label and a seccomp filter "
            "with noNewPrivileges apply then")
    with ki.Proc(1) as host, ki.Proc(os.getpid()) as me:
        host_ns = ki.host_namespaces(host)
        rec["namespace_baseline"] = "pid 1" if host_ns is not None else "caller"
        if host_ns is None:
            rec["notes"].append("pid 1's namespaces cannot be read here (permission denied): namespaces "
                                "are compared with ociruntime's own only")
        rec["namespaces"] = ki.namespaces(proc, host_ns, me)
        rec["nsenter"] = ki.nsenter_line(pid, rec["namespaces"], me)
        host_limits = ki.rlimits(host.read("limits"))
    st = ki.status(proc)
    rec["users"] = ki.users(proc, st)
    dirs = ki.cgroup_dirs(proc.read("cgroup"), cgroups.read_layout())
    rec["cgroup"] = _cgroup_section(dirs, cg, proc)
    rec["filesystem"] = _filesystem(proc, rec["rootfs"])
    sec = ki.security(proc, st)
    limits = ki.rlimits(proc.read("limits"))
    sec["rlimits_baseline"] = "pid 1"
    sec["rlimits"] = {k: {**v, "baseline": host_limits.get(k)} for k, v in limits.items()
                      if v != host_limits.get(k)}
    rec["security"] = sec
    rec["processes"] = _processes(data, cg, pid)
    if config is not None:
        _compare(rec, config, proc, limits)


def _cgroup_section(dirs: dict[str, str], cg, proc: ki.Proc | None) -> dict:
    v2 = set(dirs) == {""}
    existing = {k: d for k, d in dirs.items() if os.path.isdir(d)}
    out: dict = {"version": 2 if v2 else 1, "driver": cg.driver if cg else None, "paths": dirs,
                 "limits": None, "usage": None, "freezer": None}
    if cg is not None and proc is not None:
        recorded = cg.paths()
        moved = {k: d for k, d in dirs.items() if k in recorded and recorded[k] != d}
        if moved:
            out["recorded_paths"] = recorded
    if not existing:
        out["exists"] = False
        return out
    out["exists"] = True
    out["limits"] = ki.cgroup_limits(existing, v2)
    out["usage"] = ki.cgroup_usage(existing, v2)
    out["freezer"] = ki.freezer_state(existing, v2)
    return out


def _filesystem(proc: ki.Proc, host_rootfs: str) -> dict:
    mounts = ki.mounts(proc.read("mountinfo"))
    root = next((m for m in reversed(mounts) if m["target"] == "/"), None)
    root_fd = ki.open_root(proc)
    try:
        masked = []
        for m in mounts:
            kind = ki.mask_kind(m, root_fd)
            if kind:
                m["masked"] = kind
                masked.append(m["target"])
    finally:
        if root_fd >= 0:
            os.close(root_fd)
    rootfs: dict = {"path": host_rootfs}
    if root is not None:
        rootfs.update(type=root["type"], source=root["source"], readonly=ki.readonly(root),
                      propagation=root["propagation"])
        overlay = ki.overlay_dirs(root)
        if overlay:
            rootfs["overlay"] = overlay
    ro = [m["target"] for m in mounts if ki.readonly(m) and m["target"] != "/" and "masked" not in m]
    return {"rootfs": rootfs, "mounts": mounts, "masked_paths": masked, "readonly_paths": ro}


def _processes(data: dict, cg, init_pid: int) -> list[dict]:
    """The container's processes (its cgroup's, as `ps` lists them), parents before children."""
    pids = {init_pid}
    if cg is not None:
        from ociruntime import container

        try:
            pids.update(container.own_pids(cg, data))
        except OciError:
            pass
    entries = [e for e in map(ki.process_entry, sorted(pids)) if e]
    by_pid = {e["pid"]: e for e in entries}
    ordered: list[dict] = []

    def walk(entry: dict, depth: int) -> None:
        entry["depth"] = depth
        ordered.append(entry)
        for child in entries:
            if child["ppid"] == entry["pid"] and child is not entry:
                walk(child, depth + 1)

    for e in entries:
        if e["ppid"] not in by_pid:
            walk(e, 0)
    return ordered


# ---------------------------------------------------------------- config vs kernel


def _compare(rec: dict, config: dict, proc: ki.Proc, limits: dict) -> None:
    diff = rec["differences"]
    linux = config.get("linux") or {}
    _compare_namespaces(rec, linux.get("namespaces") or [], proc.pid)
    users = rec["users"]
    for key, name in (("uidMappings", "uid_map"), ("gidMappings", "gid_map")):
        asked = [(m.get("containerID"), m.get("hostID"), m.get("size")) for m in linux.get(key) or []]
        got = [(m["container_id"], m["host_id"], m["size"]) for m in users[name]]
        if asked and sorted(asked) != sorted(got):
            diff.append(f"linux.{key}: asked {_maps(asked)}, the kernel has {_maps(got)}")
    process = config.get("process") or {}
    user = process.get("user") or {}
    inside = users["container"]
    for key in ("uid", "gid"):
        if key in user and user[key] != inside[key]:
            diff.append(f"process.user.{key}: asked {user[key]}, the process runs as {inside[key]}")
    extra = set(user.get("additionalGids") or ()) - set(inside["groups"])
    if extra:
        diff.append(f"process.user.additionalGids: {sorted(extra)} missing from the process's groups")
    _compare_security(rec, process, linux)
    _compare_rlimits(diff, process.get("rlimits") or [], limits)
    _compare_filesystem(rec, config, linux, proc)


def _maps(maps: list[tuple]) -> str:
    return ", ".join(f"{c}->{h} ({s})" for c, h, s in maps) or "none"


def _compare_namespaces(rec: dict, asked: list, pid: int) -> None:
    by_type = {e["type"]: e for e in rec["namespaces"]}
    links = {spec: link for link, spec in ki.NAMESPACES}
    for ns in asked:
        entry = by_type.get(ns.get("type"))
        if entry is None:
            continue
        path = ns.get("path")
        if not path:
            entry["config"] = "new"
            if entry["shared_with"]:
                rec["differences"].append(f"linux.namespaces: a new {entry['type']} namespace was asked, "
                                          f"but the process is in the {entry['shared_with']}'s")
            continue
        entry["config"] = f"joined {path}"
        try:
            now = os.stat(path).st_ino
        except OSError as e:
            now = None
            entry["path_now"] = f"{path}: {e.strerror}"
        if now is not None and now != entry["inode"]:
            rec["differences"].append(f"linux.namespaces: {entry['type']} path {path} is namespace {now} "
                                      f"now; the process is in {entry['inode']}")
        if not entry["shared_with"]:
            entry["also_in"] = ki.holders(links[entry["type"]], entry["inode"],
                                          {p["pid"] for p in rec["processes"]} | {pid})
    for e in rec["namespaces"]:
        e.setdefault("config", "not listed (inherited)")


def _compare_security(rec: dict, process: dict, linux: dict) -> None:
    diff, sec, status = rec["differences"], rec["security"], rec["status"]
    caps = process.get("capabilities") or {}
    for name in ("bounding", "effective", "permitted", "inheritable", "ambient"):
        if name not in caps:
            continue
        asked, got = set(caps[name]), set(sec["capabilities"][name])
        missing, added = sorted(asked - got), sorted(got - asked)
        if missing:
            why = (" (execve clears them for a non-root user without ambient capabilities: "
                   "capabilities(7))" if name in ("effective", "permitted") and status != "created"
                   and rec["users"]["container"]["uid"] != 0 and not caps.get("ambient") else "")
            diff.append(f"process.capabilities.{name}: asked but absent: {', '.join(missing)}{why}")
        if added:
            why = (" (execve gives a root process bounding | inheritable: capabilities(7))"
                   if name in ("effective", "permitted") and rec["users"]["container"]["uid"] == 0 else "")
            diff.append(f"process.capabilities.{name}: present but not asked: {', '.join(added)}{why}")
    if bool(process.get("noNewPrivileges")) != sec["no_new_privs"]:
        diff.append(f"process.noNewPrivileges: asked {bool(process.get('noNewPrivileges'))}, "
                    f"the kernel says {sec['no_new_privs']}")
    pending = status == "created"
    if linux.get("seccomp") and sec["seccomp"]["mode"] != "filter":
        diff.append("linux.seccomp: asked, but the process has no seccomp filter"
                    + (" yet (it is loaded at start)" if pending and process.get("noNewPrivileges") else ""))
    label = process.get("apparmorProfile") or process.get("selinuxLabel")
    current = sec["lsm_label"] or ""
    if label and current.split(" (")[0] != label and not pending:
        diff.append(f"process LSM label: asked {label!r}, the process has {current or 'none'!r}")


def _compare_rlimits(diff: list[str], asked: list, limits: dict) -> None:
    for r in asked:
        got = limits.get(r.get("type"))
        if got is not None and (got["soft"], got["hard"]) != (r.get("soft"), r.get("hard")):
            diff.append(f"process.rlimits {r.get('type')}: asked soft {r.get('soft')} hard {r.get('hard')}, "
                        f"the process has soft {_rlim(got['soft'])} hard {_rlim(got['hard'])}")


def _rlim(value: int | None) -> str:
    return "unlimited" if value == ki.RLIM_INFINITY else str(value)


def _compare_filesystem(rec: dict, config: dict, linux: dict, proc: ki.Proc) -> None:
    fs, diff = rec["filesystem"], rec["differences"]
    want_ro = bool((config.get("root") or {}).get("readonly"))
    if "readonly" in fs["rootfs"] and fs["rootfs"]["readonly"] != want_ro:
        diff.append(f"root.readonly: asked {want_ro}, the root is mounted "
                    f"{'read-only' if fs['rootfs']['readonly'] else 'read-write'}")
    ro_targets = {m["target"] for m in fs["mounts"] if ki.readonly(m)}
    root_fd = ki.open_root(proc)
    try:
        for key, have, what in (("maskedPaths", set(fs["masked_paths"]), "masked"),
                                ("readonlyPaths", ro_targets, "read-only")):
            todo = [p for p in linux.get(key) or [] if p not in have]
            absent = [p for p in todo if not ki.exists_in_root(root_fd, p)]
            missed = [p for p in todo if p not in absent]
            if absent:  # nothing there to protect: the runtime skips them, as runc does
                fs.setdefault("skipped", {})[key] = absent
            if missed:
                fs.setdefault("not_applied", {})[key] = missed
                diff.append(f"linux.{key}: not {what} in the container: {', '.join(missed)}")
    finally:
        if root_fd >= 0:
            os.close(root_fd)


def _compare_resources(rec: dict, config: dict) -> None:
    """linux.resources that the cgroup does not show. The copy was validated when the
    container was created, but is read back from disk: values of the wrong type are skipped."""
    from ociruntime.resources import CpuResources, MemoryResources, PidsResources, Resources

    try:
        res = Resources((config.get("linux") or {}).get("resources") or {})
    except (KeyError, TypeError, AttributeError, ValueError):
        return
    cg = rec["cgroup"]
    v2 = cg["version"] == 2
    page = os.sysconf("SC_PAGE_SIZE")
    checks = []  # (spec field, asked value, file, expected file content)
    mem = res.memory or MemoryResources({})
    if isinstance(mem.limit, int) and mem.limit > 0:
        checks.append(("memory.limit", mem.limit, "memory.max" if v2 else "memory.limit_in_bytes",
                       str(mem.limit // page * page)))
    pids = res.pids or PidsResources({})
    if isinstance(pids.limit, int):
        checks.append(("pids.limit", pids.limit, "pids.max", "max" if pids.limit < 0 else str(pids.limit)))
    cpu = res.cpu or CpuResources({})
    if isinstance(cpu.quota, int) and cpu.quota > 0:
        period = cpu.period or 100000
        if v2:
            checks.append(("cpu.quota", cpu.quota, "cpu.max", f"{cpu.quota} {period}"))
        else:
            checks.append(("cpu.quota", cpu.quota, "cpu.cfs_quota_us", str(cpu.quota)))
    if isinstance(cpu.shares, int) and cpu.shares and not v2:
        checks.append(("cpu.shares", cpu.shares, "cpu.shares", str(cpu.shares)))
    for key, value in (("cpus", cpu.cpus), ("mems", cpu.mems)):
        if value:
            checks.append((f"cpu.{key}", value, f"cpuset.{key}", None))
    dirs = {k: d for k, d in cg["paths"].items() if os.path.isdir(d)}
    for field, asked, name, expected in checks:
        value = ki.read_limit(dirs, name, v2)
        if value is None:
            continue  # a controller this host does not have: nothing to compare with
        same = ki.cpu_list(value) == ki.cpu_list(str(asked)) if expected is None else value == expected
        if not same:
            rec["differences"].append(f"linux.resources.{field}: asked {asked}, the cgroup has "
                                      f"{name} {value!r}")


# ---------------------------------------------------------------- text


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _caps_text(names: list[str]) -> str:
    if not names:
        return "none"
    if len(names) >= len(ki.CAP_NAMES) and set(ki.CAP_NAMES.values()) <= set(names):
        return f"all ({len(names)})"
    return " ".join(n.removeprefix("CAP_").lower() for n in names)


def text(rec: dict) -> str:
    out = [f"container {rec['id']}: {rec['status']}" + (f", pid {rec['pid']}" if rec["pid"] else ""),
           f"  bundle   {rec['bundle']}", f"  rootfs   {rec['rootfs']}", f"  created  {rec['created']}"]
    for note in rec["notes"]:
        out.append(f"  note: {note}")
    if "namespaces" in rec:
        out += _ns_text(rec)
        out += _users_text(rec["users"])
    out += _cgroup_text(rec["cgroup"])
    if "filesystem" in rec:
        out += _fs_text(rec["filesystem"])
        out += _security_text(rec["security"])
    if rec.get("processes"):
        out += ["", "processes (pid on the host, pid in the container, command)"]
        for p in rec["processes"]:
            out.append(f"  {p['pid']:<8} {p['pid_inside']:<6} {'  ' * p['depth']}{' '.join(p['command'])}")
    out += ["", "differences from config.json"]
    out += [f"  - {d}" for d in rec["differences"]] or ["  none found"]
    return "\n".join(out) + "\n"


def _ns_text(rec: dict) -> list[str]:
    out = ["", "namespaces (\"host\": shared with pid 1; \"caller\": with whoever ran ociruntime)"]
    for e in rec["namespaces"]:
        where = {"host": "host's", "caller": "caller's"}.get(e["shared_with"], "own")
        line = f"  {e['type']:<8} {e['inode']:<11} {where:<9} {e.get('config', '')}"
        if e.get("also_in"):
            line += " (also: " + ", ".join(f"pid {h['pid']} {h['command']}" for h in e["also_in"]) + ")"
        out.append(line.rstrip())
    out.append(f"  enter: {rec['nsenter']}")
    return out


def _users_text(u: dict) -> list[str]:
    def maps(ms: list[dict]) -> str:
        return ", ".join(f"{m['container_id']}->{m['host_id']} ({m['size']})" for m in ms) or "none"

    host, inside = u["host"], u["container"]
    return ["", "users (in the container -> on the host)",
            f"  uid_map  {maps(u['uid_map'])}", f"  gid_map  {maps(u['gid_map'])}",
            f"  uid      {inside['uid']} -> {host['uid']}", f"  gid      {inside['gid']} -> {host['gid']}",
            "  groups   " + (", ".join(f"{i} -> {h}" for i, h in zip(inside["groups"], host["groups"], strict=True))
                             or "none")]


def _cgroup_text(cg: dict) -> list[str]:
    out = ["", f"cgroup (v{cg['version']}, driver {cg['driver'] or 'none'})"]
    for key, d in cg["paths"].items():
        out.append(f"  {key or 'unified':<13} {d}")
    if cg.get("recorded_paths"):
        out.append(f"  note: the process is not in the cgroups create made: {cg['recorded_paths']}")
    if not cg.get("exists"):
        out.append("  (no cgroup directory exists)")
        return out
    limits = cg["limits"]
    out.append("  limits   " + (", ".join(f"{k}={v.replace(chr(10), '; ')}" for k, v in limits.items())
                                or "none set"))
    u = cg["usage"]
    parts = []
    if "memory" in u:
        parts.append(f"memory {_size(u['memory'])}"
                     + (f" (peak {_size(u['memory_peak'])})" if "memory_peak" in u else ""))
    if "cpu_usec" in u or "cpu_ns" in u:
        parts.append(f"cpu {u.get('cpu_usec', 0) / 1e6 + u.get('cpu_ns', 0) / 1e9:.3f} s")
    if "pids" in u:
        parts.append(f"pids {u['pids']}" + (f" (peak {u['pids_peak']})" if "pids_peak" in u else ""))
    if "io_read_bytes" in u:
        parts.append(f"io read {_size(u['io_read_bytes'])} write {_size(u['io_write_bytes'])}")
    if u.get("oom_kills"):
        parts.append(f"OOM kills {u['oom_kills']}")
    out.append("  usage    " + (", ".join(parts) or "none readable"))
    out.append(f"  freezer  {cg['freezer'] or 'none'}")
    return out


def _fs_text(fs: dict) -> list[str]:
    r = fs["rootfs"]
    out = ["", "filesystem",
           f"  rootfs   {r['path']}: {r.get('type', '?')} from {r.get('source', '?')}, "
           f"{'read-only' if r.get('readonly') else 'read-write'}, {r.get('propagation', '?')}"]
    ov = r.get("overlay")
    if ov:
        for layer in ov.get("lowerdir", []):
            out.append(f"    lowerdir {layer}")
        for key in ("upperdir", "workdir"):
            if key in ov:
                out.append(f"    {key} {ov[key]}")
    out.append("  mounts")
    rows = [("TARGET", "TYPE", "SOURCE", "OPTIONS", "PROPAGATION")]
    rows += [(m["target"] + (f" [masked: {m['masked']}]" if m.get("masked") else ""), m["type"],
              m["source"], m["options"], m["propagation"]) for m in fs["mounts"]]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    out += ["    " + "  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4] for r in rows]
    out.append("  masked     " + (" ".join(fs["masked_paths"]) or "none"))
    out.append("  read-only  " + (" ".join(_top_level(fs["readonly_paths"])) or "none"))
    for key, paths in (fs.get("skipped") or {}).items():
        out.append(f"  not in the container (linux.{key} skipped): {' '.join(paths)}")
    return out


def _top_level(paths: list[str]) -> list[str]:
    """Each path, the mounts below it counted rather than listed."""
    out = []
    for p in paths:
        if any(p.startswith(q.rstrip("/") + "/") for q in paths if q != p):
            continue
        below = sum(1 for q in paths if q.startswith(p.rstrip("/") + "/"))
        out.append(p + (f" (+{below} below)" if below else ""))
    return out


def _security_text(sec: dict) -> list[str]:
    out = ["", "security", "  capabilities"]
    for name, caps in sec["capabilities"].items():
        out.append(f"    {name:<12} {_caps_text(caps)}")
    sc = sec["seccomp"]
    out += [f"  no_new_privs {'yes' if sec['no_new_privs'] else 'no'}",
            f"  seccomp  {sc['mode']}" + (f" ({sc['filters']} filter{'s' if sc['filters'] != 1 else ''})"
                                          if sc["mode"] == "filter" else ""),
            f"  lsm      {sec['lsm_label'] or 'none'}",
            f"  rlimits different from {sec['rlimits_baseline']}'s"]
    for name, v in sec["rlimits"].items():
        base = v.get("baseline") or {}
        out.append(f"    {name:<18} soft {_rlim(v['soft'])} hard {_rlim(v['hard'])} "
                   f"({sec['rlimits_baseline']}: {_rlim(base.get('soft'))}/{_rlim(base.get('hard'))})")
    if not sec["rlimits"]:
        out.append("    none")
    return out
