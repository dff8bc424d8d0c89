#!/bin/sh
# Demo: install ociruntime, build a bundle from Debian's busybox-static, run a container in it.
set -eu
cd "$(dirname "$0")/.."
sh scripts/install.sh
demo=/tmp/ociruntime-demo
rm -rf "$demo"
/usr/bin/python3 -c 'import sys; sys.path.insert(0, "."); from pathlib import Path
from conformance.bundle import make_bundle
make_bundle(Path(sys.argv[1]), ["sh", "-c", "echo hello from $(hostname): pid $$, uid $(id -u); uname -sr; ls /"])' "$demo/bundle"
set -- ociruntime --root "$demo/state" run -b "$demo/bundle" "demo-$$"
echo "demo: bundle $demo/bundle (busybox-static root, config.json from conformance/bundle.py)"
echo "demo: \$ $*"
"$@"
