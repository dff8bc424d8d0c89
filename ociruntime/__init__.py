"""ociruntime: an OCI runtime-spec compliant container runtime, a drop-in for runc.

`from ociruntime import Runtime` is the Python API (ociruntime/api.py); it is loaded on first
use, so that importing the package (as every CLI command does) stays free."""

__version__ = "0.1.0"
SPEC_VERSION = "1.3.0"


def __getattr__(name: str):
    if name in ("Runtime", "Container"):
        from ociruntime import api

        return getattr(api, name)
    raise AttributeError(f"module 'ociruntime' has no attribute {name!r}")
