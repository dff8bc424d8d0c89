"""config-linux.md Devices (linux.devices) and the console of a terminal container."""

from __future__ import annotations

import array
import os
import socket
import threading
import time

from conformance.harness import Context, check, expect, fail, kv_lines, skip


@check("devices.create")
def create(ctx: Context) -> None:
    """Configured char, block and fifo devices exist with type, numbers, mode and owner."""
    b = ctx.sh_bundle("for d in cchar cblock cfifo; do "
                      "echo $d=$(stat -c '%F|%t:%T|%a|%u:%g' /dev/$d); done", out_mount=False)
    b.config["linux"]["devices"] = [
        {"path": "/dev/cchar", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640,
         "uid": 1, "gid": 2},
        {"path": "/dev/cblock", "type": "b", "major": 7, "minor": 0, "fileMode": 0o600,
         "uid": 0, "gid": 0},
        {"path": "/dev/cfifo", "type": "p", "fileMode": 0o644},
    ]
    r = ctx.run(b)
    expect(r.ok, f"run failed: {r.tail()}")
    got = kv_lines(r.out)
    want = {"cchar": ("character special file", "1:3", "640", "1:2"),
            "cblock": ("block special file", "7:0", "600", "0:0")}
    wrong = {}
    for d, (kind, num, mode, owner) in want.items():
        parts = (got.get(d) or "").split("|")
        if len(parts) != 4 or parts[0] != kind or parts[1] != num or parts[2] != mode \
                or parts[3] != owner:
            wrong[d] = got.get(d)
    if not (got.get("cfifo") or "").startswith("fifo"):
        wrong["cfifo"] = got.get("cfifo")
    expect(not wrong, f"devices differ: {wrong}")


@check("devices.outside_dev")
def outside_dev(ctx: Context) -> None:
    """A device path outside /dev works (MAY)."""
    b = ctx.sh_bundle("stat -c %F:%t:%T /mnt/a/conf-zero", out_mount=False)
    b.config["mounts"].append({"destination": "/mnt/a", "type": "tmpfs", "source": "tmpfs"})
    b.config["linux"]["devices"] = [{"path": "/mnt/a/conf-zero", "type": "c", "major": 1,
                                     "minor": 5}]
    r = ctx.run(b)
    if not r.ok:
        skip(f"runtime refused a device outside /dev (allowed): {r.tail(120)}")
    expect(r.out.strip() == "character special file:1:5", f"got {r.out.strip()!r}")


@check("devices.path_conflict_rejected")
def path_conflict(ctx: Context) -> None:
    """A device whose path holds a different existing file is an error."""
    b = ctx.sh_bundle("true", out_mount=False)
    (b.path / "rootfs" / "data" / "conflict").write_text("not a device")
    b.config["root"]["readonly"] = False
    b.config["linux"]["devices"] = [{"path": "/data/conflict", "type": "c", "major": 1,
                                     "minor": 3}]
    r = ctx.run(b)
    expect(not r.ok, "a regular file was silently replaced by (or kept instead of) a device")


def _console_receiver(path: str, result: dict) -> socket.socket:
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    srv.settimeout(10)

    def serve() -> None:
        try:
            conn, _ = srv.accept()
            fds = array.array("i")
            _, anc, _, _ = conn.recvmsg(1024, socket.CMSG_SPACE(4 * fds.itemsize))
            for level, typ, data in anc:
                if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                    fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
            if fds:
                result["fd"] = fds[0]
            conn.close()
        except OSError as e:
            result["error"] = str(e)

    threading.Thread(target=serve, daemon=True).start()
    return srv


def _read_master(fd: int, deadline: float) -> str:
    os.set_blocking(fd, False)
    chunks = []
    while time.monotonic() < deadline:
        try:
            data = os.read(fd, 4096)
            if not data:
                break
            chunks.append(data)
            if b"END" in b"".join(chunks):
                break
        except BlockingIOError:
            time.sleep(0.05)
        except OSError:  # EIO once the slave side is closed
            break
    return b"".join(chunks).decode(errors="replace")


@check("devices.console")
def console(ctx: Context) -> None:
    """With terminal=true, /dev/console is the container's pseudoterminal."""
    sock = str(ctx.tmp / "console.sock")
    result: dict = {}
    srv = _console_receiver(sock, result)
    ctx.cleanups.append(srv.close)
    b = ctx.sh_bundle("echo C=$(stat -c %t:%T /dev/console); echo T=$(stat -L -c %t:%T "
                      "/proc/self/fd/0); echo END; sleep 1", out_mount=False)
    b.config["process"]["terminal"] = True
    cid, p = ctx.create(b, extra=("--console-socket", sock))
    if not p.ok:
        fail(f"create with a terminal failed: {p.tail()}")
    for _ in range(100):
        if "fd" in result or "error" in result:
            break
        time.sleep(0.05)
    if "fd" not in result:
        fail(f"no pty master received on the console socket {result.get('error', '')}")
    master = result["fd"]
    ctx.cleanups.append(lambda: os.close(master))
    p = ctx.rt("start", cid)
    expect(p.ok, f"start failed: {p.tail()}")
    out = _read_master(master, time.monotonic() + 5)
    got = kv_lines(out.replace("\r", ""))
    expect(got.get("C") and got.get("C") == got.get("T"),
           f"/dev/console {got.get('C')!r} vs the terminal {got.get('T')!r}")
