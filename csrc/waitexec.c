/* oci_wait_exec: the waiting init sheds its address space, then waits for `start` and execs.
 *
 * Why C: between `ready` and `start` the init is a whole CPython (~10 MiB mapped, ~80 VMAs).
 * execve must tear all of that down, and that teardown (~1.2 ms of exit_mmap here) sat between
 * `start` writing its byte and the user's program running. Here the same teardown happens while
 * the container waits: everything but a few pages is unmapped, so the final execve finds an
 * almost empty mm. Python cannot unmap the memory it runs in; this file does only that and the
 * few raw syscalls that follow. What to exec, with which fds, filter and environment -- the
 * policy -- is decided by Python (linux/waitexec.py) and arrives as one packed plan.
 *
 * After the unmap nothing outside the kept pages may run: no libc (its text is gone), no PLT,
 * no stack protector, no compiler-generated memcpy. The code after the unmap is one function,
 * `after_shedding`, that makes raw syscalls only; its pages, the stack, the thread's TCB page
 * (the kernel's rseq area is there: unmapping it would get the process a SIGSEGV at its next
 * preemption) and the copy of the plan are all that stay. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include "shim.h"

/* The plan's header, packed by linux/waitexec.py (native byte order). After it: the filter
 * (filter_insns x 8 bytes), the two report prefixes, then NUL-terminated path, argv, env. */
struct plan_header {
    uint32_t fifo_fd, argc, envc, filter_insns, filter_flags, seccomp_report_len,
        exec_report_len, ending_signals; /* bit n-1: signal n ends the waiting process */
};

/* Room after a report prefix for "\0" and the errno's digits. */
#define REPORT_SPARE 16
#define MAX_KEEP 8
/* sigaction's flag for a caller-supplied sa_restorer: the kernel's, not in glibc's headers
 * (same value on x86-64 and arm64). */
#define KERNEL_SA_RESTORER 0x04000000UL

#if defined(__x86_64__) || defined(__aarch64__)
/* Everything after_shedding uses, laid out in one fresh mapping. */
struct shed_plan {
    int fifo_fd;
    struct sock_fprog prog; /* prog.len == 0: no filter to load */
    unsigned int filter_flags;
    char *seccomp_report, *exec_report;
    unsigned long seccomp_report_len, exec_report_len;
    const char *path;
    char **argv, **envp;
    unsigned long keep[2 * MAX_KEEP]; /* sorted, disjoint [start, end) page ranges */
    int n_keep;
    unsigned long low_stack; /* nothing at or above it is unmapped: the stack, and above */
    unsigned long page;
};

static inline __attribute__((always_inline)) long raw6(long n, long a, long b, long c, long d,
                                                        long e, long f)
{
#if defined(__x86_64__)
    long ret;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
#else
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    register long x4 __asm__("x4") = e;
    register long x5 __asm__("x5") = f;
    __asm__ volatile("svc 0"
                     : "+r"(x0)
                     : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
                     : "memory");
    return x0;
#endif
}

#define RAW(n, a, b, c) raw6((n), (long)(a), (long)(b), (long)(c), 0, 0, 0)

/* The failed step's report on the fifo: its prefix, "\0", the errno in decimal (`start` turns
 * it into the error's text), then exit 1 as the Python path does. */
static inline __attribute__((always_inline)) void report_and_exit(const struct shed_plan *p,
                                                                  char *report, unsigned long len,
                                                                  long err)
{
    unsigned long n = len, digits = 1, i;
    long v;
    report[n++] = '\0';
    for (v = err; v >= 10; v /= 10)
        digits++;
    for (i = digits, v = err; i > 0; v /= 10)
        report[n + --i] = (char)('0' + v % 10);
    n += digits;
    RAW(SYS_write, p->fifo_fd, report, n);
    RAW(SYS_exit_group, 1, 0, 0);
}

/* Unmaps every user page below p->low_stack outside p->keep, waits for `start`'s byte, loads
 * the filter, execs. Raw syscalls only, and nothing but p, its pointees and the stack. */
static __attribute__((noinline, noreturn, no_stack_protector,
                      optimize("no-tree-loop-distribute-patterns"))) void
after_shedding(const struct shed_plan *p)
{
    unsigned long from = 0;
    char byte;
    long ret;
    for (int i = 0; i <= p->n_keep; i++) {
        unsigned long to = i < p->n_keep ? p->keep[2 * i] : p->low_stack;
        if (to > from)
            RAW(SYS_munmap, from, to - from, 0); /* a failure only leaves more to tear down */
        if (i < p->n_keep)
            from = p->keep[2 * i + 1];
    }
    do
        ret = RAW(SYS_read, p->fifo_fd, &byte, 1);
    while (ret == -EINTR);
    if (ret != 1)
        RAW(SYS_exit_group, 1, 0, 0); /* the fifo's writer went without a byte: never started */
    if (p->prog.len) {
        ret = RAW(SYS_seccomp, SECCOMP_SET_MODE_FILTER, p->filter_flags, &p->prog);
        if (ret < 0)
            report_and_exit(p, p->seccomp_report, p->seccomp_report_len, -ret);
    }
    ret = RAW(SYS_execve, p->path, p->argv, p->envp);
    report_and_exit(p, p->exec_report, p->exec_report_len, -ret);
    __builtin_unreachable();
}

/* The handler of a signal that ends the waiting process (as runc's, whose Go runtime exits on
 * SIGTERM, SIGINT, SIGHUP and SIGQUIT). A handler, not SIG_DFL: the init of a pid namespace
 * gets no signal from outside for which it has no handler (pid_namespaces(7)). Kept mapped; it
 * never returns, so its own address serves as the sa_restorer x86-64 requires. */
static __attribute__((noinline, noreturn, no_stack_protector)) void end_by_signal(int sig)
{
    RAW(SYS_exit_group, 128 + sig, 0, 0);
    __builtin_unreachable();
}

/* The ending signals get end_by_signal. Any other caught signal's handler is about to be
 * unmapped: as execve would, make it SIG_DFL (an ignored signal stays ignored). The kernel's
 * struct, as rt_sigaction(2) takes it. */
static void set_signal_handlers(uint32_t ending)
{
    struct {
        unsigned long handler, flags, restorer, mask;
    } old, dfl = {0, 0, 0, 0}, end = {(unsigned long)end_by_signal, KERNEL_SA_RESTORER,
                                      (unsigned long)end_by_signal, 0};
    for (int sig = 1; sig <= 64; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP)
            continue;
        if (sig <= 32 && (ending >> (sig - 1) & 1))
            syscall(SYS_rt_sigaction, sig, &end, NULL, 8);
        else if (syscall(SYS_rt_sigaction, sig, NULL, &old, 8) == 0
                 && old.handler != (unsigned long)SIG_DFL && old.handler != (unsigned long)SIG_IGN)
            syscall(SYS_rt_sigaction, sig, &dfl, NULL, 8);
    }
}

static void keep_range(struct shed_plan *p, unsigned long start, unsigned long end)
{
    int i = p->n_keep++;
    start &= ~(p->page - 1);
    end = (end + p->page - 1) & ~(p->page - 1);
    /* insertion into the sorted list, merging overlaps afterwards */
    while (i > 0 && p->keep[2 * (i - 1)] > start) {
        p->keep[2 * i] = p->keep[2 * (i - 1)];
        p->keep[2 * i + 1] = p->keep[2 * (i - 1) + 1];
        i--;
    }
    p->keep[2 * i] = start;
    p->keep[2 * i + 1] = end;
}

static void merge_kept(struct shed_plan *p)
{
    int out = 0;
    for (int i = 1; i < p->n_keep; i++) {
        if (p->keep[2 * i] <= p->keep[2 * out + 1]) {
            if (p->keep[2 * i + 1] > p->keep[2 * out + 1])
                p->keep[2 * out + 1] = p->keep[2 * i + 1];
        } else {
            out++;
            p->keep[2 * out] = p->keep[2 * i];
            p->keep[2 * out + 1] = p->keep[2 * i + 1];
        }
    }
    if (p->n_keep)
        p->n_keep = out + 1;
}

/* `count` NUL-terminated strings from *at (advanced past them), bounded by end. */
static int take_strings(char **at, char **out, uint32_t count, const char *end)
{
    for (uint32_t i = 0; i < count; i++) {
        char *nul = memchr(*at, '\0', (size_t)(end - *at));
        if (!nul)
            return -1;
        out[i] = *at;
        *at = nul + 1;
    }
    out[count] = NULL;
    return 0;
}

int oci_wait_exec(const void *plan, size_t len)
{
    struct plan_header h;
    struct shed_plan *p;
    size_t reports, size;
    char *base, *at, *end, *sp_mark = (char *)__builtin_frame_address(0);
    char *tp = (char *)__builtin_thread_pointer();

    if (len < sizeof(h))
        return errno = EINVAL, -1;
    memcpy(&h, plan, sizeof(h));
    if (h.filter_insns > BPF_MAXINSNS || h.seccomp_report_len > 4096 || h.exec_report_len > 4096
        || h.argc > (1u << 20) || h.envc > (1u << 20))
        return errno = EINVAL, -1;
    reports = h.seccomp_report_len + h.exec_report_len + 2 * REPORT_SPARE;
    if (len - sizeof(h) < (size_t)h.filter_insns * 8 + h.seccomp_report_len + h.exec_report_len)
        return errno = EINVAL, -1;
    size = sizeof(*p) + (h.argc + h.envc + 2) * sizeof(char *) + reports + 8 + len;
    base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED)
        return -1;
    p = (struct shed_plan *)base;
    memset(p, 0, sizeof(*p));
    p->page = (unsigned long)sysconf(_SC_PAGESIZE);
    p->argv = (char **)(base + sizeof(*p));
    p->envp = p->argv + h.argc + 1;
    p->seccomp_report = (char *)(p->envp + h.envc + 1);
    p->exec_report = p->seccomp_report + h.seccomp_report_len + REPORT_SPARE;
    /* the plan's copy, 8-byte aligned for the filter after its 32-byte header */
    at = (char *)(((uintptr_t)(p->exec_report + h.exec_report_len + REPORT_SPARE) + 7) & ~7UL);
    end = at + len;
    memcpy(at, plan, len);
    at += sizeof(h);
    p->fifo_fd = (int)h.fifo_fd;
    p->filter_flags = h.filter_flags;
    p->prog.len = (unsigned short)h.filter_insns;
    p->prog.filter = (struct sock_filter *)at;
    at += (size_t)h.filter_insns * 8;
    memcpy(p->seccomp_report, at, h.seccomp_report_len);
    p->seccomp_report_len = h.seccomp_report_len;
    at += h.seccomp_report_len;
    memcpy(p->exec_report, at, h.exec_report_len);
    p->exec_report_len = h.exec_report_len;
    at += h.exec_report_len;
    {
        char *path[2];
        if (take_strings(&at, path, 1, end) || take_strings(&at, p->argv, h.argc, end)
            || take_strings(&at, p->envp, h.envc, end) || at != end) {
            munmap(base, size);
            return errno = EINVAL, -1;
        }
        p->path = path[0];
    }
    keep_range(p, (unsigned long)base, (unsigned long)base + size);
    keep_range(p, (unsigned long)after_shedding, (unsigned long)after_shedding + 8192);
    keep_range(p, (unsigned long)end_by_signal, (unsigned long)end_by_signal + 64);
    keep_range(p, (unsigned long)tp, (unsigned long)tp + 1);
    if (__rseq_size)
        keep_range(p, (unsigned long)(tp + __rseq_offset),
                   (unsigned long)(tp + __rseq_offset) + __rseq_size);
    merge_kept(p);
    /* The stack, argv and the environment at its top (/proc/PID/cmdline stays readable), and
     * whatever lies above it; 64 KiB below our frame is more than after_shedding needs. The
     * vdso goes if it lies lower: nothing calls it before execve maps a new one. */
    p->low_stack = (((unsigned long)sp_mark - 65536) & ~(p->page - 1));
    if (p->n_keep && p->keep[2 * (p->n_keep - 1) + 1] > p->low_stack) {
        munmap(base, size); /* a layout with the stack below other mappings: not ours to shed */
        return errno = ENOTSUP, -1;
    }
    set_signal_handlers(h.ending_signals);
    {
        /* Python blocked them before `ready` (so none is lost to a handler being swapped):
         * one that came meanwhile is delivered now, to end_by_signal. */
        uint64_t ending = h.ending_signals;
        syscall(SYS_rt_sigprocmask, SIG_UNBLOCK, &ending, NULL, 8);
    }
    after_shedding(p);
}

#else
int oci_wait_exec(const void *plan, size_t len)
{
    (void)plan;
    (void)len;
    return errno = ENOTSUP, -1;
}
#endif
