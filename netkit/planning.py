"""Docker's rules for `run`, `network connect` and `network disconnect`, as pure planners.

Each planner takes the user's request and a read-only view of the node's store
(`StoreView`: the real `netkit.store.Tx` is one) and returns a plan, a frozen
value saying what to make: the network mode, the endpoints in join order with
their interface names and the addresses they ask for, the ports to publish.
It raises Docker's error for the first rule the request breaks, in the order
the checks always ran, and it changes nothing: no kernel call, no store write,
no address held. The Engine applies the plan inside its transaction; IP
allocation (which needs the write lock) and port binding stay there.

An `EndpointPlan` is not tied to an allocation: a created or stopped container
can keep its plans (`to_dict` / `from_dict`) and plan them again at start
(`EndpointPlan.spec()` -> `plan_endpoints`).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence, TypeVar, runtime_checkable

from netkit import drivers, validate
from netkit.ids import CONTAINER_NAME_RE
from netkit.errors import AlreadyExists, Conflict, Forbidden, InvalidArgument, NotFound
from netkit.model import Container, Endpoint, Network, Scope, State
from netkit.paths import container_netns
from netkit.ports import PortRequest, parse_expose, parse_publish
from netkit.refs import resolve
from netkit.specs import ContainerSpec, EndpointSpec

HOSTNAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9.-]{0,62}$")
IFACE_PREFIX = "com.docker.network.container_iface_prefix"


@runtime_checkable
class StoreView(Protocol):
    """The store reads the planners need (`netkit.store.Tx` has them all)."""

    def network_refs(self) -> list[tuple[str, str]]: ...
    def network(self, network_id: str) -> Network | None: ...
    def container_refs(self) -> list[tuple[str, str]]: ...
    def container_named(self, name: str) -> str | None: ...
    def container(self, container_id: str) -> Container | None: ...


# -- plans --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AddressRequest:
    """One address an endpoint asks for: `static` (--ip / --ip6 as given) or, when None,
    the lowest free address of the network's pool for `family`."""

    family: int
    static: str | None = None


@dataclass(frozen=True, slots=True)
class EndpointPlan:
    """One endpoint to make: where, under which name, asking for which addresses.

    A plain value (no address is held): it can be stored with a created or stopped
    container and planned again at start from `spec()`.
    """

    network_id: str
    network_name: str
    ifname: str                               # eth0, eth1, ... (the network's iface prefix)
    ipv4: AddressRequest | None = None        # None: no IPv4 address on this network
    ipv6: AddressRequest | None = None
    aliases: tuple[str, ...] = ()             # de-duplicated, in the order given
    links: tuple[str, ...] = ()               # "target[:alias]"
    mac: str | None = None                    # --mac-address, normalised; None: the driver's choice

    @property
    def static_ipv4(self) -> str | None:
        return self.ipv4.static if self.ipv4 else None

    @property
    def static_ipv6(self) -> str | None:
        return self.ipv6.static if self.ipv6 else None

    def requests(self) -> tuple[AddressRequest, ...]:
        """The address requests in allocation order (IPv4 first)."""
        return tuple(r for r in (self.ipv4, self.ipv6) if r is not None)

    def spec(self) -> EndpointSpec:
        """What the user asked for on this network, to plan the endpoint again (at start)."""
        return EndpointSpec(self.network_id, self.aliases, self.static_ipv4, self.static_ipv6,
                            self.mac, self.links)

    def endpoint(self, endpoint_id: str, container_id: str, *, mac: str, ipv4: str | None,
                 ipv6: str | None, host_ifname: str | None = None) -> Endpoint:
        """The `Endpoint` once its addresses are allocated and its MAC chosen."""
        return Endpoint(id=endpoint_id, network_id=self.network_id, container_id=container_id,
                        ifname=self.ifname, mac=mac, ipv4=ipv4, ipv6=ipv6, aliases=self.aliases,
                        links=self.links, static_ipv4=self.static_ipv4 is not None,
                        static_ipv6=self.static_ipv6 is not None, host_ifname=host_ifname,
                        network_name=self.network_name)

    def to_dict(self) -> dict:
        """JSON-ready form, for the store."""
        return {"network_id": self.network_id, "network_name": self.network_name,
                "ifname": self.ifname, "aliases": list(self.aliases), "links": list(self.links),
                "mac": self.mac,
                "ipv4": None if self.ipv4 is None else {"static": self.ipv4.static},
                "ipv6": None if self.ipv6 is None else {"static": self.ipv6.static}}

    @classmethod
    def from_dict(cls, d: Mapping) -> "EndpointPlan":
        def req(family: int) -> AddressRequest | None:
            r = d.get(f"ipv{family}")
            return None if r is None else AddressRequest(family, r.get("static"))
        return cls(d["network_id"], d["network_name"], d["ifname"], req(4), req(6),
                   tuple(d.get("aliases", ())), tuple(d.get("links", ())), d.get("mac"))


@dataclass(frozen=True, slots=True)
class RunPlan:
    """`docker run` / `docker create`: the sandbox and what it joins."""

    name: str                                  # without the leading "/"
    container_id: str
    mode: str                                  # network name, "host", "none" or "container:<id>"
    hostname: str
    netns: str | None                          # None: the node's own (host mode)
    network: Network | None                    # the --network network (None: container:<x>)
    shared: Container | None = None            # container:<x>: whose namespaces are joined
    networks: tuple[Network, ...] = ()         # --network, then the extra networks, in order
    endpoints: tuple[EndpointPlan, ...] = ()   # in join order; empty for host, none, container:
    ports: tuple[PortRequest, ...] = ()        # -p / -P requests (bound by the engine)

    @property
    def own_netns(self) -> bool:
        """The engine makes a new netns + UTS namespace for this container."""
        return self.shared is None and self.mode != "host"


@dataclass(frozen=True, slots=True)
class ConnectPlan:
    """`docker network connect`."""

    network: Network
    container: Container
    endpoint: EndpointPlan


@dataclass(frozen=True, slots=True)
class DisconnectPlan:
    """`docker network disconnect`."""

    network: Network
    container: Container
    endpoint: Endpoint                         # the one to remove
    remaining: tuple[Endpoint, ...] = field(default=())

    @property
    def reroute(self) -> bool:
        """Default route and published ports follow the remaining endpoints (own netns only)."""
        return bool(self.container.netns)


# -- looking things up ----------------------------------------------------------------
def find_network(view: StoreView, ref: str) -> Network:
    """The network `ref` names (full id, name, unique id prefix), or Docker's NotFound."""
    net = view.network(resolve("network", view.network_refs(), ref))
    assert net is not None
    return net


def find_container(view: StoreView, ref: str) -> Container:
    """The container `ref` names, as stored (see `plan_run`'s `live`).

    A full id or an exact name is one indexed read; only an id prefix (or no
    match) reads every container's id and name (refs.resolve's order).
    """
    key = ref.lstrip("/")
    ctr = view.container(key)
    if ctr is None and (cid := view.container_named(key)) is not None:
        ctr = view.container(cid)
    if ctr is None:
        ctr = view.container(resolve("container", view.container_refs(), ref))
    assert ctr is not None
    return ctr


# -- docker run ------------------------------------------------------------------------
def check_run(spec: ContainerSpec) -> None:
    """`docker run --rm` in the foreground needs a command (netkit has no image to run)."""
    if not spec.command and not spec.detach and spec.auto_remove:
        raise InvalidArgument("no command given")


def check_container_spec(spec: ContainerSpec) -> None:
    """The checks of `docker create` that need no store: name, hostname, MAC, --dns."""
    from netkit import ipam
    if spec.name is not None and not CONTAINER_NAME_RE.match(spec.name.lstrip("/")):
        raise InvalidArgument(f'Invalid container name ({spec.name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed')
    if spec.name is not None:
        validate.container_name_length(spec.name)
    validate.aliases(spec.aliases)
    for es in spec.extra_networks:
        validate.aliases(es.aliases)
    for link in (*spec.links, *(l for es in spec.extra_networks for l in es.links)):
        validate.link_spec(link)
    if spec.hostname is not None and not HOSTNAME_RE.match(spec.hostname):
        raise InvalidArgument(f"invalid hostname format: {spec.hostname}")
    if spec.mac:
        ipam.validate_mac(spec.mac)
    for server in spec.dns:
        try:
            ipam.ip_to_int(server)
        except Exception:
            raise InvalidArgument(f"{server} is not an ip address") from None


_ADJ = ("admiring", "brave", "calm", "eager", "festive", "gifted", "happy", "jolly", "keen",
        "lucid", "modest", "nifty", "quirky", "serene", "trusting", "vibrant", "wizardly", "zen")
_NOUN = ("turing", "hopper", "lovelace", "ritchie", "thompson", "torvalds", "cerf", "kahn",
         "metcalfe", "postel", "perlman", "baran", "davies", "kleinrock", "pouzin", "clark")


def random_name(view: StoreView) -> str:
    """Docker's "adjective_scientist" name, with a number when that one is taken."""
    return unused_name({name for _, name in view.container_refs()})


def unused_name(taken: set[str]) -> str:
    """A random "adjective_scientist" name not in `taken` (a number added when it is)."""
    while True:
        name = f"{secrets.choice(_ADJ)}_{secrets.choice(_NOUN)}"
        if name not in taken:
            return name
        name = f"{name}{secrets.randbelow(100)}"
        if name not in taken:
            return name


def container_name(view: StoreView, requested: str | None) -> str:
    """The new container's name (given or random), refused when another container has it."""
    name = (requested or random_name(view)).lstrip("/")
    if (cid := view.container_named(name)) is not None:
        raise AlreadyExists(f'Conflict. The container name "/{name}" is already in use by '
                            f'container "{cid}". You have to remove (or rename) that '
                            'container to be able to reuse that name.')
    return name


TASK_LABEL = "com.docker.swarm.task.id"      # a swarm task's container: any swarm network


def check_attachable(net: Network, spec: ContainerSpec) -> None:
    """Docker's refusal of a plain container on a swarm network made without --attachable
    (a service's task containers, labelled with their task id, join any)."""
    if net.scope is Scope.SWARM and not net.attachable and TASK_LABEL not in spec.labels:
        raise Forbidden(f"network {net.name} not manually attachable")


def parse_mode(view: StoreView, spec: ContainerSpec, *,
               live: Callable[[Container], Container] | None = None
               ) -> tuple[str, Network | None, Container | None]:
    """--network: (mode, the network, the container whose namespaces are shared).

    `live` maps a stored container to its current state (the engine reads process
    liveness from the kernel); without it the stored state is taken as is.
    """
    mode = spec.network or "bridge"
    if mode.startswith("container:"):
        target = mode.split(":", 1)[1]
        if not target:
            raise InvalidArgument("invalid network mode: invalid container format container:<name|id>")
        for value, what in ((spec.hostname, "hostname"), (spec.mac, "mac-address"), (spec.dns, "dns"),
                            (spec.links, "links"), (spec.ipv4 or spec.ipv6, "ip"),
                            (spec.aliases, "network-alias")):
            if value:
                raise InvalidArgument(f"conflicting options: {what} and the network mode")
        if spec.extra_networks:
            raise InvalidArgument("container sharing network namespace with another container "
                                  "or host cannot be connected to any other network")
        if spec.name and target.lstrip("/") == spec.name:
            raise InvalidArgument("cannot join own network namespace")
        other = find_container(view, target)
        if live is not None:
            other = live(other)
        if other.state is not State.RUNNING:
            raise Conflict(f"cannot join network namespace of a non running container: {other.name}")
        if other.shares_netns_of:
            other = find_container(view, other.shares_netns_of)
        return "container:" + other.id, None, other
    net = find_network(view, mode)
    kind = drivers.get(net.driver).network_mode           # the host / none networks
    if kind is not None:
        if spec.ipv4 or spec.ipv6:
            raise InvalidArgument("user specified IP address is supported on user defined networks only")
        if spec.aliases:
            raise InvalidArgument("network-scoped aliases are only supported for user-defined networks")
        if spec.mac and kind == "host":
            raise InvalidArgument("conflicting options: mac-address and the network mode")
        if spec.links and kind == "host":
            raise InvalidArgument("conflicting options: host type networking can't be used with links. "
                                  "This would result in undefined behavior")
        if spec.extra_networks:
            raise InvalidArgument("container cannot be connected to multiple networks with one of "
                                  "the networks in private (none) mode" if kind == "none" else
                                  "container sharing network namespace with another container or "
                                  "host cannot be connected to any other network")
        return kind, net, None
    check_attachable(net, spec)
    return net.name, net, None


def port_requests(spec: ContainerSpec) -> list[PortRequest]:
    """-p requests, then -P's random ports for every --expose'd port not already published."""
    reqs = [r for p in spec.publish for r in parse_publish(p)]
    if spec.publish_all:
        for e in spec.expose:
            for port, proto in parse_expose(e):
                if not any(r.container_port == port and r.proto == proto for r in reqs):
                    reqs.append(PortRequest(proto, "0.0.0.0", 0, port))
    else:
        for e in spec.expose:
            parse_expose(e)                                            # validate only
    return reqs


def stored_port_requests(ctr: Container) -> list[PortRequest]:
    """The port requests a container was made with (its options' -p, -P and --expose)."""
    want: Any = ctr.options.get("ports") or {}
    return port_requests(ContainerSpec(publish=tuple(want.get("publish", ())),
                                       publish_all=bool(want.get("publish_all")),
                                       expose=tuple(want.get("expose", ()))))


def plan_run(spec: ContainerSpec, view: StoreView, *, container_id: str, node: str = "",
             live: Callable[[Container], Container] | None = None) -> RunPlan:
    """`docker create` (and `run`) on `node` ("" = the real machine), checked in Docker's order."""
    check_container_spec(spec)
    name = container_name(view, spec.name)
    mode, net, shared = parse_mode(view, spec, live=live)
    reqs = port_requests(spec)
    if reqs and shared is not None:
        raise InvalidArgument("conflicting options: port publishing and the container type network mode")
    extra = [(find_network(view, es.network), es) for es in spec.extra_networks]
    for n, _ in extra:
        check_attachable(n, spec)
    hostname = spec.hostname or (shared.hostname if shared else container_id[:12])
    netns = None
    if shared is not None:
        netns = shared.netns
    elif mode != "host":
        netns = container_netns(node, container_id)
    endpoints: tuple[EndpointPlan, ...] = ()
    if net is not None and mode not in ("host", "none"):
        first = EndpointSpec(net.name, aliases=tuple(spec.aliases), ipv4=spec.ipv4, ipv6=spec.ipv6,
                             mac=spec.mac, links=tuple(spec.links))
        endpoints = plan_endpoints(name, [(net, first), *extra])
        for (n, es) in [(net, first), *extra]:
            check_links(view, n, es.links)
    return RunPlan(name=name, container_id=container_id, mode=mode, hostname=hostname, netns=netns,
                   network=net, shared=shared,
                   networks=tuple(n for n in [net, *(n for n, _ in extra)] if n is not None),
                   endpoints=endpoints, ports=tuple(reqs))


def check_links(view: StoreView, net: Network, links: Iterable[str]) -> None:
    """--link targets on the default bridge must exist (Docker's registerLinks); on a
    user-defined network a link is a private alias whose target may come later."""
    if net.user_defined:
        return
    for link in links:
        target, _ = validate.link_spec(link)
        try:
            find_container(view, target)
        except NotFound:
            validate.link_target(target, False)


# -- endpoints -----------------------------------------------------------------------
class _Attached(Protocol):          # an Endpoint or an EndpointPlan
    @property
    def network_id(self) -> str: ...
    @property
    def ifname(self) -> str: ...


def next_ifname(net: Network, existing: Iterable[_Attached]) -> str:
    """The lowest free `<prefix><n>` (prefix: the network's container_iface_prefix, "eth")."""
    prefix = net.options.get(IFACE_PREFIX, "eth")
    used = {e.ifname for e in existing}
    return next(f"{prefix}{i}" for i in range(len(used) + 1) if f"{prefix}{i}" not in used)


def plan_endpoint(net: Network, es: EndpointSpec, existing: Sequence[_Attached] = ()) -> EndpointPlan:
    """One endpoint on `net` beside the container's `existing` ones (Endpoints or plans)."""
    from netkit import ipam
    if drivers.get(net.driver).network_mode is not None:     # host, none
        raise InvalidArgument(f"container cannot be connected to network {net.name}")
    ifname = next_ifname(net, existing)
    if es.aliases and not net.user_defined:
        raise InvalidArgument("network-scoped aliases are only supported for user-defined networks")
    if (es.ipv4 or es.ipv6) and not net.user_defined:
        raise InvalidArgument("user specified IP address is supported on user defined networks only")
    if es.links and net.name != "bridge" and not net.user_defined:
        raise InvalidArgument(f"links are not supported on network {net.name}")
    requests = []
    for family, static, wanted in ((4, es.ipv4, net.ipv4), (6, es.ipv6, net.ipv6)):
        if static:
            cfg, _ = ipam.check_static(net.ipam, static)
            if cfg.family != family:
                raise InvalidArgument(f"invalid IPv{family} address: {static}")
        requests.append(AddressRequest(family, static or None) if wanted or static else None)
    return EndpointPlan(network_id=net.id, network_name=net.name, ifname=ifname,
                        ipv4=requests[0], ipv6=requests[1], aliases=tuple(dict.fromkeys(es.aliases)),
                        links=tuple(es.links), mac=ipam.validate_mac(es.mac) if es.mac else None)


def plan_endpoints(container: str, joins: Sequence[tuple[Network, EndpointSpec]],
                   existing: Sequence[_Attached] = ()) -> tuple[EndpointPlan, ...]:
    """The endpoints of `container` (its name) on each network of `joins`, in order, after
    its `existing` ones: one endpoint per network, interface names counted on."""
    attached: list[_Attached] = list(existing)
    out: list[EndpointPlan] = []
    for net, es in joins:
        if any(e.network_id == net.id for e in attached):
            raise AlreadyExists(f"endpoint with name {container} already exists in network {net.name}")
        plan = plan_endpoint(net, es, attached)
        attached.append(plan)
        out.append(plan)
    return tuple(out)


# -- docker network connect / disconnect -----------------------------------------------------
def plan_connect(view: StoreView, network: str, container: str, *, aliases: tuple[str, ...] = (),
                 ipv4: str | None = None, ipv6: str | None = None,
                 links: tuple[str, ...] = ()) -> ConnectPlan:
    """`docker network connect [--alias] [--ip] [--ip6] [--link] NETWORK CONTAINER`."""
    net = find_network(view, network)
    ctr = find_container(view, container)
    mode = drivers.get(net.driver).network_mode
    if mode == "host":
        raise Forbidden("cannot connect container to host network - container must be "
                        "created in host network mode")
    if ctr.shares_netns_of or ctr.network_mode == "host":
        raise Forbidden("container sharing network namespace with another container or host "
                        "cannot be connected to any other network")
    if ctr.network_mode == "none" or mode == "none":
        raise Forbidden("container cannot be connected to multiple networks with one of the "
                        "networks in private (none) mode")
    if net.scope is Scope.SWARM and not net.attachable:
        raise Forbidden(f"network {net.name} not manually attachable")
    validate.aliases(aliases)
    es = EndpointSpec(net.name, tuple(aliases), ipv4, ipv6, links=tuple(links))
    (plan,) = plan_endpoints(ctr.name, [(net, es)], ctr.endpoints)
    check_links(view, net, es.links)
    return ConnectPlan(network=net, container=ctr, endpoint=plan)


def check_disconnect(net: Network, ctr: Container) -> None:
    """Docker's refusal to take a running host-mode container off the host network
    (daemon.DisconnectFromNetwork; the counterpart of plan_connect's host message)."""
    if ctr.network_mode == "host" and drivers.get(net.driver).network_mode == "host" \
            and ctr.state in (State.RUNNING, State.RESTARTING):
        raise Forbidden("cannot disconnect container from host network - container was created "
                        "in host network mode")


def plan_disconnect(view: StoreView, network: str, container: str) -> DisconnectPlan:
    """`docker network disconnect NETWORK CONTAINER`."""
    net = find_network(view, network)
    ctr = find_container(view, container)
    check_disconnect(net, ctr)
    ep = next((e for e in ctr.endpoints if e.network_id == net.id), None)
    if ep is None:
        raise NotFound(f"container {ctr.id[:12]} is not connected to network {net.name}")
    return DisconnectPlan(network=net, container=ctr, endpoint=ep,
                          remaining=tuple(e for e in ctr.endpoints if e.id != ep.id))


# -- after the endpoints are made -----------------------------------------------------------
_E = TypeVar("_E", bound=Endpoint)


def gateway_endpoint(eps: Sequence[_E], nets: Mapping[str, Network]) -> _E | None:
    """The endpoint that gives the default route (and carries published ports), as
    Docker's Endpoint.Less orders them: non-internal, dual-stack, then network name.
    Internal networks, swarm networks and networks without a gateway give none."""
    def rank(ep: Endpoint) -> tuple:
        n = nets[ep.network_id]
        return (n.internal, not (ep.ipv4 and ep.ipv6), n.name)

    for ep in sorted(eps, key=rank):
        n = nets[ep.network_id]
        if not n.internal and n.scope is not Scope.SWARM and (n.gateway_v4 or n.gateway_v6):
            return ep
    return None


def needs_gateway_bridge(nets: Sequence[Network | None]) -> bool:
    """Docker's docker_gwbridge rule: a container whose networks are all swarm-scoped,
    not all internal, gets one more endpoint on the node's gateway bridge."""
    return bool(nets) and all(n is not None and n.scope is Scope.SWARM for n in nets) \
        and not all(n.internal for n in nets if n is not None)


class _Linking(Protocol):          # an Endpoint or an EndpointPlan
    @property
    def network_id(self) -> str: ...
    @property
    def links(self) -> tuple[str, ...]: ...


def link_hosts(view: StoreView, eps: Iterable[_Linking],
               nets: Mapping[str, Network] | None = None) -> list[tuple[str, str]]:
    """Legacy --link on the default bridge: the (address, "alias hostname name") lines
    of /etc/hosts. Links on other networks are DNS aliases and give no line.

    Read when the hosts file is written: the target's current address on the bridge.
    `nets` maps network ids to networks (read from `view` when not given).
    """
    out = []
    for ep in eps:
        net = nets[ep.network_id] if nets is not None else view.network(ep.network_id)
        if net is None or net.name != "bridge":
            continue
        for link in ep.links:
            target, _, alias = link.partition(":")
            other = find_container(view, target)
            oep = next((e for e in other.endpoints if e.network_id == ep.network_id), None)
            if oep is None or not oep.ipv4:
                raise InvalidArgument(f"Cannot link to /{other.name}, as it does not belong to "
                                      "the default network")
            names = " ".join(dict.fromkeys(n for n in (alias or other.name, other.hostname, other.name)))
            out.append((oep.ipv4_address or "", names))
    return out
