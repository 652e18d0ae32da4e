"""mypy passes on the package with the configuration in pyproject.toml, and a user's program
type-checks against netkit's annotations (py.typed is shipped) (issue 16)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(importlib.util.find_spec("mypy") is None,
                                reason="mypy is not installed (pip install -e '.[test]')")


def mypy(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    # MYPYPATH: an editable install's import hook is invisible to mypy
    env = dict(os.environ, MYPYPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "mypy", "--no-incremental", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=600, env=env)


def test_the_package_is_clean():
    proc = mypy("netkit")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Success: no issues found" in proc.stdout


def test_py_typed_is_shipped():
    assert (ROOT / "netkit" / "py.typed").is_file()
    assert 'netkit = ["py.typed"]' in (ROOT / "pyproject.toml").read_text()


USER = '''
from netkit import ContainerSpec, Engine, NetworkSpec

def main(engine: Engine) -> None:
    net = engine.create_network(NetworkSpec("app"))
    ctr, code = engine.run(ContainerSpec(name="web", network=net.name, command=("true",)))
    n: int = ctr.name                      # a str
    engine.remove_container(ctr)           # a ref is a str, not a Container
    engine.wait("web").upper()             # an int
'''


def test_user_programs_are_checked_against_netkit(tmp_path):
    """Strict mode on a user's file: netkit's annotations are used (not Any)."""
    (tmp_path / "prog.py").write_text(textwrap.dedent(USER))
    # netkit found through MYPYPATH counts as the user's code: its own errors silenced, as for
    # an installed package with py.typed
    proc = mypy("--strict", "--follow-imports=silent", "prog.py", cwd=tmp_path)
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    assert 'prog.py:7: error: Incompatible types in assignment (expression has type "str", ' \
        'variable has type "int")' in out, out
    assert 'prog.py:8: error: Argument 1 to "remove_container" of "Engine" has incompatible ' \
        'type "Container"; expected "str"' in out, out
    assert 'prog.py:9: error: "int" has no attribute "upper"' in out, out
    assert "Found 3 errors" in out, out
