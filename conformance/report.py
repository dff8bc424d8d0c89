"""The markdown report: requirement x verdict, with totals by level."""

from __future__ import annotations

import datetime
from collections import Counter

from conformance.runner import Outcome, Verdict

LEVELS = ["MUST", "MUST NOT", "REQUIRED", "SHOULD", "SHOULD NOT", "MAY"]
STATUSES = ["pass", "fail", "skip", "untestable", "not-run"]


def _cell(text: str, limit: int = 220) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def totals(vs: list[Verdict]) -> dict[str, Counter]:
    out: dict[str, Counter] = {lvl: Counter() for lvl in LEVELS}
    for v in vs:
        out.setdefault(v.req.level, Counter())[v.status] += 1
    return out


def totals_table(vs: list[Verdict]) -> list[str]:
    lines = ["| level | " + " | ".join(STATUSES) + " | total |",
             "|---|" + "---|" * (len(STATUSES) + 1)]
    grand: Counter = Counter()
    for lvl, c in totals(vs).items():
        grand.update(c)
        lines.append(f"| {lvl} | " + " | ".join(str(c[s]) for s in STATUSES)
                     + f" | {sum(c.values())} |")
    lines.append("| **all** | " + " | ".join(str(grand[s]) for s in STATUSES)
                 + f" | {sum(grand.values())} |")
    return lines


def markdown(binary: str, version: str, outcomes: list[Outcome], vs: list[Verdict],
             external: list[Outcome] | None = None) -> str:
    checks = Counter(o.status for o in outcomes)
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# Conformance report: `{binary}`",
        "",
        f"- runtime: {version}",
        "- spec: OCI runtime-spec 1.3.0 (runtime.md, runtime-linux.md, config.md, "
        "config-linux.md, features.md, features-linux.md)",
        f"- date: {now}",
        f"- checks: {len(outcomes)} run: {checks['pass']} pass, {checks['fail']} fail, "
        f"{checks['skip']} skip",
        "",
        "## Requirements by level",
        "",
        *totals_table(vs),
        "",
        "## Requirements",
        "",
        "| id | document | section | level | verdict | details |",
        "|---|---|---|---|---|---|",
    ]
    for v in vs:
        r = v.req
        lines.append(f"| {r.id} | {r.doc} | {r.anchor} | {r.level} | {v.status} | "
                     f"{_cell(v.detail)} |")
    lines += ["", "## Checks", "", "| check | result | seconds | details |",
              "|---|---|---|---|"]
    for o in outcomes + (external or []):
        lines.append(f"| {o.check_id} | {o.status} | {o.seconds:.2f} | {_cell(o.detail)} |")
    return "\n".join(lines) + "\n"
