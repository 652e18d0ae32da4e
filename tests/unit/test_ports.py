"""-p / --expose parsing (pure)."""

import pytest

from netkit.errors import InvalidArgument
from netkit.ports import PortRequest, parse_expose, parse_publish


@pytest.mark.parametrize("spec,want", [
    ("80", [PortRequest("tcp", "0.0.0.0", 0, 80)]),
    ("8080:80", [PortRequest("tcp", "0.0.0.0", 8080, 80)]),
    ("127.0.0.1:8081:80/tcp", [PortRequest("tcp", "127.0.0.1", 8081, 80)]),
    ("5353:53/udp", [PortRequest("udp", "0.0.0.0", 5353, 53)]),
    ("127.0.0.1::80", [PortRequest("tcp", "127.0.0.1", 0, 80)]),
    ("9000-9001:80-81", [PortRequest("tcp", "0.0.0.0", 9000, 80), PortRequest("tcp", "0.0.0.0", 9001, 81)]),
    ("9090-9092:80", [PortRequest("tcp", "0.0.0.0", 9090, 80, 9092)]),
    ("127.0.0.1:9090-9090:80/udp", [PortRequest("udp", "127.0.0.1", 9090, 80)]),
])
def test_publish(spec, want):
    assert parse_publish(spec) == want


@pytest.mark.parametrize("spec,msg", [
    ("80/sctpx", "invalid proto: sctpx"),
    ("1.2.3:80:80", "invalid IP address: 1.2.3"),
    ("9000-9002:80-81", "invalid ranges specified for container and host Ports"),
    ("0:80", "invalid port: 0"),
    ("70000", "invalid port: 70000"),
    ("abc", "invalid containerPort: abc"),
    ("a:b:c:d", "invalid port format"),
    ("[::1]:80:80", "IPv6 host addresses are not supported"),
    ("9090-:80", "invalid hostPort: 9090-"),
    ("x:80", "invalid hostPort: x"),
    ("9092-9090:80", "invalid range specified for port: 9092-9090"),
])
def test_publish_errors(spec, msg):
    with pytest.raises(InvalidArgument, match=msg.replace("[", r"\[")):
        parse_publish(spec)


def test_expose():
    assert parse_expose("80") == [(80, "tcp")]
    assert parse_expose("53/udp") == [(53, "udp")]
    assert parse_expose("8000-8002") == [(8000, "tcp"), (8001, "tcp"), (8002, "tcp")]
    with pytest.raises(InvalidArgument):
        parse_expose("x/tcp")


def test_host_ports_as_docker_shows_them():
    assert [r.host_ports for r in parse_publish("80")] == [""]
    assert [r.host_ports for r in parse_publish("8080:80")] == ["8080"]
    assert [r.host_ports for r in parse_publish("9090-9092:80")] == ["9090-9092"]
