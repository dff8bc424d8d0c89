"""Command line: runc's commands and flags, parsed by hand (argparse costs ~5 ms per call).

Thin by design: parse, configure logging, call the library, turn OciError into exit status 1
and one log line. Each command imports only the modules it needs."""

from __future__ import annotations

import os
import sys

from ociruntime import log
from ociruntime.errors import NotRunning, OciError, UsageError

# name -> (dest, takes_value); aliases share a dest. Go-style: -x, --x, -name, --name, --name=v.
GLOBAL_FLAGS = {
    "root": ("root", True), "log": ("log", True), "log-format": ("log_format", True),
    "debug": ("debug", False), "systemd-cgroup": ("systemd_cgroup", False),
    "rootless": ("rootless", True), "criu": ("criu", True),
    "version": ("version", False), "v": ("version", False),
    "help": ("help", False), "h": ("help", False),
}
CREATE_FLAGS = {
    "bundle": ("bundle", True), "b": ("bundle", True), "pid-file": ("pid_file", True),
    "console-socket": ("console_socket", True), "no-pivot": ("no_pivot", False),
    "no-new-keyring": ("no_new_keyring", False), "preserve-fds": ("preserve_fds", True),
    "pidfd-socket": ("pidfd_socket", True),
}
COMMANDS: dict[str, tuple[dict[str, tuple[str, bool]], str]] = {
    # command -> (flags, positional usage)
    "create": (CREATE_FLAGS, "ID"),
    "run": ({**CREATE_FLAGS, "detach": ("detach", False), "d": ("detach", False),
             "keep": ("keep", False), "no-subreaper": ("no_subreaper", False)}, "ID"),
    "start": ({}, "ID"),
    "exec": ({"console-socket": ("console_socket", True), "cwd": ("cwd", True),
              "env": ("env[]", True), "e": ("env[]", True), "tty": ("tty", False), "t": ("tty", False),
              "user": ("user", True), "u": ("user", True),
              "additional-gids": ("additional_gids[]", True), "g": ("additional_gids[]", True),
              "process": ("process", True), "p": ("process", True),
              "detach": ("detach", False), "d": ("detach", False), "pid-file": ("pid_file", True),
              "process-label": ("process_label", True), "apparmor": ("apparmor", True),
              "no-new-privs": ("no_new_privs", False), "cap": ("cap[]", True), "c": ("cap[]", True),
              "preserve-fds": ("preserve_fds", True), "cgroup": ("cgroup[]", True),
              "ignore-paused": ("ignore_paused", False), "pidfd-socket": ("pidfd_socket", True)},
             "ID COMMAND [ARGS...]"),
    "state": ({}, "ID"),
    "kill": ({"all": ("all", False), "a": ("all", False)}, "ID [SIGNAL]"),
    "delete": ({"force": ("force", False), "f": ("force", False)}, "ID"),
    "pause": ({}, "ID"),
    "events": ({"stats": ("stats", False), "interval": ("interval", True)}, "ID"),
    "update": ({"resources": ("resources", True), "r": ("resources", True),
                **{flag: (flag.replace("-", "_"), True) for flag in (
                    "blkio-weight", "cpu-period", "cpu-quota", "cpu-share", "cpu-rt-period", "cpu-rt-runtime",
                    "cpu-burst", "cpu-idle", "cpuset-cpus", "cpuset-mems", "memory", "memory-reservation",
                    "memory-swap", "kernel-memory", "kernel-memory-tcp", "pids-limit", "l3-cache-schema",
                    "mem-bw-schema")},
                "cpu-shares": ("cpu_share", True)}, "ID"),
    "resume": ({}, "ID"),
    "ps": ({"format": ("format", True), "f": ("format", True)}, "ID [ps options]"),
    "list": ({"format": ("format", True), "f": ("format", True),
              "quiet": ("quiet", False), "q": ("quiet", False)}, ""),
    "spec": ({"bundle": ("bundle", True), "b": ("bundle", True),
              "rootless": ("rootless", False)}, ""),
    "features": ({}, ""),
    "check": ({"bundle": ("bundle", True), "b": ("bundle", True)}, ""),
    "inspect": ({"format": ("format", True), "f": ("format", True)}, "ID"),
    "checkpoint": ({**{f: (f.replace("-", "_"), True) for f in (
                        "image-path", "work-path", "parent-path", "status-fd", "page-server",
                        "manage-cgroups-mode")},
                    **{f: (f.replace("-", "_"), False) for f in (
                        "leave-running", "tcp-established", "ext-unix-sk", "shell-job", "lazy-pages",
                        "file-locks", "pre-dump", "auto-dedup")},
                    "empty-ns": ("empty_ns[]", True)}, "ID"),
    "restore": ({**{f: (f.replace("-", "_"), True) for f in (
                     "console-socket", "image-path", "work-path", "manage-cgroups-mode", "pid-file",
                     "lsm-profile", "lsm-mount-context")},
                 **{f: (f.replace("-", "_"), False) for f in (
                     "tcp-established", "ext-unix-sk", "shell-job", "file-locks", "no-subreaper",
                     "no-pivot", "auto-dedup", "lazy-pages")},
                 "bundle": ("bundle", True), "b": ("bundle", True),
                 "detach": ("detach", False), "d": ("detach", False),
                 "empty-ns": ("empty_ns[]", True)}, "ID"),
}
USAGE = """usage: ociruntime [global flags] COMMAND [flags] [ID] [args]

An OCI runtime (runtime-spec 1.3.0), flag-compatible with runc.

commands: create, start, run, exec, state, kill, delete, pause, resume, ps, events,
          update, list, spec, features, check, inspect, checkpoint, restore
global flags: --root DIR (default /run/ociruntime, or $XDG_RUNTIME_DIR/ociruntime rootless),
              --log FILE, --log-format text|json,
              --debug, --systemd-cgroup, --rootless true|false|auto, --criu PATH, --version
"""


def _split_flag(arg: str) -> tuple[str, str | None] | None:
    """'--name=v' -> ('name', 'v'); '-x' -> ('x', None); not a flag -> None."""
    if len(arg) < 2 or arg[0] != "-" or arg == "--":
        return None
    name = arg[2:] if arg.startswith("--") else arg[1:]
    if "=" in name:
        name, value = name.split("=", 1)
        return name, value
    return name, None


def _parse_bool(flag: str, value: str) -> bool:
    if value in ("true", "1", "t", "T", "TRUE", "True"):
        return True
    if value in ("false", "0", "f", "F", "FALSE", "False"):
        return False
    raise UsageError(f"invalid boolean value {value!r} for flag --{flag}")


def parse_flags(args: list[str], table: dict[str, tuple[str, bool]], where: str,
                stop_at_positional: bool) -> tuple[dict[str, object], list[str]]:
    """Parse flags from `table` anywhere in args (or until the first positional)."""
    opts: dict[str, object] = {}
    positional: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            positional.extend(args[i:])
            break
        split = _split_flag(arg)
        if split is None:
            positional.append(arg)
            if stop_at_positional:
                positional.extend(args[i:])
                break
            continue
        name, value = split
        if name not in table:
            raise UsageError(f"{where}: flag provided but not defined: -{name}")
        dest, takes_value = table[name]
        if takes_value:
            if value is None:
                if i >= len(args):
                    raise UsageError(f"{where}: flag needs an argument: -{name}")
                value = args[i]
                i += 1
            if dest.endswith("[]"):  # a flag that may be repeated
                opts.setdefault(dest[:-2], []).append(value)  # type: ignore[union-attr]
            else:
                opts[dest] = value
        else:
            opts[dest] = True if value is None else _parse_bool(name, value)
    return opts, positional


def _one_id(command: str, positional: list[str], extra_allowed: int = 0) -> str:
    if not positional:
        raise UsageError(f"{command}: requires a container ID (usage: ociruntime {command} "
                         f"{COMMANDS[command][1]})")
    if len(positional) > 1 + extra_allowed:
        raise UsageError(f"{command}: unexpected arguments: {' '.join(positional[1 + extra_allowed:])}")
    return positional[0]


def _version() -> str:
    import ociruntime
    from ociruntime.linux.seccomp import libseccomp_version

    return (f"ociruntime version {ociruntime.__version__}\nspec: {ociruntime.SPEC_VERSION}\n"
            f"python: {sys.version.split()[0]}\nlibseccomp: {libseccomp_version()}\n")


def _write_out(text: str) -> None:
    data = text.encode()
    while data:
        data = data[os.write(1, data):]


def run_command(command: str, gopts: dict[str, object], opts: dict[str, object],
                positional: list[str]) -> int:
    root = str(gopts.get("root") or "")
    if not root and command not in ("spec", "features", "check"):
        from ociruntime.state import default_root

        root = default_root()
    if command in ("state", "start", "kill", "delete", "create", "run", "list", "pause", "resume", "ps",
                   "events", "update"):
        from ociruntime import container as commands
    if command == "state":
        _write_out(commands.state_json(root, _one_id(command, positional)) + "\n")
        return 0
    if command == "start":
        commands.start(root, _one_id(command, positional))
        return 0
    if command == "kill":
        cid = _one_id(command, positional, extra_allowed=1)
        sig = positional[1] if len(positional) > 1 else "SIGTERM"
        commands.kill(root, cid, sig, all_processes=bool(opts.get("all")))
        return 0
    if command == "delete":
        commands.delete(root, _one_id(command, positional), force=bool(opts.get("force")))
        return 0
    if command in ("pause", "resume"):
        getattr(commands, command)(root, _one_id(command, positional))
        return 0
    if command == "ps":
        return _ps(commands, root, opts, positional)
    if command == "events":
        return _events(commands, root, _one_id(command, positional), opts)
    if command == "update":
        commands.update(root, _one_id(command, positional), _update_resources(opts))
        return 0
    if command == "list":
        if positional:
            raise UsageError(f"list: unexpected arguments: {' '.join(positional)}")
        fmt = str(opts.get("format") or "table")
        if fmt not in ("table", "json"):
            raise UsageError(f"list: invalid format {fmt!r} (expected table or json)")
        _write_out(commands.list_containers(root, fmt, quiet=bool(opts.get("quiet"))))
        return 0
    if command in ("create", "run"):
        return _create_or_run(commands, root, command, opts, gopts, positional)
    if command == "spec":
        from ociruntime import spec

        if positional:
            raise UsageError(f"spec: unexpected arguments: {' '.join(positional)}")
        spec.write_default(str(opts.get("bundle") or "."), rootless=bool(opts.get("rootless")))
        return 0
    if command == "exec":
        from ociruntime import execute

        if not positional:
            raise UsageError("exec: requires a container ID (usage: ociruntime exec [flags] ID COMMAND [ARGS...])")
        return execute.exec_in(root, positional[0], execute.ExecOptions(opts, positional[1:]))
    if command == "features":
        from ociruntime import features

        _write_out(features.document_text() + "\n")
        return 0
    if command in ("checkpoint", "restore"):
        return _checkpoint_or_restore(root, command, opts, gopts, positional)
    if command == "check":
        from ociruntime import check

        problems = check.check_bundle(str(opts.get("bundle") or "."),
                                      systemd_cgroup=bool(gopts.get("systemd_cgroup")))
        _write_out("".join(p + "\n" for p in problems) or "ok: bundle and host look fine\n")
        return 1 if problems else 0
    if command == "inspect":
        return _inspect(root, opts, positional)
    raise UsageError(f"unknown command {command!r}")


def _inspect(root: str, opts: dict[str, object], positional: list[str]) -> int:
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


def _create_or_run(commands, root: str, command: str, opts: dict[str, object],
                   gopts: dict[str, object], positional: list[str]) -> int:
    from ociruntime import timing

    cid = _one_id(command, positional)
    from ociruntime.state import validate_id

    validate_id(cid)
    detach = command == "create" or bool(opts.get("detach"))
    options = commands.CreateOptions(opts, gopts, foreground=not detach)
    if command == "create":
        commands.create(root, cid, options)
        log.debug(f"create {cid}: {timing.breakdown()}")
        return 0
    return commands.run(root, cid, options, detach=detach,
                        subreaper=not opts.get("no_subreaper"), keep=bool(opts.get("keep")),
                        on_created=lambda: log.debug(f"create {cid}: {timing.breakdown()}"))


def _checkpoint_or_restore(root: str, command: str, opts: dict[str, object],
                           gopts: dict[str, object], positional: list[str]) -> int:
    from ociruntime import checkpoint

    cid = _one_id(command, positional)
    if command == "checkpoint":
        checkpoint.checkpoint(root, cid, checkpoint.CheckpointOptions(opts, gopts))
        return 0
    from ociruntime import container

    detach = bool(opts.get("detach"))
    return checkpoint.restore(root, cid, container.CreateOptions(opts, gopts, foreground=not detach),
                              checkpoint.RestoreOptions(opts, gopts), detach=detach,
                              subreaper=not opts.get("no_subreaper"))


def _events(commands, root: str, cid: str, opts: dict[str, object]) -> int:
    """--stats: one record. Otherwise, like runc, a stats record after every --interval and an
    `oom` record whenever the container's memory cgroup has an OOM, until the container stops."""
    from ociruntime import jsonio

    if opts.get("stats"):
        event = commands.stats_event(root, cid)
        event["data"] = runc_stats(event["data"])
        _write_out(jsonio.dumps(event) + "\n")
        return 0
    interval = _duration(str(opts.get("interval") or "5s"))
    try:
        watch = commands.oom_watch(root, cid)
    except NotRunning:
        return 0
    try:
        return _event_stream(commands, root, cid, interval, watch)
    finally:
        if watch is not None:
            watch.close()


def _event_stream(commands, root: str, cid: str, interval: float, watch) -> int:
    import select
    import time

    from ociruntime import jsonio

    poller = select.poll()
    if watch is not None:
        poller.register(watch.fd, watch.events())
    oom = jsonio.dumps({"type": "oom", "id": cid}) + "\n"
    next_stats = time.monotonic() + interval
    while True:
        left = next_stats - time.monotonic()
        if left > 0:
            if watch is None:
                time.sleep(left)
            elif poller.poll(left * 1000):
                if watch.ready():
                    _write_out(oom)
                if watch.gone:
                    poller.unregister(watch.fd)
                    watch = None
            continue
        next_stats += interval
        try:
            event = commands.stats_event(root, cid)
        except OciError:
            return 0  # the container has gone: the stream ends
        event["data"] = runc_stats(event["data"])
        _write_out(jsonio.dumps(event) + "\n")


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
        if dest in opts and not os.path.isdir("/sys/fs/resctrl/info"):
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
        return _size(value) if kind == "size" else int(value)
    except ValueError:
        raise UsageError(f"update --{dest.replace('_', '-')}: {value!r} is not a number") from None


def _resources_document(path: str) -> dict:
    from ociruntime import bundle, jsonio, schema

    if path == "-":  # go-runc (docker update, kubelet) writes the JSON to a pipe
        data = b""
        while chunk := os.read(0, 65536):
            data += chunk
            if len(data) > MAX_RESOURCES_BYTES:
                raise UsageError(f"--resources -: more than {MAX_RESOURCES_BYTES} bytes on stdin")
        try:
            doc = jsonio.loads(data.decode())
        except (UnicodeDecodeError, ValueError) as e:
            raise UsageError(f"--resources -: not valid JSON: {e}") from None
    else:
        doc = bundle.read_document(path, "--resources")
    problems = schema.validate({"ociVersion": "1.0.0", "linux": {"resources": doc}}, "config")
    if problems:
        from ociruntime.errors import ConfigError

        raise ConfigError([p.removeprefix("linux.resources.") for p in problems], source="--resources")
    return dict(doc)  # type: ignore[arg-type]


def _size(text: str) -> int:
    """runc's memory sizes (Go's units.RAMInBytes): bytes, or a k/m/g/t/p suffix (binary, with
    optional "i" and "b": 64m, 64MiB, 1.5g); -1 means unlimited."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
    low = text.strip().lower().removesuffix("b").removesuffix("i").rstrip()
    if low and low[-1] in units:
        return int(float(low[:-1]) * units[low[-1]])
    return int(low)


def _ps(commands, root: str, opts: dict[str, object], positional: list[str]) -> int:
    """runc's `ps`: the container's pids as JSON, or the host's `ps` output cut to them."""
    if not positional:
        raise UsageError("ps: requires a container ID (usage: ociruntime ps [-f table|json] ID [ps options])")
    fmt = str(opts.get("format") or "table")
    if fmt not in ("table", "json"):
        raise UsageError(f"ps: invalid format {fmt!r} (expected table or json)")
    pids = commands.container_pids(root, positional[0])
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


def _report(err: OciError) -> None:
    """Every problem on stderr, one per line; one log line (callers such as containerd show the
    last error line of the log), carrying the first problem and how many more there are."""
    lines = err.details() if hasattr(err, "details") else [str(err)]
    more = f" (and {len(lines) - 1} more problems: see stderr)" if len(lines) > 1 else ""
    if log.to_file() or log.uses_json():
        log.error(lines[0] + more)  # to --log, or as JSON on stderr for a caller parsing it
    if log.to_file() or not log.uses_json():
        os.write(2, "".join(f"ociruntime: {m}\n" for m in lines).encode(errors="replace"))


def _os_error_text(err: OSError) -> str:
    reason = err.strerror or str(err)
    if err.filename is not None:
        target = f"{err.filename} -> {err.filename2}" if err.filename2 is not None else str(err.filename)
        return f"{target}: {reason}"
    return reason


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    code = 1
    try:
        code = _main(args)
    except OciError as err:
        _report(err)
        code = err.exit_code
    except KeyboardInterrupt:
        code = 130
    except OSError as err:
        # The library words the failures it expects; any other file error still gets one line
        # naming the file (read-only or full --root, EIO), never "internal error".
        _report(OciError(_os_error_text(err)))
        code = 1
    except BaseException as err:  # a traceback is a bug: it goes to the log, never to stdout
        import traceback

        log.error(f"internal error: {err!r}")
        if log.debug_enabled():
            log.debug("".join(traceback.format_exception(err)))
        os.write(2, f"ociruntime: internal error: {err!r}\n".encode(errors="replace"))
        code = 1
    sys.stdout.flush()
    # Interpreter shutdown costs ~5 ms and does nothing we need: all our files are raw fds.
    os._exit(code)


def _main(args: list[str]) -> int:
    gopts, rest = parse_flags(args, GLOBAL_FLAGS, "global flags", stop_at_positional=True)
    fmt = str(gopts.get("log_format") or "text")
    if fmt not in ("text", "json"):
        raise UsageError(f"--log-format: invalid value {fmt!r} (expected text or json)")
    log.configure(str(gopts["log"]) if gopts.get("log") else None, fmt, bool(gopts.get("debug")))
    if gopts.get("version"):
        _write_out(_version())
        return 0
    if gopts.get("help") or not rest:
        _write_out(USAGE)
        return 0 if gopts.get("help") else 1
    command, cargs = rest[0], rest[1:]
    if command == "help":
        if len(rest) > 1 and rest[1] in COMMANDS:
            from ociruntime import clihelp

            _write_out(clihelp.command_usage(rest[1]))
        else:
            _write_out(USAGE)
        return 0
    if command not in COMMANDS:
        raise UsageError(f"unknown command {command!r} (commands: {', '.join(COMMANDS)})")
    rootless = str(gopts.get("rootless") or "auto")
    if rootless not in ("true", "false", "auto"):
        raise UsageError(f"--rootless: invalid value {rootless!r} (expected true, false or auto)")
    # exec and ps: everything after the ID is the command (or ps's options) with its own flags.
    stop = command in ("exec", "ps")
    if _asks_for_help(cargs, stop):
        from ociruntime import clihelp

        _write_out(clihelp.command_usage(command))
        return 0
    opts, positional = parse_flags(cargs, COMMANDS[command][0], command, stop_at_positional=stop)
    return run_command(command, gopts, opts, positional)


def _asks_for_help(args: list[str], stop_at_positional: bool) -> bool:
    for arg in args:
        if arg in ("-h", "--h", "-help", "--help"):
            return True
        if arg == "--" or (stop_at_positional and not arg.startswith("-")):
            return False
    return False
