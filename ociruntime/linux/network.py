"""Network namespace set-up: bring up loopback (an ioctl; pyroute2 would cost ~30 ms of imports)."""

from __future__ import annotations

import _socket
import fcntl
import struct

from ociruntime.errors import SetupError

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def loopback_up() -> None:
    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM, 0)
    try:
        req = struct.pack("16sh14x", b"lo", 0)
        flags = struct.unpack("16sh14x", fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(sock.fileno(), SIOCSIFFLAGS, struct.pack("16sh14x", b"lo", flags | IFF_UP))
    except OSError as e:
        raise SetupError(f"bring up loopback interface lo: {e.strerror}") from None
    finally:
        sock.close()
