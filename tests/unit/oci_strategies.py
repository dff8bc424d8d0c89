"""Hypothesis strategies for OCI documents, shared by the schema tests.

`documents(kind)` draws documents that are valid against our schema for `kind`, generated from the
schema itself (so every property is exercised, unknown extension properties included);
`mutated(kind)` breaks such a document in one to three places the way real configs go wrong:
wrong types, missing required properties, misspelt enum values, huge and negative numbers,
relative and `..` paths, NUL bytes, odd unicode, deep nesting.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import types
from typing import Any

import jsonschema
from hypothesis import strategies as st

from ociruntime import _schemagen, schema

Json = Any
JSON_LEAVES = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
# Values that break a document wherever they land (some may be valid at a particular spot).
ODD_STRINGS = st.sampled_from(
    ["", "\x00", "a\x00b", "../etc", "relative/path", "..", "/ok/../../x", "\u202e/evil", "\udc80",
     "\u2028", "x" * 5000, "RLIMIT_NOFILE", "pid", "SCMP_ACT_ALLOW", "1.3.0", "/"]
)
ODD_NUMBERS = st.sampled_from(
    [-1, 0, 1, 7, 8, -1001, 65536, 2**31, 2**32, 2**63, 2**64, -(2**63) - 1, 10**100, 1.0, 1.5, -0.0,
     1e300, float("inf"), float("-inf"), float("nan")]
)


def _nested(depth: int, as_dict: bool) -> Json:
    value: Json = "leaf"
    for _ in range(depth):
        value = {"a": value} if as_dict else [value]
    return value


BAD_VALUES = st.one_of(
    st.none(), st.booleans(), ODD_NUMBERS, st.integers(min_value=-(2**70), max_value=2**70), ODD_STRINGS, st.text(),
    st.lists(st.text(max_size=4), max_size=3), st.dictionaries(st.text(max_size=4), JSON_LEAVES, max_size=3),
    st.builds(_nested, st.integers(1, 300), st.booleans()),
)


def load_module(path: str, name: str) -> types.ModuleType:
    """Import the Python file at `path` as module `name` (not registered in sys.modules)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def generated_module() -> types.ModuleType:
    """The fast validator module as setup.py generates it, built from schemas/ into a temp dir."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "generated_validators.py")
        with open(path, "w", encoding="utf-8") as f:
            f.write(_schemagen.generate_from_files())
        return load_module(path, "generated_validators")


class _SchemaStrategies:
    """Strategies for valid instances of the keyword subset our schemas use (see _schemagen)."""

    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root

    def resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            extra = set(node) - {"$ref", "$comment", "$schema", "$defs", "title", "description"}
            assert not extra, f"$ref with siblings {extra} is not generated"
            target: Any = self.root
            for part in node["$ref"][2:].split("/"):
                target = target[part]
            node = target
        return node

    def strategy(self, node: dict[str, Any] | bool) -> st.SearchStrategy[Json]:
        if node is True:
            return JSON_VALUES
        assert isinstance(node, dict)
        node = self.resolve(node)
        if "enum" in node:
            return st.sampled_from(node["enum"])
        if "const" in node:
            return st.just(node["const"])
        types_ = node.get("type", [])
        types_ = [types_] if isinstance(types_, str) else types_
        return st.one_of([self._typed(t, node) for t in types_]) if types_ else JSON_VALUES

    def _typed(self, t: str, node: dict[str, Any]) -> st.SearchStrategy[Json]:
        if t == "null":
            return st.none()
        if t == "boolean":
            return st.booleans()
        if t == "string":
            return st.text(min_size=node.get("minLength", 0), max_size=max(node.get("minLength", 0), 12))
        if t == "integer":
            return st.integers(min_value=node.get("minimum"), max_value=node.get("maximum"))
        if t == "array":
            return st.lists(self.strategy(node.get("items", True)), min_size=node.get("minItems", 0), max_size=3)
        assert t == "object", t
        return self._object(node)

    def _object(self, node: dict[str, Any]) -> st.SearchStrategy[Json]:
        props = node.get("properties", {})
        required = {k: self.strategy(props.get(k, True)) for k in node.get("required", [])}
        optional = {k: self.strategy(v) for k, v in props.items() if k not in required}
        base = st.fixed_dictionaries(required, optional=optional)
        extra_schema = node.get("additionalProperties")
        min_key = node.get("propertyNames", {}).get("minLength", 0)
        if extra_schema is not None:
            keys = st.text(min_size=max(min_key, 1), max_size=10).filter(lambda k: k not in props)
            extras = st.dictionaries(keys, self.strategy(extra_schema), max_size=3)
        else:  # unknown properties: the spec says they MUST be ignored
            extras = st.dictionaries(st.sampled_from(["x-ext", "org.example/extension", "\u00e9t\u00e9"]),
                                     JSON_VALUES, max_size=1)
        return st.builds(lambda b, e: {**e, **b}, base, extras).flatmap(lambda obj: self._repair(obj, node))

    def _repair(self, obj: dict[str, Any], node: dict[str, Any]) -> st.SearchStrategy[Json]:
        """Add what anyOf/if-else/dependentRequired demand, drawing the missing properties."""
        props = node.get("properties", {})
        needed: list[str] = []
        for prop, deps in node.get("dependentRequired", {}).items():
            if prop in obj:
                needed += deps
        branches = node.get("anyOf", [])
        if branches and not any(all(k in obj for k in b["required"]) for b in branches):
            needed += branches[0]["required"]
        if "if" in node:
            chosen = node.get("then" if jsonschema.Draft202012Validator(node["if"]).is_valid(obj) else "else", {})
            needed += chosen.get("required", [])
        missing = {k: self.strategy(props.get(k, True)) for k in dict.fromkeys(needed) if k not in obj}
        return st.fixed_dictionaries(missing).map(lambda add: {**obj, **add})


def documents(kind: str) -> st.SearchStrategy[Json]:
    """Documents valid against our schema for `kind`."""
    root = schema.load_schema(kind)
    return _SchemaStrategies(root).strategy(root)


def _paths(doc: Json, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


def _get(doc: Json, path: tuple[str | int, ...]) -> Json:
    for part in path:
        doc = doc[part]
    return doc


@st.composite
def _mutate_once(draw: st.DrawFn, doc: Json) -> Json:
    path = draw(st.sampled_from(_paths(doc)))
    op = draw(st.sampled_from(["replace", "replace", "delete", "misspell", "insert"]))
    target = _get(doc, path)
    if op == "misspell" and isinstance(target, str):
        new = draw(st.sampled_from([target + "x", target.upper(), target.lower(), target[:-1], " " + target]))
    elif op == "insert" and isinstance(target, dict):
        new = {**target, draw(st.sampled_from(["x-unknown", "type", "path", "ociVersion"])): draw(BAD_VALUES)}
    elif op == "delete" and path:
        _get(doc, path[:-1]).pop(path[-1])  # dict key or list index
        return doc
    else:
        new = draw(BAD_VALUES)
    if not path:
        return new
    _get(doc, path[:-1])[path[-1]] = new
    return doc


@st.composite
def mutated(draw: st.DrawFn, kind: str) -> Json:
    """A valid document of `kind` broken in one to three places (it may happen to stay valid)."""
    doc = draw(documents(kind))
    for _ in range(draw(st.integers(1, 3))):
        doc = draw(_mutate_once(doc))
    return doc
