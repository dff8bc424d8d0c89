"""cgroup v1 driver (also hybrid hosts: the unified hierarchy is joined as well, key "").

One directory per mounted hierarchy; each controller's settings go to the hierarchy that carries
it. A setting whose controller is not mounted is an error (runc: "cannot set X limit"), except
in hybrid mode where a controller bound to the unified hierarchy (hugetlb on some hosts) is
driven through its v2 files.
"""

import posix

from ociruntime import lean
from ociruntime.errors import CgroupError
from ociruntime.linux.cgroups import CgroupManager, controllers, fs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ociruntime import resources as res
    from ociruntime.resources import BlockIO, CpuResources, DeviceRule, HugepageLimit, MemoryResources, NetworkResources

EINVAL = 22

# Seconds of USER_HZ (cpuacct.stat ticks) -> nanoseconds. USER_HZ is 100 on every Linux ABI.
_TICK_NS = 10_000_000


class V1Manager(CgroupManager):
    driver = "v1"

    def __init__(self, dirs: dict[str, str], *, unified_mount: str | None = None,
                 rootless: bool = False, made: dict[str, int] | None = None) -> None:
        super().__init__()
        self.dirs = dirs                      # hierarchy key -> cgroup directory
        self.unified_mount = unified_mount    # hybrid: the cgroup2 mount point
        self.rootless = rootless
        self.made = made or {}                # hierarchy key -> directories apply() created
        self.skipped: set[str] = set()        # rootless: hierarchies we could not create/join
        self.joining: set[str] = set()        # hierarchies the child joins itself (self_join)
        self.created: set[str] = set()        # hierarchies create() has made (or found made)

    # ------------------------------------------------------------ state

    def to_state(self) -> dict:
        removable = [[path, self.made[key]] for key, path in self.paths().items()] if self.owned() else []
        return {"driver": self.driver, "paths": dict(self.dirs), "made": dict(self.made),
                "unified_mount": self.unified_mount, "rootless": self.rootless,
                "skipped": sorted(self.skipped), "removable": removable}

    @classmethod
    def from_state(cls, data: dict) -> "V1Manager":
        mgr = cls(dict(data["paths"]), unified_mount=data.get("unified_mount"),
                  rootless=bool(data.get("rootless")), made=dict(data.get("made") or {}))
        mgr.skipped = set(data.get("skipped") or ())
        return mgr

    def paths(self) -> dict[str, str]:
        return {k: v for k, v in self.dirs.items() if k not in self.skipped}

    def _key(self, controller: str) -> str | None:
        for key in self.dirs:
            if controller in key.split(",") and key not in self.skipped:
                return key
        return None

    def _dir_of(self, controller: str) -> str | None:
        """The directory of `controller`'s cgroup, None if the container has none there."""
        key = self._key(controller)
        return None if key is None else self.dirs[key]

    def _dir(self, controller: str) -> str:
        key = self._key(controller)
        if key is None:
            why = ("container could not join or create cgroup" if self.rootless
                   else f"the {controller} controller is not mounted")
            raise CgroupError(f"cgroup: cannot set {controller} limit: {why}")
        return self.dirs[key]

    # ------------------------------------------------------------ lifecycle

    def create(self, keys: tuple[str, ...] | None = None) -> None:
        """Create the directories (no process moves), only those of `keys` if given. Idempotent;
        a later exec's apply() finds them existing and keeps the counts from the first call."""
        for key, path in self.dirs.items():
            if key in self.skipped or key in self.created or (keys is not None and key not in keys):
                continue
            made = 0
            try:
                made = fs.mkdirs(path)
                if made:
                    self.made[key] = made
                if made and "cpuset" in key.split(","):
                    _fill_cpuset(path, made)
            except CgroupError as e:
                self._skip_or_raise(key, e, made)
            self.created.add(key)

    def plan(self) -> None:
        for key, path in self.paths().items():
            count = fs.missing_components(path)
            if count:
                self.made[key] = count

    def owned(self) -> bool:
        return all(self.made.get(key, 0) > 0 for key in self.paths())

    def procs_files(self) -> list[str]:
        """The cgroup.procs files to join: a process can write "0" to each to join itself
        (so the parent need not block on the migration, see apply())."""
        return [path + "/cgroup.procs" for key, path in self.dirs.items()
                if key not in self.skipped]

    def clone_target(self) -> int:
        """Hybrid host: the unified hierarchy's directory, which the child is born in (the
        v1 hierarchies' are made after the fork, while the child loads its side: self_join)."""
        if "" not in self.dirs:
            return -1
        self.create(("",))
        if "" in self.skipped:
            return -1
        try:
            return posix.open(self.dirs[""], posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
        except OSError:
            return -1  # apply() reports it

    def self_join(self) -> list[tuple[int, str]]:
        """`tasks` of every v1 hierarchy: "0" there moves the writing thread (the forked child
        has one) without cgroup_threadgroup_rwsem, whose first write waits for an RCU grace
        period (10-30 ms here) when cgroup.procs moves a process by its pid."""
        self.create()
        joins: list[tuple[int, str]] = []
        try:
            for key, path in self.dirs.items():
                if key == "" or key in self.skipped:
                    continue
                tasks = path + "/tasks"
                try:
                    joins.append((posix.open(tasks, posix.O_WRONLY | posix.O_CLOEXEC), tasks))
                except OSError as e:
                    self._skip_or_raise(key, fs.fail(f"open {tasks}", e), self.made.get(key, 0))
                    continue
                self.joining.add(key)
        except BaseException:
            for fd, _ in joins:
                posix.close(fd)
            self.joining.clear()
            raise
        return joins

    def apply(self, pid: int, resources: "res.Resources | None" = None) -> None:
        """create(), then write pid to cgroup.procs of every hierarchy the child does not join
        itself (self_join): the first such move costs an RCU grace period (see there)."""
        left = {key: path for key, path in self.dirs.items() if key not in self.joining}
        if not left:
            return  # self_join made them
        self.create()
        procs = str(pid)
        for key, path in left.items():
            if key in self.skipped:
                continue
            try:
                fs.write_file(path + "/cgroup.procs", procs)
            except CgroupError as e:
                self._skip_or_raise(key, e, self.made.get(key, 0))

    def skip_all(self) -> None:
        self.skipped = set(self.dirs)

    def _skip_or_raise(self, key: str, err: CgroupError, made: int) -> None:
        # Rootless runtimes may only use the hierarchies delegated to them.
        if not self.may_skip(err, self.dirs[key]):
            raise err
        self.skipped.add(key)
        if made:
            path = self.dirs[key]
            fs.rmdir_tree(path)
            lean.rmdir_parents(path, made - 1)

    def destroy(self) -> None:
        for key, path in self.dirs.items():
            made = self.made.get(key, 0)
            if key in self.skipped or not made:
                continue  # not ours: it existed before the container (and may hold others)
            fs.rmdir_tree(path)
            lean.rmdir_parents(path, made - 1)

    def pids(self) -> list[int]:
        for ctrl in ("freezer", "pids", "memory", "devices", "cpu"):
            key = self._key(ctrl)
            if key is not None:
                return fs.read_procs(self.dirs[key])
        paths = self.paths()
        return fs.read_procs(next(iter(paths.values()))) if paths else []

    def kill_all(self) -> bool:
        """Hybrid host: every process of the container joined its cgroup in the unified
        hierarchy too, so that cgroup's cgroup.kill reaches them all at once."""
        path = self.dirs.get("")
        if path is None or "" in self.skipped:
            return False
        return fs.kill_cgroup(path)

    def freeze(self) -> None:
        """FROZEN, then wait until freezer.state reads FROZEN. A task that forks while being
        frozen can leave the cgroup in FREEZING; writing FROZEN again retries, so re-write on a
        short bounded back-off (about 2 s in all) and roll back to THAWED on failure."""
        import time

        state = self._dir("freezer") + "/freezer.state"
        delay = 0.0002
        waited = 0.0
        fs.write_file(state, "FROZEN")
        while True:
            if fs.read_file(state).strip() == "FROZEN":
                return
            if waited > 2.0:
                fs.write_file(state, "THAWED")
                raise CgroupError(f"cgroup: freeze {state}: still FREEZING after {waited:.1f}s")
            time.sleep(delay)
            waited += delay
            delay = min(delay * 2, 0.05)
            fs.write_file(state, "FROZEN")

    def thaw(self) -> None:
        fs.write_file(self._dir("freezer") + "/freezer.state", "THAWED")

    def frozen(self) -> bool:
        from ociruntime.linux import freezer

        d = self._dir_of("freezer")
        return d is not None and freezer.v1_frozen(d)

    # ------------------------------------------------------------ resources

    def _memory(self, mem: "MemoryResources") -> None:
        limit, swap = mem.limit or 0, mem.swap or 0
        if mem.kernel:
            self.warnings.append("linux.resources.memory.kernel is deprecated and ignored")
        swappiness = mem.swappiness
        if not (limit or swap or mem.reservation or mem.kernel_tcp
                or mem.disable_oom_killer or swappiness not in (None, -1)):
            return
        d = self._dir("memory")
        controllers.refuse_limit_below_usage(mem, limit, d, "memory.usage_in_bytes")
        memsw = d + "/memory.memsw.limit_in_bytes"
        if limit:
            # memory.limit_in_bytes may never exceed memsw: raising both needs memsw first.
            _write_before(d + "/memory.limit_in_bytes", str(limit), memsw, str(swap) if swap else None)
        if swap and not (swap == -1 and not lean.exists(memsw)):
            fs.write_file(memsw, str(swap))
        if mem.reservation:
            fs.write_file(d + "/memory.soft_limit_in_bytes", str(mem.reservation))
        if mem.kernel_tcp:
            fs.write_file(d + "/memory.kmem.tcp.limit_in_bytes", str(mem.kernel_tcp))
        if swappiness is not None and swappiness != -1:
            if not 0 <= swappiness <= 100:
                raise CgroupError(f"cgroup: invalid memory swappiness {swappiness}: "
                                  "valid range is 0-100")
            fs.write_file(d + "/memory.swappiness", str(swappiness))
        if mem.disable_oom_killer:
            fs.write_file(d + "/memory.oom_control", "1")

    def _cpu(self, cpu: "CpuResources") -> None:
        controllers.set_cpuset(lambda: self._dir("cpuset"), cpu)
        quota, period, burst = cpu.quota or 0, cpu.period or 0, cpu.burst
        if not (cpu.shares or quota or period or burst or cpu.realtime_runtime or cpu.realtime_period
                or cpu.idle is not None):
            return
        d = self._dir("cpu")
        if cpu.shares:
            fs.write_file(d + "/cpu.shares", str(cpu.shares))
        if cpu.realtime_period:
            fs.write_file(d + "/cpu.rt_period_us", str(cpu.realtime_period))
        if cpu.realtime_runtime:
            fs.write_file(d + "/cpu.rt_runtime_us", str(cpu.realtime_runtime))
        if burst and quota > 0 and burst > quota:
            raise CgroupError(f"cgroup: cpu burst {burst} is larger than quota {quota}")
        if period:
            # A new period can conflict with the old quota (or the burst); set quota first.
            _write_before(d + "/cpu.cfs_period_us", str(period), d + "/cpu.cfs_quota_us", str(quota) if quota else None)
        if quota:
            fs.write_file(d + "/cpu.cfs_quota_us", str(quota))
        if burst is not None:
            fs.write_file(d + "/cpu.cfs_burst_us", str(burst))
        if cpu.idle is not None:
            fs.write_file(d + "/cpu.idle", str(cpu.idle))

    def _blkio(self, bio: "BlockIO") -> None:
        throttles = (("read_bps_device", bio.throttle_read_bps), ("write_bps_device", bio.throttle_write_bps),
                     ("read_iops_device", bio.throttle_read_iops), ("write_iops_device", bio.throttle_write_iops))
        if not (bio.weight or bio.leaf_weight or bio.weight_device or any(t for _, t in throttles)):
            return
        d = self._dir("blkio")
        # BFQ (the only proportional scheduler on current kernels) exposes blkio.bfq.weight;
        # CFQ-era kernels had blkio.weight. Use whichever exists.
        bfq = lean.exists(d + "/blkio.bfq.weight")
        weight_file = "/blkio.bfq.weight" if bfq else "/blkio.weight"
        if bio.weight:
            fs.write_file(d + weight_file, str(bio.weight))
        if bio.leaf_weight:
            fs.write_file(d + "/blkio.leaf_weight", str(bio.leaf_weight))
        for wd in bio.weight_device:
            if wd.weight:
                fs.write_file(d + weight_file + "_device", f"{controllers.dev(wd)} {wd.weight}")
            if wd.leaf_weight:
                fs.write_file(d + "/blkio.leaf_weight_device", f"{controllers.dev(wd)} {wd.leaf_weight}")
        for name, devices in throttles:
            for td in devices:
                fs.write_file(f"{d}/blkio.throttle.{name}", f"{controllers.dev(td)} {td.rate}")

    def _hugetlb(self, limits: "list[HugepageLimit]") -> None:
        if self._key("hugetlb") is None and self._unified_has("hugetlb"):
            # Hybrid host with hugetlb bound to cgroup2: use the v2 files.
            self._enable_unified({"hugetlb"})
            controllers.set_hugetlb(self.dirs[""], limits)
            return
        controllers.set_hugetlb(self._dir("hugetlb"), limits, "limit_in_bytes")

    def _network(self, net: "NetworkResources") -> None:
        if net.class_id:
            fs.write_file(self._dir("net_cls") + "/net_cls.classid", str(net.class_id))
        for prio in net.priorities:
            fs.write_file(self._dir("net_prio") + "/net_prio.ifpriomap", f"{prio.name} {prio.priority}")

    def _unified(self, unified: dict[str, str]) -> None:
        """cgroup v2 keys. On pure v1 that is an error (runc's too); on a hybrid host the keys
        of controllers bound to the unified hierarchy can be honoured."""
        wanted = {k.split(".", 1)[0] for k in unified} - {"cgroup"}
        missing = sorted(c for c in wanted if not self._unified_has(c))
        if "" not in self.dirs or "" in self.skipped or missing:
            what = ", ".join(missing) if missing else "cgroup2"
            raise CgroupError(f"cgroup: cannot use linux.resources.unified on cgroup v1 "
                              f"({what} not available in the unified hierarchy)")
        self._enable_unified(wanted)
        controllers.set_unified(self.dirs[""], unified)

    def _unified_has(self, controller: str) -> bool:
        if not self.unified_mount or "" not in self.dirs:
            return False
        try:
            available = fs.read_file(self.unified_mount + "/cgroup.controllers").split()
        except CgroupError:
            return False
        return controller in available

    def _enable_unified(self, wanted: set[str]) -> None:
        assert self.unified_mount is not None
        controllers.enable_controllers(self.unified_mount, self.dirs[""], wanted)

    def _devices(self, rules: "list[DeviceRule]") -> None:
        d = self._dir("devices")
        for target, line in device_writes(rules):
            fs.write_file(f"{d}/devices.{target}", line)

    # ------------------------------------------------------------ stats

    def stats(self) -> dict:
        """runc's `events --stats` data shape (cpu, memory, pids, blkio, hugetlb)."""
        out: dict = {}
        for name, controller, fn in (("cpu", "cpuacct", self._cpu_stats), ("memory", "memory", _memory_stats),
                                     ("pids", "pids", _pids_stats), ("blkio", "blkio", _blkio_stats),
                                     ("hugetlb", "hugetlb", self._hugetlb_stats)):
            d = self._dir_of(controller)
            if d is None and name != "hugetlb":  # hugetlb may be bound to the unified hierarchy
                continue
            try:
                value = fn(d)
            except (CgroupError, ValueError, KeyError):
                continue
            if value is not None:
                out[name] = value
        return out

    def _cpu_stats(self, d: str) -> dict:
        ticks = fs.read_kv(d + "/cpuacct.stat")
        usage = {"total": fs.read_int(d + "/cpuacct.usage"),
                 "percpu": [int(x) for x in fs.read_file(d + "/cpuacct.usage_percpu").split()],
                 "kernel": ticks.get("system", 0) * _TICK_NS,
                 "user": ticks.get("user", 0) * _TICK_NS}
        out: dict = {"usage": usage, "throttling": {}}
        cpu = self._dir_of("cpu")
        if cpu is not None:
            st = fs.read_kv(cpu + "/cpu.stat")
            out["throttling"] = {"periods": st.get("nr_periods", 0),
                                 "throttled_periods": st.get("nr_throttled", 0),
                                 "throttled_time": st.get("throttled_time", 0)}
        return out

    def _hugetlb_stats(self, d: str | None) -> dict | None:
        if d is None:
            if self._unified_has("hugetlb"):
                return controllers.hugetlb_stats(self.dirs[""])
            return None
        out = {}
        for name in posix.listdir(d):
            if name.startswith("hugetlb.") and name.endswith(".usage_in_bytes") \
                    and ".rsvd." not in name:
                size = name[8:-15]
                out[size] = {"usage": fs.read_int(f"{d}/{name}"),
                             "max": fs.read_int(f"{d}/hugetlb.{size}.max_usage_in_bytes"),
                             "failcnt": fs.read_int(f"{d}/hugetlb.{size}.failcnt")}
        return out


def _memory_stats(d: str) -> dict:
    raw = fs.read_kv(d + "/memory.stat")

    def entry(prefix: str) -> dict:
        try:
            return {"usage": fs.read_int(f"{d}/{prefix}.usage_in_bytes"),
                    "max": fs.read_int(f"{d}/{prefix}.max_usage_in_bytes"),
                    "failcnt": fs.read_int(f"{d}/{prefix}.failcnt"),
                    "limit": fs.read_int(f"{d}/{prefix}.limit_in_bytes")}
        except CgroupError:
            return {}

    return {"cache": raw.get("total_cache", raw.get("cache", 0)),
            "usage": entry("memory"), "swap_usage": entry("memory.memsw"),
            "kernel_usage": entry("memory.kmem"), "kernel_tcp_usage": entry("memory.kmem.tcp"),
            "use_hierarchy": True, "stats": raw}


def _pids_stats(d: str) -> dict:
    return {"current": fs.read_int(d + "/pids.current"), "limit": fs.read_int(d + "/pids.max")}


def _blkio_stats(d: str) -> dict:
    return {"ioServiceBytesRecursive": _blkio_entries(d + "/blkio.throttle.io_service_bytes_recursive"),
            "ioServicedRecursive": _blkio_entries(d + "/blkio.throttle.io_serviced_recursive")}


def _write_before(path: str, value: str, other: str, other_value: str | None) -> None:
    """Write value to path; when the kernel refuses it (EINVAL) for the current value of
    `other`, and other gets a new value too, write that first and path again."""
    try:
        fs.write_file(path, value)
    except CgroupError as e:
        if other_value is None or e.errno != EINVAL:
            raise
        fs.write_file(other, other_value)
        fs.write_file(path, value)


def _fill_cpuset(path: str, made: int) -> None:
    """A new v1 cpuset cgroup starts with empty cpus/mems and refuses tasks (ENOSPC) until they
    are set: copy them from the nearest pre-existing ancestor into each level we created."""
    levels = [path]
    for _ in range(made - 1):
        levels.append(lean.parent(levels[-1]))
    parent = lean.parent(levels[-1])
    cpus = fs.read_file(parent + "/cpuset.cpus").strip()
    mems = fs.read_file(parent + "/cpuset.mems").strip()
    for level in reversed(levels):
        fs.write_file(level + "/cpuset.cpus", cpus)
        fs.write_file(level + "/cpuset.mems", mems)


def _blkio_entries(path: str) -> list[dict]:
    out = []
    for line in fs.read_file(path).splitlines():
        parts = line.split()
        if len(parts) == 3 and ":" in parts[0]:
            major, _, minor = parts[0].partition(":")
            out.append({"major": int(major), "minor": int(minor), "op": parts[1],
                        "value": int(parts[2])})
    return out


def _rule_lines(rule: "DeviceRule") -> list[str]:
    """Kernel devices.allow/deny lines for one spec rule. Type "a" with a specific major/minor
    cannot be said to the kernel ("a" always means everything), so it becomes a "c" and a "b"
    line."""
    kind, major, minor, access = rule.type, rule.major, rule.minor, rule.access

    def wild(n: int | None) -> str:
        return "*" if n is None or n < 0 else str(n)

    if kind == "a" and (wild(major) != "*" or wild(minor) != "*"):
        return [f"{k} {wild(major)}:{wild(minor)} {access}" for k in ("c", "b")]
    return [f"{kind} {wild(major)}:{wild(minor)} {access}"]


def _is_catch_all(rule: "DeviceRule") -> bool:
    return (rule.type == "a" and rule.major in (None, -1) and rule.minor in (None, -1)
            and set(rule.access) >= set("rwm"))


def device_writes(rules: "list[DeviceRule]") -> list[tuple[str, str]]:
    """[(allow|deny, line)] to bring a v1 devices cgroup to the state `rules` describe.

    Rules apply in order, so only the last catch-all rule ("all devices, rwm") and what follows
    it matter; that rule is written as "a" to devices.allow or devices.deny, which resets the
    cgroup's default and drops every exception, then the later rules add (or remove)
    exceptions. Without any catch-all the cgroup keeps its inherited default (allow-all below
    an unrestricted parent), which is also what the spec's rule order means."""
    start = 0
    for i, rule in enumerate(rules):
        if _is_catch_all(rule):
            start = i
    out: list[tuple[str, str]] = []
    for i, rule in enumerate(rules[start:]):
        target = "allow" if rule.allow else "deny"
        if i == 0 and _is_catch_all(rule):
            out.append((target, "a"))
            continue
        out.extend((target, line) for line in _rule_lines(rule))
    return out

