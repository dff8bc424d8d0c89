#!/bin/sh
# Install the container engines that tests/clients drives against ociruntime and runc, as root on
# Debian 12: podman (with conmon), Docker (docker.io: dockerd, its CLI and its containerd use),
# iptables for dockerd's bridge, and the small tools the tests use. containerd itself comes from
# scripts/install.sh. Safe to run again (it only adds what is missing).
#
# No engine daemon is started or enabled: the tests start each one themselves with private state
# (tests/clients/conftest.py). One line per step on stdout; apt-get's output goes to a log
# ($OCIRUNTIME_INSTALL_LOG, default /var/log/ociruntime-install-engines.log), whose path and
# last lines are printed if a step fails.
set -eu
LOG=${OCIRUNTIME_INSTALL_LOG:-/var/log/ociruntime-install-engines.log}
export DEBIAN_FRONTEND=noninteractive
mkdir -p "$(dirname "$LOG")"
echo "=== install-engines.sh $(date -u +%FT%TZ)" >> "$LOG"

step() {
    what=$1
    shift
    printf 'install-engines.sh: %s ... ' "$what"
    t0=$(date +%s)
    echo "=== $what: $*" >> "$LOG"
    if "$@" >> "$LOG" 2>&1 < /dev/null; then
        echo "ok ($(( $(date +%s) - t0 )) s)"
    else
        rc=$?
        echo "FAILED (exit $rc)"
        echo "install-engines.sh: last lines of $LOG:" >&2
        tail -n 25 "$LOG" | sed 's/^/  | /' >&2
        echo "install-engines.sh: FAILED: $what (full log: $LOG)" >&2
        exit 1
    fi
}

# podman: the engine, conmon (its monitor), containers-common (policy.json, registries.conf).
# docker.io: dockerd and docker (20.10), with iptables and tini as dependencies.
# iproute2 (ip netns), util-linux (unshare, nsenter), busybox-static (the images' root),
# runc (the reference runtime every scenario is compared with), containerd (docker.io needs it).
PKGS="podman conmon golang-github-containers-common docker.io iptables tini iproute2 util-linux busybox-static runc containerd"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
    echo "install-engines.sh: Debian packages: all present"
else
    # Without systemd the packages' maintainer scripts would start dockerd through its init
    # script, with the host's network: a policy-rc.d that says no, for the install only.
    policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        policy=/usr/sbin/policy-rc.d
    fi
    trap '[ -z "$policy" ] || rm -f "$policy"' EXIT
    step "apt-get update" apt-get update -q
    # shellcheck disable=SC2086  # the list is meant to be split
    step "apt-get install$missing" apt-get install -y -q --no-install-recommends \
        -o Dpkg::Use-Pty=0 $missing
fi

for b in podman conmon dockerd docker containerd ctr runc iptables ip unshare nsenter; do
    command -v "$b" > /dev/null || { echo "install-engines.sh: FAILED: $b is not on PATH" >&2; exit 1; }
done
echo "install-engines.sh: $(podman --version), $(/usr/bin/docker --version), containerd $(containerd --version | awk '{print $3}'), runc $(runc --version | awk 'NR==1{print $3}')"
