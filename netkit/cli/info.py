"""What `netkit info` shows, as Docker's `docker info` does: the data (Docker's field names,
for ``--format``) and its text. The command itself is in `system`."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from netkit import __version__

if TYPE_CHECKING:
    from netkit.engine import Engine

_SIZE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def bytes_size(size: float) -> str:
    """docker's units.BytesSize: ``8201687040`` -> ``7.638GiB`` (4 significant digits)."""
    unit = 0
    while size >= 1024 and unit < len(_SIZE_UNITS) - 1:
        size /= 1024
        unit += 1
    return f"{size:.4g}{_SIZE_UNITS[unit]}"


def operating_system(path: str = "/etc/os-release") -> str:
    """PRETTY_NAME of os-release, as Docker's Operating System line; "" if unknown."""
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.strip().partition("=")
                if key == "PRETTY_NAME":
                    return value.strip().strip('"')
    except OSError:
        pass
    return ""


def mem_total(path: str = "/proc/meminfo") -> int:
    """Total memory in bytes (0 if unknown)."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def swarm_fields(sw: dict[str, Any], node: str) -> dict[str, Any]:
    """Engine.swarm_info() under Docker's ``Swarm`` keys (`{{.Swarm.LocalNodeState}}`)."""
    active = sw["state"] != "inactive"
    return {"LocalNodeState": sw["state"], "NodeID": node if active else "",
            "NodeAddr": sw.get("advertise", "").split(":")[0],
            "ControlAvailable": sw.get("role") == "manager", "Error": sw.get("error") or "",
            "Nodes": sw.get("nodes", 0), "Managers": sw.get("managers", 0),
            "Cluster": {"ID": sw.get("cluster", "")}, "ClusterStore": sw.get("store", "")}


def info_data(eng: "Engine", sw: dict[str, Any], context: str | None,
              debug: bool) -> dict[str, Any]:
    """What `docker info --format '{{json .}}'` prints, with netkit's fields (`sw`: the
    engine's swarm_info())."""
    from netkit.drivers import builtin_names
    from netkit.cli.render import docker_state
    states = [docker_state(c) for c in eng.containers(all=True)]
    running = sum(s in ("running", "restarting") for s in states)
    uname = os.uname()
    return {
        "ID": eng.node_name or uname.nodename, "Containers": len(states),
        "ContainersRunning": running, "ContainersPaused": 0, "ContainersStopped": len(states) - running,
        "Networks": len(eng.networks()), "ServerVersion": __version__,
        "Plugins": {"Network": builtin_names()}, "KernelVersion": uname.release,
        "OperatingSystem": operating_system(), "OSType": "linux", "Architecture": uname.machine,
        "NCPU": os.cpu_count() or 0, "MemTotal": mem_total(), "Name": eng.node_name or uname.nodename,
        "NetkitRootDir": eng.paths.root, "Debug": debug,
        "ClientInfo": {"Version": __version__, "Context": context or "default", "Debug": debug},
        "Swarm": swarm_fields(sw, eng.node_name),
    }


def info_text(data: dict[str, Any], sw: dict[str, Any]) -> list[str]:
    """`docker info`'s layout: Client, then Server; the swarm section last, unindented."""
    from netkit.cli.version import tab_lines
    c = data["ClientInfo"]
    lines = ["Client:"] + tab_lines([(" Version:", c["Version"]), (" Context:", c["Context"]),
                                     (" Debug Mode:", str(c["Debug"]).lower())])
    lines += ["", "Server:",
              f" Containers: {data['Containers']}", f"  Running: {data['ContainersRunning']}",
              f"  Paused: {data['ContainersPaused']}", f"  Stopped: {data['ContainersStopped']}",
              f" Networks: {data['Networks']}", f" Server Version: {data['ServerVersion']}",
              " Plugins:", f"  Network: {' '.join(data['Plugins']['Network'])}",
              f" Kernel Version: {data['KernelVersion']}",
              f" Operating System: {data['OperatingSystem']}", f" OSType: {data['OSType']}",
              f" Architecture: {data['Architecture']}", f" CPUs: {data['NCPU']}",
              f" Total Memory: {bytes_size(data['MemTotal'])}", f" Name: {data['Name']}",
              f" ID: {data['ID']}", f" Netkit Root Dir: {data['NetkitRootDir']}",
              f" Debug Mode: {str(data['Debug']).lower()}"]
    return lines + swarm_text(sw, data["Swarm"]["NodeID"])


def swarm_text(sw: dict[str, Any], node: str) -> list[str]:
    """The swarm section: which cluster store, its endpoints and their health."""
    out = [f"Swarm: {sw['state']}"]
    if sw["state"] == "inactive":
        return out
    if sw.get("error"):
        out.append(f" Error: {sw['error']}")
    out.append(f" NodeID: {node}")
    if "role" in sw:
        out.append(f" Is Manager: {str(sw['role'] == 'manager').lower()}")
    out.append(f" ClusterID: {sw['cluster']}")
    if "nodes" in sw:
        out += [f" Managers: {sw['managers']}", f" Nodes: {sw['nodes']}"]
        if sw["down"]:
            out.append(f" Nodes Down: {', '.join(sw['down'])}")
    out.append(f" Node Address: {sw['advertise'].split(':')[0]}")
    store = sw["store"]
    out.append(f" Cluster Store: {'sqlite' if store == 'sqlite' else 'etcd'}"
               + ("" if store == "sqlite" else f" ({store})"))
    for ep in sw.get("endpoints", []):
        state = "healthy" if ep["healthy"] else "unhealthy"
        detail = "" if ep["healthy"] or not ep["detail"] else f" ({ep['detail']})"
        out.append(f"  {ep['endpoint']}: {state}{detail}")
    return out
