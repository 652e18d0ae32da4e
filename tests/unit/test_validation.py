"""The pure validators: what Docker refuses, lab file limits, the redirect's rules text."""

from __future__ import annotations

import pytest

from netkit import validate
from netkit.dns import redirect
from netkit.errors import InvalidArgument
from netkit.ipam.config import build_ipam
from netkit.labs import source
from netkit.labs.project import load_project
from netkit.labs.source import LabFileError, parse_yaml
from netkit.labs.validate import validate as validate_lab


@pytest.mark.parametrize("name, ok", [
    ("web", True), ("web-1.net_a", True), ("a" * 63, True), ("a" * 64, True),
    ("my alias", False), ("-web", True), ("web-", True), ("a..b", False), ("", False),
    (".".join(["a" * 60] * 4), True), (".".join(["a" * 60] * 5), False), ("web.", True),
    (".web", False), ("a\tb", False),
    ("wéb", False), ("we/b", False),
])
def test_dns_name(name, ok):
    assert validate.dns_name(name) is ok


def test_aliases_message():
    with pytest.raises(InvalidArgument, match='^invalid network alias "a b": it must be a valid '
                                              r"DNS name \(dot-separated labels of"):
        validate.aliases(["ok", "a b"])
    validate.aliases(["ok", "also-ok.x"])


def test_container_name_length():
    validate.container_name_length("a" * 255)
    validate.container_name_length("/" + "a" * 255)
    with pytest.raises(InvalidArgument, match=r"it is 256 characters long, at most 255"):
        validate.container_name_length("a" * 256)


def test_host_binding_ipv4():
    validate.network_options({validate.HOST_BINDING_IPV4: "127.0.0.1"})
    validate.network_options({"com.docker.network.bridge.name": "x"})
    with pytest.raises(InvalidArgument) as info:
        validate.network_options({validate.HOST_BINDING_IPV4: "notip"})
    assert str(info.value) == ("failed to parse com.docker.network.bridge.host_binding_ipv4 "
                               "value: notip (nil ip)")


def test_links():
    assert validate.link_spec("db") == ("db", "db")
    assert validate.link_spec("db:alias") == ("db", "alias")
    for bad in ("", ":x", "db:", "a:b:c", "db:bad alias"):
        with pytest.raises(InvalidArgument):
            validate.link_spec(bad)
    with pytest.raises(InvalidArgument) as info:
        validate.link_target("nosuch", False)
    assert str(info.value) == "could not get container for nosuch: No such container: nosuch"


@pytest.mark.parametrize("subnet, message", [
    ("224.0.0.0/4", "multicast subnet '224.0.0.0/4' is not allowed"),
    ("239.1.0.0/16", "multicast subnet '239.1.0.0/16' is not allowed"),
    ("ff02::/16", "multicast subnet 'ff02::/16' is not allowed"),
    ("127.0.0.0/8", "loopback subnet '127.0.0.0/8' is not allowed"),
    ("127.1.0.0/16", "loopback subnet '127.1.0.0/16' is not allowed"),
    ("::1/128", "loopback subnet '::1/128' is not allowed"),
    ("255.255.255.0/24", "subnet '255.255.255.0/24' holds the broadcast address 255.255.255.255"),
])
def test_unusable_subnets(subnet, message):
    with pytest.raises(InvalidArgument) as info:
        build_ipam([subnet], [], [], {}, ipv6=":" in subnet)
    assert str(info.value) == message


def test_usable_subnets_still_pass():
    for subnet in ("10.0.0.0/24", "172.30.0.0/16", "192.168.5.0/24", "100.64.0.0/10"):
        assert build_ipam([subnet], [], [], {})[0].subnet == subnet


# -- the redirect's rules ----------------------------------------------------------------

def test_redirect_render_and_parse_round_trip():
    script = redirect.render(40001, 40002)
    assert "udp dport 53 udp dport set 40001" in script
    assert "tcp sport 40002 tcp sport set 53" in script
    assert script.startswith("add table netdev netkit-dns\nflush table netdev netkit-dns\n")
    listing = ('table netdev netkit-dns {\n\tchain ingress {\n'
               '\t\tip daddr 127.0.0.11 udp dport 53 udp dport set 40001\n'
               '\t\tip daddr 127.0.0.11 tcp dport 53 tcp dport set 40002\n\t}\n}\n')
    assert redirect.parse(listing) == (40001, 40002)
    assert redirect.parse(listing.replace("tcp dport 53", "tcp dport 54")) is None
    assert redirect.parse("") is None


# -- lab file limits -------------------------------------------------------------------

def test_alias_expansion_is_bounded(monkeypatch):
    monkeypatch.setattr(source, "MAX_VALUES", 1000)
    text = "a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    assert len(parse_yaml(text, "f.yml")[0]["b"]) == 10             # 121 values: fine
    with pytest.raises(LabFileError, match="document contains excessive aliasing"):
        parse_yaml(text + "c: [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n", "f.yml")


def test_merge_expansion_is_bounded(monkeypatch):
    monkeypatch.setattr(source, "MAX_VALUES", 1000)
    lines = ["m0: &m0 {k0: 1}"] + [f"m{i}: &m{i}\n  <<: [*m{i - 1}, *m{i - 1}]\n  k{i}: 1"
                                   for i in range(1, 12)]
    with pytest.raises(LabFileError, match="document contains excessive aliasing"):
        parse_yaml("\n".join(lines) + "\n", "f.yml")
    ok = "\n".join(lines[:4]) + "\n"
    assert parse_yaml(ok, "f.yml")[0]["m3"]["k0"] == 1


def test_read_text(tmp_path):
    path = tmp_path / "x.yml"
    path.write_bytes(b"\xef\xbb\xbfservices: {}\n")                  # a BOM is fine
    assert source.read_text(str(path)) == "services: {}\n"
    path.write_bytes(b"services: \xff\n")
    with pytest.raises(LabFileError, match=r"not UTF-8 text \(byte 0xff at offset 10\)"):
        source.read_text(str(path))
    with pytest.raises(InvalidArgument, match="lab file .* not found"):
        source.read_text(str(tmp_path / "missing.yml"))


def lab(tmp_path, text: str):
    path = tmp_path / "lab.yml"
    path.write_text(text)
    return load_project(str(path), environ={})


def test_lab_validation_passes_a_good_file(tmp_path):
    p = lab(tmp_path, "name: ok\nservices:\n"
                      "  a: {command: x, ports: ['8080:80', '127.0.0.1:9000:90'], scale: 3, "
                      "networks: [n]}\n"
                      "  b: {command: x, ports: ['127.0.0.2:9000:90', '8081:80/udp', '8080:80/udp'],"
                      " networks: {n: {ipv4_address: 10.9.0.200}}}\n"
                      "networks:\n  n: {ipam: {config: [{subnet: 10.9.0.0/24}]}}\n")
    with pytest.raises(LabFileError, match=r"services.a.ports\[0\]: Bind for 0.0.0.0:8080"):
        validate_lab(p)                               # 3 replicas of a fixed host port
    validate_lab(p, scale={"a": 1})


def test_lab_validation_scale_override_and_capacity(tmp_path):
    p = lab(tmp_path, "name: cap\nservices:\n  a: {command: x, networks: [n]}\n"
                      "networks:\n  n: {ipam: {config: [{subnet: 10.9.0.0/30}]}}\n")
    validate_lab(p)                                   # /30: 2 hosts, one is the gateway
    with pytest.raises(LabFileError, match="2 containers on network cap_n, but 10.9.0.0/30 "
                                           "holds only 1 addresses"):
        validate_lab(p, scale={"a": 2})


def test_lab_validation_of_networks(tmp_path):
    p = lab(tmp_path, "name: nets\nservices:\n  a: {command: x, networks: [n]}\n"
                      "networks:\n  n: {driver_opts: {com.docker.network.bridge.host_binding_ipv4: "
                      "nope}}\n")
    with pytest.raises(LabFileError, match=r"networks.n: failed to parse .* value: nope \(nil ip\)"):
        validate_lab(p)
    p = lab(tmp_path, "name: nets\nservices:\n  a: {command: x, networks: [n]}\n"
                      "networks:\n  n: {ipam: {config: [{subnet: 224.1.0.0/16}]}}\n")
    with pytest.raises(LabFileError, match="networks.n: multicast subnet"):
        validate_lab(p)


def test_resolver_sockets_leave_the_select_range_free():
    """The resolver holds two sockets per container: they live at fds >= 1024, so a library
    that select()s a fresh socket (libnftables, for the next container's redirect) still
    gets one below FD_SETSIZE at 1000 containers (it aborted the resolver at ~500)."""
    import resource
    import socket

    from netkit.dns.server import HIGH_FD, _high_fd
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard <= HIGH_FD + 8:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard}: no fd above {HIGH_FD} to move to")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        low = s.fileno()
        moved = _high_fd(s)
        try:
            assert moved.fileno() >= HIGH_FD and s.fileno() == -1
            assert moved.type == socket.SOCK_DGRAM and not moved.get_inheritable()
            fresh = socket.socket()
            assert fresh.fileno() <= low           # the low fd was given back
            fresh.close()
        finally:
            moved.close()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
