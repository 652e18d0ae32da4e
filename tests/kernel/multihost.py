"""A swarm of simulated nodes that share no files: private roots, the cluster in etcd.

`etcd_swarm` makes a LAN, a three-member etcd cluster inside it (netkit.testing.etcd:
one simulated node per member), three nodes a, b, c with state and run roots of their
own, `swarm init --cluster-store etcd://...` on a and a join with a token over the LAN
on b and c (the manager's agent admits them); all removed afterwards, also on failure.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os


def cluster_rows(store) -> dict:
    """What a cluster store holds, through the ClusterTx interface (any backend):
    members, networks with their VNIs, held addresses with their owners, endpoints."""
    c = store.read()
    vnis = c.vnis()
    addresses = sorted((n.id, family, key, c.address_owner(n.id, family, key))
                       for n in c.networks() for family in (4, 6)
                       for key in c.taken_from(n.id, family, ""))
    return {"members": sorted(c.members(), key=repr),
            "networks": sorted(((n, vnis.get(n.id)) for n in c.networks()), key=repr),
            "addresses": addresses,
            "endpoints": sorted(c.endpoints(), key=repr)}


def shared_files(netkit_dirs, names) -> list[str]:
    """Files of the nodes `names` or of any cluster under the shared NETKIT_ROOT/NETKIT_RUN
    (there must be none when every node has roots of its own and the cluster is in etcd)."""
    out = []
    root, run = netkit_dirs
    cluster = os.path.join(root, "cluster")
    if os.path.isdir(cluster):
        out += [os.path.join(cluster, f) for f in os.listdir(cluster)]
    for base in (root, run):
        out += [os.path.join(base, "nodes", n) for n in names
                if os.path.exists(os.path.join(base, "nodes", n))]
    return out


@contextlib.contextmanager
def etcd_swarm(host, netkit_dirs, base_dir: str, subnet: str, ips: dict[str, str]):
    """Yields {"engines", "names", "lan", "cid", "etcd", "roots"}; see the module's doc."""
    from netkit.engine import Engine
    from netkit.testing.etcd import EtcdCluster, remove_swarm
    from tests.conftest import unique
    root, run = netkit_dirs
    lan = unique("l")
    names = {k: unique(k) for k in ips}
    roots = {k: (os.path.join(base_dir, names[k], "state"), os.path.join(base_dir, names[k], "run"))
             for k in ips}
    engines: dict = {}
    etcd = None
    try:
        host.create_lan(lan, subnet, gateway=str(ipaddress.ip_network(subnet)[1]))
        etcd = EtcdCluster(host, lan, [unique("e") for _ in range(3)],
                           data_root=os.path.join(base_dir, "etcd"))
        etcd.start()
        for k, addr in ips.items():
            host.create_node(names[k], lan=lan, ip=f"{addr}/24", state_dir=roots[k][0],
                             run_dir=roots[k][1])
            engines[k] = Engine(names[k], root=root, run=run)
        first, *others = list(ips)
        cid = engines[first].swarm_init(cluster_store=etcd.url)
        token = engines[first].swarm_join_token("worker")
        for k in others:
            engines[k].swarm_join(token=token, remote=ips[first])
        yield {"engines": engines, "names": names, "lan": lan, "cid": cid, "etcd": etcd,
               "roots": roots}
    finally:
        remove_swarm(host, engines.values(), names.values(), etcd, lan)
