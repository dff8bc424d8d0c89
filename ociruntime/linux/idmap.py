"""Id-mapped bind mounts (`idmap`/`ridmap`, mounts[].uidMappings/gidMappings).

MOUNT_ATTR_IDMAP needs CAP_SYS_ADMIN in the user namespace owning the source's filesystem (the
host's, for a host directory), and it applies only to a detached mount. So the trees are made
by stage1 while it is still in the host's user and mount namespaces, before it enters the
container's: open_tree(OPEN_TREE_CLONE) of the source, mount_setattr(MOUNT_ATTR_IDMAP) with a
user namespace carrying the mapping, kept as fds. The init inherits them and attaches each
at its in-root target by fd (rootfs.Rootfs.mount), inside the container's namespaces."""

from __future__ import annotations

import os

from ociruntime.config import Config, IdMapping, Mount
from ociruntime.errors import SetupError, SyscallError
from ociruntime.linux import mountapi, namespaces
from ociruntime.linux.kernel import kernel

AT_FDCWD = -100
MOUNT_ATTR_IDMAP = 0x00100000


def prepare(config: Config, bundle: str) -> dict[Mount, int]:
    """The id-mapped detached tree of each idmap/ridmap mount, by Mount; fds are O_CLOEXEC."""
    trees: dict[Mount, int] = {}
    userns: dict[bytes, int] = {}  # one helper namespace per distinct mapping
    try:
        for m in config.mounts:
            if m.idmap():
                trees[m] = _idmapped_tree(m, config, bundle, userns)
    except BaseException:
        for fd in trees.values():
            os.close(fd)
        raise
    finally:
        for fd in userns.values():
            os.close(fd)
    return trees


def _idmapped_tree(m: Mount, config: Config, bundle: str, userns: dict[bytes, int]) -> int:
    source = m.source if m.source.startswith("/") else os.path.join(bundle, m.source)
    what = f"{m.idmap()} mount {source} on {m.destination}"
    if not m.is_bind():
        raise SetupError(f"{what}: idmap and ridmap apply to bind mounts only")
    recursive_bind = "rbind" in m.options
    flags = (mountapi.OPEN_TREE_CLONE | mountapi.OPEN_TREE_CLOEXEC
             | (mountapi.AT_RECURSIVE if recursive_bind else 0))
    tree = kernel().open_tree(AT_FDCWD, source, flags, f"{what}: open_tree")
    try:
        ns_fd = _userns_for(m, config, userns, what)
        attr_flags = mountapi.AT_EMPTY_PATH | (mountapi.AT_RECURSIVE if m.idmap() == "ridmap" else 0)
        kernel().mount_setattr(tree, "", attr_flags, MOUNT_ATTR_IDMAP, 0, 0,
                               f"{what}: mount_setattr(MOUNT_ATTR_IDMAP)", userns_fd=ns_fd)
    except BaseException:
        os.close(tree)
        raise
    return tree


def _userns_for(m: Mount, config: Config, cache: dict[bytes, int], what: str) -> int:
    """The mount's own mappings, else the container's (a new user namespace's maps, or the
    joined namespace itself); validation refused idmap with neither."""
    linux = config.linux
    if m.uid_mappings or m.gid_mappings:
        uids, gids = m.uid_mappings, m.gid_mappings
    else:
        ns = linux.namespace("user")
        if ns is not None and ns.path:
            key = ns.path.encode()
            if key not in cache:
                try:
                    cache[key] = os.open(ns.path, os.O_RDONLY | os.O_CLOEXEC)
                except OSError as e:
                    raise SyscallError.from_os(e, f"{what}: open user namespace {ns.path}") from None
            return cache[key]
        uids, gids = linux.uid_mappings, linux.gid_mappings
    key = namespaces.id_map_text(uids) + b"|" + namespaces.id_map_text(gids)
    if key not in cache:
        cache[key] = userns_with_maps(uids, gids, what)
    return cache[key]


def userns_with_maps(uids: list[IdMapping], gids: list[IdMapping], what: str) -> int:
    """An fd of a new user namespace with these maps: a child unshares it and waits while we
    (privileged, outside it) write its maps and open /proc/CHILD/ns/user; then it exits. The
    namespace lives on through the fd."""
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    hold_r, hold_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        os.close(hold_w)
        code = 1
        try:
            kernel().unshare(namespaces.CLONE_FLAGS["user"], "unshare a user namespace")
            os.write(ready_w, b"u")
            os.read(hold_r, 1)  # EOF when the parent is done (or dead)
            code = 0
        except SetupError:
            pass
        finally:
            os._exit(code)
    os.close(ready_w)
    os.close(hold_r)
    try:
        if os.read(ready_r, 1) != b"u":
            raise SetupError(f"{what}: cannot create a user namespace for the id mapping")
        for name, mappings in (("uid_map", uids), ("gid_map", gids)):
            _write_map(pid, name, mappings, what)
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise SyscallError.from_os(e, f"{what}: user namespace for the id mapping") from None
    finally:
        os.close(ready_r)
        os.close(hold_w)
        os.waitpid(pid, 0)


def _write_map(pid: int, name: str, mappings: list[IdMapping], what: str) -> None:
    fd = os.open(f"/proc/{pid}/{name}", os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, namespaces.id_map_text(mappings))
    except OSError as e:
        raise SyscallError.from_os(e, f"{what}: write {name}") from None
    finally:
        os.close(fd)
