"""The kernel boundary is closed: only netkit/kernel/ speaks netlink.

Nothing outside netkit/kernel/ imports pyroute2 (at the top or inside a
function, also through importlib), reaches for a handle's pyroute2 socket
(`.ipr`) or uses a private member of the kernel package (`._op`, `._ipr`,
`kns._something`...): every kernel call then goes through a handle method
that counts toward the FaultPlan, translates errors and journals its undo.
"""

from __future__ import annotations

import ast
from pathlib import Path

import netkit

PACKAGE = Path(netkit.__file__).parent
KERNEL = PACKAGE / "kernel"
NETLINK = ("pyroute2",)


def _modules(under: Path) -> list[Path]:
    return sorted(p for p in under.rglob("*.py") if "__pycache__" not in p.parts)


def _outside() -> list[Path]:
    return [p for p in _modules(PACKAGE) if KERNEL not in p.parents]


def _private_kernel_names() -> set[str]:
    """Private names the kernel package defines: module globals, classes' members and the
    attributes its methods set on `self` (dunders excluded)."""
    names: set[str] = set()
    for path in _modules(KERNEL):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
    return {n for n in names if n.startswith("_") and n != "_" and not n.startswith("__")}


def _is_netlink(module: str | None) -> bool:
    return module is not None and module.split(".")[0] in NETLINK


def violations(source: str, where: str, private: set[str]) -> list[str]:
    """What in a module's `source` crosses the kernel boundary, one line each."""
    tree = ast.parse(source, where)
    out = []
    for node in ast.walk(tree):
        line = f"{where}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            out += [f"{line}: imports {a.name}" for a in node.names if _is_netlink(a.name)]
        elif isinstance(node, ast.ImportFrom):
            if _is_netlink(node.module):
                out.append(f"{line}: imports from {node.module}")
            elif (node.module or "").startswith("netkit.kernel"):
                out += [f"{line}: imports private {node.module}.{a.name}"
                        for a in node.names if a.name in private]
        elif isinstance(node, ast.Call):
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
            if name in ("import_module", "__import__") and node.args and \
                    isinstance(node.args[0], ast.Constant) and _is_netlink(str(node.args[0].value)):
                out.append(f"{line}: imports {node.args[0].value}")
        elif isinstance(node, ast.Attribute):
            if node.attr == "ipr":
                out.append(f"{line}: uses .ipr (pyroute2) of a kernel handle")
            elif node.attr in private and not (isinstance(node.value, ast.Name)
                                               and node.value.id in ("self", "cls")):
                out.append(f"{line}: uses private kernel member .{node.attr}")
    return out


def test_nothing_outside_kernel_speaks_netlink():
    private = _private_kernel_names()
    assert {"_op", "_ipr", "_owned"} <= private          # the scan sees the handle's privates
    found = [v for path in _outside()
             for v in violations(path.read_text(), str(path.relative_to(PACKAGE.parent)), private)]
    assert found == []


def test_the_scan_catches_each_kind_of_crossing():
    src = ("import pyroute2.netlink\n"
           "def f(host, kns):\n"
           "    from pyroute2 import IPRoute\n"
           "    import importlib; importlib.import_module('pyroute2')\n"
           "    host.ipr.link('add')\n"
           "    with host._op('x', 'y'):\n"
           "        pass\n"
           "    return kns._quiet, self._op\n"
           "from netkit.kernel.session import _kind\n")
    found = violations(src, "probe.py", _private_kernel_names())
    assert sorted(f.split(": ", 1)[1] for f in found) == sorted([
        "imports pyroute2.netlink", "imports private netkit.kernel.session._kind",
        "imports from pyroute2", "imports pyroute2", "uses .ipr (pyroute2) of a kernel handle",
        "uses private kernel member ._op", "uses private kernel member ._quiet"])
