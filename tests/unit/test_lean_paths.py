"""ociruntime/lean.py stands in for os.path in the runtime's own process (which never imports
`os`): its path helpers must give exactly what os.path gives, since config.json's root.path, the
bundle path and cgroupsPath go through them. Property-tested against posixpath; makedirs on a
real temporary tree."""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ociruntime import lean

# Paths made of the pieces that matter to normalisation: separators, ".", "..", names.
paths = st.lists(st.sampled_from(["", "/", "//", ".", "..", "a", "b.", "..c"]), max_size=8).map("/".join) | \
    st.text(alphabet="/.ab", max_size=12)


@given(paths)
def test_normpath_is_os_path_normpath(path: str) -> None:
    assert lean.normpath(path) == posixpath.normpath(path)


@given(paths, paths)
def test_join_is_os_path_join(directory: str, name: str) -> None:
    assert lean.join(directory, name) == posixpath.join(directory, name)


@given(paths)
def test_abspath_is_os_path_abspath(path: str) -> None:
    assert lean.abspath(path) == posixpath.abspath(path)


def test_makedirs_makes_missing_parents_and_accepts_an_existing_directory(tmp_path: Path) -> None:
    leaf = tmp_path / "a" / "b" / "c"
    lean.makedirs(str(leaf), 0o711)
    lean.makedirs(str(leaf), 0o711)  # exist_ok
    assert leaf.is_dir()
    assert leaf.stat().st_mode & 0o777 == 0o711 & ~_umask()


def test_makedirs_refuses_a_file_in_the_way(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(FileExistsError):
        lean.makedirs(str(tmp_path / "f"), 0o711)
    with pytest.raises(NotADirectoryError):
        lean.makedirs(str(tmp_path / "f" / "below"), 0o711)


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old
