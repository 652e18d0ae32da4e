"""docs/cli.md, generated from the click command definitions, so the reference cannot drift.

Regenerate it after changing a command, an option or a help text::

    python -m netkit.cli.docgen > docs/cli.md

(tests/unit/test_cli_docs.py fails while the file differs from this output).
The output depends on nothing but the commands: no terminal width, no
environment variable, no state.
"""

from __future__ import annotations

import inspect
import re
import sys
from typing import Iterator

import click

REGENERATE = "python -m netkit.cli.docgen > docs/cli.md"
HEADER = f"""# netkit command-line reference

<!-- Generated from the click command definitions by `{REGENERATE}`:
     do not edit by hand; regenerate it after changing a command. -->

Every command takes the global options of `netkit` (`--node NAME` or `NETKIT_NODE` picks
the simulated host to act on). `netkit COMMAND --help` prints the same text as below.
Commands that take several names keep going past failures and exit 1 at the end;
`run`, `create`, `start` and `exec` exit 125 when netkit itself fails, as Docker's do.
Shell completion (commands, options, and the names of containers, networks, nodes and LANs):
`source <(netkit completion bash)` (or `zsh`, `fish`).
"""


def walk(cmd: click.Command, ctx: click.Context) -> Iterator[tuple[click.Command, click.Context]]:
    """`cmd` and every visible subcommand below it, depth first, in name order."""
    yield cmd, ctx
    if isinstance(cmd, click.Group):
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            yield from walk(sub, click.Context(sub, info_name=name, parent=ctx))


def anchor(path: str) -> str:
    """GitHub's heading anchor of ``## `path` ``."""
    return re.sub(r"[^a-z0-9 -]", "", path.lower()).replace(" ", "-")


def text_blocks(text: str) -> list[str]:
    """click's help text as Markdown: a ``\\b`` paragraph (kept as written: examples) is a
    code block, its ``Examples:`` line a label; other paragraphs are joined into lines."""
    text = inspect.cleandoc(text.split("\f", 1)[0])
    if not text.strip():
        return []
    out = []
    for para in re.split(r"\n\s*\n", text.strip()):
        lines = para.splitlines()
        if lines and lines[0].strip() == "\b":
            lines = lines[1:]
            label = ""
            if lines and lines[0].strip().endswith(":") and not lines[0].startswith(" "):
                label, lines = lines[0].strip(), lines[1:]
            indent = min((len(x) - len(x.lstrip()) for x in lines if x.strip()), default=0)
            code = "\n".join(x[indent:] for x in lines)
            out.append((f"{label}\n\n" if label else "") + f"```\n{code}\n```")
        else:
            out.append(" ".join(x.strip() for x in lines))
    return out


def _cell(text: str, code: bool = False) -> str:
    """A table cell: `|` escaped; outside code, `<` and `>` too (not HTML)."""
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if code else text.replace("<", "&lt;").replace(">", "&gt;")


def section(cmd: click.Command, ctx: click.Context) -> list[str]:
    """One command's reference: heading, usage, help, options, subcommands, epilog."""
    path = ctx.command_path
    usage = " ".join([path, *cmd.collect_usage_pieces(ctx)])
    out = [f"## `{path}`", "", "```", usage, "```", ""]
    for block in text_blocks(cmd.help or cmd.short_help or ""):
        out += [block, ""]
    helps = set(ctx.help_option_names)            # --help: said once, in the header
    rows = [p.get_help_record(ctx) for p in cmd.get_params(ctx)
            if isinstance(p, click.Option) and not helps & set(p.opts)]
    rows = [r for r in rows if r is not None]
    if rows:
        out += ["| Option | Description |", "| --- | --- |"]
        out += [f"| `{_cell(opt, code=True)}` | {_cell(desc)} |" for opt, desc in rows]
        out.append("")
    if isinstance(cmd, click.Group):
        subs = [(name, cmd.get_command(ctx, name)) for name in cmd.list_commands(ctx)]
        out += ["| Command | Description |", "| --- | --- |"]
        out += [f"| [`{name}`](#{anchor(f'{path} {name}')}) | {_cell(sub.get_short_help_str(200))} |"
                for name, sub in subs if sub is not None and not sub.hidden]
        out.append("")
    for block in text_blocks(cmd.epilog or ""):
        out += [block, ""]
    return out


def generate(prog: str = "netkit") -> str:
    """The whole reference (docs/cli.md)."""
    from netkit.cli.main import cli
    root = click.Context(cli, info_name=prog, max_content_width=100, terminal_width=100)
    lines = [HEADER]
    for cmd, ctx in walk(cli, root):
        lines += section(cmd, ctx)
    return "\n".join(lines).rstrip("\n") + "\n"


def main() -> None:
    sys.stdout.write(generate())


if __name__ == "__main__":
    main()
