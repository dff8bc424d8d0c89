"""Hypothesis mutates a valid config.json and hands it to `create`: whatever the mutation, the
runtime either creates the container or fails with exit 1 and clear one-line messages, never a
traceback, and leaves nothing behind (no state dir, cgroup, mount or process)."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conformance.bundle import default_config, make_bundle
from tests.conftest import Runtime, host_cgroup_dirs, host_mounts_mentioning

BAD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False), st.text(max_size=40),
    st.sampled_from(["", "..", "../../etc", "relative/path", "a\x00b", "\u202e\ufeff", "/" * 300,
                     "x" * 5000, "SCMP_ACT_NOPE", "pidx", "CAP_NOPE", "RLIMIT_NOPE"]),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    st.integers(min_value=1, max_value=200).map(lambda n: json.loads("[" * n + "]" * n)),
)


def paths_of(doc: object, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += paths_of(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += paths_of(v, (*prefix, i))
    return out


BASE = default_config(["true"])
BASE["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                            "syscalls": [{"names": ["mknodat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}
BASE["hooks"] = {"poststop": [{"path": "/bin/true"}]}
PATHS = [p for p in paths_of(BASE) if p]


@st.composite
def mutated_configs(draw: st.DrawFn) -> dict:
    doc = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(PATHS))
        target = doc
        try:
            for key in path[:-1]:
                target = target[key]
            if draw(st.booleans()) and isinstance(target, dict):
                target.pop(path[-1], None)  # a missing field
            else:
                target[path[-1]] = draw(BAD_VALUES)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced the parent
    return doc


@pytest.fixture(scope="module")
def fuzz_env(tmp_path_factory: pytest.TempPathFactory, base_rootfs: Path):
    tmp = tmp_path_factory.mktemp("fuzz")
    rt = Runtime(os.environ.get("OCIRUNTIME", "/usr/local/bin/ociruntime"), tmp / "state")
    b = make_bundle(tmp / "bundle", config=BASE, rootfs_from=base_rootfs)
    yield rt, b
    rt.cleanup()


RESULTS = {"examples": 0, "created": 0, "refused": 0}


@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(doc=mutated_configs())
def test_mutated_config_is_created_or_refused_cleanly(fuzz_env, doc: dict) -> None:
    rt, b = fuzz_env
    (b / "config.json").write_text(json.dumps(doc))
    cid = rt.new_id("fz")
    log = b.parent / f"{cid}.log"
    res = rt.run("create", "-b", str(b), cid, log_json=log, timeout=20)
    RESULTS["examples"] += 1
    err = res.stderr.decode(errors="replace")
    assert "Traceback" not in err and "internal error" not in err, err
    if res.returncode == 0:
        RESULTS["created"] += 1
        rt.run("delete", "-f", cid, check=True)
    else:
        RESULTS["refused"] += 1
        assert res.returncode == 1
        lines = err.splitlines()
        assert lines and all(line.startswith("ociruntime: ") for line in lines), err
        last = json.loads(log.read_text().splitlines()[-1])
        assert last["level"] == "error" and last["msg"]
    assert not (rt.root / cid).exists()
    assert host_cgroup_dirs(cid) == []
    assert host_mounts_mentioning(str(b)) == []


def test_fuzz_ran_and_saw_both_outcomes() -> None:
    """Guards against a fuzz run that silently tested nothing."""
    if RESULTS["examples"] == 0:
        pytest.skip("the fuzz test did not run in this session (deselected)")
    print(f"fuzz: {RESULTS}")
    assert RESULTS["refused"] > 0
