"""Docker's awesome-compose samples (tests/fixtures/compose/awesome-compose, every compose
file of the collection, unchanged): each loads through netkit's lab loader with warnings
only, for the keys that need images or a container runtime; two are brought up in
throwaway nodes and their networking checked as Compose sets it up."""

from __future__ import annotations

import glob
import os

import pytest

from netkit.labs import Lab, plan
from netkit.labs.project import load_project

SAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "fixtures", "compose", "awesome-compose")
FILES = sorted(glob.glob(os.path.join(SAMPLES, "*", "compose.y*ml")))
IGNORED = ("ignored (netkit runs host commands, not images)",
           "ignored (netkit runs host commands in namespaces, without a container runtime)")


def sample(name: str) -> str:
    return next(f for f in FILES if os.path.basename(os.path.dirname(f)) == name)


def test_the_whole_collection_is_there():
    assert len(FILES) == 39


@pytest.mark.parametrize("path", FILES, ids=lambda p: os.path.basename(os.path.dirname(p)))
def test_each_sample_loads_with_warnings_only(path):
    p = load_project(path, environ={})
    assert p.services
    for warning in p.warnings:                  # one line per key: images, volumes, runtime keys
        where, _, why = warning.partition(": ")
        assert where.startswith(("services.", "volumes")) and why in IGNORED, warning
    for svc in p.services.values():             # and each service plans into a container spec
        for i in range(1, svc.replicas + 1):
            plan.container_spec(p, svc, i)


def resolves(lab: Lab, service: str, name: str) -> list[str]:
    code, text = lab.exec_output(service, ["dig", "+short", "+tries=1", "+time=1", name])
    return text.split() if code == 0 else []


@pytest.mark.root
def test_react_express_mongodb_networks(node):
    """frontend on react-express, mongo on express-mongo, backend on both: each name
    resolves only where Compose's networks put it."""
    with Lab.load(sample("react-express-mongodb"), engine=node) as lab:
        mongo, backend = lab.service("mongo").addresses(), lab.service("backend").addresses()
        assert resolves(lab, "backend", "mongo") == mongo
        seen = resolves(lab, "frontend", "backend")           # its address on react-express
        assert len(backend) == 2 and len(seen) == 1 and seen[0] in backend
        assert resolves(lab, "frontend", "mongo") == []
        assert resolves(lab, "mongo", "frontend") == []
        ports = node.inspect_containers([lab.container("frontend").id])[0]["NetworkSettings"]["Ports"]
        assert ports["3000/tcp"] == [{"HostIp": "0.0.0.0", "HostPort": "3000"}]


@pytest.mark.root
def test_pihole_cloudflared_static_address_and_ports(node):
    """A network with its own subnet, a static ipv4_address, container_name, and the
    ports Pi-hole publishes (53 tcp+udp, 67/udp, 8080, 8443) on the node."""
    with Lab.load(sample("pihole-cloudflared-DoH"), engine=node) as lab:
        assert node.container("cloudflared").endpoints[0].ipv4 == "172.20.0.2/24"
        assert resolves(lab, "pihole", "cloudflared") == ["172.20.0.2"]
        bound = sorted((p.container_port, p.proto, p.host_port) for p in node.port("pihole"))
        assert bound == [(53, "tcp", 53), (53, "udp", 53), (67, "udp", 67), (80, "tcp", 8080),
                         (443, "tcp", 8443)]
