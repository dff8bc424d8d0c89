"""The bytecode cache (ociruntime/__init__.py, bytecache.py): every CLI call runs the modules all
commands need from one file, and loads the others from it when they are imported, instead of
importing each (~1 ms a call, ~3 ms a create). It must run exactly what the sources say, never code
someone else could have written, and fall back to the usual imports.

Each test works on its own copy of the package, so that it can edit sources and caches."""

from __future__ import annotations

import ast
import json
import marshal
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import ociruntime
from ociruntime.blocks import BLOCKS

PACKAGE = Path(ociruntime.__file__).parent
CACHE = f"__pycache__/modules.{sys.implementation.cache_tag}.bin"
PURELIB = sysconfig.get_paths()["purelib"]  # cffi, for the child side's modules


@pytest.fixture
def pkg(tmp_path: Path) -> Path:
    """A copy of the package without bytecode (the compiled shim comes along, unused here)."""
    copy = tmp_path / "pkg" / "ociruntime"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def probe(pkg: Path, body: str, *flags: str, before: str = "") -> dict:
    """Run `body` after loading the package as `main()` does, in a fresh interpreter started as
    the launcher starts it (-I -S); `body` sets `out`, which comes back as JSON. `before` runs
    first, after the package's own __init__."""
    text = ("import json, sys\n"
            f"sys.path.insert(0, {str(pkg.parent)!r}); sys.path.append({PURELIB!r})\n"
            "import ociruntime\n"
            f"{before}\n"
            "asked = []\n"
            "class Recorder:\n"
            "    @staticmethod\n"
            "    def find_spec(name, path=None, target=None):\n"
            "        asked.append(name)\n"
            "sys.meta_path.insert(0, Recorder)\n"
            "ociruntime._load_from_cache()\n"
            "sys.meta_path.remove(Recorder)\n"
            "def loader(name):\n"
            "    __import__(name)\n"
            "    return type(sys.modules[name].__loader__).__name__\n"
            "out = {}\n"
            f"{body}\n"
            "print(json.dumps(out))\n")
    res = subprocess.run([sys.executable, "-I", "-S", *flags, "-c", text], capture_output=True, text=True,
                         cwd="/", timeout=60)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.splitlines()[-1])


FROM_CACHE = "_CacheFinder"  # the loader of a module loaded lazily from the cache


LOADED = ("out['asked'] = asked\n"
          "out['origins'] = {n: sys.modules['ociruntime.' + n].__spec__.origin for n in ociruntime.HOT_MODULES}\n")


def test_the_hot_modules_run_from_the_cache_in_an_order_that_imports_nothing(pkg: Path) -> None:
    """Each hot module comes after those it imports: running them asks the import system for
    nothing but the listed extension modules, the first time (which writes the cache) and after."""
    # The builder's own imports: _ast and __future__ compile the modules (bytecache._compiled),
    # the shim and cffi's backend are imported for their paths.
    builds = ["ociruntime.bytecache", "__future__", "_ast", "_cffi_backend", "ociruntime._shim"]
    for attempt, builder in (("writes the cache", builds), ("reads it", [])):
        out = probe(pkg, LOADED)
        assert [n for n in out["asked"] if n not in ociruntime.HOT_EXTENSIONS] == builder, attempt
        for name, origin in out["origins"].items():
            rel = name.replace(".", "/")
            assert origin in (f"{pkg}/{rel}.py", f"{pkg}/{rel}/__init__.py"), (attempt, name, origin)
        assert (pkg / CACHE).is_file(), attempt


def test_a_call_reads_the_hot_modules_in_buffers_the_heap_reuses(pkg: Path) -> None:
    """Each hot module's code is read on its own (42 kB at most): one read of them all (131 kB)
    was above glibc's mmap threshold (128 kB), so every call mapped fresh pages for its buffer
    and unmapped them again (~35 page faults, ~0.1 ms of `state` here)."""
    record = ("import posix\n"
              "reads = []\n"
              "def recorded(call):\n"
              "    def wrapper(fd, n, *offset):\n"
              "        if posix.readlink(f'/proc/self/fd/{fd}').endswith('.bin'):\n"
              "            reads.append(n)\n"
              "        return call(fd, n, *offset)\n"
              "    return wrapper\n"
              "posix.read, posix.pread = recorded(posix.read), recorded(posix.pread)\n")
    probe(pkg, "")  # writes the cache
    out = probe(pkg, LOADED + "out['reads'] = reads\n", before=record)
    assert [n for n in out["asked"] if n not in ociruntime.HOT_EXTENSIONS] == [], "not run from the cache"
    assert max(out["reads"]) <= 64 << 10, out["reads"]
    assert len(out["reads"]) >= len(ociruntime.HOT_MODULES)


def test_the_other_modules_load_from_the_cache_when_imported(pkg: Path) -> None:
    """create's modules and the child side (a module, a subpackage and its modules): lazily,
    from the cache, each with its source as origin."""
    probe(pkg, "")
    names = ["ociruntime.create", "ociruntime.linux.cgroups", "ociruntime.linux.cgroups.v1", "ociruntime.linux.init"]
    out = probe(pkg, f"out['loaders'] = [loader(n) for n in {names!r}]\n"
                     f"out['origins'] = [sys.modules[n].__file__ for n in {names!r}]\n"
                     "out['path'] = ociruntime.linux.cgroups.__path__")
    assert out["loaders"] == [FROM_CACHE] * len(names)
    assert out["origins"] == [f"{pkg}/create.py", f"{pkg}/linux/cgroups/__init__.py", f"{pkg}/linux/cgroups/v1.py",
                              f"{pkg}/linux/init.py"]
    assert out["path"] == [f"{pkg}/linux/cgroups"]


def test_the_runtimes_children_load_from_it_with_their_descriptors_closed(pkg: Path) -> None:
    """A child of the runtime closes every descriptor it does not pass on, then imports the
    child side: the cache is opened again for each module (keeping one open failed with EBADF)."""
    probe(pkg, "")
    out = probe(pkg, "import posix\nposix.closerange(3, 1 << 20)\nout['loader'] = loader('ociruntime.linux.init')")
    assert out["loader"] == FROM_CACHE


def test_a_cache_replaced_after_the_start_is_not_read(pkg: Path) -> None:
    """What is loaded later comes from the file checked at the start, or from the sources."""
    probe(pkg, "")
    out = probe(pkg, "import shutil, os\n"
                     f"shutil.copyfile({str(pkg / CACHE)!r}, {str(pkg / CACHE)!r} + '.new')\n"
                     f"os.rename({str(pkg / CACHE)!r} + '.new', {str(pkg / CACHE)!r})\n"
                     "ociruntime.load_block('create')\n"
                     "out['loader'] = loader('ociruntime.create')")
    assert out["loader"] == "SourceFileLoader"


def test_a_changed_source_runs_its_new_code(pkg: Path) -> None:
    """Like a pyc, the cache holds each source's mtime and size: an edit of either is seen."""
    probe(pkg, "")
    lean = pkg / "lean.py"
    lean.write_text(lean.read_text() + "\nHOT_CACHE_PROBE = 1\n")  # a new size
    assert probe(pkg, "out['v'] = ociruntime.lean.HOT_CACHE_PROBE")["v"] == 1
    st = lean.stat()
    lean.write_text(lean.read_text().replace("HOT_CACHE_PROBE = 1", "HOT_CACHE_PROBE = 2"))  # the same size
    os.utime(lean, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    assert probe(pkg, "out['v'] = ociruntime.lean.HOT_CACHE_PROBE")["v"] == 2


def test_a_changed_module_past_the_hot_ones_runs_its_new_code_and_the_cache_is_rebuilt(pkg: Path) -> None:
    probe(pkg, "")
    create = pkg / "create.py"
    create.write_text(create.read_text() + "\nCACHE_PROBE = 1\n")
    read = "out['loader'] = loader('ociruntime.create'); out['v'] = ociruntime.create.CACHE_PROBE"
    assert probe(pkg, read) == {"loader": "SourceFileLoader", "v": 1}
    assert not (pkg / CACHE).exists()  # stale: removed, for the next call to rebuild
    probe(pkg, "")
    assert probe(pkg, read) == {"loader": FROM_CACHE, "v": 1}


# What a process has loaded when it runs a block: for the child, create's or exec's block
# (inherited from the runtime that forked it) and what every child of the runtime loads first
# (spawn.py's child_after_fork: linux/security.py, whose prctl loads the compiled shim).
CHILD_START = "import ociruntime.linux.security\nociruntime.linux.kernel.shim()\n"
BEFORE_BLOCK = {"create": "", "exec": "",
                "child of create": f"ociruntime.load_block('create')\n{CHILD_START}",
                "child of exec": f"ociruntime.load_block('exec')\n{CHILD_START}"}


@pytest.mark.parametrize("case", sorted(BEFORE_BLOCK))
def test_each_block_runs_in_an_order_that_imports_none_of_ours_from_one_open(pkg: Path, case: str) -> None:
    """Each module of a block comes after the modules it imports at its top, a package before
    its own modules (its body may import one of them before its turn, from the block): running
    the block asks the import system for none of the package's other modules, opens the cache
    once, and its modules have their sources as origins."""
    block = case.split()[0]
    probe(pkg, "")
    out = probe(pkg, BEFORE_BLOCK[case] +
                "import ociruntime.blocks, posix\n"
                "opens, real_open = [], posix.open\n"
                "posix.open = lambda p, *a: (p.endswith('.bin') and opens.append(p)) or real_open(p, *a)\n"
                "asked.clear()\n"
                "sys.meta_path.insert(0, Recorder)\n"
                f"ociruntime.load_block({block!r})\n"
                "sys.meta_path.remove(Recorder)\n"
                "out['opens'] = len(opens)\n"
                "out['asked'] = [n[len('ociruntime.'):] for n in asked if n.startswith('ociruntime.')]\n"
                f"out['origins'] = {{n: sys.modules['ociruntime.' + n].__spec__.origin "
                f"for n in {BLOCKS[block]!r}}}\n")
    members = BLOCKS[block]
    packages = [m for m in members if out["origins"][m].endswith("/__init__.py")]
    own = [m for m in members if any(m.startswith(p + ".") and members.index(p) < members.index(m) for p in packages)]
    assert set(out["asked"]) <= set(own), f"block {block} runs a module before what it imports: {out['asked']}"
    assert out["opens"] == 1
    for name, origin in out["origins"].items():
        rel = name.replace(".", "/")
        assert origin in (f"{pkg}/{rel}.py", f"{pkg}/{rel}/__init__.py"), (name, origin)


def test_a_changed_module_of_a_block_runs_its_new_code(pkg: Path) -> None:
    """The block is not run when one of its sources changed: each module is imported on its
    own, the changed one from its source, and the stale cache is removed."""
    probe(pkg, "")
    semantics = pkg / "semantics.py"
    semantics.write_text(semantics.read_text() + "\nCACHE_PROBE = 1\n")
    out = probe(pkg, "ociruntime.load_block('create')\n"
                     "out['ran'] = 'ociruntime.create' in sys.modules\n"
                     "out['loader'] = loader('ociruntime.semantics'); out['v'] = ociruntime.semantics.CACHE_PROBE")
    assert out == {"ran": False, "loader": "SourceFileLoader", "v": 1}
    assert not (pkg / CACHE).exists()


PLANTED = ("ociruntime.load_block('create')\n"
           "import ociruntime.create\n"
           "out['planted'] = [hasattr(ociruntime.lean, 'PLANTED'), hasattr(ociruntime.create, 'PLANTED')]")


def _plant(pkg: Path, tmp_path: Path) -> Path:
    """A cache that matches pkg's sources (mtime and size), built from sources whose lean.py (a
    hot module) and create.py (of the create block) also set PLANTED: what someone who can write
    the cache file could make the runtime (root) run."""
    other = tmp_path / "other" / "ociruntime"
    shutil.rmtree(other.parent, ignore_errors=True)
    shutil.copytree(pkg, other, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("lean.py", "create.py"):
        text = (pkg / name).read_text()
        (pkg / name).write_text(text + "\n#LANTED = True\n")
        (other / name).write_text(text + "\nPLANTED = True\n")
        st = (pkg / name).stat()
        os.utime(other / name, ns=(st.st_atime_ns, st.st_mtime_ns))
    probe(other, "")
    cache = pkg / CACHE
    cache.parent.mkdir(exist_ok=True)
    shutil.copyfile(other / CACHE, cache)
    return cache


def test_a_cache_others_may_write_is_not_run(pkg: Path, tmp_path: Path) -> None:
    cache = _plant(pkg, tmp_path)
    cache.chmod(0o644)
    assert probe(pkg, PLANTED)["planted"] == [True, True]  # the control: the planted cache is what runs
    cache.chmod(0o664)
    assert probe(pkg, PLANTED)["planted"] == [False, False]
    cache = _plant(pkg, tmp_path)
    cache.chmod(0o646)
    assert probe(pkg, PLANTED)["planted"] == [False, False]


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_a_cache_owned_by_another_user_is_not_run(pkg: Path, tmp_path: Path) -> None:
    cache = _plant(pkg, tmp_path)
    os.chown(cache, 4242, 0)
    assert probe(pkg, PLANTED)["planted"] == [False, False]


def test_without_a_cache_the_modules_are_imported(pkg: Path) -> None:
    """-B (no bytecode written), or a package directory we may not write: the usual imports."""
    out = probe(pkg, "out['loader'] = loader('ociruntime.cli')\n"
                     "out['loaded'] = [n for n in ociruntime.HOT_MODULES if 'ociruntime.' + n in sys.modules]\n"
                     "ociruntime.load_block('create')\n"
                     "out['create'] = loader('ociruntime.create')", "-B")
    assert not (pkg / CACHE).exists()
    assert "errors" in out["loaded"] and "state" not in out["loaded"]  # cli.py's imports, as usual
    assert out["loader"] == out["create"] == "SourceFileLoader"


def test_cached_modules_are_modules_as_imported(pkg: Path) -> None:
    """Spec, file, package attribute, and tracebacks that quote the source lines."""
    probe(pkg, "")
    out = probe(pkg, (
        "import traceback\n"
        "from ociruntime import state\n"
        "try:\n"
        "    state.validate_id('a/b')\n"
        "except Exception:\n"
        "    out['tb'] = traceback.format_exc()\n"
        "out['file'] = state.__file__\n"
        "out['linux'] = [ociruntime.linux.__path__, ociruntime.linux.freezer.__package__]\n"
        "out['same'] = ociruntime.state is state is sys.modules['ociruntime.state']\n"))
    assert out["file"] == f"{pkg}/state.py"
    assert out["linux"] == [[f"{pkg}/linux"], "ociruntime.linux"]
    assert out["same"] is True
    assert f'File "{pkg}/state.py"' in out["tb"] and "raise UsageError" in out["tb"]


def test_import_time_still_counts_the_cached_modules(pkg: Path) -> None:
    """-X importtime (bench/run's import rows) sees the hot modules, the blocks' and the others
    as lines of their own."""
    probe(pkg, "")
    text = ("import sys\n"
            f"sys.path.insert(0, {str(pkg.parent)!r})\n"
            "import ociruntime\n"
            "ociruntime._load_from_cache()\n"
            "import ociruntime.check\n"
            "ociruntime.load_block('create')\n")
    res = subprocess.run([sys.executable, "-X", "importtime", "-I", "-S", "-c", text], capture_output=True,
                         text=True, cwd="/", timeout=60, check=True)
    names = [line.rsplit("|", 1)[1].strip() for line in res.stderr.splitlines() if line.startswith("import time:")]
    assert "ociruntime bytecode cache: read, checked" in names
    assert "ociruntime bytecode cache: block create, checked" in names  # its sources' stats
    for name in (*ociruntime.HOT_MODULES, "check", *BLOCKS["create"]):  # check: the import system's
        assert f"ociruntime.{name}" in names, name
    assert "_json" in names  # loaded by its path, reported by the loader


def _listings(pkg: Path) -> tuple[list[str], list[str]]:
    """In a fresh interpreter started as the launcher starts it, with nothing imported yet:
    load the package as main() does, then the shim as create does; where `_json`, cffi's
    backend and the shim came from, and every directory the import system listed meanwhile
    (os.listdir audit events: a search of sys.path lists each directory it tries first)."""
    text = ("import sys, posix\n"
            f"sys.path.insert(0, {str(pkg.parent)!r}); sys.path.append({PURELIB!r})\n"
            "import ociruntime\n"
            "listed = []\n"
            "sys.addaudithook(lambda event, args: event == 'os.listdir' and listed.append(args[0]))\n"
            "ociruntime._load_from_cache()\n"
            "from ociruntime.linux.kernel import shim\n"
            "shim()\n"
            "files = [sys.modules[n].__file__ for n in ('_json', '_cffi_backend', 'ociruntime._shim')]\n"
            "posix.write(1, repr((files, listed)).encode())\n")
    res = subprocess.run([sys.executable, "-I", "-S", "-c", text], capture_output=True, text=True, cwd="/",
                         timeout=60, check=True)
    return ast.literal_eval(res.stdout)


def test_compiled_modules_load_from_the_paths_the_cache_recorded(pkg: Path) -> None:
    """`_json` (a file, not built in), cffi's backend and the shim load from where the cache's
    builder found them, with no search of sys.path (which lists lib-dynload, site-packages and
    the package's directory: ~50 us each); if a path no longer loads (another build of the
    interpreter, an uninstall), the usual search finds the module."""
    import _json

    import _cffi_backend

    files = [_json.__file__, _cffi_backend.__file__, str(next(pkg.glob("_shim*.so")))]
    _listings(pkg)  # writes the cache
    assert _listings(pkg) == (files, [])
    cache = pkg / CACHE
    data = cache.read_bytes()
    index_len = int.from_bytes(data[8:12], "little")
    key, entries, extensions = marshal.loads(data[12:12 + index_len])
    assert dict(extensions) == dict(zip(("_json", "_cffi_backend", "ociruntime._shim"), files, strict=True))
    index = marshal.dumps((key, entries, (("_json", f"{pkg}/gone/_json.so"),)))
    cache.write_bytes(data[:8] + len(index).to_bytes(4, "little") + index + data[12 + index_len:])
    found, listed = _listings(pkg)
    assert found == files
    assert {str(Path(f).parent) for f in files} <= set(listed)  # searched for


def test_docstrings_are_left_out_of_the_cache(pkg: Path) -> None:
    """The cache's code carries no docstrings (they were ~13% of the bytes a call unmarshals);
    a class whose body is only its docstring is still defined, and behaves as imported."""
    body = ("import ociruntime.spawn\n"
            "from ociruntime.errors import UsageError\n"
            "out['docs'] = [ociruntime.errors.__doc__, UsageError.__doc__, ociruntime.spawn.Spawn.__doc__,\n"
            "               ociruntime.spawn.report_pid.__doc__]\n"
            "out['usage'] = [str(UsageError('bad flag')), [c.__name__ for c in UsageError.__mro__]]\n")
    usual = probe(pkg, body, "-B")
    probe(pkg, "")
    cached = probe(pkg, body)
    assert all(isinstance(doc, str) and doc for doc in usual["docs"]), usual["docs"]
    assert cached["docs"] == [None] * len(usual["docs"])
    assert cached["usage"] == usual["usage"] == ["bad flag", ["UsageError", "OciError", "Exception",
                                                              "BaseException", "object"]]


def test_future_annotations_are_compiled_in_not_imported(pkg: Path) -> None:
    """Modules with `from __future__ import annotations` (create's, the child's) run from the
    cache without loading __future__.py (~0.2 ms), their annotations the same strings as when
    imported as usual."""
    body = ("ociruntime.load_block('create')\n"
            "import ociruntime.spawn, ociruntime.linux.init, ociruntime.linux.rootfs\n"
            "out['future'] = '__future__' in sys.modules\n"
            "out['loader'] = type(ociruntime.linux.rootfs.__loader__).__name__\n"
            "out['annotations'] = [ociruntime.spawn.Spawn.fork.__annotations__,\n"
            "                      ociruntime.linux.rootfs.Rootfs.__init__.__annotations__]\n")
    usual = probe(pkg, body, "-B")  # -B: no cache is written, the usual imports
    probe(pkg, "")
    cached = probe(pkg, body)
    assert (usual["future"], cached["future"]) == (True, False)
    assert cached["loader"] == FROM_CACHE and usual["loader"] == "SourceFileLoader"
    assert cached["annotations"] == usual["annotations"]
    assert all(isinstance(v, str) for a in cached["annotations"] for v in a.values())
