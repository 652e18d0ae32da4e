"""A task leaves every node's rotation before its node stops it (acknowledged draining).

When a manager retires a task (desired state running -> shutdown or remove:
`model.retire`), it records on the task the cluster version at which that
becomes visible (`Task.retired_version`: the version its transaction
commits). Every member's load balancing then drops the task at its next
step: its VIP rules (netkit/services/lb.py) and its routing-mesh rules
(netkit/services/mesh.py). Each of those steps notes here the cluster version
it programmed its rules from (`applied`: read before the tasks, so the
rules reflect at least that version); `step`, the NODE_STEPS entry after
both, then acknowledges the lower of the two in the object of kind
`SEEN` ("lbseen") keyed by the node's name, {"version": V}.

An ack is written only when some retirement waits for it: a task retired at
a version the node has now applied, above its last ack, that has not ended
yet (`due`). A node acks once per batch of retirements; the ack's own
version bump asks for nothing more (no write loops); a settled swarm writes
nothing. A node with no containers acks like any other (its rules are
trivially applied).

The task's runner (netkit/services/runner.py) stops it once every member
that is up has acked `retired_version` or later (`hold`), or once DRAIN_MAX
seconds passed since it first saw the retirement: the bound for members that
never ack (an agent of an older netkit, one that is stuck, or one that just
went down). A task retired by an older manager (no `retired_version`) waits
the old fixed LEGACY_DRAIN. A member's ack goes when it leaves the swarm
(netkit/swarm.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterable

from netkit.services.model import RUNNING, TERMINAL, Task

if TYPE_CHECKING:
    from netkit.engine import Engine
    from netkit.store.cluster import ClusterStore

SEEN = "lbseen"             # object kind: node name -> {"version": V} its rules reflect
PARTS = ("lb", "mesh")      # the node steps whose rules must reflect V before the node acks V
DRAIN_MAX = 3.0             # s: the longest a runner waits for the acks
LEGACY_DRAIN = 0.5          # s: a task retired without retired_version (older manager)

Key = tuple[str, str]                          # (cluster id, node)
_applied: dict[Key, dict[str, int]] = {}       # part -> the version its rules reflect
_pending: dict[Key, frozenset[int]] = {}       # retirements not ended, as the lb step saw them
_acked: dict[Key, int] = {}                    # the last version acknowledged (as known here)


def version_of(c: Any) -> int:
    """The cluster version of the read `c` (read it before what it is the version of)."""
    return int(c.meta("version") or 0)


def pending(tasks: Iterable[Task]) -> frozenset[int]:
    """The retirement versions of the tasks retired but not ended yet (pure)."""
    return frozenset(t.retired_version for t in tasks
                     if t.desired != RUNNING and t.state not in TERMINAL and t.retired_version)


def due(acked: int, version: int, waiting: Iterable[int]) -> bool:
    """Must a node that acked `acked` and applied `version` ack now? When a retirement it
    has applied is above its last ack (pure)."""
    return any(acked < r <= version for r in waiting)


def applied(cluster_id: str, node: str, part: str, version: int,
            waiting: Iterable[int] | None = None) -> None:
    """Note that `part`'s rules on `node` reflect cluster `version` (the lb step also passes
    the retirements still waiting, from its read)."""
    key = (cluster_id, node)
    _applied.setdefault(key, {})[part] = version
    if waiting is not None:
        _pending[key] = frozenset(waiting)


def acks(c: Any) -> dict[str, int]:
    """Every member's acknowledged version in cluster read `c`."""
    return {node: int(v.get("version") or 0) for node, v in c.objects(SEEN)}


def lagging(members: Iterable[str], seen: dict[str, int], version: int,
            down: "set[str] | frozenset[str]" = frozenset()) -> set[str]:
    """The members up (not `down`) that have not acked `version` yet (pure)."""
    return {m for m in members if m not in down and seen.get(m, 0) < version}


def hold(c: Any, t: Task, waited: float, down: "set[str] | frozenset[str]",
         more_down: Callable[[], "set[str]"]) -> float:
    """Seconds the runner must still wait before it stops retired task `t`, first seen
    retired `waited` s ago (0: stop it now). `more_down`: members also down, asked only
    when some member is late (SQLite on one machine: agents not running)."""
    if waited >= DRAIN_MAX:
        return 0.0
    if not t.retired_version:
        return max(0.0, LEGACY_DRAIN - waited)
    late = lagging((m.node for m in c.members()), acks(c), t.retired_version, down)
    if late:
        late -= more_down()
    return DRAIN_MAX - waited if late else 0.0


def step(engine: "Engine", cluster: "ClusterStore", down: Any) -> None:
    """The NODE_STEPS entry after lb and mesh: acknowledge what both applied, when a
    retirement waits for it (one short transaction; nothing otherwise)."""
    key = (cluster.cluster_id, engine.node_name)
    parts = _applied.get(key, {})
    if any(p not in parts for p in PARTS):
        return None
    version = min(parts[p] for p in PARTS)
    if not due(_acked.get(key, 0), version, _pending.get(key, ())):
        return None
    try:
        with cluster.transaction() as w:
            have = int((w.get_object(SEEN, engine.node_name) or {}).get("version") or 0)
            if have >= version:
                raise _Unchanged(have)           # roll back: the version does not move
            w.put_object(SEEN, engine.node_name, {"version": version})
    except _Unchanged as exc:
        version = exc.args[0]
    _acked[key] = version
    return None


class _Unchanged(Exception):
    """The store holds this ack or a later one already."""


def forget(c: Any, node: str) -> None:
    """`node` leaves the swarm: its ack goes (in cluster transaction `c`)."""
    c.delete_object(SEEN, node)


__all__ = ["DRAIN_MAX", "LEGACY_DRAIN", "SEEN", "acks", "applied", "due", "forget", "hold",
           "lagging", "pending", "step", "version_of"]
