"""ociruntime: an OCI runtime-spec compliant container runtime, a drop-in for runc.

`from ociruntime import Runtime` is the Python API (ociruntime/api.py); it is loaded on first
use, so that importing the package stays free. `main()` is the command line, the entry point of
every launcher: it loads the package's modules from one cache file (below), then runs cli.py."""

__version__ = "0.1.0"
SPEC_VERSION = "1.3.0"

# The modules every command loads, and all that state/start/kill/delete load, each after the
# modules it imports at its top (tests/unit/test_hot_cache.py checks both).
HOT_MODULES = ("errors", "lean", "timing", "jsonio", "log", "cli", "state", "container", "api", "signals",
               "linux", "linux.freezer")
# The compiled modules they import, loaded first so that running them imports nothing. Those
# that are files (_json) load from the path the cache's builder found them at: a search of
# sys.path would list the directories before theirs (~0.1 ms a call).
HOT_EXTENSIONS = ("_json", "_signal", "fcntl", "select")
# The compiled shim (linux/kernel.py) and cffi's backend, which it imports: loaded the same way
# when a path is recorded (load_extension), so that create does not search sys.path for them.
SHIM_EXTENSIONS = ("_cffi_backend", "ociruntime._shim")


def __getattr__(name: str):
    if name in ("Runtime", "Container"):
        from ociruntime import api

        return getattr(api, name)
    raise AttributeError(f"module 'ociruntime' has no attribute {name!r}")


# A command allocates a few thousand objects that live until it exits; the cyclic collector's
# default gen0 threshold (700) runs ~10 collections over them in `create` alone (~6% of its
# instructions, callgrind) and 3 in `state`, finding nothing to free. Raised so that no command
# collects (none reaches it), while a long-running one (`events`, a foreground `run`) still
# collects now and then.
GC_THRESHOLD = 50_000


def main() -> None:
    """The command line (sys.argv), as every launcher starts it."""
    import gc

    gc.set_threshold(GC_THRESHOLD)
    _load_from_cache()
    from ociruntime.cli import main as cli_main

    cli_main()


# The bytecode cache (ociruntime/bytecache.py builds it). Importing a module costs ~0.1 ms before
# its code runs (finders, path stats, reading and checking its pyc): ~1 ms for the hot modules on
# every call, ~3 ms more for create's. One file holds every module's code object instead, with
# its source's mtime (ns) and size, as a pyc holds them. The hot modules' code, first after the
# index, runs at once; the others load from it when imported (_CacheFinder). The file is
# trusted as the package's pycs are, and only if its owner is root or us and nobody else may
# write it; what is read from it later must be the file checked now (same inode, same mode).
CACHE_MAGIC = b"ociBC004"


def _load_from_cache() -> None:
    import posix
    import sys
    import time

    began = time.perf_counter_ns()
    pkg = __path__[0]
    path = f"{pkg}/__pycache__/modules.{sys.implementation.cache_tag}.bin"
    key = (sys.hexversion, sys.flags.optimize)
    opened = _open_cache(path, key, pkg)
    if opened is None:
        from ociruntime import bytecache

        if not bytecache.rebuild(path, key, pkg):
            return  # the usual imports
        opened = _open_cache(path, key, pkg)
        if opened is None:
            return
    identity, base, entries, hot_code, extensions = opened
    _extension_paths.update(extensions)
    timed = "importtime" in sys._xoptions
    if timed:
        _report_import_time("ociruntime bytecode cache: read, checked", time.perf_counter_ns() - began)
    for name in HOT_EXTENSIONS:
        load_extension(name)
    for (name, rel, *_), code in zip(entries[:len(hot_code)], hot_code, strict=True):
        began = time.perf_counter_ns()
        _run_module(sys.modules, f"ociruntime.{name}", f"{pkg}/{rel}", code)
        if timed:
            _report_import_time(f"ociruntime.{name}", time.perf_counter_ns() - began)
    global _finder
    _finder = _CacheFinder(identity, base, entries[len(hot_code):], pkg, path)
    sys.meta_path.insert(0, _finder)
    if sys.flags.verbose:
        posix.write(2, f"# ociruntime: modules from {path}\n".encode())


_finder = None  # the _CacheFinder main() installed, if any
_extension_paths: dict = {}  # the paths of HOT_EXTENSIONS and SHIM_EXTENSIONS the cache recorded


def load_block(name: str) -> None:
    """Run the modules of a block (ociruntime/blocks.py) from one open of the cache: where there
    is no cache (the usual imports), or a source changed, they are imported when used."""
    if _finder is not None:
        from ociruntime import blocks

        blocks.run(_finder, name)


def load_extension(name: str):
    """The compiled module `name` (of HOT_EXTENSIONS or SHIM_EXTENSIONS), from the path the
    cache recorded if it still loads there, else imported as usual (ImportError if it cannot
    be). A search of sys.path lists each directory it tries for the first time (~50 us each)."""
    import sys
    import time
    from _frozen_importlib import _load
    from _frozen_importlib_external import spec_from_file_location

    origin = _extension_paths.get(name)
    spec = None if origin is None or name in sys.modules else spec_from_file_location(name, origin)
    if spec is not None:
        began = time.perf_counter_ns()
        try:
            module = _load(spec)
        except (ImportError, OSError):
            pass  # moved or gone since (another build of the interpreter, an uninstall): search
        else:
            if "importtime" in sys._xoptions:
                _report_import_time(name, time.perf_counter_ns() - began)
            return module
    __import__(name)
    return sys.modules[name]


def _open_cache(path: str, key: tuple, pkg: str) -> tuple | None:
    """(the file's identity, where the code begins, index entries, the hot modules' code, the
    paths of the compiled hot extensions), or None when the file is missing, not to be trusted,
    or does not match the interpreter or the sources."""
    import marshal
    import posix

    try:
        fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC | posix.O_NOFOLLOW)
    except OSError:
        return None
    try:
        identity = _trusted(fd)
        head = posix.read(fd, 12)
        if head[:8] != CACHE_MAGIC:
            raise ValueError("another format")
        index_len = int.from_bytes(head[8:], "little")
        stored_key, entries, extensions = marshal.loads(posix.read(fd, index_len))
        hot = entries[:len(HOT_MODULES)]
        if stored_key != key or tuple(e[0] for e in hot) != HOT_MODULES:
            raise ValueError("another interpreter, or another list of hot modules")
        for _, rel, mtime_ns, size, *_ in hot:
            st = posix.stat(f"{pkg}/{rel}")
            if st.st_mtime_ns != mtime_ns or st.st_size != size:
                raise ValueError("a source has changed")
        # Module by module: each buffer (42 kB at most) is freed to the heap and reused by the
        # next, where one read of the whole 131 kB would take fresh pages (glibc maps a buffer
        # that large on its own, and unmaps it when freed): ~35 page faults more on every call.
        base = 12 + index_len
        hot_code = [marshal.loads(posix.pread(fd, length, base + offset)) for *_, offset, length in hot]
    except (EOFError, ValueError, TypeError, OSError):
        return None  # untrusted, unreadable, of another shape, stale, or a source has gone
    finally:
        posix.close(fd)
    return identity, base, entries, hot_code, dict(extensions)


def _trusted(fd: int, kind: int = 0o100000) -> tuple:
    """The cache file's identity, if it may be run: a regular file (or `kind`, S_IFDIR: the
    seccomp cache's directory, linux/bpfcache.py) that only root or we own and nobody else may
    write; ValueError otherwise."""
    import posix

    st = posix.fstat(fd)
    if (st.st_mode & 0o170022) != kind or st.st_uid not in (0, posix.geteuid()):
        raise ValueError("not a regular file, writable by others, or someone else's")
    return st.st_dev, st.st_ino, st.st_mode, st.st_uid


class _CacheFinder:
    """Finder and loader of the modules past the hot ones, from the cache file checked at start
    (opened again for each: the runtime's children close the descriptors they do not pass on).
    A module whose source has changed since, or a cache file replaced meanwhile, is left to the
    usual import; a stale cache is removed so that the next call rebuilds it. (The runtime's
    children drop this finder with the others before they enter the container's filesystem:
    linux/init.py, refuse_imports_from_disk.)"""

    def __init__(self, identity: tuple, base: int, entries: list, pkg: str, path: str) -> None:
        import posix

        self.identity, self.base, self.pkg, self.path = identity, base, pkg, path
        self.entries = {f"ociruntime.{e[0]}": e for e in entries}
        self.owner = posix.getpid()

    def find_spec(self, name: str, path=None, target=None):
        import posix

        entry = self.entries.get(name)
        if entry is None or not self.fresh(entry):
            return None
        fd = self.open()
        if fd < 0:
            return None
        try:
            return self.spec(name, fd, entry)
        finally:
            posix.close(fd)

    def spec(self, name: str, fd: int, entry: tuple):
        """The module's spec, its code read from `fd` (open()) for us to run, or None."""
        code = self.read(fd, entry)
        if code is None:
            return None
        spec = _spec(name, self, f"{self.pkg}/{entry[1]}")
        spec.loader_state = code
        return spec

    def fresh(self, entry: tuple) -> bool:
        """Whether the module's source is the one compiled (mtime, size); if not, the cache is
        stale and removed."""
        import posix

        _, rel, mtime_ns, size, _, _ = entry
        try:
            st = posix.stat(f"{self.pkg}/{rel}")
        except OSError:
            return False
        if st.st_mtime_ns != mtime_ns or st.st_size != size:
            self.stale()
            return False
        return True

    def open(self) -> int:
        """A descriptor of the file checked at the start, or -1."""
        import posix

        try:
            fd = posix.open(self.path, posix.O_RDONLY | posix.O_CLOEXEC | posix.O_NOFOLLOW)
        except OSError:
            return -1
        try:
            if _trusted(fd) == self.identity:
                return fd
        except (ValueError, OSError):
            pass
        posix.close(fd)
        return -1

    def read(self, fd: int, entry: tuple):
        """The module's code, read from `fd` (open()), or None."""
        import marshal
        import posix

        try:
            return marshal.loads(posix.pread(fd, entry[5], self.base + entry[4]))
        except (EOFError, ValueError, TypeError, OSError):
            return None

    def create_module(self, spec):
        return None  # the usual module object

    def exec_module(self, module) -> None:
        exec(module.__spec__.loader_state, module.__dict__)

    def stale(self) -> None:
        import posix

        if posix.getpid() == self.owner:  # not from a child of the runtime
            try:
                posix.unlink(self.path)
            except OSError:
                pass
            self.owner = -1


def _run_module(modules: dict, name: str, path: str, code) -> None:
    """What the import system does for a source module, from its code object: a module with the
    same attributes (spec, loader) in sys.modules while its code runs, then an attribute of its
    parent package."""
    if name in modules:
        return
    package = modules[__name__]
    module = type(package)(name)
    spec = _spec(name, type(package.__loader__)(name, path), path)
    module.__spec__, module.__loader__, module.__file__ = spec, spec.loader, path
    parent, _, short = name.rpartition(".")
    module.__package__ = spec.parent
    if spec.submodule_search_locations is not None:
        module.__path__ = spec.submodule_search_locations
    modules[name] = module
    try:
        exec(code, module.__dict__)
    except BaseException:
        del modules[name]
        raise
    setattr(modules[parent], short, module)


def _spec(name: str, loader, origin: str):
    """The spec the import system makes for a source module at `origin` (a package's is its
    __init__.py)."""
    is_package = origin.endswith("/__init__.py")
    spec = type(__spec__)(name, loader, origin=origin, is_package=is_package)
    spec.has_location = True
    if is_package:
        spec.submodule_search_locations = [origin.rpartition("/")[0]]
    return spec


def _report_import_time(what: str, ns: int) -> None:
    """-X importtime's line (module names as the import system prints them) for what it did not
    see: bench/run adds them up, tests/integration/test_lean_commands.py reads the names."""
    import posix

    us = ns // 1000
    posix.write(2, f"import time: {us:9d} | {us:10d} | {what}\n".encode())
