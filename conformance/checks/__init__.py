"""Check modules; importing this package registers every check in harness.CHECKS."""

from conformance.checks import (  # noqa: F401 - imported for their registrations
    cgroups,
    devices,
    features,
    hooks,
    lifecycle,
    mounts,
    namespaces,
    process,
    security,
)
