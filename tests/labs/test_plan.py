"""Planning (pure): container and network names, aliases, labels, specs, placement."""

from __future__ import annotations

import sys

from netkit.labs import plan
from netkit.labs.project import load_project

LAB = """
name: shop
services:
  web:
    command: serve 80
    scale: 3
    links: ["db:database"]
    networks:
      front: {aliases: [www]}
      back: {}
    environment: {MODE: prod}
    labels: {tier: web}
    ports: ["80"]
  db:
    networks:
      back: {ipv4_address: 10.7.0.50}
  side: {network_mode: "service:db"}
  old: {network_mode: bridge, links: [db]}
  pinned: {container_name: the-one}
networks:
  front: {}
  back:
    ipam: {config: [{subnet: 10.7.0.0/24, ip_range: 10.7.0.0/25, gateway: 10.7.0.1,
                     aux_addresses: {printer: 10.7.0.9}}]}
    labels: {team: x}
    internal: true
"""


def test_container_names(write):
    p = load_project(write("lab.yml", LAB))
    assert plan.container_name("shop", p.services["web"], 2) == "shop-web-2"
    assert plan.container_name("shop", p.services["web"], 2, compatibility=True) == "shop_web_2"
    assert plan.container_name("shop", p.services["pinned"], 1) == "the-one"


def test_aliases_on_every_network_and_service_labels(write):
    p = load_project(write("lab.yml", LAB))
    spec = plan.container_spec(p, p.services["web"], 2)
    assert spec.name == "shop-web-2"
    assert spec.network == "shop_back"                            # Compose orders networks by name
    assert spec.aliases == ("shop-web-2", "web")
    assert [(e.network, e.aliases) for e in spec.extra_networks] == [("shop_front", ("shop-web-2", "web", "www"))]
    assert spec.links == ("shop-db-1:database",)
    assert spec.labels == {"tier": "web", plan.PROJECT: "shop", plan.SERVICE: "web", plan.NUMBER: "2",
                           plan.CONFIG_HASH: plan.config_hash(p, p.services["web"]), plan.ONEOFF: "False"}
    assert spec.env["MODE"] == "prod" and spec.env["PATH"].split(":")[0] == sys.executable.rsplit("/", 1)[0]
    assert spec.publish == ("80",) and spec.detach and spec.command == ("serve", "80")


def test_static_address_and_modes(write):
    p = load_project(write("lab.yml", LAB))
    db = plan.container_spec(p, p.services["db"], 1)
    assert (db.network, db.ipv4) == ("shop_back", "10.7.0.50")
    side = plan.container_spec(p, p.services["side"], 1)
    assert side.network == "container:shop-db-1" and side.aliases == ()
    compat = plan.container_spec(p, p.services["side"], 1, compatibility=True)
    assert compat.network == "container:shop_db_1"
    old = plan.container_spec(p, p.services["old"], 1)
    assert (old.network, old.aliases, old.links) == ("bridge", (), ("shop-db-1:db",))


def test_restart_stop_signal_and_grace_period_reach_the_container_spec(write):
    p = load_project(write("lab.yml", """
        services:
          a: {command: sleep 1, restart: "on-failure:2", stop_signal: SIGUSR1, stop_grace_period: 1500ms}
          b: {command: sleep 1}
        """))
    a = plan.container_spec(p, p.services["a"], 1)
    assert (a.restart, a.stop_signal, a.stop_timeout) == ("on-failure:2", "SIGUSR1", 2)
    b = plan.container_spec(p, p.services["b"], 1)
    assert (b.restart, b.stop_signal, b.stop_timeout) == ("no", None, None)


def test_network_spec_labels_and_ipam(write):
    p = load_project(write("lab.yml", LAB))
    spec = plan.network_spec(p, p.networks["back"])
    assert spec.name == "shop_back"
    assert (spec.subnets, spec.ip_ranges, spec.gateways) == (("10.7.0.0/24",), ("10.7.0.0/25",), ("10.7.0.1",))
    assert spec.aux_addresses == {"printer": "10.7.0.9"}
    assert spec.labels == {"team": "x", plan.PROJECT: "shop", plan.NETWORK: "back"}
    assert spec.internal and spec.driver == "bridge"


def test_config_hash_changes_with_the_service_not_with_scale(write):
    p1 = load_project(write("lab.yml", LAB))
    p2 = load_project(write("lab.yml", LAB.replace("scale: 3", "scale: 5")))
    p3 = load_project(write("lab.yml", LAB.replace("MODE: prod", "MODE: dev")))
    h = plan.config_hash(p1, p1.services["web"])
    assert plan.config_hash(p2, p2.services["web"]) == h
    assert plan.config_hash(p3, p3.services["web"]) != h
    for extra in ("restart: always", "stop_signal: SIGINT", "stop_grace_period: 3s"):
        p4 = load_project(write("lab.yml", LAB.replace("    scale: 3\n", f"    scale: 3\n    {extra}\n")))
        assert plan.config_hash(p4, p4.services["web"]) != h, extra


def test_network_placement_follows_service_nodes(write):
    p = load_project(write("lab.yml", """
        services:
          a: {networks: [n], x-netkit: {node: na}}
          b: {networks: [n, m], x-netkit: {node: nb}}
          c: {networks: [m]}
        networks: {n: {}, m: {}, unused: {}}
        """))
    assert plan.network_nodes(p, "target") == {"n": ["na", "nb"], "m": ["nb", "target"], "unused": ["target"]}
    assert plan.node_of(p.services["c"], None) is None
