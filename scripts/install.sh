#!/bin/sh
# Install everything ociruntime and its tests need on a Debian 12 host, as root:
# Debian packages, a venv at /opt/ociruntime with the Python packages, the project itself,
# and the fast launcher /usr/local/bin/ociruntime. Safe to run again (it only adds what is missing).
set -eu
cd "$(dirname "$0")/.."
PREFIX=${OCIRUNTIME_PREFIX:-/opt/ociruntime}
export DEBIAN_FRONTEND=noninteractive

PKGS="python3 python3-venv python3-dev gcc libc6-dev libseccomp-dev busybox-static runc crun containerd iproute2 util-linux"
missing=""
for p in $PKGS ${OCIRUNTIME_EXTRA_PKGS:-}; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "install.sh: apt-get install$missing"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# Debian's interpreter, not whatever python3 is first on PATH (pyenv shims cost ~100 ms a call).
[ -x "$PREFIX/bin/python3" ] || /usr/bin/python3 -m venv "$PREFIX"
"$PREFIX/bin/pip" install -q --disable-pip-version-check -r requirements-dev.txt
"$PREFIX/bin/pip" install -q --disable-pip-version-check --no-build-isolation --no-deps --force-reinstall .

site=$("$PREFIX/bin/python3" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# The tests import ociruntime from this tree: give it the same compiled shim and generated
# validator as the installed copy (both git-ignored build products).
cp -f "$site"/ociruntime/_shim*.so "$site"/ociruntime/_validators.py ociruntime/

# The launcher: -I -S skips site-packages scanning and .pth files (tens of ms per call);
# the venv's own site-packages is added explicitly, so only cached bytecode is imported.
cat > /usr/local/bin/ociruntime.new <<EOT
#!$PREFIX/bin/python3 -IS
import sys
sys.path.append("$site")
from ociruntime.cli import main
main()
EOT
chmod 755 /usr/local/bin/ociruntime.new
mv -f /usr/local/bin/ociruntime.new /usr/local/bin/ociruntime
echo "install.sh: ociruntime installed at /usr/local/bin/ociruntime ($PREFIX)"
