"""`lab up`'s checks of the whole file before anything is made (pure: no engine, no kernel).

What `up` would otherwise find half-way, after it made networks and
containers: each container's `docker create` checks (name, hostname, MAC,
aliases, --dns), each network's `network create` checks (subnets, ranges,
gateways, aux addresses, options), static addresses (inside a subnet, not
its gateway, not taken twice), container names and fixed host ports used
twice, and more containers on a network than its subnet holds. Errors
name the file and line of the key at fault, as every lab file error does.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Mapping

from netkit.errors import NetkitError
from netkit.labs import plan

if TYPE_CHECKING:
    from netkit.labs.model import Project, Service
    from netkit.model import IPAMConfig


def validate(project: "Project", *, target: str | None = None, scale: Mapping[str, int] | None = None,
             compatibility: bool = False) -> None:
    """Raise a LabFileError (file:line: key: why) for the first thing `up` would fail on."""
    scale = scale or {}
    where = project.where
    cfgs = _networks(project, target)
    names: dict[str, str] = {}
    ports: dict[tuple, list[tuple[str, str]]] = {}
    statics: dict[tuple, str] = {}
    members: dict[tuple, int] = defaultdict(int)
    for svc in project.services.values():
        replicas = scale.get(svc.name, svc.replicas)
        base = ("services", svc.name)
        node = plan.node_of(svc, target)
        for number in range(1, replicas + 1):
            spec = _guard(where, base, lambda: plan.container_spec(project, svc, number,
                                                                   compatibility=compatibility))
            _guard(where, base, lambda: _check_spec(spec))
            key = "container_name" if svc.container_name else None
            other = names.setdefault(spec.name, svc.name)
            if other != svc.name or (number > 1 and svc.container_name):
                raise where.error(base + ((key,) if key else ()),
                                  f'the container name "{spec.name}" is already used by service '
                                  f"{other}" + (f" ({replicas} replicas)" if other == svc.name else ""))
            _claim_ports(where, base, svc, node, spec.publish, ports)
        for n in svc.networks:
            members[(n.network, node)] += replicas
            _check_static(project, where, base + ("networks", n.network), svc, n, node,
                          replicas, cfgs, statics)
    for (key, node), count in members.items():
        _capacity(project, where, key, node, count, cfgs)


def _guard(where, path: tuple, fn):
    """fn(); a NetkitError it raises becomes a lab file error at `path`."""
    try:
        return fn()
    except NetkitError as exc:
        raise where.error(path, str(exc)) from None


def _check_spec(spec) -> None:
    from netkit import ipam, planning
    planning.check_container_spec(spec)
    for es in spec.extra_networks:
        if es.mac:
            ipam.validate_mac(es.mac)
    planning.port_requests(spec)


def _networks(project: "Project", target: str | None) -> dict[tuple, tuple["IPAMConfig", ...]]:
    """(network key, node) -> its IPAM configs when its subnets are given (else ()),
    after `network create`'s own checks."""
    from netkit import drivers, validate
    from netkit.ids import NAME_RE
    from netkit.ipam.config import build_ipam
    from netkit.errors import InvalidArgument
    out: dict[tuple, tuple] = {}
    for key, nodes in plan.network_nodes(project, target).items():
        net = project.networks[key]
        path = ("networks", key)
        for node in nodes:
            if net.external:
                out[(key, node)] = ()
                continue
            spec = plan.network_spec(project, net, node)

            def check(spec=spec) -> tuple:
                if not NAME_RE.match(spec.name):
                    raise InvalidArgument(f"invalid network name {spec.name!r}: only "
                                          "[a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
                validate.network_options(spec.options)
                driver = drivers.find(spec.driver)
                if driver is None:
                    return ()               # a plugin: its own checks, at create
                driver.validate(spec)
                if not spec.subnets:
                    return ()
                return build_ipam(spec.subnets, spec.ip_ranges, spec.gateways, spec.aux_addresses,
                                  ipv4=spec.ipv4, ipv6=spec.ipv6,
                                  skip_gateway=not driver.allocates_gateway,
                                  one_subnet_per_family=driver.one_subnet_per_family)
            out[(key, node)] = _guard(project.where, path, check)
    return out


def _claim_ports(where, base: tuple, svc: "Service", node: str | None, publish,
                 taken: dict[tuple, list[tuple[str, str]]]) -> None:
    """Fixed host ports: one owner per (node, proto, port) and address (0.0.0.0: all)."""
    from netkit.ports import parse_publish
    for i, text in enumerate(publish):
        for req in _guard(where, base + ("ports", i), lambda: parse_publish(text)):
            if not req.host_port:
                continue
            owners = taken.setdefault((node, req.proto, req.host_port), [])
            for ip, other in owners:
                if "0.0.0.0" in (ip, req.host_ip) or ip == req.host_ip:
                    raise where.error(base + ("ports", i),
                                      f"Bind for {req.host_ip}:{req.host_port} failed: port is "
                                      f"already allocated (by service {other})")
            owners.append((req.host_ip, svc.name))


def _check_static(project: "Project", where, path: tuple, svc: "Service", n, node,
                  replicas: int, cfgs: dict, statics: dict[tuple, str]) -> None:
    from netkit.ipam.allocator import check_static, ip_to_int
    for family, ip in ((4, n.ipv4_address), (6, n.ipv6_address)):
        if not ip:
            continue
        field = path + (f"ipv{family}_address",)
        if replicas > 1:
            raise where.error(field, f"{replicas} replicas cannot share the address {ip}")
        have = cfgs.get((n.network, node)) or ()
        if not have:
            _guard(where, field, lambda: ip_to_int(ip))
            continue
        cfg, value = _guard(where, field, lambda: check_static(have, ip))
        if cfg.gateway and ip_to_int(cfg.gateway)[1] == value:
            raise where.error(field, f"Address already in use: {ip} is the gateway of network "
                                     f"{project.networks[n.network].name}")
        if ip in cfg.aux.values():
            raise where.error(field, f"Address already in use: {ip} is an aux address of network "
                                     f"{project.networks[n.network].name}")
        other = statics.setdefault((n.network, node, value), svc.name)
        if other != svc.name:
            raise where.error(field, f"Address already in use: {ip} is also the address of "
                                     f"service {other}")


def _capacity(project: "Project", where, key: str, node, count: int, cfgs: dict) -> None:
    from netkit.ipam.allocator import pool_of, reserved
    have = [c for c in cfgs.get((key, node)) or () if ":" not in c.subnet]
    if not have:
        return
    free = 0
    for cfg in have:
        pool = pool_of(cfg)
        free += max(0, pool.last - pool.first + 1) - sum(
            1 for addr in reserved(cfg) if pool.first <= addr <= pool.last)
    if count > free:
        name = project.networks[key].name
        subnets = ", ".join(c.ip_range or c.subnet for c in have)
        raise where.error(("networks", key),
                          f"{count} containers on network {name}, but {subnets} holds only "
                          f"{free} addresses for them (no available IPv4 addresses on this "
                          "network's address pools)")


def step(what: str, fn):
    """fn() of one `up` step; a NetkitError it raises says which step failed (same class,
    so the exit code stays), and that `lab down` removes what was made before it."""
    try:
        return fn()
    except NetkitError as exc:
        err = exc.__class__.__new__(exc.__class__)
        err.__dict__.update(exc.__dict__)
        Exception.__init__(err, f"{what}: {exc} (`netkit lab down` removes what was made)")
        raise err from exc
