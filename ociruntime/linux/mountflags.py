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
MS_I_VERSION = 0x800000
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
    "iversion": (MS_I_VERSION, True), "noiversion": (MS_I_VERSION, False),
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


# mount_setattr(2) attributes, for the recursive options ("rro", "rnosuid", ...), which apply
# to every mount below the target as well (AT_RECURSIVE).
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR__ATIME = 0x70
MOUNT_ATTR_RELATIME = 0x0
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR_NODIRATIME = 0x80
MOUNT_ATTR_NOSYMFOLLOW = 0x200000
# option -> (attributes to set, attributes to clear)
RECURSIVE_OPTIONS: dict[str, tuple[int, int]] = {
    "rro": (MOUNT_ATTR_RDONLY, 0), "rrw": (0, MOUNT_ATTR_RDONLY),
    "rnosuid": (MOUNT_ATTR_NOSUID, 0), "rsuid": (0, MOUNT_ATTR_NOSUID),
    "rnodev": (MOUNT_ATTR_NODEV, 0), "rdev": (0, MOUNT_ATTR_NODEV),
    "rnoexec": (MOUNT_ATTR_NOEXEC, 0), "rexec": (0, MOUNT_ATTR_NOEXEC),
    "rnodiratime": (MOUNT_ATTR_NODIRATIME, 0), "rdiratime": (0, MOUNT_ATTR_NODIRATIME),
    "rrelatime": (MOUNT_ATTR_RELATIME, MOUNT_ATTR__ATIME), "rnorelatime": (0, MOUNT_ATTR__ATIME),
    "rnoatime": (MOUNT_ATTR_NOATIME, MOUNT_ATTR__ATIME), "ratime": (0, MOUNT_ATTR__ATIME),
    "rstrictatime": (MOUNT_ATTR_STRICTATIME, MOUNT_ATTR__ATIME),
    "rnostrictatime": (0, MOUNT_ATTR__ATIME),
    "rnosymfollow": (MOUNT_ATTR_NOSYMFOLLOW, 0), "rsymfollow": (0, MOUNT_ATTR_NOSYMFOLLOW),
}
# Options that are accepted and change nothing: "defaults" is fstab's word for rw,suid,dev,exec,...
NO_OP_OPTIONS = frozenset(("defaults",))
# Options the runtime itself carries out (runc's extensions), never passed to the filesystem.
TMPCOPYUP = "tmpcopyup"
# idmap/ridmap: an id-mapped bind (mount_setattr MOUNT_ATTR_IDMAP), never a filesystem option.
RUNTIME_OPTIONS = frozenset((TMPCOPYUP, "idmap", "ridmap"))


class MountOptions:
    """One mount's options sorted into mount(2) flags, propagation changes, recursive
    mount_setattr(2) attributes and the filesystem-specific data string."""

    __slots__ = ("clear", "copy_up", "data", "flags", "propagation", "rec_clear", "rec_set")

    def __init__(self, options: list[str]) -> None:
        self.flags = 0
        self.clear = 0
        self.rec_set = 0
        self.rec_clear = 0
        self.propagation: list[int] = []
        self.copy_up = TMPCOPYUP in options
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
            elif opt in RECURSIVE_OPTIONS:
                set_, clear = RECURSIVE_OPTIONS[opt]
                self.rec_set = (self.rec_set & ~clear) | set_
                self.rec_clear = (self.rec_clear & ~set_) | clear
            elif opt not in NO_OP_OPTIONS and opt not in RUNTIME_OPTIONS:
                data.append(opt)
        self.data = ",".join(data)

    @property
    def recursive(self) -> bool:
        return bool(self.rec_set or self.rec_clear)


def parse_options(options: list[str]) -> MountOptions:
    return MountOptions(options)


def is_known_option(opt: str) -> bool:
    return (opt in FLAG_OPTIONS or opt in PROPAGATION_OPTIONS or opt in RECURSIVE_OPTIONS
            or opt in NO_OP_OPTIONS or opt in RUNTIME_OPTIONS)
