"""Signal names and numbers (signal(7), x86-64/arm64 numbering) without importing `signal`,
which pulls in enum (~3 ms on every `kill`)."""

from ociruntime.errors import UsageError

SIGNALS: dict[str, int] = {
    "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "IOT": 6, "BUS": 7, "FPE": 8,
    "KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15,
    "STKFLT": 16, "CHLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21, "TTOU": 22,
    "URG": 23, "XCPU": 24, "XFSZ": 25, "VTALRM": 26, "PROF": 27, "WINCH": 28, "IO": 29,
    "POLL": 29, "PWR": 30, "SYS": 31,
}
SIGRTMIN, SIGRTMAX = 34, 64
# CPython ignores these at start-up, and an ignored signal stays ignored across execve: every
# program we start (the container's process, an exec'd one, a hook, criu) gets them back at their
# defaults first, as from runc (the writer of `yes | head -1` must die of SIGPIPE, not loop on
# EPIPE; a shell cannot undo a signal ignored when it started).
IGNORED_BY_PYTHON = (SIGNALS["PIPE"], SIGNALS["XFSZ"])


def restore_defaults() -> None:
    """Before execve: what CPython ignored is SIG_DFL again."""
    import _signal

    for number in IGNORED_BY_PYTHON:
        _signal.signal(number, _signal.SIG_DFL)


def parse_signal(text: str) -> int:
    """'9', 'KILL', 'SIGKILL', 'sigkill', 'RTMIN+3' -> number; UsageError otherwise.
    0 is accepted, as runc does: it only checks that the process exists."""
    if text.isdigit():
        number = int(text)
        if 0 <= number <= SIGRTMAX:
            return number
        raise UsageError(f"invalid signal {text!r}: numbers run from 0 to {SIGRTMAX}")
    name = text.upper()
    name = name[3:] if name.startswith("SIG") else name
    if name in SIGNALS:
        return SIGNALS[name]
    for base, sign, limit in (("RTMIN", 1, SIGRTMAX - SIGRTMIN), ("RTMAX", -1, SIGRTMAX - SIGRTMIN)):
        if name == base:
            return SIGRTMIN if sign > 0 else SIGRTMAX
        prefix = base + ("+" if sign > 0 else "-")
        if name.startswith(prefix) and name[len(prefix):].isdigit() and int(name[len(prefix):]) <= limit:
            return (SIGRTMIN if sign > 0 else SIGRTMAX) + sign * int(name[len(prefix):])
    raise UsageError(f"invalid signal {text!r} (use a number or a name such as KILL or SIGTERM)")
