"""Builds the bytecode cache that ociruntime/__init__.py reads: on the first call after an
install or an edit. Where it cannot be written (a read-only install, a user who may not write
the package, -B), the modules are imported as usual.

The file: CACHE_MAGIC, the index's length (4 bytes, little-endian); the index, marshalled:
(interpreter key, entries, extensions), an entry (name, source path relative to the package,
its mtime in ns, its size, offset of its code past the index, length), the hot modules' first,
in HOT_MODULES order, and extensions the (name, path) of each of HOT_EXTENSIONS and
SHIM_EXTENSIONS that is a file; then each module's code object, marshalled on its own, in the
index's order."""

import __future__

import _ast
import marshal
import posix
import sys

from ociruntime import CACHE_MAGIC, HOT_EXTENSIONS, HOT_MODULES, SHIM_EXTENSIONS


def rebuild(path: str, key: tuple, pkg: str) -> bool:
    """Compile every module of the package into the cache at `path` (atomically); False if it
    cannot be written. Each source's stat comes from the descriptor its text is read from, so
    that an edit made meanwhile shows as a mismatch next time."""
    if sys.flags.dont_write_bytecode:
        return False
    try:
        posix.mkdir(f"{pkg}/__pycache__", 0o755)
    except FileExistsError:
        pass
    except OSError:
        return False
    tmp = f"{path}.{posix.getpid()}.tmp"
    try:
        out = posix.open(tmp, posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | posix.O_CLOEXEC, 0o644)
    except OSError:
        return False  # before compiling anything: a read-only install pays only this
    try:
        data = _layout(key, pkg)
        while data:
            data = data[posix.write(out, data):]
        posix.rename(tmp, path)
    except Exception:
        # A full disk, or a source that does not compile: the usual imports say what is wrong.
        posix.unlink(tmp)
        return False
    finally:
        posix.close(out)
    return True


def _layout(key: tuple, pkg: str) -> memoryview:
    names = [*HOT_MODULES, *sorted(set(_module_names(pkg, "")) - set(HOT_MODULES))]
    entries, blobs, offset = [], [], 0
    for name, rel, mtime_ns, size, code in (_compile(pkg, name) for name in names):
        blob = marshal.dumps(code)
        entries.append((name, rel, mtime_ns, size, offset, len(blob)))
        blobs.append(blob)
        offset += len(blob)
    index = marshal.dumps((key, entries, _extension_paths()))
    return memoryview(b"".join([CACHE_MAGIC, len(index).to_bytes(4, "little"), index, *blobs]))


def _extension_paths() -> tuple:
    """(name, path) of each extension module of HOT_EXTENSIONS and SHIM_EXTENSIONS that is a
    file (not built in) and imports here (an install whose shim cannot load records none)."""
    paths = []
    for name in (*HOT_EXTENSIONS, *SHIM_EXTENSIONS):
        try:
            __import__(name)
        except ImportError:
            continue
        origin = getattr(sys.modules[name], "__file__", None)
        if origin is not None:
            paths.append((name, origin))
    return tuple(paths)


def _module_names(pkg: str, prefix: str) -> list[str]:
    """Every module of the package below `prefix` ("" or "linux/"): a subpackage by its name."""
    names = []
    with posix.scandir(f"{pkg}/{prefix}" if prefix else pkg) as it:
        for e in it:
            if e.name.endswith(".py") and e.is_file() and e.name != "__init__.py":
                names.append((prefix + e.name[:-3]).replace("/", "."))
            elif e.is_dir() and e.name != "__pycache__" and posix.access(f"{e.path}/__init__.py", posix.F_OK):
                names.append((prefix + e.name).replace("/", "."))
                names += _module_names(pkg, f"{prefix}{e.name}/")
    return names


def _compile(pkg: str, name: str) -> tuple:
    rel = name.replace(".", "/") + ".py"
    try:
        f = open(f"{pkg}/{rel}", "rb")
    except FileNotFoundError:
        rel = rel[:-3] + "/__init__.py"
        f = open(f"{pkg}/{rel}", "rb")
    with f:
        st = posix.fstat(f.fileno())
        source = f.read()
    return name, rel, st.st_mtime_ns, st.st_size, _compiled(source, f"{pkg}/{rel}")


def _compiled(source: bytes, path: str):
    """The module's code. `from __future__ import annotations` is a directive to the compiler
    and an import of __future__.py when the module runs (~0.2 ms, the first time: create's,
    run's and exec's modules have it); the cache compiles such a module with the directive's
    flag and without the import statement, so the annotations are the same strings and
    __future__.py is not loaded. Docstrings are left out, as `-OO` leaves them (asserts are
    kept): nothing the CLI runs reads one, and they were ~13% of the bytes each call unmarshals.
    Line numbers are the source's."""
    tree = compile(source, path, "exec", _ast.PyCF_ONLY_AST, dont_inherit=True)
    kept = [node for node in tree.body if not _imports_future_annotations(node)]
    flags = __future__.annotations.compiler_flag if len(kept) < len(tree.body) else 0
    tree.body = kept
    _drop_docstrings(tree)
    return compile(tree, path, "exec", flags, dont_inherit=True)


_WITH_DOCSTRINGS = (_ast.Module, _ast.ClassDef, _ast.FunctionDef, _ast.AsyncFunctionDef)


def _drop_docstrings(tree: _ast.Module) -> None:
    """Remove the docstring of the module and of each class and function in it; a body that
    was only a docstring (an exception class, say) becomes `pass` on the docstring's line."""
    todo = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, _WITH_DOCSTRINGS) and node.body and _is_docstring(node.body[0]):
            first = node.body[0]
            node.body = node.body[1:] or [_ast.Pass(lineno=first.lineno, col_offset=first.col_offset,
                                                    end_lineno=first.end_lineno,
                                                    end_col_offset=first.end_col_offset)]
        todo.extend(_children(node))


def _children(node: _ast.AST):
    """The nodes directly below `node` (ast.iter_child_nodes, without importing ast.py)."""
    for field in node._fields:
        value = getattr(node, field, None)
        if isinstance(value, _ast.AST):
            yield value
        elif isinstance(value, list):
            yield from (v for v in value if isinstance(v, _ast.AST))


def _is_docstring(stmt: _ast.stmt) -> bool:
    return (isinstance(stmt, _ast.Expr) and isinstance(stmt.value, _ast.Constant)
            and isinstance(stmt.value.value, str))


def _imports_future_annotations(node: _ast.stmt) -> bool:
    return (isinstance(node, _ast.ImportFrom) and node.module == "__future__"
            and [a.name for a in node.names] == ["annotations"])
