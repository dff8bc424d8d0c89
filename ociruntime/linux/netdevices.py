"""linux.netDevices: host interfaces moved into the container's network namespace (pyroute2,
imported only here). Its own module, so that the child of every other config with a network
namespace loads only network.py's loopback (~9 kB less bytecode on create's path)."""

from __future__ import annotations

import posix

from ociruntime.errors import SetupError, SyscallError

IFA_F_PERMANENT = 0x80
RT_SCOPE_UNIVERSE = 0


class DeviceMover:
    """linux.netDevices: host interfaces moved into the container's network namespace.

    rtnetlink wants CAP_NET_ADMIN over both namespaces in the *calling task*, and stage1 loses
    the host's once it creates a user namespace. So stage1 forks a helper while it is still
    host root (start); the helper waits until stage1 is in the container's network namespace
    (finish), moves each device there (RTM_SETLINK with stage1's pid as the target namespace,
    renamed in the same call), then joins that namespace to add back the permanent global
    addresses the move flushed and set the devices up (runtime-spec 1.3.0). The runtime never
    moves them back: when the namespace goes, the kernel returns physical devices to the host
    and destroys virtual ones (the spec forbids doing more)."""

    def __init__(self, devices: dict) -> None:
        from pyroute2 import IPRoute  # ~150 ms of imports: only for containers with netDevices

        self.devices = devices
        self.found: dict[str, tuple[int, str, list]] = {}  # host name -> (index, MAC, addresses)
        self.pid = 0
        self.go_w = self.result_r = -1
        with IPRoute() as host:
            for host_name in devices:
                self.found[host_name] = _describe(host, host_name)

    def start(self) -> None:
        """Fork the helper (host root, in the host's namespaces)."""
        go_r, self.go_w = posix.pipe2(posix.O_CLOEXEC)
        self.result_r, result_w = posix.pipe2(posix.O_CLOEXEC)
        self.pid = posix.fork()
        if self.pid == 0:
            posix.close(self.go_w)
            posix.close(self.result_r)
            code = 1
            try:
                if posix.read(go_r, 1) == b"g":  # EOF: stage1 died, nothing to do
                    self._move_into(posix.getppid())
                    code = 0
            except BaseException as e:
                msg = str(e) if isinstance(e, SetupError) else f"linux.netDevices: {type(e).__name__}: {e}"
                posix.write(result_w, msg.encode(errors="replace")[:4000])
            finally:
                posix._exit(code)
        posix.close(go_r)
        posix.close(result_w)

    def finish(self) -> None:
        """From stage1, now in the container's network namespace: let the helper move the
        devices into it, and report its failure as ours."""
        posix.write(self.go_w, b"g")
        posix.close(self.go_w)
        chunks = []
        while chunk := posix.read(self.result_r, 4096):
            chunks.append(chunk)
        posix.close(self.result_r)
        _, status = posix.waitpid(self.pid, 0)
        if status != 0:
            raise SetupError(b"".join(chunks).decode(errors="replace")
                             or "linux.netDevices: the devices could not be moved")

    def _move_into(self, target_pid: int) -> None:
        from pyroute2 import IPRoute
        from pyroute2.netlink.exceptions import NetlinkError

        with IPRoute() as host:
            for host_name, dev in self.devices.items():
                name = dev.get("name") or host_name
                try:
                    host.link("set", index=self.found[host_name][0], net_ns_pid=target_pid, ifname=name)
                except NetlinkError as e:
                    raise SyscallError(e.code, f"linux.netDevices: move {host_name!r} into the container as "
                                               f"{name!r}") from None
        from ociruntime.linux.kernel import kernel
        from ociruntime.linux.namespaces import CLONE_FLAGS

        fd = posix.open(f"/proc/{target_pid}/ns/net", posix.O_RDONLY | posix.O_CLOEXEC)
        try:
            kernel().setns(fd, CLONE_FLAGS["network"], "linux.netDevices: join the container's network namespace")
        finally:
            posix.close(fd)
        with IPRoute() as inner:
            for host_name in self.devices:
                _restore(inner, host_name, self.found[host_name], NetlinkError)


def _describe(host, host_name: str) -> tuple[int, str, list]:
    """Index, MAC and permanent global addresses of a host interface."""
    indexes = host.link_lookup(ifname=host_name)
    if not indexes:
        raise SetupError(f"linux.netDevices: no network interface {host_name!r} on the host")
    index = indexes[0]
    mac = host.get_links(index)[0].get_attr("IFLA_ADDRESS") or ""
    addresses = []
    for msg in host.get_addr(index=index):
        flags = msg.get_attr("IFA_FLAGS") or msg["flags"]
        if msg["scope"] == RT_SCOPE_UNIVERSE and flags & IFA_F_PERMANENT:
            addresses.append((msg["family"], msg.get_attr("IFA_ADDRESS"), msg["prefixlen"],
                              msg.get_attr("IFA_BROADCAST")))
    return index, mac, addresses


def _restore(inner, host_name: str, found: tuple[int, str, list], netlink_error: type) -> None:
    index, mac, addresses = found
    links = inner.get_links()
    # The kernel keeps the ifindex unless it is taken in the new namespace; else the MAC.
    link = next((ln for ln in links if ln["index"] == index), None) or next(
        (ln for ln in links if mac and ln.get_attr("IFLA_ADDRESS") == mac), None)
    if link is None:
        raise SetupError(f"linux.netDevices: {host_name!r} not found in the container after the move")
    try:
        for family, address, prefixlen, broadcast in addresses:
            extra = {"broadcast": broadcast} if broadcast else {}
            inner.addr("add", index=link["index"], family=family, address=address,
                       prefixlen=prefixlen, **extra)
        inner.link("set", index=link["index"], state="up")
    except netlink_error as e:
        raise SyscallError(e.code, f"linux.netDevices: set up {host_name!r} in the container") from None
