"""Files an action writes are journaled: a failed action leaves every file as it was.

Code runs inside an action when it is the body of a `with ....actions() as ...:` block
or a function that takes the action's `tx`, `ctx` or `journal`. There, a file is
written, created or removed only in one of the ways the undo journal covers:

- deferred to the commit: inside a `journal.defer(...)` call (removals);
- inside an undo step: a `journal.push(...)` call;
- in a function that journals what it changes (it calls `.push(...)`), as
  containers.py `_rewrite` (the old text comes back on undo) or nodes.py `create_node`
  (the node's new run dir, files and all, is removed on undo) do.

The scan is static and local to each module: the write primitives (open for writing,
os.unlink / replace / rename / makedirs..., shutil.rmtree..., write_file) and the module's
own functions and methods that use one without journaling (`_rmtree`, FirewallSync.apply),
called from action code, must sit in one of those places. netkit/kernel/ is the
boundary that journals its own changes and is not scanned; helpers of other modules
called by name (sandbox.write_file is a primitive here) are trusted to be listed below.
"""

from __future__ import annotations

import ast
from pathlib import Path

import netkit

PACKAGE = Path(netkit.__file__).parent
KERNEL = PACKAGE / "kernel"
ACTION_PARAMS = {"tx", "ctx", "journal"}
WRITE_MODES = set("wax+")
BY_MODULE = {"os": {"unlink", "remove", "replace", "rename", "rmdir", "makedirs", "mkdir",
                    "truncate", "mkfifo", "symlink", "link"},
             "shutil": {"rmtree", "move", "copy", "copy2", "copyfile", "copytree"}}
ANY_OBJECT = {"write_file", "write_text", "write_bytes"}
OPEN_FLAGS = {"O_CREAT", "O_WRONLY", "O_RDWR", "O_TRUNC", "O_APPEND"}


def _primitive(call: ast.Call) -> str | None:
    """The write primitive `call` is, or None."""
    fn = call.func
    if isinstance(fn, ast.Name):
        if fn.id == "open":
            mode = call.args[1] if len(call.args) > 1 else next(
                (k.value for k in call.keywords if k.arg == "mode"), None)
            if isinstance(mode, ast.Constant) and WRITE_MODES & set(str(mode.value)):
                return f"open(..., {mode.value!r})"
            return None
        return fn.id if fn.id in ANY_OBJECT else None
    if not isinstance(fn, ast.Attribute):
        return None
    owner = fn.value.id if isinstance(fn.value, ast.Name) else None
    if owner == "os" and fn.attr == "open" and len(call.args) > 1:
        flags = {n.attr for n in ast.walk(call.args[1]) if isinstance(n, ast.Attribute)}
        return "os.open(..., O_CREAT...)" if flags & OPEN_FLAGS else None
    if owner in BY_MODULE and fn.attr in BY_MODULE[owner]:
        return f"{owner}.{fn.attr}"
    return fn.attr if fn.attr in ANY_OBJECT else None


def _callee(call: ast.Call) -> str | None:
    """`name` for `name(...)`, `self.name` for `self.name(...)`: a local function or method."""
    fn = call.func
    if isinstance(fn, ast.Name):
        return fn.id
    if isinstance(fn, ast.Attribute) and isinstance(fn.value, ast.Name) and fn.value.id == "self":
        return f"self.{fn.attr}"
    return None


def _is_journal_call(call: ast.Call, kinds: tuple[str, ...] = ("push", "defer")) -> bool:
    return isinstance(call.func, ast.Attribute) and call.func.attr in kinds


def _walk(node: ast.AST):
    """Every node below `node`, but not inside undo steps or deferred removals
    (the arguments of a `.push(...)` / `.defer(...)` call)."""
    for child in ast.iter_child_nodes(node):
        yield child
        if isinstance(child, ast.Call) and _is_journal_call(child):
            yield from _walk(child.func)
            continue
        yield from _walk(child)


def _functions(tree: ast.Module):
    """(key, function) for module-level functions ("name") and methods ("self.name")."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    yield f"self.{item.name}", item


def _params(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    a = fn.args
    return {p.arg for p in a.posonlyargs + a.args + a.kwonlyargs}


def _journals(fn: ast.AST) -> bool:
    return any(isinstance(n, ast.Call) and _is_journal_call(n, ("push",)) for n in ast.walk(fn))


def _writes(node: ast.AST, writers: set[str]) -> list[tuple[int, str]]:
    out = []
    for n in _walk(node):
        if isinstance(n, ast.Call):
            what = _primitive(n) or (_callee(n) if _callee(n) in writers else None)
            if what:
                out.append((n.lineno, what))
    return out


def _writers(tree: ast.Module) -> set[str]:
    """The module's functions and methods that write a file without journaling it,
    directly or through another of them."""
    funcs = [(key, fn) for key, fn in _functions(tree)
             if "journal" not in _params(fn) and not _journals(fn)]
    writers: set[str] = set()
    while True:
        more = {key for key, fn in funcs if key not in writers and _writes(fn, writers)}
        if not more:
            return writers
        writers |= more


def _action_blocks(fn: ast.AST) -> list[ast.With]:
    out = []
    for n in ast.walk(fn):
        if isinstance(n, ast.With):
            for item in n.items:
                call = item.context_expr
                if isinstance(call, ast.Call):
                    f = call.func
                    name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
                    if name in ("actions", "_actions"):
                        out.append(n)
    return out


def violations(source: str, where: str) -> list[str]:
    """Unjournaled file writes in action code of one module, one line each."""
    tree = ast.parse(source, where)
    writers = _writers(tree)
    out: set[str] = set()
    for _, fn in _functions(tree):
        if _journals(fn):
            continue                 # it journals what it changes
        scopes: list[ast.AST] = [fn] if ACTION_PARAMS & _params(fn) else _action_blocks(fn)
        for scope in scopes:
            for line, what in _writes(scope, writers):
                out.add(f"{where}:{line}: {what} in an action, not journaled")
    return sorted(out)


def test_actions_journal_every_file_they_write():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if KERNEL in path.parents or "__pycache__" in path.parts:
            continue
        found += violations(path.read_text(), str(path.relative_to(PACKAGE.parent)))
    assert found == []


PROBE = '''
import os, shutil
from netkit import sandbox

def _rmtree(d):
    shutil.rmtree(d, ignore_errors=True)

class C:
    def apply(self, text):
        with open(self.path, "w") as f:
            f.write(text)

    def bare(self):
        with self.actions() as (tx, ctx):
            sandbox.write_file("/x/hosts", "")        # flagged
            _rmtree("/x")                              # flagged: a local writer

    def helper(self, tx, ctx):
        self.apply("x")                                # flagged: a writer method
        os.unlink("/x/y")                              # flagged
        with open("/x/z") as f:                        # reading: fine
            f.read()

    def deferred(self):
        with self.actions() as (tx, ctx):
            ctx.kernel.journal.defer("rm", lambda: _rmtree("/x"))
            ctx.kernel.journal.push("undo", lambda: os.unlink("/x/y"))

    def journaled(self, tx, ctx):
        os.makedirs("/x")
        ctx.kernel.journal.push("remove /x", lambda: _rmtree("/x"))

    def outside(self):
        os.unlink("/x/pid")                            # not an action: fine
'''


def test_the_scan_sees_each_kind_of_write():
    found = [v.split(":", 2)[1:] for v in violations(PROBE, "probe.py")]
    assert [(int(line), what.strip()) for line, what in found] == [
        (15, "write_file in an action, not journaled"),
        (16, "_rmtree in an action, not journaled"),
        (19, "self.apply in an action, not journaled"),
        (20, "os.unlink in an action, not journaled")]
