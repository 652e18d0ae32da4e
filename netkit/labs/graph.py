"""`lab graph`: a running lab drawn as nodes, LANs, networks and containers.

`gather(lab)` reads the live state into a `Topology` (plain data); the
renderers are pure text: `to_dot` (Graphviz; `write` runs ``dot`` for
.svg/.png/.pdf) and `to_mermaid` (.mmd). Each simulated node is a cluster
holding its own netns ("host"), its networks (subnet, gateway) and its
containers, with one edge per endpoint labelled with the address; nodes
hang off their LANs by their LAN address.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from netkit import drivers
from netkit.errors import InvalidArgument, Unsupported

if TYPE_CHECKING:
    from netkit.labs.runner import Lab


@dataclass
class GNode:
    name: str                       # "" = the real host
    ip: str | None = None
    lan: str | None = None


@dataclass
class GNetwork:
    node: str
    name: str
    driver: str
    subnets: list[str] = field(default_factory=list)       # "172.72.0.0/16 gw 172.72.0.1"
    internal: bool = False
    bridged: bool = False          # a bridge on the node (its gateway there): drawn linked to it


@dataclass
class GContainer:
    node: str
    name: str
    service: str
    mode: str                                              # network name, host, none, container:<name>
    endpoints: list[tuple[str, str]] = field(default_factory=list)   # (network name, addresses)
    ports: list[str] = field(default_factory=list)
    running: bool = True


@dataclass
class Topology:
    project: str
    lans: list[tuple[str, str, str | None]] = field(default_factory=list)   # name, subnet, gateway
    nodes: list[GNode] = field(default_factory=list)
    networks: list[GNetwork] = field(default_factory=list)
    containers: list[GContainer] = field(default_factory=list)


def gather(lab: "Lab") -> Topology:
    """The live topology of a lab: what `ps` sees, plus networks and nodes."""
    topo = Topology(lab.name)
    known = {n.name: n for n in lab.target.nodes()}
    lans_used: set[str] = set()
    for node in lab.engine_nodes():
        info = known.get(node or "")
        topo.nodes.append(GNode(node or "", info.ip if info else None, info.lan if info else None))
        if info and info.lan:
            lans_used.add(info.lan)
        eng = lab.engine(node)
        members = lab.members(eng)
        by_id = {m.container.id: m.container.name for m in members}
        used_nets = {ep.network_id for m in members for ep in m.container.endpoints}
        for net in sorted(eng.networks(), key=lambda n: n.name):
            from netkit.labs.plan import PROJECT
            if net.labels.get(PROJECT) != lab.name and net.id not in used_nets:
                continue
            subnets = [c.subnet + (f" gw {c.gateway}" if c.gateway else "") for c in net.ipam]
            driver = drivers.find(net.driver)
            topo.networks.append(GNetwork(node or "", net.name, net.driver, subnets, net.internal,
                                          driver is not None and driver.node_bridge(net) is not None))
        for m in members:
            c = m.container
            mode = c.network_mode
            if c.shares_netns_of:
                other = by_id.get(c.shares_netns_of) or c.shares_netns_of[:12]
                mode = f"container:{other}"
            eps = [(ep.network_name, ", ".join(a for a in (ep.ipv4, ep.ipv6) if a)) for ep in c.endpoints]
            ports = [f"{p.host_ip}:{p.host_port}->{p.container_port}/{p.proto}" for p in c.ports]
            topo.containers.append(GContainer(node or "", c.name, m.service, mode, eps, ports, c.running))
    busy = {x.node for x in topo.networks} | {x.node for x in topo.containers}
    topo.nodes = [n for n in topo.nodes if n.name in busy or n.lan]
    for lan in lab.target.lans():
        if lan.name in lans_used:
            topo.lans.append((lan.name, lan.subnet, lan.gateway))
    return topo


# -- DOT -------------------------------------------------------------------------------------

def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _node_title(n: GNode) -> str:
    title = f"node {n.name}" if n.name else "host"
    return title + (f"\n{n.ip}" if n.ip else "")


def to_dot(t: Topology) -> str:
    out = [f"graph {_q('lab ' + t.project)} {{",
           f'  graph [rankdir=LR, fontname="Helvetica", fontsize=12, labelloc=t, label={_q("lab " + t.project)}];',
           '  node [fontname="Helvetica", fontsize=10];',
           '  edge [fontname="Helvetica", fontsize=9, color="#555555"];']
    for name, subnet, gw in t.lans:
        label = f"LAN {name}\n{subnet}" + (f"\nrouter {gw}" if gw else "")
        out.append(f'  {_q("lan:" + name)} [shape=box, style="filled,bold", fillcolor="#fde2c8", label={_q(label)}];')
    for n in t.nodes:
        out.append(f"  subgraph {_q('cluster:' + n.name)} {{")
        out.append(f'    label={_q(_node_title(n))}; style="rounded"; color="#888888";')
        host = "host:" + n.name
        out.append(f'    {_q(host)} [shape=box3d, label={_q((n.name or "host") + " netns")}];')
        for net in (x for x in t.networks if x.node == n.name):
            label = f"{net.name} ({net.driver}{', internal' if net.internal else ''})"
            label += "".join(f"\n{s}" for s in net.subnets)
            nid = f"net:{n.name}:{net.name}"
            out.append(f'    {_q(nid)} [shape=box, style="rounded,filled", fillcolor="#dbeafe", label={_q(label)}];')
            if net.bridged and any(" gw " in s for s in net.subnets):
                out.append(f'    {_q(nid)} -- {_q(host)} [style=dotted, label="bridge"];')
        for c in (x for x in t.containers if x.node == n.name):
            cid = f"ctr:{n.name}:{c.name}"
            label = f"{c.name}\nservice {c.service}" + "".join(f"\n{p}" for p in c.ports)
            if not c.running:
                label += "\n(exited)"
            out.append(f'    {_q(cid)} [shape=box, style="filled", fillcolor="#dcfce7", label={_q(label)}];')
            if c.mode == "host":
                out.append(f'    {_q(cid)} -- {_q(host)} [style=bold, label="host network"];')
            elif c.mode == "none":
                out.append(f'    {_q(cid + ":lo")} [shape=plaintext, label="none: lo only"];')
                out.append(f'    {_q(cid)} -- {_q(cid + ":lo")} [style=dashed];')
            elif c.mode.startswith("container:"):
                other = f"ctr:{n.name}:{c.mode.split(':', 1)[1]}"
                out.append(f'    {_q(cid)} -- {_q(other)} [style=dashed, label="shares netns"];')
            for net_name, addrs in c.endpoints:
                out.append(f'    {_q(cid)} -- {_q(f"net:{n.name}:{net_name}")} [label={_q(addrs)}];')
        out.append("  }")
        if n.lan:
            out.append(f'  {_q(host)} -- {_q("lan:" + n.lan)} [label={_q(n.ip or "")}, penwidth=2];')
    out.append("}")
    return "\n".join(out) + "\n"


# -- Mermaid ---------------------------------------------------------------------------------

def _m(text: str) -> str:
    return '"' + text.replace('"', "#quot;").replace("\n", "<br/>") + '"'


def to_mermaid(t: Topology) -> str:
    ids: dict[str, str] = {}

    def nid(key: str) -> str:
        return ids.setdefault(key, f"n{len(ids)}")

    out = ["flowchart LR"]
    for name, subnet, gw in t.lans:
        out.append(f"  {nid('lan:' + name)}{{{{{_m(f'LAN {name}' + chr(10) + subnet)}}}}}")
    for n in t.nodes:
        out.append(f"  subgraph {nid('cluster:' + n.name)}[{_m(_node_title(n))}]")
        host = "host:" + n.name
        out.append(f"    {nid(host)}[{_m((n.name or 'host') + ' netns')}]")
        for net in (x for x in t.networks if x.node == n.name):
            label = net.name + "".join("\n" + s for s in net.subnets)
            out.append(f"    {nid(f'net:{n.name}:{net.name}')}[({_m(label)})]")
        for c in (x for x in t.containers if x.node == n.name):
            out.append(f"    {nid(f'ctr:{n.name}:{c.name}')}[{_m(c.name + chr(10) + 'service ' + c.service)}]")
        out.append("  end")
        for c in (x for x in t.containers if x.node == n.name):
            cid = nid(f"ctr:{n.name}:{c.name}")
            if c.mode == "host":
                out.append(f"  {cid} ===|host network| {nid(host)}")
            elif c.mode.startswith("container:"):
                out.append(f"  {cid} -.-|shares netns| {nid(f'ctr:{n.name}:' + c.mode.split(':', 1)[1])}")
            for net_name, addrs in c.endpoints:
                out.append(f"  {cid} ---|{_m(addrs)}| {nid(f'net:{n.name}:{net_name}')}")
        if n.lan:
            out.append(f"  {nid(host)} ---|{_m(n.ip or '')}| {nid('lan:' + n.lan)}")
    return "\n".join(out) + "\n"


# -- files -----------------------------------------------------------------------------------

FORMATS = ("svg", "png", "pdf", "dot", "gv", "mmd")


def render(t: Topology, fmt: str) -> bytes:
    """The drawing in `fmt` (svg, png, pdf via Graphviz; dot/gv, mmd as text)."""
    if fmt in ("dot", "gv"):
        return to_dot(t).encode()
    if fmt == "mmd":
        return to_mermaid(t).encode()
    if fmt not in FORMATS:
        raise InvalidArgument(f"unknown graph format {fmt!r}: use one of {', '.join(FORMATS)}")
    dot = shutil.which("dot")
    if dot is None:
        raise Unsupported("graphviz is not installed (`dot` not found): apt-get install graphviz")
    proc = subprocess.run([dot, f"-T{fmt}"], input=to_dot(t).encode(), capture_output=True, timeout=60)
    if proc.returncode != 0:
        raise Unsupported(f"dot failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def write(t: Topology, path: str) -> str:
    """Write the drawing to `path`, the format taken from its extension; returns the format."""
    fmt = os.path.splitext(path)[1].lstrip(".").lower()
    if not fmt:
        raise InvalidArgument(f"cannot tell the format of {path}: use .svg, .png, .pdf, .dot or .mmd")
    data = render(t, fmt)
    with open(path, "wb") as f:
        f.write(data)
    return fmt
