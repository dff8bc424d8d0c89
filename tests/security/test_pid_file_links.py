"""--pid-file in a directory others write into (/tmp): the runtime writes the pid to
`<pid-file>.<its pid>.tmp` and renames it over the pid file. That name is guessable, so another
user can plant a symbolic link there; root must never write through it (state.write_atomic opens
with O_EXCL). runc does the same with O_EXCL."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.conftest import Runtime

PLANTED = 400  # pids ahead of the last one: the runtime's own is among them


def plant_links(shared: Path, pid_file: Path, victim: Path) -> list[Path]:
    last = int(Path("/proc/sys/kernel/ns_last_pid").read_text())
    links = [shared / f"{pid_file.name}.{n}.tmp" for n in range(last + 1, last + 1 + PLANTED)]
    for link in links:
        link.symlink_to(victim)
    return links


def test_create_never_writes_its_pid_file_through_a_planted_link(oci: Runtime, bundle, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o1777)
    shared.chmod(0o1777)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    pid_file = shared / "init.pid"
    b = bundle(["sleep", "60"])
    cid = oci.new_id()
    links = plant_links(shared, pid_file, victim)
    oci.run("create", "--bundle", str(b), "--pid-file", str(pid_file), cid, check=True, stdin=subprocess.DEVNULL)
    assert victim.read_text() == "precious\n", "root wrote the pid through a planted link"
    assert not pid_file.is_symlink() and int(pid_file.read_text()) == oci.state(cid)["pid"]
    left = [link for link in links if link.is_symlink()]
    assert len(left) == PLANTED - 1, f"the runtime's pid was not among the planted ones ({len(left)} left)"
    assert os.stat(pid_file).st_mode & 0o777 == 0o644
