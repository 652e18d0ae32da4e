"""Pure rendering for the CLI: docker's tables, natural sort, filters and `--format`.

Nothing here talks to the Engine or the kernel, so all of it is unit-tested
without root (tests/cli/test_render.py). Imports stay stdlib + netkit.errors
so that `netkit --help` remains cheap.

The `--format` language is a small, safe subset of Go's text/template as
docker uses it: ``{{.Field.Sub}}``, ``{{json .X}}``, ``{{index .X 0 "k"}}``,
``{{(index .IPAM.Config 0).Subnet}}``, pipelines (``{{.Name | upper}}``),
``{{range}}``/``{{if}}``/``{{with}}`` ... ``{{else}}`` ... ``{{end}}``,
variables (``{{range $k, $v := .Containers}}``, ``$``) and ``{{-``/``-}}``
trimming. There is no method call and no attribute access outside dicts.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable, Iterable, Mapping, Sequence

from netkit.errors import InvalidArgument

# -- tables ---------------------------------------------------------------------

#: docker's table writer: tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)
MIN_WIDTH = 10
PADDING = 3


def natural_key(text: str) -> tuple:
    """Sort key for docker's natural order: ``net2`` < ``net10``."""
    parts = re.split(r"(\d+)", text)
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts))


def tabulate(rows: Sequence[Sequence[str]]) -> list[str]:
    """Align cells like Go's tabwriter with docker's settings.

    Every cell but the last of its row is padded to the column's width:
    ``max(10, longest cell + 3)``. Trailing blanks are stripped.
    """
    widths: dict[int, int] = {}
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths.get(i, MIN_WIDTH), len(cell) + PADDING)
    lines = []
    for row in rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        lines.append(("".join(cells) + (row[-1] if row else "")).rstrip())
    return lines


def ellipsis(text: str, width: int) -> str:
    """docker's formatter.Ellipsis: cut to `width` characters, ending in '…'."""
    return text if len(text) <= width else text[: width - 1] + "…"


def go_bool(value: bool) -> str:
    return "true" if value else "false"


# -- filters (`-f key=value`) --------------------------------------------------------

NETWORK_FILTERS = ("driver", "id", "label", "name", "scope", "type")
BUILTIN = ("bridge", "host", "none")


def parse_filters(values: Iterable[str], allowed: Sequence[str]) -> dict[str, list[str]]:
    """``["name=a", "name=b", "driver=bridge"]`` -> ``{"name": ["a", "b"], "driver": [...]}``."""
    out: dict[str, list[str]] = {}
    for item in values:
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep or not key:
            raise InvalidArgument(f"bad format of filter (expected name=value): {item}")
        if key not in allowed:
            raise InvalidArgument(f"invalid filter '{key}'")
        if key == "type" and value not in ("custom", "builtin"):
            raise InvalidArgument(f"invalid filter: 'type'='{value}'")
        out.setdefault(key, []).append(value)
    return out


def _label_match(labels: Mapping[str, str], wanted: str) -> bool:
    key, sep, value = wanted.partition("=")
    return key in labels and (not sep or labels[key] == value)


def match_network(net: Any, filters: Mapping[str, list[str]]) -> bool:
    """Same-key filters are ORed, different keys ANDed (docker's filters.Args)."""
    scope = getattr(net.scope, "value", net.scope)
    tests: dict[str, Callable[[str], bool]] = {
        "driver": lambda v: net.driver == v,
        "id": lambda v: v in net.id,
        "name": lambda v: v in net.name,
        "scope": lambda v: scope == v,
        "label": lambda v: _label_match(net.labels, v),
        "type": lambda v: (net.name in BUILTIN) == (v == "builtin"),
    }
    return all(any(tests[key](v) for v in values) for key, values in filters.items())


# -- rows for `ls` / `ps` ----------------------------------------------------------------

NETWORK_HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
                   "IPv4": "IPV4", "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS",
                   "CreatedAt": "CREATED AT"}
NETWORK_TABLE = "{{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"

CONTAINER_HEADERS = {"ID": "CONTAINER ID", "Name": "NAME", "Names": "NAMES", "Command": "COMMAND",
                     "Status": "STATUS", "State": "STATE", "Networks": "NETWORKS",
                     "Hostname": "HOSTNAME", "CreatedAt": "CREATED AT"}
CONTAINER_TABLE = "{{.ID}}\t{{.Name}}\t{{.Command}}\t{{.Status}}\t{{.Networks}}"


def labels_text(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def network_row(net: Any, trunc: bool = True) -> dict[str, str]:
    return {"ID": net.id[:12] if trunc else net.id, "Name": net.name, "Driver": net.driver,
            "Scope": getattr(net.scope, "value", net.scope), "IPv4": go_bool(net.ipv4),
            "IPv6": go_bool(net.ipv6), "Internal": go_bool(net.internal),
            "Labels": labels_text(net.labels), "CreatedAt": net.created}


def container_status(ctr: Any) -> str:
    """``docker ps`` STATUS: ``Up 3 minutes``, ``Exited (0) 2 seconds ago``, ``Created``..."""
    from netkit.lifecycle import status_text
    return status_text(getattr(ctr.state, "value", ctr.state), exit_code=ctr.exit_code,
                       started=getattr(ctr, "started_at", None),
                       finished=getattr(ctr, "finished_at", None))


def container_networks(ctr: Any) -> str:
    names = sorted(ep.network_name or ep.network_id[:12] for ep in ctr.endpoints)
    return ",".join(names) if names else ctr.network_mode


def container_row(ctr: Any, trunc: bool = True) -> dict[str, str]:
    command = " ".join(ctr.command)
    if trunc:
        command = ellipsis(command, 20)
    return {"ID": ctr.id[:12] if trunc else ctr.id, "Name": ctr.name, "Names": ctr.name,
            "Command": json.dumps(command, ensure_ascii=False),
            "Status": container_status(ctr), "State": getattr(ctr.state, "value", ctr.state),
            "Networks": container_networks(ctr), "Hostname": ctr.hostname,
            "CreatedAt": ctr.created}


def format_rows(fmt: str | None, rows: Sequence[Mapping[str, Any]], headers: Mapping[str, str],
                default: str) -> list[str]:
    """Lines for `ls`/`ps`: ``table`` (default), ``table TEMPLATE``, ``json`` or ``TEMPLATE``."""
    fmt = fmt or "table"
    if fmt.strip() == "json":
        return [json.dumps(row, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
                for row in rows]
    table = fmt.startswith("table")
    text = (fmt[len("table"):] if table else fmt).strip(" ") or default
    text = text.replace("\\t", "\t").replace("\\n", "\n")     # as docker's preFormat does
    tmpl = Template(text)
    if not table:
        return [tmpl.render(row) for row in rows]
    return tabulate([tmpl.render(r).split("\t") for r in [headers, *rows]])


def to_json(items: Any) -> str:
    """`inspect` output: a JSON array indented by 4, like docker's json.MarshalIndent."""
    return json.dumps(items, indent=4, ensure_ascii=False)


# -- Go-ish values ------------------------------------------------------------------------


class _Missing:
    def __repr__(self) -> str:
        return "<no value>"


MISSING: Any = _Missing()


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


def _truthy(value: Any) -> bool:
    return value is not MISSING and bool(value)


# -- the template subset ------------------------------------------------------------------


class TemplateError(InvalidArgument):
    """Invalid --format template."""


def _json(value: Any) -> str:
    return json.dumps(None if value is MISSING else value, ensure_ascii=False, separators=(",", ":"))


def _index(value: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(value, Mapping):
            value = value.get(key, MISSING)
        elif isinstance(value, (list, tuple, str)) and isinstance(key, int):
            if not 0 <= key < len(value):
                raise TemplateError(f"error calling index: index out of range: {key}")
            value = value[key]
        else:
            raise TemplateError(f"error calling index: cannot index {go_str(value)} with {key!r}")
    return value


def _join(items: Any, sep: str) -> str:
    return sep.join(go_str(i) for i in items or ())


FUNCS: dict[str, Callable[..., Any]] = {
    "json": _json,
    "index": _index,
    "join": _join,
    "len": lambda v: len(v) if v not in (None, MISSING) else 0,
    "upper": lambda s: go_str(s).upper(),
    "lower": lambda s: go_str(s).lower(),
    "title": lambda s: go_str(s).title(),
    "split": lambda s, sep: go_str(s).split(sep),
    "truncate": lambda s, n: go_str(s)[:n],
    "print": lambda *a: "".join(go_str(x) for x in a),
    "println": lambda *a: " ".join(go_str(x) for x in a) + "\n",
}

_TOKEN = re.compile(r"""
    \s*(?:
      (?P<str>"(?:[^"\\]|\\.)*"|`[^`]*`)
    | (?P<num>-?\d+)
    | (?P<field>(?:\.[A-Za-z_]\w*)+|\.)
    | (?P<var>\$\w*(?:\.[A-Za-z_]\w*)*)
    | (?P<ident>[A-Za-z_]\w*)
    | (?P<punct>:=|[()|,=])
    )""", re.X)


def _lex(body: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    while pos < len(body):
        if body[pos:].strip() == "":
            break
        m = _TOKEN.match(body, pos)
        if not m or m.end() == pos:
            raise TemplateError(f"template parsing error: unexpected {body[pos:].strip()!r}")
        kind = m.lastgroup or ""
        tokens.append((kind, m.group(kind)))
        pos = m.end()
        if kind in ("field", "var") and pos < len(body) and body[pos] == ".":
            raise TemplateError(f"template parsing error: bad field in {body!r}")
    return tokens


class _Parser:
    """Recursive descent over one action's tokens: pipeline := command ('|' command)*."""

    def __init__(self, tokens: list[tuple[str, str]], source: str) -> None:
        self.tokens, self.pos, self.source = tokens, 0, source

    def error(self, what: str) -> TemplateError:
        return TemplateError(f"template parsing error: {what} in {{{{{self.source}}}}}")

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise self.error("unexpected end")
        self.pos += 1
        return tok

    def pipeline(self) -> list:
        commands = [self.command()]
        while self.peek() == ("punct", "|"):
            self.take()
            commands.append(self.command())
        for cmd in commands[1:]:
            if cmd[0][0] != "func":
                raise self.error("non-function in pipeline")
        return commands

    def command(self) -> list:
        operands = []
        while (tok := self.peek()) is not None and tok not in (("punct", "|"), ("punct", ")")):
            operands.append(self.operand())
        if not operands:
            raise self.error("missing value")
        if len(operands) > 1 and operands[0][0] != "func":
            raise self.error("can't give argument to non-function")
        return operands

    def operand(self) -> tuple:
        kind, text = self.take()
        if kind == "str":
            return ("lit", json.loads(text) if text[0] == '"' else text[1:-1])
        if kind == "num":
            return ("lit", int(text))
        if kind == "field":
            return ("field", [p for p in text.split(".") if p])
        if kind == "var":
            name, *path = text.split(".")
            return ("var", name, path)
        if kind == "ident":
            if text in ("true", "false"):
                return ("lit", text == "true")
            if text == "nil":
                return ("lit", None)
            if text not in FUNCS:
                raise self.error(f'function "{text}" not defined')
            return ("func", text)
        if text == "(":
            inner = self.pipeline()
            if self.take() != ("punct", ")"):
                raise self.error("unclosed left paren")
            path: list[str] = []
            if (tok := self.peek()) is not None and tok[0] == "field" and tok[1] != ".":
                path = [p for p in self.take()[1].split(".") if p]
            return ("sub", inner, path)
        raise self.error(f"unexpected {text!r}")


def _split_actions(text: str) -> list[tuple[str, str]]:
    """``[("text", s) | ("action", body)]`` with ``{{-`` / ``-}}`` trimming applied."""
    parts: list[tuple[str, str]] = []
    pos = 0
    trim_next = False
    while True:
        start = text.find("{{", pos)
        chunk = text[pos:] if start < 0 else text[pos:start]
        if trim_next:
            chunk = chunk.lstrip()
        if start < 0:
            parts.append(("text", chunk))
            return parts
        body_start = start + 2
        if text.startswith("- ", body_start) or text.startswith("-\t", body_start):
            chunk = chunk.rstrip()
            body_start += 1
        parts.append(("text", chunk))
        end, quote = body_start, None
        while end < len(text):                       # find "}}" outside string literals
            c = text[end]
            if quote:
                if c == "\\" and quote == '"':
                    end += 1
                elif c == quote:
                    quote = None
            elif c in "\"`":
                quote = c
            elif text.startswith("}}", end):
                break
            end += 1
        else:
            raise TemplateError(f"template parsing error: unclosed action in {text!r}")
        body = text[body_start:end]
        trim_next = body.endswith((" -", "\t-"))
        if trim_next:
            body = body[:-1]
        parts.append(("action", body.strip()))
        pos = end + 2


class Template:
    """A parsed `--format` template; `render(data)` is pure."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.nodes, _ = self._parse(_split_actions(text), 0, top=True)

    def _parse(self, parts: list[tuple[str, str]], i: int, top: bool = False):
        nodes: list[tuple] = []
        while i < len(parts):
            kind, body = parts[i]
            i += 1
            if kind == "text":
                if body:
                    nodes.append(("text", body))
                continue
            if body.startswith("/*"):                      # {{/* comment */}}
                continue
            word = body.split(None, 1)[0] if body else ""
            if word in ("end", "else"):
                if top:
                    raise TemplateError(f"template parsing error: unexpected {{{{{word}}}}}")
                return nodes, (word, i)
            if word in ("range", "if", "with"):
                tokens = _lex(body[len(word):])
                variables: list[str] = []
                if word == "range" and ("punct", ":=") in tokens:
                    cut = tokens.index(("punct", ":="))
                    variables = [t[1] for t in tokens[:cut] if t[0] == "var"]
                    if not 1 <= len(variables) <= 2:
                        raise TemplateError(f"template parsing error: bad range in {{{{{body}}}}}")
                    tokens = tokens[cut + 1:]
                pipe = self._pipeline(tokens, body)
                inner, (stop, i) = self._parse(parts, i)
                other: list = []
                if stop == "else":
                    other, (stop, i) = self._parse(parts, i)
                    if stop != "end":
                        raise TemplateError("template parsing error: expected {{end}}")
                nodes.append((word, pipe, variables, inner, other))
                continue
            tokens = _lex(body)
            if len(tokens) > 2 and tokens[0][0] == "var" and tokens[1] == ("punct", ":="):
                nodes.append(("set", tokens[0][1], self._pipeline(tokens[2:], body)))
            else:
                nodes.append(("out", self._pipeline(tokens, body)))
        if not top:
            raise TemplateError("template parsing error: unexpected EOF, missing {{end}}")
        return nodes, None

    @staticmethod
    def _pipeline(tokens: list[tuple[str, str]], source: str) -> list:
        parser = _Parser(tokens, source)
        pipe = parser.pipeline()
        if parser.peek() is not None:
            raise parser.error(f"unexpected {parser.peek()[1]!r}")    # type: ignore[index]
        return pipe

    def render(self, data: Any) -> str:
        out: list[str] = []
        self._run(self.nodes, data, {"$": data}, out)
        return "".join(out)

    # -- evaluation --------------------------------------------------------------------
    def _run(self, nodes: list, dot: Any, scope: dict[str, Any], out: list[str]) -> None:
        for node in nodes:
            kind = node[0]
            if kind == "text":
                out.append(node[1])
            elif kind == "out":
                out.append(go_str(self._pipe(node[1], dot, scope)))
            elif kind == "set":
                scope[node[1]] = self._pipe(node[2], dot, scope)
            elif kind == "if":
                value = self._pipe(node[1], dot, scope)
                self._run(node[3] if _truthy(value) else node[4], dot, dict(scope), out)
            elif kind == "with":
                value = self._pipe(node[1], dot, scope)
                if _truthy(value):
                    self._run(node[3], value, dict(scope), out)
                else:
                    self._run(node[4], dot, dict(scope), out)
            elif kind == "range":
                self._range(node, dot, scope, out)

    def _range(self, node: tuple, dot: Any, scope: dict[str, Any], out: list[str]) -> None:
        _, pipe, variables, body, other = node
        value = self._pipe(pipe, dot, scope)
        if isinstance(value, Mapping):
            items = [(k, value[k]) for k in sorted(value)]
        elif isinstance(value, (list, tuple)):
            items = list(enumerate(value))
        elif value in (None, MISSING):
            items = []
        else:
            raise TemplateError(f"range can't iterate over {go_str(value)}")
        if not items:
            self._run(other, dot, dict(scope), out)
        for key, item in items:
            inner = dict(scope)
            if len(variables) == 1:
                inner[variables[0]] = item
            elif len(variables) == 2:
                inner[variables[0]], inner[variables[1]] = key, item
            self._run(body, item, inner, out)

    def _pipe(self, pipe: list, dot: Any, scope: dict[str, Any]) -> Any:
        value: Any = MISSING
        for n, command in enumerate(pipe):
            head = command[0]
            if head[0] == "func":
                args = [self._arg(op, dot, scope) for op in command[1:]]
                if n:
                    args.append(value)
                try:
                    value = FUNCS[head[1]](*args)
                except TemplateError:
                    raise
                except Exception as exc:
                    raise TemplateError(f"error calling {head[1]}: {exc}") from None
            else:
                value = self._arg(head, dot, scope)
        return value

    def _arg(self, op: tuple, dot: Any, scope: dict[str, Any]) -> Any:
        kind = op[0]
        if kind == "lit":
            return op[1]
        if kind == "field":
            return _lookup(dot, op[1])
        if kind == "var":
            if op[1] not in scope:
                raise TemplateError(f"undefined variable: {op[1]}")
            return _lookup(scope[op[1]], op[2])
        if kind == "sub":
            return _lookup(self._pipe(op[1], dot, scope), op[2])
        return FUNCS[op[1]]()                              # a function without arguments


def _lookup(value: Any, path: list[str]) -> Any:
    for key in path:
        if isinstance(value, Mapping):
            value = value.get(key, MISSING)
        elif value is None or value is MISSING:
            return MISSING
        else:
            raise TemplateError(f"can't evaluate field {key} in {go_str(value)}")
    return value


def render_each(fmt: str, items: Iterable[Any]) -> list[str]:
    """`inspect -f`: the template applied to each object, one output per object."""
    tmpl = Template(fmt)
    return [tmpl.render(item) for item in items]
