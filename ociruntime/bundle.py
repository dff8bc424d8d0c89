"""Loading a bundle: read config.json, validate it (schema, then semantic checks), build Config.

Every way a bundle can be unusable gets its own one-line message naming the file or field."""

from __future__ import annotations

import _stat  # the C module behind stat.py, which costs an import of its own
import posix

from ociruntime import lean, log
from ociruntime.config import Config
from ociruntime.errors import ConfigError, OciError
from ociruntime.jsonfile import read_document


def bundle_dir(path: str) -> str:
    bundle = lean.abspath(path)
    try:
        st = posix.stat(bundle)
    except FileNotFoundError:
        raise OciError(f"bundle {bundle}: does not exist") from None
    except OSError as e:
        raise OciError(f"bundle {bundle}: {e.strerror}") from None
    if not _stat.S_ISDIR(st.st_mode):
        raise OciError(f"bundle {bundle}: not a directory")
    return bundle


def validate(doc: object, *, systemd_cgroup: bool, require_process: bool = False) -> dict:
    """Schema then semantic checks; raises ConfigError listing every problem found."""
    from ociruntime import schema, semantics

    problems = schema.validate(doc, "config")
    if problems:
        raise ConfigError(problems)
    assert isinstance(doc, dict)
    errors, warnings = semantics.check_config(doc, systemd_cgroup=systemd_cgroup)
    if require_process and doc.get("process") is None:
        errors.append("process: required to create a container (it names what to run)")
    for w in warnings:
        log.warning(f"config.json: {w}")
    if errors:
        raise ConfigError(errors[:20])
    return doc


def load(path: str, *, systemd_cgroup: bool = False, require_rootfs: bool = True) -> Config:
    """The bundle's config, valid and runnable by this runtime, or ConfigError listing why not."""
    from ociruntime import timing
    from ociruntime.semantics import unsupported

    bundle = bundle_dir(path)
    doc = read_document(lean.join(bundle, "config.json"), "config.json")
    timing.mark("load")
    config = Config(validate(doc, systemd_cgroup=systemd_cgroup), bundle)
    problems = unsupported(config)
    if problems:
        raise ConfigError(problems)
    if require_rootfs and not lean.is_dir(config.root_path):
        raise ConfigError([f"root.path: {config.root_path} does not exist or is not a directory"])
    timing.mark("validate")
    return config
