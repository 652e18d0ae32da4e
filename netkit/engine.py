"""netkit's public library API: one method per user action (ARCHITECTURE.md §4).

`Engine` is built by composition, as httpx's Client is: `__init__` makes
every collaborator explicitly, and each public method hands the call to
the one that owns the noun:

    store, host_store  Store       the node's SQLite store; the real host's (node registry)
    _kernel       KernelSessions  kernel sessions of the node, the test fault plan (actions.py)
    _actions      Actions         one store transaction + one undo journal per action (actions.py)
    _firewall     FirewallSync    the node's nftables table, rendered from the store (fwsync.py)
    _resolver     ResolverClient  the node's resolver daemon: start, update, status (resolver.py)
    _processes    Processes       a container's processes: sandbox, the node agent's client (processes.py)
    cluster       ClusterScope    swarm networks, cluster IPAM, the cluster's action hooks (cluster.py)
    _scopes       Scopes          LocalScope | ClusterScope by the driver's declared scope (scope.py)
    _networks     Networks        network create / ls / inspect / rm / prune (networks.py)
    _endpoints    Endpoints       join / leave, default route, published ports (endpoints.py)
    _containers   Containers      create / rm / rename / connect / disconnect, networks at start/stop (containers.py)
    _attached     AttachedSandboxes  network namespaces the caller owns: attach / detach (attached.py)
    runtime       Runtime         run / start / stop / restart / kill / wait / logs / exec; the agent's side (runtime.py)
    _swarm        Swarm           swarm init / join / leave, members, roles (swarm.py)
    _swarm_nodes  SwarmNodes      node ls / inspect / promote / demote / update on a manager (swarm_nodes.py)
    _registry     NodeRegistry    simulated nodes and LANs, their agents, kept on the real host (nodes.py)
    _system       System          system check / prune / reset (system.py)

Every action validates first, then runs in one store transaction
(BEGIN IMMEDIATE) with one kernel undo journal: on any exception the
journal is replayed newest-first and the store rolled back, so a failed
action leaves nothing behind. The CLI is a thin layer over this class.

One Engine may be shared by threads (each public call holds the engine's
lock; each thread has a store connection of its own) and keeps working in
a child after fork(): see the end of this module and docs/library.md.
"""

from __future__ import annotations

import functools
import inspect
import os
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence, TypeVar, cast

from netkit.actions import Actions, KernelSessions
from netkit.attached import AttachedSandboxes
from netkit.cluster import ClusterScope
from netkit.containers import Containers
from netkit.endpoints import Endpoints
from netkit.errors import NetkitError, NotFound
from netkit.fwsync import FirewallSync
from netkit.ids import CONTAINER_NAME_RE, NAME_RE, NODE_NAME_RE, new_id, now  # noqa: F401
from netkit.kernel.session import FaultPlan
from netkit.model import Container, Endpoint, Lan, Network, Node, PortMapping
from netkit.networks import Networks
from netkit.nodes import NodeRegistry
from netkit.paths import NodePaths, default_root, default_run
from netkit.processes import Processes
from netkit.resolver import ResolverClient
from netkit.runtime import Runtime
from netkit.scope import LocalScope, Scopes
from netkit.specs import ContainerSpec, NetworkSpec
from netkit.store import Store
from netkit.swarm import Swarm
from netkit.swarm_nodes import SwarmNodes
from netkit.system import System

ORPHAN_GRACE = 3.0      # seconds system_check waits for the kernel to finish deleting veths

if TYPE_CHECKING:
    from collections.abc import Generator, Iterable, Mapping
    from datetime import datetime

    from scapy.packet import Packet

    from netkit.agent.logs import LogEntry
    from netkit.events import Event
    from netkit.capture.session import Capture
    from netkit.capture.targets import Target
    from netkit.services.manager import Services
    from netkit.services.model import SecretObject, Service, ServiceSpec, Task
    from netkit.store.cluster import Member
    from netkit.swarm_nodes import SwarmNode


class Engine:
    """Docker's networking verbs on one node ("" / None = the real machine).

    `in_agent=True` is an engine of the node's own agent (netkit/agent/): it
    does not start, ask or poke agents after its actions.
    """

    def __init__(self, node: str | None = None, *, root: str | None = None,
                 run: str | None = None, in_agent: bool = False) -> None:
        self._lock = threading.RLock()            # held by each public call (see _guarded)
        self._closed = False
        self.root = root or default_root()
        self.run_root = run or default_run()
        self.node_name = node or ""
        self.paths = NodePaths.of(self.node_name, self.root, self.run_root)
        if self.node_name:
            # the real host's store keeps the registry of simulated nodes and LANs
            self.host_store = Store(NodePaths.of("", self.root, self.run_root).db, per_thread=True)
            found = self.host_store.read().node(self.node_name)
            if found is None:
                raise NotFound(f"node {self.node_name} not found")
            self.node = found
            self.store = Store(self.paths.db, per_thread=True)
        else:
            self.node = Node(name="")
            self.store = self.host_store = Store(self.paths.db, per_thread=True)
        self._kernel = KernelSessions(self.node.netns, faults=FaultPlan.from_env())
        self._actions = Actions(self.store, self.node, self._kernel)
        self._firewall = FirewallSync(self.store, self.paths, self.node)
        self._resolver = ResolverClient(self.store, self.paths, self.node)
        self._processes = Processes(self.store, self.paths, self.node, root=self.root,
                                    run_root=self.run_root, in_agent=in_agent)
        self.cluster = ClusterScope(self.store, self.root, self.run_root, self.node, self._actions,
                                    self._kernel, self._resolver, self._processes,
                                    in_agent=in_agent)
        self._scopes = Scopes(LocalScope(self.node_name), self.cluster)
        self._networks = Networks(self.store, self._actions, self._firewall, self._scopes)
        self._endpoints = Endpoints(self.node, self._scopes, self._firewall)
        self._containers = Containers(self.store, self._actions, self.paths, self.node,
                                      self._networks, self._endpoints, self._processes,
                                      self._firewall, self._resolver)
        self._attached = AttachedSandboxes(self.store, self._actions, self.paths, self.node,
                                           self._endpoints, self._containers, self._resolver)
        self.runtime = Runtime(self.store, self._actions, self._containers, self._processes,
                               self._resolver)
        self._swarm = Swarm(self.store, self.host_store, self.root, self.run_root, self.node,
                            self._actions, self.cluster, self._containers)
        self._swarm_nodes = SwarmNodes(self._swarm)
        # nodes and LANs live on the real host: a node's engine acts there with a runner of its own
        self._host_kernel = KernelSessions(None, faults=FaultPlan.from_env()) if self.node_name \
            else self._kernel
        host_actions = Actions(self.host_store, Node(name=""), self._host_kernel) \
            if self.node_name else self._actions
        self._registry = NodeRegistry(self.host_store, host_actions, self.root, self.run_root,
                                      self._open_node)
        self._system = System(self.store, self.paths, self.node_name, self._kernel, self._actions,
                              self._firewall, self._resolver, self.cluster, self._swarm,
                              self._networks, self._containers, self._processes)
        self._networks.ensure_predefined()
        self._processes.heal()       # an agent that was killed: back before anything reads states
        _ENGINES.add(self)

    def _open_node(self, name: str) -> "Engine":
        return Engine(name, root=self.root, run=self.run_root)

    @classmethod
    def from_env(cls, node: str | None = None, *, host: bool = False) -> "Engine":
        """The engine of `node`, else $NETKIT_NODE, else the real host (`host=True`: always the host)."""
        if host:
            return cls(None)
        return cls(node or os.environ.get("NETKIT_NODE") or None)

    @property
    def faults(self) -> FaultPlan | None:
        """Test hook: make the Nth kernel call of each action fail (FaultPlan)."""
        return self._kernel.faults

    @faults.setter
    def faults(self, plan: FaultPlan | None) -> None:
        self._kernel.faults = plan

    def close(self) -> None:
        """Release the engine's store connections and kernel handles; idempotent. Any other
        call afterwards raises NetkitError ("this Engine is closed")."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._close()

    def _close(self) -> None:
        if self._host_kernel is not self._kernel:
            self._host_kernel.close()
        self._kernel.close()
        self.cluster.close()
        self.store.close()
        if self.host_store is not self.store:
            self.host_store.close()

    def __enter__(self) -> "Engine":
        """`with Engine(...) as engine:` closes it at the end."""
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- networks ---------------------------------------------------------------
    def create_network(self, spec: NetworkSpec) -> Network:
        """`docker network create`. On failure nothing is left in the kernel or the store."""
        return self._networks.create(spec)

    def networks(self) -> list[Network]:
        """`docker network ls` (unsorted; the CLI sorts and filters)."""
        return self._networks.ls()

    def network(self, ref: str) -> Network:
        """The network `ref` names (`docker network inspect`, one object)."""
        return self._networks.get(ref)

    def network_members(self, net: Network) -> list[tuple[Endpoint, str]]:
        """The endpoints on `net`, each with its container's name."""
        return self._networks.members(net)

    def inspect_networks(self, refs: list[str]) -> list[dict[str, Any]]:
        """`docker network inspect`."""
        return self._networks.inspect(refs)

    def remove_network(self, ref: str) -> Network:
        """`docker network rm`: refused for predefined networks and while endpoints are attached."""
        return self._networks.remove(ref)

    def prune_networks(self) -> list[str]:
        """`docker network prune -f`: every user network without endpoints."""
        return self._networks.prune()

    # -- containers -------------------------------------------------------------
    def create_container(self, spec: ContainerSpec) -> Container:
        """`docker create`: the sandbox and the networks it will join (state created:
        nothing runs, no address is held until it starts)."""
        return self._containers.create(spec)

    def run(self, spec: ContainerSpec) -> tuple[Container, int | None]:
        """`docker run`: create and start; with `detach` returns at once (exit code None),
        else waits for the command and returns its exit code."""
        return self.runtime.run(spec)

    def start(self, ref: str, *, attach: bool = False) -> tuple[Container, int | None]:
        """`docker start [-a]`: join the networks again, start the command."""
        return self.runtime.start(ref, attach=attach)

    def stop(self, ref: str, timeout: int | None = None) -> Container:
        """`docker stop [-t N]`: stop signal, SIGKILL after N s; it leaves its networks."""
        return self.runtime.stop(ref, timeout)

    def restart(self, ref: str, timeout: int | None = None) -> Container:
        """`docker restart [-t N]`."""
        return self.runtime.restart(ref, timeout)

    def kill(self, ref: str, signal: str | int = "KILL") -> Container:
        """`docker kill [-s SIGNAL]`."""
        return self.runtime.kill(ref, signal)

    def wait(self, ref: str) -> int:
        """`docker wait`: the exit code, once the container's process ended."""
        return self.runtime.wait(ref)

    def logs(self, ref: str, *, tail: int | None = None) -> "list[LogEntry]":
        """`docker logs [--tail N]`: netkit.agent.logs.LogEntry list, oldest first."""
        return self.runtime.logs(ref, tail=tail)

    def follow_logs(self, ref: str, *, tail: int | None = None) -> "Iterator[LogEntry]":
        """`docker logs -f`: entries as they come, until the container stops."""
        return self.runtime.follow_logs(ref, tail=tail)

    def rename(self, ref: str, new_name: str) -> Container:
        """`docker rename`."""
        return self._containers.rename(ref, new_name)

    def container_dir(self, ref: str) -> str:
        """The container's run directory (its /etc files, logs, namespaces)."""
        return self.paths.container_dir(self._containers.get(ref).id)

    def agent_status(self) -> dict[str, Any]:
        """The node agent: {running, pid, started, containers, applied}."""
        return self._processes.agent_status()

    def exec(self, container: str, command: list[str]) -> int:
        """`docker exec`: run a command inside a running container; returns its exit code."""
        return self.runtime.exec(container, command)

    def exec_output(self, container: str, command: list[str], *, stderr: bool = False,
                    timeout: float | None = None) -> tuple[int, str]:
        """`docker exec` with the command's output captured: (exit code, stdout [+ stderr]).

        With `timeout` the command is killed when it runs longer (exit code 137).
        """
        out: list[bytes] = []
        code = self.runtime.exec(container, command, capture=out, capture_stderr=stderr,
                                 timeout=timeout)
        return code, b"".join(out).decode(errors="replace")

    def remove_container(self, ref: str, *, force: bool = False) -> Container:
        """`docker rm [-f]`: kill, leave every network, delete the sandbox."""
        return self._containers.remove(ref, force=force)

    def containers(self, all: bool = False) -> list[Container]:
        """`docker ps [-a]`."""
        return self._containers.ps(all=all)

    def container(self, ref: str) -> Container:
        """The container `ref` names (`docker inspect`, one object)."""
        return self._containers.get(ref)

    def inspect_containers(self, refs: list[str]) -> list[dict[str, Any]]:
        """`docker inspect` for containers."""
        return self._containers.inspect(refs)

    def port(self, container: str) -> list[PortMapping]:
        """`docker port`: the container's published ports, each host binding (a port
        published on every address of a dual-stack container: 0.0.0.0 and ::)."""
        return self._containers.ports(container)

    def connect(self, network: str, container: str, *, aliases: tuple[str, ...] = (),
                ipv4: str | None = None, ipv6: str | None = None,
                links: tuple[str, ...] = ()) -> Endpoint:
        """`docker network connect`: live, on a running or created container."""
        return self._containers.connect(network, container, aliases=aliases, ipv4=ipv4,
                                        ipv6=ipv6, links=links)

    def disconnect(self, network: str, container: str, *, force: bool = False) -> None:
        """`docker network disconnect`."""
        return self._containers.disconnect(network, container, force=force)

    # -- network namespaces the caller owns (CNI runtimes) -------------------------------
    def attach(self, netns: str | int, network: str, *, ifname: str = "eth0",
               name: str | None = None, aliases: Sequence[str] = (), ip: str | None = None,
               ip6: str | None = None, mac: str | None = None,
               sandbox: str | None = None) -> tuple[Container, Endpoint]:
        """Connect a network namespace the caller made to `network` (what a CNI ADD does).

        `netns` is a PID (its /proc/PID/ns/net), a path (/var/run/netns/X,
        /proc/PID/ns/net) or a name under /run/netns. It gets the interface
        `ifname` with an address from the network's IPAM (`ip` / `ip6`: static
        ones, `mac`: its MAC), a default route via the network's gateway when it
        has none, loopback up, and its names (`name`, else a random one, and
        `aliases`) in the embedded DNS, which answers at 127.0.0.11 inside it.
        `sandbox` is the caller's key for it (CNI's CONTAINERID), by which
        `detach` finds it even once the namespace is gone; one namespace may be
        attached to several networks. It shows as a running container without a
        command (`netkit ps`); netkit never kills its processes, never deletes
        the namespace and makes no mount namespace for it. Returns the sandbox
        and the new endpoint.
        """
        return self._attached.attach(netns, network, ifname=ifname, name=name, aliases=aliases,
                                     ip=ip, ip6=ip6, mac=mac, sandbox=sandbox)

    def detach(self, netns: str | int | None, network: str, *,
               sandbox: str | None = None) -> bool:
        """Undo `attach` of `netns` (or of the caller's key `sandbox`) to `network`.

        Removes the interface, its addresses (back to the pool) and its names;
        after the last network the record and netkit's name for the namespace
        go too, the namespace and its processes stay. Idempotent: False when
        nothing was attached (also when the namespace is gone already).
        """
        return self._attached.detach(netns, network, sandbox=sandbox)

    def attached(self, *, netns: str | int | None = None,
                 sandbox: str | None = None) -> Container | None:
        """The attached sandbox of `netns` or of the caller's key `sandbox` (None: none)."""
        return self._attached.lookup(netns, sandbox=sandbox)

    def capture(self, target: "str | Target", *, iface: str | None = None,
                filter: str | None = None, count: int | None = None,
                timeout: float | None = None, pcap: str | None = None,
                on_packet: "Callable[[Packet], None] | None" = None) -> "Capture":
        """`tcpdump` on a container, ``network:NAME``, ``node:NAME`` or ``lan:NAME``.

        A context manager: entering returns once the capture is ready (no
        packet of what follows is lost); leaving ends it, and ``cap.packets``
        is a scapy PacketList. `filter` is a tcpdump expression; `count` and
        `timeout` (seconds) end the capture by themselves; `pcap` streams to
        a pcap file; `on_packet` gets each packet as it is decoded.
        """
        from netkit.capture.session import capture          # imports no scapy until it starts
        return capture(self, target, iface=iface, filter=filter, count=count,
                       timeout=timeout, pcap=pcap, on_packet=on_packet)

    # -- events ------------------------------------------------------------------
    def events(self, since: "str | float | datetime | None" = None,
               until: "str | float | datetime | None" = None,
               filters: "Mapping[str, Sequence[str]] | Sequence[str] | None" = None
               ) -> "Generator[Event, None, None]":
        """`docker events`: the node's network and container events (netkit.events.Event),
        oldest first. `since` / `until`: a Unix time, an RFC 3339 date/time, a datetime or a
        duration before now ("10m"); without `since` only events from this call on. Without
        `until` it follows new events for ever: stop by leaving the loop (or `close()` the
        iterator). `filters`: {"type": ["network"], "event": [...], "network": [...],
        "container": [...]} or ["type=network", ...] (Docker's --filter)."""
        from netkit import events
        return events.stream(self.store, since, until, filters)

    # -- the resolver -----------------------------------------------------------
    def dns_status(self) -> dict[str, Any]:
        """`netkit dns status`: pid, running, served version and sandboxes; `applied`: on a
        swarm member, the cluster version the node agent applied (the other nodes' names)."""
        member = self.cluster.membership() is not None
        return {**self._resolver.status(),
                "applied": self._processes.agent_status()["applied"] if member else None}

    def dns_log(self) -> str:
        """`netkit dns logs`: the resolver's log file."""
        return self._resolver.log()

    # -- swarm ------------------------------------------------------------------
    def swarm_init(self, *, advertise_addr: str | None = None,
                   cluster_store: str | None = None) -> str:
        """`docker swarm init [--advertise-addr ADDR]`: a new cluster with this node as its
        manager; `cluster_store` "etcd://h:p[,h:p...]" keeps it in etcd (default: the
        embedded SQLite store). Returns the cluster's id."""
        return self._swarm.init(advertise_addr, cluster_store)

    def swarm_join(self, manager: str | None = None, *, token: str | None = None,
                   remote: str | None = None) -> str:
        """`docker swarm join --token TOKEN ADDR[:PORT]` (over the network: `token`,
        `remote`), or join the cluster of node `manager` (same LAN, one machine) as a
        worker. Returns the cluster's id."""
        return self._swarm.join(manager, token=token, remote=remote)

    def swarm_join_token(self, role: str = "worker", rotate: bool = False) -> str:
        """`docker swarm join-token -q [--rotate] worker|manager` (managers only); `rotate`:
        a new token replaces the old one, which admits nobody any more."""
        return self._swarm.join_token(role, rotate)

    def swarm_advertise(self) -> str:
        """The "ip:port" other nodes join this member by."""
        return self._swarm.advertise()

    def swarm_leave(self, force: bool = False) -> None:
        """`docker swarm leave [-f]`: -f also disconnects this node's containers from
        swarm networks; the last member to leave deletes the cluster's state."""
        return self._swarm.leave(force)

    def swarm_members(self) -> "list[Member]":
        """The members of this node's cluster."""
        return self._swarm.members()

    def swarm_nodes(self) -> "list[tuple[Member, str]]":
        """`docker node ls` on a member: each member and its status, "Ready" or "Down"."""
        return self._swarm.nodes()

    def swarm_info(self) -> dict[str, Any]:
        """The swarm section of `netkit info`: state, cluster, role, advertise address, the
        store's url and each endpoint's health, member counts, members down."""
        return self._swarm.info()

    def node_list(self) -> "list[SwarmNode]":
        """`docker node ls` on a manager: the swarm's nodes (ID, hostname, status,
        availability, manager status; `current`: this node)."""
        return self._swarm_nodes.ls()

    def node_inspect(self, refs: "Iterable[str]") -> list[dict[str, Any]]:
        """`docker node inspect NODE...` on a manager: Docker's JSON (hostname, id, unique id
        prefix or "self")."""
        return self._swarm_nodes.inspect(refs)

    def node_promote(self, node: str) -> bool:
        """`docker node promote NODE`: False when it is a manager already."""
        return self._swarm_nodes.set_role(node, "manager")

    def node_demote(self, node: str) -> bool:
        """`docker node demote NODE`: False when it is a worker already; the last manager
        is refused."""
        return self._swarm_nodes.set_role(node, "worker")

    def node_update(self, node: str, *, availability: str | None = None,
                    label_add: "Mapping[str, str] | None" = None,
                    label_rm: "Iterable[str]" = ()) -> str:
        """`docker node update --availability active|pause|drain --label-add k=v --label-rm k
        NODE`; returns the node's id."""
        return self._swarm_nodes.update(node, availability=availability, label_add=label_add,
                                        label_rm=label_rm)

    def swarm_roles(self) -> dict[str, str]:
        """Each simulated node's role: "manager", "worker" or "" (not in a swarm)."""
        return self._swarm.roles()

    def swarm_agents(self) -> dict[str, str]:
        """Each simulated node's agent (`netkit node ls` AGENT): "running (pid N)" or
        "stopped"."""
        return self._registry.agents()

    # -- stacks (netkit/services/stack.py, stack_ops.py) -----------------------------
    def stack_deploy(self, name: str, files: Sequence[str], *, prune: bool = False,
                     out: "Callable[[str], None] | None" = None,
                     warn: "Callable[[str], None] | None" = None) -> list[str]:
        """`docker stack deploy -c FILE [-c FILE]... [--prune] NAME` (a manager): creates or
        updates in place the stack's networks, secrets, configs and services; nothing is made
        when a file is invalid. Returns Docker's lines (`Creating service NAME_web`), also
        given to `out` as they happen; warnings (`Ignoring unsupported options: links`) go to
        `warn`, else first into the lines."""
        from netkit.services import stack_ops
        return stack_ops.deploy(self, name, files, prune=prune, out=out, warn=warn)

    def stacks(self) -> list[tuple[str, int]]:
        """`docker stack ls`: (NAME, SERVICES) of each stack, by name."""
        from netkit.services import stack_ops
        return stack_ops.stacks(self)

    def stack_services(self, name: str) -> "list[Service]":
        """`docker stack services NAME`: the stack's services."""
        from netkit.services import stack_ops
        return stack_ops.services(self, name)

    def stack_tasks(self, name: str) -> "list[Task]":
        """`docker stack ps NAME`: the tasks of the stack's services."""
        from netkit.services import stack_ops
        return stack_ops.tasks(self, name)

    def stack_remove(self, name: str, *, out: "Callable[[str], None] | None" = None) -> list[str]:
        """`docker stack rm NAME`: Docker's `Removing service NAME_web` ... lines ([] when
        nothing is labelled with the stack)."""
        from netkit.services import stack_ops
        return stack_ops.remove(self, name, out=out)
    # -- swarm secrets and configs (netkit/services/secrets.py; managers only) ------------
    def secret_create(self, name: str, data: bytes,
                      labels: "Mapping[str, str] | None" = None) -> "SecretObject":
        """`docker secret create [--label K=V] NAME FILE|-`: the value sealed in the store."""
        from netkit.services import secrets
        return secrets.create(self, "secret", name, data, dict(labels or {}))

    def secrets(self) -> "list[SecretObject]":
        """`docker secret ls`."""
        from netkit.services import secrets
        return secrets.listing(self, "secret")

    def secret(self, ref: str) -> "SecretObject":
        """`docker secret inspect REF` (name, id or unique id prefix; never the value)."""
        from netkit.services import secrets
        return secrets.get(self, "secret", ref)

    def secret_remove(self, ref: str) -> "SecretObject":
        """`docker secret rm REF` (refused while a service uses it)."""
        from netkit.services import secrets
        return secrets.remove(self, "secret", ref)

    def config_create(self, name: str, data: bytes,
                      labels: "Mapping[str, str] | None" = None) -> "SecretObject":
        """`docker config create [--label K=V] NAME FILE|-`."""
        from netkit.services import secrets
        return secrets.create(self, "config", name, data, dict(labels or {}))

    def configs(self) -> "list[SecretObject]":
        """`docker config ls`."""
        from netkit.services import secrets
        return secrets.listing(self, "config")

    def config(self, ref: str) -> "SecretObject":
        """`docker config inspect REF` (name, id or unique id prefix)."""
        from netkit.services import secrets
        return secrets.get(self, "config", ref)

    def config_remove(self, ref: str) -> "SecretObject":
        """`docker config rm REF` (refused while a service uses it)."""
        from netkit.services import secrets
        return secrets.remove(self, "config", ref)
    # -- swarm services (netkit/services/manager.py; managers only) ---------------
    def _services(self) -> "Services":
        from netkit.services.manager import Services
        return Services(self)

    def service_create(self, spec: "ServiceSpec") -> "Service":
        """`docker service create`: the service, its VIPs and its first tasks, assigned."""
        return self._services().create(spec)

    def services(self) -> "list[Service]":
        """`docker service ls`: the swarm's services, by name."""
        return self._services().services()

    def service(self, ref: str) -> "Service":
        """A service by id, name or unique id prefix."""
        return self._services().service(ref)

    def service_update(self, ref: str, spec: "ServiceSpec", *, force: bool = False) -> "Service":
        """`docker service update`: the whole new spec; a rolling update when the tasks'
        part changed (or `force`)."""
        return self._services().update(ref, spec, force=force)

    def service_scale(self, scales: "Mapping[str, int]") -> None:
        """`docker service scale SVC=N...`."""
        return self._services().scale(dict(scales))

    def service_rollback(self, ref: str) -> "Service":
        """`docker service rollback`: back to the previous spec."""
        return self._services().rollback(ref)

    def service_remove(self, ref: str) -> "Service":
        """`docker service rm`."""
        return self._services().remove(ref)

    def service_tasks(self, ref: str | None = None) -> "list[Task]":
        """`docker service ps`: the tasks of one service (None: of all)."""
        return self._services().tasks(ref)

    def service_logs(self, ref: str, *, no_trunc: bool = False) -> "list[LogEntry]":
        """`docker service logs`: its tasks' lines, prefixed NAME.SLOT.TASKID@NODE."""
        return self._services().logs(ref, no_trunc=no_trunc)

    # -- simulated nodes and LANs -------------------------------------------------
    def create_lan(self, name: str, subnet: str, gateway: str | None = None) -> Lan:
        """`netkit lan create`: a simulated LAN switch (+ router address)."""
        return self._registry.create_lan(name, subnet, gateway)

    def lans(self) -> list[Lan]:
        """`netkit lan ls`."""
        return self._registry.lans()

    def remove_lan(self, name: str) -> None:
        """`netkit lan rm`: refused while nodes are attached."""
        return self._registry.remove_lan(name)

    def create_node(self, name: str, *, lan: str | None = None, ip: str | None = None,
                    gateway: str | None = None, dns: tuple[str, ...] = (),
                    state_dir: str | None = None, run_dir: str | None = None) -> Node:
        """`netkit node create`: a simulated host, optionally plugged into a LAN;
        `state_dir` / `run_dir`: its files in directories of its own (new or empty)."""
        return self._registry.create_node(name, lan=lan, ip=ip, gateway=gateway, dns=dns,
                                          state_dir=state_dir, run_dir=run_dir)

    def nodes(self) -> list[Node]:
        """`netkit node ls`."""
        return self._registry.nodes()

    def remove_node(self, name: str, *, force: bool = False) -> None:
        """`netkit node rm [-f]`: refused while the node has containers or user networks."""
        return self._registry.remove_node(name, force=force)

    def node_exec(self, name: str, command: list[str], capture: list[bytes] | None = None) -> int:
        """`netkit node exec`: run a command on the simulated host itself."""
        return self._registry.node_exec(name, command, capture)

    # -- system -----------------------------------------------------------------
    def system_check(self) -> list[str]:
        """`netkit system check`: drift between the store and the kernel, one line each.

        Teardown still in flight is not drift: the kernel deletes a removed netns's veths
        in the background, so host-side links reported as orphans are looked at again for
        up to ORPHAN_GRACE seconds before they are reported."""
        out = self._system.check()
        deadline = time.monotonic() + ORPHAN_GRACE
        while any(line.startswith("orphan link ") for line in out) and \
                time.monotonic() < deadline:
            time.sleep(0.05)
            out = self._system.check()
        return out

    def system_prune(self) -> list[str]:
        """`netkit system prune`: remove what netkit owns here that the store no longer describes."""
        return self._system.prune()

    def system_reset(self) -> list[str]:
        """`netkit system reset`: every container and user network, and all netkit made here."""
        return self._system.reset()

    def firewall_check(self) -> list[str]:
        """Drift between the node's applied nftables table and what the store implies."""
        return self._firewall.check()


# -- one Engine shared by threads, and fork() ---------------------------------------------------
# Every public method runs under the engine's (reentrant) lock, so threads sharing an Engine
# take turns, one action at a time; each thread also has a store connection of its own. The
# calls below only wait or read (a command's exit, output, logs, packets): they run unlocked,
# so one thread waiting does not hold up the others.
_UNLOCKED = frozenset({"wait", "exec", "exec_output", "logs", "follow_logs", "capture",
                       "dns_log", "container_dir", "close"})
_ENGINES: "weakref.WeakSet[Engine]" = weakref.WeakSet()
_F = TypeVar("_F", bound=Callable[..., Any])


def _guarded(fn: _F, locked: bool) -> _F:
    @functools.wraps(fn)
    def call(self: Engine, *args: Any, **kwargs: Any) -> Any:
        if self._closed:
            raise NetkitError("this Engine is closed: make a new one")
        if not locked:
            return fn(self, *args, **kwargs)
        with self._lock:
            return fn(self, *args, **kwargs)
    return cast(_F, call)


for _name, _fn in list(vars(Engine).items()):
    if not _name.startswith("_") and inspect.isfunction(_fn) and _name != "close":
        setattr(Engine, _name, _guarded(_fn, _name not in _UNLOCKED))


def _after_fork_in_child() -> None:
    """A forked child keeps using its parent's Engines: fresh locks (another thread may have
    held one at fork time), and no netlink handle of the parent's (replies would go to
    either process). Store connections reopen by themselves (Store.db); the netns worker
    thread restarts by itself (kernel/netns.py)."""
    for engine in list(_ENGINES):
        engine._lock = threading.RLock()
        for kernel in {id(engine._kernel): engine._kernel,
                       id(engine._host_kernel): engine._host_kernel}.values():
            _INHERITED_HANDLES.append(dict(kernel.cache))    # kept open, never used: the parent's
            kernel.cache.clear()


_INHERITED_HANDLES: list[object] = []
os.register_at_fork(after_in_child=_after_fork_in_child)
