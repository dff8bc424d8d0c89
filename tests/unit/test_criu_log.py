"""criu's log: the first error line is what a failed checkpoint or restore reports."""

from __future__ import annotations

import os

from ociruntime.linux import criu

RESTORE_LOG = """\
(00.001000) Restore of 7 started
(02.366551)      7: Error (criu/sk-inet.c:857): inet: Connected TCP socket in image
(02.373935)      3: Error (criu/files.c:1213): Unable to open fd=4 id=0xc
(02.437539) Error (criu/cr-restore.c:2537): Restoring FAILED.
"""


def test_first_error_of_a_restored_task(tmp_path) -> None:
    """Lines of restored tasks carry their pid after the timestamp: the first error is still
    theirs (the cause), not criu's closing "Restoring FAILED."."""
    log = tmp_path / "restore.log"
    log.write_text(RESTORE_LOG)
    out = os.memfd_create("out")
    try:
        assert criu.first_error(str(log), out) == \
            f"Error (criu/sk-inet.c:857): inet: Connected TCP socket in image (log: {log})"
    finally:
        os.close(out)


def test_first_error_of_criu_itself(tmp_path) -> None:
    log = tmp_path / "dump.log"
    log.write_text("(00.343667) Error (criu/files-reg.c:1710): Can't lookup mount=25 for fd=0 path=/dev/pts/0\n"
                   "(00.566733) Error (criu/cr-dump.c:2053): Dumping FAILED.\n")
    out = os.memfd_create("out")
    try:
        assert criu.first_error(str(log), out).startswith("Error (criu/files-reg.c:1710): Can't lookup mount=25")
    finally:
        os.close(out)
