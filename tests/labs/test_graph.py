"""Graph rendering (pure text; SVG through Graphviz when installed)."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET

import pytest

from netkit.labs.graph import GContainer, GNetwork, GNode, Topology, render, to_dot, to_mermaid, write


def topo() -> Topology:
    return Topology(
        project="demo",
        lans=[("lan1", "192.168.77.0/24", "192.168.77.1")],
        nodes=[GNode("a", "192.168.77.10/24", "lan1"), GNode("b", "192.168.77.20/24", "lan1")],
        networks=[GNetwork("a", "demo_front", "bridge", ["172.72.0.0/16 gw 172.72.0.1"], bridged=True),
                  GNetwork("b", "demo_default", "bridge", ["172.18.0.0/16 gw 172.18.0.1"], internal=True,
                           bridged=True)],
        containers=[
            GContainer("a", "demo-web-1", "web", "demo_front", [("demo_front", "172.72.0.2/16")],
                       ["0.0.0.0:8080->80/tcp"]),
            GContainer("a", "demo-side-1", "side", "container:demo-web-1"),
            GContainer("a", 'we"ird-1', "weird", "host"),
            GContainer("b", "demo-db-1", "db", "none", running=False),
        ])


def test_dot_names_everything_and_quotes():
    dot = to_dot(topo())
    for text in ("LAN lan1\\n192.168.77.0/24\\nrouter 192.168.77.1", "node a\\n192.168.77.10/24",
                 "demo_front (bridge)\\n172.72.0.0/16 gw 172.72.0.1", "demo_default (bridge, internal)",
                 '"ctr:a:demo-web-1" -- "net:a:demo_front" [label="172.72.0.2/16"]',
                 '"ctr:a:demo-side-1" -- "ctr:a:demo-web-1" [style=dashed, label="shares netns"]',
                 '"ctr:a:we\\"ird-1" -- "host:a" [style=bold, label="host network"]',
                 "none: lo only", "(exited)", '"host:b" -- "lan:lan1" [label="192.168.77.20/24", penwidth=2]',
                 '"net:a:demo_front" -- "host:a" [style=dotted, label="bridge"]'):
        assert text in dot, text


def test_mermaid():
    mmd = to_mermaid(topo())
    assert mmd.startswith("flowchart LR\n")
    assert '["demo-web-1<br/>service web"]' in mmd and "we#quot;ird-1" in mmd
    assert '---|"172.72.0.2/16"|' in mmd and "-.-|shares netns|" in mmd and "===|host network|" in mmd


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz not installed")
def test_svg_is_xml_naming_every_container(tmp_path):
    path = tmp_path / "g.svg"
    assert write(topo(), str(path)) == "svg"
    root = ET.parse(path).getroot()
    texts = " ".join(t.text or "" for t in root.iter() if t.tag.endswith("text"))
    for c in topo().containers:
        assert c.name in texts
    assert render(topo(), "png").startswith(b"\x89PNG")


def test_unknown_format(tmp_path):
    with pytest.raises(Exception, match="unknown graph format 'jpg'"):
        write(topo(), str(tmp_path / "g.jpg"))
    with pytest.raises(Exception, match="cannot tell the format"):
        write(topo(), str(tmp_path / "g"))
