"""Assertions shared by the CLI tests."""

from __future__ import annotations


def ok(result, code: int = 0):
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    return result


def error_line(result, code: int = 1) -> str:
    """The single `Error: ...` line of a failed command, checked to carry no traceback."""
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]
