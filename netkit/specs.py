"""User input before validation: what the CLI parses and the Engine checks."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class NetworkSpec:
    """`docker network create` arguments."""

    name: str
    driver: str = "bridge"
    subnets: tuple[str, ...] = ()
    ip_ranges: tuple[str, ...] = ()
    gateways: tuple[str, ...] = ()
    aux_addresses: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    internal: bool = False
    ipv6: bool = False
    ipv4: bool = True
    attachable: bool = False


@dataclass(slots=True)
class EndpointSpec:
    """One network a container joins, with its per-network settings."""

    network: str                       # name, id or id prefix
    aliases: tuple[str, ...] = ()
    ipv4: str | None = None            # --ip
    ipv6: str | None = None            # --ip6
    mac: str | None = None             # --mac-address
    links: tuple[str, ...] = ()        # "target[:alias]"


@dataclass(slots=True)
class ContainerSpec:
    """`docker run` arguments that netkit understands."""

    name: str | None = None
    command: tuple[str, ...] = ()
    network: str = "bridge"            # bridge | host | none | container:<ref> | a network
    aliases: tuple[str, ...] = ()      # --network-alias (first network)
    ipv4: str | None = None
    ipv6: str | None = None
    mac: str | None = None
    hostname: str | None = None
    detach: bool = False
    auto_remove: bool = False
    dns: tuple[str, ...] = ()
    links: tuple[str, ...] = ()
    extra_networks: tuple[EndpointSpec, ...] = ()   # repeated --network
    publish: tuple[str, ...] = ()      # -p [ip:][hostPort[-end]:]ctrPort[-end][/proto]
    publish_all: bool = False          # -P: every --expose'd port to a random host port
    expose: tuple[str, ...] = ()       # --expose port[-end][/proto]
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    restart: str = "no"                # --restart no|on-failure[:N]|always|unless-stopped
    stop_signal: str | None = None     # --stop-signal (default SIGTERM)
    stop_timeout: int | None = None    # --stop-timeout seconds (default 10)
    log_opts: dict[str, str] = field(default_factory=dict)   # --log-opt max-size=10m,max-file=2
    cap_add: tuple[str, ...] = ()      # --cap-add NET_ADMIN | CAP_NET_ADMIN | ALL
    cap_drop: tuple[str, ...] = ()     # --cap-drop
    privileged: bool = False           # --privileged
    user: str | None = None            # --user UID|NAME[:GID|GROUP]
    sysctls: dict[str, str] = field(default_factory=dict)     # --sysctl net.KEY=VALUE
    extra_hosts: tuple[tuple[str, str], ...] = ()    # --add-host: (name, address) lines of /etc/hosts
    domainname: str | None = None      # --domainname: the hosts line names HOSTNAME.DOMAINNAME
    secrets: tuple[tuple[str, str, int], ...] = ()   # Compose: (host file, name in /run/secrets, mode)

    def privileges(self) -> dict[str, object]:
        """The privilege settings as stored with the container (only those given)."""
        out: dict[str, object] = {"cap_add": list(self.cap_add), "cap_drop": list(self.cap_drop),
                                  "privileged": self.privileged, "user": self.user,
                                  "sysctls": dict(self.sysctls)}
        return {k: v for k, v in out.items() if v}


def check_privileges(spec: ContainerSpec) -> None:
    """--cap-add/--cap-drop/--user/--sysctl as Docker checks them (its wording); pure."""
    from netkit.kernel import caps
    caps.capability_mask(spec.cap_add, spec.cap_drop, spec.privileged)
    caps.resolve_user(spec.user)
    caps.check_sysctls(spec.sysctls, spec.network)
