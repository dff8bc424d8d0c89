"""bench/bench.py's ExecTrace, which times each runtime call an engine's shim makes (issue 14's
`ctr` and `docker` rows) from the kernel's fork, exec and exit tracepoints."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("ocibench", REPO / "bench" / "bench.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["ocibench"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    del sys.modules["ocibench"]


@pytest.mark.skipif(os.geteuid() != 0, reason="tracefs needs root")
def test_each_call_a_shim_makes_is_timed_from_its_fork_to_its_exit(bench, tmp_path):
    # A stand-in for containerd-shim-runc-v2: the kernel names a process after the link it ran.
    shim = tmp_path / "containerd-shim-runc-v2"
    shim.symlink_to("/bin/sh")
    trace = bench.ExecTrace(f"ocitest-{os.getpid()}")
    try:
        trace.clear()
        # Two calls of the "runtime" (/bin/sleep) the shim forks, and one that a child of the
        # shim's child makes, which is not a call of the shim's.
        subprocess.run([str(shim), "-c", "/bin/sleep 0.05; /bin/sleep 0.1; /bin/sh -c '/bin/sleep 0.01; :'; exit 0"],
                       check=True)
        calls = trace.calls("/bin/sleep")
    finally:
        trace.close()
    assert len(calls) == 2, calls
    assert 50 <= calls[0] < calls[1], calls
    assert calls[1] >= 100, calls
    assert not os.path.exists(trace.dir), "the bench's tracefs instance is left behind"


@pytest.mark.skipif(os.geteuid() != 0, reason="tracefs needs root")
def test_a_killed_benchs_trace_is_removed_and_a_running_ones_kept(bench):
    gone = subprocess.Popen(["/bin/true"])
    gone.wait()
    stale = f"{bench.TRACEFS}/instances/ocibench-{gone.pid}"
    live = f"{bench.TRACEFS}/instances/ocibench-{os.getpid()}"
    os.mkdir(stale)
    os.mkdir(live)
    try:
        bench.remove_stale_traces()
        assert not os.path.exists(stale), "a killed bench's ring buffer is left allocated"
        assert os.path.exists(live), "a running bench's trace was removed"
    finally:
        for path in (stale, live):
            if os.path.exists(path):
                os.rmdir(path)
