"""The less used commands' handlers (inspect, checkpoint/restore, events, update, ps), out of
cli.py so that the hot commands (state/start/kill/delete) do not load their code."""

from __future__ import annotations

import posix

from ociruntime import lean, log
from ociruntime.cli import _one_id, _write_out, count_flag, text_flag
from ociruntime.errors import OciError, OptionError, UsageError


def inspect(root: str, opts: dict[str, object], positional: list[str]) -> int:
    """What isolates a container, read from the kernel: text, or JSON with -f json."""
    from ociruntime import inspect

    fmt = str(opts.get("format") or "text")
    if fmt not in ("text", "json"):
        raise UsageError(f"inspect: invalid format {fmt!r} (expected text or json)")
    record = inspect.inspect(root, _one_id("inspect", positional))
    if fmt == "json":
        from ociruntime import jsonio

        _write_out(jsonio.dumps_pretty(record) + "\n")
    else:
        _write_out(inspect.text(record))
    return 0


def checkpoint_or_restore(root: str, command: str, opts: dict[str, object],
                           gopts: dict[str, object], positional: list[str]) -> int:
    from ociruntime import checkpoint

    cid = _one_id(command, positional)
    common = _criu_flags(opts, gopts)
    if command == "checkpoint":
        checkpoint.checkpoint(root, cid, checkpoint.CheckpointOptions(
            parent_path=text_flag(opts, "parent_path"), pre_dump=bool(opts.get("pre_dump")),
            status_fd=_status_fd_flag(opts), page_server=text_flag(opts, "page_server"), **common))
        return 0
    from ociruntime.cli import create_flags
    from ociruntime.create import CreateOptions

    detach = bool(opts.get("detach"))
    copts = CreateOptions(str(opts.get("bundle") or "."), systemd_cgroup=bool(gopts.get("systemd_cgroup")),
                          rootless=str(gopts.get("rootless") or "auto"), foreground=not detach, **create_flags(opts))
    ropts = checkpoint.RestoreOptions(lsm_profile=text_flag(opts, "lsm_profile"),
                                      lsm_mount_context=text_flag(opts, "lsm_mount_context"), **common)
    try:
        return checkpoint.restore(root, cid, copts, ropts, detach=detach, subreaper=not opts.get("no_subreaper"))
    except OptionError as e:
        e.flags["subreaper"] = "--no-subreaper"  # the API's subreaper=False
        raise


def _criu_flags(opts: dict[str, object], gopts: dict[str, object]) -> dict:
    """The flags checkpoint and restore share, as CriuOptions' keyword arguments."""
    from ociruntime.checkpoint import CRIU_SWITCHES

    return {"image_path": str(opts.get("image_path") or "checkpoint"), "work_path": text_flag(opts, "work_path"),
            "criu": text_flag(gopts, "criu"), "manage_cgroups_mode": str(opts.get("manage_cgroups_mode") or "soft"),
            "empty_ns": [str(n) for n in opts.get("empty_ns") or []],  # type: ignore[union-attr]
            **{name: True for name in CRIU_SWITCHES if opts.get(name)}}


def _status_fd_flag(opts: dict[str, object]) -> int:
    """checkpoint --status-fd N (-1, runc's default: none)."""
    text = str(opts.get("status_fd") or "-1")
    if text != "-1" and not text.isdigit():
        raise UsageError(f'invalid value "{text}" for flag -status-fd: parse error (--status-fd: '
                         "not a file descriptor number)")
    return int(text)


def events_command(rt, opts: dict[str, object], positional: list[str]) -> int:
    """--stats: one record. Otherwise, like runc, a stats record after every --interval and an
    `oom` record whenever the container's memory cgroup has an OOM, until the container stops."""
    from ociruntime import jsonio

    c = rt.container(_one_id("events", positional))
    if opts.get("stats"):
        _write_out(jsonio.dumps(c.stats()) + "\n")
        return 0
    for record in c.events(_duration(str(opts.get("interval") or "5s"))):
        _write_out(jsonio.dumps(record) + "\n")
    return 0


def _duration(text: str) -> float:
    """Go-style durations as runc takes them: 5s, 500ms, 1m, 1.5s."""
    for suffix, scale in (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        if text.endswith(suffix):
            number = text[: -len(suffix)]
            try:
                value = float(number) * scale
            except ValueError:
                break
            if value > 0:
                return value
    raise UsageError(f"--interval: {text!r} is not a duration such as 5s or 500ms")


_UPDATE_FLAGS = {  # flag dest -> (resources section, key, kind of value)
    "memory": ("memory", "limit", "size"), "memory_swap": ("memory", "swap", "size"),
    "memory_reservation": ("memory", "reservation", "size"),
    "cpu_share": ("cpu", "shares", "int"), "cpu_quota": ("cpu", "quota", "int"),
    "cpu_period": ("cpu", "period", "int"), "cpu_rt_period": ("cpu", "realtimePeriod", "int"),
    "cpu_rt_runtime": ("cpu", "realtimeRuntime", "int"), "cpu_burst": ("cpu", "burst", "int"),
    "cpu_idle": ("cpu", "idle", "int"), "cpuset_cpus": ("cpu", "cpus", "str"),
    "cpuset_mems": ("cpu", "mems", "str"), "pids_limit": ("pids", "limit", "int"),
    "blkio_weight": ("blockIO", "weight", "int"),
}
MAX_RESOURCES_BYTES = 1 << 20  # a resources document is a few hundred bytes


def update_command(rt, opts: dict[str, object], positional: list[str]) -> int:
    c = rt.container(_one_id("update", positional))
    c.update(_update_resources(opts))
    return 0


def _update_resources(opts: dict[str, object]) -> dict:
    """linux.resources from -r FILE (or - for stdin, a pipe included), or from the individual
    flags: like runc, a resources document makes the flags ignored."""
    if opts.get("resources"):
        return _resources_document(str(opts["resources"]))
    for dest in ("kernel_memory", "kernel_memory_tcp"):
        if dest in opts:
            log.warning(f"update --{dest.replace('_', '-')}: kernel memory limits are not supported "
                        "by the kernel any more: ignored")
    for dest in ("l3_cache_schema", "mem_bw_schema"):
        if dest in opts and not lean.is_dir("/sys/fs/resctrl/info"):
            raise UsageError(f"update --{dest.replace('_', '-')}: Intel RDT is not available on this host "
                             "(no resctrl filesystem mounted at /sys/fs/resctrl)")
    resources: dict = {}
    for dest, (section, key, kind) in _UPDATE_FLAGS.items():
        if dest in opts:
            resources.setdefault(section, {})[key] = _update_value(dest, str(opts[dest]), kind)
    if not resources:
        raise UsageError("update: nothing to update (use -r FILE or flags such as --memory)")
    return resources


def _update_value(dest: str, value: str, kind: str) -> object:
    if kind == "str":
        return value
    try:
        return size(value) if kind == "size" else int(value)
    except ValueError:
        raise UsageError(f"update --{dest.replace('_', '-')}: {value!r} is not a number") from None


def _resources_document(path: str) -> dict:
    from ociruntime import jsonfile, jsonio, schema

    if path == "-":  # go-runc (docker update, kubelet) writes the JSON to a pipe
        data = b""
        while chunk := posix.read(0, 65536):
            data += chunk
            if len(data) > MAX_RESOURCES_BYTES:
                raise UsageError(f"--resources -: more than {MAX_RESOURCES_BYTES} bytes on stdin")
        try:
            doc = jsonio.loads(data.decode())
        except (UnicodeDecodeError, ValueError) as e:
            raise UsageError(f"--resources -: not valid JSON: {e}") from None
    else:
        doc = jsonfile.read_document(path, "--resources")
    problems = schema.validate({"ociVersion": "1.0.0", "linux": {"resources": doc}}, "config")
    if problems:
        from ociruntime.errors import ConfigError

        raise ConfigError([p.removeprefix("linux.resources.") for p in problems], source="--resources")
    return dict(doc)  # type: ignore[arg-type]


def size(text: str) -> int:
    """runc's memory sizes (Go's units.RAMInBytes): bytes, or a k/m/g/t/p suffix (binary, with
    optional "i" and "b": 64m, 64MiB, 1.5g); -1 means unlimited."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
    low = text.strip().lower().removesuffix("b").removesuffix("i").rstrip()
    if low and low[-1] in units:
        return int(float(low[:-1]) * units[low[-1]])
    return int(low)


def ps_command(rt, opts: dict[str, object], positional: list[str]) -> int:
    """runc's `ps`: the container's pids as JSON, or the host's `ps` output cut to them."""
    if not positional:
        raise UsageError("ps: requires a container ID (usage: ociruntime ps [-f table|json] ID [ps options])")
    fmt = str(opts.get("format") or "table")
    if fmt not in ("table", "json"):
        raise UsageError(f"ps: invalid format {fmt!r} (expected table or json)")
    pids = rt.container(positional[0]).pids()
    if fmt == "json":
        from ociruntime import jsonio

        _write_out(jsonio.dumps(pids) + "\n")
        return 0
    import subprocess

    ps_args = positional[1:] or ["-ef"]
    try:
        out = subprocess.run(["ps", *ps_args], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise OciError(f"ps: running ps {' '.join(ps_args)} failed: {e}") from None
    lines = out.splitlines()
    header = lines[0].split()
    if "PID" not in header:
        raise OciError("ps: the ps output has no PID column")
    col = header.index("PID")
    wanted = set(pids)
    kept = [ln for ln in lines[1:] if ln.split()[col].isdigit() and int(ln.split()[col]) in wanted]
    _write_out("\n".join([lines[0], *kept]) + "\n")
    return 0


def list_command(rt, opts: dict[str, object], positional: list[str]) -> int:
    if positional:
        raise UsageError(f"list: unexpected arguments: {' '.join(positional)}")
    fmt = str(opts.get("format") or "table")
    if fmt not in ("table", "json"):
        raise UsageError(f"list: invalid format {fmt!r} (expected table or json)")
    entries = rt.list()
    if opts.get("quiet"):
        _write_out("".join(e["id"] + "\n" for e in entries))
    elif fmt == "json":
        from ociruntime import jsonio

        _write_out((jsonio.dumps(entries) if entries else "null") + "\n")
    else:
        rows = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
        rows += [[e["id"], str(e["pid"]), e["status"], e["bundle"], e["created"], e["owner"]] for e in entries]
        _write_out(_table(rows))
    return 0


def _table(rows: list[list[str]]) -> str:
    """Columns padded like runc's tabwriter (min width 12, padding 3)."""
    widths = [max(12, max(len(r[i]) for r in rows) + 3) for i in range(len(rows[0]) - 1)]
    return "".join("".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + r[-1] + "\n" for r in rows)


def exec_command(rt, opts: dict[str, object], positional: list[str]) -> int:
    if not positional:
        raise UsageError("exec: requires a container ID (usage: ociruntime exec [flags] ID COMMAND [ARGS...])")
    if not positional[1:] and not opts.get("process"):
        raise UsageError("exec: requires a command to run (usage: ociruntime exec [flags] ID COMMAND [ARGS...])")
    gids = [str(g) for g in opts.get("additional_gids") or []]  # type: ignore[union-attr]
    if not all(g.isdigit() for g in gids):
        raise UsageError("exec --additional-gids: expected numbers")
    try:
        return _exec(rt, opts, positional, gids)
    except OptionError as e:
        e.flags.update(cgroups="--cgroup", caps="--cap", process_file="--process")  # the API's keywords
        raise


def _exec(rt, opts: dict[str, object], positional: list[str], gids: list[str]) -> int:
    return rt.container(positional[0]).exec(
        positional[1:] or None, process_file=text_flag(opts, "process"), cwd=text_flag(opts, "cwd"),
        env=opts.get("env"), tty=bool(opts.get("tty")), user=_exec_user(opts.get("user")),
        additional_gids=[int(g) for g in gids], caps=opts.get("cap"), no_new_privs=bool(opts.get("no_new_privs")),
        apparmor=str(opts.get("apparmor") or ""), process_label=str(opts.get("process_label") or ""),
        detach=bool(opts.get("detach")), pid_file=text_flag(opts, "pid_file"),
        pidfd_socket=text_flag(opts, "pidfd_socket"),
        console_socket=text_flag(opts, "console_socket"), preserve_fds=count_flag(opts, "preserve_fds"),
        ignore_paused=bool(opts.get("ignore_paused")), cgroups=opts.get("cgroup"))


def _exec_user(value: object) -> tuple[int, int | None] | None:
    """exec --user UID[:GID]."""
    if not value:
        return None
    uid, _, gid = str(value).partition(":")
    if not uid.isdigit() or (gid and not gid.isdigit()):
        raise UsageError(f"exec --user {value!r}: expected UID[:GID] as numbers")
    return int(uid), int(gid) if gid else None
