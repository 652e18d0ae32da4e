"""Pure rendering for the CLI: docker's tables, natural sort, filters and `--format`.

Nothing here talks to the Engine or the kernel, so all of it is unit-tested
without root (tests/cli/test_render.py). Imports stay stdlib + netkit.errors
so that `netkit --help` remains cheap.

The `--format` language (Go's text/template as Docker uses it) is in
`netkit.cli.template`; `Template` and `TemplateError` are re-exported here.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable, Iterable, Mapping, Sequence

from netkit.cli.template import (MISSING, Template, TemplateError, go_bool,  # noqa: F401
                                 go_str, render_each)
from netkit.errors import InvalidArgument

# -- tables ---------------------------------------------------------------------

#: docker's table writer: tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)
MIN_WIDTH = 10
PADDING = 3


def natural_key(text: str) -> tuple:
    """Sort key for docker's natural order: ``net2`` < ``net10``."""
    parts = re.split(r"(\d+)", text)
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts))


def tabulate(rows: Sequence[Sequence[str]]) -> list[str]:
    """Align cells like Go's tabwriter with docker's settings.

    Every cell but the last of its row is padded to the column's width:
    ``max(10, longest cell + 3)``. Trailing blanks are stripped.
    """
    widths: dict[int, int] = {}
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths.get(i, MIN_WIDTH), len(cell) + PADDING)
    lines = []
    for row in rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        lines.append(("".join(cells) + (row[-1] if row else "")).rstrip())
    return lines


def ellipsis(text: str, width: int) -> str:
    """docker's formatter.Ellipsis: cut to `width` characters, ending in '…'."""
    return text if len(text) <= width else text[: width - 1] + "…"


# -- filters (`-f key=value`) --------------------------------------------------------

NETWORK_FILTERS = ("driver", "id", "label", "name", "scope", "type")
BUILTIN = ("bridge", "host", "none")


def parse_filters(values: Iterable[str], allowed: Sequence[str]) -> dict[str, list[str]]:
    """``["name=a", "name=b", "driver=bridge"]`` -> ``{"name": ["a", "b"], "driver": [...]}``."""
    out: dict[str, list[str]] = {}
    for item in values:
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep or not key:
            raise InvalidArgument(f"bad format of filter (expected name=value): {item}")
        if key not in allowed:
            raise InvalidArgument(f"invalid filter '{key}'")
        if key == "type" and value not in ("custom", "builtin"):
            raise InvalidArgument(f"invalid filter: 'type'='{value}'")
        out.setdefault(key, []).append(value)
    return out


def _label_match(labels: Mapping[str, str], wanted: str) -> bool:
    key, sep, value = wanted.partition("=")
    return key in labels and (not sep or labels[key] == value)


def match_network(net: Any, filters: Mapping[str, list[str]]) -> bool:
    """Same-key filters are ORed, different keys ANDed (docker's filters.Args)."""
    scope = getattr(net.scope, "value", net.scope)
    tests: dict[str, Callable[[str], bool]] = {
        "driver": lambda v: net.driver == v,
        "id": lambda v: v in net.id,
        "name": lambda v: v in net.name,
        "scope": lambda v: scope == v,
        "label": lambda v: _label_match(net.labels, v),
        "type": lambda v: (net.name in BUILTIN) == (v == "builtin"),
    }
    return all(any(tests[key](v) for v in values) for key, values in filters.items())


# -- rows for `ls` / `ps` ----------------------------------------------------------------

NETWORK_HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
                   "IPv4": "IPV4", "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS",
                   "CreatedAt": "CREATED AT"}
NETWORK_TABLE = "{{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"

CONTAINER_HEADERS = {"ID": "CONTAINER ID", "Name": "NAME", "Names": "NAMES", "Command": "COMMAND",
                     "Status": "STATUS", "State": "STATE", "Networks": "NETWORKS",
                     "Hostname": "HOSTNAME", "CreatedAt": "CREATED AT"}
CONTAINER_TABLE = "{{.ID}}\t{{.Name}}\t{{.Command}}\t{{.Status}}\t{{.Networks}}"


def labels_text(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def network_row(net: Any, trunc: bool = True) -> dict[str, str]:
    return {"ID": net.id[:12] if trunc else net.id, "Name": net.name, "Driver": net.driver,
            "Scope": getattr(net.scope, "value", net.scope), "IPv4": go_bool(net.ipv4),
            "IPv6": go_bool(net.ipv6), "Internal": go_bool(net.internal),
            "Labels": labels_text(net.labels), "CreatedAt": net.created}


def container_status(ctr: Any) -> str:
    """``docker ps`` STATUS: ``Up 3 minutes``, ``Exited (0) 2 seconds ago``, ``Created``..."""
    from netkit.lifecycle import status_text
    return status_text(getattr(ctr.state, "value", ctr.state), exit_code=ctr.exit_code,
                       started=getattr(ctr, "started_at", None),
                       finished=getattr(ctr, "finished_at", None))


def container_networks(ctr: Any) -> str:
    names = sorted(ep.network_name or ep.network_id[:12] for ep in ctr.endpoints)
    return ",".join(names) if names else ctr.network_mode


def container_row(ctr: Any, trunc: bool = True) -> dict[str, str]:
    command = " ".join(ctr.command)
    if trunc:
        command = ellipsis(command, 20)
    return {"ID": ctr.id[:12] if trunc else ctr.id, "Name": ctr.name, "Names": ctr.name,
            "Command": json.dumps(command, ensure_ascii=False),
            "Status": container_status(ctr), "State": getattr(ctr.state, "value", ctr.state),
            "Networks": container_networks(ctr), "Hostname": ctr.hostname,
            "CreatedAt": ctr.created}


def format_rows(fmt: str | None, rows: Sequence[Mapping[str, Any]], headers: Mapping[str, str],
                default: str) -> list[str]:
    """Lines for `ls`/`ps`: ``table`` (default), ``table TEMPLATE``, ``json`` or ``TEMPLATE``."""
    fmt = fmt or "table"
    if fmt.strip() == "json":
        return [json.dumps(row, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
                for row in rows]
    table = fmt.startswith("table")
    text = (fmt[len("table"):] if table else fmt).strip(" ") or default
    text = text.replace("\\t", "\t").replace("\\n", "\n")     # as docker's preFormat does
    tmpl = Template(text)
    if not table:
        return [tmpl.render(row) for row in rows]
    return tabulate([tmpl.render(r).split("\t") for r in [headers, *rows]])


def to_json(items: Any) -> str:
    """`inspect` output: a JSON array indented by 4, like docker's json.MarshalIndent."""
    return json.dumps(items, indent=4, ensure_ascii=False)
