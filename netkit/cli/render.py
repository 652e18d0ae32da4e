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

NETWORK_FILTERS = ("dangling", "driver", "id", "label", "name", "scope", "type")
BUILTIN = ("bridge", "host", "none")
#: docker ps's keys that mean something without images (ancestor, volume, health ... do not)
CONTAINER_FILTERS = ("before", "expose", "exited", "id", "is-task", "label", "name", "network",
                     "publish", "since", "status")
STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")
BOOLS = {"true": True, "1": True, "false": False, "0": False}


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
        if (key in ("dangling", "is-task") and value.lower() not in BOOLS) or \
                (key == "status" and value not in STATUSES) or \
                (key == "exited" and not value.lstrip("-").isdigit()):
            raise InvalidArgument(f"invalid filter '{key}={value}'")
        out.setdefault(key, []).append(value)
    return out


def _label_match(labels: Mapping[str, str], wanted: str) -> bool:
    key, sep, value = wanted.partition("=")
    return key in labels and (not sep or labels[key] == value)


def match_network(net: Any, filters: Mapping[str, list[str]], members: int = 0) -> bool:
    """Same-key filters are ORed, different keys ANDed (docker's filters.Args).
    `members`: how many containers are attached (for ``dangling``)."""
    scope = getattr(net.scope, "value", net.scope)
    tests: dict[str, Callable[[str], bool]] = {
        "dangling": lambda v: (net.name not in BUILTIN and not members) == BOOLS[v.lower()],
        "driver": lambda v: net.driver == v,
        "id": lambda v: v in net.id,
        "name": lambda v: v in net.name,
        "scope": lambda v: scope == v,
        "label": lambda v: _label_match(net.labels, v),
        "type": lambda v: (net.name in BUILTIN) == (v == "builtin"),
    }
    return all(any(tests[key](v) for v in values) for key, values in filters.items())


def _port_filter(value: str) -> set[str]:
    """``80``, ``80/udp`` or ``8000-8002/tcp`` -> {"80/tcp", ...}."""
    port, _, proto = value.partition("/")
    lo, _, hi = port.partition("-")
    try:
        return {f"{p}/{proto or 'tcp'}" for p in range(int(lo), int(hi or lo) + 1)}
    except ValueError:
        raise InvalidArgument(f"invalid filter '{value}'") from None


def match_container(ctr: Any, filters: Mapping[str, list[str]], *, published: set[str] = frozenset(),
                    exposed: set[str] = frozenset(), created: Mapping[str, str] = {}) -> bool:
    """docker ps's filters on one container. `published` / `exposed`: its container
    ports ("80/tcp") with a host binding / declared; `created`: the Created time of the
    containers `before` and `since` name."""
    state = docker_state(ctr)
    tests: dict[str, Callable[[str], bool]] = {
        "id": lambda v: re.search(v, ctr.id) is not None,
        "name": lambda v: re.search(v, "/" + ctr.name) is not None,
        "label": lambda v: _label_match(ctr.options.get("labels") or {}, v),
        "status": lambda v: state == v,
        "exited": lambda v: state == "exited" and (ctr.exit_code or 0) == int(v),
        "network": lambda v: any(ep.network_name == v or ep.network_id.startswith(v)
                                 for ep in ctr.endpoints),
        "publish": lambda v: bool(_port_filter(v) & published),
        "expose": lambda v: bool(_port_filter(v) & exposed),
        "before": lambda v: ctr.created < created[v],
        "since": lambda v: ctr.created > created[v],
        "is-task": lambda v: not BOOLS[v.lower()],
    }
    return all(any(tests[key](v) for v in values) for key, values in filters.items())


def display_ports(ports: Iterable[tuple[str, int, int, str]]) -> str:
    """docker ps PORTS (Docker's DisplayablePorts) from (ip, private, public, proto):
    ``0.0.0.0:8080->80/tcp, 81/tcp``; consecutive ports grouped into ranges."""
    groups: dict[str, list[int]] = {}
    result: list[str] = []
    mappings: list[str] = []
    for ip, private, public, proto in sorted(ports, key=lambda p: (p[1], p[0], p[2], p[3])):
        key = proto
        if ip:
            if public != private:
                mappings.append(f"{_host(ip)}:{public}->{private}/{proto}")
                continue
            key = f"{ip}/{proto}"
        group = groups.get(key)
        if group is None:
            groups[key] = [private, private]
        elif private == group[1] + 1:
            group[1] = private
        else:
            result.append(_port_group(key, *group))
            groups[key] = [private, private]
    result.extend(_port_group(key, *group) for key, group in groups.items())
    return ", ".join(result + mappings)


def _port_group(key: str, first: int, last: int) -> str:
    ip, _, proto = key.rpartition("/")
    group = str(first) if first == last else f"{first}-{last}"
    if ip:
        group = f"{_host(ip)}:{group}->{group}"
    return f"{group}/{proto}"


def host_port(pm: Any) -> str:
    """A binding as `docker port` prints it (net.JoinHostPort): ``0.0.0.0:8080``, ``[::]:8080``."""
    return f"{_host(pm.host_ip)}:{pm.host_port}"


def _host(ip: str) -> str:
    """Go's net.JoinHostPort: an IPv6 address in brackets."""
    return f"[{ip}]" if ":" in ip else ip


def container_ports(ctr: Any) -> list[tuple[str, int, int, str]]:
    """(ip, private, public, proto) of a running container: its bindings, then its
    exposed ports without one."""
    from netkit.ports import host_bindings, parse_expose, parse_publish
    out = [(pm.host_ip, pm.container_port, pm.host_port, pm.proto) for pm in host_bindings(ctr)]
    if not ctr.endpoints:
        return out
    want: Any = ctr.options.get("ports") or {}
    bound = {(p[1], p[3]) for p in out}
    declared = [(p, proto) for e in want.get("expose", ()) for p, proto in parse_expose(e)]
    declared += [(r.container_port, r.proto) for s in want.get("publish", ()) for r in parse_publish(s)]
    for port, proto in dict.fromkeys(declared):
        if (port, proto) not in bound:
            out.append(("", port, 0, proto))
    return out


# -- rows for `ls` / `ps` ----------------------------------------------------------------

NETWORK_HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
                   "IPv4": "IPV4", "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS",
                   "CreatedAt": "CREATED AT"}
NETWORK_TABLE = "{{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"

CONTAINER_HEADERS = {"ID": "CONTAINER ID", "Name": "NAME", "Names": "NAMES", "Command": "COMMAND",
                     "Status": "STATUS", "State": "STATE", "Ports": "PORTS", "Networks": "NETWORKS",
                     "Hostname": "HOSTNAME", "CreatedAt": "CREATED AT", "RunningFor": "CREATED",
                     "Labels": "LABELS", "Image": "IMAGE", "Mounts": "MOUNTS"}
CONTAINER_TABLE = "{{.ID}}\t{{.Name}}\t{{.Command}}\t{{.Status}}\t{{.Ports}}\t{{.Networks}}"


def labels_text(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def network_row(net: Any, trunc: bool = True) -> dict[str, str]:
    return {"ID": net.id[:12] if trunc else net.id, "Name": net.name, "Driver": net.driver,
            "Scope": getattr(net.scope, "value", net.scope), "IPv4": go_bool(net.ipv4),
            "IPv6": go_bool(net.ipv6), "Internal": go_bool(net.internal),
            "Labels": labels_text(net.labels), "CreatedAt": net.created}


def docker_state(ctr: Any) -> str:
    """``State.Status`` as Docker reports it (`Container.status`: a bare sandbox is created)."""
    status = getattr(ctr, "status", ctr.state)
    return str(getattr(status, "value", status))


def container_status(ctr: Any) -> str:
    """``docker ps`` STATUS: ``Up 3 minutes``, ``Exited (0) 2 seconds ago``, ``Created``..."""
    from netkit.lifecycle import status_text
    return status_text(docker_state(ctr), exit_code=ctr.exit_code,
                       started=getattr(ctr, "started_at", None),
                       finished=getattr(ctr, "finished_at", None))


def running_for(ctr: Any) -> str:
    """docker ps CREATED: ``3 minutes ago`` (go-units HumanDuration since Created)."""
    return ago(ctr.created)


def ago(stamp: str) -> str:
    """``3 minutes ago``: go-units HumanDuration since the time `stamp` ("" if unreadable)."""
    from datetime import datetime, timezone

    from netkit.lifecycle import human_duration, parse_time
    when = parse_time(stamp)
    if when is None:
        return ""
    return human_duration((datetime.now(timezone.utc) - when).total_seconds()) + " ago"


def container_networks(ctr: Any) -> str:
    names = sorted(ep.network_name or ep.network_id[:12] for ep in ctr.endpoints)
    return ",".join(names) if names else ctr.network_mode


def container_row(ctr: Any, trunc: bool = True) -> dict[str, str]:
    command = " ".join(ctr.command)
    if trunc:
        command = ellipsis(command, 20)
    return {"ID": ctr.id[:12] if trunc else ctr.id, "Name": ctr.name, "Names": ctr.name,
            "Command": json.dumps(command, ensure_ascii=False),
            "Status": container_status(ctr), "State": docker_state(ctr),
            "Ports": display_ports(container_ports(ctr)), "RunningFor": running_for(ctr),
            "Labels": labels_text(ctr.options.get("labels") or {}), "Image": "", "Mounts": "",
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
    return tabulate([tmpl.render(headers, header=True).split("\t"),
                     *(tmpl.render(r).split("\t") for r in rows)])


def to_json(items: Any) -> str:
    """`inspect` output: a JSON array indented by 4, like docker's json.MarshalIndent."""
    return json.dumps(items, indent=4, ensure_ascii=False)
