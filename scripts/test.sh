#!/bin/sh
# The whole test suite, from a fresh Debian 12 machine (as root): installs what it needs, then
# runs on this host the unit tests, the real-container integration tests and the runtime-spec
# conformance run (known failures may only shrink), and in the qemu guest (cgroup v2 + systemd,
# tests/vm) the cgroupv2 selection and podman driving ociruntime. Exits non-zero if any part fails.
set -eu
cd "$(dirname "$0")/.."
sh scripts/install.sh
PY=/opt/ociruntime/bin/python
status=0
echo "== host ($(stat -fc %T /sys/fs/cgroup) cgroups): unit, integration and conformance tests"
$PY -m pytest -q tests/unit tests/integration tests/test_conformance.py "$@" || status=1
echo "== guest: cgroup v2 + systemd (tests/vm)"
tests/vm/run --timeout 1500 -- sh -c '
    rc=0
    /opt/ociruntime/bin/python -m pytest -q -m cgroupv2 tests/integration || rc=1
    tests/vm/podman-check || rc=1
    exit $rc' || status=1
[ $status -eq 0 ] && echo "== all passed" || echo "== FAILED (see above)"
exit $status
