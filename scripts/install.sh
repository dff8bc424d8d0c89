#!/bin/sh
# Install everything ociruntime and its tests need on a Debian 12 host, as root:
# Debian packages, a venv at /opt/ociruntime with the Python packages, the project itself,
# and the fast launcher /usr/local/bin/ociruntime. Safe to run again (it only adds what is missing).
#
# One line per step on stdout; the output of apt-get, dpkg and pip goes to a log file
# ($OCIRUNTIME_INSTALL_LOG, default /var/log/ociruntime-install.log), whose path and last lines
# are printed if a step fails.
set -eu
cd "$(dirname "$0")/.."
PREFIX=${OCIRUNTIME_PREFIX:-/opt/ociruntime}
LOG=${OCIRUNTIME_INSTALL_LOG:-/var/log/ociruntime-install.log}
export DEBIAN_FRONTEND=noninteractive
mkdir -p "$(dirname "$LOG")"
echo "=== install.sh $(date -u +%FT%TZ)" >> "$LOG"

# step "what it does" CMD ARGS...: one line on stdout, the command's output in the log.
step() {
    what=$1
    shift
    printf 'install.sh: %s ... ' "$what"
    t0=$(date +%s)
    echo "=== $what: $*" >> "$LOG"
    if "$@" >> "$LOG" 2>&1 < /dev/null; then
        echo "ok ($(( $(date +%s) - t0 )) s)"
    else
        rc=$?
        echo "FAILED (exit $rc)"
        echo "install.sh: last lines of $LOG:" >&2
        tail -n 25 "$LOG" | sed 's/^/  | /' >&2
        echo "install.sh: FAILED: $what (full log: $LOG)" >&2
        exit 1
    fi
}

PKGS="python3 python3-venv python3-dev gcc libc6-dev libseccomp-dev busybox-static runc crun containerd iproute2 util-linux uidmap dbus-daemon"
missing=""
for p in $PKGS ${OCIRUNTIME_EXTRA_PKGS:-}; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    step "apt-get update" apt-get update -q
    # shellcheck disable=SC2086  # the list is meant to be split
    step "apt-get install$missing" apt-get install -y -q --no-install-recommends \
        -o Dpkg::Use-Pty=0 $missing
else
    echo "install.sh: Debian packages: all present"
fi

# Debian's interpreter, not whatever python3 is first on PATH (pyenv shims cost ~100 ms a call).
[ -x "$PREFIX/bin/python3" ] || step "venv $PREFIX" /usr/bin/python3 -m venv "$PREFIX"
# The Python packages, unless this very requirements-dev.txt was installed into this venv already
# (pip takes seconds to find that out, ~20 s in the qemu guest).
if cmp -s requirements-dev.txt "$PREFIX/requirements-dev.installed"; then
    echo "install.sh: Python packages of requirements-dev.txt: all present"
else
    step "pip install -r requirements-dev.txt" \
        "$PREFIX/bin/pip" install --disable-pip-version-check -r requirements-dev.txt
    cp requirements-dev.txt "$PREFIX/requirements-dev.installed"
fi
step "pip install . (compiles the C shim)" \
    "$PREFIX/bin/pip" install --disable-pip-version-check --no-build-isolation --no-deps --force-reinstall .

site=$("$PREFIX/bin/python3" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# The tests import ociruntime from this tree: give it the same compiled shim and generated
# validator as the installed copy (both git-ignored build products).
cp -f "$site"/ociruntime/_shim*.so "$site"/ociruntime/_validators.py ociruntime/

# The launcher: -I -S skips site-packages scanning and .pth files (tens of ms per call);
# the venv's own site-packages is added explicitly, so only cached bytecode is imported. The
# package is loaded by its path, with the import system's own functions: a search of sys.path
# for it would list two directories first (~0.1 ms a call).
cat > /usr/local/bin/ociruntime.new <<EOT
#!$PREFIX/bin/python3 -IS
import sys
from _frozen_importlib import _load
from _frozen_importlib_external import spec_from_file_location

sys.path.append("$site")
_load(spec_from_file_location("ociruntime", "$site/ociruntime/__init__.py")).main()
EOT
chmod 755 /usr/local/bin/ociruntime.new
mv -f /usr/local/bin/ociruntime.new /usr/local/bin/ociruntime
# The first call writes the hot modules' cache (ociruntime/__init__.py) beside the package's pycs:
# make it now, as root, so that no container's first call pays for it.
/usr/local/bin/ociruntime --version >/dev/null
echo "install.sh: ociruntime installed at /usr/local/bin/ociruntime ($PREFIX; log: $LOG)"
