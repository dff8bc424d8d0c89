"""Validate config.json, process.json, state and features documents against our JSON Schemas.

Hot path: a valid document is accepted by the predicates generated at install time
(ociruntime/_validators.py, see _schemagen.py) without importing jsonschema. Only when that says
"invalid", or when the generated module is absent (source checkout), jsonschema is loaded to list
the problems as one-line messages with a JSON path: `linux.namespaces[2].type: "pidx" is not one
of pid, network, ...`.

This module is imported by `create`: keep its top level free of json, re, pathlib and jsonschema.
"""

from __future__ import annotations

from ociruntime import lean

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re (~5 ms): annotations only
    from collections.abc import Iterable, Iterator
    from typing import Any

KINDS = ("config", "state", "features", "process")
MAX_MESSAGES = 20
_MAX_SHOWN = 60  # characters of a value quoted in a message

_FILES = {"config": "config.schema.json", "state": "state.schema.json", "features": "features.schema.json"}
_PKG_DIR = lean.parent(lean.abspath(__file__))
_fast: Any = None  # the generated module, False when absent
_schemas: dict[str, dict[str, Any]] = {}
_reference: dict[str, Any] = {}


def schema_dir() -> str:
    """Where the schema files are: package data when installed, else the source tree's schemas/."""
    installed = lean.join(_PKG_DIR, "schemas")
    if lean.is_file(lean.join(installed, _FILES["config"])):
        return installed
    return lean.join(lean.parent(_PKG_DIR), "schemas")


def load_schema(kind: str, directory: str | None = None) -> dict[str, Any]:
    """The schema for `kind`; "process" (exec -p process.json) is config's `$defs/process`."""
    _check_kind(kind)
    if kind == "process":
        config = load_schema("config", directory)
        return {
            "$schema": config["$schema"],
            "title": "OCI runtime-spec 1.3.0 process (exec -p process.json)",
            "$ref": "#/$defs/process",
            "$defs": config["$defs"],
        }
    if directory is None and kind in _schemas:
        return _schemas[kind]
    import json

    with open(lean.join(directory or schema_dir(), _FILES[kind]), encoding="utf-8") as f:
        schema: dict[str, Any] = json.load(f)
    if directory is None:
        _schemas[kind] = schema
    return schema


def validate(doc: object, kind: str) -> list[str]:
    """[] when `doc` is valid, else up to MAX_MESSAGES one-line messages naming each problem."""
    _check_kind(kind)
    fast = _fast_module()
    if fast and fast.is_valid(kind, doc):
        return []
    return explain(doc, kind)


def reference_is_valid(doc: object, kind: str) -> bool:
    """jsonschema's verdict alone (the reference the generated validator is tested against)."""
    return bool(_reference_validator(kind).is_valid(doc))


def explain(doc: object, kind: str) -> list[str]:
    """Messages from the reference validator (jsonschema); [] if it finds nothing wrong."""
    try:
        errors = list(_reference_validator(kind).iter_errors(doc))
        messages = _dedup(m for e in errors for m in _messages(e))
    except RecursionError:  # jsonschema renders the offending value; a JSON parser stops far earlier
        return ["(root): nested too deeply to be described"]
    except (ValueError, MemoryError) as exc:
        return [f"(root): cannot be validated: {_sanitize(str(exc))}"]
    if len(messages) > MAX_MESSAGES:
        more = len(messages) - (MAX_MESSAGES - 1)
        messages = [*messages[: MAX_MESSAGES - 1], f"... and {more} more problems"]
    return messages


# -- formatting shared with semantics.py -------------------------------------------------------


def format_path(parts: Iterable[str | int]) -> str:
    """`linux.namespaces[2].type`; keys that are not plain words go in brackets, (root) if empty."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part and all(c.isascii() and (c.isalnum() or c in "_-") for c in part):
            out += f".{part}" if out else part
        else:
            out += f"[{show(part)}]"
    return out or "(root)"


def show(value: object) -> str:
    """A short, single-line rendering of a JSON value for messages (never the whole of a big one)."""
    if isinstance(value, str):
        if len(value) > _MAX_SHOWN:
            return _quote(value[: _MAX_SHOWN - 1]) + f"… ({len(value)} characters)"
        return _quote(value)
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, int):
        try:
            text = str(value)
        except ValueError:  # more digits than int-to-str conversion allows
            return "a huge integer"
        return text if len(text) <= 40 else f"a {len(text)}-digit integer"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):
        return f"an array of {len(value)} entries"
    if isinstance(value, dict):
        return f"an object with {len(value)} properties"
    return f"a {type(value).__name__}"


def type_name(value: object) -> str:
    """The JSON type of a Python value as messages name it."""
    for t, name in ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"),
                    (list, "array"), (dict, "object")):
        if isinstance(value, t):
            return name
    return "null" if value is None else type(value).__name__


def _quote(s: str) -> str:
    out = []
    for c in s:
        if c in '"\\':
            out.append("\\" + c)
        elif c.isprintable():
            out.append(c)
        else:  # NUL, control, line/paragraph separators, bidi overrides, surrogates...
            n = ord(c)
            out.append(f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}")
    return '"' + "".join(out) + '"'


# -- internals ---------------------------------------------------------------------------------


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown document kind {kind!r}, expected one of {', '.join(KINDS)}")


def _fast_module() -> Any:
    global _fast
    if _fast is None:
        try:
            from ociruntime import _validators  # type: ignore[attr-defined]
        except ImportError:  # running from a source checkout: jsonschema alone
            _fast = False
        else:
            _fast = _validators
    return _fast


def _reference_validator(kind: str) -> Any:
    if kind not in _reference:
        import jsonschema

        schema = load_schema(kind)
        base = jsonschema.validators.validator_for(schema)
        # "integer" is a JSON number without fraction or exponent: 1.0 is not a uid (runc's Go
        # decoder rejects it too), while draft 2020-12 would accept it. _schemagen does the same.
        checker = base.TYPE_CHECKER.redefine("integer", lambda _, v: isinstance(v, int) and not isinstance(v, bool))
        cls = jsonschema.validators.extend(base, type_checker=checker)
        _reference[kind] = cls(schema)
    return _reference[kind]


def _dedup(messages: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(messages))


_ARTICLE = {"object": "an object", "array": "an array", "string": "a string", "integer": "an integer",
            "number": "a number", "boolean": "a boolean", "null": "null"}


def _messages(err: Any) -> Iterator[str]:
    path = list(err.absolute_path)
    where = format_path(path)
    v, value, inst = err.validator, err.validator_value, err.instance
    if "propertyNames" in err.relative_schema_path:
        yield f"{where}: key {show(inst)} is not allowed: {_text(err)}"
    elif v == "required":
        for prop in value:
            if isinstance(inst, dict) and prop not in inst:
                yield f"{format_path([*path, prop])}: required property is missing"
    elif v == "dependentRequired":
        for prop, deps in value.items():
            for dep in deps:
                if isinstance(inst, dict) and prop in inst and dep not in inst:
                    yield f"{format_path([*path, dep])}: required when {prop} is set"
    else:
        yield f"{where}: {_text(err)}"


def _text(err: Any) -> str:
    """What is wrong with err.instance and what is expected, for the keywords our schemas use."""
    v, value, inst, schema = err.validator, err.validator_value, err.instance, err.schema
    if v == "type":
        types = [value] if isinstance(value, str) else value
        return f"expected {' or '.join(_ARTICLE.get(t, t) for t in types)}, got {type_name(inst)}"
    if v == "enum":
        choices = ", ".join(str(c) for c in value)
        if isinstance(inst, str):
            return f"{show(inst)} is not one of {choices}"
        return f"expected one of {choices}, got {type_name(inst)}"
    if v == "const":
        return f"expected {show(value)}, got {show(inst)}"
    if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return _range_text(inst, schema)
    if v == "minLength":
        return "must not be empty" if value == 1 else f"must be at least {value} characters long"
    if v == "maxLength":
        return f"must be at most {value} characters long, got {len(inst)}"
    if v == "minItems":
        return "must have at least one entry" if value == 1 else f"must have at least {value} entries"
    if v == "maxItems":
        return f"must have at most {value} entries, got {len(inst)}"
    if v == "anyOf" and all(set(s) == {"required"} for s in value):
        return "needs at least one of " + ", ".join(p for s in value for p in s["required"])
    return _sanitize(err.message)


def _range_text(inst: object, schema: dict[str, Any]) -> str:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    what = f" ({schema['title']})" if "title" in schema else ""
    kind = "an integer" if schema.get("type") == "integer" else "a number"
    if low is not None and high is not None:
        return f"{show(inst)} is out of range: expected {kind} from {low} to {high}{what}"
    if low is not None:
        return f"{show(inst)} is too small: expected at least {low}{what}"
    return f"{show(inst)} is too large: expected at most {high}{what}"


def _sanitize(text: str) -> str:
    """jsonschema's own message, made single-line and bounded (it may embed the whole value)."""
    text = _quote(text)[1:-1]
    return text if len(text) <= 200 else text[:199] + "…"
