"""containerd 1.6 with its built-in CRI plugin, started privately (root, state, sockets, CNI
directories and each runtime's root under one /tmp directory), with a CRI runtime handler per
runtime under test: runtime_type io.containerd.runc.v2, whose shim calls the handler's
BinaryName, as a Kubernetes RuntimeClass selects it. No registry: a pause image and a busybox
image are built here as an OCI image layout and imported with `ctr -n k8s.io images import`.

No CNI plugin is installed on these machines, and containerd's CRI cannot set up a pod network
without one: its Status says NetworkReady false ("cni plugin not initialized") and RunPodSandbox
of a pod with its own network fails ("failed to setup network for sandbox ...: cni plugin not
initialized"). The pods use the node's network namespace instead (NamespaceOption network NODE,
a hostNetwork pod), for which the CRI calls no CNI plugin."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

from tests.clients.conftest import (
    kill_processes_mentioning,
    make_image_tar,
    out,
    remove_cgroups,
    run,
    short_base,
    unmount_under,
    wait_for,
)
from tests.guest.cri.client import CriClient, CriError

NAMESPACE = "k8s.io"  # containerd's namespace for everything the CRI plugin makes
PAUSE_IMAGE = "localhost/ociruntime-test/pause:1"
BUSYBOX_IMAGE = "localhost/ociruntime-test/busybox:1"
# The pod's infrastructure container. As PID 1 of its PID namespace it receives only the signals
# it handles, so a bare `sleep` would ignore SIGTERM: busybox sh traps TERM and INT and exits 0;
# `wait` on a background sleep is interrupted by a trapped signal at once (a foreground sleep
# would delay the trap until it ended), and its loop reaps the pod's orphans.
PAUSE_COMMAND = ["/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 86400 & wait $!; done"]
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
          "s390x": "s390x", "riscv64": "riscv64"}


# --- the images ------------------------------------------------------------------------------
class _Blobs:
    """The content-addressed blobs of an OCI image layout, kept in memory until written."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def add(self, media_type: str, data: bytes, **extra: object) -> dict:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.blobs[digest] = data
        return {"mediaType": media_type, "digest": digest, "size": len(data), **extra}

    def add_json(self, media_type: str, doc: dict, **extra: object) -> dict:
        return self.add(media_type, json.dumps(doc, sort_keys=True).encode(), **extra)


def oci_archive(layer: Path, dest: Path, images: dict[str, dict]) -> Path:
    """dest: an OCI image layout tar (oci-layout, index.json, blobs/sha256/...) of the images
    {name: the image config's "config" section}, all made of the one uncompressed layer tar
    `layer`. index.json names each manifest with containerd's io.containerd.image.name."""
    blobs = _Blobs()
    layer_data = layer.read_bytes()
    layer_desc = blobs.add("application/vnd.oci.image.layer.v1.tar", layer_data)
    manifests = []
    for name, config in images.items():
        image_config = {"architecture": GOARCH.get(platform.machine(), platform.machine()), "os": "linux",
                        "config": config, "rootfs": {"type": "layers", "diff_ids": [layer_desc["digest"]]}}
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": blobs.add_json("application/vnd.oci.image.config.v1+json", image_config),
                    "layers": [layer_desc]}
        manifests.append(blobs.add_json(
            "application/vnd.oci.image.manifest.v1+json", manifest,
            annotations={"io.containerd.image.name": name,
                         "org.opencontainers.image.ref.name": name.rpartition(":")[2]}))
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": manifests}
    with tarfile.open(dest, "w") as tar:
        files = {"oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
                 "index.json": json.dumps(index).encode()}
        files.update({f"blobs/sha256/{d.removeprefix('sha256:')}": data for d, data in blobs.blobs.items()})
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return dest


def build_images(base: Path) -> Path:
    """The pause and busybox images (busybox-static, the image the engine tests use) in one
    archive under `base`."""
    layer = make_image_tar(base)
    return oci_archive(layer, base / "images.oci.tar", {
        PAUSE_IMAGE: {"Entrypoint": PAUSE_COMMAND, "Env": [PATH_ENV], "WorkingDir": "/"},
        BUSYBOX_IMAGE: {"Cmd": ["/bin/sh"], "Env": [PATH_ENV], "WorkingDir": "/"},
    })


CAP_SYS_RESOURCE = 24


def has_cap(cap: int) -> bool:
    with open("/proc/self/status") as f:
        eff = next(line for line in f if line.startswith("CapEff:"))
    return bool(int(eff.split()[1], 16) >> cap & 1)


# --- the daemon ------------------------------------------------------------------------------
def config_toml(base: Path, handlers: dict[str, str], systemd_cgroup: bool) -> str:
    """containerd's config (version 2): private paths, the CRI plugin with the pause image,
    empty CNI directories, and one runc-v2 handler per runtime (the README's snippet)."""
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    lines = [
        "version = 2", f'root = "{base}/root"', f'state = "{base}/state"',
        "[grpc]", f'  address = "{base}/containerd.sock"',
        "[ttrpc]", f'  address = "{base}/containerd.sock.ttrpc"',
        "[debug]", f'  address = "{base}/debug.sock"',
        '[plugins."io.containerd.internal.v1.opt"]', f'  path = "{base}/opt"',
        f"[{cri}]", f'  sandbox_image = "{PAUSE_IMAGE}"',
        '  stream_server_address = "127.0.0.1"', '  stream_server_port = "0"',
        # The CRI gives the pause container oom_score_adj -998; lowering it takes
        # CAP_SYS_RESOURCE, which the development host's bounding set lacks (any runtime fails).
        f"  restrict_oom_score_adj = {'false' if has_cap(CAP_SYS_RESOURCE) else 'true'}",
        f"[{cri}.cni]", f'  bin_dir = "{base}/cni/bin"', f'  conf_dir = "{base}/cni/net.d"',
        f"[{cri}.containerd]", '  snapshotter = "overlayfs"', f'  default_runtime_name = "{next(iter(handlers))}"',
    ]
    for name, binary in handlers.items():
        lines += [f"[{cri}.containerd.runtimes.{name}]", '  runtime_type = "io.containerd.runc.v2"',
                  f"[{cri}.containerd.runtimes.{name}.options]", f'  BinaryName = "{binary}"',
                  f'  Root = "{base}/runtime-root-{name}"',
                  f"  SystemdCgroup = {'true' if systemd_cgroup else 'false'}"]
    return "\n".join(lines) + "\n"


class CriContainerd:
    """A running private containerd: its CRI client, `ctr`, and where each handler's runtime
    keeps its containers' state (the shim's Root option, then the namespace)."""

    def __init__(self, base: Path, handlers: dict[str, str], systemd_cgroup: bool) -> None:
        self.base = base
        self.sock = base / "containerd.sock"
        self.handlers = handlers
        self.systemd_cgroup = systemd_cgroup
        # The pods' cgroups go under a parent named after this daemon: nothing else uses it.
        self.cgroup_tag = base.name.replace("-", "")
        self.client: CriClient | None = None

    @property
    def cri(self) -> CriClient:
        assert self.client is not None
        return self.client

    def runtime_root(self, handler: str) -> Path:
        return self.base / f"runtime-root-{handler}" / NAMESPACE

    def runtime_list(self, handler: str) -> list[str]:
        """The IDs the handler's runtime itself lists under the shim's root."""
        res = run([self.handlers[handler], "--root", str(self.runtime_root(handler)), "list", "-q"])
        assert res.returncode == 0, res.stderr.decode(errors="replace")
        return out(res).split()

    def runtime_state(self, handler: str, cid: str) -> dict:
        res = run([self.handlers[handler], "--root", str(self.runtime_root(handler)), "state", cid])
        assert res.returncode == 0, (f"{handler} does not know container {cid}: "
                                     f"{res.stderr.decode(errors='replace')}")
        return json.loads(res.stdout)

    def pod_cgroup_parent(self, pod_uid: str) -> str:
        """LinuxPodSandboxConfig.cgroup_parent as kubelet makes it for each driver: a path for
        cgroupfs, a nested slice for systemd (kubepods-besteffort-pod<uid>.slice's shape)."""
        uid = pod_uid.replace("-", "_")
        if self.systemd_cgroup:
            return f"{self.cgroup_tag}-pod{uid}.slice"
        return f"/{self.cgroup_tag}/pod{uid}"

    def ctr(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return run(["ctr", "--address", str(self.sock), "-n", NAMESPACE, *args], timeout=timeout)

    def log_tail(self) -> str:
        return (self.base / "containerd.log").read_text(errors="replace")[-4000:]

    def remove_all_pods(self) -> None:
        """What a node drain does: stop and remove every pod sandbox (and so its containers)."""
        for pod in self.cri.call("ListPodSandbox").items:
            for rpc in ("StopPodSandbox", "RemovePodSandbox"):
                with contextlib.suppress(CriError):
                    self.cri.call(rpc, {"pod_sandbox_id": pod.id})


def need(*binaries: str) -> None:
    missing = [b for b in binaries if not shutil.which(b) and not os.access(b, os.X_OK)]
    if missing:
        raise AssertionError(f"{', '.join(missing)} not installed (Debian: containerd, runc)")


@contextlib.contextmanager
def cri_containerd(handlers: dict[str, str], systemd_cgroup: bool = False) -> Iterator[CriContainerd]:
    """containerd with the CRI plugin and `handlers` {handler name: runtime binary}, the images
    imported; on exit every pod is removed, the daemon and its shims stopped, and the pods'
    cgroups, mounts and directories removed, even after a failure."""
    need("containerd", "ctr", "containerd-shim-runc-v2", *handlers.values())
    base = short_base("ocicri")
    for d in ("cni/bin", "cni/net.d", "opt"):
        (base / d).mkdir(parents=True)
    (base / "config.toml").write_text(config_toml(base, handlers, systemd_cgroup))
    ctd = CriContainerd(base, handlers, systemd_cgroup)
    log = open(base / "containerd.log", "wb")
    daemon = subprocess.Popen(["containerd", "--config", str(base / "config.toml")], stdout=log,
                              stderr=log, stdin=subprocess.DEVNULL)
    try:
        def up() -> bool:
            if daemon.poll() is not None:
                raise AssertionError(f"containerd exited {daemon.returncode}: {ctd.log_tail()}")
            return ctd.sock.exists() and ctd.ctr("version", timeout=20).returncode == 0

        wait_for("containerd", up, timeout=90, interval=0.2)
        ctd.client = CriClient(ctd.sock)
        res = ctd.ctr("images", "import", "--snapshotter", "overlayfs", str(build_images(base)), timeout=300)
        assert res.returncode == 0, f"ctr images import: {res.stderr.decode(errors='replace')}"
        # The CRI plugin learns of imported images from containerd's events.
        for image in (PAUSE_IMAGE, BUSYBOX_IMAGE):
            wait_for(f"the CRI plugin to see {image}",
                     lambda image=image: ctd.cri.call("ImageStatus", {"image": {"image": image}}).image.id,
                     timeout=60, interval=0.2)
        yield ctd
    finally:
        try:
            if ctd.client is not None and daemon.poll() is None:
                ctd.remove_all_pods()
        finally:
            if ctd.client is not None:
                ctd.client.close()
            daemon.terminate()
            try:
                daemon.wait(30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait(10)
            log.close()
            kill_processes_mentioning(str(base))  # shims: their command lines name our socket
            if systemd_cgroup and shutil.which("systemctl"):
                run(["systemctl", "stop", f"{ctd.cgroup_tag}.slice"], timeout=60)
            remove_cgroups(f"{ctd.cgroup_tag}.slice" if systemd_cgroup else ctd.cgroup_tag)
            unmount_under(base)
            shutil.rmtree(base, ignore_errors=True)
