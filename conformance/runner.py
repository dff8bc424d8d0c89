"""Run the registered checks against one runtime binary and fold their outcomes into
per-requirement verdicts."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from conformance import bundle as bundlelib
from conformance import checks  # noqa: F401 - importing registers every check
from conformance.harness import (
    CHECKS,
    EXTRA_ROOTFS_DIRS,
    CheckFailed,
    CheckSkipped,
    Context,
)
from conformance.requirements import REQUIREMENTS, Requirement


@dataclass
class Outcome:
    check_id: str
    status: str  # pass | fail | skip
    detail: str
    seconds: float


def select_checks(pattern: str | None) -> list[str]:
    """Checks whose id, or one of whose requirements' ids, matches the regex."""
    if not pattern:
        return sorted(CHECKS)
    rx = re.compile(pattern)
    wanted = set()
    for cid in CHECKS:
        if rx.search(cid):
            wanted.add(cid)
    for req in REQUIREMENTS:
        if rx.search(req.id):
            wanted.update(c for c in req.checks if c in CHECKS)
    return sorted(wanted)


def build_base_rootfs(workdir: Path) -> Path:
    rootfs = bundlelib.make_rootfs(workdir / "base-rootfs")
    for d in EXTRA_ROOTFS_DIRS:
        (rootfs / d).mkdir(parents=True, exist_ok=True)
    return rootfs


def run_one(binary: str, check_id: str, workdir: Path, base_rootfs: Path) -> Outcome:
    chk = CHECKS[check_id]
    tmp = Path(tempfile.mkdtemp(prefix=check_id.replace(".", "_") + "-", dir=workdir))
    # Containers with a user namespace must be able to reach their rootfs through here.
    os.chmod(tmp, 0o755)
    ctx = Context(binary, tmp, base_rootfs, check_id, time.monotonic() + chk.timeout)
    start = time.monotonic()
    try:
        note = chk.func(ctx)
        status, detail = "pass", note or ""
    except CheckFailed as e:
        status, detail = "fail", str(e)
    except CheckSkipped as e:
        status, detail = "skip", str(e)
    except Exception as e:  # a broken check is reported as a failure, not fatal to the run
        status, detail = "fail", f"check error: {type(e).__name__}: {e}"
    finally:
        problems = ctx.cleanup()
    if problems and status == "pass":
        detail = (detail + "; " if detail else "") + "cleanup: " + "; ".join(problems)
    return Outcome(check_id, status, detail, time.monotonic() - start)


def run_checks(binary: str, ids: list[str], tap: TextIO,
               on_result: Callable[[int, Outcome], None] | None = None) -> list[Outcome]:
    workdir = Path(tempfile.mkdtemp(prefix="oci-conformance-"))
    os.chmod(workdir, 0o755)
    outcomes = []
    try:
        base = build_base_rootfs(workdir)
        for n, cid in enumerate(ids, 1):
            o = run_one(binary, cid, workdir, base)
            outcomes.append(o)
            write_tap_line(tap, n, o)
            if on_result:
                on_result(n, o)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return outcomes


def write_tap_line(tap: TextIO, n: int, o: Outcome) -> None:
    detail = " ".join(o.detail.split())
    if o.status == "pass":
        tap.write(f"ok {n} - {o.check_id}\n")
    elif o.status == "skip":
        tap.write(f"ok {n} - {o.check_id} # SKIP {detail}\n")
    else:
        tap.write(f"not ok {n} - {o.check_id}\n  ---\n  message: {detail!r}\n  ...\n")
    tap.flush()


@dataclass
class Verdict:
    req: Requirement
    status: str  # pass | fail | skip | untestable | not-run
    detail: str


def verdicts(outcomes: list[Outcome]) -> list[Verdict]:
    by_check = {o.check_id: o for o in outcomes}
    result = []
    for req in REQUIREMENTS:
        if not req.checks:
            result.append(Verdict(req, "untestable", req.untestable))
            continue
        got = [by_check[c] for c in req.checks if c in by_check]
        if not got:
            result.append(Verdict(req, "not-run", "filtered out"))
            continue
        failed = [o for o in got if o.status == "fail"]
        passed = [o for o in got if o.status == "pass"]
        if failed:
            result.append(Verdict(req, "fail", "; ".join(f"{o.check_id}: {o.detail}"
                                                         for o in failed)))
        elif passed:
            result.append(Verdict(req, "pass", ", ".join(o.check_id for o in passed)))
        else:
            result.append(Verdict(req, "skip", "; ".join(f"{o.check_id}: {o.detail}"
                                                         for o in got)))
    return result


def runtime_version(binary: str) -> str:
    try:
        r = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
        return " ".join(r.stdout.strip().splitlines()[:1]) or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
