#!/bin/sh
# The whole test suite, from a fresh Debian 12 machine (as root): installs what it needs, then
# runs the unit and real-container tests on this host, the conformance runner against ociruntime,
# and the cgroup v2 + systemd selection inside the qemu guest (tests/vm).
set -eu
cd "$(dirname "$0")/.."
sh scripts/install.sh
PY=/opt/ociruntime/bin/python
status=0
echo "== host: unit and integration tests"
$PY -m pytest -q tests/unit tests/integration "$@" || status=1
echo "== cgroup v2 + systemd guest (tests/vm)"
tests/vm/run --timeout 1500 -- /opt/ociruntime/bin/python -m pytest -q -m "cgroupv2" tests/integration || status=1
exit $status
