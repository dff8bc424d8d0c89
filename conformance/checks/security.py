"""config-linux.md: sysctl, seccomp (and its notify socket), rootfs propagation, masked and
read-only paths, personality, memory policy, Intel RDT."""

from __future__ import annotations

import array
import json
import os
import platform
import socket
import threading
import time
from pathlib import Path

from conformance.harness import (
    Context,
    MountInfo,
    Proc,
    check,
    expect,
    fail,
    kv_lines,
    mount_at,
    parse_mountinfo,
    skip,
)

MKDIR_RULE = {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}


@check("linux.sysctl")
def sysctl(ctx: Context) -> None:
    """sysctl values are set in the container's namespaces."""
    b = ctx.sh_bundle("echo F=$(cat /proc/sys/net/ipv4/ip_forward); "
                      "echo S=$(cat /proc/sys/kernel/shm_rmid_forced)", out_mount=False)
    b.config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.shm_rmid_forced": "1"}
    r = ctx.run(b)
    expect(r.ok, f"run failed: {r.tail()}")
    got = kv_lines(r.out)
    expect(got.get("F") == "1" and got.get("S") == "1", f"values: {got}")


def _seccomp_run(ctx: Context, seccomp: dict, script: str) -> Proc:
    b = ctx.sh_bundle(script, out_mount=False)
    b.config["mounts"].append({"destination": "/mnt/a", "type": "tmpfs", "source": "tmpfs"})
    b.config["linux"]["seccomp"] = seccomp
    return ctx.run(b)


@check("seccomp.errno")
def errno(ctx: Context) -> None:
    """SCMP_ACT_ERRNO fails the syscall with EPERM by default and errnoRet when given."""
    r = _seccomp_run(ctx, {"defaultAction": "SCMP_ACT_ALLOW",
                           "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86",
                                             "SCMP_ARCH_X32"],
                           "syscalls": [MKDIR_RULE]},
                     "mkdir /mnt/a/x 2>&1; echo done")
    expect(r.ok, f"run failed: {r.tail()}")
    expect("not permitted" in r.out, f"mkdir did not fail with EPERM: {r.out.strip()!r}")
    rule = dict(MKDIR_RULE, errnoRet=38)
    r = _seccomp_run(ctx, {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule]},
                     "mkdir /mnt/a/x 2>&1; echo done")
    expect(r.ok, f"run failed: {r.tail()}")
    expect("not implemented" in r.out, f"errnoRet 38 not honoured: {r.out.strip()!r}")


@check("seccomp.args")
def args(ctx: Context) -> None:
    """Argument conditions: only chmod to mode 0777 is refused."""
    rules = [{"names": ["chmod"], "action": "SCMP_ACT_ERRNO",
              "args": [{"index": 1, "value": 0o777, "op": "SCMP_CMP_EQ"}]},
             {"names": ["fchmodat"], "action": "SCMP_ACT_ERRNO",
              "args": [{"index": 2, "value": 0o777, "op": "SCMP_CMP_EQ"}]}]
    r = _seccomp_run(ctx, {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules},
                     "touch /mnt/a/f; chmod 755 /mnt/a/f && echo A=ok || echo A=no; "
                     "chmod 777 /mnt/a/f && echo B=ok || echo B=no")
    expect(r.ok, f"run failed: {r.tail()}")
    got = kv_lines(r.out)
    expect(got.get("A") == "ok" and got.get("B") == "no", f"results: {got}")


@check("seccomp.errnoret_unsupported_rejected")
def errnoret_unsupported(ctx: Context) -> None:
    """errnoRet / defaultErrnoRet on an action without errno is an error."""
    bad = []
    r = _seccomp_run(ctx, {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir"], "action": "SCMP_ACT_KILL", "errnoRet": 5}]}, "true")
    if r.ok:
        bad.append("errnoRet on SCMP_ACT_KILL accepted")
    r = _seccomp_run(ctx, {"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 5,
                           "syscalls": [MKDIR_RULE]}, "true")
    if r.ok:
        bad.append("defaultErrnoRet on SCMP_ACT_ALLOW accepted")
    expect(not bad, "; ".join(bad))


class Agent:
    """A seccomp agent on a UNIX socket: records what the runtime sends."""

    def __init__(self, path: str) -> None:
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(4)
        self.srv.settimeout(10)
        self.messages: list[tuple[bytes, list[int], int]] = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        try:
            conn, _ = self.srv.accept()
        except OSError:
            return
        data, fds, calls = b"", array.array("i"), 0
        conn.settimeout(5)
        while True:
            try:
                chunk, anc, _, _ = conn.recvmsg(65536, socket.CMSG_SPACE(16 * fds.itemsize))
            except OSError:
                break
            if anc and calls > 0:
                data += b"\0FDS-AFTER-FIRST\0"
            for level, typ, payload in anc:
                if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                    fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
            if not chunk:
                break
            calls += 1
            data += chunk
        self.messages.append((data, list(fds), calls))
        for fd in fds:  # closing the notify fd lets the blocked syscall fail (ENOSYS)
            os.close(fd)
        conn.close()


@check("seccomp.notify", timeout=30)
def notify(ctx: Context) -> None:
    """SCMP_ACT_NOTIFY: the container process state and the seccomp fd reach listenerPath."""
    path = str(ctx.tmp / "agent.sock")
    agent = Agent(path)
    ctx.cleanups.append(agent.srv.close)
    r = _seccomp_run(ctx, {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": path,
                           "listenerMetadata": "conf-meta",
                           "syscalls": [{"names": ["mkdir", "mkdirat"],
                                         "action": "SCMP_ACT_NOTIFY"}]},
                     "mkdir /mnt/a/x 2>/dev/null; echo done")
    expect(r.ok, f"run failed: {r.tail()}")
    for _ in range(40):
        if agent.messages:
            break
        time.sleep(0.05)
    expect(agent.messages, "nothing arrived on the listener socket")
    data, fds, _ = agent.messages[0]
    expect(b"FDS-AFTER-FIRST" not in data, "file descriptors were sent after the first sendmsg")
    try:
        st = json.loads(data.decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        fail(f"the payload is not one JSON document: {data[:120]!r}")
    problems = []
    if not isinstance(st.get("ociVersion"), str):
        problems.append("no ociVersion")
    if st.get("fds") != ["seccompFd"] or len(fds) != 1:
        problems.append(f"fds {st.get('fds')} with {len(fds)} descriptors")
    if not isinstance(st.get("pid"), int):
        problems.append("no pid")
    if st.get("metadata") != "conf-meta":
        problems.append(f"metadata {st.get('metadata')!r}")
    if not isinstance(st.get("state"), dict) or not st["state"].get("id"):
        problems.append("no container state")
    expect(not problems, "; ".join(problems))


@check("seccomp.listener_unreachable_rejected")
def listener_unreachable(ctx: Context) -> None:
    """A listenerPath nobody listens on is an error."""
    r = _seccomp_run(ctx, {"defaultAction": "SCMP_ACT_ALLOW",
                           "listenerPath": str(ctx.tmp / "nobody.sock"),
                           "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]},
                     "true")
    expect(not r.ok, "the container started although the seccomp state could not be sent")


def _root_mount(ctx: Context, prop: str, shared_parent: bool = False) -> MountInfo:
    b = ctx.bundle(["cat", "/proc/self/mountinfo"], out_mount=False)
    if shared_parent:
        # Make the bundle its own shared mount on the host side, so a slave rootfs has a
        # master to receive from (and shows master:N).
        import subprocess
        path = str(b.path)
        subprocess.run(["mount", "--bind", path, path], check=True)
        ctx.cleanups.append(lambda: subprocess.run(["umount", "-l", path]))
        subprocess.run(["mount", "--make-shared", path], check=True)
    b.config["linux"]["rootfsPropagation"] = prop
    r = ctx.run(b)
    expect(r.ok, f"run failed: {r.tail()}")
    m = mount_at(parse_mountinfo(r.out), "/")
    expect(m is not None, "no / in mountinfo")
    return m


@check("linux.rootfs_propagation_shared")
def prop_shared(ctx: Context) -> None:
    """rootfsPropagation shared: / is in a peer group."""
    m = _root_mount(ctx, "shared")
    expect(any(f.startswith("shared:") for f in m.optional), f"/ fields {m.optional}")


@check("linux.rootfs_propagation_slave")
def prop_slave(ctx: Context) -> None:
    """rootfsPropagation slave: / receives from a master and is not shared."""
    m = _root_mount(ctx, "slave", shared_parent=True)
    expect(any(f.startswith("master:") for f in m.optional)
           and not any(f.startswith("shared:") for f in m.optional), f"/ fields {m.optional}")


@check("linux.rootfs_propagation_private")
def prop_private(ctx: Context) -> None:
    """rootfsPropagation private: / neither sends nor receives."""
    m = _root_mount(ctx, "private")
    expect(not any(f.startswith(("shared:", "master:")) for f in m.optional),
           f"/ fields {m.optional}")


@check("linux.rootfs_propagation_unbindable")
def prop_unbindable(ctx: Context) -> None:
    """rootfsPropagation unbindable: / is unbindable."""
    m = _root_mount(ctx, "unbindable")
    expect("unbindable" in m.optional, f"/ fields {m.optional}")


@check("linux.masked_paths")
def masked_paths(ctx: Context) -> None:
    """maskedPaths cannot be read: files read empty, directories list empty."""
    b = ctx.sh_bundle("echo F=$(cat /data/secret 2>/dev/null); echo D=$(ls /mnt/b | wc -l)",
                      out_mount=False)
    rootfs = b.path / "rootfs"
    (rootfs / "data" / "secret").write_text("hidden")
    (rootfs / "mnt" / "b" / "inside").write_text("hidden")
    b.config["linux"]["maskedPaths"] = ["/data/secret", "/mnt/b"]
    r = ctx.run(b)
    expect(r.ok, f"run failed: {r.tail()}")
    got = kv_lines(r.out)
    expect(got.get("F") == "" and got.get("D") == "0", f"masked paths readable: {got}")


@check("linux.readonly_paths")
def readonly_paths(ctx: Context) -> None:
    """readonlyPaths cannot be written (here /proc/sys inside a private UTS namespace)."""
    b = ctx.sh_bundle("echo conf > /proc/sys/kernel/hostname 2>/dev/null && echo W=ok "
                      "|| echo W=no; touch /mnt/c/f 2>/dev/null && echo T=ok || echo T=no",
                      out_mount=False)
    b.config["root"]["readonly"] = False
    b.config["linux"]["readonlyPaths"] = ["/proc/sys", "/mnt/c"]
    r = ctx.run(b)
    expect(r.ok, f"run failed: {r.tail()}")
    got = kv_lines(r.out)
    expect(got.get("W") == "no" and got.get("T") == "no", f"writes succeeded: {got}")


@check("linux.personality")
def personality(ctx: Context) -> None:
    """personality LINUX32 makes uname report a 32-bit machine."""
    if platform.machine() != "x86_64":
        skip("only judged on x86_64")
    b = ctx.bundle(["uname", "-m"], out_mount=False)
    b.config["linux"]["personality"] = {"domain": "LINUX32"}
    r = ctx.run(b)
    if not r.ok:
        skip(f"runtime refused it (allowed for unsupported values): {r.tail(120)}")
    expect(r.out.strip() in ("i686", "i386"), f"uname -m says {r.out.strip()!r}")


@check("linux.memory_policy")
def memory_policy(ctx: Context) -> None:
    """memoryPolicy MPOL_BIND to node 0 shows in numa_maps."""
    if not Path("/proc/self/numa_maps").exists():
        skip("kernel without NUMA support")
    b = ctx.bundle(["cat", "/proc/self/numa_maps"], out_mount=False)
    b.config["linux"]["memoryPolicy"] = {"mode": "MPOL_BIND", "nodes": "0"}
    r = ctx.run(b)
    if not r.ok:
        skip(f"runtime refused it (allowed for unsupported values): {r.tail(120)}")
    expect("bind:0" in r.out, "memory policy not applied (numa_maps shows no bind:0)")


@check("linux.intel_rdt_unavailable_rejected")
def intel_rdt(ctx: Context) -> None:
    """intelRdt without a mounted resctrl is an error."""
    mounted = any(" resctrl " in ln for ln in Path("/proc/self/mountinfo").read_text()
                  .splitlines())
    if mounted:
        skip("resctrl is mounted here; only the no-resctrl rule is judged")
    b = ctx.bundle(["true"], out_mount=False)
    b.config["linux"]["intelRdt"] = {"closID": "conformance", "l3CacheSchema": "L3:0=f"}
    r = ctx.run(b)
    expect(not r.ok, "intelRdt accepted although no resctrl filesystem is mounted")


@check("linux.net_devices")
def net_devices(ctx: Context) -> None:
    """netDevices: a host interface moves in (renamed), keeps its address and comes up."""
    import subprocess
    host, peer = f"cf{os.getpid() % 10000}a", f"cf{os.getpid() % 10000}b"
    r = subprocess.run(["ip", "link", "add", host, "type", "veth", "peer", "name", peer],
                       capture_output=True, text=True)
    if r.returncode != 0:
        skip(f"cannot create a veth pair: {r.stderr.strip()}")
    ctx.cleanups.append(lambda: subprocess.run(["ip", "link", "del", host],
                                               capture_output=True))
    subprocess.run(["ip", "addr", "add", "10.213.7.1/24", "dev", host], capture_output=True)
    b = ctx.sh_bundle("ip -o addr show dev ceth0; ip -o link show dev ceth0; true",
                      out_mount=False)
    b.config["linux"]["netDevices"] = {host: {"name": "ceth0"}}
    r2 = ctx.run(b)
    if not r2.ok:
        skip(f"runtime refused netDevices (allowed when unsupported): {r2.tail(120)}")
    expect("10.213.7.1/24" in r2.out, f"interface or address missing: {r2.out.strip()!r}")
    expect("UP" in r2.out.split("<", 1)[-1].split(">")[0] if "<" in r2.out else False,
           "interface is not up")
