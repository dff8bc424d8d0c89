"""mount(2) flags and the spec's mount options (config.md `mounts[].options`)."""

from __future__ import annotations

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOSYMFOLLOW = 0x100
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_UNBINDABLE = 0x20000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_SHARED = 0x100000
MS_RELATIME = 0x200000
MS_STRICTATIME = 0x1000000
MS_LAZYTIME = 0x2000000
MNT_DETACH = 0x2

# option -> (flag, set it?)   options that clear a flag exist to override a default.
FLAG_OPTIONS: dict[str, tuple[int, bool]] = {
    "ro": (MS_RDONLY, True), "rw": (MS_RDONLY, False),
    "nosuid": (MS_NOSUID, True), "suid": (MS_NOSUID, False),
    "nodev": (MS_NODEV, True), "dev": (MS_NODEV, False),
    "noexec": (MS_NOEXEC, True), "exec": (MS_NOEXEC, False),
    "sync": (MS_SYNCHRONOUS, True), "async": (MS_SYNCHRONOUS, False),
    "dirsync": (MS_DIRSYNC, True),
    "mand": (MS_MANDLOCK, True), "nomand": (MS_MANDLOCK, False),
    "noatime": (MS_NOATIME, True), "atime": (MS_NOATIME, False),
    "nodiratime": (MS_NODIRATIME, True), "diratime": (MS_NODIRATIME, False),
    "relatime": (MS_RELATIME, True), "norelatime": (MS_RELATIME, False),
    "strictatime": (MS_STRICTATIME, True), "nostrictatime": (MS_STRICTATIME, False),
    "lazytime": (MS_LAZYTIME, True), "nolazytime": (MS_LAZYTIME, False),
    "nosymfollow": (MS_NOSYMFOLLOW, True), "symfollow": (MS_NOSYMFOLLOW, False),
    "silent": (MS_SILENT, True), "loud": (MS_SILENT, False),
    "remount": (MS_REMOUNT, True),
    "bind": (MS_BIND, True), "rbind": (MS_BIND | MS_REC, True),
}
PROPAGATION_OPTIONS: dict[str, int] = {
    "private": MS_PRIVATE, "rprivate": MS_PRIVATE | MS_REC,
    "shared": MS_SHARED, "rshared": MS_SHARED | MS_REC,
    "slave": MS_SLAVE, "rslave": MS_SLAVE | MS_REC,
    "unbindable": MS_UNBINDABLE, "runbindable": MS_UNBINDABLE | MS_REC,
}
# Flags a bind mount only gets through a second, MS_REMOUNT call.
REMOUNT_FLAGS = (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_SYNCHRONOUS | MS_DIRSYNC
                 | MS_NOATIME | MS_NODIRATIME | MS_RELATIME | MS_STRICTATIME | MS_NOSYMFOLLOW)
# statvfs(3) f_flag bits of flags the kernel locks on mounts inherited into a user namespace.
ST_LOCKED = {0x1: MS_RDONLY, 0x2: MS_NOSUID, 0x4: MS_NODEV, 0x8: MS_NOEXEC,
             0x400: MS_NOATIME, 0x800: MS_NODIRATIME, 0x1000: MS_RELATIME}


class MountOptions:
    __slots__ = ("clear", "data", "flags", "propagation", "recursive_ro")

    def __init__(self, options: list[str]) -> None:
        self.flags = 0
        self.clear = 0
        self.propagation: list[int] = []
        data = []
        for opt in options:
            if opt in FLAG_OPTIONS:
                flag, on = FLAG_OPTIONS[opt]
                if on:
                    self.flags |= flag
                else:
                    self.flags &= ~flag
                    self.clear |= flag
            elif opt in PROPAGATION_OPTIONS:
                self.propagation.append(PROPAGATION_OPTIONS[opt])
            elif opt in ("rro",):
                self.flags |= MS_RDONLY
            else:
                data.append(opt)
        self.recursive_ro = "rro" in options
        self.data = ",".join(data)


def parse_options(options: list[str]) -> MountOptions:
    return MountOptions(options)


def is_known_option(opt: str) -> bool:
    return opt in FLAG_OPTIONS or opt in PROPAGATION_OPTIONS or opt == "rro"
