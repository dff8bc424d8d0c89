#!/bin/sh
# The whole test suite, from a fresh Debian 12 machine (as root): installs what it needs, then
# runs on this host the unit tests, the real-container integration tests, the security attack
# suite and the runtime-spec conformance run (known failures may only shrink), then builds the
# qemu guest (cgroup v2 + systemd, tests/vm) and runs there the cgroupv2 selection and podman
# driving ociruntime.
#
#   sh scripts/test.sh [--phases LIST] [PYTEST ARGS...]
#
# Each phase is announced with its expected duration and timed; the end is a table of the phases
# and a last line naming the failed ones ("== all passed" if none). Exits 1 if any phase failed.
# A failed phase does not stop the later ones, except that nothing runs without the install and
# the guest tests need the guest image. Package-manager output goes to log files under
# $OCIRUNTIME_TEST_LOGDIR (default /var/log/ociruntime-test), not to the terminal.
#
# --phases LIST   run only these (comma-separated): install,unit-nonroot,unit,integration,security,
#                 conformance,clients,guest-image,guest-tests; the others show as SKIP
# PYTEST ARGS     passed to the host pytest runs (unit, integration, security, conformance)
#
# Each phase takes /tmp/ociruntime-heavy.lock (shared with other test runs, the VM runner and the
# bench) for itself only, so other container work on the machine can run in between; the table
# shows the time spent waiting for it apart. Set OCIRUNTIME_HEAVY_LOCKED=1 if the caller already
# holds it.
set -u
cd "$(dirname "$0")/.." || exit 2

LOGDIR=${OCIRUNTIME_TEST_LOGDIR:-/var/log/ociruntime-test}
HEAVY_LOCK=/tmp/ociruntime-heavy.lock
PY=/opt/ociruntime/bin/python
ALL_PHASES="install unit-nonroot unit integration security conformance clients guest-image guest-tests"

only=""
if [ "${1:-}" = "--phases" ]; then
    [ $# -ge 2 ] || { echo "usage: $0 [--phases LIST] [PYTEST ARGS...]" >&2; exit 2; }
    only=$(echo "$2" | tr ',' ' ')
    for p in $only; do
        case " $ALL_PHASES " in
            *" $p "*) ;;
            *) echo "test.sh: unknown phase '$p' (phases: $ALL_PHASES)" >&2; exit 2 ;;
        esac
    done
    shift 2
fi
mkdir -p "$LOGDIR"
# Where scripts/install.sh and tests/vm/build write their package managers' output.
export OCIRUNTIME_INSTALL_LOG="$LOGDIR/install.log" OCIRUNTIME_VM_LOGDIR="$LOGDIR/vm-build"

total=$(echo "$ALL_PHASES" | wc -w)
n=0
failed=""
summary=""
image_ok=1

# record PHASE RESULT SECONDS WAITED
record() {
    summary="$summary$(printf '%-13s %-6s %7s %7s' "$1" "$2" "$3" "$4")
"
    [ "$2" = FAIL ] && failed="${failed:+$failed, }$1"
    return 0
}

# phase NAME "WHAT" "EXPECTED" FUNCTION [ARGS...]: announce, time, record. FUNCTION ARGS returns
# 0 (PASS), 3 (SKIP: nothing to run) or anything else (FAIL).
phase() {
    n=$((n + 1))
    if [ -n "$only" ] && ! echo " $only " | grep -q " $1 "; then
        record "$1" SKIP 0 0
        return 0
    fi
    name=$1 what=$2 expect=$3 fn=$4
    shift 4
    echo
    echo "== [$n/$total] $what — expect $expect"
    t0=$(date +%s)
    waited=0
    "$fn" "$@"
    rc=$?
    dt=$(( $(date +%s) - t0 - waited ))
    case $rc in
        0) result=PASS ;;
        3) result=SKIP ;;
        *) result=FAIL ;;
    esac
    if [ "$waited" -gt 0 ]; then
        echo "== [$n/$total] $name: $result in $dt s (and $waited s waiting for the lock)"
    else
        echo "== [$n/$total] $name: $result in $dt s"
    fi
    record "$name" "$result" "$dt" "$waited"
}

# Run a command under the heavy lock, unless the caller holds it; adds the wait to $waited. The
# command and the containers it starts do not inherit the lock's descriptor (9>&-), and see
# OCIRUNTIME_HEAVY_LOCKED=1, so tests/vm/build and tests/vm/run do not wait for it themselves.
locked() {
    if [ -n "${OCIRUNTIME_HEAVY_LOCKED:-}" ]; then
        "$@"
        return
    fi
    exec 9>>"$HEAVY_LOCK"
    if ! flock -n 9; then
        echo "   waiting for $HEAVY_LOCK (other container work is running) ..."
        w0=$(date +%s)
        flock 9
        waited=$(( waited + $(date +%s) - w0 ))
        echo "   ... got it after $(( $(date +%s) - w0 )) s"
    fi
    OCIRUNTIME_HEAVY_LOCKED=1 "$@" 9>&-
    lrc=$?
    flock -u 9
    exec 9>&-
    return $lrc
}

# pytest with one line of progress per file, short tracebacks, failures and errors listed at the
# end, the 5 slowest tests, and the final "N passed, M failed" line.
PYTEST_OPTS="--no-header --tb=short -rfE --durations=5"
pytest_host() {
    # shellcheck disable=SC2086  # the options are meant to be split
    locked "$PY" -m pytest $PYTEST_OPTS "$@"
}

has_tests() {
    [ -d "$1" ] && [ -n "$(find "$1" -name 'test_*.py' -o -name '*_test.py' | head -n 1)" ]
}

# Under the heavy lock: reinstalling the project under a running container test would break it.
do_install() {
    locked sh scripts/install.sh && locked sh scripts/install-engines.sh
}

do_unit() { pytest_host tests/unit "$@"; }

# The root-free lane: the unit tests as nobody, without the hypothesis searches (marked slow;
# the unit phase runs them). The kernel seam's recording fake stands in for mounts, device
# nodes and credentials, so a broken set-up sequence fails here in seconds, before any
# container test. No lock: it creates no container. Caches go to a scratch directory.
do_unit_nonroot() {
    cache=$(mktemp -d /tmp/ociruntime-unit-nonroot.XXXXXX) || return 1
    chown 65534:65534 "$cache"
    # Bytecode compiled first (as root, readable by all): nobody cannot write __pycache__ here,
    # and the import-cost tests must not time a compile.
    "$PY" -m compileall -q ociruntime tests conformance > /dev/null
    # shellcheck disable=SC2086  # the options are meant to be split
    HOME=$cache HYPOTHESIS_STORAGE_DIRECTORY=$cache/hypothesis PYTHONDONTWRITEBYTECODE=1 \
        setpriv --reuid=65534 --regid=65534 --clear-groups \
        "$PY" -m pytest $PYTEST_OPTS -p no:cacheprovider -m "not slow" tests/unit "$@"
    rc=$?
    rm -rf "$cache"
    return $rc
}
do_integration() { pytest_host tests/integration -m "not soak" "$@"; }
do_conformance() { pytest_host tests/test_conformance.py "$@"; }
do_clients() { pytest_host tests/clients "$@"; }

do_security() {
    if ! has_tests tests/security; then
        echo "   tests/security has no test files yet: nothing to run"
        return 3
    fi
    pytest_host tests/security "$@"
    rc=$?
    # 5: no tests collected. With test files there, that is a broken suite, unless pytest
    # arguments given to this script deselected them.
    if [ $rc -eq 5 ] && [ $# -gt 0 ]; then
        return 3
    fi
    [ $rc -eq 0 ]
}

do_guest_image() {
    # Its own progress lines go to stderr; debootstrap's and apt-get's output to the logs.
    # The lock only for a build: a cached image is just looked up.
    tests/vm/build --cached > "$LOGDIR/vm-image" ||
    locked tests/vm/build > "$LOGDIR/vm-image" || {
        echo "   the guest image could not be built (logs: $LOGDIR/vm-build/)"
        image_ok=0
        return 1
    }
    image=$(tail -n 1 "$LOGDIR/vm-image")
    echo "   image: $image ($(cat "$image/ok"))"
}

do_guest_tests() {
    if [ "$image_ok" = 0 ]; then
        echo "   no guest image: not run"
        return 1
    fi
    # tests/vm/run's own guard first (~5 s): a guest wedged at boot is stopped and booted again.
    deadline=0
    locked tests/vm/boot-deadline-check || deadline=1
    dirs=tests/integration
    has_tests tests/security && dirs="$dirs tests/security"
    # One boot: the cgroupv2 selection, podman with our runtime, AppArmor as its tests need it;
    # the last line names the parts that failed.
    # shellcheck disable=SC2016  # $failed is the guest shell's
    locked tests/vm/run --timeout 2400 -- sh -c '
        failed=""
        pytest '"$PYTEST_OPTS"' -m cgroupv2 '"$dirs"' || failed="$failed pytest"
        echo
        if [ -n "$(find tests/guest -name "test_*.py" | head -n 1)" ]; then
            pytest '"$PYTEST_OPTS"' tests/guest || failed="$failed pytest-guest"
        fi
        echo
        tests/vm/podman-check || failed="$failed podman-check"
        tests/vm/apparmor-check || failed="$failed apparmor-check"
        [ -z "$failed" ] || { echo "guest-tests: FAILED:$failed"; exit 1; }' || return 1
    return "$deadline"
}

echo "== ociruntime test suite: $(date -u +%FT%TZ), $(nproc) cores, host cgroups $(stat -fc %T /sys/fs/cgroup); logs in $LOGDIR"
echo "== 9 phases, about 28 min in all on a fresh 2-core machine (most of it the qemu guest)"
phase install "install: Debian packages, venv, project (log: $LOGDIR/install.log)" \
    "~30 s on a fresh machine, ~10 s when installed" do_install
if [ "$failed" = install ]; then
    echo "== install failed: nothing else can run"
    for p in unit-nonroot unit integration security conformance clients guest-image guest-tests; do record "$p" SKIP 0 0; done
else
    phase unit-nonroot "host: unit tests as nobody, root-free lane (tests/unit -m 'not slow')" "~10 s" \
        do_unit_nonroot "$@"
    phase unit "host: unit tests (tests/unit)" "~3 min" do_unit "$@"
    phase integration "host: integration tests (tests/integration, real containers)" "~3 min" do_integration "$@"
    phase security "host: security attack suite (tests/security)" "~1.5 min" do_security "$@"
    phase conformance "host: runtime-spec conformance (tests/test_conformance.py)" "~2 min" do_conformance "$@"
    phase clients "host: podman, containerd and dockerd driving ociruntime and runc (tests/clients)" "~1.5 min" do_clients "$@"
    phase guest-image "guest: build the qemu image (tests/vm/build; logs: $LOGDIR/vm-build/)" \
        "~2 min cold, ~1.5 min after a change, instant when cached" do_guest_image
    phase guest-tests "guest: cgroup v2 + systemd: pytest -m cgroupv2, tests/guest, podman-check, apparmor-check (tests/vm/run)" \
        "~17 min (qemu without KVM)" do_guest_tests
fi

echo
echo "== summary"
printf '%-13s %-6s %7s %7s\n' phase result seconds waited
printf '%s' "$summary"
if [ -n "$failed" ]; then
    echo "== FAILED: $failed"
    exit 1
fi
echo "== all passed"
