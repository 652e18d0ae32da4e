"""The runner side of checks (`checks.CheckContext`): commands in containers and on
nodes, names, addresses, connect and disconnect, for a running `Lab`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from netkit.labs.health import wrap

if TYPE_CHECKING:
    from netkit.labs.runner import Lab


class RunnerContext:
    """The runner side of checks.CheckContext."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.project = lab.project

    def node_name(self, ref: str) -> str:
        """``node:KEY`` (a key of x-netkit.nodes) or ``node:NAME`` -> the node's name."""
        name = ref[5:] if ref.startswith("node:") else ref
        nodes = self.project.nodes if self.project else {}
        return nodes[name].name if name in nodes else name

    def swarm_manager(self):
        from netkit.labs.swarm import manager_engine
        return manager_engine(self.lab)

    def run_in(self, ref: str, index: int | None, argv: list[str], timeout: float) -> tuple[int, str]:
        if ref.startswith("node:"):
            out: list[bytes] = []
            code = self.lab.target.node_exec(self.node_name(ref), wrap(argv, timeout), capture=out)
            return code, b"".join(out).decode(errors="replace")
        return self.lab.exec_output(ref, argv, index=index, timeout=timeout)

    def capture_target(self, ref: str, index: int | None, iface: str | None = None):
        """A netkit.capture Target for a lab reference: a service or container (on its
        node), ``node:KEY|NAME``, ``lan:KEY|NAME``, ``network:KEY|NAME`` (on the target)."""
        from netkit.capture.targets import resolve, split
        kind, name = split(ref)
        p = self.project
        if kind == "container":
            m = self.lab.locate(ref, index)
            return resolve(self.lab.engine(m.node), m.name, iface)
        if kind == "node":
            name = self.node_name(ref)
        elif kind == "lan" and p and name in p.lans:
            name = p.lans[name].name
        elif kind == "network":
            name = self._network(name)
        return resolve(self.lab.target, f"{kind}:{name}", iface)

    def label(self, ref: str, index: int | None) -> str:
        if ref.startswith("node:"):
            return "node:" + self.node_name(ref)
        return self.lab.locate(ref, index).name

    def addresses(self, name: str, seen_from: str, index: int | None) -> list[set[str]]:
        src = self.lab.locate(seen_from, index)
        eng = self.lab.engine(src.node)
        ctr = src.container
        if ctr.shares_netns_of:
            ctr = eng.container(ctr.shares_netns_of)
        nets = {ep.network_id for ep in ctr.endpoints}
        from netkit.labs.swarm import addresses as swarm_addresses
        swarm = swarm_addresses(self.lab, name, nets)
        if swarm:
            return list(swarm.values())
        local = self.lab.members(eng)
        targets = [m.container for m in local if m.service == name or m.name == name]
        per_net: dict[str, set[str]] = {}
        for c in targets or [c for c in eng.containers() if c.name == name]:
            for ep in c.endpoints:
                if ep.network_id in nets and ep.ipv4_address:
                    per_net.setdefault(ep.network_id, set()).add(ep.ipv4_address)
        if not per_net:                                   # a network alias
            for c in eng.containers():
                for ep in c.endpoints:
                    if ep.network_id in nets and name in ep.aliases and ep.ipv4_address:
                        per_net.setdefault(ep.network_id, set()).add(ep.ipv4_address)
        return list(per_net.values())

    def _network(self, key: str) -> str:
        p = self.lab.project
        return p.networks[key].name if p and key in p.networks else key

    def connect(self, network: str, ref: str, index: int | None, aliases: tuple[str, ...],
                ipv4: str | None) -> str:
        m = self.lab.locate(ref, index)
        net = self._network(network)
        ep = self.lab.engine(m.node).connect(net, m.container.id, aliases=aliases, ipv4=ipv4)
        return f"connected {m.name} to {net} as {ep.ipv4_address or ep.ipv6_address}"

    def disconnect(self, network: str, ref: str, index: int | None, force: bool) -> str:
        m = self.lab.locate(ref, index)
        net = self._network(network)
        self.lab.engine(m.node).disconnect(net, m.container.id, force=force)
        return f"disconnected {m.name} from {net}"
