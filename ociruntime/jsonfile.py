"""Reading one JSON document from a file the runtime does not control (config.json, process.json,
--resources, the state directory's config copy): a regular file only, never blocking on a FIFO,
of bounded size, UTF-8, one line naming the file for each way it can be unusable. Its own module,
so that what reads a document loads neither the config model nor the schema (inspect)."""

import _stat  # the C module behind stat.py, which costs an import of its own
import posix

from ociruntime import jsonio
from ociruntime.errors import OciError

MAX_CONFIG_BYTES = 16 << 20  # runc's configs are a few KiB; anything this large is a mistake


def read_document(path: str, name: str, dir_fd: int | None = None) -> object:
    """Read and parse one JSON file, refusing non-regular files, huge files and bad encodings.
    With dir_fd (its directory's), the file is opened by its last name through it."""
    try:
        # O_NONBLOCK: a FIFO named config.json must not hang the runtime.
        fd = posix.open(path if dir_fd is None else path.rpartition("/")[2],
                        posix.O_RDONLY | posix.O_CLOEXEC | posix.O_NONBLOCK, dir_fd=dir_fd)
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
