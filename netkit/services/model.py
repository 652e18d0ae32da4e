"""Swarm objects in the cluster store: services, tasks, secrets, configs and node attributes.

Everything a swarm shares beyond membership and networks is a JSON object
of a kind in the cluster store (`ClusterTx.objects / get_object /
put_object / delete_object`, both backends). This module is the one
mapping between those objects and the dataclasses every part uses:

- the managers' service API and reconciler (netkit/services/manager.py,
  scheduler.py) write `Service` and `Task` objects;
- each node's agent runs the tasks assigned to its node (netkit/services/
  runner.py) and writes back their observed state;
- the load balancing (netkit/services/lb.py) and the resolver read the
  services' VIPs and the running tasks' addresses.

Ids of swarm objects are 25 lowercase base-36 characters, as swarmkit's.
Times are netkit.ids.now() strings. A node's id is derived from the cluster
id and the node's name, so it exists without a write.
"""

from __future__ import annotations

import hashlib
import secrets as _secrets
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

SERVICE, TASK, SECRET, CONFIG, NODE = "service", "task", "secret", "config", "node"

REPLICATED, GLOBAL = "replicated", "global"
VIP, DNSRR = "vip", "dnsrr"
INGRESS_MODE, HOST_MODE = "ingress", "host"
ACTIVE, PAUSE, DRAIN = "active", "pause", "drain"

# task states, in swarmkit's order (api/types.proto TaskState)
NEW, PENDING, ASSIGNED, ACCEPTED, PREPARING, READY, STARTING, RUNNING = (
    "new", "pending", "assigned", "accepted", "preparing", "ready", "starting", "running")
COMPLETE, SHUTDOWN, FAILED, REJECTED, REMOVE, ORPHANED = (
    "complete", "shutdown", "failed", "rejected", "remove", "orphaned")
STATES = (NEW, PENDING, ASSIGNED, ACCEPTED, PREPARING, READY, STARTING, RUNNING,
          COMPLETE, SHUTDOWN, FAILED, REJECTED, REMOVE, ORPHANED)
TERMINAL = frozenset({COMPLETE, SHUTDOWN, FAILED, REJECTED, REMOVE, ORPHANED})
# desired states a manager sets: RUNNING, SHUTDOWN (stop, keep as history) or REMOVE
TASK_HISTORY = 5          # old tasks kept per slot (swarmkit's TaskHistoryRetentionLimit)

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def _base36(n: int, width: int) -> str:
    out = []
    for _ in range(width):
        n, r = divmod(n, 36)
        out.append(_ALPHABET[r])
    return "".join(reversed(out))


def new_object_id() -> str:
    """A fresh swarm object id: 25 base-36 characters."""
    return _base36(_secrets.randbits(130), 25)


def node_id(cluster_id: str, node: str) -> str:
    """The swarm id of the member `node` (stable: the cluster id and the node's name)."""
    return _base36(int.from_bytes(hashlib.sha256(f"{cluster_id}/{node}".encode()).digest(), "big"),
                   25)


def _from(cls: type, d: dict) -> Any:
    """A dataclass from its dict, ignoring keys it does not know (objects written by newer code)."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True, slots=True)
class NodeAttrs:
    """What `node update` sets on a member (object kind "node", keyed by the node's name)."""

    availability: str = ACTIVE           # active | pause | drain
    labels: dict[str, str] = field(default_factory=dict)
    version: int = 0                     # bumped by each `node update / promote / demote`
    updated: str = ""                    # when (netkit.ids.now()); "" = never updated

    def to_dict(self) -> dict:
        return {"availability": self.availability, "labels": dict(self.labels),
                "version": self.version, "updated": self.updated}

    @classmethod
    def from_dict(cls, d: dict | None) -> "NodeAttrs":
        return cls() if not d else _from(cls, d)


def node_attrs(c: Any, node: str) -> NodeAttrs:
    """The attributes of member `node` in cluster transaction `c` (defaults when never set)."""
    return NodeAttrs.from_dict(c.get_object(NODE, node))


@dataclass(frozen=True, slots=True)
class PortConfig:
    """One `--publish`: published port on the nodes, target port in the tasks."""

    published: int
    target: int
    protocol: str = "tcp"                # tcp | udp
    mode: str = INGRESS_MODE             # ingress (routing mesh) | host


@dataclass(frozen=True, slots=True)
class FileRef:
    """A granted secret or config: `source` its name, `target` the file name in the task
    (a secret under /run/secrets/; a config's target is an absolute path, default /NAME)."""

    source: str
    target: str
    mode: int = 0o444
    uid: str = "0"
    gid: str = "0"


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    condition: str = "any"               # none | on-failure | any
    max_attempts: int = 0                # 0: unlimited
    delay: float = 5.0                   # s between a task's end and its replacement
    window: float = 0.0                  # s over which attempts are counted (0: forever)


@dataclass(frozen=True, slots=True)
class UpdateConfig:
    parallelism: int = 1
    delay: float = 0.0                   # s between two batches
    order: str = "stop-first"            # stop-first | start-first
    failure_action: str = "pause"        # pause | continue | rollback
    monitor: float = 5.0                 # s a new task must run to count as updated
    max_failure_ratio: float = 0.0


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """What `service create` / a stack's service asks for. The command stands in for the image."""

    name: str
    command: tuple[str, ...]
    mode: str = REPLICATED               # replicated | global
    replicas: int = 1                    # replicated only
    networks: tuple[str, ...] = ()       # network ids (names resolved at create)
    aliases: dict[str, list[str]] = field(default_factory=dict)   # network id -> aliases (stacks)
    ports: tuple[PortConfig, ...] = ()
    endpoint_mode: str = VIP             # vip | dnsrr
    constraints: tuple[str, ...] = ()    # "node.hostname==n1", "node.labels.k!=v", ...
    env: dict[str, str] = field(default_factory=dict)
    hostname: str | None = None
    labels: dict[str, str] = field(default_factory=dict)          # service labels
    container_labels: dict[str, str] = field(default_factory=dict)
    secrets: tuple[FileRef, ...] = ()
    configs: tuple[FileRef, ...] = ()
    restart: RestartPolicy = RestartPolicy()
    update: UpdateConfig = UpdateConfig()
    rollback: UpdateConfig = UpdateConfig(failure_action="pause")
    stop_signal: str | None = None
    stop_grace_period: float = 10.0
    force_update: int = 0                # bumped by `service update --force`

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ServiceSpec":
        d = dict(d)
        d["command"] = tuple(d.get("command") or ())
        d["networks"] = tuple(d.get("networks") or ())
        d["constraints"] = tuple(d.get("constraints") or ())
        d["ports"] = tuple(_from(PortConfig, p) for p in d.get("ports") or ())
        d["secrets"] = tuple(_from(FileRef, s) for s in d.get("secrets") or ())
        d["configs"] = tuple(_from(FileRef, s) for s in d.get("configs") or ())
        for key, kind in (("restart", RestartPolicy), ("update", UpdateConfig),
                          ("rollback", UpdateConfig)):
            if isinstance(d.get(key), dict):
                d[key] = _from(kind, d[key])
        return _from(cls, d)


@dataclass(frozen=True, slots=True)
class Service:
    """A service as the managers keep it (object kind "service", keyed by id)."""

    id: str
    spec: ServiceSpec
    version: int = 1                     # bumped by every update of the spec
    created: str = ""
    updated: str = ""
    previous: ServiceSpec | None = None  # the spec before the last update (`service rollback`)
    vips: dict[str, str] = field(default_factory=dict)   # network id -> "10.0.9.2/24" (vip mode)
    update_status: dict[str, Any] = field(default_factory=dict)   # {"state", "started", "message"}

    @property
    def name(self) -> str:
        return self.spec.name

    def to_dict(self) -> dict:
        d = asdict(self)
        d["spec"] = self.spec.to_dict()
        d["previous"] = self.previous.to_dict() if self.previous else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Service":
        d = dict(d)
        d["spec"] = ServiceSpec.from_dict(d["spec"])
        d["previous"] = ServiceSpec.from_dict(d["previous"]) if d.get("previous") else None
        return _from(cls, d)


@dataclass(frozen=True, slots=True)
class Task:
    """One task (object kind "task", keyed by id): the managers set what it should be (node,
    desired state, the spec it runs); the node's agent reports what it is (state, container,
    addresses, exit code)."""

    id: str
    service_id: str
    service_name: str
    slot: int | None                     # replicated: 1..N; global: None (one per node)
    node: str = ""                       # the member it is assigned to ("" while pending)
    node_id: str = ""                    # that member's node_id() (global tasks are named by it)
    spec: ServiceSpec | None = None      # the service's spec when the task was made
    spec_version: int = 1
    desired: str = RUNNING               # running | shutdown | remove
    state: str = NEW
    message: str = ""                    # Docker's task message ("starting", "started", ...)
    error: str = ""                      # Docker's ERROR column ("task: non-zero exit (1)")
    since: str = ""                      # when `state` was entered
    created: str = ""
    container_id: str = ""
    exit_code: int | None = None
    addresses: dict[str, str] = field(default_factory=dict)   # network id -> "10.0.9.5/24"
    attempt: int = 0                     # restarts of its slot so far (--restart-max-attempts)
    retired_version: int = 0             # cluster version at which `desired` left running (0: not)

    @property
    def container_name(self) -> str:
        """Docker's name of the task's container: SERVICE.SLOT.TASKID (global: SERVICE.NODEID...)."""
        return f"{self.name}.{self.id}"

    @property
    def name(self) -> str:
        """`service ps`'s NAME: SERVICE.SLOT, or SERVICE.NODEID for a global task."""
        return f"{self.service_name}.{self.slot if self.slot is not None else self.node_id}"

    def with_state(self, state: str, now: str, **changes: Any) -> "Task":
        return replace(self, state=state, since=now, **changes)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["spec"] = self.spec.to_dict() if self.spec else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Task":
        d = dict(d)
        d["spec"] = ServiceSpec.from_dict(d["spec"]) if d.get("spec") else None
        return _from(cls, d)


@dataclass(frozen=True, slots=True)
class SecretObject:
    """A secret or a config (kinds "secret" / "config", keyed by id). A secret's `data` is
    sealed (netkit/services/secrets.py); a config's is base64 of the plain bytes."""

    id: str
    name: str
    data: str
    created: str = ""
    updated: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    version: int = 1                     # inspect's Version.Index

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SecretObject":
        return _from(cls, d)


def retire(c: Any, t: Task, desired: str, **changes: Any) -> Task:
    """`t` with desired state `desired` (shutdown | remove), as written in the cluster
    transaction `c`: `retired_version` is the version that transaction commits (both backends
    commit the version read + 1), kept when the task had already left running."""
    version = t.retired_version if t.desired != RUNNING and t.retired_version else \
        int(c.meta("version") or 0) + 1
    return replace(t, desired=desired, retired_version=version, **changes)


def services(c: Any) -> list[Service]:
    return [Service.from_dict(v) for _, v in c.objects(SERVICE)]


def service(c: Any, service_id: str) -> Service | None:
    d = c.get_object(SERVICE, service_id)
    return Service.from_dict(d) if d else None


def put_service(c: Any, s: Service) -> None:
    c.put_object(SERVICE, s.id, s.to_dict())


def tasks(c: Any, *, service_id: str | None = None, node: str | None = None) -> list[Task]:
    out = [Task.from_dict(v) for _, v in c.objects(TASK)]
    return [t for t in out if (service_id is None or t.service_id == service_id)
            and (node is None or t.node == node)]


def put_task(c: Any, t: Task) -> None:
    c.put_object(TASK, t.id, t.to_dict())
