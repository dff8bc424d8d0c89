"""checkpoint/restore's options are typed values (issue 15 item 2): the library takes keywords,
never a flag dict, and its errors name the option (OptionError.option); the CLI words them as
its flags, runc's words first. criu itself cannot run on this host: the guest tests
(tests/guest/test_checkpoint.py) cover what the options do to criu."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ociruntime import Runtime
from ociruntime.checkpoint import CheckpointOptions, RestoreOptions
from ociruntime.errors import ContainerNotFound, OptionError, UsageError


def test_defaults_are_runcs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    opts = CheckpointOptions()
    assert opts.image_path == opts.work_path == str(tmp_path / "checkpoint")
    assert (opts.criu, opts.parent_path, opts.pre_dump, opts.status_fd, opts.page_server) == \
        (None, None, False, -1, None)
    assert opts.common_args() == ["--manage-cgroups=soft"]


def test_keywords_become_criu_arguments(tmp_path: Path) -> None:
    opts = CheckpointOptions(str(tmp_path / "img"), work_path="work", criu="/opt/criu", leave_running=True,
                             tcp_established=True, shell_job=False, manage_cgroups_mode="full",
                             empty_ns=["network"], page_server="[::1]:7000", parent_path="../pre")
    assert opts.work_path == os.path.abspath("work") and opts.criu == "/opt/criu"
    assert opts.page_server == ("::1", "7000") and opts.parent_path == "../pre"
    assert opts.common_args() == ["--manage-cgroups=full", "--tcp-established", "--leave-running",
                                  "--empty-ns", "net"]
    ropts = RestoreOptions(str(tmp_path / "img"), lsm_profile="apparmor:p", lazy_pages=True)
    assert (ropts.lsm_profile, ropts.lsm_mount_context) == ("apparmor:p", None)
    assert ropts.common_args() == ["--manage-cgroups=soft", "--lazy-pages"]


@pytest.mark.parametrize("make, option, api_words, cli_words", [
    (lambda: CheckpointOptions(manage_cgroups_mode="loose"), "manage_cgroups_mode",
     "manage_cgroups_mode: invalid value 'loose'", "Invalid manage cgroups mode (--manage-cgroups-mode: "),
    (lambda: CheckpointOptions(empty_ns=["ipc"]), "empty_ns", "empty_ns: namespace 'ipc'",
     'namespace "ipc" is not supported (--empty-ns: '),
    (lambda: CheckpointOptions(page_server="nowhere"), "page_server", "page_server: 'nowhere' is not ADDRESS:PORT",
     "Use --page-server ADDRESS:PORT to specify page server (--page-server: 'nowhere'"),
    (lambda: CheckpointOptions(status_fd=-2), "status_fd", "status_fd: -2 is not a file descriptor number",
     "--status-fd: -2"),
    (lambda: RestoreOptions(lsm_profile="tomoyo:x"), "lsm_profile", "lsm_profile: 'tomoyo:x' is not TYPE:NAME",
     "--lsm-profile: 'tomoyo:x'"),
])
def test_bad_values_name_the_option(make, option: str, api_words: str, cli_words: str) -> None:
    with pytest.raises(OptionError) as e:
        make()
    assert isinstance(e.value, UsageError) and e.value.option == option
    assert str(e.value).startswith(api_words) and "--" not in str(e.value)
    assert e.value.details()[0].startswith(cli_words), e.value.details()


def test_status_fd_must_be_open_for_writing() -> None:
    r, w = os.pipe()
    try:
        assert CheckpointOptions(status_fd=w).status_fd == w
        with pytest.raises(OptionError, match=f"status_fd: {r} is not open for writing"):
            CheckpointOptions(status_fd=r)
    finally:
        os.close(r)
        os.close(w)
    with pytest.raises(OptionError, match=f"status_fd: {w} is not an open file descriptor"):
        CheckpointOptions(status_fd=w)


def test_an_unknown_keyword_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="leave_runing"):
        CheckpointOptions(leave_runing=True)


def test_the_cli_names_options_by_its_own_flags() -> None:
    err = OptionError("detach", "required with the subreaper off ({subreaper})", mentions=("subreaper",))
    assert str(err) == "detach: required with the subreaper off (subreaper)"
    err.flags["subreaper"] = "--no-subreaper"
    assert err.details() == ["--detach: required with the subreaper off (--no-subreaper)"]


def test_api_restore_refuses_a_missing_image_directory_before_making_anything(tmp_path: Path) -> None:
    root = tmp_path / "root"
    c = Runtime(root=str(root)).container("r1")
    with pytest.raises(OptionError) as e:
        c.restore(str(tmp_path), str(tmp_path / "none"), detach=True, pid_file=str(tmp_path / "pid"))
    assert e.value.option == "image_path" and "no such directory" in str(e.value)
    assert not (root / "r1").exists() and not (tmp_path / "pid").exists()
    with pytest.raises(OptionError, match="detach: required with the subreaper off"):
        c.restore(str(tmp_path), str(tmp_path / "none"), subreaper=False)


def test_api_checkpoint_of_a_missing_container(tmp_path: Path) -> None:
    with pytest.raises(ContainerNotFound):
        Runtime(root=str(tmp_path)).container("nope").checkpoint(str(tmp_path / "img"))
    assert not (tmp_path / "img").exists()
