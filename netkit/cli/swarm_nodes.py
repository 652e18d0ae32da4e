"""The swarm side of `netkit node ...`: Docker's `docker node ls / inspect / promote / demote`
output, run on the node --node names (imported only by those commands)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

import click

from netkit.cli import attempt, engine, render

if TYPE_CHECKING:
    from netkit.swarm_nodes import SwarmNode

NODE_FILTERS = ("id", "label", "membership", "name", "node.label", "role")
NODE_HEADERS = {"ID": "ID", "Self": "", "Hostname": "HOSTNAME", "Status": "STATUS",
                "Availability": "AVAILABILITY", "ManagerStatus": "MANAGER STATUS",
                "EngineVersion": "ENGINE VERSION", "TLSStatus": "TLS STATUS", "Agent": "AGENT"}
NODE_TABLE = ("{{.ID}} {{if .Self}}*{{else}} {{end}}\t{{.Hostname}}\t{{.Status}}\t"
              "{{.Availability}}\t{{.ManagerStatus}}\t{{.Agent}}")
PROMOTED = "Node {ref} promoted to a manager in the swarm."
DEMOTED = "Manager {ref} demoted in the swarm."
ALREADY = {"manager": "Node {id} is already a manager.", "worker": "Node {id} is already a worker."}


def _check(filters: Mapping[str, list[str]]) -> None:
    from netkit.errors import InvalidArgument
    for key, allowed in (("role", ("manager", "worker")), ("membership", ("accepted", "pending"))):
        for value in filters.get(key, []):
            if value and value.lower() not in allowed:
                raise InvalidArgument(f"Invalid {key} filter: '{value}'")


def _match(n: "SwarmNode", filters: Mapping[str, list[str]]) -> bool:
    """Docker's node filters: name and id are prefixes; values of one key are alternatives."""
    tests = {"role": lambda v: not v or v.lower() == n.role,
             "membership": lambda v: not v or v.lower() == "accepted",
             "name": lambda v: n.hostname.startswith(v),
             "id": lambda v: n.id.startswith(v),
             "node.label": lambda v: render._label_match(n.labels, v),
             "label": lambda v: False}           # engine labels: a simulated node has none
    return all(any(tests[key](v) for v in values) for key, values in filters.items())


def row(n: "SwarmNode", agent: str) -> dict:
    return {"ID": n.id, "Self": n.current, "Hostname": n.hostname, "Status": n.status,
            "Availability": n.availability.capitalize(), "ManagerStatus": n.manager_status,
            "EngineVersion": "", "TLSStatus": "", "Agent": agent}


def ls(quiet: bool, filters: tuple[str, ...], fmt: str | None) -> None:
    """`docker node ls` on the node acting (a manager)."""
    wanted = render.parse_filters(filters, NODE_FILTERS)
    _check(wanted)
    eng = engine()
    nodes = [n for n in eng.node_list() if _match(n, wanted)]
    nodes.sort(key=lambda n: render.natural_key(n.hostname))
    agents = eng.swarm_agents() if not quiet else {}
    rows = [row(n, agents.get(n.hostname, "")) for n in nodes]
    for line in render.format_rows("{{.ID}}" if quiet else fmt, rows, NODE_HEADERS, NODE_TABLE):
        click.echo(line)


def set_role(refs: tuple[str, ...], role: str) -> None:
    """`docker node promote|demote NODE...`: a line per node; `Error: ...` per failure."""
    eng = engine()
    change = eng.node_promote if role == "manager" else eng.node_demote

    def show(ref: str, changed: object) -> str:
        if changed:
            return (PROMOTED if role == "manager" else DEMOTED).format(ref=ref)
        return ALREADY[role].format(id=eng.node_inspect([ref])[0]["ID"])
    if attempt(refs, change, show=show):
        click.get_current_context().exit(1)


PRETTY = """ID:\t\t\t{ID}{labels}
Hostname:              \t{hostname}
Joined at:             \t{CreatedAt}
Status:
 State:\t\t\t{state}
 Availability:         \t{availability}
 Address:\t\t{addr}{manager}
Platform:
 Operating System:\t{os}
 Architecture:\t\t{arch}"""
PRETTY_MANAGER = """
Manager Status:
 Address:\t\t{addr}
 Raft Status:\t\t{reachability}
 Leader:\t\t{leader}"""


def pretty(d: dict) -> str:
    """docker node inspect --pretty (Docker's template, without the engine's resources)."""
    labels = d["Spec"]["Labels"]
    manager = d.get("ManagerStatus")
    return PRETTY.format(
        ID=d["ID"], CreatedAt=d["CreatedAt"], hostname=d["Description"]["Hostname"],
        labels="".join(["\nLabels:"] + [f"\n - {k}" + (f"={v}" if v else "")
                                         for k, v in sorted(labels.items())]) if labels else "",
        state=d["Status"]["State"].capitalize(), availability=d["Spec"]["Availability"].capitalize(),
        addr=d["Status"]["Addr"], os=d["Description"]["Platform"]["OS"],
        arch=d["Description"]["Platform"]["Architecture"],
        manager=PRETTY_MANAGER.format(addr=manager["Addr"],
                                      reachability=manager["Reachability"].capitalize(),
                                      leader="Yes" if manager.get("Leader") else "No")
        if manager else "")


def inspect(fmt: str | None, is_pretty: bool, refs: tuple[str, ...]) -> None:
    """`docker node inspect [--pretty] NODE...`."""
    from netkit.cli import show_found
    eng = engine()
    if not is_pretty:
        show_found(fmt, refs, lambda ref: eng.node_inspect([ref])[0])
        return
    first = True

    def show(ref: str, found: object) -> str:
        nonlocal first
        text = ("" if first else "\n") + pretty(found[0])       # type: ignore[index]
        first = False
        return text
    if attempt(refs, lambda ref: eng.node_inspect([ref]), show=show):
        click.get_current_context().exit(1)
