"""JSON without `import json`: the json package pulls in re and enum (~7 ms per CLI call), while
its C accelerator `_json` alone costs ~0.3 ms. State files, state output and sync messages are
small documents of str/int/float/bool/None/list/dict, which is all this handles."""

import _json


# The decoder context _json.make_scanner reads its settings from (json.decoder's fields).
class _Ctx:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = None
    memo: dict = {}


def _bad_constant(name: str) -> float:
    raise ValueError(f"invalid JSON constant {name}")


_Ctx.parse_constant = staticmethod(_bad_constant)  # type: ignore[assignment]
_scan = _json.make_scanner(_Ctx())
_WS = " \t\n\r"


def loads(text: str | bytes, lenient: bool = False) -> object:
    """Parse one JSON document; ValueError (with the offset) on anything else, including bad
    UTF-8 and lone surrogates. `lenient`, for salvaging a damaged file: bad bytes become
    U+FFFD and lone surrogates stay in the strings."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", "replace" if lenient else "strict")
    start = 0
    n = len(text)
    while start < n and text[start] in _WS:
        start += 1
    if start == n:
        raise ValueError("empty document")
    try:
        value, end = _scan(text, start)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except (StopIteration, SystemError):
        # Error path only: the json package words the problem with line and column.
        _explain(text)
        raise ValueError("invalid JSON") from None
    finally:
        _Ctx.memo.clear()
    while end < n and text[end] in _WS:
        end += 1
    if end != n:
        _explain(text)
    if not lenient and ("\\ud" in text or "\\uD" in text):
        refuse_lone_surrogates(value)
    return value


def refuse_lone_surrogates(value: object) -> None:
    """A \\ud800 escape without its pair decodes to a str that cannot be encoded to UTF-8:
    refuse it here, with the parse error, rather than fail later at a syscall or a write.
    Only documents that contain such an escape at all are walked."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as e:
                raise ValueError(f"lone surrogate \\u{ord(item[e.start]):04x} in string "
                                 f"{item[:40]!r} (not valid Unicode)") from None


def _explain(text: str) -> None:
    import json

    try:
        json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(str(e)) from None
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _reject(obj: object) -> object:
    raise TypeError(f"cannot encode {type(obj).__name__} as JSON")


_encode = _json.make_encoder(
    None, _reject, _json.encode_basestring_ascii, None, ":", ",", False, False, False
)


def dumps(obj: object) -> str:
    """Compact JSON (the form of runc's state.json and of log lines)."""
    return "".join(_encode(obj, 0))


def dumps_pretty(obj: object, indent: str = "  ", level: int = 0) -> str:
    """Indented JSON in the shape of runc's `state` output (Go's MarshalIndent)."""
    pad = indent * (level + 1)
    if isinstance(obj, dict) and obj:
        items = (f"{pad}{dumps(str(k))}: {dumps_pretty(v, indent, level + 1)}" for k, v in obj.items())
        return "{\n" + ",\n".join(items) + "\n" + indent * level + "}"
    if isinstance(obj, list) and obj:
        items = (pad + dumps_pretty(v, indent, level + 1) for v in obj)
        return "[\n" + ",\n".join(items) + "\n" + indent * level + "]"
    return dumps(obj)
