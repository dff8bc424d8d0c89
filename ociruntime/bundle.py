"""Loading a bundle: read config.json, validate it (schema, then semantic checks), build Config.

Every way a bundle can be unusable gets its own one-line message naming the file or field."""

from __future__ import annotations

import _stat  # the C module behind stat.py, which costs an import of its own
import posix

from ociruntime import jsonio, lean, log
from ociruntime.config import Config
from ociruntime.errors import ConfigError, OciError

MAX_CONFIG_BYTES = 16 << 20  # runc's configs are a few KiB; anything this large is a mistake


def bundle_dir(path: str) -> str:
    bundle = lean.abspath(path)
    try:
        st = posix.stat(bundle)
    except FileNotFoundError:
        raise OciError(f"bundle {bundle}: does not exist") from None
    except OSError as e:
        raise OciError(f"bundle {bundle}: {e.strerror}") from None
    if not _stat.S_ISDIR(st.st_mode):
        raise OciError(f"bundle {bundle}: not a directory")
    return bundle


def read_document(path: str, name: str) -> object:
    """Read and parse one JSON file, refusing non-regular files, huge files and bad encodings."""
    try:
        # O_NONBLOCK: a FIFO named config.json must not hang the runtime.
        fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC | posix.O_NONBLOCK)
    except FileNotFoundError:
        raise OciError(f"{name}: does not exist ({path})") from None
    except OSError as e:
        raise OciError(f"{name}: cannot open {path}: {e.strerror}") from None
    try:
        st = posix.fstat(fd)
        if not _stat.S_ISREG(st.st_mode):
            raise OciError(f"{name}: {path} is not a regular file")
        if st.st_size > MAX_CONFIG_BYTES:
            raise OciError(f"{name}: {st.st_size} bytes is too large (at most {MAX_CONFIG_BYTES})")
        data = _read_all(fd, path, name)
    finally:
        posix.close(fd)
    if not data.strip():
        raise OciError(f"{name}: file is empty")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise OciError(f"{name}: not valid UTF-8 (byte {e.start})") from None
    try:
        return jsonio.loads(text)
    except ValueError as e:
        raise OciError(f"{name}: not valid JSON: {e}") from None


def _read_all(fd: int, path: str, name: str) -> bytes:
    chunks = []
    total = 0
    try:
        while chunk := posix.read(fd, 1 << 16):
            total += len(chunk)
            if total > MAX_CONFIG_BYTES:
                raise OciError(f"{name}: larger than {MAX_CONFIG_BYTES} bytes")
            chunks.append(chunk)
    except OSError as e:
        raise OciError(f"{name}: cannot read {path}: {e.strerror}") from None
    return b"".join(chunks)


def validate(doc: object, *, systemd_cgroup: bool, require_process: bool = False) -> dict:
    """Schema then semantic checks; raises ConfigError listing every problem found."""
    from ociruntime import schema, semantics

    problems = schema.validate(doc, "config")
    if problems:
        raise ConfigError(problems)
    assert isinstance(doc, dict)
    errors, warnings = semantics.check_config(doc, systemd_cgroup=systemd_cgroup)
    if require_process and doc.get("process") is None:
        errors.append("process: required to create a container (it names what to run)")
    for w in warnings:
        log.warning(f"config.json: {w}")
    if errors:
        raise ConfigError(errors[:20])
    return doc


def load(path: str, *, systemd_cgroup: bool = False, require_rootfs: bool = True) -> Config:
    """The bundle's config, valid and runnable by this runtime, or ConfigError listing why not."""
    from ociruntime import timing
    from ociruntime.semantics import unsupported

    bundle = bundle_dir(path)
    doc = read_document(lean.join(bundle, "config.json"), "config.json")
    timing.mark("load")
    config = Config(validate(doc, systemd_cgroup=systemd_cgroup), bundle)
    problems = unsupported(config)
    if problems:
        raise ConfigError(problems)
    if require_rootfs and not lean.is_dir(config.root_path):
        raise ConfigError([f"root.path: {config.root_path} does not exist or is not a directory"])
    timing.mark("validate")
    return config
