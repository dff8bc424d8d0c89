"""The conformance runner: its requirement table, its TAP/report plumbing, and (slow, root) a
full run against the installed ociruntime that fails on any requirement not listed in
conformance/known-failures.txt.

The full run creates containers: run pytest under `flock /tmp/ociruntime-heavy.lock` like every
container suite (this test takes no lock itself, so it cannot deadlock under one).
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conformance import external, report, runner
from conformance.harness import CHECKS
from conformance.requirements import LEVELS, REQUIREMENTS, validate

ROOT = Path(__file__).resolve().parent.parent
KNOWN = ROOT / "conformance" / "known-failures.txt"
OCIRUNTIME = os.environ.get("OCIRUNTIME_BIN", "/usr/local/bin/ociruntime")
DOCS = {"runtime.md", "runtime-linux.md", "config.md", "config-linux.md", "features.md",
        "features-linux.md"}


def test_requirements_table_is_consistent() -> None:
    assert validate() == []


def test_every_document_and_level_is_covered() -> None:
    assert {r.doc for r in REQUIREMENTS} == DOCS
    assert {r.level for r in REQUIREMENTS} <= set(LEVELS)
    assert all(r.text and r.anchor for r in REQUIREMENTS)


def test_known_failures_name_real_requirements() -> None:
    ids = {r.id for r in REQUIREMENTS}
    listed = {ln.split("#", 1)[0].strip() for ln in KNOWN.read_text().splitlines()}
    assert listed - {""} <= ids


def test_filter_selects_by_check_and_requirement_id() -> None:
    assert runner.select_checks(r"^process\.umask$") == ["process.umask"]
    assert "linux.fds" in runner.select_checks(r"^rtl-fds-default$")
    assert len(runner.select_checks(None)) == len(CHECKS)


def test_verdicts_fold_check_outcomes() -> None:
    outcomes = [runner.Outcome("process.rlimits", "fail", "NOFILE wrong", 0.1)]
    vs = {v.req.id: v for v in runner.verdicts(outcomes)}
    assert vs["cfg-rlimit-soft"].status == "fail"
    assert vs["cfg-ociversion-semver"].status == "untestable"
    assert vs["rt-scope"].status == "not-run"
    md = report.markdown("rt", "rt 1.0", outcomes, list(vs.values()))
    assert "| cfg-rlimit-soft | config.md |" in md and "| **all** |" in md


def test_tap_lines() -> None:
    buf = io.StringIO()
    runner.write_tap_line(buf, 1, runner.Outcome("a.b", "pass", "", 0))
    runner.write_tap_line(buf, 2, runner.Outcome("a.c", "skip", "no  host\nfeature", 0))
    runner.write_tap_line(buf, 3, runner.Outcome("a.d", "fail", "bad", 0))
    lines = buf.getvalue().splitlines()
    assert lines[0] == "ok 1 - a.b"
    assert lines[1] == "ok 2 - a.c # SKIP no host feature"
    assert lines[2] == "not ok 3 - a.d"


def test_external_tap_parsing() -> None:
    text = "TAP version 13\n1..3\nok 1 - works\nnot ok 2 - broken\nok 3 - later # SKIP nope\n"
    assert external.parse_tap(text) == [("pass", "works", ""), ("fail", "broken", ""),
                                        ("skip", "later", "SKIP nope")]


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")
@pytest.mark.skipif(not os.access(OCIRUNTIME, os.X_OK), reason="ociruntime not installed")
def test_ociruntime_has_no_conformance_regressions(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "conformance", "--runtime", OCIRUNTIME,
           "--known-failures", str(KNOWN), "--report", str(tmp_path / "report.md")]
    if os.path.ismount("/sys/fs/cgroup/unified") and shutil.which("unshare"):
        cmd.append("--private-mounts")
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
