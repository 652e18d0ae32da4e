"""Go's values and the functions of Docker's `--format` templates (pure).

How Go's fmt prints what a template sees (`go_str`), Go's names of JSON types
for error messages, and the functions: Go's builtins (``and or not eq ne lt le
gt ge len index print printf println``) and Docker's (``json join split title
lower upper pad truncate``, cli/templates/templates.go), with Docker's
HeaderFunctions for a table's header row. `netkit.cli.template` runs them.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable, Mapping


class _Missing:
    def __repr__(self) -> str:
        return "<no value>"


MISSING: Any = _Missing()


def go_bool(value: bool) -> str:
    return "true" if value else "false"


def go_str(value: Any) -> str:
    """Print a value the way Go's fmt %v prints what docker's templates see."""
    if value is MISSING:
        return "<no value>"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return go_bool(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{go_str(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(go_str(v) for v in value) + "]"
    return str(value)


def go_type(value: Any) -> str:
    """Go's name for a JSON value's type (for error messages)."""
    if value is None or value is MISSING:
        return "<nil>"
    for kind, name in ((bool, "bool"), (int, "int"), (float, "float64"), (str, "string"),
                       (Mapping, "map[string]interface {}"), ((list, tuple), "[]interface {}")):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def truthy(value: Any) -> bool:
    return value is not MISSING and bool(value)


class ExecError(Exception):
    """A failure while executing: where (position, node text) and Go's message."""

    def __init__(self, message: str, pos: int = -1, source: str = "") -> None:
        super().__init__(message)
        self.message, self.pos, self.source = message, pos, source


# -- functions ----------------------------------------------------------------------------


def _json(value: Any) -> str:
    return json.dumps(None if value is MISSING else value, ensure_ascii=False, separators=(",", ":"))


def _index(value: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(value, Mapping):
            value = value.get(key, MISSING)
        elif isinstance(value, (list, tuple, str)) and isinstance(key, int) and not isinstance(key, bool):
            if not 0 <= key < len(value):
                raise ExecError(f"index out of range: {key}")
            value = value[key]
        elif value is None or value is MISSING:
            raise ExecError("index of untyped nil")
        else:
            raise ExecError(f"cannot index {go_type(value)} with {go_type(key)}")
    return value


def _join(items: Any, sep: str) -> str:
    if not isinstance(items, (list, tuple)):
        raise ExecError(f"wrong type for value; expected []string; got {go_type(items)}")
    return sep.join(go_str(i) for i in items)


def _len(value: Any) -> int:
    if value is None or value is MISSING:
        raise ExecError("len of nil pointer")
    if not isinstance(value, (str, list, tuple, Mapping)):
        raise ExecError(f"len of type {go_type(value)}")
    return len(value)


def _comparable(a: Any, b: Any) -> bool:
    numbers = (int, float)
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    if isinstance(a, numbers) and isinstance(b, numbers):
        return True
    return type(a) is type(b) or a is None or b is None


def _eq(first: Any, *others: Any) -> bool:
    if not others:
        raise ExecError("missing argument for comparison")
    for other in others:
        if not _comparable(first, other):
            raise ExecError("incompatible types for comparison")
        if first == other:
            return True
    return False


def _order(op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def compare(a: Any, b: Any) -> bool:
        for v in (a, b):
            if isinstance(v, bool) or not isinstance(v, (int, float, str)):
                raise ExecError("invalid type for comparison")
        if not _comparable(a, b):
            raise ExecError("incompatible types for comparison")
        return op(a, b)
    return compare


def _title(text: Any) -> str:
    """Go's strings.Title: upper-case the first letter of each word, leave the rest."""
    return re.sub(r"(?:^|(?<=[^\w]))(\w)", lambda m: m.group(1).upper(), go_str(text))


def _pad(source: Any, prefix: int, suffix: int) -> str:
    """Docker's padWithSpace: spaces around a non-empty string."""
    text = go_str(source)
    return text and " " * prefix + text + " " * suffix


def _sprint(*args: Any) -> str:
    """Go's fmt.Sprint: a space between operands when neither is a string."""
    out = ""
    for i, arg in enumerate(args):
        if i and not isinstance(arg, str) and not isinstance(args[i - 1], str):
            out += " "
        out += go_str(arg)
    return out


_VERB = re.compile(r"%([-+# 0]*)(\d+)?(?:\.(\d+))?([a-zA-Z%])")


def _printf(fmt: str, *args: Any) -> str:
    """Go's fmt.Sprintf for the verbs templates use (v s d q t x X f e g c o b %)."""
    values = list(args)
    used = 0

    def one(m: re.Match) -> str:
        nonlocal used
        flags, width, prec, verb = m.groups()
        if verb == "%":
            return "%"
        if used >= len(values):
            return f"%!{verb}(MISSING)"
        value = values[used]
        used += 1
        if verb in "vs":
            text = go_str(value)
            if prec is not None:
                text = text[:int(prec)]
        elif verb == "q":
            text = json.dumps(go_str(value), ensure_ascii=False)
        elif verb == "t":
            text = go_bool(value) if isinstance(value, bool) else f"%!t({go_type(value)}={go_str(value)})"
        elif verb in "dxXobc" and isinstance(value, int) and not isinstance(value, bool):
            text = chr(value) if verb == "c" else format(value, {"d": "d"}.get(verb, verb))
            if "+" in flags and verb == "d" and value >= 0:
                text = "+" + text
        elif verb in "xX" and isinstance(value, str):
            text = value.encode().hex()
            text = text.upper() if verb == "X" else text
        elif verb in "feEgG" and isinstance(value, float):
            text = format(value, f".{prec if prec is not None else 6}{verb}") if verb not in "gG" \
                else format(value, verb)
        else:
            return f"%!{verb}({go_type(value)}={go_str(value)})"
        if width and len(text) < int(width):
            fill = "0" if "0" in flags and "-" not in flags and verb not in "vsq" else " "
            text = text.ljust(int(width)) if "-" in flags else text.rjust(int(width), fill)
        return text

    out = _VERB.sub(one, fmt)
    if used < len(values):
        extra = ", ".join(f"{go_type(v)}={go_str(v)}" for v in values[used:])
        out += f"%!(EXTRA {extra})"
    return out


FUNCS: dict[str, Callable[..., Any]] = {
    # Go's builtins ("and" and "or" are evaluated lazily, in _Exec.call)
    "and": lambda *a: a[-1],
    "or": lambda *a: a[-1],
    "not": lambda v: not truthy(v),
    "eq": _eq,
    "ne": lambda a, b: not _eq(a, b),
    "lt": _order(lambda a, b: a < b),
    "le": _order(lambda a, b: a <= b),
    "gt": _order(lambda a, b: a > b),
    "ge": _order(lambda a, b: a >= b),
    "len": _len,
    "index": _index,
    "print": _sprint,
    "printf": _printf,
    "println": lambda *a: " ".join(go_str(x) for x in a) + "\n",
    # Docker's (cli/templates/templates.go basicFunctions)
    "json": _json,
    "join": _join,
    "split": lambda s, sep: go_str(s).split(sep) if sep else list(go_str(s)),
    "title": _title,
    "lower": lambda s: go_str(s).lower(),
    "upper": lambda s: go_str(s).upper(),
    "pad": _pad,
    "truncate": lambda s, n: go_str(s)[:n],
}

# Docker's HeaderFunctions: a table's header row keeps the column names intact
HEADER_FUNCS = {**FUNCS, **{name: (lambda v, *_: v) for name in
                            ("json", "split", "join", "title", "lower", "upper", "truncate")}}
