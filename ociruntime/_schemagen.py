"""Compile our JSON Schemas into plain Python predicates (run at install time by setup.py).

`create` must not pay ~78 ms for importing jsonschema just to learn that a config is fine, so the
schemas are turned into straight-line Python that answers only "valid or not". When the answer is
"not", ociruntime.schema asks jsonschema (the reference) to explain why. tests/unit/test_schema.py
checks with hypothesis that both always agree.

Only the keywords below are compiled; any other keyword in a schema is a build error rather than a
silently ignored constraint. The semantics are those of JSON Schema 2020-12 as jsonschema implements
them (booleans are not numbers, keywords only constrain the types they apply to), with one change
that ociruntime.schema makes to its reference validator as well: "integer" means a JSON number
written without fraction or exponent (a Python int), so 1.0 is not a uid, as in runc (Go's
encoding/json) and in draft-04 which upstream's schema uses.

Usage: python -m ociruntime._schemagen OUTPUT.py
"""

from __future__ import annotations

import hashlib
import json
import sys
from typing import Any

from ociruntime.schema import KINDS, load_schema

_ANNOTATIONS = frozenset(
    {"$schema", "$id", "$comment", "$defs", "title", "description", "default", "examples", "deprecated"}
)
_OBJECT_KEYS = frozenset({"required", "properties", "additionalProperties", "propertyNames", "dependentRequired"})
_ARRAY_KEYS = frozenset({"items", "minItems", "maxItems"})
_STRING_KEYS = frozenset({"minLength", "maxLength"})
_NUMBER_KEYS = frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"})
_ANY_KEYS = frozenset({"type", "enum", "const", "$ref", "allOf", "anyOf", "oneOf", "not", "if", "then", "else"})
_SUPPORTED = _ANNOTATIONS | _OBJECT_KEYS | _ARRAY_KEYS | _STRING_KEYS | _NUMBER_KEYS | _ANY_KEYS
# Keywords that can be written as one inline expression (no loops, no sub-schemas).
_INLINE = _ANNOTATIONS | _STRING_KEYS | _NUMBER_KEYS | {"type", "enum", "const", "required", "$ref"}

# How jsonschema's draft 2020-12 type checker decides each JSON type, as Python expressions.
_TYPE_TESTS = {
    "object": "isinstance({v}, dict)",
    "array": "isinstance({v}, list)",
    "string": "isinstance({v}, str)",
    "boolean": "({v} is True or {v} is False)",
    "null": "{v} is None",
    "integer": "(isinstance({v}, int) and {v}.__class__ is not bool)",
    "number": "(isinstance({v}, (int, float)) and {v}.__class__ is not bool)",
}
_KEY_TYPE = {
    **{k: "object" for k in _OBJECT_KEYS},
    **{k: "array" for k in _ARRAY_KEYS},
    **{k: "string" for k in _STRING_KEYS},
    **{k: "number" for k in _NUMBER_KEYS},
}


class SchemaGenError(Exception):
    """A schema uses something the generator cannot compile faithfully."""


class _Compiler:
    def __init__(self) -> None:
        self.functions: list[str] = []
        self.constants: list[str] = []
        self._names: dict[str, str] = {}
        self._consts: dict[str, str] = {}

    # -- helpers ------------------------------------------------------------------------------
    def _const(self, values: list[str]) -> str:
        key = json.dumps(sorted(values))
        if key not in self._consts:
            name = f"_S{len(self._consts)}"
            self._consts[key] = name
            self.constants.append(f"{name} = frozenset({sorted(values)!r})")
        return self._consts[key]

    @staticmethod
    def _resolve(ref: str, root: dict[str, Any]) -> dict[str, Any] | bool:
        if not ref.startswith("#/"):
            raise SchemaGenError(f"only local $ref are supported, got {ref!r}")
        node: Any = root
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    @staticmethod
    def _types(node: dict[str, Any]) -> list[str]:
        t = node.get("type", [])
        return [t] if isinstance(t, str) else list(t)

    def _check_keywords(self, node: dict[str, Any]) -> None:
        unknown = set(node) - _SUPPORTED
        if unknown:
            raise SchemaGenError(f"unsupported keywords {sorted(unknown)} in {node!r:.200}")
        for k in ("enum", "const"):
            values = node.get(k) if k == "enum" else [node[k]] if k in node else None
            if values is not None and not all(isinstance(e, str) for e in values):
                raise SchemaGenError(f"{k} supports strings only, got {values!r}")

    # -- expressions --------------------------------------------------------------------------
    def expr(self, node: dict[str, Any] | bool, root: dict[str, Any], v: str) -> str:
        """A Python expression that is true when the value named `v` is valid against `node`."""
        if node is True:
            return "True"
        if node is False:
            return "False"
        assert isinstance(node, dict)
        self._check_keywords(node)
        if set(node) <= _INLINE and len(self._types(node)) <= 1:
            if "$ref" in node:
                if set(node) - _ANNOTATIONS != {"$ref"}:
                    return f"{self.function(node, root)}({v})"
                return self.expr(self._resolve(node["$ref"], root), root, v)
            return self._inline(node, v)
        return f"{self.function(node, root)}({v})"

    def _inline(self, node: dict[str, Any], v: str) -> str:
        types = self._types(node)
        parts = [_TYPE_TESTS[t].format(v=v) for t in types]
        by_type: dict[str, list[str]] = {}
        for key, value in node.items():
            test = self._keyword_test(key, value, v)
            if test is not None:
                by_type.setdefault(_KEY_TYPE.get(key, ""), []).append(test)
        for kind, tests in by_type.items():
            if kind == "" or kind in types or (kind == "number" and "integer" in types):
                parts.extend(tests)
            else:
                # Keyword of another type than the declared one: it only applies to that type.
                guard = _TYPE_TESTS[kind].format(v=v)
                parts.append(f"(not {guard} or ({' and '.join(tests)}))")
        return "(" + " and ".join(parts) + ")" if parts else "True"

    def _keyword_test(self, key: str, value: Any, v: str) -> str | None:
        if key == "enum":
            return f"(isinstance({v}, str) and {v} in {self._const(value)})"
        if key == "const":
            return f"(isinstance({v}, str) and {v} == {value!r})"
        if key == "required":
            return " and ".join(f"{p!r} in {v}" for p in value) or "True"
        ops = {"minimum": "<", "maximum": ">", "exclusiveMinimum": "<=", "exclusiveMaximum": ">="}
        if key in ops:
            # Written as jsonschema does ("fails if x < minimum"), so NaN behaves the same.
            return f"not ({v} {ops[key]} {value!r})"
        if key == "minLength":
            return f"len({v}) >= {int(value)}"
        if key == "maxLength":
            return f"len({v}) <= {int(value)}"
        return None

    # -- functions ----------------------------------------------------------------------------
    def function(self, node: dict[str, Any], root: dict[str, Any]) -> str:
        """Name of a generated function `f(x) -> bool` for `node` (compiled once per content)."""
        key = json.dumps([node, root.get("$defs")], sort_keys=True)
        if key in self._names:
            return self._names[key]
        name = f"_f{len(self._names)}"
        self._names[key] = name  # registered first: a recursive $ref finds it
        body = self._body(node, root)
        self.functions.append(f"def {name}(x):\n" + "".join(f"    {line}\n" for line in body) + "    return True\n")
        return name

    def _body(self, node: dict[str, Any], root: dict[str, Any]) -> list[str]:
        self._check_keywords(node)
        types = self._types(node)
        lines: list[str] = []
        if types:
            lines.append(f"if not ({' or '.join(_TYPE_TESTS[t].format(v='x') for t in types)}):")
            lines.append("    return False")
        groups: dict[str, list[str]] = {}
        for key, value in node.items():
            kind = _KEY_TYPE.get(key, "")
            groups.setdefault(kind, []).extend(self._keyword_lines(key, value, node, root))
        for kind, group in groups.items():
            if not group:
                continue
            if kind == "" or types == [kind] or (kind == "number" and types == ["integer"]):
                lines.extend(group)
            else:
                lines.append(f"if {_TYPE_TESTS[kind].format(v='x')}:")
                lines.extend("    " + line for line in group)
        return lines

    def _fail_unless(self, test: str) -> list[str]:
        return [f"if not {test}:", "    return False"]

    def _keyword_lines(self, key: str, value: Any, node: dict[str, Any], root: dict[str, Any]) -> list[str]:
        simple = self._keyword_test(key, value, "x")
        if key in ("enum", "const", "required") or key in _NUMBER_KEYS or key in _STRING_KEYS:
            assert simple is not None
            return self._fail_unless(f"({simple})")
        if key == "properties":
            lines = []
            for prop, sub in value.items():
                test = self.expr(sub, root, "v")
                lines += [f"v = x.get({prop!r}, _MISSING)", f"if v is not _MISSING and not {test}:", "    return False"]
            return lines
        if key == "additionalProperties":
            known = self._const(list(node.get("properties", {})))
            return [
                "for k, v in x.items():",
                f"    if k not in {known} and not {self.expr(value, root, 'v')}:",
                "        return False",
            ]
        if key == "propertyNames":
            return ["for k in x:", f"    if not {self.expr(value, root, 'k')}:", "        return False"]
        if key == "dependentRequired":
            return [
                line
                for prop, deps in value.items()
                for line in self._fail_unless(f"({prop!r} not in x or ({' and '.join(f'{d!r} in x' for d in deps)}))")
            ]
        if key == "items":
            return ["for v in x:", f"    if not {self.expr(value, root, 'v')}:", "        return False"]
        if key == "minItems":
            return self._fail_unless(f"(len(x) >= {int(value)})")
        if key == "maxItems":
            return self._fail_unless(f"(len(x) <= {int(value)})")
        return self._combinator_lines(key, value, node, root)

    def _combinator_lines(self, key: str, value: Any, node: dict[str, Any], root: dict[str, Any]) -> list[str]:
        if key == "$ref":
            return self._fail_unless(self.expr(self._resolve(value, root), root, "x"))
        if key == "allOf":
            return [line for sub in value for line in self._fail_unless(self.expr(sub, root, "x"))]
        if key == "anyOf":
            return self._fail_unless("(" + " or ".join(self.expr(sub, root, "x") for sub in value) + ")")
        if key == "oneOf":
            count = " + ".join(f"bool({self.expr(sub, root, 'x')})" for sub in value)
            return self._fail_unless(f"(({count}) == 1)")
        if key == "not":
            return [f"if {self.expr(value, root, 'x')}:", "    return False"]
        if key == "if":
            then = self.expr(node.get("then", True), root, "x")
            other = self.expr(node.get("else", True), root, "x")
            return [f"if {self.expr(value, root, 'x')}:", f"    if not {then}:", "        return False",
                    f"elif not {other}:", "    return False"]
        if key in ("then", "else", "type") or key in _ANNOTATIONS:
            return []  # "then"/"else" are compiled with "if"; "type" is checked first
        raise SchemaGenError(f"unsupported keyword {key!r}")


def generate(schemas: dict[str, dict[str, Any]]) -> str:
    """Python source of a module whose `is_valid(kind, doc)` answers like jsonschema would."""
    compiler = _Compiler()
    entries = {kind: compiler.function(schema, schema) for kind, schema in schemas.items()}
    digest = hashlib.sha256(json.dumps(schemas, sort_keys=True).encode()).hexdigest()[:16]
    table = ", ".join(f"{kind!r}: {name}" for kind, name in entries.items())
    return (
        '"""Generated by ociruntime/_schemagen.py from schemas/*.json at install time: do not edit."""\n'
        "# ruff: noqa\n\n"
        f"SCHEMA_DIGEST = {digest!r}\n"
        "_MISSING = object()\n\n"
        + "\n".join(compiler.constants)
        + "\n\n\n"
        + "\n\n".join(compiler.functions)
        + f"\n\nVALIDATORS = {{{table}}}\n\n\n"
        "def is_valid(kind, doc):\n"
        '    """True when `doc` is valid against our schema for `kind` (config, state, features, process)."""\n'
        "    return VALIDATORS[kind](doc)\n"
    )


def generate_from_files(schema_dir: str | None = None) -> str:
    return generate({kind: load_schema(kind, schema_dir) for kind in KINDS})


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m ociruntime._schemagen OUTPUT.py", file=sys.stderr)
        return 2
    with open(argv[1], "w", encoding="utf-8") as out:
        out.write(generate_from_files())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
