"""Device access control on cgroup v2: a BPF_PROG_TYPE_CGROUP_DEVICE program built from the
spec's linux.resources.devices rules and attached to the container's cgroup.

cgroup v2 has no devices.allow/deny files; the kernel instead runs the cgroup's device
programs on every open/mknod of a device node. We assemble the program ourselves (a straight
list of rule checks, last matching rule first) and load/attach it with the bpf(2) syscall
(the shim's oci_bpf, through the kernel seam), only when a v2 container has device rules.

Rule semantics (same as the v1 driver): rules apply in order, so the last rule that matches a
request decides; an allow rule matches when the request's access bits are all in its access, a
deny rule when they overlap. A request no rule matches is allowed unless the list contains a
catch-all, which in practice it always does (the default config starts with deny-all).
"""

from __future__ import annotations

import _struct as struct  # built in: struct.py would be read from disk
import posix

from ociruntime.linux.cgroups import CgroupError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ociruntime.resources import DeviceRule

# bpf(2) commands, program/attach types and flags (include/uapi/linux/bpf.h).
BPF_PROG_LOAD, BPF_PROG_ATTACH, BPF_PROG_DETACH = 5, 8, 9
BPF_PROG_GET_FD_BY_ID, BPF_PROG_QUERY = 13, 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2

# struct bpf_cgroup_dev_ctx: u32 access_type (access << 16 | type), u32 major, u32 minor.
_DEV_TYPE = {"b": 1, "c": 2}
_ACCESS = {"m": 1, "r": 2, "w": 4}

# Opcodes used (BPF instruction set).
_LDXW = 0x61       # dst = *(u32 *)(src + off)
_MOV64_X = 0xBF    # dst = src
_MOV64_K = 0xB7    # dst = imm
_AND64_K = 0x57    # dst &= imm
_RSH64_K = 0x77    # dst >>= imm
_JNE_K = 0x55      # if dst != imm goto +off
_JEQ_K = 0x15      # if dst == imm goto +off
_EXIT = 0x95

# Registers: r1 = ctx; r2 = access bits; r3 = device type; r4 = major; r5 = minor; r6 scratch.


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def _access_bits(access: str | None) -> int:
    bits = 0
    for ch in access or "rwm":
        if ch not in _ACCESS:
            raise CgroupError(f"cgroup: invalid device access {access!r}")
        bits |= _ACCESS[ch]
    return bits


def _rule_block(rule: DeviceRule) -> list[tuple]:
    """Instructions for one rule; ("skip",) jumps are patched to the end of the block."""
    kind = rule.type
    if kind not in ("a", "b", "c"):
        raise CgroupError(f"cgroup: invalid device type {kind!r}")
    block: list[tuple] = []
    if kind != "a":
        block.append((_JNE_K, 3, 0, "skip", _DEV_TYPE[kind]))
    bits = _access_bits(rule.access)
    allow = rule.allow
    if bits != 7:
        block.append((_MOV64_X, 6, 2, 0, 0))
        if allow:
            # allow: every requested bit must be granted -> skip if any bit outside `bits`.
            block.append((_AND64_K, 6, 0, 0, ~bits & 7))
            block.append((_JNE_K, 6, 0, "skip", 0))
        else:
            # deny: any requested bit in `bits` -> skip only if none.
            block.append((_AND64_K, 6, 0, 0, bits))
            block.append((_JEQ_K, 6, 0, "skip", 0))
    if rule.major not in (None, -1):
        block.append((_JNE_K, 4, 0, "skip", int(rule.major)))
    if rule.minor not in (None, -1):
        block.append((_JNE_K, 5, 0, "skip", int(rule.minor)))
    block.append((_MOV64_K, 0, 0, 0, 1 if allow else 0))
    block.append((_EXIT, 0, 0, 0, 0))
    return block


def assemble(rules: list[DeviceRule]) -> bytes:
    """The program for `rules` (raw bpf_insn array)."""
    code = [
        _insn(_LDXW, 2, 1, 0), _insn(_MOV64_X, 3, 2), _insn(_AND64_K, 3, imm=0xFFFF),
        _insn(_RSH64_K, 2, imm=16), _insn(_LDXW, 4, 1, 4), _insn(_LDXW, 5, 1, 8),
    ]
    for rule in reversed(rules):
        block = _rule_block(rule)
        for i, (op, dst, src, off, imm) in enumerate(block):
            if off == "skip":
                off = len(block) - i - 1
            code.append(_insn(op, dst, src, off, imm))
        if len(block) == 2:
            # A catch-all decides every request; code after it would be unreachable, which
            # the verifier rejects.
            return b"".join(code)
    # No rule matched and there is no catch-all: allowed (the kernel's default).
    code += [_insn(_MOV64_K, 0, imm=1), _insn(_EXIT)]
    return b"".join(code)


class _Bpf:
    """bpf(2) through the kernel seam; attr structs are built as zero-padded byte buffers, and
    the memory their pointer fields name comes from kernel().buffer (kept alive across a call)."""

    def __init__(self) -> None:
        from ociruntime.linux.kernel import kernel

        self.k = kernel()

    def call(self, cmd: int, attr: bytearray, what: str) -> int:
        from ociruntime.errors import SetupError
        from ociruntime.linux.cgroups import fail

        try:
            return self.k.bpf(cmd, attr, what)
        except SetupError as e:
            raise fail(what, OSError(e.errno, posix.strerror(e.errno or 0))) from None

    def load(self, insns: bytes) -> int:
        code_addr, keep1 = self.k.buffer(insns)
        lic_addr, keep2 = self.k.buffer(b"GPL")
        attr = bytearray(128)
        struct.pack_into("<IIQQ", attr, 0, BPF_PROG_TYPE_CGROUP_DEVICE, len(insns) // 8,
                         code_addr, lic_addr)
        attr[48:48 + 9] = b"oci_devs\0"
        try:
            return self.call(BPF_PROG_LOAD, attr, "bpf load device program")
        except CgroupError as e:
            # Reload with the verifier log so the error says why.
            log_size = 65536
            log_addr, log = self.k.buffer(log_size)
            struct.pack_into("<IIQ", attr, 24, 1, log_size, log_addr)
            try:
                return self.call(BPF_PROG_LOAD, attr, "bpf load device program")
            except CgroupError:
                raw = self.k.read_buffer(log, log_size).split(b"\0", 1)[0]
                text = raw.decode(errors="replace").strip().splitlines()
                raise CgroupError(f"{e}: {text[-1] if text else 'no verifier log'}", errno=e.errno,
                                  operation=e.operation) from e
        finally:
            del keep1, keep2

    def query(self, cgroup_fd: int) -> tuple[int, list[int]]:
        """(attach flags, ids of device programs attached to the cgroup itself)."""
        ids_addr, keep = self.k.buffer(4 * 64)
        attr = bytearray(40)
        struct.pack_into("<IIIIQI", attr, 0, cgroup_fd, BPF_CGROUP_DEVICE, 0, 0, ids_addr, 64)
        self.call(BPF_PROG_QUERY, attr, "bpf query device programs")
        flags, count = struct.unpack_from("<I", attr, 12)[0], struct.unpack_from("<I", attr, 24)[0]
        raw = self.k.read_buffer(keep, 4 * count)
        del keep
        return flags, list(struct.unpack(f"<{count}I", raw))

    def attach(self, cgroup_fd: int, prog_fd: int, flags: int) -> None:
        attr = bytearray(32)
        struct.pack_into("<IIII", attr, 0, cgroup_fd, prog_fd, BPF_CGROUP_DEVICE, flags)
        self.call(BPF_PROG_ATTACH, attr, "bpf attach device program")

    def detach(self, cgroup_fd: int, prog_id: int) -> None:
        attr = bytearray(16)
        struct.pack_into("<I", attr, 0, prog_id)
        fd = self.call(BPF_PROG_GET_FD_BY_ID, attr, f"bpf get program {prog_id}")
        try:
            attr = bytearray(16)
            struct.pack_into("<III", attr, 0, cgroup_fd, fd, BPF_CGROUP_DEVICE)
            self.call(BPF_PROG_DETACH, attr, f"bpf detach device program {prog_id}")
        finally:
            posix.close(fd)


def set_device_rules(path: str, rules: list[DeviceRule]) -> None:
    """Replace the device program of the cgroup at `path` by one enforcing `rules`.

    The new program is attached (multi mode) before the old ones are detached, so the cgroup is
    never left without a filter while a running container is updated."""
    bpf = _Bpf()
    prog = bpf.load(assemble(rules))
    try:
        cg = posix.open(path, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
    except OSError as e:
        posix.close(prog)
        from ociruntime.linux.cgroups import fail

        raise fail(f"open {path}", e) from e
    try:
        flags, old = bpf.query(cg)
        if old and not flags & BPF_F_ALLOW_MULTI:
            bpf.attach(cg, prog, flags)  # single-program mode: attaching replaces
        else:
            bpf.attach(cg, prog, BPF_F_ALLOW_MULTI)
            for prog_id in old:
                bpf.detach(cg, prog_id)
    finally:
        posix.close(cg)
        posix.close(prog)


def attached(path: str) -> list[int]:
    """Ids of the device programs attached to the cgroup at `path` (for tests, `state`)."""
    cg = posix.open(path, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
    try:
        return _Bpf().query(cg)[1]
    finally:
        posix.close(cg)
