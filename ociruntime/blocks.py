"""Blocks: modules a path is known to load all of, run in one go from the bytecode cache
(ociruntime.load_block): the file opened and checked once, each module's code read at its
offset and run, without the import system (~0.12 Mi instructions a module, callgrind). Each
module is read on its own, so that a few small buffers are reused rather than one large block
faulted in. Its own module, so that the small commands, which run none, do not load it.

A block lists each module after the modules it imports at its top, a package before its own
modules (tests/unit/test_hot_cache.py); tests/integration/test_lean_commands.py checks each is
what its path loads. What only some hosts or configs load (a cgroup driver, clone3 into a v2
cgroup, the network) is still imported on its own."""

import posix
import sys
import time

import ociruntime

BLOCKS = {
    # `create`'s and `run`'s own process (cli.py, once the ID is checked).
    "create": ("spawn", "create", "linux.cgroups", "linux.cgroups.fs", "linux.cgroups.layout",
               "spectables", "resources", "config", "jsonfile", "bundle", "schema", "_validators",
               "linux.caps", "semantics", "linux.rootless", "linux.namespaces", "linux.kernel", "linux.fork",
               "linux.sync", "linux.initargs"),
    # `exec`'s own process (cli.py): create's block without the config's validation and create.py,
    # with `exec`'s own modules; linux/caps.py and rootless.py for the child it forks.
    "exec": ("clicommands", "spawn", "spectables", "resources", "config", "jsonfile", "execute", "linux.cgroups",
             "linux.cgroups.fs", "linux.caps", "linux.rootless",
             "linux.namespaces", "linux.kernel", "linux.fork", "linux.sync", "linux.initargs"),
    # The child the runtime forks (spawn.py), after linux/security.py and kernel.py, which every
    # child of the runtime loads first; the rest of what it needs it inherits.
    "child": ("linux.mountflags", "linux.mountapi", "linux.rootfs", "linux.devices",
              "linux.procfs", "linux.lsm", "linux.waitexec", "linux.init"),
}


def run(finder, block: str) -> None:
    """Run the block's modules not loaded yet, in BLOCKS order, from the cache `finder`
    (ociruntime._CacheFinder) checked at the start; when a source has changed, or the file has
    been replaced, leave them to be imported one by one (and the changed one found stale)."""
    began = time.perf_counter_ns()
    names = [name for name in (f"ociruntime.{m}" for m in BLOCKS[block]) if name not in sys.modules]
    entries = [finder.entries.get(name) for name in names]
    if not names or None in entries or not all(finder.fresh(e) for e in entries):
        return
    fd = finder.open()
    if fd < 0:
        return
    timed = "importtime" in sys._xoptions
    if timed:
        ociruntime._report_import_time(f"ociruntime bytecode cache: block {block}, checked",
                                       time.perf_counter_ns() - began)
    nested = _Nested(finder, fd, dict(zip(names, entries, strict=True)))
    sys.meta_path.insert(sys.meta_path.index(finder), nested)
    try:
        for name, entry in zip(names, entries, strict=True):
            if name in sys.modules:
                continue  # imported by a package's body before its turn
            began = time.perf_counter_ns()
            code = finder.read(fd, entry)
            if code is None:
                return
            ociruntime._run_module(sys.modules, name, f"{finder.pkg}/{entry[1]}", code)
            if timed:
                ociruntime._report_import_time(name, time.perf_counter_ns() - began)
    finally:
        sys.meta_path.remove(nested)
        posix.close(fd)


class _Nested:
    """While a block runs: a package's body may import one of the package's modules before that
    module's turn (linux/cgroups/__init__.py imports fs.py), read from the same descriptor."""

    def __init__(self, finder, fd: int, entries: dict) -> None:
        self.finder, self.fd, self.entries = finder, fd, entries

    def find_spec(self, name: str, path=None, target=None):
        entry = self.entries.get(name)
        return None if entry is None else self.finder.spec(name, self.fd, entry)
