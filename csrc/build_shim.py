"""cffi builder for ociruntime._shim (out-of-line API mode: compiled at install, never at run time)."""

import sys
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from ociruntime.spectables import RLIMITS  # noqa: E402  (the tree's own table, as setup.py's schemas)

SOCKET_NUMBERS = ("AF_UNIX", "AF_INET", "SOCK_DGRAM", "SOCK_SEQPACKET", "SOCK_CLOEXEC", "MSG_CTRUNC")

ffibuilder = FFI()
# The shim's own wrappers, plus the few libseccomp calls used to compile a filter to BPF.
ffibuilder.cdef(
    (HERE / "shim.h").read_text().split("#include <stddef.h>", 1)[1]
    + """
typedef void *scmp_filter_ctx;
struct scmp_version { unsigned int major; unsigned int minor; unsigned int micro; };
const struct scmp_version *seccomp_version(void);
scmp_filter_ctx seccomp_init(uint32_t def_action);
void seccomp_release(scmp_filter_ctx ctx);
int seccomp_arch_add(scmp_filter_ctx ctx, uint32_t arch_token);
int seccomp_arch_remove(scmp_filter_ctx ctx, uint32_t arch_token);
uint32_t seccomp_arch_resolve_name(const char *arch_name);
uint32_t seccomp_arch_native(void);
int seccomp_syscall_resolve_name(const char *name);
int seccomp_attr_set(scmp_filter_ctx ctx, int attr, uint32_t value);
struct scmp_arg_cmp { unsigned int arg; int op; uint64_t datum_a; uint64_t datum_b; };
int seccomp_rule_add_array(scmp_filter_ctx ctx, uint32_t action, int syscall,
                           unsigned int arg_cnt, const struct scmp_arg_cmp *arg_array);
int seccomp_export_bpf(const scmp_filter_ctx ctx, int fd);
"""
    # The rlimit numbers of this architecture, from <sys/resource.h> at compile time.
    + "".join(f"#define {name} ...\n" for name in RLIMITS)
    # And its socket numbers, from <sys/socket.h> (SOCK_CLOEXEC differs between architectures).
    + "".join(f"#define {name} ...\n" for name in SOCKET_NUMBERS)
)
ffibuilder.set_source(
    "ociruntime._shim",
    '#include "shim.h"\n#include <seccomp.h>\n#include <sys/resource.h>\n#include <sys/socket.h>\n',
    sources=["csrc/shim.c", "csrc/waitexec.c"],
    include_dirs=["csrc"],
    libraries=["seccomp"],
    extra_compile_args=["-O2", "-Wall"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
