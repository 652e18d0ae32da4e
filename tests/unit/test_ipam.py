"""netkit.ipam: pure tests (no kernel, no store, no I/O)."""

from __future__ import annotations

import hashlib
import random
import re
import time

import pytest

import netkit.ipam as ipam
from netkit.errors import Conflict, Exhausted, InvalidArgument
from netkit.ipam import (
    DEFAULT_GLOBAL_POOLS,
    DEFAULT_LOCAL_POOLS,
    AddressPool,
    build_ipam,
    check_static,
    choose_subnet,
    choose_subnet_v6,
    first_free,
    from_key,
    int_to_ip,
    ip_to_int,
    overlaps,
    pool_of,
    random_mac,
    reserved,
    to_key,
    ula_base,
    validate_mac,
)
from netkit.model import IPAMConfig

EXPECTED_LOCAL = [f"172.{n}.0.0/16" for n in range(17, 32)] + [
    f"192.168.{n}.0/20" for n in range(0, 256, 16)
]


def ip(text: str) -> int:
    return ip_to_int(text)[1]


class FakeIndex:
    """The store's ordered index of taken addresses, counting what it yields.

    Lazy over runs (``range`` objects), so a /8 can be 16M addresses taken.
    """

    def __init__(self, *runs):
        self.runs = sorted((r if isinstance(r, range) else range(r, r + 1) for r in runs),
                           key=lambda r: r.start)
        self.yielded = 0

    def __call__(self, start: int):
        for run in self.runs:
            for value in range(max(run.start, start), run.stop):
                self.yielded += 1
                yield value


def build(subnets=(), ranges=(), gateways=(), aux=None, **kw):
    return build_ipam(list(subnets), list(ranges), list(gateways), aux or {}, **kw)


# --- pools ---------------------------------------------------------------------------------


def test_public_names_are_exported():
    for name in ipam.__all__:
        assert hasattr(ipam, name), name


def test_default_local_pools_give_31_subnets_in_order_then_exhaust():
    taken: list[str] = []
    for _ in range(31):
        taken.append(choose_subnet(taken))
    assert taken == EXPECTED_LOCAL
    with pytest.raises(Exhausted, match="^all predefined address pools have been fully subnetted$"):
        choose_subnet(taken)


def test_default_pool_tables():
    assert DEFAULT_LOCAL_POOLS[0] == ("172.17.0.0/16", 16)
    assert DEFAULT_LOCAL_POOLS[-1] == ("192.168.0.0/16", 20)
    assert DEFAULT_GLOBAL_POOLS == (("10.0.0.0/8", 24),)
    assert choose_subnet([], pools=DEFAULT_GLOBAL_POOLS) == "10.0.0.0/24"


def test_released_lowest_gap_is_reused_first():
    taken = EXPECTED_LOCAL[:6]
    taken.remove("172.18.0.0/16")
    taken.remove("172.20.0.0/16")
    assert choose_subnet(taken) == "172.18.0.0/16"


def test_on_link_routes_and_host_addresses_are_skipped():
    # A /24 route inside 172.18/16 and a bare nameserver address inside 172.19/16.
    assert choose_subnet(["172.17.0.0/16", "172.18.5.0/24", "172.19.0.53"]) == "172.20.0.0/16"
    # A route bigger than the pools blocks all of them.
    assert choose_subnet(["172.16.0.0/12"]) == "192.168.0.0/20"
    # A host route given with host bits set still counts.
    assert choose_subnet(["172.17.3.4/16"]) == "172.18.0.0/16"


def test_other_family_in_taken_is_ignored():
    assert choose_subnet(["::/0", "fd00::/8"]) == "172.17.0.0/16"
    assert choose_subnet_v6(["172.17.0.0/16", "0.0.0.0/0"], "seed") == f"{ula_base('seed')[:-3]}/64"


def test_prefixlen_request():
    assert choose_subnet([], prefixlen=24) == "172.17.0.0/24"
    assert choose_subnet(["172.17.0.0/24", "172.17.1.128/25"], prefixlen=24) == "172.17.2.0/24"
    assert choose_subnet(["172.17.0.0/16"], prefixlen=20) == "172.18.0.0/20"
    # Only pools split at /16 or coarser can serve a /18; all /16 pools are taken.
    with pytest.raises(Exhausted):
        choose_subnet(EXPECTED_LOCAL[:15], prefixlen=18)
    # The 192.168 pool (size 20) serves a /22 once the /16 pools are full.
    assert choose_subnet(EXPECTED_LOCAL[:15], prefixlen=22) == "192.168.0.0/22"


def test_prefixlen_no_pool_can_hold_it():
    with pytest.raises(InvalidArgument, match="^invalid address pool$"):
        choose_subnet([], prefixlen=12)
    with pytest.raises(InvalidArgument, match="^invalid address pool$"):
        choose_subnet([], pools=DEFAULT_GLOBAL_POOLS, prefixlen=16)


def test_jump_is_aligned_to_candidate_size():
    taken = ["10.0.0.0/23", "10.0.2.5/32", "10.0.3.0/25"]
    assert choose_subnet(taken, pools=DEFAULT_GLOBAL_POOLS) == "10.0.4.0/24"
    # .5 blocks 10.0.2.0/26; the next candidate is the next /26, not .6.
    assert choose_subnet(taken, pools=DEFAULT_GLOBAL_POOLS, prefixlen=26) == "10.0.2.64/26"
    assert choose_subnet(taken + ["10.0.2.64/26", "10.0.2.128/25"], pools=DEFAULT_GLOBAL_POOLS,
                         prefixlen=26) == "10.0.3.128/26"


def test_global_pool_with_thousands_taken_is_fast():
    # The answer sits after all 10,000 taken /24s: a naive scan tests ~50M pairs
    # (seconds); skipping ahead over sorted ranges takes ~30 ms.
    taken = [f"10.{i >> 8}.{i & 255}.0/24" for i in range(10_000)]
    random.Random(1).shuffle(taken)
    start = time.perf_counter()
    assert choose_subnet(taken, pools=DEFAULT_GLOBAL_POOLS) == "10.39.16.0/24"
    assert time.perf_counter() - start < 0.3


def test_global_pool_fully_taken_by_one_route_is_fast():
    start = time.perf_counter()
    with pytest.raises(Exhausted):
        choose_subnet(["10.0.0.0/8"], pools=DEFAULT_GLOBAL_POOLS)
    assert choose_subnet(["10.0.0.0/9"], pools=DEFAULT_GLOBAL_POOLS) == "10.128.0.0/24"
    # Without the jump this walks 2M /30 candidates one by one.
    assert choose_subnet(["10.0.0.0/9"], pools=DEFAULT_GLOBAL_POOLS, prefixlen=30) == "10.128.0.0/30"
    assert time.perf_counter() - start < 0.1


def test_bad_pool_definition():
    with pytest.raises(InvalidArgument, match="invalid address pool 10.0.0.0/16"):
        choose_subnet([], pools=(("10.0.0.0/16", 8),))


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("10.0.0.0/8", "10.1.0.0/16", True),
        ("10.1.0.0/16", "10.0.0.0/8", True),
        ("10.0.0.0/24", "10.0.1.0/24", False),
        ("10.0.0.0/24", "10.0.0.255", True),
        ("fd00::/64", "fd00::1/128", True),
        ("fd00::/64", "fd00:0:0:1::/64", False),
        ("0.0.0.0/0", "::/0", False),
    ],
)
def test_overlaps(a, b, expected):
    assert overlaps(a, b) is expected


def test_ula_base_follows_docker_derivation():
    digest = hashlib.sha256(b"host-id").digest()
    global_id = int.from_bytes(digest[3:8], "big")      # the 40 low bits of the first 8 bytes
    expected = int_to_ip((0xFD << 120) | (global_id << 80), 6)
    assert ula_base("host-id") == f"{expected}/48"
    assert re.fullmatch(r"fd[0-9a-f]{2}:[0-9a-f]{1,4}:[0-9a-f]{1,4}::/48", ula_base("host-id"))
    assert ula_base("host-id") == ula_base("host-id")
    assert ula_base("host-id") != ula_base("other-host")


def test_choose_subnet_v6_first_free_64():
    base = ula_base("h")[: -len("::/48")]
    assert choose_subnet_v6([], "h") == f"{base}::/64"
    assert choose_subnet_v6([f"{base}::/64", f"{base}:2::/64"], "h") == f"{base}:1::/64"


# --- build_ipam ----------------------------------------------------------------------------


def test_defaults_choose_first_free_subnet_and_gateway():
    assert build() == (IPAMConfig("172.17.0.0/16", None, "172.17.0.1", {}),)
    (cfg,) = build(taken=["172.17.0.0/16", "172.18.0.0/16"])
    assert (cfg.subnet, cfg.gateway) == ("172.19.0.0/16", "172.19.0.1")
    (cfg,) = build(pools=DEFAULT_GLOBAL_POOLS)
    assert (cfg.subnet, cfg.gateway) == ("10.0.0.0/24", "10.0.0.1")


def test_ipv6_without_subnet_uses_ula_and_v4_comes_first():
    v4, v6 = build(ipv6=True, v6_seed="host")
    assert v4.subnet == "172.17.0.0/16"
    assert v6.subnet == choose_subnet_v6([], "host")
    assert v6.gateway == v6.subnet.replace("::/64", "::1")
    (only,) = build(ipv4=False, ipv6=True, v6_seed="host")
    assert only.family == 6


def test_ipv6_subnet_enables_ipv6_and_order_is_v4_first():
    v4, v6 = build(["fd00:0::/64", "10.1.0.0/16"])
    assert (v4.subnet, v4.gateway) == ("10.1.0.0/16", "10.1.0.1")
    assert (v6.subnet, v6.gateway) == ("fd00::/64", "fd00::1")
    (v6,) = build(["fd00::/64"], ipv4=False)
    assert v6.subnet == "fd00::/64"


def test_auto_subnet_avoids_given_ones():
    v4, v6 = build(["172.17.0.0/16"], ipv6=True, v6_seed="s", taken=[])
    assert v4.subnet == "172.17.0.0/16"
    base = ula_base("s")[: -len("::/48")]
    v4, v6 = build([f"{base}::/64"], v6_seed="s")
    assert v4.subnet == "172.17.0.0/16" and v6.subnet == f"{base}::/64"


def test_size_only_subnet_means_any_pool_of_that_size():
    (cfg,) = build(["0.0.0.0/24"], taken=["172.17.0.0/24"])
    assert (cfg.subnet, cfg.gateway) == ("172.17.1.0/24", "172.17.1.1")


def test_ipv4_and_ipv6_disabled():
    with pytest.raises(InvalidArgument, match="^IPv4 or IPv6 must be enabled$"):
        build(ipv4=False)


def test_ipv4_subnet_with_ipv4_disabled():
    with pytest.raises(InvalidArgument, match="^invalid subnet 10.0.0.0/24: IPv4 is disabled$"):
        build(["10.0.0.0/24"], ipv4=False, ipv6=True)


@pytest.mark.parametrize("bad", ["foo", "10.0.0.0", "10.0.0.0/33", "10.0.0/8", "10.0.0.0/x", "fd00::/129"])
def test_bad_cidr(bad):
    with pytest.raises(InvalidArgument, match=f"^invalid subnet: invalid CIDR address: {re.escape(bad)}$"):
        build([bad])


def test_subnet_with_host_bits():
    with pytest.raises(InvalidArgument, match="^invalid subnet 10.1.2.3/16: it should be 10.1.0.0/16$"):
        build(["10.1.2.3/16"])
    with pytest.raises(InvalidArgument, match="it should be fd00::/64$"):
        build(["fd00::1/64"])


def test_overlapping_subnets():
    with pytest.raises(InvalidArgument, match="^multiple overlapping subnet configuration is not supported$"):
        build(["10.0.0.0/8", "10.1.0.0/16"])
    assert len(build(["10.0.0.0/16", "10.1.0.0/16"])) == 2


def test_one_subnet_per_family():
    with pytest.raises(InvalidArgument, match="^bridge driver doesn't support multiple subnets$"):
        build(["10.0.0.0/16", "10.1.0.0/16"], one_subnet_per_family=True)
    assert len(build(["10.0.0.0/16", "fd00::/64"], one_subnet_per_family=True)) == 2


def test_ranges_or_gateways_without_subnet():
    msg = "^every ip-range or gateway must have a corresponding subnet$"
    with pytest.raises(InvalidArgument, match=msg):
        build(ranges=["10.0.0.0/24"])
    with pytest.raises(InvalidArgument, match=msg):
        build(gateways=["10.0.0.1"])
    with pytest.raises(InvalidArgument, match=msg):
        build(["10.0.0.0/16"], gateways=["10.0.0.1", "10.0.0.2"])


def test_range_errors():
    with pytest.raises(InvalidArgument, match="^no matching subnet for range 10.2.0.0/24$"):
        build(["10.1.0.0/16"], ["10.2.0.0/24"])
    with pytest.raises(InvalidArgument, match="^invalid ip-range: invalid CIDR address: bar$"):
        build(["10.1.0.0/16"], ["bar"])
    with pytest.raises(InvalidArgument, match="^invalid ip-range 10.1.5.3/24: it should be 10.1.5.0/24$"):
        build(["10.1.0.0/16"], ["10.1.5.3/24"])
    bigger = "^invalid ip-range 10.1.0.0/8: CIDR block is bigger than its parent subnet 10.1.0.0/16$"
    with pytest.raises(InvalidArgument, match=bigger):
        build(["10.1.0.0/16"], ["10.1.0.0/8"])     # host bits set too: size is reported first
    with pytest.raises(InvalidArgument, match=re.escape(
            "cannot configure multiple ranges (10.1.2.0/24, 10.1.1.0/24) on the same subnet (10.1.0.0/16)")):
        build(["10.1.0.0/16", "10.3.0.0/16"], ["10.1.1.0/24", "10.1.2.0/24"])
    with pytest.raises(InvalidArgument, match="no usable address"):
        build(["10.1.0.0/24"], ["10.1.0.255/32"])


def test_gateway_errors():
    with pytest.raises(InvalidArgument, match="^no matching subnet for gateway 10.2.0.1$"):
        build(["10.1.0.0/16"], gateways=["10.2.0.1"])
    with pytest.raises(InvalidArgument, match="^invalid gateway address: 10.1.0.300$"):
        build(["10.1.0.0/16"], gateways=["10.1.0.300"])
    with pytest.raises(InvalidArgument, match=re.escape(
            "cannot configure multiple gateways (10.1.0.2, 10.1.0.1) for the same subnet (10.1.0.0/16)")):
        build(["10.1.0.0/16", "10.3.0.0/16"], gateways=["10.1.0.1", "10.1.0.2"])


def test_aux_addresses():
    (cfg,) = build(["10.1.0.0/16"], aux={"router": "10.1.0.254", "dns": "10.1.0.53"})
    assert cfg.aux == {"router": "10.1.0.254", "dns": "10.1.0.53"}
    v4, v6 = build(["10.1.0.0/16", "fd00::/64"], aux={"a": "FD00::A"})
    assert (v4.aux, v6.aux) == ({}, {"a": "fd00::a"})
    with pytest.raises(InvalidArgument, match="^no matching subnet for aux-address 10.9.0.1$"):
        build(["10.1.0.0/16"], aux={"x": "10.9.0.1"})
    with pytest.raises(InvalidArgument, match="^invalid aux-address x=nope: not an IP address$"):
        build(["10.1.0.0/16"], aux={"x": "nope"})
    with pytest.raises(InvalidArgument, match="^no matching subnet for aux-address"):
        build(aux={"x": "172.17.0.5"})      # automatic subnets take no aux addresses


def test_ipv6_multicast_and_link_local_subnets():
    with pytest.raises(InvalidArgument, match="^multicast subnet 'ff02::/64' is not allowed$"):
        build(["ff02::/64"])
    with pytest.raises(InvalidArgument, match="clashes with the Link-Local prefix 'fe80::/64'"):
        build(["fe80::/10"])
    (_, v6) = build(["fe80::/64"])
    assert v6.subnet == "fe80::/64"


def test_given_subnet_overlapping_taken_is_a_conflict():
    msg = "^invalid pool request: Pool overlaps with other one on this address space$"
    with pytest.raises(Conflict, match=msg):
        build(["172.18.0.0/24"], taken=["172.18.0.0/16"])
    with pytest.raises(Conflict, match=msg):      # an on-link route inside the subnet
        build(["192.168.0.0/16"], taken=["192.168.1.0/24"])
    assert build(["172.19.0.0/16"], taken=["172.18.0.0/16"])[0].subnet == "172.19.0.0/16"


def test_default_gateway_with_and_without_ip_range():
    (cfg,) = build(["10.1.0.0/16"], ["10.1.5.0/24"])
    assert (cfg.ip_range, cfg.gateway) == ("10.1.5.0/24", "10.1.5.0")   # the range's .0 is usable
    (cfg,) = build(["10.1.0.0/16"], ["10.1.0.0/24"])
    assert cfg.gateway == "10.1.0.1"                                   # never the network address
    (cfg,) = build(["10.1.0.0/16"])
    assert cfg.gateway == "10.1.0.1"
    (_, v6) = build(["10.1.0.0/16", "fd00::/64"], ["fd00::100/120"])
    assert (v6.ip_range, v6.gateway) == ("fd00::100/120", "fd00::100")


def test_given_gateway_may_sit_outside_the_range_and_is_normalised():
    (cfg,) = build(["10.1.0.0/16"], ["10.1.5.0/24"], ["10.1.0.1"])
    assert cfg.gateway == "10.1.0.1"
    (_, v6) = build(["fd00::/64"], gateways=["FD00:0::FE"])
    assert v6.gateway == "fd00::fe"


def test_skip_gateway():
    (cfg,) = build(["10.1.0.0/16"], skip_gateway=True)
    assert cfg.gateway is None
    (cfg,) = build(["10.1.0.0/16"], gateways=["10.1.0.9"], skip_gateway=True)
    assert cfg.gateway == "10.1.0.9"


# --- allocator ------------------------------------------------------------------------------


def test_ip_parsing_is_strict_and_round_trips():
    assert ip_to_int("10.0.0.1") == (4, 0x0A000001)
    assert ip_to_int("fd00::1") == (6, (0xFD00 << 112) | 1)
    assert int_to_ip(0x0A000001, 4) == "10.0.0.1"
    assert int_to_ip((0xFD00 << 112) | 1, 6) == "fd00::1"
    for bad in ["10.1", "010.0.0.1", "1.2.3.4/24", "fe80::1%eth0", " 10.0.0.1", ""]:
        with pytest.raises(InvalidArgument):
            ip_to_int(bad)


def test_keys_are_fixed_width_and_sort_numerically():
    assert to_key(ip("10.0.0.1"), 4) == "0a000001"
    assert len(to_key(1, 6)) == 32
    rng = random.Random(7)
    for family, bits in ((4, 32), (6, 128)):
        values = [rng.getrandbits(rng.randint(1, bits)) for _ in range(500)]
        keys = [to_key(v, family) for v in values]
        assert len({len(k) for k in keys}) == 1
        assert sorted(keys) == [to_key(v, family) for v in sorted(values)]
        assert all(from_key(to_key(v, family)) == v for v in values)
        assert all(k == k.lower() for k in keys)


@pytest.mark.parametrize(
    ("subnet", "ip_range", "first", "last"),
    [
        ("10.0.0.0/24", None, "10.0.0.1", "10.0.0.254"),
        ("10.0.0.0/31", None, "10.0.0.0", "10.0.0.1"),
        ("10.0.0.7/32", None, "10.0.0.7", "10.0.0.7"),
        ("10.0.0.0/16", "10.0.5.0/24", "10.0.5.0", "10.0.5.255"),
        ("10.0.0.0/16", "10.0.0.0/24", "10.0.0.1", "10.0.0.255"),
        ("10.0.0.0/16", "10.0.255.0/24", "10.0.255.0", "10.0.255.254"),
        ("fd00::/64", None, "fd00::1", "fd00::ffff:ffff:ffff:ffff"),
        ("fd00::/127", None, "fd00::", "fd00::1"),
    ],
)
def test_pool_of(subnet, ip_range, first, last):
    pool = pool_of(IPAMConfig(subnet, ip_range))
    assert (pool.first, pool.last) == (ip(first), ip(last))
    assert pool.family == (6 if ":" in subnet else 4)
    assert pool.subnet_first <= pool.first and pool.last <= pool.subnet_last


def test_reserved_addresses():
    cfg = IPAMConfig("10.0.0.0/24", None, "10.0.0.1",
                     {"router": "10.0.0.254", "far": "10.9.9.9", "v6": "fd00::1"})
    assert reserved(cfg) == {ip("10.0.0.1"): "gateway", ip("10.0.0.254"): "aux:router"}
    assert reserved(IPAMConfig("10.0.0.0/24")) == {}


def test_first_free_empty_dense_and_gaps():
    pool = pool_of(IPAMConfig("10.0.0.0/24"))
    assert first_free(pool, FakeIndex()) == ip("10.0.0.1")
    dense = FakeIndex(range(ip("10.0.0.1"), ip("10.0.0.11")), ip("10.0.0.12"))
    assert first_free(pool, dense) == ip("10.0.0.11")
    assert dense.yielded == 11
    gaps = FakeIndex(ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.4"), ip("10.0.0.5"))
    assert first_free(pool, gaps) == ip("10.0.0.3")
    assert gaps.yielded == 3                # stops at the gap: .5 is never read


def test_first_free_hint():
    pool = pool_of(IPAMConfig("10.0.0.0/24"))
    index = FakeIndex(ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.3"), ip("10.0.0.5"))
    assert first_free(pool, index, hint=ip("10.0.0.4")) == ip("10.0.0.4")
    assert first_free(pool, index, hint=ip("10.0.0.5")) == ip("10.0.0.6")
    assert first_free(pool, FakeIndex(), hint=0) == ip("10.0.0.1")     # below the pool: ignored


def test_first_free_respects_range_and_ignores_taken_beyond_it():
    pool = pool_of(IPAMConfig("10.0.0.0/16", "10.0.5.0/30"))
    index = FakeIndex(ip("10.0.5.0"), ip("10.0.5.1"), ip("10.0.9.9"))
    assert first_free(pool, index) == ip("10.0.5.2")


def test_first_free_exhausted():
    pool = pool_of(IPAMConfig("10.0.0.0/30"))
    index = FakeIndex(ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.9"))
    with pytest.raises(Exhausted, match=re.escape(
            "no available IPv4 addresses on this network's address pools: n1 (abc)")):
        first_free(pool, index, label="n1 (abc)")
    with pytest.raises(Exhausted):
        first_free(pool, FakeIndex(), hint=ip("10.0.0.3"))


def test_first_free_31_and_32():
    p31 = pool_of(IPAMConfig("10.0.0.0/31"))
    assert first_free(p31, FakeIndex()) == ip("10.0.0.0")
    assert first_free(p31, FakeIndex(ip("10.0.0.0"))) == ip("10.0.0.1")
    with pytest.raises(Exhausted):
        first_free(p31, FakeIndex(ip("10.0.0.0"), ip("10.0.0.1")))
    p32 = pool_of(IPAMConfig("10.0.0.9/32"))
    assert first_free(p32, FakeIndex()) == ip("10.0.0.9")


def test_first_free_ipv6():
    pool = pool_of(IPAMConfig("fd00::/64"))
    assert first_free(pool, FakeIndex()) == ip("fd00::1")
    with pytest.raises(Exhausted, match="no available IPv6 addresses"):
        first_free(pool_of(IPAMConfig("fd00::/127")), FakeIndex(ip("fd00::"), ip("fd00::1")))


def test_first_free_on_a_slash_8_is_proportional_to_the_run_not_the_subnet():
    pool = pool_of(IPAMConfig("10.0.0.0/8"))
    end = ip("10.255.255.254")
    # 16.7M addresses taken up to end-1: only the hint keeps this cheap.
    index = FakeIndex(range(pool.first, end))
    start = time.perf_counter()
    assert first_free(pool, index, hint=end - 3) == end
    assert index.yielded == 3
    assert time.perf_counter() - start < 0.05
    index = FakeIndex(range(pool.first, end + 1), ip("10.255.255.255"))   # + broadcast, beyond the pool
    with pytest.raises(Exhausted):
        first_free(pool, index, hint=end - 3)
    assert index.yielded == 4
    index = FakeIndex(range(pool.first, end - 10), range(end - 9, end + 1))
    assert first_free(pool, index, hint=end - 10) == end - 10            # free right at the hint
    assert index.yielded == 1


def test_first_free_tolerates_values_below_start():
    pool = pool_of(IPAMConfig("10.0.0.0/24"))
    sloppy = lambda start: iter([1, 2, start, start + 1])      # noqa: E731
    assert first_free(pool, sloppy, hint=ip("10.0.0.7")) == ip("10.0.0.9")


def test_check_static():
    v4 = IPAMConfig("10.0.0.0/16", "10.0.5.0/24", "10.0.5.0")
    v6 = IPAMConfig("fd00::/64", None, "fd00::1")
    assert check_static([v4, v6], "10.0.9.9") == (v4, ip("10.0.9.9"))     # outside the range
    assert check_static([v4, v6], "fd00::abc") == (v6, ip("fd00::abc"))
    with pytest.raises(InvalidArgument, match="^no configured subnet contains IP address 10.1.0.1$"):
        check_static([v4, v6], "10.1.0.1")
    with pytest.raises(InvalidArgument, match="^invalid IPv4 address: 10.0.0$"):
        check_static([v4], "10.0.0")
    with pytest.raises(InvalidArgument, match="^invalid IPv6 address: fd00::zz$"):
        check_static([v6], "fd00::zz")
    for edge in ("10.0.0.0", "10.0.255.255", ):
        with pytest.raises(InvalidArgument, match="^requested address is out of range"):
            check_static([v4], edge)
    with pytest.raises(InvalidArgument, match="^requested address is out of range"):
        check_static([v6], "fd00::")
    p2p = IPAMConfig("10.9.0.0/31")
    assert check_static([p2p], "10.9.0.0") == (p2p, ip("10.9.0.0"))


def test_random_mac_is_local_unicast_and_random():
    macs = {random_mac() for _ in range(200)}
    assert len(macs) == 200
    for mac in macs:
        assert re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", mac)
        first = int(mac[:2], 16)
        assert first & 0x02 and not first & 0x01
        assert validate_mac(mac) == mac


def test_validate_mac():
    assert validate_mac("02:AB:cd:00:11:22") == "02:ab:cd:00:11:22"
    assert validate_mac("02-ab-cd-00-11-22") == "02:ab:cd:00:11:22"
    for bad in ["", "02:ab:cd:00:11", "02:ab:cd:00:11:22:33", "02:ab-cd:00:11:22", "zz:ab:cd:00:11:22",
                "01:00:5e:00:00:01", "ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00"]:
        with pytest.raises(InvalidArgument, match=f"^invalid MAC address: {re.escape(bad)}$"):
            validate_mac(bad)


def test_address_pool_is_frozen():
    pool = AddressPool(4, 24, 0, 255, 1, 254)
    with pytest.raises(AttributeError):
        pool.first = 2  # type: ignore[misc]
