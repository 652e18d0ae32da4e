"""`netkit completion bash|zsh|fish`, and the names that shell completion offers.

The script a shell sources calls netkit back with click's protocol
(``_NETKIT_COMPLETE=bash_complete COMP_WORDS=... COMP_CWORD=...``); click
completes commands and options by itself, and the arguments and options
that take a container, network, node or LAN call :func:`names`. Those read
the names straight from the node's SQLite file, read-only: completing never
opens an Engine, starts an agent, creates a file or touches the kernel, and
a store that cannot be read (none yet, not root) completes nothing.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

# `netkit --help` imports this module for the command's summary: sqlite3 and click's
# shell_completion are imported inside the functions, when a script or a name is asked for

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_NETKIT_COMPLETE"
PREDEFINED_NETWORKS = ("bridge", "host", "none")

# what each kind of name is read from: (the real host's store?, SQL)
_QUERIES = {
    "container": (False, "SELECT name FROM containers"),
    "running": (False, "SELECT name FROM containers WHERE state IN ('running', 'restarting')"),
    "stopped": (False, "SELECT name FROM containers WHERE state IN ('created', 'exited')"),
    "network": (False, "SELECT name FROM networks"),
    "node": (True, "SELECT name FROM nodes"),
    "lan": (True, "SELECT name FROM lans"),
}
CAPTURE_PREFIXES = {"network:": "network", "node:": "node", "lan:": "lan"}

# click's bash script, plus: bash splits `network:app` at ':' (COMP_WORDBREAKS), so the
# pieces are glued back before netkit sees them, and the replies lose what precedes the
# last ':' (bash replaces only the text after it).
_SOURCE_BASH = r"""%(complete_func)s() {
    local IFS=$'\n'
    local response completion type value i w glue=0 cword=0
    local -a words=()
    for ((i = 0; i < ${#COMP_WORDS[@]}; i++)); do
        w=${COMP_WORDS[i]}
        if (( ${#words[@]} )) && [[ $w == : || $glue == 1 ]]; then
            words[-1]+=$w
        else
            words+=("$w")
        fi
        [[ $w == : ]] && glue=1 || glue=0
        (( i == COMP_CWORD )) && cword=$(( ${#words[@]} - 1 ))
    done
    local cur=${words[cword]} head=
    [[ $cur == *:* && $COMP_WORDBREAKS == *:* ]] && head=${cur%%"${cur##*:}"}

    response=$(env COMP_WORDS="${words[*]}" COMP_CWORD=$cword %(complete_var)s=bash_complete $1)

    for completion in $response; do
        IFS=',' read type value <<< "$completion"

        if [[ $type == 'dir' ]]; then
            COMPREPLY=()
            compopt -o dirnames
        elif [[ $type == 'file' ]]; then
            COMPREPLY=()
            compopt -o default
        elif [[ $type == 'plain' ]]; then
            COMPREPLY+=("${value#"$head"}")
        fi
    done

    return 0
}

%(complete_func)s_setup() {
    complete -o nosort -F %(complete_func)s %(prog_name)s
}

%(complete_func)s_setup;
"""


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL.

    It completes commands, options and the names of containers, networks,
    nodes and LANs (of the node given by --node or NETKIT_NODE).

    \b
    Examples:
      source <(netkit completion bash)              # this bash session
      netkit completion bash > /etc/bash_completion.d/netkit
      netkit completion zsh > "${fpath[1]}/_netkit"
      netkit completion fish > ~/.config/fish/completions/netkit.fish
    """
    ctx = click.get_current_context()
    root = ctx.find_root()
    prog = root.info_name or "netkit"
    from click.shell_completion import BashComplete, get_completion_class
    cls = get_completion_class(shell)
    assert cls is not None                          # click.Choice allowed only known shells
    if cls is BashComplete:
        cls = type("NetkitBashComplete", (BashComplete,), {"source_template": _SOURCE_BASH})
    click.echo(cls(root.command, {}, prog, COMPLETE_VAR).source())


def read_names(kind: str, node: str | None) -> list[str]:
    """The names of `kind` on `node` ("" / None: the real host), sorted; [] if unreadable."""
    import sqlite3

    from netkit.paths import NodePaths, default_root, default_run
    on_host, sql = _QUERIES[kind]
    try:
        paths = NodePaths.of("" if on_host else (node or ""), default_root(), default_run())
        if not os.path.exists(paths.db):
            found: list[str] = []
        else:
            from urllib.parse import quote
            db = sqlite3.connect(f"file:{quote(paths.db)}?mode=ro", uri=True, timeout=0.5)
            try:
                found = [row[0] for row in db.execute(sql)]
            finally:
                db.close()
    except Exception:               # unreadable, locked, not root ...: a completion never fails
        found = []
    if kind == "network":
        found = sorted({*found, *PREDEFINED_NETWORKS})
    return sorted(found)


def _node_of(ctx: click.Context) -> str | None:
    return ctx.find_root().params.get("node") or os.environ.get("NETKIT_NODE") or None


def complete(kind: str, ctx: click.Context, incomplete: str) -> list["CompletionItem"]:
    """Names of `kind` that start with `incomplete` (``capture``: a container, or one of
    ``network:NAME``, ``node:NAME``, ``lan:NAME``)."""
    from click.shell_completion import CompletionItem
    node = _node_of(ctx)
    if kind == "target":
        for prefix, sub in CAPTURE_PREFIXES.items():
            if incomplete.startswith(prefix):
                rest = incomplete[len(prefix):]
                return [CompletionItem(prefix + n) for n in read_names(sub, node)
                        if n.startswith(rest)]
        names = read_names("container", node) + list(CAPTURE_PREFIXES)
    else:
        names = read_names(kind, node)
    return [CompletionItem(n) for n in names if n.startswith(incomplete)]
