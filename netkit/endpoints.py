"""Endpoints and published ports of one node (`Endpoints`).

Owns the endpoint noun: planning one (interface name, addresses from the
network's scope, MAC) before the driver's join, joining and leaving, the
default route through the gateway endpoint (Docker's Endpoint.Less order),
the host ports published through it (`-p`, `-P`) and their retargeting
when the gateway endpoint changes, and the egress endpoint on
`netkit_gwbridge` of containers whose networks are all swarm-scoped.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from netkit import drivers, planning
from netkit.errors import Conflict, Exhausted, InvalidArgument
from netkit.ids import new_id, now
from netkit.kernel import netns as kns
from netkit.model import Endpoint, Network
from netkit.scope import onlink_routes

if TYPE_CHECKING:
    from netkit.drivers.base import DriverContext
    from netkit.fwsync import FirewallSync
    from netkit.model import Container, Node
    from netkit.scope import Scopes
    from netkit.planning import EndpointPlan
    from netkit.store import Tx

GWBRIDGE = "netkit_gwbridge"         # docker_gwbridge: egress of containers on overlays only


class Endpoints:
    """Attachments of containers to networks on one node, and their published ports."""

    def __init__(self, node: "Node", scopes: "Scopes", firewall: "FirewallSync") -> None:
        self.node = node
        self.scopes = scopes
        self.firewall = firewall

    # -- joining ---------------------------------------------------------------
    def join(self, tx: "Tx", ctx: "DriverContext", net: Network, ctr: "Container",
             plan: "EndpointPlan") -> Endpoint:
        """Allocate `plan`'s addresses in the network's scope, have the driver make the
        endpoint, record it (netkit.planning decided everything else)."""
        scope = self.scopes.of(net.scope)   # where the network's addresses are held
        ep_id = new_id()
        ipv4 = scope.allocate(tx, net, 4, plan.ipv4.static, ep_id) if plan.ipv4 else None
        ipv6 = scope.allocate(tx, net, 6, plan.ipv6.static, ep_id) if plan.ipv6 else None
        ep = plan.endpoint(ep_id, ctr.id, mac=plan.mac or scope.new_mac(ipv4), ipv4=ipv4, ipv6=ipv6)
        result = drivers.get(net.driver).join(ctx, net, ep, ctr)
        ep = dataclasses.replace(ep, host_ifname=result.host_ifname, mac=result.mac)
        tx.insert_endpoint(ep)
        scope.publish(tx, net, ep, ctr)
        return ep

    def leave(self, tx: "Tx", ctx: "DriverContext", net: Network, ep: Endpoint,
              ctr: "Container") -> None:
        """The driver's leave; then the scope frees the endpoint's addresses and withdraws it."""
        drivers.get(net.driver).leave(ctx, net, ep, ctr)
        scope = self.scopes.of(net.scope)
        scope.release(tx, net, ep)
        scope.withdraw(tx, net, ep)

    # -- the default route --------------------------------------------------------
    def route(self, tx: "Tx", ctx: "DriverContext", ctr: "Container", eps: list[Endpoint],
              replace: bool) -> Endpoint | None:
        """Default route via the gateway endpoint; returns that endpoint."""
        import socket as _s
        from netkit.drivers.bridge import default_route
        nets = {ep.network_id: tx.network(ep.network_id) for ep in eps}
        gw_ep = planning.gateway_endpoint(eps, nets)                    # type: ignore[arg-type]
        gw4 = gw6 = None
        if gw_ep is not None:
            n = nets[gw_ep.network_id]
            gw4 = n.gateway_v4 if gw_ep.ipv4 else None                  # type: ignore[union-attr]
            gw6 = n.gateway_v6 if gw_ep.ipv6 else None                  # type: ignore[union-attr]
        if replace:
            default_route(ctx, ctr, gw4, gw6)
        else:
            sb = ctx.kernel.netns(ctr.netns)
            for gw, fam in ((gw4, _s.AF_INET), (gw6, _s.AF_INET6)):
                if gw:
                    sb.add_route(gateway=gw, family=fam)
        return gw_ep

    # -- egress: netkit_gwbridge (Docker's docker_gwbridge) ---------------------------------
    def egress(self, tx: "Tx", ctx: "DriverContext", ctr: "Container",
               eps: list[Endpoint]) -> Endpoint | None:
        """A container whose networks all have no gateway on this node (overlays), not all
        internal, gets one more endpoint on the node's local bridge `netkit_gwbridge` and
        its default route there; returns that endpoint (its -p ports go through it, as
        Docker's through docker_gwbridge), None when it needs none.

        The endpoint is not added to `eps`: it is not one of the container's networks for
        /etc/hosts or port publishing, as docker_gwbridge is not in Docker.
        """
        from netkit.drivers.bridge import default_route
        from netkit.specs import EndpointSpec
        nets = [tx.network(ep.network_id) for ep in eps]
        if not planning.needs_gateway_bridge(nets):
            return None
        gw_net = self._ensure_gwbridge(tx, ctx)
        ep = self.join(tx, ctx, gw_net, ctr, planning.plan_endpoint(gw_net, EndpointSpec(GWBRIDGE), eps))
        default_route(ctx, ctr, gw_net.gateway_v4 if ep.ipv4 else None, None)
        self.firewall.sync(tx, ctx)
        return ep

    def _ensure_gwbridge(self, tx: "Tx", ctx: "DriverContext") -> Network:
        """The node's `netkit_gwbridge` network, created in this action if missing."""
        from netkit import ipam
        from netkit.drivers import bridge
        for network_id, name in tx.network_refs():
            if name == GWBRIDGE:
                found = tx.network(network_id)
                assert found is not None
                return found
        cfgs = ipam.build_ipam((), (), (), {}, taken=tx.all_subnets() + onlink_routes(ctx),
                               one_subnet_per_family=True)
        net = Network(id=new_id(), name=GWBRIDGE, driver="bridge", created=now(), ipam=cfgs,
                      options={bridge.OPT_NAME: GWBRIDGE, bridge.OPT_ICC: "false",
                               bridge.OPT_MASQ: "true"})
        self.scopes.local.reserve(tx, net)
        drivers.get("bridge").create_network(ctx, net)
        return net

    # -- published ports ----------------------------------------------------------------
    def publish_ports(self, tx: "Tx", ctx: "DriverContext", ctr: "Container", gw_ep: Endpoint,
                      reqs: list) -> list:
        """Bind each requested host port (Docker's messages when taken) for the gateway endpoint."""
        from netkit.model import PortMapping
        out = []
        for req in reqs:
            six = bool(gw_ep.ipv6) and req.host_ip == "0.0.0.0"    # also bound on [::] (dual stack)
            if req.host_port_end:
                port = self._free_port(tx, req.proto, req.host_ip, (req.host_port, req.host_port_end), six)
            else:
                port = req.host_port or self._free_port(tx, req.proto, req.host_ip, six=six)
            holder = tx.port_holder(req.proto, req.host_ip, port)
            if holder is not None:
                raise Conflict(f"Bind for {req.host_ip}:{port} failed: port is already allocated")
            self._probe_port(req.proto, req.host_ip, port)
            if six:
                self._probe_port(req.proto, "::", port)
            pm = PortMapping(req.proto, req.host_ip, port, req.container_port,
                             gw_ep.ipv4_address or "", gw_ep.network_id)
            tx.insert_port(ctr.id, pm)
            out.append(pm)
        if out and gw_ep.host_ifname:
            ctx.kernel.host.set_hairpin(gw_ep.host_ifname)
        return out

    def _probe_port(self, proto: str, host_ip: str, port: int, quiet: bool = False) -> bool:
        """Is host_ip:port/proto free on the node? (a process may hold it outside netkit)"""
        import errno
        import socket as _s
        kind = _s.SOCK_STREAM if proto == "tcp" else _s.SOCK_DGRAM
        v6 = ":" in host_ip
        sock = kns.socket_in(self.node.netns, _s.AF_INET6 if v6 else _s.AF_INET, kind)
        shown = f"[{host_ip}]" if v6 else host_ip
        try:
            if v6:
                sock.setsockopt(_s.IPPROTO_IPV6, _s.IPV6_V6ONLY, 1)   # the IPv4 side is probed apart
            sock.bind((host_ip, port))
            return True
        except OSError as exc:
            if quiet:
                return False
            if exc.errno == errno.EADDRINUSE:
                raise Conflict(f"failed to bind host port {shown}:{port}/{proto}: address already in use") from None
            raise InvalidArgument(f"failed to bind host port {shown}:{port}/{proto}: {exc.strerror.lower()}") from None
        finally:
            sock.close()

    def _free_port(self, tx: "Tx", proto: str, host_ip: str,
                   wanted: tuple[int, int] | None = None, six: bool = False) -> int:
        """The lowest free port of `wanted` (`-p 9090-9092:80`), else of the node's
        ephemeral range (ip_local_port_range); `six`: free on [::] too."""
        if wanted:
            lo, hi = wanted
        else:
            try:
                lo, hi = map(int, kns.read_sysctl(self.node.netns, "ipv4/ip_local_port_range").split())
            except (OSError, ValueError):
                lo, hi = 49153, 65535
        held = {pm.host_port for _, pm in tx.ports() if pm.proto == proto}
        for port in range(lo, hi + 1):
            if port not in held and self._probe_port(proto, host_ip, port, quiet=True) \
                    and (not six or self._probe_port(proto, "::", port, quiet=True)):
                return port
        if wanted:
            raise Exhausted("all ports are allocated")          # Docker's portallocator
        raise Exhausted(f"no free host port for {proto} in {lo}-{hi}")

    def retarget_ports(self, tx: "Tx", ctx: "DriverContext", ctr: "Container",
                       gw_ep: Endpoint | None) -> None:
        """Published ports follow the gateway endpoint (Docker reprograms them on connect/disconnect).

        A container that had no gateway (its networks all --internal) publishes its
        -p / -P ports now that it has one, as Docker applies HostConfig.PortBindings then.
        """
        if not ctr.ports:
            reqs = planning.stored_port_requests(ctr) if gw_ep is not None else []
            net = tx.network(gw_ep.network_id) if reqs and gw_ep is not None else None
            if net is not None and gw_ep is not None and drivers.get(net.driver).maps_ports:
                self.publish_ports(tx, ctx, ctr, gw_ep, reqs)
                self.firewall.sync(tx, ctx)
            return
        tx.delete_ports(ctr.id)
        if gw_ep is not None and gw_ep.ipv4_address:
            from netkit.model import PortMapping
            for pm in ctr.ports:
                tx.insert_port(ctr.id, PortMapping(pm.proto, pm.host_ip, pm.host_port, pm.container_port,
                                                   gw_ep.ipv4_address, gw_ep.network_id))
            if gw_ep.host_ifname:
                ctx.kernel.host.set_hairpin(gw_ep.host_ifname)
        self.firewall.sync(tx, ctx)
