"""`COMMAND --help` and ociruntime(8): every flag the CLI parses is described, every described
flag is parsed, and docs/ociruntime.8 is what the table generates (no root needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ociruntime import clihelp
from ociruntime.cli import COMMANDS, GLOBAL_FLAGS
from ociruntime.clicommands import size as _size

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_flag_is_described_and_every_description_is_a_flag(command: str) -> None:
    table = COMMANDS[command][0]
    described = dict(clihelp.HELP[command][1])
    if command == "run":
        described.update(clihelp.HELP["create"][1])
    dests = {dest: [n for n, (d, _) in table.items() if d == dest] for dest, _ in table.values()}
    for names in dests.values():
        assert any(n in described for n in names), f"{command}: no description for --{names[0]}"
    assert set(described) <= set(table), f"{command}: described but not parsed: {set(described) - set(table)}"


def test_global_flags_are_described() -> None:
    assert {d for d, _ in GLOBAL_FLAGS.values()} <= {GLOBAL_FLAGS[n][0] for n in clihelp.GLOBAL_HELP}


def test_man_page_is_generated_from_the_table() -> None:
    assert (ROOT / "docs" / "ociruntime.8").read_text() == clihelp.manpage(), \
        "regenerate: python -m ociruntime.clihelp > docs/ociruntime.8"


@pytest.mark.parametrize("argv", [["exec", "--help"], ["update", "-h"], ["run", "-help"], ["help", "kill"],
                                  ["ps", "--help"]])
def test_command_help_prints_usage_and_exits_0(argv: list[str]) -> None:
    res = subprocess.run([sys.executable, "-m", "ociruntime", *argv], capture_output=True, text=True,
                         cwd=ROOT, timeout=30)
    command = argv[1] if argv[0] == "help" else argv[0]
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"ociruntime {command} - ") and "usage:" in res.stdout


def test_exec_help_after_the_id_belongs_to_the_program() -> None:
    """`exec ID sh --help` runs `sh --help` in the container: not our help (it fails here on the
    missing container, as it should)."""
    res = subprocess.run([sys.executable, "-m", "ociruntime", "--root", "/nonexistent-root", "exec", "x", "sh",
                          "--help"], capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert res.returncode == 1 and "does not exist" in res.stderr


@pytest.mark.parametrize("text,value", [("1024", 1024), ("64m", 64 << 20), ("64MiB", 64 << 20), ("1.5g", 3 << 29),
                                        ("2kb", 2048), ("-1", -1), ("1t", 1 << 40)])
def test_memory_sizes_parse_like_runc(text: str, value: int) -> None:
    assert _size(text) == value


def test_a_bad_rootless_value_is_refused() -> None:
    res = subprocess.run([sys.executable, "-m", "ociruntime", "--rootless", "bogus", "list"], capture_output=True,
                         text=True, cwd=ROOT, timeout=30)
    assert res.returncode == 1 and "--rootless: invalid value 'bogus'" in res.stderr
