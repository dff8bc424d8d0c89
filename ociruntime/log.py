"""Log sink shared by the CLI and the library: runc's line formats (logrus text or JSON).

The library reports warnings and debug timings here and never prints; the CLI configures where
lines go (`--log`, `--log-format`, `--debug`)."""

import posix
import time

from ociruntime import jsonio

_fd = 2
_json = False
_debug = False


def configure(path: str | None, fmt: str, debug: bool) -> None:
    global _fd, _json, _debug
    _json = fmt == "json"
    _debug = debug
    if path:
        # O_APPEND: containerd reads the last error line of a file several runtime calls share.
        _fd = posix.open(path, posix.O_WRONLY | posix.O_APPEND | posix.O_CREAT | posix.O_CLOEXEC, 0o644)


def fd() -> int:
    return _fd


def to_file() -> bool:
    return _fd != 2


def debug_enabled() -> bool:
    return _debug


def _timestamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def line(level: str, msg: str) -> str:
    if _json:
        return jsonio.dumps({"level": level, "msg": msg, "time": _timestamp()}) + "\n"
    return f'time="{_timestamp()}" level={level} msg={jsonio.dumps(msg)}\n'


def _emit(level: str, msg: str) -> None:
    try:
        posix.write(_fd, line(level, msg).encode())
    except OSError:
        pass  # a broken log must not turn a success into a failure


def error(msg: str) -> None:
    _emit("error", msg)


def warning(msg: str) -> None:
    _emit("warning", msg)


def debug(msg: str) -> None:
    if _debug:
        _emit("debug", msg)


def uses_json() -> bool:
    return _json
