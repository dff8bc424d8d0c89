/* See shim.h. Each wrapper is commented with the syscall it makes and why Python needs it. */
#define _GNU_SOURCE
#include <Python.h>
#include <errno.h>
#include <signal.h>
#include <grp.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include "shim.h"

/* unshare(2): os.unshare only exists from Python 3.12. */
int oci_unshare(int flags) { return unshare(flags); }

/* setns(2): join a namespace by fd (os.setns only from 3.12). */
int oci_setns(int fd, int nstype) { return setns(fd, nstype); }

/* renameat2(2): os.rename cannot pass RENAME_EXCHANGE. */
int oci_renameat2(int olddfd, const char *oldpath, int newdfd, const char *newpath, unsigned int flags)
{
    return renameat2(olddfd, oldpath, newdfd, newpath, flags);
}

/* mount(2): the classic mount call, with raw flags and data string. */
int oci_mount(const char *source, const char *target, const char *fstype,
              unsigned long flags, const char *data)
{
    return mount(source, target, fstype, flags, data);
}

/* umount2(2): detach the old root after pivot_root (MNT_DETACH). */
int oci_umount2(const char *target, int flags) { return umount2(target, flags); }

/* pivot_root(2): glibc has no wrapper. */
int oci_pivot_root(const char *new_root, const char *put_old)
{
    return (int)syscall(SYS_pivot_root, new_root, put_old);
}

/* sethostname(2) / setdomainname(2): avoids importing socket, and Python has no setdomainname. */
int oci_sethostname(const char *name, size_t len) { return sethostname(name, len); }
int oci_setdomainname(const char *name, size_t len) { return setdomainname(name, len); }

/* prctl(2): no_new_privs, bounding-set drops, ambient caps, keepcaps, dumpable. */
int oci_prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5)
{
    return prctl(option, a2, a3, a4, a5);
}

/* capset(2), version 3 (64-bit sets): sets = {eff_lo, perm_lo, inh_lo, eff_hi, perm_hi, inh_hi}. */
int oci_capset(const uint32_t sets[6])
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    for (int i = 0; i < 2; i++) {
        data[i].effective = sets[3 * i];
        data[i].permitted = sets[3 * i + 1];
        data[i].inheritable = sets[3 * i + 2];
    }
    return (int)syscall(SYS_capset, &hdr, data);
}

/* mount_setattr(2): change mount attributes (ro, nosuid, ...) of a mount tree atomically. */
int oci_mount_setattr(int dfd, const char *path, unsigned int flags,
                      uint64_t attr_set, uint64_t attr_clr, uint64_t propagation)
{
    return oci_mount_setattr_userns(dfd, path, flags, attr_set, attr_clr, propagation, 0);
}

/* mount_setattr(2) with the user namespace fd that MOUNT_ATTR_IDMAP reads (an id-mapped mount). */
int oci_mount_setattr_userns(int dfd, const char *path, unsigned int flags, uint64_t attr_set,
                             uint64_t attr_clr, uint64_t propagation, uint64_t userns_fd)
{
    struct {
        uint64_t attr_set, attr_clr, propagation, userns_fd;
    } attr = {attr_set, attr_clr, propagation, userns_fd};
    return (int)syscall(SYS_mount_setattr, dfd, path, flags, &attr, sizeof(attr));
}

/* open_tree(2): a detached clone of a mount, or an O_PATH fd on a mount. */
int oci_open_tree(int dfd, const char *path, unsigned int flags)
{
    return (int)syscall(SYS_open_tree, dfd, path, flags);
}

/* move_mount(2): attach a detached mount at an fd-resolved target. */
int oci_move_mount(int from_dfd, const char *from_path, int to_dfd, const char *to_path,
                   unsigned int flags)
{
    return (int)syscall(SYS_move_mount, from_dfd, from_path, to_dfd, to_path, flags);
}

/* fsopen(2): a filesystem context for the new mount API; the mount it makes is known by fd from
 * creation to attachment, so no path is resolved between mounting and verifying it. */
int oci_fsopen(const char *fstype, unsigned int flags)
{
    return (int)syscall(SYS_fsopen, fstype, flags);
}

/* fsconfig(2): set one parameter of a filesystem context, or create the superblock. */
int oci_fsconfig(int fd, unsigned int cmd, const char *key, const char *value, int aux)
{
    return (int)syscall(SYS_fsconfig, fd, cmd, key, value, aux);
}

/* fsmount(2): a detached mount of the superblock a context created. */
int oci_fsmount(int fd, unsigned int flags, unsigned int attr_flags)
{
    return (int)syscall(SYS_fsmount, fd, flags, attr_flags);
}

/* fstatfs(2): the filesystem magic of an open fd (Python's fstatvfs has no f_type). */
int oci_fstatfs_type(int fd, uint64_t *type)
{
    struct statfs st;
    if (fstatfs(fd, &st) < 0)
        return -1;
    *type = (uint64_t)st.f_type;
    return 0;
}

/* openat2(2): resolve a path with RESOLVE_IN_ROOT / RESOLVE_NO_SYMLINKS, for safe rootfs lookups. */
int oci_openat2(int dfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve)
{
    struct {
        uint64_t flags, mode, resolve;
    } how = {flags, mode, resolve};
    return (int)syscall(SYS_openat2, dfd, path, &how, sizeof(how));
}

/* seccomp(2) SECCOMP_SET_MODE_FILTER with a BPF program compiled earlier by libseccomp. */
int oci_seccomp_set_filter(unsigned int flags, const void *prog, size_t len)
{
    struct sock_fprog fprog;
    fprog.len = (unsigned short)(len / sizeof(struct sock_filter));
    fprog.filter = (struct sock_filter *)prog;
    return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &fprog);
}

/* setgroups(2) through the raw syscall: glibc's wrapper would broadcast to threads (we have one). */
int oci_setgroups(size_t n, const uint32_t *gids)
{
    return (int)syscall(SYS_setgroups, n, gids);
}

/* keyctl(2) KEYCTL_JOIN_SESSION_KEYRING: a fresh session keyring, so the container cannot see
 * the keys of whoever started the runtime. Returns the keyring's serial number. */
int oci_join_session_keyring(const char *name)
{
    return (int)syscall(SYS_keyctl, 1 /* KEYCTL_JOIN_SESSION_KEYRING */, name);
}

/* keyctl(2) KEYCTL_SETPERM on a key or keyring. */
int oci_keyctl_setperm(int key, uint32_t perm)
{
    return (int)syscall(SYS_keyctl, 5 /* KEYCTL_SETPERM */, key, perm);
}

/* sched_setattr(2): glibc has no wrapper, and Python's os.sched_setscheduler cannot express
 * SCHED_DEADLINE (runtime/deadline/period) nor the scheduling flags. pid 0: the caller. */
int oci_sched_setattr(int pid, uint32_t policy, uint64_t flags, int32_t nice, uint32_t priority,
                      uint64_t runtime, uint64_t deadline, uint64_t period)
{
    struct {
        uint32_t size, sched_policy;
        uint64_t sched_flags;
        int32_t sched_nice;
        uint32_t sched_priority;
        uint64_t sched_runtime, sched_deadline, sched_period;
    } attr = {sizeof(attr), policy, flags, nice, priority, runtime, deadline, period};
    return (int)syscall(SYS_sched_setattr, pid, &attr, 0);
}

/* ioprio_set(2): glibc has no wrapper. */
int oci_ioprio_set(int which, int who, int ioprio)
{
    return (int)syscall(SYS_ioprio_set, which, who, ioprio);
}

/* personality(2): the execution domain (LINUX32 makes uname report i686); not in Python. */
int oci_personality(unsigned long persona) { return personality(persona); }

/* setrlimit(2) of the caller. resource is an RLIMIT_* number as this architecture's headers
 * define it (build_shim.py declares the constants, so Python never hard-codes them). */
int oci_setrlimit(int resource, uint64_t soft, uint64_t hard)
{
    struct rlimit rl = {(rlim_t)soft, (rlim_t)hard};
    return setrlimit(resource, &rl);
}

/* set_mempolicy(2): the NUMA memory policy of the caller (no glibc wrapper without libnuma). */
int oci_set_mempolicy(int mode, const unsigned long *nodemask, unsigned long maxnode)
{
    return (int)syscall(SYS_set_mempolicy, mode, nodemask, maxnode);
}

/* clone3(2) as a fork Python can survive: os.fork cannot pass CLONE_PARENT (the process that
 * will exec becomes the runtime's own child, so `run --no-subreaper` can still wait for it) nor
 * CLONE_INTO_CGROUP (a child born inside its cgroup v2 directory: no migration afterwards).
 * Like os.fork, it holds the GIL across the clone and runs CPython's before/after-fork
 * handlers (cffi released the GIL for this call; PyGILState_Ensure takes it back).
 * Returns the child's pid in the parent, 0 in the child, -1 with errno on failure. */
int oci_fork3(uint64_t flags, int cgroup_fd)
{
    struct {
        uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls,
            set_tid, set_tid_size, cgroup;
    } args;
    long pid;
    int saved;
    PyGILState_STATE gil = PyGILState_Ensure();

    memset(&args, 0, sizeof(args));
    args.flags = flags;
    /* With CLONE_PARENT the kernel gives the child our own exit signal (SIGCHLD for a forked
     * stage) and refuses an explicit one. */
    args.exit_signal = (flags & CLONE_PARENT) ? 0 : SIGCHLD;
    args.cgroup = cgroup_fd < 0 ? 0 : (uint64_t)cgroup_fd;
    PyOS_BeforeFork();
    pid = syscall(SYS_clone3, &args, sizeof(args));
    saved = errno;
    if (pid == 0)
        PyOS_AfterFork_Child();
    else
        PyOS_AfterFork_Parent();
    PyGILState_Release(gil);
    errno = saved;
    return (int)pid;
}

/* sched_getcpu(3): the CPU we run on (glibc reads it from rseq or the vDSO: no syscall); Python
 * has no call for it. */
int oci_getcpu(void) { return sched_getcpu(); }

/* bpf(2): load, attach, query and detach the cgroup v2 device programs (cgroups/ebpf.py). The
 * attr union is built by the caller as a zero-padded buffer; glibc has no wrapper, and the shim
 * knows the syscall number of every architecture it is built for (ctypes would not). */
int oci_bpf(int cmd, void *attr, unsigned int size)
{
    return (int)syscall(SYS_bpf, cmd, attr, size);
}

/* socket(2) and socketpair(2) without the _socket extension (see shim.h): the runtime's channel
 * to its children (linux/sync.py) and the loopback ioctl's socket (linux/network.py). */
int oci_socket(int domain, int type, int protocol) { return socket(domain, type, protocol); }

int oci_socketpair(int domain, int type, int protocol, int sv[2])
{
    return socketpair(domain, type, protocol, sv);
}

/* sendmsg(2) of one buffer with `nfds` descriptors as one SCM_RIGHTS message (none: no control
 * data). Python's only way is socket.sendmsg. EINVAL past OCI_MAX_FDS. */
long oci_send_fds(int fd, const void *buf, size_t len, const int *fds, size_t nfds)
{
    union {
        char space[CMSG_SPACE(sizeof(int) * OCI_MAX_FDS)];
        struct cmsghdr align;
    } control;
    struct iovec iov = {(void *)buf, len};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    struct cmsghdr *c;

    if (nfds > OCI_MAX_FDS) {
        errno = EINVAL;
        return -1;
    }
    if (nfds > 0) {
        memset(&control, 0, sizeof(control));
        msg.msg_control = control.space;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    return sendmsg(fd, &msg, 0);
}

/* recvmsg(2) of one packet into buf, its descriptors close-on-exec (MSG_CMSG_CLOEXEC): up to
 * `maxfds` (at most OCI_MAX_FDS) of them copied to fds, their number in *nfds, and the
 * message's flags in *msg_flags (MSG_CTRUNC: the kernel dropped descriptors past the room). */
long oci_recv_fds(int fd, void *buf, size_t len, int *fds, size_t maxfds, size_t *nfds, int *msg_flags)
{
    union {
        char space[CMSG_SPACE(sizeof(int) * OCI_MAX_FDS)];
        struct cmsghdr align;
    } control;
    struct iovec iov = {buf, len};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.space};
    struct cmsghdr *c;
    long n;
    size_t i, count;

    if (maxfds > OCI_MAX_FDS)
        maxfds = OCI_MAX_FDS;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * maxfds);
    *nfds = 0;
    n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0)
        return -1;
    *msg_flags = msg.msg_flags;
    for (c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (i = 0; i < count && *nfds < maxfds; i++)
            memcpy(&fds[(*nfds)++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
    }
    return n;
}
