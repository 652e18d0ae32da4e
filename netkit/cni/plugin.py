"""The `netkit-cni` plugin: a CNI 1.0 / 1.1 main plugin over `Engine.attach` / `detach`.

The runtime runs it with the CNI_* environment variables and the network configuration on
stdin; it answers on stdout (a result, a version answer or the spec's error object) and
exits 0, or 1 with the error. The configuration names the netkit network (``network``,
default: the configuration's ``name``) and, optionally, the simulated node that holds it
(``node``) and netkit's state directories (``root``, ``run``; default: NETKIT_ROOT /
NETKIT_RUN or netkit's defaults). See docs/cni.md.

    ADD      attach CNI_NETNS to the network as CNI_IFNAME; the sandbox's key is
             CNI_CONTAINERID, its name CNI_ARGS K8S_POD_NAME (or NAME), its aliases the
             runtime's ``aliases`` capability (or args.cni.aliases, CNI_ARGS ALIASES)
    DEL      detach it again; nothing attached (or no such node or network) is success,
             and the namespace's processes are never touched
    CHECK    the attachment is there, as prevResult says, and its interface in the kernel
    VERSION  the versions supported
    STATUS   ready when the network exists (else code 50)
    GC       detach every attachment to the network that cni.dev/valid-attachments omits
"""

from __future__ import annotations

import json
import os
import socket
import sys
from typing import TYPE_CHECKING, Any

from netkit.cni import spec
from netkit.cni.spec import Attachment, Call, CniError

if TYPE_CHECKING:
    from netkit.engine import Engine
    from netkit.model import Container, Endpoint


def _engine(call: Call) -> "Engine":
    from netkit.engine import Engine
    return Engine(call.node, root=call.config.get("root") or None,
                  run=call.config.get("run") or None)


def _error_of(exc: Exception) -> CniError:
    """A netkit error as the spec's error object (Docker's message as "msg")."""
    from netkit import errors
    if isinstance(exc, CniError):
        return exc
    codes = ((errors.Exhausted, spec.ADDRESSES_EXHAUSTED),
             ((errors.Conflict, errors.AlreadyExists), spec.CONFLICT),
             ((errors.InvalidArgument, errors.NotFound), spec.INVALID_CONFIG),
             (errors.Forbidden, spec.INVALID_ENVIRONMENT),
             (errors.NetkitError, spec.NETKIT_ERROR))
    for kinds, code in codes:
        if isinstance(exc, kinds):
            return CniError(code, str(exc))
    return CniError(spec.NETKIT_ERROR, f"{type(exc).__name__}: {exc}")


# -- the commands ---------------------------------------------------------------------------
def add(call: Call) -> dict[str, Any]:
    from netkit.attached import netns_file, netns_identity
    from netkit.errors import NotFound
    try:
        netns_identity(netns_file(call.netns))
    except NotFound:
        raise CniError(spec.INVALID_ENVIRONMENT, f"CNI_NETNS {call.netns} does not exist") from None
    ip, ip6 = call.addresses()
    with _engine(call) as engine:
        ctr, ep = engine.attach(call.netns, call.network, ifname=call.ifname, name=call.name(),
                                aliases=call.aliases(), ip=ip, ip6=ip6, mac=call.mac(),
                                sandbox=call.container_id)
        return spec.add_result(call.version, _attachment(engine, call, ctr, ep))


def _attachment(engine: "Engine", call: Call, ctr: "Container", ep: "Endpoint") -> Attachment:
    from netkit import drivers
    from netkit.kernel.session import open_rtnl
    net = engine.network(ep.network_id)
    rt = open_rtnl(ctr.netns)
    try:
        defaults = {gw for fam in (socket.AF_INET, socket.AF_INET6) for r in rt.route_dump(fam)
                    if r["dst"] is None and r["dst_len"] == 0 and (gw := r["gateway"])}
    finally:
        rt.close()
    return Attachment(ep.ifname, ep.mac, call.netns, ep.host_ifname, ep.ipv4, ep.ipv6,
                      net.gateway_v4, net.gateway_v6, net.gateway_v4 in defaults,
                      net.gateway_v6 in defaults,
                      net.user_defined and drivers.get(net.driver).has_dns)


def delete(call: Call) -> None:
    from netkit.errors import NotFound
    try:
        with _engine(call) as engine:
            engine.detach(None, call.network, sandbox=call.container_id)
    except NotFound:
        pass                    # no such node or network: nothing of it is attached


def check(call: Call) -> None:
    from netkit.attached import external, netns_file, netns_identity
    from netkit.errors import NotFound
    prev = call.config.get("prevResult")
    if not isinstance(prev, dict):
        raise CniError(spec.INVALID_CONFIG, "CHECK needs the ADD result as prevResult")
    with _engine(call) as engine:
        net = engine.network(call.network)
        ctr = engine.attached(sandbox=call.container_id)
        ep = next((e for e in ctr.endpoints if e.network_id == net.id), None) if ctr else None
        if ctr is None or ep is None:
            raise CniError(spec.UNKNOWN_CONTAINER, f"container {call.container_id} is not "
                           f"attached to network {net.name}")
        try:
            same_netns = list(netns_identity(netns_file(call.netns))) == external(ctr)["ino"]  # type: ignore[index]
        except NotFound:
            same_netns = False
        if not same_netns:
            raise CniError(spec.CHECK_FAILED, f"container {call.container_id} is attached "
                           f"through another network namespace than {call.netns}")
        if ep.ifname != call.ifname:
            raise CniError(spec.CHECK_FAILED, f"container {call.container_id} has interface "
                           f"{ep.ifname} on network {net.name}, not {call.ifname}")
        ours = {a for a in (ep.ipv4, ep.ipv6) if a}
        said = spec.result_addresses(prev, call.ifname, call.netns)
        if said != ours:
            raise CniError(spec.CHECK_FAILED, f"interface {call.ifname} has "
                           f"{', '.join(sorted(ours)) or 'no address'}, prevResult says "
                           f"{', '.join(sorted(said)) or 'none'}")
        missing = {a for a in ours if ":" not in a} - _kernel_addresses(ctr, call.ifname)
        if missing:
            raise CniError(spec.CHECK_FAILED, f"interface {call.ifname} of {call.netns} lacks "
                           f"{', '.join(sorted(missing))}")


def _kernel_addresses(ctr: "Container", ifname: str) -> set[str]:
    """The IPv4 addresses on `ifname` inside the sandbox (none when it is gone)."""
    from netkit.kernel.session import open_rtnl
    rt = open_rtnl(ctr.netns)
    try:
        return {f"{addr}/{plen}" for label, addr, plen in rt.addr_dump(socket.AF_INET)
                if label == ifname}
    finally:
        rt.close()


def status(call: Call) -> None:
    from netkit.errors import NotFound
    try:
        with _engine(call) as engine:
            engine.network(call.network)
    except NotFound as exc:
        raise CniError(spec.NOT_AVAILABLE, str(exc)) from None


def gc(call: Call) -> None:
    from netkit.attached import external
    from netkit.errors import NotFound
    keep = spec.valid_attachments(call.config)
    try:
        with _engine(call) as engine:
            net = engine.network(call.network)
            for ctr in engine.containers(all=True):
                ext = external(ctr)
                key = ext.get("sandbox") if ext else None
                for ep in ctr.endpoints:
                    if key and ep.network_id == net.id and (key, ep.ifname) not in keep:
                        engine.detach(None, net.id, sandbox=key)
    except NotFound:
        pass


# -- the process ----------------------------------------------------------------------------
def run(env: dict[str, str], stdin: str) -> tuple[int, dict[str, Any] | None]:
    """(exit code, what to print) for one invocation."""
    version = spec.SUPPORTED_VERSIONS[-1]
    try:
        call = spec.parse_call(env, stdin)
        version = call.version if call.version in spec.SUPPORTED_VERSIONS else version
        if call.command == "VERSION":
            return 0, spec.version_answer(call.config.get("cniVersion"))
        if call.command == "ADD":
            return 0, add(call)
        {"DEL": delete, "CHECK": check, "STATUS": status, "GC": gc}[call.command](call)
        return 0, None
    except Exception as exc:                # every failure is the spec's error object
        return 1, _error_of(exc).to_json(version)


def main() -> None:
    """The `netkit-cni` console script."""
    code, out = run(dict(os.environ), sys.stdin.read() if not sys.stdin.isatty() else "")
    if out is not None:
        sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
    raise SystemExit(code)


if __name__ == "__main__":
    main()
