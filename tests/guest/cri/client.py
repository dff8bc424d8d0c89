"""A small Kubernetes CRI client for the tests: gRPC (grpcio) over a unix socket, with the
messages of api.proto (written from k8s.io/cri-api runtime/v1) compiled here at run time by
grpc_tools.protoc into a temporary directory. It speaks to the CRI plugin the way kubelet does,
one RPC per call, so that a test can follow kubelet's pod lifecycle without a kubelet."""

from __future__ import annotations

import functools
import importlib.util
import shutil
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import grpc
from google.protobuf import json_format

PROTO = Path(__file__).with_name("api.proto")


@functools.cache
def api() -> tuple[ModuleType, ModuleType]:
    """(messages, services): api_pb2 and api_pb2_grpc, compiled once per process (the protobuf
    runtime refuses to register the same .proto twice)."""
    from grpc_tools import protoc

    out = Path(tempfile.mkdtemp(prefix="cri-api-"))
    try:
        rc = protoc.main(["protoc", f"-I{PROTO.parent}", f"--python_out={out}",
                          f"--grpc_python_out={out}", str(PROTO)])
        if rc != 0:
            raise RuntimeError(f"grpc_tools.protoc could not compile {PROTO} (exit {rc})")
        # api_pb2_grpc imports api_pb2 by that name: load the messages first, under it.
        return _load("api_pb2", out), _load("api_pb2_grpc", out)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _load(name: str, directory: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, directory / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class CriError(AssertionError):
    """An RPC the CRI server refused: its name, gRPC status code and message."""

    def __init__(self, rpc: str, err: grpc.RpcError) -> None:
        self.code = err.code()
        super().__init__(f"CRI {rpc} failed: {self.code.name}: {err.details()}")


class CriClient:
    """RuntimeService and ImageService over `unix://socket`. call("RunPodSandbox", {...}) builds
    RunPodSandboxRequest from a dict (field names as in api.proto, enums by name) and returns
    the response message."""

    IMAGE_RPCS = frozenset({"ImageStatus"})

    def __init__(self, socket: Path, timeout: float = 120) -> None:
        self.pb, services = api()
        self.timeout = timeout
        self.channel = grpc.insecure_channel(f"unix://{socket}")
        self.runtime = services.RuntimeServiceStub(self.channel)
        self.images = services.ImageServiceStub(self.channel)

    def call(self, rpc: str, request: dict | None = None, timeout: float | None = None):
        req = json_format.ParseDict(request or {}, getattr(self.pb, f"{rpc}Request")())
        stub = self.images if rpc in self.IMAGE_RPCS else self.runtime
        try:
            return getattr(stub, rpc)(req, timeout=timeout or self.timeout)
        except grpc.RpcError as e:
            raise CriError(rpc, e) from None

    def close(self) -> None:
        self.channel.close()
