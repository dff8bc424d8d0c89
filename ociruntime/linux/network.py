"""Network namespace set-up: bring up loopback (an ioctl; pyroute2 would cost ~150 ms of imports).
linux.netDevices are netdevices.py's, loaded only for a config that has some."""

from __future__ import annotations

import fcntl
import posix
import sys

from ociruntime.errors import SyscallError
from ociruntime.linux.kernel import shim

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def loopback_up() -> None:
    """Its socket from the shim, which the child has: `_socket` and `_struct` would be ~0.2 ms
    of module init on create's path, in the child."""
    ffi, lib = shim()
    what = "bring up loopback interface lo"
    fd = lib.oci_socket(lib.AF_INET, lib.SOCK_DGRAM | lib.SOCK_CLOEXEC, 0)
    if fd < 0:
        raise SyscallError(ffi.errno, what)
    try:
        flags = int.from_bytes(fcntl.ioctl(fd, SIOCGIFFLAGS, _ifreq(0))[16:18], sys.byteorder)
        fcntl.ioctl(fd, SIOCSIFFLAGS, _ifreq(flags | IFF_UP))
    except OSError as e:
        raise SyscallError.from_os(e, what) from None
    finally:
        posix.close(fd)


def _ifreq(flags: int) -> bytes:
    """struct ifreq for lo: the name (IFNAMSIZ, 16 bytes), ifr_flags (a short), the rest zero."""
    return b"lo".ljust(16, b"\0") + flags.to_bytes(2, sys.byteorder) + bytes(14)
