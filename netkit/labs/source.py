"""Reading lab files: YAML with line numbers, `${VAR}` interpolation, `.env`.

Pure: files in, plain Python values out, plus a `Where` map from each key
path (``("services", "web", "ports", 0)``) to the file and line it came
from, so every later error can name both.

Scalars follow YAML 1.2's core schema, as Compose (yaml.v3) does, not
PyYAML's YAML 1.1: ``yes``/``on`` stay strings and ``22:22`` is not the
sexagesimal integer 1342; like yaml.v3, ``0440`` is still octal (file modes).
Duplicate keys are errors. Anchors, aliases and
``<<`` merge keys work.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import yaml

from netkit.errors import InvalidArgument

Path = tuple  # of str keys and int indices


class LabFileError(InvalidArgument):
    """The lab file is invalid."""

    def __init__(self, message: str, file: str = "", line: int = 0, key: str = "") -> None:
        self.file, self.line, self.key, self.reason = file, line, key, message
        where = f"{file}:{line}: " if file and line else (f"{file}: " if file else "")
        super().__init__(f"{where}{key + ': ' if key else ''}{message}")


def dotted(path: Iterable[Any]) -> str:
    """``("services", "web", "ports", 0)`` -> ``services.web.ports[0]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


@dataclass
class Where:
    """Key path -> (file, line). Lookups fall back to the nearest known parent."""

    spots: dict[Path, tuple[str, int]] = field(default_factory=dict)
    default_file: str = ""

    def of(self, path: Path) -> tuple[str, int]:
        path = tuple(path)
        while path:
            if path in self.spots:
                return self.spots[path]
            path = path[:-1]
        return self.spots.get((), (self.default_file, 0))

    def error(self, path: Path, message: str) -> LabFileError:
        file, line = self.of(path)
        return LabFileError(message, file, line, dotted(path))

    def move(self, old: Path, new: Path) -> None:
        """Positions of the subtree at `old` now also describe `new` (list -> map forms)."""
        n = len(old)
        for p, spot in list(self.spots.items()):
            if p[:n] == tuple(old):
                self.spots.setdefault(tuple(new) + p[n:], spot)

    def update(self, other: "Where") -> None:
        self.spots.update(other.spots)


# -- YAML with positions -------------------------------------------------------------

class _Loader(yaml.SafeLoader):
    """Every plain scalar arrives tagged str; we type it ourselves (YAML 1.2 core)."""


_Loader.yaml_implicit_resolvers = {}
_Loader.add_implicit_resolver("tag:yaml.org,2002:merge", re.compile(r"^(?:<<)$"), ["<"])

_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"^[-+]?[0-9]+$")
_OCT = re.compile(r"^0o[0-7]+$")
_OCT_C = re.compile(r"^0[0-7]+$")          # yaml.v3 reads 0440 as octal (file modes), as Compose does
_HEX = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_STR_TAG = "tag:yaml.org,2002:str"


def _scalar(loader: _Loader, node: yaml.ScalarNode) -> Any:
    if node.tag != _STR_TAG:                      # an explicit tag: !!int "3" ...
        return loader.construct_object(node, deep=True)
    text = node.value
    if node.style is not None:                    # quoted or block: always a string
        return text
    if _NULL.match(text):
        return None
    if text in _BOOL:
        return _BOOL[text]
    if _OCT_C.match(text):
        return int(text, 8)
    if _INT.match(text):
        return int(text)
    if _OCT.match(text):
        return int(text[2:], 8)
    if _HEX.match(text):
        return int(text, 16)
    if _FLOAT.match(text):
        return float(text)
    return text


_MERGE_TAG = "tag:yaml.org,2002:merge"
MAX_FILE_BYTES = 4 << 20      # a lab file larger than this is refused before it is parsed
MAX_VALUES = 200_000          # values after alias and merge expansion (an alias bomb: refused)
EXCESSIVE = "document contains excessive aliasing"     # yaml.v3's (Compose's) wording


class _Budget:
    """Values built so far, so that aliases cannot expand a small file without bound."""

    def __init__(self, file: str) -> None:
        self.left, self.file = MAX_VALUES, file
        self.sizes: dict[int, int] = {}

    def spend(self, node: yaml.Node, n: int = 1) -> None:
        self.left -= n
        if self.left < 0:
            raise LabFileError(EXCESSIVE, self.file, node.start_mark.line + 1)

    def merged_size(self, node: yaml.Node) -> int:
        """The pairs a mapping has once its ``<<`` merges are flattened (memoized; never
        builds them): checked before PyYAML's flatten_mapping copies them."""
        key = id(node)
        if key in self.sizes:
            return self.sizes[key]
        self.sizes[key] = 0                   # a merge cycle counts nothing more
        total = 0
        for knode, vnode in node.value:
            if isinstance(knode, yaml.ScalarNode) and knode.tag == _MERGE_TAG:
                subs = vnode.value if isinstance(vnode, yaml.SequenceNode) else [vnode]
                total += sum(self.merged_size(sub) for sub in subs
                             if isinstance(sub, yaml.MappingNode))
            else:
                total += 1
            if total > MAX_VALUES:
                raise LabFileError(EXCESSIVE, self.file, node.start_mark.line + 1)
        self.sizes[key] = total
        return total


def _key(loader: _Loader, knode: yaml.Node, path: Path, file: str) -> str:
    key = _scalar(loader, knode) if isinstance(knode, yaml.ScalarNode) else None
    if key is None or isinstance(key, (list, dict)):
        raise LabFileError("mapping keys must be strings", file, knode.start_mark.line + 1, dotted(path))
    return str(key).lower() if isinstance(key, bool) else str(key)


def _walk(loader: _Loader, node: yaml.Node, path: Path, where: Where, file: str,
          budget: _Budget) -> Any:
    budget.spend(node)
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for knode, _ in node.value:               # duplicates among the keys written here
            if isinstance(knode, yaml.ScalarNode) and knode.tag != _MERGE_TAG:
                key = _key(loader, knode, path, file)
                line = knode.start_mark.line + 1
                if key in seen:
                    raise LabFileError(f"duplicate key (first defined at line {seen[key]})", file,
                                       line, dotted(path + (key,)))
                seen[key] = line
        budget.merged_size(node)
        loader.flatten_mapping(node)              # << merge keys: merged first, ours override
        out: dict[str, Any] = {}
        for knode, vnode in node.value:
            key = _key(loader, knode, path, file)
            sub = path + (key,)
            where.spots[sub] = (file, knode.start_mark.line + 1)
            out[key] = _walk(loader, vnode, sub, where, file, budget)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            where.spots[path + (i,)] = (file, item.start_mark.line + 1)
            items.append(_walk(loader, item, path + (i,), where, file, budget))
        return items
    value = _scalar(loader, node)                 # type: ignore[arg-type]
    if not isinstance(value, (str, int, float, bool, type(None))):
        value = str(value)                        # e.g. an explicit !!timestamp
    return value


def read_text(path: str, what: str = "lab file") -> str:
    """A lab file's text: refused, in one line, when too large or not UTF-8 text."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise InvalidArgument(f"{what} {path} not found") from None
    except OSError as exc:
        raise InvalidArgument(f"cannot read {path}: {exc.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise LabFileError(f"file too large (over {MAX_FILE_BYTES >> 20} MiB)", path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LabFileError(f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                           f"{exc.start})", path) from None
    if "\0" in text:
        raise LabFileError("not a text file (it contains NUL bytes)", path)
    return text


def parse_yaml(text: str, file: str) -> tuple[Any, Where]:
    """YAML text -> (value, Where). Syntax errors name the file and line; aliases that
    would expand beyond MAX_VALUES values are refused (EXCESSIVE) while walking."""
    where = Where(default_file=file)
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as exc:        # a control character, before any parsing
        line = text.count("\n", 0, exc.position) + 1
        raise LabFileError(f"invalid YAML: unacceptable character #x{exc.character:04x}: "
                           "special characters are not allowed", file, line) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return {}, where
        where.spots[()] = (file, node.start_mark.line + 1)
        return _walk(loader, node, (), where, file, _Budget(file)), where
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        raise LabFileError(f"invalid YAML: {exc.problem or exc.context}", file, line) from None
    except yaml.YAMLError as exc:
        raise LabFileError(f"invalid YAML: {exc}", file) from None
    finally:
        loader.dispose()


# -- interpolation -------------------------------------------------------------------

_NAME = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*")
_OPS = (":-", ":?", ":+", "-", "?", "+")


class _Interp:
    def __init__(self, env: Mapping[str, str], where: Where, warnings: list[str]) -> None:
        self.env, self.where, self.warnings = env, where, warnings
        self.warned: set[str] = set()

    def text(self, value: str, path: Path) -> str:
        """Expand one string. Defaults may nest (``${A:-${B}}``), as in Compose."""
        out, i, n = [], 0, len(value)
        while i < n:
            c = value[i]
            if c != "$":
                out.append(c)
                i += 1
                continue
            nxt = value[i + 1:i + 2]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            m = _NAME.match(value, i + 1)
            if m:
                out.append(self.lookup(m.group()))
                i = m.end()
                continue
            if nxt != "{":
                raise self.bad(value, path, "a $ must be followed by a name, {name} or $")
            depth, j = 1, i + 2
            while j < n and depth:
                depth += {"{": 1, "}": -1}.get(value[j], 0)
                j += 1
            if depth:
                raise self.bad(value, path, "missing }")
            out.append(self.braced(value[i + 2:j - 1], value, path))
            i = j
        return "".join(out)

    def bad(self, value: str, path: Path, why: str) -> LabFileError:
        return self.where.error(path, f'invalid interpolation format in "{value}": {why}')

    def braced(self, body: str, value: str, path: Path) -> str:
        m = _NAME.match(body)
        if not m:
            raise self.bad(value, path, f"${{{body}}} is not a variable")
        name, rest = m.group(), body[m.end():]
        if not rest:
            return self.lookup(name)
        op = next((o for o in _OPS if rest.startswith(o)), None)
        if op is None:
            raise self.bad(value, path, f"${{{body}}} is not a variable")
        arg = rest[len(op):]
        have = name in self.env
        val = self.env.get(name, "")
        empty = not have or (op.startswith(":") and val == "")
        if op.endswith("-"):
            return self.text(arg, path) if empty else val
        if op.endswith("+"):
            return "" if empty else self.text(arg, path)
        if empty:                                  # ? and :?
            arg = self.text(arg, path)
            raise self.where.error(path, f"required variable {name} is missing a value"
                                         + (f": {arg}" if arg else ""))
        return val

    def lookup(self, name: str) -> str:
        if name not in self.env and name not in self.warned:
            self.warned.add(name)
            self.warnings.append(f'The "{name}" variable is not set. Defaulting to a blank string.')
        return self.env.get(name, "")

    def walk(self, value: Any, path: Path) -> Any:
        if isinstance(value, dict):
            return {k: self.walk(v, path + (k,)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.walk(v, path + (i,)) for i, v in enumerate(value)]
        if isinstance(value, str) and "$" in value:
            return self.text(value, path)
        return value


def interpolate(value: Any, env: Mapping[str, str], where: Where,
                warnings: list[str] | None = None) -> Any:
    """Compose's `${VAR}`, `$VAR`, `${VAR:-d}`, `${VAR-d}`, `${VAR:?e}`, `${VAR?e}`,
    `${VAR:+a}`, `${VAR+a}` and `$$` in every string value (keys are left alone)."""
    return _Interp(env, where, warnings if warnings is not None else []).walk(value, ())


# -- .env ------------------------------------------------------------------------------

_ENV_LINE = re.compile(r"^\s*(?:export\s+)?(?P<key>[A-Za-z_][A-Za-z0-9_.-]*)\s*(?:=\s*(?P<value>.*))?$")


def parse_env_file(text: str, file: str = ".env") -> dict[str, str]:
    """`.env` as Compose reads it: ``KEY=VALUE``, comments, quotes, ``export``.

    Double-quoted values take ``\\n``-style escapes; single-quoted values are
    literal; unquoted values end at `` #``. Earlier keys can be referenced
    with ``${KEY}`` in later double-quoted or unquoted values.
    """
    out: dict[str, str] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _ENV_LINE.match(line)
        if not m:
            raise LabFileError(f"unexpected character in variable name: {line!r}", file, n)
        key, value = m.group("key"), m.group("value")
        if value is None:                        # a bare KEY: take it from the environment
            if key in os.environ:
                out[key] = os.environ[key]
            continue
        value = value.strip()
        if value[:1] == "'" and value.rfind("'") > 0:
            out[key] = value[1:value.rfind("'")]
            continue
        if value[:1] == '"' and value.rfind('"') > 0:
            body = value[1:value.rfind('"')]
            body = (body.replace("\\n", "\n").replace("\\t", "\t").replace('\\"', '"')
                    .replace("\\\\", "\\"))
        else:
            body = re.split(r"\s+#", value, maxsplit=1)[0].strip()
        if "$" in body:
            body = _Interp({**os.environ, **out}, Where(default_file=file), []).text(body, ())
        out[key] = body
    return out


def load_env(project_dir: str, env_files: Iterable[str] = (),
             environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The interpolation environment: the process environment over `.env` (or --env-file)."""
    environ = os.environ if environ is None else environ
    files = list(env_files) or [os.path.join(project_dir, ".env")]
    merged: dict[str, str] = {}
    for path in files:
        try:
            with open(path) as f:
                text = f.read()
        except FileNotFoundError:
            if env_files:
                raise InvalidArgument(f"env file {path} not found") from None
            continue
        except IsADirectoryError:
            continue
        merged.update(parse_env_file(text, path))
    return {**merged, **environ}
