"""The `capture` check for real, in a throwaway node: DNS answers seen by a client, traffic
that is only what it should be (and the evidence when it is not), a network that sees
nothing, a lab file with a capture check through `lab test`."""

from __future__ import annotations

import pytest

from netkit.labs import Lab
from tests.labs.conftest import IDLE, SERVE

pytestmark = pytest.mark.root

LAB = f"""
    name: cap
    services:
      web:
        command: {SERVE} 80
        scale: 3
        networks: [front]
      client:
        command: {IDLE}
        networks: [front]
      other:
        command: {IDLE}
        networks: [back]
    networks:
      front: {{ipam: {{config: [{{subnet: 172.31.7.0/24}}]}}}}
      back: {{ipam: {{config: [{{subnet: 172.31.8.0/24}}]}}}}
    x-netkit:
      checks:
        - name: the client's DNS queries for web are answered with the three replicas
          capture:
            on: client
            filter: udp port 53
            while: {{resolve: {{from: client, name: web, expect: [web]}}}}
            expect: {{dns_answer: {{name: web}}}}
        - name: web's traffic is only TCP 80
          capture:
            on: web
            filter: ip and not udp port 53
            while: {{reach: {{from: client, to: web, port: 80}}}}
            expect: {{only: tcp port 80}}
"""


def test_capture_checks(write, node):
    path = write("lab.yml", LAB)
    with Lab.load(path, engine=node) as lab:
        web = sorted(lab.service("web").addresses("front"))
        assert len(web) == 3
        results = lab.test()
        assert [r.passed for r in results] == [True, True], "\n".join(r.evidence for r in results)
        assert "DNS answers for web" in results[0].evidence
        assert "while resolve web from client" in results[0].evidence

        r = lab.check({"capture": {"on": "client", "filter": "udp port 53",
                                   "while": {"resolve": {"from": "client", "name": "web"}},
                                   "expect": {"dns_answer": {"name": "web", "addresses": web}}}})
        assert r.passed, r.evidence

        r = lab.check({"capture": {"on": "client", "filter": "ip and not udp port 53",
                                   "while": {"reach": {"from": "client", "to": web[0], "port": 80}},
                                   "expect": {"only": "udp"}, "within": "0s"}})
        assert not r.passed
        assert "are not udp" in r.evidence and ".80: Flags [S]" in r.evidence, r.evidence

        r = lab.check({"capture": {"on": "network:back", "filter": "icmp",
                                   "while": {"reach": {"from": "client", "to": web[1], "ping": True}},
                                   "expect": {"none": True}}})
        assert r.passed and "no packets" in r.evidence, r.evidence
        r = lab.check({"capture": {"on": "network:front", "filter": "icmp",
                                   "while": {"reach": {"from": "client", "to": web[1], "ping": True}},
                                   "expect": {"seen": 2}}})
        assert r.passed, r.evidence

        # the check that runs while capturing must pass too
        r = lab.check({"capture": {"on": "client", "filter": "icmp", "within": "0s",
                                   "while": {"reach": {"from": "client", "to": "172.31.8.9", "ping": True}},
                                   "expect": {"seen": 1}}})
        assert not r.passed and "while reach client -> 172.31.8.9 ping: expect ok: FAILED" in r.evidence

        r = lab.check({"capture": {"on": "node:" + node.node_name, "duration": "300ms",
                                   "filter": "tcp port 9", "expect": {"none": True}}})
        assert r.passed, r.evidence
