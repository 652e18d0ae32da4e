"""`--format`: the part of Go's text/template that Docker's CLI uses (pure).

``{{.Field.Sub}}``, pipelines (``{{.Name | upper}}``), parenthesised
sub-pipelines (``{{(index .IPAM.Config 0).Subnet}}``), ``{{range}}`` /
``{{if}}`` / ``{{with}}`` ... ``{{else}}`` ... ``{{end}}``, variables
(``{{range $k, $v := .Containers}}``, ``$``), ``{{-``/``-}}`` trimming and
comments, ``{{else if}}`` chains. The functions (Go's builtins and
Docker's) are in `netkit.cli.gofuncs`.

The data are the JSON objects `inspect` prints, so templates run as Docker's
raw-JSON fallback does (``missingkey=error``): a missing field fails with
Go's message, ``template: :1:2: executing "" at <.Nope>: map has no entry
for key "Nope"``, which the CLI prints after ``template parsing error:``.
A Go field name whose JSON name differs (``.ID`` for ``Id``) is accepted.
There is no method call and no attribute access outside dicts.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable, Iterable, Mapping

from netkit.cli.gofuncs import (FUNCS, HEADER_FUNCS, MISSING, ExecError,  # noqa: F401
                                go_bool, go_str, go_type, truthy)
from netkit.errors import InvalidArgument

# Go field names of Docker's typed structs whose JSON name differs.
FIELD_ALIASES = {"ID": "Id", "AuxAddress": "AuxiliaryAddresses"}


class TemplateError(InvalidArgument):
    """Invalid --format template, or one that fails on the data."""


# -- parsing --------------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    \s*(?:
      (?P<str>"(?:[^"\\]|\\.)*"|`[^`]*`)
    | (?P<num>-?\d+)
    | (?P<field>(?:\.[A-Za-z_]\w*)+|\.)
    | (?P<var>\$\w*(?:\.[A-Za-z_]\w*)*)
    | (?P<ident>[A-Za-z_]\w*)
    | (?P<punct>:=|[()|,=])
    )""", re.X)


def _lex(body: str, base: int) -> list[tuple[str, str, int]]:
    """(kind, text, absolute position) of each token of an action's body."""
    tokens: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(body):
        if body[pos:].strip() == "":
            break
        m = _TOKEN.match(body, pos)
        if not m or m.end() == pos:
            raise TemplateError(f"template parsing error: unexpected {body[pos:].strip()!r}")
        kind = m.lastgroup or ""
        tokens.append((kind, m.group(kind), base + m.start(kind)))
        pos = m.end()
        if kind in ("field", "var") and pos < len(body) and body[pos] == ".":
            raise TemplateError(f"template parsing error: bad field in {body!r}")
    return tokens


class _Parser:
    """Recursive descent over one action's tokens: pipeline := command ('|' command)*.

    Operands: ("lit", value, pos, src), ("field", path, pos, src), ("var", name, path,
    pos, src), ("func", name, pos, src), ("sub", pipeline, path, pos, src).
    """

    def __init__(self, tokens: list[tuple[str, str, int]], source: str) -> None:
        self.tokens, self.pos, self.source = tokens, 0, source

    def error(self, what: str) -> TemplateError:
        return TemplateError(f"template parsing error: {what} in {{{{{self.source}}}}}")

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos][:2] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str, int]:
        if self.pos >= len(self.tokens):
            raise self.error("unexpected end")
        self.pos += 1
        return self.tokens[self.pos - 1]

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
        kind, text, pos = self.take()
        if kind == "str":
            return ("lit", json.loads(text) if text[0] == '"' else text[1:-1], pos, text)
        if kind == "num":
            return ("lit", int(text), pos, text)
        if kind == "field":
            return ("field", [p for p in text.split(".") if p], pos, text)
        if kind == "var":
            name, *path = text.split(".")
            return ("var", name, path, pos, text)
        if kind == "ident":
            if text in ("true", "false"):
                return ("lit", text == "true", pos, text)
            if text == "nil":
                return ("lit", None, pos, text)
            if text not in FUNCS:
                raise TemplateError(f'template parsing error: template: :1: function "{text}" not defined')
            return ("func", text, pos, text)
        if text == "(":
            inner = self.pipeline()
            if self.take()[:2] != ("punct", ")"):
                raise self.error("unclosed left paren")
            path: list[str] = []
            src = "(" + _pipe_source(inner) + ")"
            if (tok := self.peek()) is not None and tok[0] == "field" and tok[1] != ".":
                field = self.take()[1]
                path, src = [p for p in field.split(".") if p], src + field
            return ("sub", inner, path, pos, src)
        raise self.error(f"unexpected {text!r}")


def _pipe_source(pipe: list) -> str:
    return " | ".join(" ".join(op[-1] for op in cmd) for cmd in pipe)


def _split_actions(text: str) -> list[tuple[str, str, int]]:
    """``[("text", s, pos) | ("action", body, pos)]`` with ``{{-`` / ``-}}`` trimming
    applied; an action's pos is where its body starts in `text`."""
    parts: list[tuple[str, str, int]] = []
    pos = 0
    trim_next = False
    while True:
        start = text.find("{{", pos)
        chunk = text[pos:] if start < 0 else text[pos:start]
        if trim_next:
            chunk = chunk.lstrip()
        if start < 0:
            parts.append(("text", chunk, pos))
            return parts
        body_start = start + 2
        if text.startswith("- ", body_start) or text.startswith("-\t", body_start):
            chunk = chunk.rstrip()
            body_start += 1
        parts.append(("text", chunk, pos))
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
        lead = len(body) - len(body.lstrip())
        parts.append(("action", body.strip(), body_start + lead))
        pos = end + 2


class Template:
    """A parsed `--format` template; `render(data)` is pure."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.nodes, _ = self._parse(_split_actions(text), 0, top=True)

    def _parse(self, parts: list[tuple[str, str, int]], i: int, top: bool = False):
        """Nodes up to the {{end}} / {{else ...}} closing this level: (nodes, (word, next
        index, that action's body, its position)), or (nodes, None) at the top."""
        nodes: list[tuple] = []
        while i < len(parts):
            kind, body, at = parts[i]
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
                return nodes, (word, i, body, at)
            if word in ("range", "if", "with"):
                node, i = self._block(word, body, at, parts, i)
                nodes.append(node)
                continue
            tokens = _lex(body, at)
            if len(tokens) > 2 and tokens[0][0] == "var" and tokens[1][:2] == ("punct", ":="):
                nodes.append(("set", tokens[0][1], self._pipeline(tokens[2:], body)))
            else:
                nodes.append(("out", self._pipeline(tokens, body)))
        if not top:
            raise TemplateError("template parsing error: unexpected EOF, missing {{end}}")
        return nodes, None

    def _block(self, word: str, body: str, at: int, parts: list[tuple[str, str, int]],
               i: int) -> tuple[tuple, int]:
        """``{{range|if|with PIPELINE}} ... [{{else [if|with PIPELINE]}} ...] {{end}}``."""
        tokens = _lex(body[len(word):], at + len(word))
        variables: list[str] = []
        if word == "range" and any(t[:2] == ("punct", ":=") for t in tokens):
            cut = [t[:2] for t in tokens].index(("punct", ":="))
            variables = [t[1] for t in tokens[:cut] if t[0] == "var"]
            if not 1 <= len(variables) <= 2:
                raise TemplateError(f"template parsing error: bad range in {{{{{body}}}}}")
            tokens = tokens[cut + 1:]
        pipe = self._pipeline(tokens, body)
        inner, (stop, i, stop_body, stop_at) = self._parse(parts, i)
        other: list = []
        if stop == "else":
            rest = stop_body[len("else"):].lstrip()
            chained = rest.split(None, 1)[0] if rest else ""
            if chained in ("if", "with") and word != "range":      # {{else if X}}: shares {{end}}
                node, i = self._block(chained, rest, stop_at + len(stop_body) - len(rest), parts, i)
                other = [node]
            else:
                other, (stop, i, _, _) = self._parse(parts, i)
                if stop != "end":
                    raise TemplateError("template parsing error: expected {{end}}")
        return (word, pipe, variables, inner, other), i

    @staticmethod
    def _pipeline(tokens: list[tuple[str, str, int]], source: str) -> list:
        parser = _Parser(tokens, source)
        pipe = parser.pipeline()
        if parser.peek() is not None:
            raise parser.error(f"unexpected {parser.peek()[1]!r}")    # type: ignore[index]
        return pipe

    def render(self, data: Any, *, header: bool = False) -> str:
        """The output for `data`; `header`: a table's header row (Docker's HeaderFunctions)."""
        out: list[str] = []
        try:
            _Exec(HEADER_FUNCS if header else FUNCS).run(self.nodes, data, {"$": data}, out)
        except ExecError as exc:
            raise TemplateError(f"template parsing error: {self._where(exc)}{exc.message}") from None
        return "".join(out)

    def _where(self, exc: ExecError) -> str:
        """Go's ``template: :LINE:COL: executing "" at <NODE>: `` (COL: byte offset in its line)."""
        if exc.pos < 0:
            return 'template: :1:0: executing "" at <>: '
        before = self.text[:exc.pos]
        line = before.count("\n") + 1
        col = exc.pos - (before.rfind("\n") + 1) if "\n" in before else exc.pos
        return f'template: :{line}:{col}: executing "" at <{exc.source}>: '


class _Exec:
    """Evaluation of parsed nodes (Go's exec.go state)."""

    def __init__(self, funcs: dict[str, Callable[..., Any]]) -> None:
        self.funcs = funcs

    def run(self, nodes: list, dot: Any, scope: dict[str, Any], out: list[str]) -> None:
        for node in nodes:
            kind = node[0]
            if kind == "text":
                out.append(node[1])
            elif kind == "out":
                out.append(go_str(self.pipe(node[1], dot, scope)))
            elif kind == "set":
                scope[node[1]] = self.pipe(node[2], dot, scope)
            elif kind == "if":
                value = self.pipe(node[1], dot, scope)
                self.run(node[3] if truthy(value) else node[4], dot, dict(scope), out)
            elif kind == "with":
                value = self.pipe(node[1], dot, scope)
                if truthy(value):
                    self.run(node[3], value, dict(scope), out)
                else:
                    self.run(node[4], dot, dict(scope), out)
            elif kind == "range":
                self.range(node, dot, scope, out)

    def range(self, node: tuple, dot: Any, scope: dict[str, Any], out: list[str]) -> None:
        _, pipe, variables, body, other = node
        value = self.pipe(pipe, dot, scope)
        if isinstance(value, Mapping):
            items = [(k, value[k]) for k in sorted(value)]
        elif isinstance(value, (list, tuple)):
            items = list(enumerate(value))
        elif value in (None, MISSING):
            items = []
        else:
            raise ExecError(f"range can't iterate over {go_str(value)}", pipe[0][0][-2],
                             _pipe_source(pipe))
        if not items:
            self.run(other, dot, dict(scope), out)
        for key, item in items:
            inner = dict(scope)
            if len(variables) == 1:
                inner[variables[0]] = item
            elif len(variables) == 2:
                inner[variables[0]], inner[variables[1]] = key, item
            self.run(body, item, inner, out)

    def pipe(self, pipe: list, dot: Any, scope: dict[str, Any]) -> Any:
        value: Any = MISSING
        for n, command in enumerate(pipe):
            if command[0][0] == "func":
                value = self.call(command, dot, scope, [value] if n else [])
            else:
                value = self.arg(command[0], dot, scope)
        return value

    def call(self, command: list, dot: Any, scope: dict[str, Any], final: list) -> Any:
        name, pos, ops = command[0][1], command[0][-2], command[1:]
        source = " ".join(op[-1] for op in command)
        if name in ("and", "or"):                   # Go 1.18+: evaluated lazily
            if not ops and not final:
                raise ExecError(f"wrong number of args for {name}: want at least 1 got 0", pos, source)
            value: Any = MISSING
            for op in ops:
                value = self.arg(op, dot, scope)
                if truthy(value) != (name == "and"):
                    return value
            return final[0] if final else value
        args = [self.arg(op, dot, scope) for op in ops] + final
        try:
            return self.funcs[name](*args)
        except ExecError as exc:
            if name == "join" and args and not isinstance(args[0], (list, tuple)) and ops:
                raise ExecError(exc.message, ops[0][-2], ops[0][-1]) from None
            raise ExecError(f"error calling {name}: {exc.message}", pos, source) from None
        except TypeError:
            raise ExecError(f"wrong number of args for {name}: got {len(args)}", pos, source) from None
        except Exception as exc:                    # noqa: BLE001 - a Go runtime error, as text
            raise ExecError(f"error calling {name}: {exc}", pos, source) from None

    def arg(self, op: tuple, dot: Any, scope: dict[str, Any]) -> Any:
        kind, pos, source = op[0], op[-2], op[-1]
        if kind == "lit":
            return op[1]
        if kind == "field":
            return _lookup(dot, op[1], pos, source)
        if kind == "var":
            if op[1] not in scope:
                raise ExecError(f"undefined variable: {op[1]}", pos, source)
            return _lookup(scope[op[1]], op[2], pos, source)
        if kind == "sub":
            return _lookup(self.pipe(op[1], dot, scope), op[2], pos, source)
        return self.call([op], dot, scope, [])             # a function without arguments


def _lookup(value: Any, path: list[str], pos: int, source: str) -> Any:
    for key in path:
        if isinstance(value, Mapping):
            if key not in value and FIELD_ALIASES.get(key) in value:
                key = FIELD_ALIASES[key]
            if key not in value:
                raise ExecError(f'map has no entry for key "{key}"', pos, source)
            value = value[key]
        elif value is None or value is MISSING:
            raise ExecError(f"nil pointer evaluating interface {{}}.{key}", pos, source)
        else:
            raise ExecError(f"can't evaluate field {key} in type {go_type(value)}", pos, source)
    return value


def render_each(fmt: str, items: Iterable[Any]) -> list[str]:
    """`inspect -f`: the template applied to each object, one output per object."""
    tmpl = Template(fmt)
    return [tmpl.render(item) for item in items]
