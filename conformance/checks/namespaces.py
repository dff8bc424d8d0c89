"""config-linux.md Namespaces and user namespace mappings, runtime-linux.md, default devices."""

from __future__ import annotations

import os
from pathlib import Path

from conformance.harness import (
    Bundle,
    Context,
    check,
    expect,
    fail,
    kv_lines,
    mount_at,
    parse_mountinfo,
    skip,
)

NS_FILES = {"pid": "pid", "network": "net", "mount": "mnt", "ipc": "ipc", "uts": "uts",
            "user": "user", "cgroup": "cgroup", "time": "time"}
PRINT_NS = " ; ".join(f"echo {t}=$(readlink /proc/self/ns/{f})" for t, f in NS_FILES.items())
USER_MAP = [{"containerID": 0, "hostID": 200000, "size": 65536}]


def with_userns(b: Bundle) -> None:
    b.config["linux"]["namespaces"].append({"type": "user"})
    b.config["linux"]["uidMappings"] = USER_MAP
    b.config["linux"]["gidMappings"] = USER_MAP
    # sysfs and cgroupfs cannot be mounted from an unprivileged user namespace that does not
    # own the host's network/cgroup namespaces on every kernel: keep the bundle minimal.
    b.config["mounts"] = [m for m in b.config["mounts"]
                          if m["destination"] not in ("/sys", "/sys/fs/cgroup", "/out")]


def ns_of_container(ctx: Context, b: Bundle) -> dict[str, str]:
    r = ctx.run(b)
    if not r.ok:
        fail(f"run failed: {r.tail()}")
    return kv_lines(r.out)


def _ns_check(ns_type: str) -> None:
    def run(ctx: Context) -> None:
        if not Path(f"/proc/self/ns/{NS_FILES[ns_type]}").exists():
            skip(f"kernel has no {ns_type} namespace")
        b = ctx.sh_bundle(PRINT_NS, out_mount=False)
        if ns_type == "user":
            with_userns(b)
        elif ns_type not in [n["type"] for n in b.config["linux"]["namespaces"]]:
            b.config["linux"]["namespaces"].append({"type": ns_type})
        got = ns_of_container(ctx, b).get(ns_type)
        mine = os.readlink(f"/proc/self/ns/{NS_FILES[ns_type]}")
        expect(got and got != mine, f"{ns_type} namespace is the runtime's ({got})")

    run.__doc__ = f"A `{ns_type}` entry without path gives a new namespace of that type."
    check(f"ns.new_{ns_type}")(run)


for _t in NS_FILES:
    _ns_check(_t)


@check("ns.inherit")
def inherit(ctx: Context) -> None:
    """Namespace types left out of the list are shared with the runtime."""
    b = ctx.sh_bundle(PRINT_NS, out_mount=False)
    b.config["linux"]["namespaces"] = [{"type": "mount"}, {"type": "pid"}]
    b.config.pop("hostname", None)  # a hostname needs a private UTS namespace
    b.config["mounts"] = [m for m in b.config["mounts"] if m["destination"] != "/sys"]
    b.config["mounts"].append({"destination": "/sys", "type": "bind", "source": "/sys",
                               "options": ["rbind", "ro"]})
    got = ns_of_container(ctx, b)
    shared = [t for t in ("network", "ipc", "uts", "cgroup", "user")
              if got.get(t) != os.readlink(f"/proc/self/ns/{NS_FILES[t]}")]
    expect(not shared, f"new namespaces although not requested: {shared}")


def _sleeper(ctx: Context) -> int:
    a = ctx.sh_bundle("sleep 60", name="holder")
    aid = ctx.started(a)
    return int(ctx.state(aid)["pid"])


@check("ns.join_path")
def join_path(ctx: Context) -> None:
    """A namespace path places the process in that namespace."""
    pid = _sleeper(ctx)
    b = ctx.sh_bundle(PRINT_NS, out_mount=False)
    b.config["linux"]["namespaces"] = [
        {"type": n["type"], "path": f"/proc/{pid}/ns/{NS_FILES[n['type']]}"}
        if n["type"] in ("network", "uts", "ipc") else n
        for n in b.config["linux"]["namespaces"]]
    got = ns_of_container(ctx, b)
    wrong = [t for t in ("network", "uts", "ipc")
             if got.get(t) != os.readlink(f"/proc/{pid}/ns/{NS_FILES[t]}")]
    expect(not wrong, f"not joined: {wrong}")


@check("ns.path_wrong_type_rejected")
def path_wrong_type(ctx: Context) -> None:
    """A path to a namespace of another type is an error."""
    pid = _sleeper(ctx)
    b = ctx.bundle(["true"])
    b.config["linux"]["namespaces"] = [
        {"type": "network", "path": f"/proc/{pid}/ns/uts"} if n["type"] == "network" else n
        for n in b.config["linux"]["namespaces"]]
    expect(not ctx.run(b).ok, "a uts namespace was accepted as the network namespace")


@check("ns.path_relative_rejected")
def path_relative(ctx: Context) -> None:
    """A relative namespace path is refused."""
    b = ctx.bundle(["true"])
    b.config["linux"]["namespaces"] = [
        {"type": "network", "path": "proc/self/ns/net"} if n["type"] == "network" else n
        for n in b.config["linux"]["namespaces"]]
    expect(not ctx.run(b).ok, "a relative namespace path was accepted")


@check("ns.duplicate_rejected")
def duplicate(ctx: Context) -> None:
    """Two entries of one namespace type are an error."""
    b = ctx.bundle(["true"])
    b.config["linux"]["namespaces"].append({"type": "uts"})
    expect(not ctx.run(b).ok, "duplicate uts entries were accepted")


@check("ns.user_mappings")
def user_mappings(ctx: Context) -> None:
    """uidMappings/gidMappings show up in the user namespace's maps."""
    b = ctx.sh_bundle("cat /proc/self/uid_map; cat /proc/self/gid_map", out_mount=False)
    with_userns(b)
    r = ctx.run(b)
    expect(r.ok, f"run failed: {r.tail()}")
    rows = [ln.split() for ln in r.out.splitlines() if ln.strip()]
    expect(rows == [["0", "200000", "65536"]] * 2, f"maps: {rows}")


@check("ns.user_no_chown")
def user_no_chown(ctx: Context) -> None:
    """Realising the mapping does not chown the root filesystem."""
    b = ctx.sh_bundle("true", out_mount=False)
    with_userns(b)
    r = ctx.run(b)
    expect(r.ok, f"run failed: {r.tail()}")
    st = (b.path / "rootfs" / "bin" / "busybox").stat()
    st2 = (b.path / "rootfs").stat()
    expect(st.st_uid == 0 and st2.st_uid == 0, "rootfs ownership changed on the host")


@check("ns.time_offsets")
def time_offsets(ctx: Context) -> None:
    """timeOffsets apply in a new time namespace."""
    if not Path("/proc/self/ns/time").exists():
        skip("kernel has no time namespace")
    b = ctx.bundle(["cat", "/proc/self/timens_offsets"], out_mount=False)
    b.config["linux"]["namespaces"].append({"type": "time"})
    b.config["linux"]["timeOffsets"] = {"monotonic": {"secs": 86400, "nanosecs": 0},
                                        "boottime": {"secs": 172800, "nanosecs": 0}}
    r = ctx.run(b)
    if not r.ok:
        skip(f"runtime refused it (allowed for unsupported values): {r.tail(120)}")
    rows = {ln.split()[0]: ln.split()[1] for ln in r.out.splitlines() if ln.strip()}
    expect(rows.get("monotonic") == "86400" and rows.get("boottime") == "172800",
           f"offsets: {rows}")


# --- runtime-linux.md ---------------------------------------------------------------------


@check("linux.fds")
def fds(ctx: Context) -> None:
    """Only stdin, stdout and stderr are open in the program."""
    b = ctx.sh_bundle("ls -l /proc/self/fd/", out_mount=False)
    r = ctx.run(b)
    expect(r.ok, f"run failed: {r.tail()}")
    extra = []
    for ln in r.out.splitlines():
        parts = ln.split()
        if "->" not in parts:
            continue
        fd, target = parts[parts.index("->") - 1], parts[-1]
        # ls's own handle on the directory it lists is not a leak.
        if fd not in ("0", "1", "2") and not target.startswith("/proc/"):
            extra.append(f"{fd}->{target}")
    expect(not extra, f"extra descriptors: {extra}")


@check("linux.dev_symlinks")
def dev_symlinks(ctx: Context) -> None:
    """/dev/fd, /dev/stdin, /dev/stdout, /dev/stderr link into /proc/self/fd."""
    b = ctx.sh_bundle("for l in fd stdin stdout stderr; do echo $l=$(readlink /dev/$l); done",
                      out_mount=False)
    r = ctx.run(b)
    expect(r.ok, f"run failed: {r.tail()}")
    got = kv_lines(r.out)
    want = {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
            "stderr": "/proc/self/fd/2"}
    wrong = {k: got.get(k) for k, v in want.items() if got.get(k) != v}
    expect(not wrong, f"wrong or missing links: {wrong}")


@check("linux.default_filesystems")
def default_filesystems(ctx: Context) -> None:
    """/proc, /sys, /dev/pts and /dev/shm are there with their types."""
    b = ctx.bundle(["cat", "/proc/self/mountinfo"], out_mount=False)
    r = ctx.run(b)
    expect(r.ok, f"run failed: {r.tail()}")
    mounts = parse_mountinfo(r.out)
    want = {"/proc": "proc", "/sys": "sysfs", "/dev/pts": "devpts", "/dev/shm": "tmpfs"}
    wrong = {p: (mount_at(mounts, p).fstype if mount_at(mounts, p) else None)
             for p, t in want.items()
             if not mount_at(mounts, p) or mount_at(mounts, p).fstype != t}
    expect(not wrong, f"missing or wrong: {wrong}")


@check("devices.defaults")
def default_devices(ctx: Context) -> None:
    """null, zero, full, random, urandom, tty are character devices with the right numbers."""
    want = {"null": "1:3", "zero": "1:5", "full": "1:7", "random": "1:8", "urandom": "1:9",
            "tty": "5:0"}
    script = " ; ".join(f"echo {d}=$(stat -c %t:%T /dev/{d} 2>/dev/null)"
                        f"$(test -c /dev/{d} && echo :c)" for d in want)
    r = ctx.run(ctx.sh_bundle(script, out_mount=False))
    expect(r.ok, f"run failed: {r.tail()}")
    got = kv_lines(r.out)
    wrong = {}
    for d, num in want.items():
        maj, mnr = num.split(":")
        exp = f"{int(maj):x}:{int(mnr):x}:c"
        if got.get(d) != exp:
            wrong[d] = got.get(d)
    expect(not wrong, f"missing or wrong devices: {wrong}")


@check("devices.ptmx")
def ptmx(ctx: Context) -> None:
    """/dev/ptmx is the container's /dev/pts/ptmx (symlink or bind)."""
    b = ctx.sh_bundle("echo L=$(readlink /dev/ptmx); echo A=$(stat -L -c %d:%i /dev/ptmx); "
                      "echo B=$(stat -c %d:%i /dev/pts/ptmx)", out_mount=False)
    r = ctx.run(b)
    expect(r.ok, f"run failed: {r.tail()}")
    got = kv_lines(r.out)
    ok = got.get("L") in ("pts/ptmx", "/dev/pts/ptmx") or (got.get("A") and
                                                          got.get("A") == got.get("B"))
    expect(ok, f"/dev/ptmx is not the devpts ptmx: {got}")
