"""python -m conformance --runtime PATH [--filter REGEX] [--report FILE] [--known-failures FILE]

TAP goes to stdout, progress and the summary to stderr. Exit status: 0 when every failing
requirement is listed in --known-failures (or nothing failed), 1 otherwise, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

# The marker tells the re-executed runner that it already lives in the private mount namespace.
PRIVATE_ENV = "OCI_CONFORMANCE_PRIVATE_NS"
CGROUP2_HYBRID = "/sys/fs/cgroup/unified"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m conformance", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runtime", help="runtime binary (runc's CLI)")
    p.add_argument("--filter", help="regex on check ids and requirement ids")
    p.add_argument("--report", type=Path, help="write the markdown report here")
    p.add_argument("--known-failures", type=Path,
                   help="requirement ids allowed to fail; any other failure exits 1")
    p.add_argument("--write-failures", type=Path,
                   help="write the failing requirement ids, grouped by document, to this file "
                        "(to seed or refresh --known-failures by hand)")
    p.add_argument("--private-mounts", action="store_true",
                   help="re-run inside a private (slave) mount namespace with "
                        f"{CGROUP2_HYBRID} unmounted: crun refuses the hybrid cgroup layout")
    p.add_argument("--list", action="store_true", help="list checks and exit")
    p.add_argument("--requirements-json", action="store_true",
                   help="print the requirements as JSON lines and exit")
    return p.parse_args(argv)


def reexec_private(argv: list[str]) -> int:
    """Run ourselves again under `unshare -m` so the umount stays private. Slave propagation
    (not private) keeps host mount events flowing in, which rootfsPropagation=slave needs,
    while nothing we unmount travels back to the host."""
    env = dict(os.environ, **{PRIVATE_ENV: "1"})
    cmd = ["unshare", "-m", "--propagation", "slave", sys.executable, "-m", "conformance",
           *[a for a in argv if a != "--private-mounts"]]
    return subprocess.call(cmd, env=env, cwd=Path(__file__).resolve().parent.parent)


def enter_private() -> None:
    if os.path.ismount(CGROUP2_HYBRID):
        subprocess.run(["umount", CGROUP2_HYBRID], check=False)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.private_mounts and os.environ.get(PRIVATE_ENV) != "1":
        return reexec_private(argv)
    if os.environ.get(PRIVATE_ENV) == "1":
        enter_private()

    from conformance import external, report, runner
    from conformance.requirements import REQUIREMENTS, validate

    problems = validate()
    if problems:
        print("requirements table is inconsistent:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 2
    if args.requirements_json:
        for r in REQUIREMENTS:
            print(json.dumps(r.as_dict()))
        return 0
    ids = runner.select_checks(args.filter)
    if args.list:
        print("\n".join(ids))
        return 0
    if not args.runtime:
        print("--runtime is required", file=sys.stderr)
        return 2
    binary = shutil.which(args.runtime) or args.runtime
    if not os.access(binary, os.X_OK):
        print(f"not an executable: {args.runtime}", file=sys.stderr)
        return 2

    ext_dir = os.environ.get(external.ENV_VAR)
    print("TAP version 13")
    if not ext_dir:  # with an external suite the total is known only at the end
        print(f"1..{len(ids)}", flush=True)
    outcomes = runner.run_checks(binary, ids, sys.stdout)
    ext = external.run_suite(binary, Path(ext_dir), len(ids), sys.stdout) if ext_dir else []
    verdicts = runner.verdicts(outcomes)
    version = runner.runtime_version(binary)
    if args.report:
        args.report.write_text(report.markdown(args.runtime, version, outcomes, verdicts, ext))

    print("\n".join(report.totals_table(verdicts)), file=sys.stderr)
    failing = sorted(v.req.id for v in verdicts if v.status == "fail")
    if args.write_failures:
        args.write_failures.write_text(failures_text(verdicts, version))
    known = load_known(args.known_failures) if args.known_failures else None
    return judge(failing, known, [v.req.id for v in verdicts if v.status == "pass"])


def failures_text(verdicts: list, version: str) -> str:
    lines = [f"# Failing requirements of {version}, one id a line; '#' starts a comment."]
    doc = ""
    for v in verdicts:
        if v.status != "fail":
            continue
        if v.req.doc != doc:
            doc = v.req.doc
            lines.append(f"\n# {doc}")
        lines.append(f"{v.req.id:<32} # {v.req.anchor}: {v.req.text[:70]}")
    return "\n".join(lines) + "\n"


def load_known(path: Path) -> set[str]:
    lines = path.read_text().splitlines()
    return {ln.split("#", 1)[0].strip() for ln in lines if ln.split("#", 1)[0].strip()}


def judge(failing: list[str], known: set[str] | None, passing: list[str]) -> int:
    if known is None:
        if failing:
            print(f"{len(failing)} requirement(s) fail", file=sys.stderr)
        return 1 if failing else 0
    new = [f for f in failing if f not in known]
    fixed = sorted(k for k in known if k in passing)
    if fixed:
        print("now passing, remove from known failures: " + " ".join(fixed), file=sys.stderr)
    if new:
        print("REGRESSIONS (failing, not in known failures): " + " ".join(new), file=sys.stderr)
        return 1
    print(f"no regressions ({len(failing)} known failures)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
