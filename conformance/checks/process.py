"""config.md: root, process (args, env, cwd, user, rlimits, capabilities, ...), hostname,
annotations, extensibility and valid values."""

from __future__ import annotations

import resource

from conformance.harness import (
    CAP_NAMES,
    Bundle,
    Context,
    Proc,
    caps_mask,
    check,
    expect,
    host_bounding_mask,
    skip,
    status_field,
)


def run_ok(ctx: Context, b: Bundle) -> Proc:
    r = ctx.run(b)
    expect(r.ok, f"run failed ({r.code}): {r.tail()}")
    return r


def applied_or_rejected(ctx: Context, b: Bundle) -> Proc:
    """For optional features: a runtime may refuse a value it does not support, but only by
    failing; accepting it and doing nothing is the violation."""
    r = ctx.run(b)
    if not r.ok:
        skip(f"runtime rejected the setting (allowed for unsupported values): {r.tail(160)}")
    return r


def rejected(ctx: Context, b: Bundle, what: str) -> None:
    r = ctx.run(b)
    expect(not r.ok, f"the runtime accepted {what}")


# --- root -------------------------------------------------------------------------------


@check("config.root_readonly")
def root_readonly(ctx: Context) -> None:
    """root.readonly=true: the root filesystem cannot be written."""
    b = ctx.sh_bundle("touch /conf-file 2>/dev/null && echo WRITABLE || echo READONLY")
    out = run_ok(ctx, b).out
    expect("READONLY" in out, "wrote to a read-only root")


@check("config.root_writable")
def root_writable(ctx: Context) -> None:
    """root.readonly absent (default false): the root filesystem is writable."""
    b = ctx.sh_bundle("touch /conf-file && echo WRITABLE || echo READONLY")
    del b.config["root"]["readonly"]
    out = run_ok(ctx, b).out
    expect("WRITABLE" in out, "root is read-only although readonly defaults to false")


@check("config.root_absolute_path")
def root_absolute_path(ctx: Context) -> None:
    """root.path may be an absolute path."""
    b = ctx.sh_bundle("echo OK")
    b.config["root"]["path"] = str(b.path / "rootfs")
    expect("OK" in run_ok(ctx, b).out, "no output")


@check("config.root_missing")
def root_missing(ctx: Context) -> None:
    """A Linux config without root is refused."""
    b = ctx.sh_bundle("echo OK")
    del b.config["root"]
    rejected(ctx, b, "a config without root")


# --- process ----------------------------------------------------------------------------


@check("process.args")
def args(ctx: Context) -> None:
    """args reach the program unchanged, args[0] is looked up in PATH."""
    b = ctx.bundle(["printf", "<%s>", "a b", "", "c*"])
    out = run_ok(ctx, b).out
    expect(out == "<a b><><c*>", f"argv arrived as {out!r}")


@check("process.args_empty_rejected")
def args_empty(ctx: Context) -> None:
    """An empty args array is refused."""
    b = ctx.bundle([])
    rejected(ctx, b, "empty process.args")


@check("process.env")
def env(ctx: Context) -> None:
    """env entries become the program's environment."""
    b = ctx.bundle(["env"])
    b.config["process"]["env"] += ["CONF_A=one two", "CONF_B="]
    lines = run_ok(ctx, b).out.splitlines()
    expect("CONF_A=one two" in lines and "CONF_B=" in lines, f"environment: {lines}")


@check("process.cwd")
def cwd(ctx: Context) -> None:
    """cwd becomes the working directory."""
    b = ctx.bundle(["pwd"])
    b.config["process"]["cwd"] = "/mnt/a"
    out = run_ok(ctx, b).out.strip()
    expect(out == "/mnt/a", f"pwd is {out!r}")


@check("process.cwd_relative_rejected")
def cwd_relative(ctx: Context) -> None:
    """A relative cwd is refused."""
    b = ctx.bundle(["pwd"])
    b.config["process"]["cwd"] = "mnt/a"
    rejected(ctx, b, "a relative cwd")


@check("process.user")
def user(ctx: Context) -> None:
    """uid and gid apply."""
    b = ctx.sh_bundle("echo U=$(id -u) G=$(id -g)")
    b.config["process"]["user"] = {"uid": 1234, "gid": 4321}
    out = run_ok(ctx, b).out
    expect("U=1234 G=4321" in out, f"got {out.strip()!r}")


@check("process.additional_gids")
def additional_gids(ctx: Context) -> None:
    """additionalGids become supplementary groups."""
    b = ctx.bundle(["cat", "/proc/self/status"])
    b.config["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [5, 2345]}
    groups = status_field(run_ok(ctx, b).out, "Groups").split()
    expect({"5", "2345"} <= set(groups), f"Groups: {groups}")


@check("process.umask")
def umask(ctx: Context) -> None:
    """user.umask applies."""
    b = ctx.sh_bundle("umask")
    b.config["process"]["user"]["umask"] = 0o027
    out = applied_or_rejected(ctx, b).out.strip()
    expect(out in ("0027", "027"), f"umask is {out!r}")


@check("process.rlimits")
def rlimits(ctx: Context) -> None:
    """rlimits: soft and hard values apply (kept within this host's hard limit)."""
    _, hard_h = resource.getrlimit(resource.RLIMIT_NOFILE)
    hard = min(hard_h, 900)
    b = ctx.bundle(["cat", "/proc/self/limits"])
    b.config["process"]["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "soft": 321, "hard": hard},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 4096},
    ]
    out = run_ok(ctx, b).out
    files = next((ln for ln in out.splitlines() if ln.startswith("Max open files")), "")
    core = next((ln for ln in out.splitlines() if ln.startswith("Max core file size")), "")
    expect(files.split()[3:5] == ["321", str(hard)], f"NOFILE: {files!r}")
    expect(core.split()[4:6] == ["0", "4096"], f"CORE: {core!r}")


@check("process.rlimit_duplicate_rejected")
def rlimit_dup(ctx: Context) -> None:
    """Two rlimits of one type are refused."""
    b = ctx.bundle(["true"])
    b.config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200},
                                      {"type": "RLIMIT_NOFILE", "soft": 150, "hard": 200}]
    rejected(ctx, b, "duplicate RLIMIT_NOFILE entries")


@check("process.rlimit_invalid_rejected")
def rlimit_invalid(ctx: Context) -> None:
    """An rlimit type no kernel knows is refused."""
    b = ctx.bundle(["true"])
    b.config["process"]["rlimits"] = [{"type": "RLIMIT_CONFORMANCE", "soft": 1, "hard": 1}]
    rejected(ctx, b, "an unknown rlimit type")


def _caps(out: str) -> dict[str, int]:
    return {k: int(status_field(out, k) or "0", 16)
            for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}


@check("process.capabilities")
def capabilities(ctx: Context) -> None:
    """The five capability sets apply (a non-root user, so execve keeps only ambient in
    permitted/effective and the configured sets stay observable)."""
    b = ctx.bundle(["cat", "/proc/self/status"])
    b.config["process"]["user"] = {"uid": 1000, "gid": 1000}
    b.config["process"]["capabilities"] = {
        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETUID"],
        "permitted": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "effective": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "inheritable": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "ambient": ["CAP_NET_BIND_SERVICE"],
    }
    got = _caps(run_ok(ctx, b).out)
    want = {"CapBnd": caps_mask(["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETUID"]),
            "CapInh": caps_mask(["CAP_KILL", "CAP_NET_BIND_SERVICE"]),
            "CapAmb": caps_mask(["CAP_NET_BIND_SERVICE"]),
            "CapPrm": caps_mask(["CAP_NET_BIND_SERVICE"]),
            "CapEff": caps_mask(["CAP_NET_BIND_SERVICE"])}
    wrong = {k: f"{got[k]:x}!={v:x}" for k, v in want.items() if got[k] != v}
    expect(not wrong, f"capability sets differ: {wrong}")


@check("process.capabilities_root")
def capabilities_root(ctx: Context) -> None:
    """As root, the bounding set is exactly the configured one."""
    b = ctx.bundle(["cat", "/proc/self/status"])
    names = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    b.config["process"]["capabilities"] = {k: list(names) for k in
                                           ("bounding", "permitted", "effective")}
    got = _caps(run_ok(ctx, b).out)
    expect(got["CapBnd"] == caps_mask(names), f"CapBnd {got['CapBnd']:x}")
    expect(got["CapEff"] == caps_mask(names), f"CapEff {got['CapEff']:x}")


def _unknown_cap_run(ctx: Context) -> Proc:
    b = ctx.bundle(["echo", "RAN"])
    for k in ("bounding", "permitted", "effective"):
        b.config["process"]["capabilities"][k].append("CAP_CONFORMANCE_BOGUS")
    return ctx.run(b)


@check("process.caps_unknown_no_fail")
def caps_unknown_no_fail(ctx: Context) -> None:
    """An unknown capability name does not make the container fail (SHOULD NOT fail)."""
    r = _unknown_cap_run(ctx)
    expect(r.ok and "RAN" in r.out, f"the container failed: {r.tail()}")


@check("process.caps_unknown_warns")
def caps_unknown_warns(ctx: Context) -> None:
    """An unknown capability name is reported as a warning (stderr or --log)."""
    r = _unknown_cap_run(ctx)
    log = ctx.log.read_text(errors="replace") if ctx.log.exists() else ""
    text = (r.err + log).upper()
    if not r.ok:
        expect("CAP_CONFORMANCE_BOGUS" in text, "failed without naming the capability")
        return "reported as an error rather than a warning"
    expect("CAP_CONFORMANCE_BOGUS" in text or "CONFORMANCE_BOGUS" in text,
           "no warning names the unknown capability")


@check("process.caps_ungrantable_no_fail")
def caps_ungrantable(ctx: Context) -> None:
    """A capability the runtime itself lacks does not make the container fail."""
    host = host_bounding_mask()
    missing = [n for i, n in enumerate(CAP_NAMES) if not host & (1 << i)]
    if not missing:
        skip("the runner holds every capability: nothing ungrantable to ask for")
    b = ctx.bundle(["echo", "RAN"])
    b.config["process"]["capabilities"]["bounding"].append(missing[0])
    r = ctx.run(b)
    expect(r.ok and "RAN" in r.out, f"asking for {missing[0]} failed the container: {r.tail()}")


@check("process.no_new_privileges")
def no_new_privileges(ctx: Context) -> None:
    """noNewPrivileges true sets no_new_privs; false leaves it clear."""
    for value, want in ((True, "1"), (False, "0")):
        b = ctx.bundle(["cat", "/proc/self/status"])
        b.config["process"]["noNewPrivileges"] = value
        got = status_field(run_ok(ctx, b).out, "NoNewPrivs")
        expect(got == want, f"noNewPrivileges={value}: NoNewPrivs is {got!r}")


@check("process.oom_score_adj")
def oom_score_adj(ctx: Context) -> None:
    """oomScoreAdj is written to the process's oom_score_adj."""
    b = ctx.bundle(["cat", "/proc/self/oom_score_adj"])
    b.config["process"]["oomScoreAdj"] = 123
    got = run_ok(ctx, b).out.strip()
    expect(got == "123", f"oom_score_adj is {got!r}")


@check("process.oom_score_adj_unset")
def oom_score_adj_unset(ctx: Context) -> None:
    """Without oomScoreAdj the value inherited from the runtime's caller is kept."""
    b = ctx.bundle(["cat", "/proc/self/oom_score_adj"])
    r = ctx.run(b, env_oom=37)
    expect(r.ok, f"run failed: {r.tail()}")
    expect(r.out.strip() == "37", f"oom_score_adj changed to {r.out.strip()!r} (caller had 37)")


@check("process.scheduler")
def scheduler(ctx: Context) -> None:
    """scheduler: SCHED_BATCH with nice 7 applies."""
    b = ctx.bundle(["cat", "/proc/self/stat"])
    b.config["process"]["scheduler"] = {"policy": "SCHED_BATCH", "nice": 7}
    fields = applied_or_rejected(ctx, b).out.rsplit(")", 1)[1].split()
    # After the comm field: nice is field 19 and policy field 41 of stat(5).
    nice, policy = fields[16], fields[38]
    expect(policy == "3" and nice == "7", f"policy {policy} nice {nice}")


@check("process.io_priority")
def io_priority(ctx: Context) -> None:
    """ioPriority: best-effort class, priority 6 applies."""
    b = ctx.bundle(["ionice"])
    b.config["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_BE", "priority": 6}
    out = applied_or_rejected(ctx, b).out.strip()
    expect("best-effort" in out and "6" in out, f"ionice says {out!r}")


@check("process.console_size_ignored")
def console_size_ignored(ctx: Context) -> None:
    """consoleSize with terminal=false is ignored, not an error."""
    b = ctx.bundle(["echo", "RAN"])
    b.config["process"]["consoleSize"] = {"height": 20, "width": 70}
    r = ctx.run(b)
    expect(r.ok and "RAN" in r.out, f"run failed: {r.tail()}")


# --- hostname, domainname, annotations, extensibility ----------------------------------


@check("config.hostname")
def hostname(ctx: Context) -> None:
    """hostname is set in the container's UTS namespace."""
    b = ctx.bundle(["hostname"])
    b.config["hostname"] = "conf-host"
    out = run_ok(ctx, b).out.strip()
    expect(out == "conf-host", f"hostname is {out!r}")


@check("config.domainname")
def domainname(ctx: Context) -> None:
    """domainname is set in the container's UTS namespace."""
    b = ctx.bundle(["cat", "/proc/sys/kernel/domainname"])
    b.config["domainname"] = "conf.example"
    out = applied_or_rejected(ctx, b).out.strip()
    expect(out == "conf.example", f"domainname is {out!r}")


@check("config.unknown_properties")
def unknown_properties(ctx: Context) -> None:
    """Unknown properties anywhere are ignored, not errors."""
    b = ctx.bundle(["echo", "RAN"])
    b.config["com.example.conformance"] = {"nested": [1, 2]}
    b.config["process"]["com.example.field"] = True
    b.config["linux"]["com.example.field"] = "x"
    b.config["root"]["com.example.field"] = 1
    r = ctx.run(b)
    expect(r.ok and "RAN" in r.out, f"unknown properties made it fail: {r.tail()}")


@check("config.annotations_accepted")
def annotations_accepted(ctx: Context) -> None:
    """Arbitrary annotations are accepted (treated like any unknown data)."""
    b = ctx.bundle(["echo", "RAN"])
    b.config["annotations"] = {"com.example.k": "v", "org.example.weird key!": "",
                               "org.opencontainers.image.os": "linux"}
    r = ctx.run(b)
    expect(r.ok and "RAN" in r.out, f"annotations made it fail: {r.tail()}")


@check("config.invalid_values_rejected")
def invalid_values(ctx: Context) -> None:
    """Invalid values are errors: a bogus namespace type, a bogus seccomp action."""
    problems = []
    b = ctx.bundle(["true"])
    b.config["linux"]["namespaces"].append({"type": "conformance-bogus"})
    if ctx.run(b).ok:
        problems.append("namespace type 'conformance-bogus' accepted")
    b = ctx.bundle(["true"])
    b.config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_CONFORMANCE_BOGUS"}
    if ctx.run(b).ok:
        problems.append("seccomp action 'SCMP_ACT_CONFORMANCE_BOGUS' accepted")
    expect(not problems, "; ".join(problems))
