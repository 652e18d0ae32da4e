"""IPAM allocations per second and memory, in a /24, a /16 and a /8.

Uses the real store (SQLite, one BEGIN IMMEDIATE per allocation, as `run`
does) and the real allocator; no kernel work. Cost must not depend on the
subnet's size: there is no per-address table of the subnet, only the
addresses handed out (an indexed table) and a first-free hint.

    python -m bench.ipam [--count 5000]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
import tracemalloc


def bench(subnet: str, count: int, root: str) -> str:
    from netkit import ipam
    from netkit.model import Network
    from netkit.store import Store
    store = Store(os.path.join(root, f"ipam-{subnet.replace('/', '_')}.db"))
    cfgs = ipam.build_ipam((subnet,), (), (), {})
    net = Network(id="n" * 64, name="bench", driver="bridge", ipam=cfgs)
    with store.transaction() as tx:
        tx.insert_network(net)
        for value, owner in ipam.reserved(cfgs[0]).items():
            tx.hold_address(net.id, 4, ipam.to_key(value, 4), owner)
    pool = ipam.pool_of(cfgs[0])
    tracemalloc.start()
    t0 = time.perf_counter()
    for i in range(count):
        with store.transaction() as tx:
            hint_key = tx.pool_hint(net.id, 0)
            hint = ipam.from_key(hint_key) if hint_key else None
            value = ipam.first_free(pool, lambda s: map(ipam.from_key, tx.taken_from(net.id, 4, ipam.to_key(s, 4))),
                                    hint)
            tx.hold_address(net.id, 4, ipam.to_key(value, 4), f"ep{i}")
            tx.set_pool_hint(net.id, 0, ipam.to_key(value + 1, 4))
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    size = os.path.getsize(store.path) + sum(os.path.getsize(store.path + s) for s in ("-wal",)
                                               if os.path.exists(store.path + s))
    store.close()
    return (f"RESULT ipam subnet={subnet} allocations={count} per_s={count / elapsed:.0f} "
            f"us_each={elapsed / count * 1e6:.1f} py_peak_kib={peak / 1024:.0f} db_kib={size / 1024:.0f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=5000)
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="netkit-ipam.")
    try:
        # /24 holds 253 dynamic addresses: allocate all of them there
        for subnet, n in (("10.1.2.0/24", 253), ("10.1.0.0/16", args.count), ("10.0.0.0/8", args.count)):
            print(bench(subnet, n, root), flush=True)
        print(f"max_rss_kib={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
