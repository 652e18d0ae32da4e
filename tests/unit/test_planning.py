"""Docker's rules for run / connect / disconnect as pure planners (netkit.planning).

No root: the view is a real `netkit.store.Store` on a temporary file, filled through
its own insert methods, so the planners are tested against the rows the engine reads
(endpoints in join order, network names joined in) and `Tx` is shown to satisfy
`StoreView`. Every Docker message each rule raises is checked, and the order of the
checks (the first error wins).
"""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from netkit import planning
from netkit.errors import AlreadyExists, Conflict, Forbidden, InvalidArgument, NotFound
from netkit.model import Container, Endpoint, IPAMConfig, Network, Scope, State
from netkit.planning import (AddressRequest, EndpointPlan, check_container_spec, check_run,
                             gateway_endpoint, link_hosts, needs_gateway_bridge, next_ifname,
                             plan_connect, plan_disconnect, plan_endpoint, plan_endpoints,
                             plan_run, port_requests)
from netkit.ports import PortRequest
from netkit.specs import ContainerSpec, EndpointSpec
from netkit.store import Store, Tx

CID = "c0ffee" + "0" * 58


def nid(name: str) -> str:
    """A stable 64-hex id per name."""
    return hashlib.sha256(name.encode()).hexdigest()


def v4(subnet: str, gateway: str | None) -> IPAMConfig:
    return IPAMConfig(subnet, gateway=gateway)


NETWORKS = [
    Network(nid("bridge"), "bridge", "bridge", ipam=(v4("172.17.0.0/16", "172.17.0.1"),)),
    Network(nid("host"), "host", "host"),
    Network(nid("none"), "none", "null"),
    Network(nid("n1"), "n1", "bridge", ipam=(v4("172.18.0.0/16", "172.18.0.1"),)),
    Network(nid("n2"), "n2", "bridge", ipv6=True,
            ipam=(v4("172.19.0.0/16", "172.19.0.1"), IPAMConfig("fd00:2::/64", gateway="fd00:2::1"))),
    Network(nid("a-int"), "a-int", "bridge", internal=True, ipam=(v4("172.20.0.0/16", "172.20.0.1"),)),
    Network(nid("v6only"), "v6only", "bridge", ipv4=False, ipv6=True,
            ipam=(IPAMConfig("fd00:6::/64", gateway="fd00:6::1"),)),
    Network(nid("mv"), "mv", "macvlan", ipam=(v4("192.168.0.0/24", None),)),
    Network(nid("ovl"), "ovl", "overlay", scope=Scope.SWARM, ipam=(v4("10.0.1.0/24", "10.0.1.1"),)),
    Network(nid("ovla"), "ovla", "overlay", scope=Scope.SWARM, attachable=True,
            ipam=(v4("10.0.2.0/24", "10.0.2.1"),)),
    Network(nid("myhost"), "myhost", "host"),
    Network(nid("mynull"), "mynull", "null"),
    Network(nid("en"), "en", "bridge", options={planning.IFACE_PREFIX: "en"},
            ipam=(v4("172.21.0.0/16", "172.21.0.1"),)),
]
NET = {n.name: n for n in NETWORKS}


class Fill:
    """Containers and endpoints put into the store as the engine puts them."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.n = 0

    def container(self, name: str, *, mode: str = "bridge", state: State = State.RUNNING,
                  netns: str | None = "auto", hostname: str | None = None,
                  endpoints: tuple[tuple[str, str | None, tuple[str, ...]], ...] = ()) -> Container:
        """`endpoints`: (network name, ipv4 or None, links) in join order."""
        cid = nid("ctr-" + name)
        with self.store.transaction() as tx:
            tx.insert_container(Container(cid, name, hostname or cid[:12], network_mode=mode,
                                          netns=f"nkc-host-{cid[:12]}" if netns == "auto" else netns,
                                          state=state))
            for i, (net, ip, links) in enumerate(endpoints):
                self.n += 1
                tx.insert_endpoint(Endpoint(f"{self.n:064x}", nid(net), cid, f"eth{i}",
                                            "02:00:00:00:00:01", ipv4=ip, links=links))
        found = store_view(self.store).container(cid)
        assert found is not None
        return found


def store_view(store: Store) -> Tx:
    return store.read()


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "state.db"))
    with s.transaction() as tx:
        for net in NETWORKS:
            tx.insert_network(net)
    yield s
    s.close()


@pytest.fixture
def fill(store):
    return Fill(store)


@pytest.fixture
def view(store):
    return store.read()


def run(view, **kw) -> planning.RunPlan:
    return plan_run(ContainerSpec(**kw), view, container_id=CID)


def fails(exc: type, msg: str):
    """pytest.raises for exactly this message."""
    return pytest.raises(exc, match="^" + re.escape(msg) + "$")


def test_tx_is_a_store_view(view):
    assert isinstance(view, planning.StoreView)


def test_planners_write_nothing(store, fill):
    fill.container("web", endpoints=(("bridge", "172.17.0.2/16", ()),))
    fill.container("db", endpoints=(("n1", "172.18.0.2/16", ()),))
    before = store.db.total_changes
    view = store.read()
    run(view, name="cx", network="n2", extra_networks=(EndpointSpec("n1"),), publish=("80",),
        links=("web",))
    plan_connect(view, "n2", "db", aliases=("a",))
    plan_disconnect(view, "n1", "db")
    link_hosts(view, [EndpointPlan(nid("bridge"), "bridge", "eth0", links=("web",))])
    assert store.db.total_changes == before


# -- docker run: checks without the store -------------------------------------------------
def test_check_run():
    check_run(ContainerSpec(auto_remove=True, detach=True))
    check_run(ContainerSpec(auto_remove=True, command=("true",)))
    with fails(InvalidArgument, "no command given"):
        check_run(ContainerSpec(auto_remove=True))


@pytest.mark.parametrize("spec,exc,msg", [
    (ContainerSpec(name="-bad"), InvalidArgument,
     "Invalid container name (-bad), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"),
    (ContainerSpec(name="/a"), InvalidArgument,
     "Invalid container name (/a), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"),
    (ContainerSpec(hostname="-h"), InvalidArgument, "invalid hostname format: -h"),
    (ContainerSpec(hostname="a" * 64), InvalidArgument, f"invalid hostname format: {'a' * 64}"),
    (ContainerSpec(mac="01:00:00:00:00:01"), InvalidArgument, "invalid MAC address: 01:00:00:00:00:01"),
    (ContainerSpec(mac="zz"), InvalidArgument, "invalid MAC address: zz"),
    (ContainerSpec(dns=("1.1.1.1", "nope")), InvalidArgument, "nope is not an ip address"),
    # the first rule broken wins: name, hostname, MAC, --dns
    (ContainerSpec(name="-x", hostname="-h", dns=("x",)), InvalidArgument,
     "Invalid container name (-x), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"),
    (ContainerSpec(hostname="-h", mac="zz"), InvalidArgument, "invalid hostname format: -h"),
    (ContainerSpec(mac="zz", dns=("x",)), InvalidArgument, "invalid MAC address: zz"),
])
def test_container_spec_errors(spec, exc, msg):
    with fails(exc, msg):
        check_container_spec(spec)


def test_container_spec_ok():
    check_container_spec(ContainerSpec(name="/web.1", hostname="db-1.local", mac="02-42-AC-11-00-02",
                                       dns=("10.0.0.1", "fd00::1")))


# -- names -------------------------------------------------------------------------------
def test_name_conflict(fill, view):
    web = fill.container("web")
    msg = (f'Conflict. The container name "/web" is already in use by container "{web.id}". '
           "You have to remove (or rename) that container to be able to reuse that name.")
    with fails(AlreadyExists, msg):
        run(view, name="web")
    with fails(AlreadyExists, msg):
        run(view, name="/web")


def test_name_checked_before_mode(fill, view):
    fill.container("web")
    with pytest.raises(AlreadyExists):
        run(view, name="web", network="container:")
    with fails(InvalidArgument, "Invalid container name (-x), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"):
        run(view, name="-x", network="nosuch")


def test_random_name(fill, view, monkeypatch):
    assert run(view).name.count("_") == 1
    fill.container("brave_turing")
    picks = iter(["brave", "turing", "brave", "turing", "calm", "kahn"])
    monkeypatch.setattr(planning.secrets, "choice", lambda seq: next(picks))
    numbers = iter([7, 3])
    monkeypatch.setattr(planning.secrets, "randbelow", lambda n: next(numbers))
    fill.container("brave_turing7")
    assert planning.random_name(view) == "brave_turing3"      # taken, then taken with a number
    assert planning.random_name(view) == "calm_kahn"


# -- --network container:<x> ---------------------------------------------------------------
@pytest.mark.parametrize("kw,msg", [
    (dict(hostname="h"), "conflicting options: hostname and the network mode"),
    (dict(mac="02:00:00:00:00:09"), "conflicting options: mac-address and the network mode"),
    (dict(dns=("1.1.1.1",)), "conflicting options: dns and the network mode"),
    (dict(links=("db",)), "conflicting options: links and the network mode"),
    (dict(ipv4="172.17.0.9"), "conflicting options: ip and the network mode"),
    (dict(ipv6="fd00::9"), "conflicting options: ip and the network mode"),
    (dict(aliases=("a",)), "conflicting options: network-alias and the network mode"),
    (dict(extra_networks=(EndpointSpec("n1"),)),
     "container sharing network namespace with another container or host cannot be connected "
     "to any other network"),
    (dict(name="me", network="container:me"), "cannot join own network namespace"),
    (dict(name="me", network="container:/me"), "cannot join own network namespace"),
    (dict(publish=("80",)), "conflicting options: port publishing and the container type network mode"),
    (dict(publish_all=True, expose=("80",)),
     "conflicting options: port publishing and the container type network mode"),
    # order: hostname, mac, dns, links, ip, alias, other networks, itself
    (dict(hostname="h", mac="02:00:00:00:00:09", aliases=("a",)),
     "conflicting options: hostname and the network mode"),
    (dict(links=("db",), ipv4="172.17.0.9", aliases=("a",)), "conflicting options: links and the network mode"),
    (dict(aliases=("a",), extra_networks=(EndpointSpec("n1"),)),
     "conflicting options: network-alias and the network mode"),
    (dict(name="me", network="container:me", extra_networks=(EndpointSpec("n1"),)),
     "container sharing network namespace with another container or host cannot be connected "
     "to any other network"),
])
def test_container_mode_errors(fill, view, kw, msg):
    fill.container("web", endpoints=(("bridge", "172.17.0.2/16", ()),))
    kw = {"network": "container:web", **kw}
    with fails(InvalidArgument, msg):
        run(view, **kw)


def test_container_mode_bad_format(view):
    with fails(InvalidArgument, "invalid network mode: invalid container format container:<name|id>"):
        run(view, network="container:", hostname="h")


def test_container_mode_target(fill, view):
    with fails(NotFound, "No such container: ghost"):
        run(view, network="container:ghost")
    with fails(NotFound, "No such container: web"):
        run(view, name="/web", network="container:web")    # compared with the name as given
    fill.container("old", state=State.EXITED)
    with fails(Conflict, "cannot join network namespace of a non running container: old"):
        run(view, network="container:old")
    fill.container("made", state=State.CREATED)
    with fails(Conflict, "cannot join network namespace of a non running container: made"):
        run(view, network="container:made")


def test_container_mode_liveness_hook(fill, view):
    """The engine passes `live` (process liveness read from the kernel)."""
    fill.container("web")
    def dead(c: Container) -> Container:
        return Container(c.id, c.name, c.hostname, state=State.EXITED)
    with fails(Conflict, "cannot join network namespace of a non running container: web"):
        plan_run(ContainerSpec(network="container:web"), view, container_id=CID, live=dead)


def test_container_mode_plan(fill, view):
    web = fill.container("web", hostname="webhost", endpoints=(("bridge", "172.17.0.2/16", ()),))
    side = fill.container("side", mode=f"container:{web.id}", netns=web.netns, hostname="webhost")
    for target in ("web", "/web", web.id[:5], "side"):        # a sharer is followed to its owner
        plan = run(view, network=f"container:{target}", expose=("80",))
        assert plan.mode == f"container:{web.id}"
        assert plan.shared is not None and plan.shared.id == web.id
        assert (plan.network, plan.networks, plan.endpoints, plan.ports) == (None, (), (), ())
        assert (plan.hostname, plan.netns, plan.own_netns) == ("webhost", web.netns, False)
    assert side.shares_netns_of == web.id


# -- --network host / none / a network ---------------------------------------------------
HOST_EXTRA = ("container sharing network namespace with another container or host cannot be "
              "connected to any other network")
NONE_EXTRA = ("container cannot be connected to multiple networks with one of the networks in "
              "private (none) mode")
IP_MSG = "user specified IP address is supported on user defined networks only"
ALIAS_MSG = "network-scoped aliases are only supported for user-defined networks"


@pytest.mark.parametrize("network,kw,msg", [
    (network, kw, msg)
    for network in ("host", "myhost", "none", "mynull")
    for kw, msg in [
        (dict(ipv4="172.17.0.9"), IP_MSG),
        (dict(ipv6="fd00::9"), IP_MSG),
        (dict(aliases=("a",)), ALIAS_MSG),
        (dict(extra_networks=(EndpointSpec("n1"),)),
         HOST_EXTRA if "host" in network else NONE_EXTRA),
        (dict(ipv4="172.17.0.9", aliases=("a",)), IP_MSG),
        (dict(aliases=("a",), mac="02:00:00:00:00:09", links=("x",)), ALIAS_MSG),
    ]
] + [
    (network, kw, msg)
    for network in ("host", "myhost")
    for kw, msg in [
        (dict(mac="02:00:00:00:00:09"), "conflicting options: mac-address and the network mode"),
        (dict(links=("x",)), "conflicting options: host type networking can't be used with links. "
                             "This would result in undefined behavior"),
        (dict(mac="02:00:00:00:00:09", links=("x",)), "conflicting options: mac-address and the network mode"),
        (dict(links=("x",), extra_networks=(EndpointSpec("n1"),)),
         "conflicting options: host type networking can't be used with links. "
         "This would result in undefined behavior"),
    ]
])
def test_host_none_mode_errors(view, network, kw, msg):
    with fails(InvalidArgument, msg):
        run(view, network=network, **kw)


@pytest.mark.parametrize("network,mode,own", [("host", "host", False), ("myhost", "host", False),
                                              ("none", "none", True), ("mynull", "none", True)])
def test_host_none_mode_plan(view, network, mode, own):
    # none accepts --mac-address and --link (nothing to apply them to), as today
    kw = {} if mode == "host" else dict(mac="02:00:00:00:00:09", links=("ghost",))
    plan = run(view, network=network, publish=("8080:80",), **kw)
    assert (plan.mode, plan.network, plan.endpoints) == (mode, NET[network], ())
    assert plan.networks == (NET[network],)
    assert plan.own_netns is own
    assert plan.netns == (f"nkc-host-{CID[:12]}" if own else None)
    assert plan.ports == (PortRequest("tcp", "0.0.0.0", 8080, 80),)
    assert plan.hostname == CID[:12]


def test_network_mode_errors(view):
    with fails(NotFound, "network nosuch not found"):
        run(view, network="nosuch")
    with fails(Forbidden, "network ovl not manually attachable"):
        run(view, network="ovl")
    with fails(Forbidden, "network ovl not manually attachable"):   # before the port checks
        run(view, network="ovl", publish=("bad/sctpx",))
    with fails(InvalidArgument, "invalid proto: sctpx"):            # ports before extra networks
        run(view, network="n1", publish=("80/sctpx",), extra_networks=(EndpointSpec("nosuch"),))
    with fails(InvalidArgument, "invalid proto: sctp"):             # --expose is checked without -P
        run(view, expose=("80/sctp",))
    with fails(NotFound, "network nosuch not found"):
        run(view, network="n1", extra_networks=(EndpointSpec("n2"), EndpointSpec("nosuch")))


def test_find_container_by_id_then_name_then_prefix(fill, view):
    web = fill.container("web")
    db = fill.container("db")
    assert planning.find_container(view, web.id).id == web.id
    assert planning.find_container(view, "/db").id == db.id
    assert planning.find_container(view, db.id[:10]).id == db.id
    named = fill.container(web.id[:12])             # a name that is another container's id prefix
    assert planning.find_container(view, web.id[:12]).id == named.id
    assert planning.find_container(view, web.id[:11]).id == web.id
    with fails(NotFound, "No such container: nosuch"):
        planning.find_container(view, "nosuch")


def test_network_prefix_ambiguous(store):
    with store.transaction() as tx:
        tx.insert_network(Network("ab" + "0" * 62, "x1", "bridge"))
        tx.insert_network(Network("ab" + "1" * 62, "x2", "bridge"))
    with fails(InvalidArgument, "network ab is ambiguous (2 matches found based on ID prefix)"):
        run(store.read(), network="ab")


# -- endpoints of run ----------------------------------------------------------------------
def test_run_default_bridge(store, fill):
    fill.container("db", endpoints=(("bridge", "172.17.0.2", ()),))
    view = store.read()
    plan = run(view, hostname="box", links=("db:mysql",))
    assert (plan.mode, plan.network, plan.hostname) == ("bridge", NET["bridge"], "box")
    assert plan.netns == f"nkc-host-{CID[:12]}" and plan.own_netns
    assert plan.endpoints == (EndpointPlan(nid("bridge"), "bridge", "eth0", ipv4=AddressRequest(4),
                                           links=("db:mysql",)),)


def test_run_link_to_a_missing_container_on_the_default_bridge(view):
    with pytest.raises(InvalidArgument, match="^could not get container for db: No such container: db$"):
        run(view, links=("db:mysql",))


def test_run_networks_in_order(view):
    plan = plan_run(ContainerSpec(
        name="/c1", network=nid("n2")[:8], aliases=("web", "www", "web"), ipv4="172.19.0.9",
        mac="02-42-AC-13-00-09", links=("db:d",),
        extra_networks=(EndpointSpec("n1", ipv4="172.18.5.5"), EndpointSpec("v6only"),
                        EndpointSpec("en", aliases=("e",)), EndpointSpec("bridge"))),
        view, container_id=CID, node="nodeA")
    assert plan.name == "c1" and plan.mode == "n2"
    assert plan.netns == f"nkc-nodeA-{CID[:12]}"
    assert plan.networks == (NET["n2"], NET["n1"], NET["v6only"], NET["en"], NET["bridge"])
    assert plan.endpoints == (
        EndpointPlan(nid("n2"), "n2", "eth0", ipv4=AddressRequest(4, "172.19.0.9"),
                     ipv6=AddressRequest(6), aliases=("web", "www"), links=("db:d",),
                     mac="02:42:ac:13:00:09"),
        EndpointPlan(nid("n1"), "n1", "eth1", ipv4=AddressRequest(4, "172.18.5.5")),
        EndpointPlan(nid("v6only"), "v6only", "eth2", ipv6=AddressRequest(6)),
        EndpointPlan(nid("en"), "en", "en0", ipv4=AddressRequest(4), aliases=("e",)),
        EndpointPlan(nid("bridge"), "bridge", "eth3", ipv4=AddressRequest(4)),   # lowest free
    )
    assert plan.endpoints[0].static_ipv4 == "172.19.0.9" and plan.endpoints[0].static_ipv6 is None


@pytest.mark.parametrize("kw,exc,msg", [
    (dict(network="n1", extra_networks=(EndpointSpec("n2"), EndpointSpec(nid("n1")))), AlreadyExists,
     "endpoint with name c1 already exists in network n1"),
    (dict(network="n1", extra_networks=(EndpointSpec("host"),)), InvalidArgument,
     "container cannot be connected to network host"),
    (dict(network="n1", extra_networks=(EndpointSpec("none"),)), InvalidArgument,
     "container cannot be connected to network none"),
    (dict(network="n1", extra_networks=(EndpointSpec("mynull"),)), InvalidArgument,
     "container cannot be connected to network mynull"),
    (dict(aliases=("a",)), InvalidArgument, ALIAS_MSG),
    (dict(ipv4="172.17.0.9"), InvalidArgument, IP_MSG),
    (dict(ipv6="fd00::9"), InvalidArgument, IP_MSG),
    (dict(network="n1", extra_networks=(EndpointSpec("bridge", aliases=("a",)),)), InvalidArgument, ALIAS_MSG),
    (dict(network="n1", extra_networks=(EndpointSpec("bridge", ipv4="172.17.0.9"),)), InvalidArgument, IP_MSG),
    # static addresses: checked against the network's subnets, not yet against the store
    (dict(network="n1", ipv4="10.9.9.9"), InvalidArgument, "no configured subnet contains IP address 10.9.9.9"),
    (dict(network="n1", ipv4="172.18.255.255"), InvalidArgument,
     "requested address is out of range: 172.18.255.255 is the network or broadcast address of 172.18.0.0/16"),
    (dict(network="n2", ipv6="fd00:2::"), InvalidArgument,
     "requested address is out of range: fd00:2:: is the subnet-router anycast address of fd00:2::/64"),
    (dict(network="n2", ipv4="fd00:2::5"), InvalidArgument, "invalid IPv4 address: fd00:2::5"),
    (dict(network="n2", ipv6="172.19.0.5"), InvalidArgument, "invalid IPv6 address: 172.19.0.5"),
    (dict(network="n1", ipv4="172.18.0.300"), InvalidArgument, "invalid IPv4 address: 172.18.0.300"),
    (dict(network="n1", ipv6="fd00::5"), InvalidArgument, "no configured subnet contains IP address fd00::5"),
    (dict(network="n1", extra_networks=(EndpointSpec("n2", mac="ff:ff:ff:ff:ff:ff"),)), InvalidArgument,
     "invalid MAC address: ff:ff:ff:ff:ff:ff"),
    # per endpoint: the network's driver, aliases, addresses, links, static checks, MAC
    (dict(network="n1", extra_networks=(EndpointSpec("bridge", aliases=("a",), ipv4="1.2.3.4"),)),
     InvalidArgument, ALIAS_MSG),
    (dict(network="n2", ipv4="10.9.9.9", ipv6="fd00:2::"), InvalidArgument,
     "no configured subnet contains IP address 10.9.9.9"),
    (dict(network="n2", ipv6="fd00:2::", extra_networks=(EndpointSpec("n2",),)), InvalidArgument,
     "requested address is out of range: fd00:2:: is the subnet-router anycast address of fd00:2::/64"),
    (dict(network="n1", extra_networks=(EndpointSpec("n2", ipv4="1.1.1.1", mac="zz"),)),
     InvalidArgument, "no configured subnet contains IP address 1.1.1.1"),
    # endpoints in order: the first one's error wins
    (dict(network="n1", ipv4="10.9.9.9", extra_networks=(EndpointSpec("n1"),)), InvalidArgument,
     "no configured subnet contains IP address 10.9.9.9"),
    (dict(network="n1", extra_networks=(EndpointSpec("n1"), EndpointSpec("host"))), AlreadyExists,
     "endpoint with name c1 already exists in network n1"),
])
def test_run_endpoint_errors(view, kw, exc, msg):
    with fails(exc, msg):
        run(view, name="c1", **kw)


def test_links_accepted_on_bridge_and_user_networks(view):
    plan = run(view, network="n1", links=("ghost:g",))      # user networks: a DNS alias, unchecked
    assert plan.endpoints[0].links == ("ghost:g",)


def test_links_not_supported_on_other_predefined_networks():
    """Unreachable through run and connect (host and none are refused before), kept as Docker's."""
    odd = Network(nid("host"), "host", "bridge", ipam=(v4("10.1.0.0/16", "10.1.0.1"),))
    with fails(InvalidArgument, "links are not supported on network host"):
        plan_endpoint(odd, EndpointSpec("host", links=("x",)))


def test_static_address_asked_for_is_requested():
    """--ip asks for IPv4 even where the network does not flag it (the engine's `net.ipv4 or --ip`)."""
    odd = Network(nid("odd"), "odd", "bridge", ipv4=False, ipam=(v4("10.1.0.0/16", "10.1.0.1"),))
    assert plan_endpoint(odd, EndpointSpec("odd")).ipv4 is None
    assert plan_endpoint(odd, EndpointSpec("odd", ipv4="10.1.0.5")).ipv4 == AddressRequest(4, "10.1.0.5")


# -- interface names ---------------------------------------------------------------------
def test_ifnames():
    eth = [EndpointPlan("x", "x", name) for name in ("eth0", "eth2")]
    assert next_ifname(NET["n1"], []) == "eth0"
    assert next_ifname(NET["n1"], eth) == "eth1"                # the lowest free one
    assert next_ifname(NET["n1"], [*eth, EndpointPlan("y", "y", "eth1")]) == "eth3"
    assert next_ifname(NET["en"], eth) == "en0"                 # container_iface_prefix
    assert next_ifname(NET["en"], [EndpointPlan("y", "y", "en0")]) == "en1"


def test_plan_endpoints_after_existing(fill, view):
    web = fill.container("web", endpoints=(("n1", "172.18.0.2/16", ()), ("bridge", "172.17.0.2/16", ())))
    plans = plan_endpoints("web", [(NET["n2"], EndpointSpec("n2")), (NET["en"], EndpointSpec("en"))],
                           web.endpoints)
    assert [p.ifname for p in plans] == ["eth2", "en0"]
    with fails(AlreadyExists, "endpoint with name web already exists in network bridge"):
        plan_endpoints("web", [(NET["bridge"], EndpointSpec("bridge"))], web.endpoints)


# -- endpoint plans as stored values -------------------------------------------------------
def test_endpoint_plan_roundtrip(view):
    plan = run(view, name="c1", network="n2", aliases=("a",), ipv4="172.19.0.7", mac="02:42:00:00:00:07",
               links=("x:y",), extra_networks=(EndpointSpec("v6only"),))
    for ep in plan.endpoints:
        again = EndpointPlan.from_dict(json.loads(json.dumps(ep.to_dict())))
        assert again == ep
        # planned again at start from what the user asked: the same plan
        assert plan_endpoints("c1", [(view.network(ep.network_id), ep.spec())]) == (
            EndpointPlan(**{**{f: getattr(ep, f) for f in ep.__slots__}, "ifname": "eth0"}),)
    first = plan.endpoints[0]
    assert first.requests() == (AddressRequest(4, "172.19.0.7"), AddressRequest(6))
    assert plan.endpoints[1].requests() == (AddressRequest(6),)
    ep = first.endpoint("e" * 64, CID, mac="02:42:00:00:00:07", ipv4="172.19.0.7/16",
                        ipv6="fd00:2::2/64", host_ifname="veth1")
    assert ep == Endpoint("e" * 64, nid("n2"), CID, "eth0", "02:42:00:00:00:07", "172.19.0.7/16",
                          "fd00:2::2/64", ("a",), ("x:y",), static_ipv4=True, static_ipv6=False,
                          host_ifname="veth1", network_name="n2")


# -- ports ---------------------------------------------------------------------------------
def test_port_requests():
    spec = ContainerSpec(publish=("8080:80", "53/udp"), publish_all=True, expose=("80", "53/udp", "90-91"))
    assert port_requests(spec) == [PortRequest("tcp", "0.0.0.0", 8080, 80),
                                   PortRequest("udp", "0.0.0.0", 0, 53),
                                   PortRequest("tcp", "0.0.0.0", 0, 90),
                                   PortRequest("tcp", "0.0.0.0", 0, 91)]
    assert port_requests(ContainerSpec(expose=("80",))) == []     # --expose alone publishes nothing


# -- gateway endpoint (Docker's Endpoint.Less) ---------------------------------------------
def ep(net: str, ipv4: str | None = "x/16", ipv6: str | None = None) -> Endpoint:
    return Endpoint(f"ep-{net}", nid(net), CID, "eth0", "02:00:00:00:00:01", ipv4=ipv4, ipv6=ipv6)


def test_gateway_endpoint():
    nets = {n.id: n for n in NETWORKS}
    assert gateway_endpoint([], nets) is None
    assert gateway_endpoint([ep("n2"), ep("n1")], nets).network_id == nid("n1")          # by name
    assert gateway_endpoint([ep("n1"), ep("n2", "x/16", "y/64")], nets).network_id == nid("n2")  # dual stack
    assert gateway_endpoint([ep("a-int"), ep("n2")], nets).network_id == nid("n2")       # not internal
    assert gateway_endpoint([ep("a-int")], nets) is None                                  # internal only
    assert gateway_endpoint([ep("ovla"), ep("n2")], nets).network_id == nid("n2")        # swarm: no route
    assert gateway_endpoint([ep("ovla")], nets) is None
    assert gateway_endpoint([ep("mv"), ep("n2")], nets).network_id == nid("n2")          # no gateway
    assert gateway_endpoint([ep("mv")], nets) is None
    assert gateway_endpoint([ep("v6only", None, "y/64"), ep("n1")], nets).network_id == nid("n1")


def test_needs_gateway_bridge():
    assert not needs_gateway_bridge([])
    assert needs_gateway_bridge([NET["ovl"], NET["ovla"]])
    assert not needs_gateway_bridge([NET["ovl"], NET["n1"]])
    assert not needs_gateway_bridge([NET["ovl"], None])
    internal = Network(nid("oi"), "oi", "overlay", scope=Scope.SWARM, internal=True)
    assert needs_gateway_bridge([internal, NET["ovl"]])
    assert not needs_gateway_bridge([internal])


# -- legacy links: /etc/hosts lines ------------------------------------------------------------
def test_link_hosts(fill, view):
    fill.container("db", hostname="dbhost", endpoints=(("n1", "172.18.0.5/16", ()),
                                                       ("bridge", "172.17.0.5/16", ())))
    fill.container("cache", endpoints=(("bridge", "172.17.0.6/16", ()),))
    cache = view.container(nid("ctr-cache"))
    eps = [EndpointPlan(nid("n1"), "n1", "eth0", links=("ghost",)),          # user network: no line
           EndpointPlan(nid("bridge"), "bridge", "eth1", links=("db:mysql", "/cache", "db:db"))]
    want = [("172.17.0.5", "mysql dbhost db"), ("172.17.0.6", f"cache {cache.hostname}"),
            ("172.17.0.5", "db dbhost")]
    assert link_hosts(view, eps) == want
    assert link_hosts(view, eps, {n.id: n for n in NETWORKS}) == want


def test_link_hosts_errors(fill, view):
    fill.container("db", endpoints=(("n1", "172.18.0.5/16", ()),))
    fill.container("nov4", endpoints=(("bridge", None, ()),))
    bridge = nid("bridge")
    with fails(NotFound, "No such container: ghost"):
        link_hosts(view, [EndpointPlan(bridge, "bridge", "eth0", links=("ghost:g",))])
    with fails(InvalidArgument, "Cannot link to /db, as it does not belong to the default network"):
        link_hosts(view, [EndpointPlan(bridge, "bridge", "eth0", links=("db:d",))])
    with fails(InvalidArgument, "Cannot link to /nov4, as it does not belong to the default network"):
        link_hosts(view, [EndpointPlan(bridge, "bridge", "eth0", links=("nov4",))])


# -- docker network connect --------------------------------------------------------------------
@pytest.fixture
def ctrs(fill):
    web = fill.container("web", endpoints=(("bridge", "172.17.0.2/16", ()), ("n1", "172.18.0.2/16", ())))
    fill.container("side", mode=f"container:{web.id}", netns=web.netns)
    fill.container("hostc", mode="host", netns=None)
    fill.container("nonec", mode="none")
    fill.container("idle", state=State.CREATED)
    return web


@pytest.mark.parametrize("network,container,kw,exc,msg", [
    ("nosuch", "ghost", {}, NotFound, "network nosuch not found"),             # network first
    ("n2", "ghost", {}, NotFound, "No such container: ghost"),
    ("host", "web", {}, Forbidden,
     "cannot connect container to host network - container must be created in host network mode"),
    ("myhost", "side", {}, Forbidden,
     "cannot connect container to host network - container must be created in host network mode"),
    ("n2", "side", {}, Forbidden, HOST_EXTRA),
    ("n2", "hostc", {}, Forbidden, HOST_EXTRA),
    ("none", "hostc", {}, Forbidden, HOST_EXTRA),
    ("n2", "nonec", {}, Forbidden, NONE_EXTRA),
    ("none", "web", {}, Forbidden, NONE_EXTRA),
    ("mynull", "web", {}, Forbidden, NONE_EXTRA),
    ("ovl", "web", {}, Forbidden, "network ovl not manually attachable"),
    ("ovl", "nonec", {}, Forbidden, NONE_EXTRA),
    ("n1", "web", {}, AlreadyExists, "endpoint with name web already exists in network n1"),
    ("n1", "web", dict(ipv4="10.0.0.1"), AlreadyExists, "endpoint with name web already exists in network n1"),
    ("bridge", "idle", dict(aliases=("a",)), InvalidArgument, ALIAS_MSG),
    ("bridge", "idle", dict(ipv4="172.17.0.9"), InvalidArgument, IP_MSG),
    ("bridge", "idle", dict(ipv6="fd00::9"), InvalidArgument, IP_MSG),
    ("n2", "web", dict(ipv4="172.18.0.9"), InvalidArgument, "no configured subnet contains IP address 172.18.0.9"),
    ("n2", "web", dict(ipv6="fd00:2::", ipv4="172.19.0.0"), InvalidArgument,
     "requested address is out of range: 172.19.0.0 is the network or broadcast address of 172.19.0.0/16"),
])
def test_connect_errors(ctrs, view, network, container, kw, exc, msg):
    with fails(exc, msg):
        plan_connect(view, network, container, **kw)


def test_connect_plan(ctrs, view):
    plan = plan_connect(view, "n2", "web", aliases=("a", "b", "a"), ipv4="172.19.0.9", links=("db:d",))
    assert plan.network == NET["n2"] and plan.container.id == ctrs.id
    assert plan.endpoint == EndpointPlan(nid("n2"), "n2", "eth2", ipv4=AddressRequest(4, "172.19.0.9"),
                                         ipv6=AddressRequest(6), aliases=("a", "b"), links=("db:d",))
    assert plan_connect(view, "ovla", "web").endpoint.ifname == "eth2"        # attachable overlay
    assert plan_connect(view, "en", "web").endpoint.ifname == "en0"
    # a created container is connected too; links on the default bridge are allowed
    idle = plan_connect(view, "bridge", "idle", links=("web:w",))
    assert idle.endpoint == EndpointPlan(nid("bridge"), "bridge", "eth0", ipv4=AddressRequest(4),
                                         links=("web:w",))


# -- docker network disconnect ------------------------------------------------------------------
def test_disconnect(ctrs, view):
    with fails(NotFound, "network nosuch not found"):
        plan_disconnect(view, "nosuch", "ghost")
    with fails(NotFound, "No such container: ghost"):
        plan_disconnect(view, "n1", "ghost")
    with fails(NotFound, f"container {ctrs.id[:12]} is not connected to network n2"):
        plan_disconnect(view, "n2", "web")
    plan = plan_disconnect(view, "bridge", "web")
    assert plan.endpoint.network_id == nid("bridge") and plan.network == NET["bridge"]
    assert [e.network_id for e in plan.remaining] == [nid("n1")]
    assert plan.reroute
    hostc = view.container(nid("ctr-hostc"))
    assert hostc is not None and not planning.DisconnectPlan(NET["n1"], hostc, ctrs.endpoints[0]).reroute
