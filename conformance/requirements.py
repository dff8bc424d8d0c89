"""Every normative statement of OCI runtime-spec 1.3.0's runtime.md, runtime-linux.md,
config.md, config-linux.md, features.md and features-linux.md, in our own words, with the
checks that test it or the reason it cannot be tested from outside the runtime.

One `R(...)` per statement: id, document, section anchor, level, paraphrase, then either
`checks=[...]` (check ids from conformance/checks) or `untestable="why"`. Statements of
other platforms (Windows, Solaris, z/OS, FreeBSD, VM) in config.md are listed as untestable
so that the table stays a complete index of the documents. `python -m conformance
--requirements-json` prints the table as JSON lines.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

LEVELS = ("MUST", "MUST NOT", "REQUIRED", "SHOULD", "SHOULD NOT", "MAY")

RT, RTL, CFG, LNX, FEAT, FEATL = ("runtime.md", "runtime-linux.md", "config.md",
                                  "config-linux.md", "features.md", "features-linux.md")

AUTHOR = "constrains the config author, not the runtime; bundle validators check it"
OTHER_OS = "applies to another platform than Linux"
NO_VIEW = "nothing a caller can observe distinguishes compliance"
NO_CG2 = "cgroup v2 delegation rule; this host's controllers are on cgroup v1"
NO_RDT = "needs Intel RDT (resctrl); not available on this host"


@dataclass(frozen=True)
class Requirement:
    id: str
    doc: str
    anchor: str
    level: str
    text: str
    checks: list[str] = field(default_factory=list)
    untestable: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


REQUIREMENTS: list[Requirement] = []


def R(id: str, doc: str, anchor: str, level: str, text: str,
      checks: list[str] | None = None, untestable: str = "") -> None:
    REQUIREMENTS.append(Requirement(id, doc, anchor, level, text, checks or [], untestable))


# ---------------------------------------------------------------------------------------
# runtime.md
# ---------------------------------------------------------------------------------------
A = "runtimeScopeContainer"
R("rt-scope", RT, A, "MUST", "Whoever created a container can run every operation on it.",
  ["lifecycle.full_cycle"])
A = "runtimeState"
R("rt-state-ociversion", RT, A, "REQUIRED", "State has ociVersion, a string.", ["state.fields"])
R("rt-state-id", RT, A, "REQUIRED", "State has id, the container's id.", ["state.fields"])
R("rt-state-id-unique", RT, A, "MUST", "A container id is unique on the host.",
  ["lifecycle.create_duplicate_id"])
R("rt-state-status", RT, A, "REQUIRED", "State has status, a string.", ["state.fields"])
R("rt-state-status-values", RT, A, "MAY",
  "status takes the values creating, created, running, stopped at the matching lifecycle steps.",
  ["state.status_values"])
R("rt-state-status-extra", RT, A, "MUST",
  "Runtime-defined extra status values only name states the spec does not define.",
  ["state.status_values", "state.schema"])
R("rt-state-pid", RT, A, "REQUIRED",
  "On Linux, state has the container process's pid while created or running.",
  ["state.fields", "state.pid_is_process"])
R("rt-state-pid-hook-runtime", RT, A, "REQUIRED",
  "Hooks run in the runtime namespace see the pid as the runtime sees it.",
  ["hooks.state_pid_runtime"])
R("rt-state-pid-hook-container", RT, A, "REQUIRED",
  "Hooks run in the container namespace see the pid as the container sees it.",
  ["hooks.state_pid_container"])
R("rt-state-bundle", RT, A, "REQUIRED", "State has bundle, the absolute path of the bundle.",
  ["state.fields"])
R("rt-state-annotations", RT, A, "MAY",
  "State carries the config's annotations; without any it may omit them or give an empty map.",
  ["state.annotations"])
R("rt-state-extra-props", RT, A, "MAY", "State may hold further properties.",
  untestable="a permission; any extra property is allowed")
R("rt-state-schema", RT, A, "MUST", "Serialized state follows schema/state-schema.json.",
  ["state.schema"])
A = "runtimeLifecycle"
R("rt-lc-create-env", RT, A, "MUST",
  "create builds the container environment as config.json describes.",
  ["lifecycle.create_applies_config"])
R("rt-lc-create-error", RT, A, "MUST",
  "If the environment cannot be built, create reports an error.",
  ["lifecycle.create_bad_config", "lifecycle.cannot_apply_errors"])
R("rt-lc-create-resources", RT, A, "MUST",
  "The requested resources exist after create.", ["lifecycle.create_applies_config"])
R("rt-lc-create-no-program", RT, A, "MUST NOT",
  "The user program does not run during create.", ["lifecycle.create_not_run"])
R("rt-lc-config-frozen", RT, A, "MUST NOT",
  "Edits to config.json after create do not affect the container.",
  ["lifecycle.config_change_after_create"])
R("rt-lc-prestart", RT, A, "MUST", "The runtime invokes prestart hooks.", ["hooks.prestart"])
R("rt-lc-prestart-fail", RT, A, "MUST",
  "A failing prestart hook: error, stop the container, continue at destroy (step 12).",
  ["hooks.prestart_fails"])
R("rt-lc-createruntime", RT, A, "MUST", "The runtime invokes createRuntime hooks.",
  ["hooks.create_runtime"])
R("rt-lc-createruntime-fail", RT, A, "MUST",
  "A failing createRuntime hook: error, stop the container, continue at step 12.",
  ["hooks.createRuntime_fails"])
R("rt-lc-createcontainer", RT, A, "MUST", "The runtime invokes createContainer hooks.",
  ["hooks.create_container"])
R("rt-lc-createcontainer-fail", RT, A, "MUST",
  "A failing createContainer hook: error, stop the container, continue at step 12.",
  ["hooks.createContainer_fails"])
R("rt-lc-startcontainer", RT, A, "MUST", "The runtime invokes startContainer hooks.",
  ["hooks.start_container"])
R("rt-lc-startcontainer-fail", RT, A, "MUST",
  "A failing startContainer hook: error, stop the container, continue at step 12.",
  ["hooks.startContainer_fails"])
R("rt-lc-run-program", RT, A, "MUST", "start runs the user program given by process.",
  ["lifecycle.create_not_run"])
R("rt-lc-poststart", RT, A, "MUST", "The runtime invokes poststart hooks.",
  ["hooks.poststart"])
R("rt-lc-poststart-fail", RT, A, "MUST",
  "A failing poststart hook: error, stop the container, continue at step 12.",
  ["hooks.poststart_fails"])
R("rt-lc-exit", RT, A, "MAY",
  "The container process may end by exiting, erroring, crashing or being killed.",
  untestable="describes the workload, not the runtime")
R("rt-lc-destroy", RT, A, "MUST", "delete destroys the container, undoing create.",
  ["lifecycle.delete_removes"])
R("rt-lc-poststop", RT, A, "MUST", "The runtime invokes poststop hooks.", ["hooks.poststop"])
R("rt-lc-poststop-fail", RT, A, "MUST",
  "A failing poststop hook only logs a warning; remaining hooks and the lifecycle go on.",
  ["hooks.poststop_fail_continues"])
R("rt-errors-no-change", RT, "runtimeErrors", "MUST",
  "An operation that errors leaves the environment as if it had not been tried.",
  ["lifecycle.failed_create_leaves_nothing", "lifecycle.create_duplicate_id",
   "lifecycle.start_twice", "lifecycle.kill_stopped", "lifecycle.delete_running"])
R("rt-warnings-continue", RT, "runtimeWarnings", "MUST",
  "Logging a warning does not change the flow of the operation.",
  ["hooks.poststop_fail_continues", "process.caps_unknown_no_fail"])
R("rt-ops-support", RT, "runtimeOperations", "MUST",
  "Runtimes support the state, create, start, kill and delete operations.",
  ["lifecycle.full_cycle"])
A = "runtimeQueryState"
R("rt-state-op-noid", RT, A, "MUST", "state without a container id is an error.",
  ["cli.state_no_id"])
R("rt-state-op-missing", RT, A, "MUST", "state of an unknown container is an error.",
  ["cli.missing_container"])
R("rt-state-op-returns", RT, A, "MUST", "state returns the container's state as specified.",
  ["state.fields", "state.schema"])
A = "runtimeCreate"
R("rt-create-args", RT, A, "MUST", "create without a bundle path or an id is an error.",
  ["cli.create_no_id", "cli.create_no_bundle"])
R("rt-create-id-taken", RT, A, "MUST",
  "create with an id already in use is an error and creates nothing.",
  ["lifecycle.create_duplicate_id"])
R("rt-create-id-invalid", RT, A, "MUST",
  "create with an otherwise invalid id is an error and creates nothing.",
  ["lifecycle.create_invalid_id"])
R("rt-create-new", RT, A, "MUST", "create makes a new container.", ["lifecycle.full_cycle"])
R("rt-create-apply", RT, A, "MUST",
  "create applies every configured property except process.",
  ["lifecycle.create_applies_config"])
R("rt-create-args-deferred", RT, A, "MUST NOT",
  "process.args is not applied before start.", ["lifecycle.create_not_run"])
R("rt-create-process-may", RT, A, "MAY",
  "Other process properties may already be applied by create.",
  untestable="a permission; either choice complies")
R("rt-create-cannot-apply", RT, A, "MUST",
  "A property that cannot be applied makes create fail without creating the container.",
  ["lifecycle.cannot_apply_errors", "lifecycle.create_bad_config"])
R("rt-create-validate", RT, A, "MAY", "The runtime may validate config.json before creating.",
  untestable="a permission; either choice complies")
A = "runtimeStart"
R("rt-start-noid", RT, A, "MUST", "start without a container id is an error.",
  ["cli.start_no_id"])
R("rt-start-not-created", RT, A, "MUST",
  "start of a container that is not created is an error and has no effect.",
  ["lifecycle.start_twice", "lifecycle.start_stopped", "cli.missing_container"])
R("rt-start-run", RT, A, "MUST", "start runs the user program as process specifies.",
  ["lifecycle.create_not_run", "process.args"])
R("rt-start-no-process", RT, A, "MUST", "start is an error when process was not set.",
  ["lifecycle.start_without_process"])
A = "runtimeKill"
R("rt-kill-noid", RT, A, "MUST", "kill without a container id is an error.", ["cli.kill_no_id"])
R("rt-kill-not-running", RT, A, "MUST",
  "kill of a container neither created nor running is an error and has no effect.",
  ["lifecycle.kill_stopped", "cli.missing_container"])
R("rt-kill-send", RT, A, "MUST", "kill sends the given signal to the container process.",
  ["lifecycle.kill_signal", "lifecycle.kill_created"])
A = "runtimeDelete"
R("rt-delete-noid", RT, A, "MUST", "delete without a container id is an error.",
  ["cli.delete_no_id"])
R("rt-delete-not-stopped", RT, A, "MUST",
  "delete of a container that is not stopped is an error and has no effect.",
  ["lifecycle.delete_running", "lifecycle.delete_created", "cli.missing_container"])
R("rt-delete-resources", RT, A, "MUST", "delete removes the resources create made.",
  ["lifecycle.delete_removes"])
R("rt-delete-not-foreign", RT, A, "MUST NOT",
  "delete leaves alone resources the container used but did not create.",
  ["lifecycle.delete_keeps_foreign"])
R("rt-delete-id-reuse", RT, A, "MAY", "A deleted container's id may be used again.",
  ["lifecycle.id_reuse"])

# ---------------------------------------------------------------------------------------
# runtime-linux.md
# ---------------------------------------------------------------------------------------
A = "runtimeLinuxFileDescriptors"
R("rtl-fds-default", RTL, A, "MUST",
  "By default the program gets only stdin, stdout and stderr open (stated without a keyword).",
  ["linux.fds"])
R("rtl-fds-extra", RTL, A, "MAY", "The runtime may pass extra descriptors (socket activation).",
  untestable="a permission; needs runtime-specific flags")
R("rtl-fds-devnull", RTL, A, "MAY", "Some descriptors may point at /dev/null while open.",
  untestable="a permission")
R("rtl-dev-symlinks", RTL, "runtimeLinuxDevSymbolicLinks", "MUST",
  "After mounts, create /dev/fd, /dev/stdin, /dev/stdout, /dev/stderr links into "
  "/proc/self/fd when the targets exist.", ["linux.dev_symlinks"])

# ---------------------------------------------------------------------------------------
# config.md
# ---------------------------------------------------------------------------------------
R("cfg-ociversion-semver", CFG, "configSpecificationVersion", "MUST",
  "ociVersion is a SemVer 2.0.0 string.", untestable=AUTHOR)
A = "configRoot"
R("cfg-root-hyperv", CFG, A, "MUST NOT", "Hyper-V containers set no root.",
  untestable=OTHER_OS)
R("cfg-root-required", CFG, A, "REQUIRED", "On Linux root is required.",
  ["config.root_missing"])
R("cfg-root-path-windows", CFG, A, "MUST", "On Windows root.path is a volume GUID path.",
  untestable=OTHER_OS)
R("cfg-root-path-conventional", CFG, A, "SHOULD", "root.path is conventionally `rootfs`.",
  untestable=AUTHOR)
R("cfg-root-path-forms", CFG, A, "REQUIRED",
  "root.path is absolute or relative to the bundle; both work.",
  ["config.root_absolute_path", "lifecycle.full_cycle"])
R("cfg-root-path-exists", CFG, A, "MUST", "A directory exists at root.path.",
  ["lifecycle.create_bad_config"])
R("cfg-root-readonly", CFG, A, "MUST",
  "root.readonly true makes the root filesystem read-only inside; default false.",
  ["config.root_readonly", "config.root_writable"])
R("cfg-root-readonly-windows", CFG, A, "MUST", "On Windows readonly is omitted or false.",
  untestable=OTHER_OS)
A = "configMounts"
R("cfg-mounts-order", CFG, A, "MUST", "Mounts are made in the listed order.",
  ["mounts.order"])
R("cfg-mounts-dest-absolute", CFG, A, "SHOULD", "On Linux a destination should be absolute.",
  untestable=AUTHOR)
R("cfg-mounts-dest-relative", CFG, A, "MUST",
  "A relative Linux destination (deprecated) is taken relative to /.",
  ["mounts.relative_destination"])
R("cfg-mounts-windows-abs", CFG, A, "MUST", "Windows destinations are absolute.",
  untestable=OTHER_OS)
R("cfg-mounts-windows-nesting", CFG, A, "MUST NOT", "Windows mounts do not nest.",
  untestable=OTHER_OS)
R("cfg-mounts-solaris-abs", CFG, A, "MUST", "Solaris destinations are absolute.",
  untestable=OTHER_OS)
R("cfg-mounts-other-abs", CFG, A, "MUST", "Other platforms' destinations are absolute.",
  untestable=OTHER_OS)
R("cfg-mounts-bind-source", CFG, A, "REQUIRED",
  "A bind source is absolute or relative to the bundle (stated without a keyword).",
  ["mounts.bind_relative_source", "mountopt.bind"])
R("cfg-mounts-windows-ro", CFG, A, "MUST", "Windows runtimes support the ro option.",
  untestable=OTHER_OS)

A = "configLinuxMountOptions"
MOUNT_OPTIONS: list[tuple[str, str, str]] = [
    ("async", "MUST", "writes are asynchronous (clears sync)"),
    ("atime", "MUST", "clears noatime"),
    ("bind", "MUST", "bind mount of the source"),
    ("defaults", "MUST", "the default flag set"),
    ("dev", "MUST", "clears nodev"),
    ("diratime", "MUST", "clears nodiratime"),
    ("dirsync", "MUST", "synchronous directory updates"),
    ("exec", "MUST", "clears noexec"),
    ("iversion", "MUST", "inode version counting"),
    ("lazytime", "MUST", "lazy timestamp writes"),
    ("loud", "MUST", "clears silent"),
    ("mand", "MAY", "mandatory locking (deprecated in Linux 5.15)"),
    ("noatime", "MUST", "no access-time updates"),
    ("nodev", "MUST", "device files are not usable"),
    ("nodiratime", "MUST", "no directory access-time updates"),
    ("noexec", "MUST", "no program execution"),
    ("noiversion", "MUST", "clears iversion"),
    ("nolazytime", "MUST", "clears lazytime"),
    ("nomand", "MAY", "clears mand"),
    ("norelatime", "MUST", "clears relatime"),
    ("nostrictatime", "MUST", "clears strictatime"),
    ("nosuid", "MUST", "set-id bits are ignored"),
    ("nosymfollow", "SHOULD", "symlinks are not followed (Linux 5.10)"),
    ("private", "MUST", "private propagation"),
    ("ratime", "SHOULD", "recursive atime"),
    ("rbind", "MUST", "recursive bind mount"),
    ("rdev", "SHOULD", "recursive dev"),
    ("rdiratime", "SHOULD", "recursive diratime"),
    ("relatime", "MUST", "relative access-time updates"),
    ("remount", "MUST", "changes an existing mount"),
    ("rexec", "SHOULD", "recursive exec"),
    ("rnoatime", "SHOULD", "recursive noatime"),
    ("rnodiratime", "SHOULD", "recursive nodiratime"),
    ("rnoexec", "SHOULD", "recursive noexec"),
    ("rnorelatime", "SHOULD", "recursive norelatime"),
    ("rnostrictatime", "SHOULD", "recursive nostrictatime"),
    ("rnosuid", "SHOULD", "recursive nosuid"),
    ("rnosymfollow", "SHOULD", "recursive nosymfollow"),
    ("ro", "MUST", "read-only"),
    ("rprivate", "MUST", "recursive private propagation"),
    ("rrelatime", "SHOULD", "recursive relatime"),
    ("rro", "SHOULD", "recursive read-only"),
    ("rrw", "SHOULD", "recursive read-write"),
    ("rshared", "MUST", "recursive shared propagation"),
    ("rslave", "MUST", "recursive slave propagation"),
    ("rstrictatime", "SHOULD", "recursive strictatime"),
    ("rsuid", "SHOULD", "recursive suid"),
    ("rsymfollow", "SHOULD", "recursive symfollow"),
    ("runbindable", "MUST", "recursive unbindable"),
    ("rw", "MUST", "read-write"),
    ("shared", "MUST", "shared propagation"),
    ("silent", "MUST", "suppresses kernel messages"),
    ("slave", "MUST", "slave propagation"),
    ("strictatime", "MUST", "always update access times"),
    ("suid", "MUST", "clears nosuid"),
    ("symfollow", "SHOULD", "clears nosymfollow"),
    ("sync", "MUST", "synchronous writes"),
    ("tmpcopyup", "MAY", "a tmpfs starts with a copy of what it covers"),
    ("unbindable", "MUST", "unbindable propagation"),
    ("idmap", "SHOULD", "the mount gets an id mapping"),
    ("ridmap", "SHOULD", "the mount and its submounts get an id mapping"),
]
for _opt, _lvl, _what in MOUNT_OPTIONS:
    R(f"cfg-mountopt-{_opt}", CFG, A, _lvl,
      f"Linux runtimes implement the `{_opt}` mount option: {_what}.", [f"mountopt.{_opt}"])
R("cfg-idmap-applied", CFG, A, "MUST",
  "A mount with idmap/ridmap gets an id mapping (ridmap: recursively).",
  ["mountopt.idmap", "mountopt.ridmap"])
R("cfg-idmap-not-passed", CFG, A, "SHOULD NOT",
  "idmap/ridmap are not handed to mount(2) as options.", ["mountopt.idmap"])
R("cfg-idmap-use-mappings", CFG, A, "MUST",
  "The mount's own uidMappings/gidMappings define the id mapping when given.",
  ["mountopt.idmap"])
R("cfg-idmap-userns-fallback", CFG, A, "MAY",
  "Without mount mappings the container's user namespace mapping may be used, else an error.",
  untestable="a permission with an error branch; the error branch is cfg-idmap-no-userns")
R("cfg-idmap-no-userns", CFG, A, "MUST",
  "idmap/ridmap with no mappings and no user namespace is an error.",
  ["mounts.idmap_without_mapping_rejected"])
R("cfg-idmap-setattr", CFG, A, "SHOULD",
  "idmap/ridmap use mount_setattr(MOUNT_ATTR_IDMAP).", untestable=NO_VIEW)
R("cfg-mountopt-custom", CFG, A, "MAY", "Runtimes may implement further option strings.",
  untestable="a permission")
R("cfg-mountopt-custom-mount8", CFG, A, "SHOULD",
  "A custom option that mount(8) knows behaves as in mount(8).",
  untestable="no custom option is common to runtimes")
R("cfg-mountopt-unknown-data", CFG, A, "SHOULD",
  "Unknown options go to mount(2) as filesystem-specific data, comma-separated.",
  ["mounts.fs_specific_data"])
A = "configPOSIXMounts"
R("cfg-mounts-idmap-setattr", CFG, A, "SHOULD",
  "Mount uidMappings/gidMappings are realised with mount_setattr.", untestable=NO_VIEW)
R("cfg-mounts-idmap-option", CFG, A, "SHOULD",
  "A mount with mappings lists idmap or ridmap in its options.", untestable=AUTHOR)
R("cfg-mounts-idmap-pair", CFG, A, "MUST",
  "uidMappings and gidMappings of a mount come together.", untestable=AUTHOR)

A = "configProcess"
R("cfg-process-required-start", CFG, A, "REQUIRED", "process is required when start is called.",
  ["lifecycle.start_without_process"])
R("cfg-consolesize-ignored", CFG, A, "MUST",
  "consoleSize is ignored when terminal is false or unset.", ["process.console_size_ignored"])
R("cfg-cwd-absolute", CFG, A, "MUST", "process.cwd is absolute; it is the program's cwd.",
  ["process.cwd", "process.cwd_relative_rejected"])
R("cfg-env", CFG, A, "REQUIRED",
  "process.env becomes the program's environment (stated without a keyword).",
  ["process.env"])
R("cfg-args-required", CFG, A, "REQUIRED",
  "process.args has at least one entry, used like execvp's file.",
  ["process.args", "process.args_empty_rejected"])
A = "configPOSIXProcess"
R("cfg-rlimit-unmappable", CFG, A, "MUST",
  "An rlimit type with no kernel counterpart is an error.",
  ["process.rlimit_invalid_rejected"])
R("cfg-rlimit-getrlimit", CFG, A, "MUST", "getrlimit on each configured type succeeds.",
  ["process.rlimits"])
R("cfg-rlimit-soft", CFG, A, "MUST", "The soft limit equals the configured soft value.",
  ["process.rlimits"])
R("cfg-rlimit-hard", CFG, A, "MUST", "The hard limit equals the configured hard value.",
  ["process.rlimits"])
R("cfg-rlimit-duplicate", CFG, A, "MUST", "Two rlimits of one type are an error.",
  ["process.rlimit_duplicate_rejected"])
A = "configLinuxProcess"
R("cfg-caps-sets", CFG, A, "REQUIRED",
  "The effective, bounding, inheritable, permitted and ambient sets are kept as configured "
  "(stated without a keyword).", ["process.capabilities", "process.capabilities_root"])
R("cfg-caps-warn", CFG, A, "MUST",
  "Capabilities that are unknown or cannot be granted are logged as warnings.",
  ["process.caps_unknown_warns"])
R("cfg-caps-no-fail", CFG, A, "SHOULD NOT",
  "Ungrantable capabilities do not make the runtime fail.",
  ["process.caps_unknown_no_fail", "process.caps_ungrantable_no_fail"])
R("cfg-nnp", CFG, A, "REQUIRED",
  "noNewPrivileges true stops the process gaining privileges (stated without a keyword).",
  ["process.no_new_privileges"])
R("cfg-oom-set", CFG, A, "MUST", "With oomScoreAdj set, oom_score_adj takes that value.",
  ["process.oom_score_adj"])
R("cfg-oom-unset", CFG, A, "MUST NOT", "Without oomScoreAdj, oom_score_adj is left alone.",
  ["process.oom_score_adj_unset"])
R("cfg-scheduler", CFG, A, "MUST",
  "scheduler policy/nice/priority apply (or, unsupported, are an error: see valid values).",
  ["process.scheduler"])
R("cfg-iopriority", CFG, A, "MUST",
  "ioPriority class and priority apply (or, unsupported, are an error).",
  ["process.io_priority"])
R("cfg-exec-cpu-affinity", CFG, A, "SHOULD NOT",
  "Without execCPUAffinity.final the affinity is not changed after joining the cgroup.",
  untestable="applies to exec'd processes only; exec is not a spec operation")
R("cfg-apparmor-selinux", CFG, A, "MUST",
  "apparmorProfile / selinuxLabel apply (or are an error).",
  untestable="no AppArmor or SELinux on this host")
A = "configPOSIXUser"
R("cfg-user-ids", CFG, A, "REQUIRED", "user.uid and user.gid apply in the container.",
  ["process.user"])
R("cfg-user-umask", CFG, A, "REQUIRED", "user.umask applies when set.", ["process.umask"])
R("cfg-user-additional-gids", CFG, A, "REQUIRED",
  "user.additionalGids become supplementary groups.", ["process.additional_gids"])
R("cfg-hostname", CFG, "configHostname", "REQUIRED",
  "hostname is set in the container's UTS namespace.", ["config.hostname"])
R("cfg-domainname", CFG, "configDomainname", "REQUIRED",
  "domainname is set in the container's UTS namespace.", ["config.domainname"])
A = "configPlatformSpecificConfiguration"
R("cfg-platform-linux", CFG, A, "MAY", "linux may be set when targeting Linux.",
  untestable="a permission for the author")
R("cfg-platform-others", CFG, A, "MAY", "freebsd/solaris/vm/zos may be set for their targets.",
  untestable=OTHER_OS)
R("cfg-platform-windows", CFG, A, "MUST", "windows is set when targeting Windows.",
  untestable=OTHER_OS)
A = "configHooks"
R("cfg-hooks-may", CFG, A, "MAY", "hooks may hold any of the six hook kinds.",
  ["features.hooks_supported"])
R("cfg-hooks-path-absolute", CFG, A, "MUST", "A hook path is absolute.",
  ["hooks.relative_path_rejected"])
R("cfg-hooks-entry", CFG, A, "REQUIRED",
  "A hook runs path with args as argv and env as environment (stated without a keyword).",
  ["hooks.args_env"])
R("cfg-hooks-timeout-positive", CFG, A, "MUST", "A hook timeout, if set, is above zero.",
  ["hooks.timeout_zero_rejected"])
R("cfg-hooks-timeout", CFG, A, "REQUIRED",
  "A hook running longer than its timeout is aborted (stated without a keyword).",
  ["hooks.timeout"])
R("cfg-hooks-order", CFG, A, "MUST", "Hooks run in the listed order.", ["hooks.array_order"])
R("cfg-hooks-state-stdin", CFG, A, "MUST", "Hooks get the container state on stdin.",
  ["hooks.state_stdin"])
A = "configHooksPrestart"
R("cfg-prestart-when", CFG, A, "MUST",
  "prestart runs in create, after the environment exists, before pivot_root.",
  ["hooks.prestart"])
R("cfg-prestart-before-createruntime", CFG, A, "MUST", "prestart runs before createRuntime.",
  ["hooks.prestart"])
R("cfg-prestart-path", CFG, A, "MUST", "prestart paths resolve in the runtime namespace.",
  ["hooks.prestart"])
R("cfg-prestart-ns", CFG, A, "MUST", "prestart hooks run in the runtime namespace.",
  ["hooks.runtime_namespace"])
A = "configHooksCreateRuntime"
R("cfg-createruntime-when", CFG, A, "MUST",
  "createRuntime runs in create, after the environment exists, before pivot_root.",
  ["hooks.create_runtime"])
R("cfg-createruntime-path", CFG, A, "MUST",
  "createRuntime paths resolve in the runtime namespace.", ["hooks.create_runtime"])
R("cfg-createruntime-ns", CFG, A, "MUST", "createRuntime hooks run in the runtime namespace.",
  ["hooks.runtime_namespace"])
A = "configHooksCreateContainer"
R("cfg-createcontainer-when", CFG, A, "MUST",
  "createContainer runs in create, after the environment exists, before pivot_root.",
  ["hooks.create_container"])
R("cfg-createcontainer-after", CFG, A, "MUST", "createContainer runs after createRuntime.",
  ["hooks.create_container"])
R("cfg-createcontainer-path", CFG, A, "MUST",
  "createContainer paths resolve in the runtime namespace.", ["hooks.create_container"])
R("cfg-createcontainer-ns", CFG, A, "MUST",
  "createContainer hooks run in the container namespace.", ["hooks.container_namespace"])
A = "configHooksStartContainer"
R("cfg-startcontainer-when", CFG, A, "MUST",
  "startContainer runs during start, before the user program.", ["hooks.start_container"])
R("cfg-startcontainer-path", CFG, A, "MUST",
  "startContainer paths resolve in the container namespace.", ["hooks.start_container"])
R("cfg-startcontainer-ns", CFG, A, "MUST",
  "startContainer hooks run in the container namespace.", ["hooks.container_namespace"])
A = "configHooksPoststart"
R("cfg-poststart-when", CFG, A, "MUST",
  "poststart runs after the user program is executed, before start returns.",
  ["hooks.poststart"])
R("cfg-poststart-path", CFG, A, "MUST", "poststart paths resolve in the runtime namespace.",
  ["hooks.poststart"])
R("cfg-poststart-ns", CFG, A, "MUST", "poststart hooks run in the runtime namespace.",
  ["hooks.runtime_namespace"])
A = "configHooksPoststop"
R("cfg-poststop-when", CFG, A, "MUST",
  "poststop runs after the container is deleted, before delete returns.", ["hooks.poststop"])
R("cfg-poststop-path", CFG, A, "MUST", "poststop paths resolve in the runtime namespace.",
  ["hooks.poststop"])
R("cfg-poststop-ns", CFG, A, "MUST", "poststop hooks run in the runtime namespace.",
  ["hooks.runtime_namespace"])
A = "configAnnotations"
R("cfg-ann-structure", CFG, A, "MAY", "Annotation data may be structured or not.",
  untestable="a permission for the author")
R("cfg-ann-map", CFG, A, "MUST", "annotations is a key-value map.", untestable=AUTHOR)
R("cfg-ann-empty", CFG, A, "MAY", "Without annotations the property is absent or empty.",
  ["state.annotations"])
R("cfg-ann-keys-strings", CFG, A, "MUST", "Annotation keys are strings.", untestable=AUTHOR)
R("cfg-ann-keys-nonempty", CFG, A, "MUST NOT", "Annotation keys are never empty.",
  untestable=AUTHOR)
R("cfg-ann-keys-reverse-dns", CFG, A, "SHOULD", "Keys use reverse domain notation.",
  untestable=AUTHOR)
R("cfg-ann-reserved", CFG, A, "MUST",
  "org.opencontainers keys are used only as this section describes.", untestable=AUTHOR)
R("cfg-ann-image-keys", CFG, A, "MAY",
  "The listed org.opencontainers.image.* keys may be used.", untestable="a permission")
R("cfg-ann-image-values", CFG, A, "MUST",
  "Values of org.opencontainers.image.* keys are valid per the image spec.", untestable=AUTHOR)
R("cfg-ann-image-conversion", CFG, A, "SHOULD",
  "org.opencontainers.image.* keys follow the image spec's conversion rules.",
  untestable=AUTHOR)
R("cfg-ann-stopsignal", CFG, A, "SHOULD",
  "Runtimes send the org.opencontainers.image.stopSignal signal to kill the container.",
  untestable="the spec's kill operation always names its signal: choosing it is the caller's "
  "part (runc, crun and ociruntime all default to SIGTERM)")
R("cfg-ann-other-reserved", CFG, A, "MUST NOT",
  "Unlisted org.opencontainers keys are not used by later specifications.",
  untestable="binds future specifications")
R("cfg-ann-unknown", CFG, A, "MUST",
  "Unknown annotation keys are handled like any unknown property.",
  ["config.annotations_accepted"])
R("cfg-ann-values-strings", CFG, A, "MUST", "Annotation values are strings.",
  untestable=AUTHOR)
R("cfg-ann-values-empty", CFG, A, "MAY", "Annotation values may be empty strings.",
  ["state.annotations", "config.annotations_accepted"])
A = "configExtensibility"
R("cfg-ext-log", CFG, A, "MAY", "Runtimes may log unknown properties.",
  untestable="a permission")
R("cfg-ext-ignore", CFG, A, "MUST", "Unknown properties are ignored, never an error.",
  ["config.unknown_properties"])
A = "valid-values"
R("cfg-valid-values", CFG, A, "MUST",
  "Invalid or unsupported values are errors.",
  ["config.invalid_values_rejected", "process.cwd_relative_rejected",
   "process.args_empty_rejected", "hooks.timeout_zero_rejected",
   "hooks.relative_path_rejected", "ns.path_relative_rejected"])
R("cfg-valid-subset", CFG, A, "MAY",
  "Unless support is required, runtimes may support a subset of valid values.",
  untestable="a permission")

# ---------------------------------------------------------------------------------------
# config-linux.md
# ---------------------------------------------------------------------------------------
R("lnx-default-fs", LNX, "configLinuxDefaultFilesystems", "SHOULD",
  "/proc, /sys, /dev/pts and /dev/shm are available in the container.",
  ["linux.default_filesystems"])
A = "configLinuxNamespaces"
for _ns in ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time"):
    R(f"lnx-ns-type-{_ns}", LNX, A, "SHOULD", f"The `{_ns}` namespace type is supported.",
      [f"ns.new_{_ns}"])
R("lnx-ns-path-absolute", LNX, A, "MUST",
  "A namespace path is absolute in the runtime mount namespace.",
  ["ns.path_relative_rejected"])
R("lnx-ns-path-join", LNX, A, "MUST",
  "With a path, the process joins the namespace at that path.", ["ns.join_path"])
R("lnx-ns-path-type", LNX, A, "MUST",
  "A path whose namespace is not of the entry's type is an error.",
  ["ns.path_wrong_type_rejected"])
R("lnx-ns-new", LNX, A, "MUST", "Without a path, a new namespace of the type is created.",
  [f"ns.new_{n}" for n in ("pid", "network", "mount", "ipc", "uts")])
R("lnx-ns-inherit", LNX, A, "MUST",
  "Types not listed are inherited from the runtime's namespaces.", ["ns.inherit"])
R("lnx-ns-duplicate", LNX, A, "MUST", "Duplicate namespace types are an error.",
  ["ns.duplicate_rejected"])
A = "configLinuxUserNamespaceMappings"
R("lnx-userns-mappings", LNX, A, "REQUIRED",
  "uidMappings/gidMappings define the user namespace maps (stated without a keyword).",
  ["ns.user_mappings"])
R("lnx-userns-no-chown", LNX, A, "SHOULD NOT",
  "The runtime does not chown the filesystems to realise the mapping.", ["ns.user_no_chown"])
R("lnx-userns-limit", LNX, A, "MAY", "The kernel may limit the number of mapping entries.",
  untestable="describes the kernel")
R("lnx-timeoffsets", LNX, "configLinuxTimeOffset", "REQUIRED",
  "timeOffsets set the clocks' offsets of the time namespace (or are an error).",
  ["ns.time_offsets"])
A = "configLinuxDevices"
R("lnx-devices-available", LNX, A, "MUST",
  "Listed devices are available in the container with type, numbers, mode and owner.",
  ["devices.create"])
R("lnx-devices-how", LNX, A, "MAY", "The runtime may supply devices by mknod, bind or symlink.",
  untestable="a permission")
R("lnx-devices-conflict", LNX, A, "MUST",
  "An existing file at a device path that does not match the device is an error.",
  ["devices.path_conflict_rejected"])
R("lnx-devices-anywhere", LNX, A, "MAY", "A device path may be outside /dev.",
  ["devices.outside_dev"])
R("lnx-devices-unique", LNX, A, "SHOULD NOT",
  "One type/major/minor is not used for several devices.", untestable=AUTHOR)
R("lnx-devices-only-listed", LNX, A, "MAY",
  "Containers are not entitled to device nodes beyond the listed and default ones "
  "(phrased 'MAY NOT').", untestable="a caution for VM-based runtimes; no observable duty")
A = "configLinuxDefaultDevices"
R("lnx-default-devices", LNX, A, "MUST",
  "The runtime supplies /dev/null, zero, full, random, urandom and tty.", ["devices.defaults"])
R("lnx-default-console", LNX, A, "MUST",
  "With terminal enabled, /dev/console is the pseudoterminal (bind mount).",
  ["devices.console"])
R("lnx-default-ptmx", LNX, A, "MUST",
  "/dev/ptmx is a bind mount or symlink of the container's /dev/pts/ptmx.", ["devices.ptmx"])
A = "configLinuxNetworkDevices"
R("lnx-netdev-available", LNX, A, "MUST",
  "Listed network devices are made available in the container.", ["linux.net_devices"])
R("lnx-netdev-check", LNX, A, "MUST", "The runtime checks that the move is possible.",
  untestable="covered by the error cases; needs two interfaces of one name")
R("lnx-netdev-name-clash", LNX, A, "MUST",
  "A device name already used in the container namespace is an error (unless a %d template).",
  untestable="needs a second namespace device of the same name; not set up here")
R("lnx-netdev-template", LNX, A, "MUST", "A name ending in %d is allowed; the kernel numbers it.",
  untestable="needs a name clash to matter; not set up here")
R("lnx-netdev-addresses", LNX, A, "MUST",
  "Permanent global addresses of the device are preserved.", ["linux.net_devices"])
R("lnx-netdev-up", LNX, A, "MUST", "The moved device is set up.", ["linux.net_devices"])
R("lnx-netdev-no-manage", LNX, A, "MUST NOT",
  "The runtime does not manage the device's lifecycle inside the container.",
  untestable=NO_VIEW)
R("lnx-netdev-no-move-back", LNX, A, "MUST NOT",
  "The runtime does not move the device out before the namespace goes.", untestable=NO_VIEW)
A = "configLinuxControlGroups"
R("lnx-cgroup-fit-check", LNX, A, "MAY",
  "A runtime may check that the container cgroup is fit for the operation, and errors if not.",
  untestable="cannot tell from outside whether the optional check ran")
A = "configLinuxCgroupsPath"
R("lnx-cgpath-forms", LNX, A, "MUST", "cgroupsPath is an absolute or a relative path.",
  untestable=AUTHOR)
R("lnx-cgpath-absolute", LNX, A, "MUST",
  "An absolute cgroupsPath is relative to the cgroup mount point.", ["cgroups.path_absolute"])
R("lnx-cgpath-relative", LNX, A, "MAY",
  "A relative cgroupsPath may be placed under a runtime-chosen location.",
  untestable="a permission")
R("lnx-cgpath-consistent", LNX, A, "MUST",
  "The same cgroupsPath always attaches to the same cgroup.", ["cgroups.path_consistent"])
R("lnx-cgpath-default", LNX, A, "MAY", "Without cgroupsPath the runtime picks a default.",
  untestable="a permission")
R("lnx-cgpath-invalid", LNX, A, "MUST",
  "cgroupsPath values the runtime deems invalid are errors.",
  untestable="which values are invalid is runtime-defined")
R("lnx-cgroup-extra-controllers", LNX, A, "MAY",
  "The process may join more controllers than resources need.", untestable="a permission")
A = "cgroup-ownership"
R("lnx-cgown-may", LNX, A, "MAY",
  "The runtime may give the container cgroup to the container user's host uid.",
  untestable="a permission")
R("lnx-cgown-v1", LNX, A, "SHOULD NOT", "No ownership change under cgroup v1.",
  ["cgroups.no_chown_v1"])
R("lnx-cgown-cgroupns", LNX, A, "SHOULD NOT",
  "No ownership change unless a new cgroup namespace is created.", untestable=NO_CG2)
R("lnx-cgown-rw-mount", LNX, A, "SHOULD",
  "Change ownership exactly when /sys/fs/cgroup is mounted read-write.", untestable=NO_CG2)
R("lnx-cgown-no-mount", LNX, A, "SHOULD NOT",
  "No ownership change when no such cgroup mount is configured.", untestable=NO_CG2)
R("lnx-cgown-delegate-files", LNX, A, "SHOULD",
  "Only the cgroup dir and the files in /sys/kernel/cgroup/delegate change owner.",
  untestable=NO_CG2)
R("lnx-cgown-missing-files", LNX, A, "MUST NOT",
  "Missing delegate files do not make the runtime fail.", untestable=NO_CG2)
R("lnx-cgown-existing-files", LNX, A, "SHOULD",
  "Delegate files that exist are chowned.", untestable=NO_CG2)
R("lnx-cgown-fallback", LNX, A, "MUST",
  "Without /sys/kernel/cgroup/delegate, chown cgroup.procs, subtree_control and threads.",
  untestable=NO_CG2)
R("lnx-cgown-no-other", LNX, A, "SHOULD NOT", "No other files change owner.",
  untestable=NO_CG2)
R("lnx-devcg-order", LNX, "configLinuxDeviceAllowedlist", "MUST",
  "Device cgroup rules apply in the listed order.", ["cgroups.devices_order"])
A = "configLinuxMemory"
R("lnx-memory", LNX, A, "REQUIRED",
  "memory limit/reservation/swappiness reach the memory controller (or are an error).",
  ["cgroups.memory", "cgroups.memory_swappiness"])
R("lnx-memory-check-before-update", LNX, A, "MUST",
  "With checkBeforeUpdate, a new limit below usage is rejected.",
  untestable="concerns updating limits, not a spec operation")
A = "configLinuxCPU"
R("lnx-cpu", LNX, A, "REQUIRED",
  "cpu shares/quota/period/cpus/mems reach the controllers (or are an error).",
  ["cgroups.cpu"])
R("lnx-cpu-realtime", LNX, A, "REQUIRED",
  "realtimeRuntime/realtimePeriod reach the cpu controller (or are an error).",
  ["cgroups.cpu_realtime"])
R("lnx-cpu-idle", LNX, A, "REQUIRED", "cpu.idle reaches the controller (or is an error).",
  ["cgroups.cpu_idle"])
R("lnx-cpu-quota-burst", LNX, A, "MUST",
  "A positive quota is not smaller than burst (runtimes MAY error).", untestable=AUTHOR)
A = "configLinuxBlockIO"
R("lnx-blkio", LNX, A, "REQUIRED",
  "blockIO weight and throttles reach the block IO controller (or are an error).",
  ["cgroups.blkio_throttle", "cgroups.blkio_weight"])
R("lnx-blkio-weight-entry", LNX, A, "MUST",
  "A weightDevice entry has weight or leafWeight.", untestable=AUTHOR)
R("lnx-hugetlb", LNX, "configLinuxHugePageLimits", "REQUIRED",
  "hugepageLimits reach the hugetlb controller (or are an error).", ["cgroups.hugetlb"])
R("lnx-netcls", LNX, "configLinuxNetwork", "REQUIRED",
  "network classID/priorities reach net_cls/net_prio (or are an error).", ["cgroups.network"])
A = "configLinuxPIDS"
R("lnx-pids", LNX, A, "REQUIRED", "pids.limit becomes the pids controller's max.",
  ["cgroups.pids"])
R("lnx-pids-zero", LNX, A, "SHOULD", "A pids limit of 0 is a real limit.",
  ["cgroups.pids_zero"])
R("lnx-rdma-entry", LNX, "configLinuxRDMA", "MUST",
  "An rdma entry has hcaHandles or hcaObjects.", untestable=AUTHOR)
A = "configLinuxUnified"
R("lnx-unified-enable", LNX, A, "MUST",
  "The controllers unified needs are enabled for the cgroup.", ["cgroups.unified"])
R("lnx-unified-unknown", LNX, A, "MUST",
  "Unified keys unknown to the runtime are still written.", ["cgroups.unified"])
R("lnx-unified-missing", LNX, A, "MUST",
  "A unified key for an absent or unenableable controller is an error.", ["cgroups.unified"])
R("lnx-unified-convert", LNX, A, "MAY",
  "v1 settings on a v2 controller may be converted.", untestable="needs a cgroup v2 host")
R("lnx-unified-convert-fail", LNX, A, "MUST",
  "A v1 setting that cannot be converted is an error.", untestable="needs a cgroup v2 host")
A = "configLinuxIntelRdt"
R("lnx-rdt-tasks", LNX, A, "MUST",
  "With intelRdt, the pid goes to tasks of the closID directory in resctrl.", untestable=NO_RDT)
R("lnx-rdt-no-resctrl", LNX, A, "MUST", "intelRdt without a mounted resctrl is an error.",
  ["linux.intel_rdt_unavailable_rejected"])
R("lnx-rdt-untouched", LNX, A, "MUST NOT", "Without intelRdt, resctrl is not touched.",
  untestable=NO_RDT)
R("lnx-rdt-default-clos", LNX, A, "MUST", "closID `/` means the default CLOS.",
  untestable=NO_RDT)
R("lnx-rdt-l3-format", LNX, A, "SHOULD", "l3CacheSchema starts with L3: and has no newline.",
  untestable=AUTHOR)
R("lnx-rdt-mb-format", LNX, A, "MUST", "memBwSchema starts with MB: and has no newline.",
  untestable=AUTHOR)
R("lnx-rdt-schemata-format", LNX, A, "MUST", "schemata entries contain no newline.",
  untestable=AUTHOR)
R("lnx-rdt-rules", LNX, A, "MUST", "The parameter rules of this section are applied.",
  untestable=NO_RDT)
R("lnx-rdt-write-both", LNX, A, "MUST",
  "With l3CacheSchema and memBwSchema, both are written, L3 first.", untestable=NO_RDT)
R("lnx-rdt-write-one", LNX, A, "MUST", "With one of them, it is written.", untestable=NO_RDT)
R("lnx-rdt-write-schemata", LNX, A, "MUST",
  "schemata is written, after l3CacheSchema/memBwSchema.", untestable=NO_RDT)
R("lnx-rdt-no-write", LNX, A, "MUST NOT", "Without any schema, no schemata file is written.",
  untestable=NO_RDT)
R("lnx-rdt-default-dir", LNX, A, "MUST",
  "Without closID, a directory named after the container id is created.", untestable=NO_RDT)
R("lnx-rdt-create-clos", LNX, A, "MUST", "A missing closID directory is created.",
  untestable=NO_RDT)
R("lnx-rdt-compare", LNX, A, "MUST",
  "An existing closID directory whose schemata differ is an error.", untestable=NO_RDT)
R("lnx-rdt-preconfigured", LNX, A, "MUST",
  "closID alone joins a pre-configured directory, or is an error if absent.",
  untestable=NO_RDT)
R("lnx-rdt-remove-own", LNX, A, "MUST",
  "A directory the runtime created is removed at delete.", untestable=NO_RDT)
R("lnx-rdt-keep-foreign", LNX, A, "MUST NOT",
  "A given closID or foreign directory is not removed at delete.", untestable=NO_RDT)
R("lnx-rdt-monitoring", LNX, A, "MUST",
  "enableMonitoring creates mon_groups/<id>, removes it at delete, errors if it cannot.",
  untestable=NO_RDT)
R("lnx-memory-policy", LNX, "configLinuxMemoryPolicy", "REQUIRED",
  "memoryPolicy mode/nodes/flags are applied with set_mempolicy (or are an error).",
  ["linux.memory_policy"])
R("lnx-sysctl", LNX, "configLinuxSysctl", "REQUIRED",
  "sysctl values are set for the container (stated without a keyword).", ["linux.sysctl"])
A = "configLinuxSeccomp"
R("lnx-seccomp-filter", LNX, A, "REQUIRED",
  "The seccomp profile (default action, rules, archs, args) is enforced.",
  ["seccomp.errno", "seccomp.args"])
R("lnx-seccomp-errno-unsupported", LNX, A, "MUST",
  "errnoRet/defaultErrnoRet on an action without errno: print an error and fail.",
  ["seccomp.errnoret_unsupported_rejected"])
R("lnx-seccomp-names", LNX, A, "MUST", "A syscall rule names at least one syscall.",
  untestable=AUTHOR)
R("lnx-seccomp-socket-type", LNX, A, "MUST", "listenerPath is an AF_UNIX stream socket.",
  ["seccomp.notify"])
R("lnx-seccomp-one-state", LNX, A, "MUST",
  "Exactly one container process state is sent per connection.", ["seccomp.notify"])
R("lnx-seccomp-close", LNX, A, "MUST", "The connection is closed after sending, not reused.",
  ["seccomp.notify"])
R("lnx-seccomp-send-fail", LNX, A, "MUST",
  "Failing to send to listenerPath is an error.", ["seccomp.listener_unreachable_rejected"])
R("lnx-seccomp-metadata", LNX, A, "MUST NOT",
  "listenerMetadata is not set without listenerPath.", untestable=AUTHOR)
A = "containerprocessstate"
R("lnx-procstate-json", LNX, A, "MUST",
  "The state goes as JSON payload, the descriptors via SCM_RIGHTS.", ["seccomp.notify"])
R("lnx-procstate-sendmsg", LNX, A, "MAY", "Several sendmsg calls may carry the state.",
  untestable="a permission")
R("lnx-procstate-fds-first", LNX, A, "MUST",
  "With several sendmsg calls, descriptors go only with the first.", ["seccomp.notify"])
R("lnx-procstate-fields", LNX, A, "REQUIRED",
  "The state has ociVersion, fds naming seccompFd, pid, metadata and the container state.",
  ["seccomp.notify"])
R("lnx-rootfs-propagation", LNX, "configLinuxRootfsMountPropagation", "REQUIRED",
  "rootfsPropagation shared/slave/private/unbindable applies to the root mount.",
  ["linux.rootfs_propagation_shared", "linux.rootfs_propagation_slave",
   "linux.rootfs_propagation_private", "linux.rootfs_propagation_unbindable"])
R("lnx-masked-paths", LNX, "configLinuxMaskedPaths", "MUST",
  "maskedPaths (absolute in the container) cannot be read.", ["linux.masked_paths"])
R("lnx-readonly-paths", LNX, "configLinuxReadonlyPaths", "MUST",
  "readonlyPaths (absolute in the container) are read-only.", ["linux.readonly_paths"])
R("lnx-mount-label", LNX, "configLinuxMountLabel", "REQUIRED",
  "mountLabel sets the SELinux context of the mounts.", untestable="no SELinux on this host")
R("lnx-personality", LNX, "configLinuxPersonality", "REQUIRED",
  "personality domain LINUX32 makes uname report a 32-bit machine (or is an error).",
  ["linux.personality"])

# ---------------------------------------------------------------------------------------
# features.md
# ---------------------------------------------------------------------------------------
A = "features"
R("feat-provide", FEAT, A, "MAY", "A runtime may describe its features as JSON.",
  ["features.versions"])
R("feat-compile-time", FEAT, A, "SHOULD",
  "Features reflect the build, not the host it runs on.", untestable=NO_VIEW)
R("feat-null", FEAT, A, "MAY", "Properties other than the versions may be absent or null.",
  untestable="a permission")
R("feat-null-vs-empty", FEAT, A, "MUST NOT",
  "null is not confused with an empty value.", untestable=NO_VIEW)
A = "featuresSpecificationVersion"
R("feat-min-accepted", FEAT, A, "MUST", "ociVersionMin is accepted as config ociVersion.",
  ["features.version_min_accepted"])
R("feat-max-accepted", FEAT, A, "MUST", "ociVersionMax is accepted as config ociVersion.",
  ["features.version_max_accepted"])
R("feat-max-ge-min", FEAT, A, "MUST NOT", "ociVersionMax is not below ociVersionMin.",
  ["features.versions"])
R("feat-known-props", FEAT, A, "MUST NOT",
  "The structure holds no property undefined in its ociVersionMax.",
  ["features.known_properties"])
R("feat-hooks", FEAT, "featuresHooks", "MUST", "Listed hook kinds are supported.",
  ["features.hooks_supported"])
A = "featuresMountOptions"
R("feat-mountoptions", FEAT, A, "MUST", "Listed mount options are recognised.",
  ["features.mount_options_recognized"])
R("feat-mountoptions-generic", FEAT, A, "SHOULD NOT",
  "mountOptions lists no filesystem-specific data options.",
  ["features.mount_options_generic"])
R("feat-linux", FEAT, "featuresPlatformSpecificFeatures", "MAY",
  "linux may be set by a runtime supporting Linux.", untestable="a permission")
A = "featuresAnnotations"
R("feat-annotations-structure", FEAT, A, "MAY", "Runtime annotations may be unstructured.",
  untestable="a permission")
R("feat-annotations-map", FEAT, A, "MUST",
  "annotations follows the key/value conventions of config annotations.",
  ["features.annotations_format"])

# ---------------------------------------------------------------------------------------
# features-linux.md
# ---------------------------------------------------------------------------------------
R("featl-namespaces", FEATL, "linuxFeaturesNamespaces", "MUST",
  "Listed namespace types are recognised in linux.namespaces.",
  ["features.namespaces_recognized"])
R("featl-capabilities", FEATL, "linuxFeaturesCapabilities", "MUST",
  "Listed capabilities are recognised in process.capabilities.",
  ["features.capabilities_recognized"])
A = "linuxFeaturesSeccomp"
R("featl-seccomp-actions", FEATL, A, "MUST", "Listed seccomp actions are recognised.",
  ["features.seccomp_recognized"])
R("featl-seccomp-operators", FEATL, A, "MUST", "Listed seccomp operators are recognised.",
  ["features.seccomp_recognized"])
R("featl-seccomp-archs", FEATL, A, "MUST", "Listed seccomp architectures are recognised.",
  ["features.seccomp_recognized"])
R("featl-seccomp-known-flags", FEATL, A, "MUST", "knownFlags are recognised.",
  untestable="known-but-unsupported flags may legitimately fail on this kernel")
R("featl-seccomp-supported-flags", FEATL, A, "MUST",
  "supportedFlags are recognised and supported.", ["features.seccomp_recognized"])
A = "linuxFeaturesMemoryPolicy"
R("featl-mempolicy-modes", FEATL, A, "MUST", "Listed memory policy modes are recognised.",
  ["features.memory_policy_recognized"])
R("featl-mempolicy-flags", FEATL, A, "MUST", "Listed memory policy flags are recognised.",
  untestable="flag combinations valid for every mode are kernel-specific")
R("featl-idmap-partial", FEATL, "linuxFeaturesMountExtensions", "MUST",
  "A runtime with partial idmap support still reports idmap.enabled true.",
  untestable="support boundaries are internal to the runtime")


def validate() -> list[str]:
    """Consistency of the table with the registered checks."""
    from conformance.harness import CHECKS
    problems = []
    seen: set[str] = set()
    used: set[str] = set()
    for r in REQUIREMENTS:
        if r.id in seen:
            problems.append(f"duplicate requirement id {r.id}")
        seen.add(r.id)
        if r.level not in LEVELS:
            problems.append(f"{r.id}: level {r.level!r}")
        if bool(r.checks) == bool(r.untestable):
            problems.append(f"{r.id}: needs checks or an untestable reason, not both")
        for c in r.checks:
            used.add(c)
            if c not in CHECKS:
                problems.append(f"{r.id}: unknown check {c}")
    for c in CHECKS:
        if c not in used:
            problems.append(f"check {c} tests no requirement")
    return problems
