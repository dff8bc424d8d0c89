"""Command line: runc's commands and flags, parsed by hand (argparse costs ~5 ms per call).

Thin by design: parse, configure logging, call the library, turn OciError into exit status 1
and one log line. Each command imports only the modules it needs."""

import posix
import sys

from ociruntime import log
from ociruntime.errors import OciError, UsageError

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
        data = data[posix.write(1, data):]


CONTAINER_COMMANDS = ("state", "start", "kill", "delete", "pause", "resume", "update", "ps", "events", "list",
                      "create", "run", "exec")


def run_command(command: str, gopts: dict[str, object], opts: dict[str, object],
                positional: list[str]) -> int:
    if command in CONTAINER_COMMANDS:
        from ociruntime.api import Runtime

        rt = Runtime(str(gopts.get("root") or ""), systemd_cgroup=bool(gopts.get("systemd_cgroup")),
                     rootless=str(gopts.get("rootless") or "auto"))
        return _container_command(rt, command, opts, positional)
    if command == "spec":
        from ociruntime import spec

        if positional:
            raise UsageError(f"spec: unexpected arguments: {' '.join(positional)}")
        spec.write_default(str(opts.get("bundle") or "."), rootless=bool(opts.get("rootless")))
        return 0
    if command == "features":
        from ociruntime import features

        _write_out(features.document_text() + "\n")
        return 0
    if command == "check":
        from ociruntime import check

        problems = check.check_bundle(str(opts.get("bundle") or "."),
                                      systemd_cgroup=bool(gopts.get("systemd_cgroup")))
        _write_out("".join(p + "\n" for p in problems) or "ok: bundle and host look fine\n")
        return 1 if problems else 0
    from ociruntime import clicommands
    from ociruntime.state import default_root

    root = str(gopts.get("root") or "") or default_root()
    if command in ("checkpoint", "restore"):
        return clicommands.checkpoint_or_restore(root, command, opts, gopts, positional)
    if command == "inspect":
        return clicommands.inspect(root, opts, positional)
    raise UsageError(f"unknown command {command!r}")


def _container_command(rt, command: str, opts: dict[str, object], positional: list[str]) -> int:
    """The commands of the Python API (ociruntime/api.py): flags in, typed calls, output out."""
    if command in ("create", "run"):
        return _create_or_run(rt, command, opts, positional)
    if command in ("list", "exec", "ps", "events", "update"):
        if command == "exec":
            from ociruntime import load_block

            load_block("exec")
        from ociruntime import clicommands

        return getattr(clicommands, f"{command}_command")(rt, opts, positional)
    if command == "kill":
        c = rt.container(_one_id(command, positional, extra_allowed=1))
        c.kill(positional[1] if len(positional) > 1 else "SIGTERM", all_processes=bool(opts.get("all")))
        return 0
    c = rt.container(_one_id(command, positional))
    if command == "state":
        from ociruntime import jsonio

        _write_out(jsonio.dumps_pretty(c.state()) + "\n")
    elif command == "delete":
        c.delete(force=bool(opts.get("force")))
    else:  # start, pause, resume
        getattr(c, command)()
    return 0


def count_flag(opts: dict[str, object], dest: str) -> int:
    """A flag taking a count (--preserve-fds): absent is 0."""
    text = str(opts.get(dest) or 0)
    if not text.isdigit():
        raise UsageError(f"--{dest.replace('_', '-')}: {text!r} is not a non-negative number")
    return int(text)


def create_flags(opts: dict[str, object]) -> dict:
    """The flags `create`, `run` and `restore` share, as CreateOptions' keyword arguments."""
    return {"console_socket": text_flag(opts, "console_socket"), "pid_file": text_flag(opts, "pid_file"),
            "pidfd_socket": text_flag(opts, "pidfd_socket"), "no_pivot": bool(opts.get("no_pivot")),
            "no_new_keyring": bool(opts.get("no_new_keyring")), "preserve_fds": count_flag(opts, "preserve_fds")}


def text_flag(opts: dict[str, object], dest: str) -> str | None:
    return str(opts[dest]) if opts.get(dest) else None


def _create_or_run(rt, command: str, opts: dict[str, object], positional: list[str]) -> int:
    from ociruntime import load_block, timing

    cid = _one_id(command, positional)
    load_block("create")
    bundle = str(opts.get("bundle") or ".")
    if command == "create":
        rt.create(cid, bundle, **create_flags(opts))
        log.debug(f"create {cid}: {timing.breakdown()}")
        return 0
    return rt.run(cid, bundle, detach=bool(opts.get("detach")), keep=bool(opts.get("keep")),
                  subreaper=not opts.get("no_subreaper"),
                  on_created=lambda: log.debug(f"create {cid}: {timing.breakdown()}"), **create_flags(opts))


def _report(err: OciError) -> None:
    """Every problem on stderr, one per line; one log line (callers such as containerd show the
    last error line of the log), carrying the first problem and how many more there are."""
    lines = err.details() if hasattr(err, "details") else [str(err)]
    more = f" (and {len(lines) - 1} more problems: see stderr)" if len(lines) > 1 else ""
    if log.to_file() or log.uses_json():
        log.error(lines[0] + more)  # to --log, or as JSON on stderr for a caller parsing it
    if log.to_file() or not log.uses_json():
        posix.write(2, "".join(f"ociruntime: {m}\n" for m in lines).encode(errors="replace"))


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
        posix.write(2, f"ociruntime: internal error: {err!r}\n".encode(errors="replace"))
        code = 1
    sys.stdout.flush()
    # Interpreter shutdown costs ~5 ms and does nothing we need: all our files are raw fds.
    posix._exit(code)


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
