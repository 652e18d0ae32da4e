"""What the CNI specification fixes (1.0.0 and 1.1.0), as pure code: no kernel, no store.

The runtime's side of a call (environment variables, the network configuration on stdin),
the error object and its well-known codes, the VERSION answer and the result of ADD
(interfaces, ips, routes, dns). netkit/cni/plugin.py does the work.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

SUPPORTED_VERSIONS = ("1.0.0", "1.1.0")
COMMANDS = ("ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC")
VALID_ATTACHMENTS = "cni.dev/valid-attachments"     # GC's list of attachments to keep
EMBEDDED_DNS = "127.0.0.11"

# the spec's well-known error codes (1-99); 100 and up are the plugin's own
INCOMPATIBLE_VERSION = 1
UNSUPPORTED_FIELD = 2
UNKNOWN_CONTAINER = 3
INVALID_ENVIRONMENT = 4
IO_FAILURE = 5
DECODE_FAILURE = 6
INVALID_CONFIG = 7
TRY_AGAIN_LATER = 11
NOT_AVAILABLE = 50
LIMITED_CONNECTIVITY = 51
NETKIT_ERROR = 100           # any other netkit error (its message as "msg")
ADDRESSES_EXHAUSTED = 101    # the network's pool has no free address
CONFLICT = 102               # already attached, address or interface name taken
CHECK_FAILED = 103           # CHECK: the attachment is not as the result says


class CniError(Exception):
    """A failure reported to the runtime as the spec's error object."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details

    def to_json(self, version: str) -> dict[str, Any]:
        out: dict[str, Any] = {"cniVersion": version, "code": self.code, "msg": self.msg}
        if self.details:
            out["details"] = self.details
        return out


@dataclass(frozen=True, slots=True)
class Call:
    """One invocation: CNI_* environment variables and the network configuration."""

    command: str
    container_id: str = ""
    netns: str = ""
    ifname: str = ""
    args: dict[str, str] = field(default_factory=dict)      # CNI_ARGS
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> str:
        return str(self.config.get("cniVersion") or SUPPORTED_VERSIONS[-1])

    @property
    def network(self) -> str:
        """The netkit network: the config's ``network``, else its ``name``."""
        return str(self.config.get("network") or self.config["name"])

    @property
    def node(self) -> str | None:
        """The simulated node that holds the network (None: the real host)."""
        return self.config.get("node") or None

    def runtime_config(self) -> dict[str, Any]:
        rc = self.config.get("runtimeConfig")
        return rc if isinstance(rc, dict) else {}

    def name(self) -> str | None:
        """The container's name in DNS: CNI_ARGS K8S_POD_NAME (as Podman and Kubernetes
        pass it), else NAME; None: netkit picks one."""
        return self.args.get("K8S_POD_NAME") or self.args.get("NAME") or None

    def aliases(self) -> tuple[str, ...]:
        """--network-alias names: runtimeConfig ``aliases`` (the ``aliases`` capability:
        {network name: [names]}), ``args.cni.aliases`` and CNI_ARGS ALIASES (comma list)."""
        out: list[str] = []
        by_net = self.runtime_config().get("aliases")
        if isinstance(by_net, dict):
            out += _strings(by_net.get(self.config.get("name")) or by_net.get(self.network))
        out += _strings(self._cni_args().get("aliases"))
        out += [a for a in self.args.get("ALIASES", "").split(",") if a]
        return tuple(dict.fromkeys(out))

    def addresses(self) -> tuple[str | None, str | None]:
        """Static addresses asked for (runtimeConfig ``ips``, ``args.cni.ips``, CNI_ARGS
        IP): (IPv4, IPv6), prefix lengths dropped."""
        asked = _strings(self.runtime_config().get("ips")) + _strings(self._cni_args().get("ips"))
        asked += [a for a in self.args.get("IP", "").split(",") if a]
        v4 = next((a.split("/")[0] for a in asked if ":" not in a), None)
        v6 = next((a.split("/")[0] for a in asked if ":" in a), None)
        return v4, v6

    def mac(self) -> str | None:
        return self.runtime_config().get("mac") or self._cni_args().get("mac") \
            or self.args.get("MAC") or None

    def _cni_args(self) -> dict[str, Any]:
        args = self.config.get("args")
        cni = args.get("cni") if isinstance(args, dict) else None
        return cni if isinstance(cni, dict) else {}


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else []


def parse_cni_args(text: str) -> dict[str, str]:
    """CNI_ARGS: ``KEY=VALUE;KEY=VALUE`` (the spec's alphanumeric key-value pairs)."""
    out = {}
    for pair in filter(None, text.split(";")):
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CniError(INVALID_ENVIRONMENT, f"invalid CNI_ARGS pair: {pair!r}")
        out[key] = value
    return out


def parse_call(env: dict[str, str], stdin: str) -> Call:
    """The invocation, checked as far as the spec goes (codes 1, 4, 6, 7)."""
    command = env.get("CNI_COMMAND", "")
    if command not in COMMANDS:
        raise CniError(INVALID_ENVIRONMENT, f"unknown CNI_COMMAND: {command!r}" if command
                       else "CNI_COMMAND is not set")
    try:
        config = json.loads(stdin) if stdin.strip() else {}
    except ValueError as exc:
        raise CniError(DECODE_FAILURE, "cannot decode the network configuration",
                       str(exc)) from None
    if not isinstance(config, dict):
        raise CniError(DECODE_FAILURE, "the network configuration is not a JSON object")
    version = str(config.get("cniVersion") or "")
    if command == "VERSION":
        return Call(command, config=config)
    if version not in SUPPORTED_VERSIONS:
        raise CniError(INCOMPATIBLE_VERSION, f"incompatible CNI version {version or '(none)'}",
                       f"supported: {', '.join(SUPPORTED_VERSIONS)}")
    if command in ("STATUS", "GC") and version == "1.0.0":
        raise CniError(INCOMPATIBLE_VERSION, f"{command} needs CNI version 1.1.0")
    for key in ("name", "type"):
        if not isinstance(config.get(key), str) or not config[key]:
            raise CniError(INVALID_CONFIG, f"the network configuration has no {key}")
    for key in ("network", "node", "root", "run"):
        if key in config and not isinstance(config[key], str):
            raise CniError(INVALID_CONFIG, f"{key} must be a string")
    need = {"ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
            "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
            "DEL": ("CNI_CONTAINERID", "CNI_IFNAME")}.get(command, ())
    for var in need:
        if not env.get(var):
            raise CniError(INVALID_ENVIRONMENT, f"{var} is not set")
    cid = env.get("CNI_CONTAINERID", "")
    if cid and not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", cid):
        raise CniError(INVALID_ENVIRONMENT, f"invalid CNI_CONTAINERID: {cid!r}")
    return Call(command, cid, env.get("CNI_NETNS", ""), env.get("CNI_IFNAME", ""),
                parse_cni_args(env.get("CNI_ARGS", "")), config)


def version_answer(requested: str | None) -> dict[str, Any]:
    """VERSION's answer, in the version asked for (the newest when none or unknown)."""
    version = requested if requested in SUPPORTED_VERSIONS else SUPPORTED_VERSIONS[-1]
    return {"cniVersion": version, "supportedVersions": list(SUPPORTED_VERSIONS)}


@dataclass(frozen=True, slots=True)
class Attachment:
    """One interface netkit gave a sandbox, as ADD reports it."""

    ifname: str
    mac: str
    netns: str
    host_ifname: str | None = None
    ipv4: str | None = None          # "10.1.0.2/24"
    ipv6: str | None = None
    gateway_v4: str | None = None
    gateway_v6: str | None = None
    default_v4: bool = False         # the default route via gateway_v4 is netkit's
    default_v6: bool = False
    dns: bool = False                # the network has the embedded DNS


def add_result(version: str, att: Attachment) -> dict[str, Any]:
    """ADD's result: interfaces (the host end, if any, then the sandbox's), ips, routes, dns."""
    interfaces: list[dict[str, Any]] = []
    if att.host_ifname:
        interfaces.append({"name": att.host_ifname})
    interfaces.append({"name": att.ifname, "mac": att.mac, "sandbox": att.netns})
    index = len(interfaces) - 1
    ips, routes = [], []
    for addr, gw, default, dst in ((att.ipv4, att.gateway_v4, att.default_v4, "0.0.0.0/0"),
                                   (att.ipv6, att.gateway_v6, att.default_v6, "::/0")):
        if addr:
            ip: dict[str, Any] = {"address": addr, "interface": index}
            if gw:
                ip["gateway"] = gw
            ips.append(ip)
            if gw and default:
                routes.append({"dst": dst, "gw": gw})
    out: dict[str, Any] = {"cniVersion": version, "interfaces": interfaces, "ips": ips}
    if routes:
        out["routes"] = routes
    out["dns"] = {"nameservers": [EMBEDDED_DNS], "options": ["ndots:0"]} if att.dns else {}
    return out


def result_addresses(result: dict[str, Any], ifname: str, netns: str) -> set[str]:
    """The addresses a (prev)result gives interface `ifname` of sandbox `netns`."""
    ifaces = result.get("interfaces") or []
    wanted = {i for i, it in enumerate(ifaces)
              if isinstance(it, dict) and it.get("name") == ifname
              and it.get("sandbox") in (netns, None, "")}
    return {str(ip.get("address")) for ip in result.get("ips") or []
            if isinstance(ip, dict) and (ip.get("interface") in wanted or not ifaces)}


def valid_attachments(config: dict[str, Any]) -> set[tuple[str, str]]:
    """GC's (container id, ifname) pairs to keep."""
    keep = config.get(VALID_ATTACHMENTS)
    if keep is None:
        return set()
    if not isinstance(keep, list):
        raise CniError(INVALID_CONFIG, f"{VALID_ATTACHMENTS} must be a list")
    return {(str(a.get("containerID")), str(a.get("ifname"))) for a in keep if isinstance(a, dict)}
