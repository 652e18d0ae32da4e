"""Helpers for lab tests: write lab files (and .env) into a temporary project directory."""

from __future__ import annotations

import os
import sys
import textwrap

import pytest

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LABS = os.path.join(SOURCE, "labs")
# A container's command is pid 1 of its PID namespace: a signal it does not handle is
# ignored, so `sleep infinity` would make every `lab down` wait out the 10 s grace period.
IDLE = "sh -c 'trap exit TERM; sleep infinity & wait'"
# The probe server of the netkit under test (it exits on SIGTERM): lab containers get only
# the environment their service declares, so name the source tree explicitly.
SERVE = f"env PYTHONPATH={SOURCE} {sys.executable} -m netkit.testing.probe serve tcp"


@pytest.fixture
def write(tmp_path):
    """write("lab.yml", text, dir="proj") -> path; the text is dedented."""
    def _write(name: str, text: str, dir: str = "proj") -> str:
        d = tmp_path / dir
        d.mkdir(exist_ok=True)
        path = d / name
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return str(path)
    return _write


@pytest.fixture(autouse=True)
def _clean_compose_env(monkeypatch):
    monkeypatch.delenv("COMPOSE_PROJECT_NAME", raising=False)
