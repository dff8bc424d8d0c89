/* ociruntime shim: one thin wrapper per syscall Python cannot make (or cannot make safely, or
 * only through an extension module that costs more to load than the call: `_socket`'s module
 * init, ~0.14 ms, would sit on create's path for one socketpair). No policy lives here: every function does exactly one kernel call and returns -1 with errno
 * set on failure, like the syscall itself. Policy (what to call, in which order) is Python's.
 * One exception, oci_wait_exec (waitexec.c): a process cannot unmap the interpreter it runs in
 * from Python, so that function carries out a plan Python packed, and never returns on success. */
#include <stdint.h>
#include <stddef.h>

int oci_unshare(int flags);
int oci_setns(int fd, int nstype);
int oci_mount(const char *source, const char *target, const char *fstype,
              unsigned long flags, const char *data);
int oci_umount2(const char *target, int flags);
int oci_pivot_root(const char *new_root, const char *put_old);
int oci_sethostname(const char *name, size_t len);
int oci_setdomainname(const char *name, size_t len);
int oci_prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5);
int oci_capset(const uint32_t sets[6]);
int oci_mount_setattr(int dfd, const char *path, unsigned int flags,
                      uint64_t attr_set, uint64_t attr_clr, uint64_t propagation);
int oci_mount_setattr_userns(int dfd, const char *path, unsigned int flags, uint64_t attr_set,
                             uint64_t attr_clr, uint64_t propagation, uint64_t userns_fd);
int oci_open_tree(int dfd, const char *path, unsigned int flags);
int oci_move_mount(int from_dfd, const char *from_path, int to_dfd, const char *to_path,
                   unsigned int flags);
int oci_fsopen(const char *fstype, unsigned int flags);
int oci_fsconfig(int fd, unsigned int cmd, const char *key, const char *value, int aux);
int oci_fsmount(int fd, unsigned int flags, unsigned int attr_flags);
int oci_fstatfs_type(int fd, uint64_t *type);
int oci_openat2(int dfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve);
int oci_seccomp_set_filter(unsigned int flags, const void *prog, size_t len);
int oci_setgroups(size_t n, const uint32_t *gids);
int oci_join_session_keyring(const char *name);
int oci_keyctl_setperm(int key, uint32_t perm);
int oci_sched_setattr(int pid, uint32_t policy, uint64_t flags, int32_t nice, uint32_t priority,
                      uint64_t runtime, uint64_t deadline, uint64_t period);
int oci_ioprio_set(int which, int who, int ioprio);
int oci_personality(unsigned long persona);
int oci_setrlimit(int resource, uint64_t soft, uint64_t hard);
int oci_renameat2(int olddfd, const char *oldpath, int newdfd, const char *newpath, unsigned int flags);
int oci_set_mempolicy(int mode, const unsigned long *nodemask, unsigned long maxnode);
int oci_fork3(uint64_t flags, int cgroup_fd);
int oci_getcpu(void);
int oci_bpf(int cmd, void *attr, unsigned int size);
int oci_wait_exec(const void *plan, size_t len);
/* The most descriptors one message carries either way (oci_send_fds, oci_recv_fds). */
#define OCI_MAX_FDS 64
int oci_socket(int domain, int type, int protocol);
int oci_socketpair(int domain, int type, int protocol, int sv[2]);
long oci_send_fds(int fd, const void *buf, size_t len, const int *fds, size_t nfds);
long oci_recv_fds(int fd, void *buf, size_t len, int *fds, size_t maxfds, size_t *nfds, int *msg_flags);
