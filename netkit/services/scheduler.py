"""Where a swarm service's tasks go: constraints, eligible nodes, spreading (pure).

Docker's (swarmkit's) rules, on plain values so they are unit-tested alone:

- a constraint is `KEY==VALUE` or `KEY!=VALUE` with KEY one of node.id,
  node.hostname, node.role or node.labels.NAME (keys are case-insensitive,
  values compared case-insensitively as swarmkit's); a malformed one is
  refused with swarmkit's words (`parse_constraints`); an unknown key is
  accepted and matches no node (as swarmkit's);
- a node takes new tasks when its availability is active and it is up
  (pause and drain place nothing new; drain also moves tasks away: the
  reconciler's);
- tasks spread over the eligible nodes: fewest tasks of this service first,
  then fewest tasks overall, ties by name (`Placement`);
- when nothing fits, the task stays pending with swarmkit's explanation:
  "no suitable node (scheduling constraints not satisfied on 3 nodes)",
  the filters' failures from most to fewest (`explain`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from netkit.errors import InvalidArgument

OPERATORS = ("==", "!=")
_KEY = re.compile(r"^[a-z_][a-z0-9\-_.]+$", re.I)
_VALUE = re.compile(r"^[a-z0-9:\-_\s.*()?+\[\]\\^$|/]+$", re.I)
NO_SUITABLE = "no suitable node"


@dataclass(frozen=True, slots=True)
class Constraint:
    key: str              # lower case
    op: str               # == | !=
    value: str


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """What the scheduler knows of a member."""

    name: str                            # the node's name (its hostname)
    id: str                              # its swarm node id
    role: str = "worker"                 # manager | worker
    availability: str = "active"         # active | pause | drain
    labels: dict[str, str] = field(default_factory=dict)
    down: bool = False


def parse_constraint(expr: str) -> Constraint:
    """One `--constraint`, refused with swarmkit's message when malformed."""
    for op in OPERATORS:
        if op not in expr:
            continue
        key, value = (part.strip() for part in expr.split(op, 1))
        if not _KEY.match(key):
            raise InvalidArgument(f"key '{key}' is invalid")
        if not _VALUE.match(value):
            raise InvalidArgument(f"value '{value}' is invalid")
        return Constraint(key.lower(), op, value)
    raise InvalidArgument(f"constraint expected one operator from {', '.join(OPERATORS)}")


def parse_constraints(exprs: Iterable[str]) -> list[Constraint]:
    return [parse_constraint(e) for e in exprs]


def _attribute(key: str, node: NodeInfo) -> str | None:
    if key == "node.id":
        return node.id
    if key == "node.hostname":
        return node.name
    if key == "node.role":
        return node.role
    if key.startswith("node.labels."):
        wanted = key[len("node.labels."):]
        return next((v for k, v in node.labels.items() if k.lower() == wanted), None)
    return None


def satisfies(c: Constraint, node: NodeInfo) -> bool:
    """swarmkit's NodeMatches: an absent label equals nothing; an unknown key never matches."""
    known = c.key in ("node.id", "node.hostname", "node.role") or c.key.startswith("node.labels.")
    if not known:
        return False
    have = _attribute(c.key, node)
    equal = have is not None and have.lower() == c.value.lower()
    return equal if c.op == "==" else not equal


def matches(constraints: Sequence[Constraint], node: NodeInfo) -> bool:
    return all(satisfies(c, node) for c in constraints)


def ready(node: NodeInfo) -> bool:
    """Takes new tasks: up and active (pause and drain place nothing new)."""
    return not node.down and node.availability == "active"


def eligible(nodes: Iterable[NodeInfo], constraints: Sequence[Constraint]) -> list[NodeInfo]:
    return sorted((n for n in nodes if ready(n) and matches(constraints, n)), key=lambda n: n.name)


def explain(nodes: Iterable[NodeInfo], constraints: Sequence[Constraint],
            host_port_busy: Iterable[str] = ()) -> str:
    """The pending task's error when no node fits (swarmkit's pipeline: each node counts
    against the first filter it fails; most failures first)."""
    busy = set(host_port_busy)
    counts = {"ready": 0, "constraint": 0, "port": 0}
    for n in nodes:
        if not ready(n):
            counts["ready"] += 1
        elif not matches(constraints, n):
            counts["constraint"] += 1
        elif n.name in busy:
            counts["port"] += 1
    words = {"ready": ("node not available for new tasks", "nodes not available for new tasks"),
             "constraint": ("scheduling constraints not satisfied on 1 node",
                            "scheduling constraints not satisfied on {} nodes"),
             "port": ("host-mode port already in use on 1 node",
                      "host-mode port already in use on {} nodes")}
    parts = []
    for key, count in sorted(counts.items(), key=lambda kv: -kv[1]):
        if count:
            one, many = words[key]
            if key == "ready":
                parts.append(f"1 {one}" if count == 1 else f"{count} {many}")
            else:
                parts.append(one if count == 1 else many.format(count))
    return f"{NO_SUITABLE} ({'; '.join(parts)})" if parts else NO_SUITABLE


class Placement:
    """Spreads the new tasks of one service over its eligible nodes.

    `mine` counts this service's active tasks per node, `total` every service's;
    each `pick` takes the node with the fewest of this service's, then the
    fewest overall, then the first by name, and counts the task it placed."""

    def __init__(self, nodes: Iterable[NodeInfo], constraints: Sequence[Constraint],
                 mine: dict[str, int], total: dict[str, int],
                 host_port_busy: Iterable[str] = ()) -> None:
        self.nodes = list(nodes)
        self.constraints = list(constraints)
        self.busy = set(host_port_busy)
        self.candidates = [n for n in eligible(self.nodes, self.constraints) if n.name not in self.busy]
        self.mine = dict(mine)
        self.total = total                  # shared: the next service's placement sees these

    def pick(self, exclude: Iterable[str] = ()) -> NodeInfo | None:
        skip = set(exclude)
        options = [n for n in self.candidates if n.name not in skip]
        if not options:
            return None
        best = min(options, key=lambda n: (self.mine.get(n.name, 0), self.total.get(n.name, 0),
                                           n.name))
        self.mine[best.name] = self.mine.get(best.name, 0) + 1
        self.total[best.name] = self.total.get(best.name, 0) + 1
        return best

    def error(self) -> str:
        return explain(self.nodes, self.constraints, self.busy)


def cluster_nodes(c: Any, cluster_id: str, down: Iterable[str] = ()) -> list[NodeInfo]:
    """The members of cluster transaction `c` as the scheduler sees them (their `node
    update` attributes; `down`: the members taken as down)."""
    from netkit.services.model import node_attrs, node_id
    gone = set(down)
    out = []
    for m in c.members():
        attrs = node_attrs(c, m.node)
        out.append(NodeInfo(m.node, node_id(cluster_id, m.node), m.role, attrs.availability,
                            dict(attrs.labels), m.node in gone))
    return sorted(out, key=lambda n: n.name)
