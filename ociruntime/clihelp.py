"""`ociruntime COMMAND --help` and the ociruntime(8) man page, from one table of descriptions.

The flags themselves are cli.py's tables (what is parsed); this module only describes them and is
imported only when help is asked for. tests/unit/test_cli_documents.py checks that both tables
name the same flags, and that docs/ociruntime.8 is what `python -m ociruntime.clihelp` writes."""

from __future__ import annotations

from ociruntime.cli import COMMANDS, GLOBAL_FLAGS

# command -> (one-line summary, {flag: description}); a flag's aliases share its description.
HELP: dict[str, tuple[str, dict[str, str]]] = {
    "create": ("create a container from a bundle; it waits for `start` before running its program", {
        "bundle": "path to the bundle directory (default: the current directory)",
        "pid-file": "write the container init's pid to this file",
        "console-socket": "unix socket that receives the pty master (process.terminal: true)",
        "no-pivot": "move the rootfs over / and chroot instead of pivot_root (ramdisk roots)",
        "no-new-keyring": "keep the caller's session keyring instead of a new one per container",
        "preserve-fds": "pass this many extra fds (from 3 on) into the container",
        "pidfd-socket": "unix socket that receives a pidfd of the container's init (SCM_RIGHTS)",
    }),
    "run": ("create and start a container, in the foreground unless --detach", {
        "detach": "return after start instead of waiting for the container to exit",
        "keep": "keep the stopped container (do not delete it) after a foreground run",
        "no-subreaper": "do not become a subreaper of the container's processes",
    }),
    "start": ("run the program of a created container", {}),
    "exec": ("run another process inside a running container", {
        "console-socket": "unix socket that receives the pty master (with --tty)",
        "cwd": "working directory of the process, in the container",
        "env": "add an environment variable KEY=VALUE (repeatable)",
        "tty": "give the process a pty",
        "user": "UID[:GID] to run as",
        "additional-gids": "additional group id (repeatable)",
        "process": "path to a process.json that describes the whole process",
        "detach": "return once the process has started",
        "pid-file": "write the process's pid to this file",
        "process-label": "SELinux label of the process",
        "apparmor": "AppArmor profile of the process",
        "no-new-privs": "set no_new_privs for the process",
        "cap": "add a capability to the bounding, effective and permitted sets (repeatable)",
        "preserve-fds": "pass this many extra fds (from 3 on) into the process",
        "cgroup": "run in this sub-cgroup of the container ([CONTROLLER:]PATH, repeatable)",
        "ignore-paused": "allow exec in a paused container",
        "pidfd-socket": "unix socket that receives a pidfd of the process (SCM_RIGHTS)",
    }),
    "state": ("print the state of a container as JSON", {}),
    "kill": ("send a signal (default SIGTERM) to the container's init", {
        "all": "send it to every process in the container's cgroup",
    }),
    "delete": ("delete a container and what it holds (processes, cgroups, state)", {
        "force": "kill a running container first; succeed even if it does not exist",
    }),
    "pause": ("freeze every process of a container", {}),
    "resume": ("thaw a paused container", {}),
    "ps": ("list the processes of a container (extra arguments go to ps(1))", {
        "format": "table (ps(1) output) or json (the pids)",
    }),
    "events": ("print resource usage statistics and events of a container", {
        "stats": "print one statistics record and exit",
        "interval": "time between statistics records (default 5s)",
    }),
    "update": ("change the resource limits of a running container", {
        "resources": "file with linux.resources JSON, or - for stdin (other flags are then ignored)",
        "blkio-weight": "block IO weight (10 to 1000)",
        "cpu-period": "CPU CFS period in microseconds",
        "cpu-quota": "CPU CFS quota in microseconds per period (-1: none)",
        "cpu-share": "CPU shares (relative weight)",
        "cpu-rt-period": "CPU realtime period in microseconds",
        "cpu-rt-runtime": "CPU realtime runtime in microseconds per period",
        "cpu-burst": "CPU CFS burst in microseconds",
        "cpu-idle": "1 to make the cgroup SCHED_IDLE",
        "cpuset-cpus": "CPUs to run on (0-3,5)",
        "cpuset-mems": "memory nodes to allocate from",
        "memory": "memory limit (bytes, or 64m, 1g)",
        "memory-reservation": "memory soft limit",
        "memory-swap": "memory plus swap limit (-1: unlimited)",
        "kernel-memory": "ignored (kernel memory limits are gone from the kernel), with a warning",
        "kernel-memory-tcp": "ignored, with a warning",
        "pids-limit": "maximum number of processes",
        "l3-cache-schema": "Intel RDT L3 cache schema (refused where there is no resctrl)",
        "mem-bw-schema": "Intel RDT memory bandwidth schema (refused where there is no resctrl)",
    }),
    "list": ("list the containers under --root", {
        "format": "table or json",
        "quiet": "print the IDs only",
    }),
    "spec": ("write a default config.json", {
        "bundle": "directory to write it to",
        "rootless": "a config for an unprivileged user",
    }),
    "features": ("print the runtime-spec features document of this runtime", {}),
    "check": ("check a bundle against this host without creating anything (not in runc)", {
        "bundle": "path to the bundle directory",
    }),
    "inspect": ("show what isolates a container (namespaces, ids, cgroup, mounts, capabilities, "
                "seccomp, rlimits, processes), read from the kernel, and where it differs from "
                "config.json (not in runc)", {
        "format": "text (default) or json",
    }),
    "checkpoint": ("checkpoint a running container with criu (it is deleted afterwards unless "
                   "--leave-running or --pre-dump)", {
        "image-path": "directory for criu's image files (default: ./checkpoint)",
        "work-path": "directory for criu's work files and log dump.log (default: the image directory)",
        "parent-path": "images of a previous --pre-dump, relative to the image directory",
        "leave-running": "leave the container running after checkpointing",
        "tcp-established": "allow open TCP connections",
        "ext-unix-sk": "allow external unix sockets",
        "shell-job": "allow shell jobs (a terminal from outside the container)",
        "lazy-pages": "leave memory pages to be served lazily (userfaultfd; needs criu's lazy-pages daemon)",
        "status-fd": "criu writes a zero byte to this fd once lazy-pages is ready (default: -1)",
        "page-server": "ADDRESS:PORT of a criu page server to send the pages to",
        "file-locks": "checkpoint file locks",
        "pre-dump": "dump the memory only and leave the container running (use with --parent-path later)",
        "manage-cgroups-mode": "criu's cgroup mode: soft (default), full, strict or ignore",
        "empty-ns": "create this namespace on restore but do not restore its contents (network)",
        "auto-dedup": "deduplicate memory images against the parent images",
    }),
    "restore": ("restore a container from criu images, in the foreground unless --detach", {
        "console-socket": "runc's flag; a process.terminal container cannot be restored (criu's command line)",
        "image-path": "directory of the criu images to restore (default: ./checkpoint)",
        "work-path": "directory for criu's work files and log restore.log (default: the image directory)",
        "tcp-established": "restore open TCP connections",
        "ext-unix-sk": "allow external unix sockets",
        "shell-job": "restore a shell job (the caller's terminal and session)",
        "file-locks": "restore file locks",
        "manage-cgroups-mode": "criu's cgroup mode: soft (default), full, strict or ignore",
        "bundle": "path to the bundle directory (default: the current directory)",
        "detach": "return once restored instead of waiting for the container to exit",
        "pid-file": "write the restored init's pid to this file",
        "no-subreaper": "do not become a subreaper of the restored processes (needs --detach)",
        "no-pivot": "accepted for runc compatibility: criu sets up the restored root itself",
        "empty-ns": "create this namespace but do not restore its contents (network)",
        "auto-dedup": "punch restored pages out of the images",
        "lazy-pages": "restore memory lazily (userfaultfd; needs criu's lazy-pages daemon)",
        "lsm-profile": "LSM profile for the restored processes, TYPE:NAME (apparmor or selinux)",
        "lsm-mount-context": "SELinux mount context for the restored mounts",
    }),
}
GLOBAL_HELP = {
    "root": "directory of the containers' state (default /run/ociruntime; $XDG_RUNTIME_DIR/ociruntime when rootless)",
    "log": "append log lines to this file",
    "log-format": "text or json (runc's shapes)",
    "debug": "log debug lines, and a per-phase timing line for create",
    "systemd-cgroup": "cgroupsPath is slice:prefix:name, for the systemd cgroup driver",
    "rootless": "ignore cgroup permission errors: true, false or auto (unprivileged, or in a user namespace)",
    "criu": "path to criu for checkpoint and restore (default: criu in $PATH)",
    "version": "print the version",
    "help": "print this help",
}


def _flag_lines(table: dict[str, tuple[str, bool]], descriptions: dict[str, str]) -> list[str]:
    """One line per flag, its aliases beside it (runc's --name value, -n value)."""
    by_dest: dict[str, list[str]] = {}
    for name, (dest, _) in table.items():
        by_dest.setdefault(dest, []).append(name)
    lines = []
    for names in by_dest.values():
        main = next(n for n in names if n in descriptions)
        takes_value = table[main][1]
        shown = ", ".join(("-" if len(n) == 1 else "--") + n + (" value" if takes_value else "")
                          for n in sorted(names, key=len, reverse=True))
        lines.append((shown, descriptions[main]))
    width = max((len(s) for s, _ in lines), default=0)
    return [f"   {s.ljust(width)}  {d}" for s, d in lines]


def command_usage(command: str) -> str:
    table, positional = COMMANDS[command]
    summary, descriptions = HELP[command]
    if command == "run":
        descriptions = {**HELP["create"][1], **descriptions}
    out = [f"ociruntime {command} - {summary}", "", "usage:",
           f"   ociruntime [global flags] {command} [flags] {positional}".rstrip(), ""]
    if table:
        out += ["flags:", *_flag_lines(table, descriptions)]
    return "\n".join(out) + "\n"


def manpage() -> str:
    """ociruntime(8) in man(7) macros."""
    out = [".TH OCIRUNTIME 8", ".SH NAME", "ociruntime \\- an OCI container runtime, a drop-in for runc",
           ".SH SYNOPSIS", ".B ociruntime", "[global flags] COMMAND [flags] [ID] [args]",
           ".SH GLOBAL FLAGS"]
    out += _man_flags(GLOBAL_FLAGS, GLOBAL_HELP)
    out.append(".SH COMMANDS")
    for command, (table, positional) in COMMANDS.items():
        summary, descriptions = HELP[command]
        if command == "run":
            descriptions = {**HELP["create"][1], **descriptions}
        out += [".SS " + f"{command} {positional}".strip(), summary.replace("-", "\\-")]
        out += _man_flags(table, descriptions)
    out += _man_files()
    out += [".SH SEE ALSO", "runc(8), the OCI runtime-spec: https://github.com/opencontainers/runtime-spec"]
    return "\n".join(out) + "\n"


def _man_files() -> list[str]:
    from ociruntime.state import CONFIG_COPY, CRIU_PIDFILE, EXEC_FIFO, STATE_FILE

    text = (f"a container's state: {STATE_FILE}, {CONFIG_COPY} (its config as created), {EXEC_FIFO} (until "
            f"it is started), {CRIU_PIDFILE} (during a restore). A directory there that is a symbolic link, "
            "holds anything else, or that another user made or may write into is not a container: every "
            "command refuses it and leaves it as it is")
    cache = ("beside the package's bytecode: compiled seccomp programs, one per profile, read back by a later "
             "create or exec that compiles the same profile with the same libseccomp, kernel and runtime; a file "
             "is used only if root or the caller owns it and nobody else may write it or its directory. Nothing "
             "is kept under the state root. Safe to remove at any time")
    return [".SH FILES", ".TP", ".I <root>/<ID>/", text.replace("-", "\\-"),
            ".TP", ".I <site-packages>/ociruntime/__pycache__/seccomp/", cache.replace("-", "\\-")]


def _man_flags(table: dict[str, tuple[str, bool]], descriptions: dict[str, str]) -> list[str]:
    out = []
    for line in _flag_lines(table, descriptions):
        flags, _, text = line.strip().partition("  ")
        out += [".TP", ".B " + flags.replace("-", "\\-"), text.strip().replace("-", "\\-")]
    return out


if __name__ == "__main__":
    import sys

    sys.stdout.write(manpage())
