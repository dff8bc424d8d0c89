"""config.md Mounts: order, destinations, sources, and every Linux mount option of the table,
judged from the container's own /proc/self/mountinfo."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from conformance.harness import (
    Bundle,
    Context,
    MountInfo,
    bind_mount,
    check,
    expect,
    fail,
    mount_at,
    parse_mountinfo,
    skip,
    tmpfs_mount,
)

MI = "cat /proc/self/mountinfo"
TARGET = "/mnt/a"


def mountinfo_of(ctx: Context, b: Bundle, may: bool = False) -> list[MountInfo]:
    r = ctx.run(b)
    if not r.ok:
        if may:
            skip(f"runtime refused it (allowed): {r.tail(160)}")
        fail(f"run failed ({r.code}): {r.tail()}")
    return parse_mountinfo(r.out)


def host_tree(ctx: Context, nested_opts: str = "") -> Path:
    """A host directory with a file and a tmpfs mounted on a subdirectory, for the bind and
    recursive-option checks. The tmpfs is ours, under the check's temp dir."""
    top = ctx.tmp / "tree"
    (top / "sub").mkdir(parents=True)
    (top / "file").write_text("top\n")
    r = subprocess.run(["mount", "-t", "tmpfs", "conf-nested", str(top / "sub")],
                       capture_output=True, text=True)
    if r.returncode != 0:
        skip(f"cannot prepare a nested host mount: {r.stderr.strip()}")
    ctx.cleanups.append(lambda: subprocess.run(["umount", "-l", str(top / "sub")],
                                               capture_output=True))
    (top / "sub" / "nested").write_text("nested\n")
    if nested_opts:
        # Per-mount flags only (a bind remount), set after the file exists.
        r = subprocess.run(["mount", "-o", f"remount,bind,{nested_opts}", str(top / "sub")],
                           capture_output=True, text=True)
        if r.returncode != 0:
            skip(f"cannot restrict the nested host mount: {r.stderr.strip()}")
    return top


@check("mounts.order")
def order(ctx: Context) -> None:
    """Mounts are made in the listed order: a later mount on the same path wins."""
    src = ctx.tmp / "src"
    src.mkdir()
    (src / "marker").write_text("bind")
    b = ctx.sh_bundle(f"cat {TARGET}/marker 2>/dev/null || echo MISSING")
    b.config["mounts"] += [tmpfs_mount(TARGET), bind_mount(str(src), TARGET, ["bind"])]
    r = ctx.run(b)
    expect(r.ok, f"run failed: {r.tail()}")
    expect(r.out.strip() == "bind", "the bind mount listed last is not on top")


@check("mounts.relative_destination")
def relative_destination(ctx: Context) -> None:
    """A relative destination is taken relative to the container's /."""
    b = ctx.sh_bundle(MI)
    b.config["mounts"].append(tmpfs_mount("mnt/b"))
    mounts = mountinfo_of(ctx, b, may=True)
    expect(mount_at(mounts, "/mnt/b") is not None, "no mount at /mnt/b")


@check("mounts.bind_relative_source")
def bind_relative_source(ctx: Context) -> None:
    """A bind source relative to the bundle directory works."""
    b = ctx.sh_bundle(f"cat {TARGET}/marker")
    (b.path / "hostdir").mkdir()
    (b.path / "hostdir" / "marker").write_text("relative")
    b.config["mounts"].append(bind_mount("hostdir", TARGET, ["bind"]))
    r = ctx.run(b)
    expect(r.ok and r.out.strip() == "relative", f"got {r.out.strip()!r}: {r.tail()}")


@check("mounts.fs_specific_data")
def fs_specific_data(ctx: Context) -> None:
    """Options the table does not know (tmpfs size=, mode=) reach the filesystem as data."""
    b = ctx.sh_bundle(MI)
    b.config["mounts"].append(tmpfs_mount(TARGET, ["size=1m", "mode=710"]))
    r = ctx.run(b)
    expect(r.ok, f"run failed: {r.tail()}")
    m = mount_at(parse_mountinfo(r.out), TARGET)
    expect(m is not None and {"size=1024k", "mode=710"} <= m.super_opts,
           f"super options {m and sorted(m.super_opts)}")


# --- the Linux mount option table ---------------------------------------------------------

# name -> (mount options to request, predicate on the resulting mount, describe)
Pred = Callable[[MountInfo], bool]


def has(flag: str) -> Pred:
    return lambda m: flag in m.opts or flag in m.super_opts


def lacks(flag: str) -> Pred:
    return lambda m: flag not in m.opts and flag not in m.super_opts


def shared(m: MountInfo) -> bool:
    return any(f.startswith("shared:") for f in m.optional)


def slave(m: MountInfo) -> bool:
    return any(f.startswith("master:") for f in m.optional)


def private(m: MountInfo) -> bool:
    return not any(f.startswith(("shared:", "master:", "unbindable")) for f in m.optional)


def strict(m: MountInfo) -> bool:
    return lacks("relatime")(m) and lacks("noatime")(m)


# Options judged on a fresh tmpfs. The clearing options are requested after their opposite,
# so the runtime has to honour the order and the clearing flag both.
TMPFS_OPTIONS: dict[str, tuple[list[str], Pred]] = {
    "async": (["sync", "async"], lacks("sync")),
    "atime": (["noatime", "atime"], lacks("noatime")),
    "defaults": (["defaults"], has("rw")),
    "dev": (["nodev", "dev"], lacks("nodev")),
    "diratime": (["nodiratime", "diratime"], lacks("nodiratime")),
    "dirsync": (["dirsync"], has("dirsync")),
    "exec": (["noexec", "exec"], lacks("noexec")),
    "iversion": (["iversion"], lambda m: True),
    "lazytime": (["lazytime"], has("lazytime")),
    "loud": (["silent", "loud"], lambda m: True),
    "mand": (["mand"], lambda m: True),
    "noatime": (["noatime"], has("noatime")),
    "nodev": (["nodev"], has("nodev")),
    "nodiratime": (["nodiratime"], has("nodiratime")),
    "noexec": (["noexec"], has("noexec")),
    "noiversion": (["iversion", "noiversion"], lambda m: True),
    "nolazytime": (["lazytime", "nolazytime"], lacks("lazytime")),
    "nomand": (["nomand"], lambda m: True),
    # Linux defaults to relatime unless strictatime is given, so clearing relatime has no
    # visible effect of its own: the option only has to be accepted.
    "norelatime": (["relatime", "norelatime"], lambda m: True),
    "nostrictatime": (["strictatime", "nostrictatime"], lambda m: not strict(m)),
    "nosuid": (["nosuid"], has("nosuid")),
    "nosymfollow": (["nosymfollow"], has("nosymfollow")),
    "relatime": (["relatime"], has("relatime")),
    "ro": (["ro"], has("ro")),
    "rw": (["ro", "rw"], lambda m: "rw" in m.opts),
    "silent": (["silent"], lambda m: True),
    "strictatime": (["strictatime"], strict),
    "suid": (["nosuid", "suid"], lacks("nosuid")),
    "symfollow": (["nosymfollow", "symfollow"], lacks("nosymfollow")),
    "sync": (["sync"], has("sync")),
}

# Propagation options on a bind mount of a host directory.
BIND_OPTIONS: dict[str, tuple[list[str], Pred]] = {
    "shared": (["rbind", "shared"], shared),
    "rshared": (["rbind", "rshared"], shared),
    "private": (["rbind", "private"], private),
    "rprivate": (["rbind", "rprivate"], private),
    "slave": (["rbind", "slave"], lambda m: not shared(m)),
    "rslave": (["rbind", "rslave"], lambda m: not shared(m)),
    "unbindable": (["rbind", "unbindable"], lambda m: "unbindable" in m.optional),
    "runbindable": (["rbind", "runbindable"], lambda m: "unbindable" in m.optional),
}

# Recursive (AT_RECURSIVE) options: judged on the host tmpfs nested inside the bound tree.
# Setting ones start from a plain nested mount, clearing ones from a restricted one.
RECURSIVE_SET: dict[str, Pred] = {
    "rro": has("ro"), "rnosuid": has("nosuid"),
    "rnoexec": has("noexec"), "rnoatime": has("noatime"), "rnodiratime": has("nodiratime"),
    "rnosymfollow": has("nosymfollow"), "rstrictatime": strict,
}
RECURSIVE_CLEAR: dict[str, Pred] = {
    "rrw": lambda m: "rw" in m.opts, "rsuid": lacks("nosuid"), "rdev": lacks("nodev"),
    "rexec": lacks("noexec"), "ratime": lacks("noatime"), "rdiratime": lacks("nodiratime"),
    "rsymfollow": lacks("nosymfollow"), "rrelatime": has("relatime"),
    # Clearing relatime has no visible effect of its own (see norelatime): accepted is enough.
    "rnorelatime": lambda m: True, "rnostrictatime": lambda m: not strict(m),
}
RESTRICTED = "ro,nosuid,nodev,noexec,noatime,nodiratime,nosymfollow"

# Levels of the option table, to tell "must work" from "may be refused".
MAY_OPTIONS = {"mand", "nomand", "tmpcopyup"}
SHOULD_OPTIONS = {"nosymfollow", "symfollow", "idmap", "ridmap"} | set(RECURSIVE_SET) | set(
    RECURSIVE_CLEAR)


def _tmpfs_check(name: str, opts: list[str], pred: Pred) -> None:
    def run(ctx: Context) -> None:
        b = ctx.sh_bundle(MI)
        b.config["mounts"].append(tmpfs_mount(TARGET, opts))
        m = mount_at(mountinfo_of(ctx, b, may=name in MAY_OPTIONS), TARGET)
        expect(m is not None, f"nothing mounted at {TARGET}")
        expect(pred(m), f"options {opts}: mount shows {sorted(m.opts)} / {sorted(m.super_opts)}")

    run.__doc__ = f"Mount option `{name}` on a tmpfs."
    check(f"mountopt.{name}")(run)


def _bind_check(name: str, opts: list[str], pred: Pred) -> None:
    def run(ctx: Context) -> None:
        src = ctx.tmp / "src"
        src.mkdir()
        b = ctx.sh_bundle(MI)
        b.config["mounts"].append(bind_mount(str(src), TARGET, opts))
        m = mount_at(mountinfo_of(ctx, b), TARGET)
        expect(m is not None, f"nothing mounted at {TARGET}")
        expect(pred(m), f"options {opts}: propagation fields {m.optional}")

    run.__doc__ = f"Propagation option `{name}` on a bind mount."
    check(f"mountopt.{name}")(run)


def _recursive_check(name: str, pred: Pred, clearing: bool) -> None:
    def run(ctx: Context) -> None:
        top = host_tree(ctx, RESTRICTED if clearing else "")
        b = ctx.sh_bundle(MI)
        b.config["mounts"].append(bind_mount(str(top), TARGET, ["rbind", name]))
        mounts = mountinfo_of(ctx, b, may=False)
        m = mount_at(mounts, TARGET + "/sub")
        expect(m is not None, "the nested mount is missing (rbind)")
        expect(pred(m), f"nested mount shows {sorted(m.opts)} after `{name}`")

    run.__doc__ = f"Recursive option `{name}` reaches a nested mount."
    check(f"mountopt.{name}")(run)


for _name, (_opts, _pred) in TMPFS_OPTIONS.items():
    _tmpfs_check(_name, _opts, _pred)
for _name, (_opts, _pred) in BIND_OPTIONS.items():
    _bind_check(_name, _opts, _pred)
for _name, _pred in RECURSIVE_SET.items():
    _recursive_check(_name, _pred, clearing=False)
for _name, _pred in RECURSIVE_CLEAR.items():
    _recursive_check(_name, _pred, clearing=True)


@check("mountopt.bind")
def opt_bind(ctx: Context) -> None:
    """`bind` shows the source's files but not mounts nested in it."""
    top = host_tree(ctx)
    b = ctx.sh_bundle(f"cat {TARGET}/file; cat {TARGET}/sub/nested 2>/dev/null || echo NONE")
    b.config["mounts"].append(bind_mount(str(top), TARGET, ["bind"]))
    r = ctx.run(b)
    expect(r.ok, f"run failed: {r.tail()}")
    expect(r.out.split() == ["top", "NONE"], f"saw {r.out.split()}")


@check("mountopt.rbind")
def opt_rbind(ctx: Context) -> None:
    """`rbind` brings nested mounts along."""
    top = host_tree(ctx)
    b = ctx.sh_bundle(f"cat {TARGET}/file {TARGET}/sub/nested")
    b.config["mounts"].append(bind_mount(str(top), TARGET, ["rbind"]))
    r = ctx.run(b)
    expect(r.ok and r.out.split() == ["top", "nested"], f"saw {r.out.split()}: {r.tail()}")


@check("mountopt.remount")
def opt_remount(ctx: Context) -> None:
    """`remount` changes an existing mount (here: to read-only) instead of stacking one."""
    b = ctx.sh_bundle(MI)
    b.config["mounts"] += [tmpfs_mount(TARGET),
                           tmpfs_mount(TARGET, ["remount", "ro"])]
    mounts = mountinfo_of(ctx, b)
    at = [m for m in mounts if m.point == TARGET]
    expect(at and "ro" in at[-1].opts, f"{TARGET} is not read-only after remount")
    expect(len(at) == 1, f"{len(at)} mounts stacked at {TARGET}")


@check("mountopt.tmpcopyup")
def opt_tmpcopyup(ctx: Context) -> None:
    """`tmpcopyup` (MAY): a tmpfs over /etc starts with the image's /etc content."""
    b = ctx.sh_bundle("cat /etc/group")
    b.config["mounts"].append(tmpfs_mount("/etc", ["tmpcopyup"]))
    r = ctx.run(b)
    if not r.ok:
        skip(f"runtime refused tmpcopyup (allowed): {r.tail(120)}")
    expect("root:x:0:" in r.out, "the tmpfs over /etc is empty")


def _idmap_tree(ctx: Context) -> Path:
    src = ctx.tmp / "idsrc"
    src.mkdir()
    f = src / "owned"
    f.write_text("x")
    os.chown(f, 1000, 1000)
    return src


@check("mountopt.idmap")
def opt_idmap(ctx: Context) -> None:
    """`idmap` with mount uid/gid mappings changes the ownership seen through the mount."""
    src = _idmap_tree(ctx)
    b = ctx.sh_bundle(f"stat -c %u:%g {TARGET}/owned")
    m = bind_mount(str(src), TARGET, ["bind", "idmap"])
    m["uidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
    m["gidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
    b.config["mounts"].append(m)
    r = ctx.run(b)
    if not r.ok:
        fail(f"idmapped bind mount failed: {r.tail(160)}")
    expect(r.out.strip() != "1000:1000", "ownership unchanged: no idmapping applied")


@check("mountopt.ridmap")
def opt_ridmap(ctx: Context) -> None:
    """`ridmap` applies the mapping to nested mounts too."""
    top = host_tree(ctx)
    os.chown(top / "sub" / "nested", 1000, 1000)
    b = ctx.sh_bundle(f"stat -c %u:%g {TARGET}/sub/nested")
    m = bind_mount(str(top), TARGET, ["rbind", "ridmap"])
    m["uidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
    m["gidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
    b.config["mounts"].append(m)
    r = ctx.run(b)
    if not r.ok:
        fail(f"ridmapped bind mount failed: {r.tail(160)}")
    expect(r.out.strip() != "1000:1000", "nested ownership unchanged: no recursive idmapping")


@check("mounts.idmap_without_mapping_rejected")
def idmap_without_mapping(ctx: Context) -> None:
    """`idmap` with no mappings and no user namespace is an error."""
    src = _idmap_tree(ctx)
    b = ctx.sh_bundle("true")
    b.config["mounts"].append(bind_mount(str(src), TARGET, ["bind", "idmap"]))
    r = ctx.run(b)
    expect(not r.ok, "idmap without any mapping or user namespace was accepted")
