"""The ingress network and the routing mesh (Docker's `ingress` and `ingress_sbox`).

`swarm init` makes the swarm network `ingress` (overlay, 10.0.0.0/24, VNI
4096, not attachable: `create_ingress`); the ingress network is the swarm
network of that name (`is_ingress`). A service port published in mode
ingress answers on every member's LAN address: each member's agent runs
`step` (a NODE_STEPS entry of netkit/services/tick.py), which keeps

- the node's ingress sandbox (netkit/kernel/ingress.py): a netns with an
  endpoint on `ingress` (its address from the cluster IPAM, owner
  "ingress-sbox:<node>", published as a cluster endpoint so the other nodes
  program it as a VXLAN peer) and a link from the node;
- the node's rules: its LAN address's published ports DNATed into the
  sandbox (from the LAN and from the node itself);
- the sandbox's rules: each port spread round robin (nftables numgen; this
  kernel has no IPVS) over the ingress addresses of the service's tasks that
  run and should (desired state running), on any node that is up, with SNAT
  to the sandbox's ingress address (netkit/firewall/mesh.py renders both).

Once applied, the step notes the cluster version its rules reflect
(netkit/services/drain.py: a node acknowledges a task's retirement once
both this and the VIP rules applied it; its runner waits for the acks).

The sandbox exists while some service publishes an ingress port (Docker
makes it at swarm init; netkit makes it when first needed, so a swarm
without published ports carries nothing). Only what changed is programmed:
the last script applied per netns is remembered. The node's mesh goes when
it leaves the swarm (`teardown`, from netkit/swarm.py) or is removed.
"""

from __future__ import annotations

import hashlib
import threading
from typing import TYPE_CHECKING, Any

from netkit.errors import Conflict
from netkit.firewall.mesh import MeshPort, render_delete, render_node, render_sandbox
from netkit.kernel import ingress as kin
from netkit.kernel import nft
from netkit.services.lb import in_rotation
from netkit.services.model import INGRESS_MODE, services, tasks

if TYPE_CHECKING:
    from netkit.drivers.base import DriverContext
    from netkit.engine import Engine
    from netkit.model import Network
    from netkit.store import Tx
    from netkit.store.cluster import ClusterEndpoint, ClusterStore

INGRESS = "ingress"
SUBNET, GATEWAY, VNI = "10.0.0.0/24", "10.0.0.1", 4096
SANDBOX = "ingress-sbox"                 # Docker's key in `network inspect ingress` Containers
ENDPOINT = "ingress-endpoint"            # ... and the endpoint's name
_applied: dict[str, str] = {}            # netns -> the last mesh script applied there
_lock = threading.Lock()


# -- the ingress network -------------------------------------------------------------
def is_ingress(net: "Network") -> bool:
    from netkit.model import Scope
    return net.scope is Scope.SWARM and net.name == INGRESS


def ingress_network(c: Any) -> "Network | None":
    """The cluster's ingress network (`c`: a ClusterTx or a ClusterStore), None if none."""
    if hasattr(c, "read"):
        c = c.read()
    return next((n for n in c.networks() if is_ingress(n)), None)


def ingress_network_id(c: Any) -> str | None:
    """The id of the cluster's ingress network: the runner attaches tasks of services that
    publish ports in mode ingress to it."""
    net = ingress_network(c)
    return net.id if net is not None else None


def create_ingress(c: Any) -> "Network":
    """`swarm init`'s ingress network, in the cluster transaction `c`."""
    from netkit import ipam
    from netkit.agent.peers import VNI_OPTION
    from netkit.ids import new_id, now
    from netkit.model import Network, Scope
    cfgs = ipam.build_ipam((SUBNET,), (), (), {}, ipv4=True, ipv6=False, taken=c.all_subnets(),
                           skip_gateway=False, pools=ipam.DEFAULT_GLOBAL_POOLS)
    net = Network(id=new_id(), name=INGRESS, driver="overlay", scope=Scope.SWARM, created=now(),
                  ipam=cfgs, attachable=False, options={VNI_OPTION: str(VNI)})
    c.insert_network(net, VNI)
    for cfg in net.ipam:
        for value, owner in ipam.reserved(cfg).items():
            c.hold_address(net.id, cfg.family, ipam.to_key(value, cfg.family), owner)
    return net


def check_remove(c: Any, net: "Network") -> None:
    """`network rm ingress`: refused while a service publishes a port in mode ingress
    (swarmkit's words); else the sandboxes' endpoints go with it."""
    for s in services(c):
        if any(p.mode == INGRESS_MODE for p in s.spec.ports):
            raise Conflict(f"ingress network cannot be removed because service {s.id} depends on it")
    for ep in c.endpoints(network_id=net.id):
        if ep.container_id == SANDBOX:
            _withdraw(c, ep)


def _withdraw(c: Any, ep: "ClusterEndpoint") -> None:
    """A sandbox's endpoint and its address, in the cluster transaction `c`."""
    from netkit.ipam import ip_to_int, to_key
    if ep.ipv4:
        family, value = ip_to_int(ep.ipv4.split("/")[0])
        c.release_address(ep.network_id, family, to_key(value, family))
    c.withdraw_endpoint(ep.id)


# -- what the mesh should do (pure) ---------------------------------------------------
def mesh_ports(c: Any, ingress_id: str, down: "set[str] | frozenset[str]" = frozenset()
               ) -> list[MeshPort]:
    """Every ingress-published port of the cluster with its running tasks' ingress addresses."""
    out = []
    for s in services(c):
        ports = [p for p in s.spec.ports if p.mode == INGRESS_MODE]
        if not ports:
            continue
        backends = tuple(sorted(t.addresses[ingress_id].split("/")[0]
                                for t in tasks(c, service_id=s.id)
                                if in_rotation(t, down) and t.addresses.get(ingress_id)))
        out += [MeshPort(p.protocol, p.published, p.target, backends) for p in ports]
    return out


def _sandbox_endpoint(c: Any, ingress_id: str, node: str) -> "ClusterEndpoint | None":
    return next((ep for ep in c.endpoints(network_id=ingress_id, node=node)
                 if ep.container_id == SANDBOX), None)


def _endpoint_id(cluster_id: str, node: str) -> str:
    return hashlib.sha256(f"{cluster_id}/{SANDBOX}/{node}".encode()).hexdigest()


# -- the node's step -------------------------------------------------------------------
def step(engine: "Engine", cluster: "ClusterStore", down: "set[str] | frozenset[str]") -> None:
    """Bring this node's sandbox and rules in step with the cluster's ingress ports."""
    from netkit.services import drain
    node = engine.node_name
    c = cluster.read()
    version = drain.version_of(c)            # read first: the rules reflect at least it
    net = ingress_network(c)
    ports = mesh_ports(c, net.id, down) if net is not None else []
    with _lock:
        if net is None or not ports:
            _stop(engine, cluster, c, net)
            drain.applied(cluster.cluster_id, node, "mesh", version)
            return None
        ep = _sandbox_endpoint(c, net.id, node) or _publish(engine, cluster, net)
        assert ep.ipv4 is not None
        sbox = kin.sandbox_netns(node)
        if kin.sandbox_address(sbox) != ep.ipv4:
            _make(engine, net, sbox, ep)
        lan = engine.cluster.vtep()
        _apply(engine.node.netns or "", render_node(lan, kin.SANDBOX_ADDR, ports))
        _apply(sbox, render_sandbox(ep.ipv4.split("/")[0], net.ipam[0].subnet, ports))
    drain.applied(cluster.cluster_id, node, "mesh", version)
    return None


def _publish(engine: "Engine", cluster: "ClusterStore", net: "Network") -> "ClusterEndpoint":
    """The sandbox's address on `ingress` and its cluster endpoint (a short transaction)."""
    from netkit.ipam import allocate
    from netkit.store.cluster import ClusterEndpoint
    node = engine.node_name
    with cluster.transaction() as w:
        found = _sandbox_endpoint(w, net.id, node)
        if found is not None:
            return found
        ipv4 = allocate(w, net, 4, None, f"{SANDBOX}:{node}", hints=False)
        assert ipv4 is not None
        ep = ClusterEndpoint(id=_endpoint_id(cluster.cluster_id, node), network_id=net.id,
                             node=node, container_id=SANDBOX, container_name=ENDPOINT, ipv4=ipv4,
                             ipv6=None, mac=engine.cluster.new_mac(ipv4), vtep=engine.cluster.vtep())
        w.publish_endpoint(ep)
    return ep


def _make(engine: "Engine", net: "Network", sbox: str, ep: "ClusterEndpoint") -> None:
    """A fresh sandbox (an old or half-made one goes first), then the node's VXLAN peers."""
    from netkit.drivers.overlay import OverlayDriver
    with engine.cluster.actions() as (tx, ctx):
        kin.remove_sandbox(ctx.kernel, sbox)
    _applied.pop(sbox, None)
    _applied.pop(engine.node.netns or "", None)      # rules may have gone with a swarm leave
    with engine.cluster.actions() as (tx, ctx):
        bridge = OverlayDriver().ensure_segment(ctx, net)     # the segment, as a task's join makes it
        kin.make_sandbox(ctx.kernel, sbox, bridge, ep.ipv4 or "", ep.mac)
    engine.cluster.sync_node()             # the segment is new: program its peers now


def _apply(netns: str, script: str) -> None:
    if _applied.get(netns) == script:
        return
    nft.apply(netns, script)
    _applied[netns] = script


def _stop(engine: "Engine", cluster: "ClusterStore", c: Any, net: "Network | None") -> None:
    """No ingress port (or no ingress network): the node's mesh goes, its endpoint too
    (`c`: the step's read of `cluster`)."""
    node = engine.node_name
    if net is not None and _sandbox_endpoint(c, net.id, node) is not None:
        with cluster.transaction() as w:
            ep = _sandbox_endpoint(w, net.id, node)
            if ep is not None:
                _withdraw(w, ep)
    sbox, node_ns = kin.sandbox_netns(node), engine.node.netns or ""
    if not kin.ns.exists(sbox):
        if node_ns not in _applied and kin.list_rules(node_ns) is None:
            _applied[node_ns] = render_delete()          # looked once: nothing here
        if _applied.get(node_ns) == render_delete():
            return
    with engine.cluster.actions() as (tx, ctx):
        teardown(ctx, tx)


def teardown(ctx: "DriverContext", tx: "Tx") -> None:
    """Remove this node's mesh in the action `ctx`: the node's rules, the sandbox, and the
    ingress segment if nothing else uses it (swarm leave, node rm, no ingress port left)."""
    from netkit.drivers.overlay import OverlayDriver
    node = ctx.node
    kin.remove_sandbox(ctx.kernel, kin.sandbox_netns(node.name))
    _applied.pop(kin.sandbox_netns(node.name), None)
    net = next((n for n in tx.networks() if is_ingress(n)), None)
    if net is not None:
        OverlayDriver().release_segment(ctx, net)
    if node.netns:
        nft.apply(node.netns, render_delete())
        _applied[node.netns] = render_delete()


def owned_links(tx: "Tx", node: str) -> set[str]:
    """The links the mesh owns on the node while its sandbox exists (for `system check`):
    the sandbox's bridge port and, when no container holds it, the ingress segment."""
    from netkit.agent.peers import bridge_name, vxlan_name
    from netkit.drivers.overlay import vni_of
    if not kin.ns.exists(kin.sandbox_netns(node)):
        return set()
    out = {kin.PORT_LINK}
    net = next((n for n in tx.networks() if is_ingress(n)), None)
    if net is not None:
        out |= {bridge_name(vni_of(net)), vxlan_name(vni_of(net))}
    return out
