"""docs/cli.md is generated from the command definitions and must match them."""

from __future__ import annotations

from pathlib import Path

import click

from netkit.cli.docgen import REGENERATE, anchor, generate, text_blocks, walk
from netkit.cli.main import cli

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def test_docs_cli_md_is_up_to_date():
    expected = generate()
    assert DOC.read_text() == expected, (
        f"docs/cli.md differs from the command definitions: regenerate it with `{REGENERATE}` "
        "(from the repository root) and commit it")


def test_every_command_has_a_section_and_a_help_text():
    doc = generate()
    paths = [ctx.command_path for _, ctx in walk(cli, click.Context(cli, info_name="netkit"))]
    assert {"netkit network create", "netkit lab up", "netkit swarm join-token",
            "netkit completion", "netkit version"} <= set(paths)
    for path in paths:
        assert f"\n## `{path}`\n" in doc, path
    for cmd, ctx in walk(cli, click.Context(cli, info_name="netkit")):
        assert (cmd.help or "").strip(), f"{ctx.command_path} has no help text"


def _help(*args: str) -> str:
    from click.testing import CliRunner
    result = CliRunner().invoke(cli, [*args, "--help"], prog_name="netkit")
    assert result.exit_code == 0, result.output
    return result.output


def test_main_commands_show_examples_in_their_help():
    for args in (("run",), ("create",), ("exec",), ("network", "create"), ("network", "connect"),
                 ("lab", "up"), ("capture",), ("swarm", "init"), ("swarm", "join"),
                 ("node", "create"), ("completion",), ("version",), ("info",)):
        out = _help(*args)
        examples = out[out.index("Examples:"):].splitlines()[1:]
        assert examples[0].startswith("    ") and "netkit " in examples[0], (args, examples)
        assert any(" ".join(args) in line for line in examples), (args, examples)


def test_text_blocks_turn_kept_paragraphs_into_code():
    text = "Do a thing.\n\n    More about\n    it.\n\n    \b\n    Examples:\n      netkit a\n        --b\n"
    assert text_blocks(text) == ["Do a thing.", "More about it.",
                                 "Examples:\n\n```\nnetkit a\n  --b\n```"]
    assert text_blocks("") == [] and text_blocks("Short.\f hidden") == ["Short."]
    assert anchor("netkit swarm join-token") == "netkit-swarm-join-token"
