"""Optionally run an external validation suite (for example runtime-tools' `validation/*`
programs, built elsewhere) and fold its TAP into ours. The project neither ships nor builds it:
point OCI_VALIDATION_DIR at a directory of executables that print TAP.

runtime-tools' programs find the runtime through the RUNTIME environment variable.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import TextIO

from conformance.runner import Outcome

ENV_VAR = "OCI_VALIDATION_DIR"
PER_PROGRAM_TIMEOUT = 60


def programs(directory: Path) -> list[Path]:
    found = [p for p in sorted(directory.rglob("*"))
             if p.is_file() and os.access(p, os.X_OK) and not p.name.startswith(".")]
    return found


def parse_tap(text: str) -> list[tuple[str, str, str]]:
    """(status, description, directive) for each test line; plan and diagnostics ignored."""
    out = []
    for line in text.splitlines():
        s = line.strip()
        if not (s.startswith("ok") or s.startswith("not ok")):
            continue
        status = "fail" if s.startswith("not ok") else "pass"
        rest = s.split(" ", 2 if status == "pass" else 3)[-1]
        desc, _, directive = rest.partition("#")
        desc = desc.lstrip("0123456789 -").strip()
        if directive.strip().upper().startswith(("SKIP", "TODO")):
            status = "skip"
        out.append((status, desc, directive.strip()))
    return out


def run_suite(binary: str, directory: Path, numbered_from: int, tap: TextIO) -> list[Outcome]:
    outcomes: list[Outcome] = []
    env = dict(os.environ, RUNTIME=binary)
    for prog in programs(directory):
        start = time.monotonic()
        name = f"external/{prog.relative_to(directory)}"
        try:
            r = subprocess.run([str(prog)], capture_output=True, text=True, env=env,
                               timeout=PER_PROGRAM_TIMEOUT, stdin=subprocess.DEVNULL)
            results = parse_tap(r.stdout)
            if not results:
                status = "pass" if r.returncode == 0 else "fail"
                results = [(status, "", f"exit {r.returncode}: {r.stderr.strip()[-200:]}")]
        except subprocess.TimeoutExpired:
            results = [("fail", "", "timed out")]
        took = time.monotonic() - start
        for status, desc, directive in results:
            o = Outcome(f"{name}: {desc}".rstrip(": "), status, directive, took)
            outcomes.append(o)
    for i, o in enumerate(outcomes, numbered_from + 1):
        flag = "ok" if o.status != "fail" else "not ok"
        skip = f" # SKIP {o.detail}" if o.status == "skip" else ""
        tap.write(f"{flag} {i} - {o.check_id}{skip}\n")
    tap.write(f"# external suite {directory}: {len(outcomes)} results merged\n")
    tap.write(f"1..{numbered_from + len(outcomes)}\n")
    return outcomes
