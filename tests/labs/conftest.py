"""Helpers for lab tests: write lab files (and .env) into a temporary project directory."""

from __future__ import annotations

import os
import textwrap

import pytest

LABS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "labs")


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
