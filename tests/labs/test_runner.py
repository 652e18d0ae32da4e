"""Labs for real, each in a throwaway simulated node: up, aliases, scale, depends_on and
health gating, checks, nodes and LANs, graph, down leaving nothing behind."""

from __future__ import annotations

import os
import sys
import time
import xml.etree.ElementTree as ET

import pytest

from netkit.errors import Conflict, NetkitError
from netkit.labs import Lab
from tests.conftest import unique
from tests.labs.conftest import IDLE, SERVE

pytestmark = pytest.mark.root


def empty(node) -> None:
    """Nothing of any lab is left on the node."""
    assert node.containers(all=True) == []
    assert sorted(n.name for n in node.networks()) == ["bridge", "host", "none"]
    assert not os.listdir(os.path.join(node.paths.root, "labs"))


def aliases(ctr) -> dict[str, tuple[str, ...]]:
    return {ep.network_name: ep.aliases for ep in ctr.endpoints}


def test_up_aliases_ps_down(write, node):
    path = write("lab.yml", f"""
        name: al
        services:
          web:
            command: {SERVE} 80
            scale: 2
            networks:
              front: {{aliases: [www]}}
              back: {{}}
          client: {{command: {IDLE}, networks: [front]}}
        networks: {{front: {{}}, back: {{}}}}
        """)
    events = []
    with Lab.load(path, engine=node, on_event=events.append) as lab:
        assert [m.name for m in lab.ps()] == ["al-client-1", "al-web-1", "al-web-2"]
        web2 = lab.container("web", 2)
        assert aliases(web2) == {"al_front": ("al-web-2", "web", "www"), "al_back": ("al-web-2", "web")}
        labels = web2.options["labels"]
        assert (labels["com.docker.compose.project"], labels["com.docker.compose.service"],
                labels["com.docker.compose.container-number"]) == ("al", "web", "2")
        nets = {n.name: n.labels for n in node.networks() if n.name.startswith("al_")}
        assert nets == {"al_front": {"com.docker.compose.project": "al", "com.docker.compose.network": "front"},
                        "al_back": {"com.docker.compose.project": "al", "com.docker.compose.network": "back"}}
        web_ips = sorted(lab.service("web").addresses("front"))
        r = lab.check({"resolve": {"from": "client", "name": "www", "expect": web_ips, "round_robin": True}})
        assert r.passed, r.evidence
        assert lab.check({"resolve": {"from": "client", "name": "al-web-2", "expect": ["al-web-2"]}}).passed
        assert lab.service("web").exec(["true"], index=2) == 0
        assert lab.exec_output("web", ["sh", "-c", "echo out; echo err >&2; exit 3"]) == (3, "out\nerr\n")
    assert ("Container", "al-web-2", "Started") in [(e.kind, e.name, e.status) for e in events]
    assert ("Network", "al_front", "Removed") in [(e.kind, e.name, e.status) for e in events]
    empty(node)


def test_scale_up_and_down(write, node):
    path = write("lab.yml", f"""
        name: sc
        services:
          web: {{command: {SERVE} 80}}
          client: {{command: {IDLE}}}
        """)
    with Lab.load(path, engine=node) as lab:
        lab.scale({"web": 4})
        assert [m.number for m in lab.ps(service="web")] == [1, 2, 3, 4]
        r = lab.check({"resolve": {"from": "client", "name": "web", "expect": ["web"], "round_robin": True}})
        assert r.passed and len(lab.service("web").addresses()) == 4, r.evidence
        keep = lab.container("web", 1).id
        lab.service("web").scale(1)
        assert [(m.number, m.container.id) for m in lab.ps(service="web")] == [(1, keep)]
        assert len([c for c in node.containers(all=True) if c.name.startswith("sc-web-")]) == 1
        r = lab.check({"resolve": {"from": "client", "name": "web", "expect": ["web"]}})
        assert r.passed and r.evidence.endswith(lab.service("web").addresses()[0]), r.evidence
        lab.up(scale={"web": 2})
        assert [m.number for m in lab.ps(service="web")] == [1, 2]
        assert lab.check({"reach": {"from": "client", "to": "sc-web-2", "port": 80}}).passed
    empty(node)


def test_up_converges_and_recreates_changed_services(write, node, monkeypatch):
    text = f"""
        name: cv
        services:
          a: {{command: {IDLE}, environment: {{V: "${{V:-1}}"}}}}
          b: {{command: {IDLE}}}
          side: {{command: {IDLE}, network_mode: "service:a"}}
        """
    path = write("lab.yml", text)
    with Lab.load(path, engine=node) as lab:
        before = {m.name: m.container.id for m in lab.ps()}
        lab.up()
        assert {m.name: m.container.id for m in lab.ps()} == before           # nothing changed
        monkeypatch.setenv("V", "2")
        lab2 = Lab.load(path, engine=node)
        lab2.up()
        after = {m.name: m.container.id for m in lab2.ps()}
        assert after["cv-b-1"] == before["cv-b-1"]
        assert after["cv-a-1"] != before["cv-a-1"]
        assert after["cv-side-1"] != before["cv-side-1"]          # it shared a's namespace
        assert lab2.exec_output("a", ["sh", "-c", "echo $V"])[1] == "2\n"
    empty(node)


def test_depends_on_waits_for_healthy(write, node):
    path = write("lab.yml", f"""
        name: hg
        services:
          web:
            command: {IDLE}
            depends_on: {{db: {{condition: service_healthy}}}}
          db:
            command: sh -c "sleep 1; exec {SERVE} 3306"
            healthcheck:
              test: [CMD, {sys.executable}, -m, netkit.testing.probe, probe, tcp, 127.0.0.1, "3306"]
              interval: 200ms
              retries: 3
              start_period: 5s
              start_interval: 100ms
        """)
    events = []
    with Lab.load(path, engine=node, on_event=events.append) as lab:
        seen = [(e.name, e.status) for e in events if e.kind == "Container"]
        assert seen.index(("hg-db-1", "Healthy")) < seen.index(("hg-web-1", "Started"))
        assert ("hg-db-1", "Waiting") in seen
        gap = _ts(lab.container("web").created) - _ts(lab.container("db").created)
        assert gap >= 0.9, gap                                   # web really waited for db
        assert lab.health(lab.ps(service="db")[0]) == "healthy"
    empty(node)


def _ts(created: str) -> float:
    from datetime import datetime
    return datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()


def test_unhealthy_dependency_fails_up(write, node):
    path = write("lab.yml", f"""
        name: uh
        services:
          web: {{command: {IDLE}, depends_on: {{db: {{condition: service_healthy}}}}}}
          db: {{command: {IDLE}, healthcheck: {{test: [CMD, "false"], interval: 100ms, retries: 2}}}}
        """)
    lab = Lab.load(path, engine=node)
    with pytest.raises(Conflict, match=r"^dependency failed to start: container uh-db-1 is unhealthy "
                                       r"\(2 failed checks, last: exit 1\)$"):
        with lab:
            pass
    empty(node)                                                  # the context manager cleaned up


def test_completed_successfully(write, node, monkeypatch):
    path = write("lab.yml", f"""
        name: cs
        services:
          app: {{command: {IDLE}, depends_on: {{init: {{condition: service_completed_successfully}}}}}}
          init: {{command: 'sh -c "sleep 0.3; exit ${{CODE:-0}}"'}}
        """)
    with Lab.load(path, engine=node) as lab:
        init, app = lab.container("init"), lab.container("app")
        assert init.state.value == "exited" and init.exit_code == 0 and app.running
    monkeypatch.setenv("CODE", "3")
    lab = Lab.load(path, engine=node)
    with pytest.raises(Conflict, match='^service "init" didn\'t complete successfully: exit 3$'):
        lab.up()
    assert [m.service for m in lab.ps()] == ["init"]                 # app was never created
    lab.down()
    lab.close()
    empty(node)


def test_checks_report_evidence(write, node, cli):
    path = write("lab.yml", f"""
        name: ck
        services:
          srv: {{command: {SERVE} 80}}
          cli: {{command: {IDLE}}}
        x-netkit:
          checks:
            - reach: {{from: cli, to: srv, port: 80}}
            - name: nothing listens on 81
              reach: {{from: cli, to: srv, port: 81, within: 0s}}
            - exec: {{in: srv, command: "echo hi; exit 4", exit: 4, output: hi}}
            - exec: {{in: srv, command: "exit 1", within: 0s}}
        """)
    with Lab.load(path, engine=node) as lab:
        results = lab.test()
        assert [r.passed for r in results] == [True, False, True, False]
        assert "connected to" in results[0].evidence
        assert results[1].evidence.endswith(":81/tcp: connection refused); expected ok")
        assert results[3].evidence == "ck-srv-1: exit 1, expected 0\n(no output)"
        r = cli("lab", "-f", path, "test", node=node.node_name, check=False)
        assert r.returncode == 1
        assert "FAILED nothing listens on 81" in r.stdout and "2 passed, 2 failed" in r.stdout
        assert "PASSED reach cli -> srv 80/tcp: expect ok" in r.stdout
    empty(node)


def test_cli_project_names_compatibility_and_down_by_name(write, node, cli):
    path = write("lab.yml", f"services:\n  web: {{command: {IDLE}}}\n", dir="My_Dir")
    cli("lab", "-f", path, "up", "-d", node=node.node_name)
    assert [c.name for c in node.containers()] == ["my_dir-web-1"]
    cli("lab", "-f", path, "down", node=node.node_name)
    cli("lab", "-f", path, "-p", "custom", "--compatibility", "up", "-d", "--scale", "web=2", node=node.node_name)
    assert sorted(c.name for c in node.containers()) == ["custom_web_1", "custom_web_2"]
    ps = cli("lab", "-p", "custom", "ps", node=node.node_name).stdout
    assert "custom_web_2" in ps and "custom_default=" in ps
    cli("lab", "-f", path, "-p", "custom", "scale", "web=3", node=node.node_name)
    assert len(node.containers()) == 3 and "custom_web_3" in [c.name for c in node.containers()]
    out = cli("lab", "-p", "custom", "exec", "--index", "3", "web", "hostname", node=node.node_name)
    assert out.stdout.strip() == node.container("custom_web_3").hostname
    r = cli("lab", "-p", "custom", "down", node=node.node_name)              # no file: by label
    assert "Container custom_web_3  Removed" in r.stderr
    empty(node)


def test_logs(write, node, cli):
    path = write("lab.yml", f"""
        name: lg
        services:
          talk: {{command: sh -c "echo hello; echo oops >&2; trap exit TERM; sleep infinity & wait", scale: 2}}
        """)
    with Lab.load(path, engine=node) as lab:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(text.count("\n") < 2 for _, text in lab.logs()):
            time.sleep(0.05)
        assert [(m.name, text) for m, text in lab.logs()] == [("lg-talk-1", "hello\noops\n"),
                                                              ("lg-talk-2", "hello\noops\n")]
        out = cli("lab", "-f", path, "logs", node=node.node_name).stdout
        assert "lg-talk-1 | hello\n" in out and "lg-talk-2 | oops\n" in out
    empty(node)


def test_refused_file_makes_nothing(write, node):
    path = write("lab.yml", f"""
        name: fu
        services:
          a: {{command: {IDLE}, networks: {{n: {{ipv4_address: 10.66.0.5}}}}}}
          b: {{command: {IDLE}, networks: {{n: {{ipv4_address: 10.99.0.5}}}}}}
        networks:
          n: {{ipam: {{config: [{{subnet: 10.66.0.0/24}}]}}}}
        """)
    lab = Lab.load(path, engine=node)
    with pytest.raises(NetkitError, match="services.b.networks.n.ipv4_address: no configured "
                                          "subnet contains IP address 10.99.0.5"):
        lab.up()
    assert lab.ps() == [] and [n.name for n in node.networks()] == ["bridge", "host", "none"]
    lab.close()
    assert not os.listdir(os.path.join(node.paths.root, "labs")) if os.path.isdir(
        os.path.join(node.paths.root, "labs")) else True          # not even a record


def test_failed_up_then_down_removes_what_was_made(write, node):
    from netkit.specs import ContainerSpec, NetworkSpec
    node.create_network(NetworkSpec("ext", subnets=("10.66.0.0/24",)))
    node.run(ContainerSpec(name="squatter", network="ext", ipv4="10.66.0.6", detach=True))
    path = write("lab.yml", f"""
        name: fu
        services:
          a: {{command: {IDLE}, networks: {{n: {{ipv4_address: 10.67.0.5}}, ext: {{}}}}}}
          b: {{command: {IDLE}, networks: {{ext: {{ipv4_address: 10.66.0.6}}}}}}
        networks:
          n: {{ipam: {{config: [{{subnet: 10.67.0.0/24}}]}}}}
          ext: {{external: true}}
        """)
    lab = Lab.load(path, engine=node)
    with pytest.raises(NetkitError, match="creating container fu-b-1: .*Address already in use"):
        lab.up()                        # only the kernel-side state could tell: at run time
    assert [m.name for m in lab.ps()] == ["fu-a-1"]
    lab.down()
    lab.close()
    node.remove_container("squatter", force=True)
    node.remove_network("ext")
    empty(node)


def test_nodes_and_lans_are_created_and_removed(write, node, host, monkeypatch):
    lan, a, b = unique("l"), unique("a"), unique("b")
    monkeypatch.setenv("LAN", lan)
    monkeypatch.setenv("NODE_A", a)
    monkeypatch.setenv("NODE_B", b)
    path = write("lab.yml", f"""
        name: mh
        services:
          api: {{command: {SERVE} 80, ports: ["8080:80"], x-netkit: {{node: a}}}}
          caller: {{command: {IDLE}, x-netkit: {{node: b}}}}
          local: {{command: {IDLE}}}
        x-netkit:
          lans:
            lan: {{name: "${{LAN}}", subnet: 192.168.91.0/24, gateway: 192.168.91.1}}
          nodes:
            a: {{name: "${{NODE_A}}", lan: lan, ip: 192.168.91.10}}
            b: {{name: "${{NODE_B}}", lan: lan, ip: 192.168.91.20}}
          checks:
            - reach: {{from: caller, to: 192.168.91.10, port: 8080}}
            - reach: {{from: "node:${{NODE_B}}", to: 192.168.91.10, port: 8080}}
            - exec: {{in: "node:${{NODE_A}}", command: ip -4 -o addr show dev eth0, output: 192.168.91.10/24}}
        """)
    with Lab.load(path, engine=node) as lab:
        assert {m.name: m.node for m in lab.ps()} == {"mh-api-1": a, "mh-caller-1": b,
                                                      "mh-local-1": node.node_name}
        assert {n.name: n.lan for n in host.nodes() if n.name in (a, b)} == {a: lan, b: lan}
        results = lab.test()
        assert all(r.passed for r in results), [r.evidence for r in results]
        topo = lab.topology()
        assert {n.name for n in topo.nodes} == {a, b, node.node_name}
        assert topo.lans == [(lan, "192.168.91.0/24", "192.168.91.1")]
    assert a not in [n.name for n in host.nodes()] and b not in [n.name for n in host.nodes()]
    assert lan not in [x.name for x in host.lans()]
    empty(node)


def test_existing_node_is_not_taken_over(write, node, host, monkeypatch):
    other = unique("x")
    host.create_node(other)
    try:
        monkeypatch.setenv("OTHER", other)
        path = write("lab.yml", f"services:\n  a: {{command: {IDLE}, x-netkit: {{node: n}}}}\n"
                                f"x-netkit:\n  nodes:\n    n: {{name: '${{OTHER}}'}}\n")
        lab = Lab.load(path, engine=node)
        with pytest.raises(Conflict, match=f"node {other} already exists and was not created by lab proj"):
            lab.up()
        lab.close()
        ext = write("lab.yml", f"services:\n  a: {{command: {IDLE}, x-netkit: {{node: n}}}}\n"
                               f"x-netkit:\n  nodes:\n    n: {{name: '${{OTHER}}', external: true}}\n")
        with Lab.load(ext, engine=node) as lab:
            assert lab.ps()[0].node == other
        assert other in [n.name for n in host.nodes()]                   # external: left alone
    finally:
        host.remove_node(other, force=True)
    empty(node)


def test_graph_svg_names_every_container(write, node, cli, tmp_path):
    path = write("lab.yml", f"""
        name: gr
        services:
          web: {{command: {SERVE} 80, scale: 2, ports: ["80"]}}
          side: {{command: {IDLE}, network_mode: "service:web"}}
          hostly: {{command: {IDLE}, network_mode: host}}
          alone: {{command: {IDLE}, network_mode: none}}
        """)
    with Lab.load(path, engine=node) as lab:
        svg = tmp_path / "lab.svg"
        assert cli("lab", "-f", path, "graph", "-o", str(svg), node=node.node_name).stdout == f"{svg}\n"
        root = ET.parse(svg).getroot()
        texts = " ".join(t.text or "" for t in root.iter() if t.tag.endswith("text"))
        for m in lab.ps():
            assert m.name in texts
        for ep in lab.container("web", 2).endpoints:
            assert ep.ipv4 in texts
        dot = cli("lab", "-f", path, "graph", node=node.node_name).stdout
        assert dot.startswith('graph "lab gr" {') and "gr_default (bridge)" in dot
        mmd = tmp_path / "lab.mmd"
        cli("lab", "-f", path, "graph", "-o", str(mmd), node=node.node_name)
        assert mmd.read_text().startswith("flowchart LR")
    empty(node)
