"""features.md and features-linux.md: the `features` JSON, checked against what the runtime
then actually accepts."""

from __future__ import annotations

import json
import re

from conformance.harness import Context, check, expect, fail, skip, tmpfs_mount

TOP_KEYS = {"ociVersionMin", "ociVersionMax", "hooks", "mountOptions", "linux", "annotations",
            "potentiallyUnsafeConfigAnnotations"}
LINUX_KEYS = {"namespaces", "capabilities", "cgroup", "seccomp", "apparmor", "selinux",
              "intelRdt", "mountExtensions", "netDevices", "memoryPolicy"}
SPEC_MOUNT_OPTIONS = {
    "async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec", "iversion",
    "lazytime", "loud", "mand", "noatime", "nodev", "nodiratime", "noexec", "noiversion",
    "nolazytime", "nomand", "norelatime", "nostrictatime", "nosuid", "nosymfollow", "private",
    "ratime", "rbind", "rdev", "rdiratime", "relatime", "remount", "rexec", "rnoatime",
    "rnodiratime", "rnoexec", "rnorelatime", "rnostrictatime", "rnosuid", "rnosymfollow", "ro",
    "rprivate", "rrelatime", "rro", "rrw", "rshared", "rslave", "rstrictatime", "rsuid",
    "rsymfollow", "runbindable", "rw", "shared", "silent", "slave", "strictatime", "suid",
    "symfollow", "sync", "tmpcopyup", "unbindable", "idmap", "ridmap",
    # Not in the table but listed in the spec's own features example: generic VFS flags.
    "rnodev", "acl", "noacl",
}
# Options that need a context a plain tmpfs cannot give (a bind source, an existing mount,
# mappings); "recognised" is judged on the others.
NEEDS_CONTEXT = {"bind", "rbind", "remount", "idmap", "ridmap", "acl", "noacl"}


def features(ctx: Context) -> dict:
    p = ctx.rt("features")
    if not p.ok:
        skip(f"no features operation (MAY): {p.tail(100)}")
    try:
        return json.loads(p.out)
    except json.JSONDecodeError:
        fail(f"features output is not JSON: {p.out[:100]!r}")
    return {}


def _semver(v: str) -> tuple[int, int, int]:
    m = re.match(r"(\d+)\.(\d+)\.(\d+)", v or "")
    return (int(m[1]), int(m[2]), int(m[3])) if m else (-1, -1, -1)


@check("features.versions")
def versions(ctx: Context) -> None:
    """ociVersionMin/Max are present and Max is not below Min."""
    f = features(ctx)
    lo, hi = f.get("ociVersionMin"), f.get("ociVersionMax")
    expect(isinstance(lo, str) and isinstance(hi, str), f"min {lo!r} max {hi!r}")
    expect(_semver(hi) >= _semver(lo), f"ociVersionMax {hi} < ociVersionMin {lo}")


def _version_accepted(ctx: Context, key: str) -> None:
    v = features(ctx).get(key)
    b = ctx.bundle(["true"])
    b.config["ociVersion"] = v
    r = ctx.run(b)
    expect(r.ok, f"ociVersion {v!r} ({key}) refused: {r.tail()}")


@check("features.version_min_accepted")
def version_min(ctx: Context) -> None:
    """A config with ociVersion = ociVersionMin is accepted."""
    _version_accepted(ctx, "ociVersionMin")


@check("features.version_max_accepted")
def version_max(ctx: Context) -> None:
    """A config with ociVersion = ociVersionMax is accepted."""
    _version_accepted(ctx, "ociVersionMax")


@check("features.known_properties")
def known_properties(ctx: Context) -> None:
    """The structure holds only properties the spec defines."""
    f = features(ctx)
    extra = sorted(set(f) - TOP_KEYS) + sorted(f"linux.{k}" for k in
                                               set(f.get("linux") or {}) - LINUX_KEYS)
    expect(not extra, f"undefined properties: {extra}")


@check("features.hooks_supported")
def hooks_supported(ctx: Context) -> None:
    """Every listed hook kind is run."""
    names = features(ctx).get("hooks") or []
    if not names:
        skip("no hooks listed")
    b = ctx.sh_bundle("sleep 60")
    hooks: dict[str, list[dict]] = {}
    for n in names:
        script = (b.path / "rootfs" / "bin" / f"h-{n}") if n == "startContainer" else (
            ctx.tmp / f"h-{n}")
        dest = "/out" if n == "startContainer" else str(ctx.out)
        script.write_text(f"#!/bin/sh\ntouch {dest}/{n}\n")
        script.chmod(0o755)
        hooks[n] = [{"path": f"/bin/h-{n}" if n == "startContainer" else str(script)}]
    b.config["hooks"] = hooks
    cid = ctx.started(b)
    ctx.rt("kill", cid, "KILL")
    ctx.wait_status(cid, "stopped")
    ctx.rt("delete", cid)
    missing = [n for n in names if not (ctx.out / n).exists()]
    expect(not missing, f"listed but not run: {missing}")


@check("features.mount_options_recognized")
def mount_options_recognized(ctx: Context) -> None:
    """Every listed mount option is accepted on a tmpfs mount."""
    opts = [o for o in features(ctx).get("mountOptions") or [] if o not in NEEDS_CONTEXT]
    refused = []
    for o in opts:
        b = ctx.bundle(["true"], out_mount=False)
        b.config["mounts"].append(tmpfs_mount("/mnt/a", [o]))
        r = ctx.run(b, timeout=10)
        if not r.ok:
            refused.append(o)
    expect(not refused, f"listed but refused: {refused}")


@check("features.mount_options_generic")
def mount_options_generic(ctx: Context) -> None:
    """mountOptions lists no filesystem-specific (data) options."""
    opts = features(ctx).get("mountOptions") or []
    odd = [o for o in opts if o not in SPEC_MOUNT_OPTIONS]
    expect(not odd, f"not generic mount flags: {odd}")


@check("features.annotations_format")
def annotations_format(ctx: Context) -> None:
    """annotations is a map of non-empty string keys to string values."""
    ann = features(ctx).get("annotations")
    if ann is None:
        return "absent"
    expect(isinstance(ann, dict) and all(isinstance(k, str) and k and isinstance(v, str)
                                         for k, v in ann.items()), f"annotations: {ann!r}")


@check("features.namespaces_recognized")
def namespaces_recognized(ctx: Context) -> None:
    """Every listed namespace type is accepted in linux.namespaces."""
    names = (features(ctx).get("linux") or {}).get("namespaces") or []
    refused = []
    for n in names:
        b = ctx.bundle(["true"], out_mount=False)
        nss = b.config["linux"]["namespaces"]
        if n not in [x["type"] for x in nss]:
            nss.append({"type": n})
        if n == "user":
            b.config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 200000,
                                                 "size": 65536}]
            b.config["linux"]["gidMappings"] = b.config["linux"]["uidMappings"]
            b.config["mounts"] = [m for m in b.config["mounts"]
                                  if m["destination"] not in ("/sys", "/sys/fs/cgroup")]
        r = ctx.run(b, timeout=10)
        if not r.ok:
            refused.append(f"{n}: {r.tail(80)}")
    expect(not refused, f"listed but refused: {refused}")


@check("features.capabilities_recognized")
def capabilities_recognized(ctx: Context) -> None:
    """Every listed capability is accepted in process.capabilities."""
    caps = (features(ctx).get("linux") or {}).get("capabilities") or []
    if not caps:
        skip("no capabilities listed")
    b = ctx.bundle(["true"], out_mount=False)
    b.config["process"]["capabilities"]["bounding"] = list(caps)
    r = ctx.run(b)
    expect(r.ok, f"the listed capabilities were refused: {r.tail()}")


@check("features.seccomp_recognized")
def seccomp_recognized(ctx: Context) -> None:
    """Listed seccomp actions, operators, archs and supported flags are accepted."""
    sc = (features(ctx).get("linux") or {}).get("seccomp") or {}
    if not sc.get("enabled"):
        skip("seccomp not enabled in features")
    # Rules on syscalls a shell never makes, so any action is harmless.
    victims = ["acct", "swapon", "swapoff", "kexec_load", "init_module", "delete_module",
               "syslog", "vhangup", "quotactl", "nfsservctl", "lookup_dcookie"]
    rules = []
    actions = [a for a in sc.get("actions") or [] if a != "SCMP_ACT_NOTIFY"]
    for i, act in enumerate(actions):
        rules.append({"names": [victims[i % len(victims)]], "action": act})
    for op in sc.get("operators") or []:
        rules.append({"names": ["reboot"], "action": "SCMP_ACT_ERRNO",
                      "args": [{"index": 0, "value": 1, "valueTwo": 1, "op": op}]})
    conf = {"defaultAction": "SCMP_ACT_ALLOW", "flags": sc.get("supportedFlags") or [],
            "syscalls": rules}
    b = ctx.bundle(["true"], out_mount=False)
    b.config["linux"]["seccomp"] = conf
    r = ctx.run(b)
    expect(r.ok, f"a profile made of the listed names was refused: {r.tail()}")
    # Architectures one by one: libseccomp may know a name yet be unable to add that
    # architecture on this host; only a refusal of the name itself counts here.
    unknown = []
    for arch in sc.get("archs") or []:
        b = ctx.bundle(["true"], out_mount=False)
        b.config["linux"]["seccomp"] = dict(conf, architectures=[arch])
        r = ctx.run(b, timeout=10)
        words = r.err.lower()
        if not r.ok and any(w in words for w in ("unknown", "unrecognized", "invalid arch",
                                                 "not supported", "unsupported")):
            unknown.append(arch)
    expect(not unknown, f"listed architectures refused as unknown: {unknown}")


@check("features.memory_policy_recognized")
def memory_policy_recognized(ctx: Context) -> None:
    """Listed memory policy modes are accepted."""
    mp = (features(ctx).get("linux") or {}).get("memoryPolicy")
    if not mp:
        skip("memoryPolicy not listed")
    refused = []
    for mode in mp.get("modes") or []:
        b = ctx.bundle(["true"], out_mount=False)
        pol = {"mode": mode}
        if mode not in ("MPOL_DEFAULT", "MPOL_LOCAL"):
            pol["nodes"] = "0"
        b.config["linux"]["memoryPolicy"] = pol
        if not ctx.run(b, timeout=10).ok:
            refused.append(mode)
    expect(not refused, f"listed but refused: {refused}")
