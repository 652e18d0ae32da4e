"""netkit.firewall: rendered rulesets against golden files (pure), and nft's
check mode on each golden script (root only, in a throwaway netns).

NETKIT_UPDATE_GOLDEN=1 rewrites the golden files from the current renderer;
review the diff before committing it.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from netkit.errors import InvalidArgument
from netkit.firewall import FwNetwork, FwPort, needs_route_localnet, render, render_delete

GOLDEN = Path(__file__).parent / "golden" / "firewall"
UPDATE = os.environ.get("NETKIT_UPDATE_GOLDEN") == "1"

N1 = FwNetwork("n1", "br-0a1b2c3d4e5f", ("172.18.0.0/16",))
N2 = FwNetwork("n2", "br-9f8e7d6c5b4a", ("172.19.0.0/16",))
LAN = "192.168.91.1"

CASES: dict[str, tuple[list[FwNetwork], list[FwPort]]] = {
    "empty": ([], []),
    "one_network": ([N1], []),
    "two_networks": ([N2, N1], []),
    "internal": ([N1, FwNetwork("backend", "br-internal", ("10.20.0.0/24",), internal=True)], []),
    "icc_false": ([FwNetwork("quiet", "br-quiet", ("10.30.0.0/24",), icc=False)], []),
    "masquerade_off": ([FwNetwork("nomasq", "br-nomasq", ("10.40.0.0/24",), masquerade=False)], []),
    "host_ipv4_snat": ([FwNetwork("snat", "br-snat", ("10.50.0.0/24", "fd00:50::/64"),
                                  snat_ipv4=LAN)], []),
    "published_ports": ([N1, N2], [
        FwPort("udp", "0.0.0.0", 5353, "172.19.0.3", 53, N2.bridge),
        FwPort("tcp", "127.0.0.1", 5432, "172.18.0.3", 5432, N1.bridge),
        FwPort("tcp", "0.0.0.0", 8080, "172.18.0.2", 80, N1.bridge),
        FwPort("tcp", LAN, 8443, "172.18.0.2", 443, N1.bridge),
    ]),
    "ipv6_subnet": ([FwNetwork("dual", "br-dual", ("10.60.0.0/24", "fd00:60::/64"))], []),
    "published_ports_v6": ([FwNetwork("dual", "br-dual", ("10.60.0.0/24", "fd00:60::/64"))], [
        FwPort("tcp", "0.0.0.0", 8080, "10.60.0.2", 80, "br-dual"),
        FwPort("tcp", "::", 8080, "fd00:60::2", 80, "br-dual"),
        FwPort("udp", "fd00:99::1", 5353, "fd00:60::3", 53, "br-dual"),
    ]),
}


def golden_path(name: str) -> Path:
    return GOLDEN / f"{name}.nft"


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name):
    text = render(*CASES[name])
    path = golden_path(name)
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"missing {path}: run with NETKIT_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{name} differs from {path} (NETKIT_UPDATE_GOLDEN=1 rewrites)"


def test_no_stray_golden_files():
    assert {p.stem for p in GOLDEN.glob("*.nft")} == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_replaces_tables_atomically(name):
    lines = render(*CASES[name]).splitlines()
    assert lines[:4] == ["table inet netkit", "delete table inet netkit",
                         "table bridge netkit", "delete table bridge netkit"]
    tables = [line for line in lines if line.startswith("table") and line.endswith("{")]
    assert all(t in ("table inet netkit {", "table bridge netkit {") for t in tables)


def test_empty_is_delete():
    assert render([], []) == render_delete()
    assert "{" not in render_delete()


def test_order_does_not_depend_on_input_order():
    nets, ports = CASES["published_ports"]
    nets = nets + [CASES["internal"][0][1], CASES["icc_false"][0][0]]
    want = render(nets, ports)
    rng = random.Random(7)
    for _ in range(10):
        rng.shuffle(nets)
        rng.shuffle(ports)
        assert render(nets, ports) == want


def _chain(text: str, name: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index(f"\tchain {name} {{")
    end = lines.index("\t}", start)
    return [line.strip() for line in lines[start + 2:end]]


def test_forward_order_drops_before_published_accepts():
    nets, ports = CASES["published_ports"]
    text = render(nets + [FwNetwork("i", "br-i", ("10.9.0.0/24",), internal=True),
                          FwNetwork("q", "br-q", ("10.8.0.0/24",), icc=False)], ports)
    rules = _chain(text, "forward")
    assert rules[0] == "ct state established,related accept"
    first_accept = next(i for i, r in enumerate(rules) if r.startswith("ct status dnat ip daddr"))
    internal = [i for i, r in enumerate(rules) if '"br-i"' in r]
    assert internal and max(internal) < first_accept
    assert rules.index('iifname "br-q" oifname "br-q" drop') < first_accept
    isolation = [i for i, r in enumerate(rules) if r.startswith("iifname !=")]
    assert min(isolation) > max(i for i, r in enumerate(rules) if r.endswith("accept"))
    # no rule drops traffic leaving a non-internal bridge for another interface
    assert not [r for r in rules if r.startswith(f'iifname "{N1.bridge}" oifname !=')]


def test_ports_on_internal_networks_are_not_published():
    net = FwNetwork("i", "br-i", ("10.9.0.0/24",), internal=True)
    text = render([net], [FwPort("tcp", "0.0.0.0", 80, "10.9.0.2", 80, "br-i")])
    assert "dnat" not in text and "dport" not in text
    assert "masquerade" not in text


def test_bridge_table_only_with_icc_false():
    assert "table bridge netkit {" not in render(*CASES["one_network"])
    text = render(*CASES["icc_false"])
    assert _chain(text.split("table bridge netkit {")[1], "forward") == ["ip daddr 10.30.0.0/24 drop"]


def test_needs_route_localnet():
    assert not needs_route_localnet([])
    assert not needs_route_localnet([FwPort("tcp", LAN, 80, "10.0.0.2", 80, "br")])
    assert needs_route_localnet([FwPort("tcp", "127.0.0.1", 80, "10.0.0.2", 80, "br")])
    assert needs_route_localnet([FwPort("udp", "0.0.0.0", 80, "10.0.0.2", 80, "br")])


@pytest.mark.parametrize("net", [
    FwNetwork("x", 'br"; flush ruleset', ("10.0.0.0/24",)),
    FwNetwork("x", "br\nflush ruleset", ("10.0.0.0/24",)),
    FwNetwork("x", "a-bridge-name-too-long", ("10.0.0.0/24",)),
    FwNetwork("x", "br", ("10.0.0.0/33",)),
    FwNetwork("x", "br", ("10.0.0.0/24",), snat_ipv4="fd00::1"),
])
def test_invalid_network(net):
    with pytest.raises(InvalidArgument):
        render([net], [])


@pytest.mark.parametrize("port", [
    FwPort("icmp", "0.0.0.0", 80, "10.0.0.2", 80, "br"),
    FwPort("tcp", "0.0.0.0", 0, "10.0.0.2", 80, "br"),
    FwPort("tcp", "0.0.0.0", 80, "10.0.0.2", 65536, "br"),
    FwPort("tcp", "::", 80, "10.0.0.2", 80, "br"),
    FwPort("tcp", "0.0.0.0", 80, "fd00::2", 80, "br"),
    FwPort("tcp", "0.0.0.0", 80, "10.0.0.2; flush ruleset", 80, "br"),
    FwPort("tcp", "0.0.0.0", 80, "10.0.0.2", 80, "br x"),
])
def test_invalid_port(port):
    with pytest.raises(InvalidArgument):
        render([], [port])


def test_nft_error_line():
    from netkit.kernel.nft import _error
    stderr = ("/dev/stdin:3:5-16: Error: Could not process rule: Operation not supported\n"
              "    meta ibrname \"br1\" drop\n    ^^^^^^^^^^^^\n")
    script = "table bridge x {\nchain f {\n    meta ibrname \"br1\" drop\n}\n}\n"
    assert _error(stderr, script) == ('Could not process rule: Operation not supported '
                                      '(line 3: meta ibrname "br1" drop)')
    assert _error("Error: No such file or directory\n", None) == "No such file or directory"


needs_nft = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("nft") is None
                               or shutil.which("unshare") is None,
                               reason="nft check mode needs root and nft")


@needs_nft
@pytest.mark.parametrize("name", sorted(CASES))
def test_nft_check_accepts_golden(name):
    # check mode goes through the kernel but commits nothing; a throwaway
    # netns (unshare -n) keeps even that away from the host's ruleset
    proc = subprocess.run(["unshare", "--net", "nft", "-c", "-f", str(golden_path(name))],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_subnets_are_normalised():
    text = render([FwNetwork("x", "br", ("10.0.0.7/24", "fd00::7/64"), icc=False)], [])
    assert "ip saddr 10.0.0.0/24 " in text and "ip6 saddr fd00::/64 " in text
    assert "ip daddr 10.0.0.0/24 drop" in text and "ip6 daddr fd00::/64 drop" in text


def test_ipv6_ports_need_no_route_localnet():
    """IPv6 has no route_localnet: a `::` port is not reachable at ::1, nothing asks for it."""
    port = FwPort("tcp", "::", 8080, "fd00:60::2", 80, "br-dual")
    assert not needs_route_localnet([port])
    text = render([FwNetwork("dual", "br-dual", ("fd00:60::/64",))], [port])
    assert "ip6 daddr != ::1 tcp dport 8080 dnat ip6 to [fd00:60::2]:80" in text
    assert "saddr 127.0.0.0/8" not in text
