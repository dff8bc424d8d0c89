#!/bin/bash
# The job, run in the guest as root by ociruntime-vm-job.service (via ociruntime-vm-boot) from the
# runner's job share: wire up the output channels, mount the project tree at the host's path,
# install the project's current code with scripts/install.sh, run the command there, and leave its
# exit status in the job share for the runner. Always exits 0: the runner reads the status from
# the share, and the unit powers off either way.
job=/run/ociruntime-vm/job

# The share is uncached 9p: once the rename is done, the host sees the status. Nothing on the
# guest disk needs syncing: it is a snapshot, thrown away at poweroff.
finish() {
    echo "$1" > "$job/rc.new" && mv "$job/rc.new" "$job/rc"
    exit 0
}

# The job's own failures (not the command's) are told to the runner, which fails loudly.
infra_error() {
    echo "vm: ERROR: $1" >&2
    echo "$1" > "$job/error"
    finish 125
}

# udev names the virtio console ports a moment after the unit may start.
for _ in $(seq 100); do
    [ -e /dev/virtio-ports/ociruntime.stdout ] && [ -e /dev/virtio-ports/ociruntime.stderr ] && break
    sleep 0.1
done
exec >/dev/virtio-ports/ociruntime.stdout 2>/dev/virtio-ports/ociruntime.stderr </dev/null ||
    infra_error "the guest's output ports did not appear"

# Sets PROJECT, INSTALL, the environment to pass through, and the command as "$@".
# shellcheck source=/dev/null
. "$job/job.env"

export HOME=/root LANG=C.UTF-8 TERM=dumb
# The guest boots with AppArmor on (tests/vm/apparmor-check): tests that would skip or test the
# refusal without it must fail here instead (tests/security/test_lsm.py).
export OCIRUNTIME_EXPECT_APPARMOR=1
# tests/guest is collected only where this is set (tests/guest/conftest.py).
export OCIRUNTIME_IN_GUEST=1
export PATH=/opt/ociruntime/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# The same path as on the host, so paths in test output and tracebacks read the same.
mkdir -p "$PROJECT"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 project "$PROJECT" ||
    infra_error "cannot mount the project tree at $PROJECT in the guest"
date +%s.%N > "$job/t_mounted"

if [ "$INSTALL" = 1 ]; then
    # Built from a copy on the guest disk: pip builds in the source tree, and its build/ and
    # *.egg-info must not land in the host's tree. install.sh finds every Debian package and
    # Python dependency already in the image; pip only reads the image's wheel directory.
    src=/var/tmp/ociruntime-src
    rm -rf "$src" && mkdir -p "$src"
    tar -C "$PROJECT" -cf - --exclude=./.git --exclude=./tests/vm/cache --exclude=./build \
        --exclude='*.egg-info' --exclude=__pycache__ --exclude=.hypothesis --exclude=.pytest_cache \
        --exclude=./bench/results . | tar -C "$src" -xf -
    PIP_NO_INDEX=1 PIP_FIND_LINKS=/opt/ociruntime-wheels sh "$src/scripts/install.sh" >&2 ||
        infra_error "scripts/install.sh failed in the guest (its output is above)"
    date +%s.%N > "$job/t_installed"
fi

cd "$PROJECT" || infra_error "cannot enter $PROJECT in the guest"
# Run from the root cgroup, like a runtime started by an engine outside any service: a container's
# default cgroup is made below the runtime's own, and cgroup v2 refuses children with processes
# under this unit's populated, non-delegated cgroup ("no internal processes").
echo $$ > /sys/fs/cgroup/cgroup.procs || infra_error "cannot move the job to the root cgroup"
"$@"
finish $?
