"""The simulated hosts of a lab (`x-netkit`): its LANs, nodes and swarm, made by `up`
(before any network or container) and removed by `down` (after them).

What `up` makes is listed in the lab's record as it is made, so `down`
removes exactly that, even after a failed `up`; a LAN, node or swarm
member that already exists is used only when marked `external: true`
(then left alone).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from netkit.errors import Conflict, NotFound

if TYPE_CHECKING:
    from netkit.labs.runner import Lab


def up_lans(lab: "Lab", rec: dict[str, Any]) -> None:
    """x-netkit.lans on the real host's registry."""
    p = lab._require_project()
    if not p.lans:
        return
    existing = {lan.name for lan in lab.target.lans()}
    for lan in p.lans.values():
        if lan.name in existing:
            if not lan.external and lan.name not in rec["lans"]:
                raise Conflict(f"lan {lan.name} already exists and was not created by lab {p.name}: "
                               "remove it, or mark it external: true to use it")
            lab._emit("Lan", lan.name, "Exists" if lan.external else "Running")
            continue
        if lan.external:
            raise NotFound(f"lan {lan.name} declared as external, but could not be found")
        lab._emit("Lan", lan.name, "Creating", done=False)
        lab.target.create_lan(lan.name, lan.subnet, lan.gateway)
        rec["lans"].append(lan.name)
        lab._save_record(rec)
        lab._emit("Lan", lan.name, "Created", lan.subnet)


def up_nodes(lab: "Lab", rec: dict[str, Any]) -> None:
    """x-netkit.nodes, each on its LAN."""
    p = lab._require_project()
    if not p.nodes:
        return
    existing = lab._node_names()
    for node in p.nodes.values():
        if node.name in existing:
            if not node.external and node.name not in rec["nodes"]:
                raise Conflict(f"node {node.name} already exists and was not created by lab {p.name}: "
                               "remove it, or mark it external: true to use it")
            lab._emit("Node", node.name, "Exists" if node.external else "Running")
            continue
        if node.external:
            raise NotFound(f"node {node.name} declared as external, but could not be found")
        lab._emit("Node", node.name, "Creating", done=False)
        lab.target.create_node(node.name, lan=node.lan, ip=node.ip, gateway=node.gateway, dns=node.dns)
        rec["nodes"].append(node.name)
        lab._save_record(rec)
        lab._emit("Node", node.name, "Created", node.ip or "")


def up_swarm(lab: "Lab", rec: dict[str, Any]) -> None:
    """x-netkit.swarm: `swarm init` on the manager, `swarm join` on each worker (nodes
    already in the swarm are kept; one in another role or cluster is an error)."""
    p = lab._require_project()
    if not p.swarm:
        return
    manager, workers = p.swarm["manager"], p.swarm["workers"]
    roles = lab.target.swarm_roles()
    for node, want in [(manager, "manager")] + [(w, "worker") for w in workers]:
        if node not in roles:
            raise NotFound(f"x-netkit.swarm: node {node} not found")
        have = roles[node]
        if have:
            if have != want:
                raise Conflict(f"x-netkit.swarm: node {node} is already a swarm {have}, "
                               f"not a {want}: `netkit --node {node} swarm leave -f` first")
            if want == "worker" and not same_cluster(lab, node, manager):
                raise Conflict(f"x-netkit.swarm: node {node} is in another swarm than {manager}")
            lab._emit("Swarm", node, "Running", want)
            continue
        lab._emit("Swarm", node, "Joining" if want == "worker" else "Initializing", done=False)
        eng = lab.engine(node)
        if want == "manager":
            eng.swarm_init()
        else:
            eng.swarm_join(manager)
        rec["swarm"].append(node)
        lab._save_record(rec)
        lab._emit("Swarm", node, "Joined" if want == "worker" else "Initialized", want)


def up_stacks(lab: "Lab", rec: dict[str, Any]) -> None:
    """x-netkit.stacks: `stack deploy -c FILE... NAME` on the swarm's manager (again on each
    `up`: a deployed stack is updated in place). Each line Docker prints is an event."""
    p = lab._require_project()
    if not p.stacks:
        return
    eng = lab.engine(p.swarm["manager"])
    for name, files in p.stacks.items():
        lab._emit("Stack", name, "Deploying", p.swarm["manager"], done=False)
        if name not in rec["stacks"]:
            rec["stacks"].append(name)
            lab._save_record(rec)
        eng.stack_deploy(name, list(files), out=lambda line: lab._emit("Stack", name, line),
                         warn=lambda w: lab._emit("Warning", "", "", w))
        lab._emit("Stack", name, "Deployed", p.swarm["manager"])


def down_stacks(lab: "Lab", rec: dict[str, Any]) -> None:
    """`stack rm` of each stack this lab deployed, on a manager of the swarm it made."""
    if not rec["stacks"]:
        return
    manager = acting_manager(lab, rec)
    if manager is not None:
        eng = lab.engine(manager)
        for name in reversed(rec["stacks"]):
            lab._emit("Stack", name, "Removing", manager, done=False)
            eng.stack_remove(name, out=lambda line: lab._emit("Stack", name, line))
            lab._emit("Stack", name, "Removed", manager)
    rec["stacks"] = []
    lab._save_record(rec)


def acting_manager(lab: "Lab", rec: dict[str, Any]) -> str | None:
    """A manager of the swarm the lab made (the file's manager first), None without one."""
    roles = lab.target.swarm_roles()
    named = (lab.project.swarm or {}).get("manager") if lab.project else None
    return next((n for n in [named, *rec["swarm"]] if n and roles.get(n) == "manager"), None)


def same_cluster(lab: "Lab", a: str, b: str) -> bool:
    """Are nodes a and b members of one swarm?"""
    from netkit.paths import NodePaths
    from netkit.swarm import read_cluster_id
    ids = {read_cluster_id(NodePaths.of(n, lab.target.root, lab.target.run_root).root) for n in (a, b)}
    return len(ids) == 1


def down_swarm(lab: "Lab", rec: dict[str, Any]) -> None:
    """Workers this lab joined leave, then the manager it made (the last member to leave
    deletes the cluster's files)."""
    if not rec["swarm"]:
        return
    existing = lab._node_names()
    roles = lab.target.swarm_roles()
    for name in reversed(rec["swarm"]):
        if name not in existing or not roles.get(name):
            continue
        lab._emit("Swarm", name, "Leaving", done=False)
        lab.engine(name).swarm_leave(force=True)
        lab._emit("Swarm", name, "Left")
    rec["swarm"] = []
    lab._save_record(rec)


def down_nodes_and_lans(lab: "Lab", rec: dict[str, Any]) -> None:
    """The nodes, then the LANs, this lab created, newest first."""
    existing = lab._node_names()
    for name in reversed(rec["nodes"]):
        eng = lab._engines.pop(name, None)
        if eng is not None and eng is not lab.target:
            eng.close()
        if name in existing:
            lab._emit("Node", name, "Removing", done=False)
            lab.target.remove_node(name, force=True)
            lab._emit("Node", name, "Removed")
    lans = {lan.name for lan in lab.target.lans()} if rec["lans"] else set()
    for name in reversed(rec["lans"]):
        if name in lans:
            lab._emit("Lan", name, "Removing", done=False)
            lab.target.remove_lan(name)
            lab._emit("Lan", name, "Removed")
