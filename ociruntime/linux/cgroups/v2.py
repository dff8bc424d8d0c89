"""cgroup v2 (unified hierarchy) driver, after Documentation/admin-guide/cgroup-v2.rst.

One directory. Controllers must be enabled in every ancestor's cgroup.subtree_control before
their files appear in the container's cgroup; apply() enables everything the parent offers on
each level it walks (failures are ignored there -- e.g. the no-internal-process rule -- and show
up later as a missing file naming the controller). v1 settings are converted where the kernel
has an equivalent (cpu.weight, io.weight, memory.swap.max, ...); settings v2 has no place for
are reported in `warnings` or raise when silently dropping them would be wrong.

The conversions at module level (weights, swap) are shared with the systemd driver; what v1
shares with v2 (hybrid hosts) is in controllers.py.
"""

import posix

from ociruntime import lean
from ociruntime.errors import CgroupError
from ociruntime.linux.cgroups import CgroupManager, controllers, fs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ociruntime import resources as res
    from ociruntime.resources import BlockIO, CpuResources, DeviceRule, HugepageLimit, MemoryResources, NetworkResources


class V2Manager(CgroupManager):
    driver = "v2"

    def __init__(self, path: str, mount: str, *, rootless: bool = False, made: int = 0) -> None:
        super().__init__()
        self.path = path
        self.mount = mount
        self.rootless = rootless
        self.made = made
        self.skipped = False  # rootless and the cgroup could not be created/joined

    # ------------------------------------------------------------ state

    def to_state(self) -> dict:
        removable = [[self.path, self.made]] if self.made and not self.skipped else []
        return {"driver": self.driver, "path": self.path, "mount": self.mount, "made": self.made,
                "rootless": self.rootless, "skipped": self.skipped, "removable": removable}

    @classmethod
    def from_state(cls, data: dict) -> "V2Manager":
        mgr = cls(data["path"], data["mount"], rootless=bool(data.get("rootless")),
                  made=int(data.get("made") or 0))
        mgr.skipped = bool(data.get("skipped"))
        return mgr

    def paths(self) -> dict[str, str]:
        return {} if self.skipped else {"": self.path}

    def _dir(self, what: str) -> str:
        if self.skipped:
            raise CgroupError(f"cgroup: cannot set {what} limit: container could not join or "
                              "create cgroup")
        return self.path

    # ------------------------------------------------------------ lifecycle

    def create(self) -> None:
        """Create the directory and enable controllers for it; no process moves. After this a
        child can be cloned straight into the cgroup (clone3 CLONE_INTO_CGROUP with an fd of
        self.path), which skips the costly migration apply() does."""
        if self.skipped:
            return
        made = 0
        try:
            made = fs.mkdirs(self.path)
            if made:
                self.made = made
                controllers.enable_controllers(self.mount, self.path, None)
        except CgroupError as e:
            self._skip_or_raise(e, made)

    def clone_target(self) -> int:
        self.create()
        if self.skipped:
            return -1
        try:
            return posix.open(self.path, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
        except OSError:
            return -1  # apply() reports it

    def plan(self) -> None:
        if not self.skipped:
            self.made = fs.missing_components(self.path) or self.made

    def owned(self) -> bool:
        return self.skipped or self.made > 0

    def procs_files(self) -> list[str]:
        return [] if self.skipped else [self.path + "/cgroup.procs"]

    def apply(self, pid: int, resources: "res.Resources | None" = None) -> None:
        self.create()
        if self.skipped:
            return
        try:
            fs.write_file(self.path + "/cgroup.procs", str(pid))
        except CgroupError as e:
            self._skip_or_raise(e, self.made)

    def skip_all(self) -> None:
        self.skipped = True

    def _skip_or_raise(self, err: CgroupError, made: int) -> None:
        if not self.may_skip(err, self.path):
            raise err
        self.skipped = True
        if made:
            fs.rmdir_tree(self.path)
            lean.rmdir_parents(self.path, made - 1)

    def destroy(self) -> None:
        if self.skipped or not self.made:
            return  # not ours: it existed before the container (and may hold others)
        fs.rmdir_tree(self.path)
        lean.rmdir_parents(self.path, self.made - 1)

    def pids(self) -> list[int]:
        return [] if self.skipped else fs.read_procs(self.path)

    def kill_all(self) -> bool:
        return not self.skipped and fs.kill_cgroup(self.path)

    def freeze(self) -> None:
        path = self._dir("freezer")
        fs.write_file(path + "/cgroup.freeze", "1")
        try:
            fs.wait_event(path, "frozen", 1, timeout=5.0)
        except CgroupError:
            fs.write_file(path + "/cgroup.freeze", "0")
            raise

    def thaw(self) -> None:
        path = self._dir("freezer")
        fs.write_file(path + "/cgroup.freeze", "0")
        fs.wait_event(path, "frozen", 0, timeout=5.0)

    def frozen(self) -> bool:
        from ociruntime.linux import freezer

        return freezer.v2_frozen(self.path)

    # ------------------------------------------------------------ resources

    def _hugetlb(self, limits: "list[HugepageLimit]") -> None:
        controllers.set_hugetlb(self._dir("hugetlb"), limits)

    def _network(self, net: "NetworkResources") -> None:
        if net.class_id or net.priorities:
            self.warnings.append("linux.resources.network (net_cls/net_prio) does not exist "
                                 "on cgroup v2 and is ignored")

    def _unified(self, unified: dict[str, str]) -> None:
        controllers.set_unified(self._dir("unified"), unified)

    def _devices(self, rules: "list[DeviceRule]") -> None:
        from ociruntime.linux.cgroups import ebpf

        ebpf.set_device_rules(self._dir("devices"), rules)

    def _memory(self, mem: "MemoryResources") -> None:
        limit, swap = mem.limit or 0, mem.swap or 0
        for key, value in (("kernel", mem.kernel), ("kernelTCP", mem.kernel_tcp),
                           ("disableOOMKiller", mem.disable_oom_killer)):
            if value:
                self.warnings.append(f"linux.resources.memory.{key} has no cgroup v2 "
                                     "equivalent and is ignored")
        if mem.swappiness not in (None, -1):
            self.warnings.append("linux.resources.memory.swappiness has no cgroup v2 "
                                 "equivalent and is ignored")
        if not (limit or swap or mem.reservation):
            return
        d = self._dir("memory")
        controllers.refuse_limit_below_usage(mem, limit, d, "memory.current")
        swap_max = swap_to_v2(limit, swap)
        if swap_max is not None:
            # Written before memory.max: the pair must never let a lowered memory.max push
            # the excess into swap that the old swap.max still allowed.
            fs.write_file(d + "/memory.swap.max", swap_max)
        if limit:
            fs.write_file(d + "/memory.max", _max(limit))
        if mem.reservation:
            fs.write_file(d + "/memory.low", _max(mem.reservation))

    def _cpu(self, cpu: "CpuResources") -> None:
        if cpu.realtime_runtime or cpu.realtime_period:
            raise CgroupError("cgroup: linux.resources.cpu.realtimeRuntime/realtimePeriod are "
                              "not supported on cgroup v2")
        controllers.set_cpuset(lambda: self._dir("cpuset"), cpu)
        quota, period, burst = cpu.quota or 0, cpu.period or 0, cpu.burst
        if not (cpu.shares or quota or period or burst is not None or cpu.idle is not None):
            return
        d = self._dir("cpu")
        if cpu.shares:
            fs.write_file(d + "/cpu.weight", str(shares_to_weight(cpu.shares)))
        if burst and quota > 0 and burst > quota:
            raise CgroupError(f"cgroup: cpu burst {burst} is larger than quota {quota}")
        if quota or period:
            # cpu.max is "$MAX $PERIOD"; with only a period keep the current quota.
            text = _max(quota) if quota else fs.read_file(d + "/cpu.max").split()[0]
            fs.write_file(d + "/cpu.max", f"{text} {period}" if period else text)
        if burst is not None:
            fs.write_file(d + "/cpu.max.burst", str(burst))
        if cpu.idle is not None:
            fs.write_file(d + "/cpu.idle", str(cpu.idle))

    def _blkio(self, bio: "BlockIO") -> None:
        if bio.leaf_weight or any(w.leaf_weight for w in bio.weight_device):
            self.warnings.append("linux.resources.blockIO leafWeight has no cgroup v2 "
                                 "equivalent and is ignored")
        weights = [w for w in bio.weight_device if w.weight]
        throttle = io_max_lines(bio)
        if not (bio.weight or weights or throttle):
            return
        d = self._dir("io")
        # BFQ takes blkio's 1..1000 scale as is; io.weight is 1..10000.
        bfq = lean.exists(d + "/io.bfq.weight")
        if bio.weight:
            if bfq:
                fs.write_file(d + "/io.bfq.weight", str(bio.weight))
            else:
                fs.write_file(d + "/io.weight", f"default {blkio_to_io_weight(bio.weight)}")
        for w in weights:
            name, value = ("io.bfq.weight", w.weight) if bfq else ("io.weight", blkio_to_io_weight(w.weight))
            try:
                fs.write_file(f"{d}/{name}", f"{controllers.dev(w)} {value}")
            except CgroupError as e:
                if e.errno != 95:  # EOPNOTSUPP: the device's queue lacks the policy
                    raise
                # runc skips per-device weights without BFQ; we skip them too, but say so.
                self.warnings.append(f"linux.resources.blockIO.weightDevice {controllers.dev(w)}: ignored: the "
                                     f"device uses neither the BFQ scheduler nor io.cost ({name})")
        for line in throttle:
            fs.write_file(d + "/io.max", line)

    # ------------------------------------------------------------ stats

    def stats(self) -> dict:
        """runc's `events --stats` data shape, from the v2 files (missing controllers are
        left out)."""
        out: dict = {}
        for name, fn in (("cpu", self._cpu_stats), ("memory", self._memory_stats),
                         ("pids", self._pids_stats), ("blkio", self._io_stats),
                         ("hugetlb", lambda: controllers.hugetlb_stats(self.path))):
            try:
                value = fn()
            except (CgroupError, ValueError, KeyError, IndexError):
                continue
            if value:
                out[name] = value
        return out

    def _cpu_stats(self) -> dict:
        st = fs.read_kv(self.path + "/cpu.stat")
        return {"usage": {"total": st.get("usage_usec", 0) * 1000,
                          "kernel": st.get("system_usec", 0) * 1000,
                          "user": st.get("user_usec", 0) * 1000, "percpu": []},
                "throttling": {"periods": st.get("nr_periods", 0),
                               "throttled_periods": st.get("nr_throttled", 0),
                               "throttled_time": st.get("throttled_usec", 0) * 1000}}

    def _memory_stats(self) -> dict:
        d = self.path
        raw = fs.read_kv(d + "/memory.stat")
        events = fs.read_kv(d + "/memory.events")
        usage = fs.read_int(d + "/memory.current")
        limit = _read_limit(d + "/memory.max")
        peak = fs.read_int(d + "/memory.peak") if lean.exists(d + "/memory.peak") else 0
        out = {"cache": raw.get("file", 0), "stats": raw,
               "usage": {"usage": usage, "max": peak, "limit": limit,
                         "failcnt": events.get("max", 0)},
               "use_hierarchy": True}
        if lean.exists(d + "/memory.swap.current"):
            swap = fs.read_int(d + "/memory.swap.current")
            swap_limit = _read_limit(d + "/memory.swap.max")
            if swap_limit != UNLIMITED:
                swap_limit = min(swap_limit + limit, UNLIMITED)
            # runc reports swap as memory+swap, the v1 memsw meaning.
            failcnt = (fs.read_kv(d + "/memory.swap.events").get("max", 0)
                       if lean.exists(d + "/memory.swap.events") else 0)
            out["swap_usage"] = {"usage": usage + swap, "limit": swap_limit, "failcnt": failcnt}
        return out

    def _pids_stats(self) -> dict:
        return {"current": fs.read_int(self.path + "/pids.current"),
                "limit": fs.read_int(self.path + "/pids.max")}

    def _io_stats(self) -> dict:
        served, serviced = [], []
        for line in fs.read_file(self.path + "/io.stat").splitlines():
            devno, *pairs = line.split()
            major, _, minor = devno.partition(":")
            kv = dict(p.split("=", 1) for p in pairs)
            for key, op, target in (("rbytes", "Read", served), ("wbytes", "Write", served),
                                    ("rios", "Read", serviced), ("wios", "Write", serviced)):
                if key in kv:
                    target.append({"major": int(major), "minor": int(minor), "op": op,
                                   "value": int(kv[key])})
        return {"ioServiceBytesRecursive": served, "ioServicedRecursive": serviced}


# ---------------------------------------------------------------- shared helpers

# How runc's statistics spell a memory limit of "max" (Go's math.MaxUint64).
UNLIMITED = (1 << 64) - 1


def _read_limit(path: str) -> int:
    text = fs.read_file(path).strip()
    return UNLIMITED if text == "max" else int(text)


def _max(value: int) -> str:
    """v2 spells 'unlimited' as max; the spec as -1."""
    return "max" if value < 0 else str(value)


def shares_to_weight(shares: int) -> int:
    """cpu.shares [2, 262144] -> cpu.weight [1, 10000], linearly (the mapping the OCI runtimes
    share, so a config means the same under runc, crun and us)."""
    shares = min(max(shares, 2), 262144)
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_to_io_weight(weight: int) -> int:
    """blkio weight [10, 1000] -> io.weight [1, 10000], linearly."""
    weight = min(max(weight, 10), 1000)
    return 1 + ((weight - 10) * 9999) // 990


def swap_to_v2(limit: int, swap: int) -> str | None:
    """The spec's swap is memory+swap (v1 memsw); memory.swap.max is swap alone."""
    if not swap:
        return None
    if swap == -1 or limit == -1:
        return "max"
    if not limit:
        raise CgroupError("cgroup: linux.resources.memory.swap needs memory.limit on cgroup v2")
    if swap < limit:
        raise CgroupError(f"cgroup: memory+swap limit {swap} is smaller than the memory limit "
                          f"{limit}")
    return str(swap - limit)


def io_max_lines(bio: "BlockIO") -> list[str]:
    """One io.max line per device ("8:0 rbps=1 wiops=2"): the kernel takes a device per write."""
    per_dev: dict[str, list[str]] = {}
    for devices, name in ((bio.throttle_read_bps, "rbps"), (bio.throttle_write_bps, "wbps"),
                          (bio.throttle_read_iops, "riops"), (bio.throttle_write_iops, "wiops")):
        for td in devices:
            per_dev.setdefault(controllers.dev(td), []).append(f"{name}={td.rate}")
    return [f"{d} {' '.join(kv)}" for d, kv in per_dev.items()]


# ---------------------------------------------------------------- delegation

DELEGATE_LIST = "/sys/kernel/cgroup/delegate"
# What the spec says to hand over when the kernel does not list it (cgroups(7)).
DELEGATE_FALLBACK = ("cgroup.procs", "cgroup.subtree_control", "cgroup.threads")


def delegate_to_container(path: str, config) -> None:
    """runtime-spec "cgroup ownership": with a new cgroup namespace (the caller checked) and a
    read-write cgroup mount at /sys/fs/cgroup, the cgroup goes to the host uid/gid of
    process.user (through the user namespace's maps). Nothing to do when that is root."""
    if config.process is None:
        return
    if not any(lean.normpath(m.destination) == "/sys/fs/cgroup" and "ro" not in m.options
               and (m.source == "cgroup" or m.type in ("cgroup", "cgroup2"))
               for m in config.mounts):
        return
    user, userns = config.process.user, any(ns.type == "user" for ns in config.linux.namespaces)
    uid = _host_id(user.uid, config.linux.uid_mappings) if userns else user.uid
    gid = _host_id(user.gid, config.linux.gid_mappings) if userns else user.gid
    if uid is None or gid is None or (uid, gid) == (0, 0):
        return
    delegate(path, uid, gid)


def _host_id(cid: int, mappings) -> int | None:
    for m in mappings:
        if m.container_id <= cid < m.container_id + m.size:
            return m.host_id + cid - m.container_id
    return None


def delegate(path: str, uid: int, gid: int) -> None:
    """runtime-spec "cgroup ownership": give the container's cgroup directory, and those of its
    files the kernel lists as delegatable, to the container's user. Its processes can then make
    sub-cgroups, move themselves into them and enable controllers for them (a systemd inside
    managing its own subtree), but not raise the limits set on the cgroup itself, whose files
    stay root's. The chown goes through an fd of the directory, checked to be cgroup2."""
    try:
        names = fs.read_file(DELEGATE_LIST).split()
    except CgroupError:
        names = list(DELEGATE_FALLBACK)
    from ociruntime.linux.cgroups import fail

    try:
        fd = posix.open(path, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_NOFOLLOW | posix.O_CLOEXEC)
    except OSError as e:
        raise fail(f"delegate {path}: open", e) from e
    try:
        from ociruntime.linux.mountapi import verify_fs

        verify_fs(fd, "cgroup2", f"cgroup: delegate {path}")
        posix.fchown(fd, uid, gid)
        for name in names:
            try:
                posix.chown(name, uid, gid, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                continue  # listed by the kernel, absent in this cgroup (e.g. cgroup.threads)
    except OSError as e:
        raise fail(f"delegate {path} to {uid}:{gid}", e) from e
    finally:
        posix.close(fd)
