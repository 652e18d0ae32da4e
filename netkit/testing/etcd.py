"""An etcd cluster inside the simulated network, for tests and benchmarks.

Each member is a simulated node on a LAN the caller made
(`engine.create_node(name, lan=...)`); etcd (the Debian package's
/usr/bin/etcd) runs inside that node's netns, started with `nsenter --net`
(it execs, so the pid we keep is etcd's), listening for clients (2379) and
peers (2380) on the node's LAN address only. Nothing listens or connects on
the host's network. Data directories live under `data_root/<member>`;
`stop_member` kills one member's etcd and `start_member` starts it again on
the same data directory (it rejoins as the member it was).

`close()` kills every etcd it started, removes the member nodes and the data,
and is safe to call after any failure (also after a failed `start()`).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
from typing import TYPE_CHECKING, Iterable, Sequence

from netkit.errors import InternalError, InvalidArgument

if TYPE_CHECKING:
    from netkit.engine import Engine

CLIENT_PORT, PEER_PORT = 2379, 2380
ETCD = "/usr/bin/etcd"
START_TIMEOUT = 60.0


class EtcdCluster:
    """`names` members of one etcd cluster, one simulated node each, on LAN `lan`."""

    def __init__(self, engine: "Engine", lan: str, names: Sequence[str], *, data_root: str) -> None:
        if not names:
            raise InvalidArgument("an etcd cluster needs at least one member")
        self.engine = engine
        self.lan = lan
        self.names = list(names)
        self.data_root = data_root
        self.token = "netkit-" + secrets.token_hex(4)
        self.ips: dict[str, str] = {}
        self.netns: dict[str, str] = {}
        self.procs: dict[str, subprocess.Popen] = {}
        self._nodes: list[str] = []

    # -- addresses ---------------------------------------------------------------------
    def _pick_ips(self) -> None:
        import netaddr
        the_lan = next((x for x in self.engine.lans() if x.name == self.lan), None)
        if the_lan is None:
            raise InvalidArgument(f"lan {self.lan} not found")
        net = netaddr.IPNetwork(the_lan.subnet)
        used = {the_lan.gateway} | {n.ip.split("/")[0] for n in self.engine.nodes()
                                    if n.lan == self.lan and n.ip}
        free = (str(ip) for ip in reversed(list(net.iter_hosts())[-64:]) if str(ip) not in used)
        for name in self.names:
            self.ips[name] = f"{next(free)}/{net.prefixlen}"

    def ip(self, name: str) -> str:
        return self.ips[name].split("/")[0]

    def endpoints(self) -> list[str]:
        """The members' client URLs, in member order: ["http://ip:2379", ...]."""
        return [f"http://{self.ip(n)}:{CLIENT_PORT}" for n in self.names]

    @property
    def url(self) -> str:
        """The cluster store URL netkit takes: "etcd://ip:2379,ip:2379,..."."""
        return "etcd://" + ",".join(f"{self.ip(n)}:{CLIENT_PORT}" for n in self.names)

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Make the member nodes, start every member, wait until all are healthy (bounded)."""
        self._pick_ips()
        os.makedirs(self.data_root, exist_ok=True)
        for name in self.names:
            node = self.engine.create_node(name, lan=self.lan, ip=self.ips[name])
            self._nodes.append(name)
            assert node.netns is not None
            self.netns[name] = node.netns
        for name in self.names:
            self._spawn(name, "new")
        self.wait_healthy(self.names)

    def _spawn(self, name: str, state: str) -> None:
        ip = self.ip(name)
        cluster = ",".join(f"{n}=http://{self.ip(n)}:{PEER_PORT}" for n in self.names)
        argv = ["nsenter", f"--net=/run/netns/{self.netns[name]}", ETCD,
                "--name", name, "--data-dir", os.path.join(self.data_root, name),
                "--listen-client-urls", f"http://{ip}:{CLIENT_PORT}",
                "--advertise-client-urls", f"http://{ip}:{CLIENT_PORT}",
                "--listen-peer-urls", f"http://{ip}:{PEER_PORT}",
                "--initial-advertise-peer-urls", f"http://{ip}:{PEER_PORT}",
                "--initial-cluster", cluster, "--initial-cluster-state", state,
                "--initial-cluster-token", self.token,
                "--heartbeat-interval", "100", "--election-timeout", "1000",
                "--logger", "zap", "--log-level", "warn"]
        log = open(os.path.join(self.data_root, f"{name}.log"), "ab")
        try:
            self.procs[name] = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                                             "ETCD_UNSUPPORTED_ARCH": os.uname().machine})
        finally:
            log.close()

    def member_health(self, name: str, timeout: float = 2.0) -> bool:
        """The member answers /health with true (asked from inside its own node's netns)."""
        from netkit.kernel.netsock import session
        try:
            with session(self.netns[name]) as s:
                r = s.get(f"http://{self.ip(name)}:{CLIENT_PORT}/health", timeout=timeout)
                return r.status_code == 200 and r.json().get("health") == "true"
        except Exception:
            return False

    def wait_healthy(self, names: Sequence[str], timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        pending = list(names)
        while pending:
            for name in list(pending):
                proc = self.procs.get(name)
                if proc is not None and proc.poll() is not None:
                    raise InternalError(f"etcd member {name} exited ({proc.returncode}): "
                                        f"{self._log_tail(name)}")
                if self.member_health(name):
                    pending.remove(name)
            if pending:
                if time.monotonic() > deadline:
                    raise InternalError(f"etcd members {', '.join(pending)} not healthy after "
                                        f"{timeout:.0f} s: {self._log_tail(pending[0])}")
                time.sleep(0.2)

    def _log_tail(self, name: str) -> str:
        try:
            with open(os.path.join(self.data_root, f"{name}.log"), "rb") as f:
                return f.read()[-600:].decode(errors="replace").replace("\n", " | ")
        except OSError:
            return "(no log)"

    def stop_member(self, name: str) -> None:
        """Kill one member's etcd (SIGKILL: as a crash or power loss would)."""
        proc = self.procs.pop(name, None)
        if proc is not None:
            _kill(proc)

    def start_member(self, name: str, *, wait: bool = True) -> None:
        """Start a stopped member again on its data directory; `wait`: until it is healthy
        (which needs a majority of members running)."""
        if name in self.procs:
            return
        self._spawn(name, "existing")
        if wait:
            self.wait_healthy([name])

    def close(self) -> None:
        """Kill every etcd started here, remove the member nodes and the data directories."""
        for name in list(self.procs):
            _kill(self.procs.pop(name))
        for name in reversed(self._nodes):
            try:
                self.engine.remove_node(name, force=True)
            except Exception:
                pass
        self._nodes.clear()
        shutil.rmtree(self.data_root, ignore_errors=True)

    def __enter__(self) -> "EtcdCluster":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def remove_swarm(host: "Engine", engines: "Iterable[Engine]", nodes: "Iterable[str]",
                 etcd: "EtcdCluster | None", lan: str) -> None:
    """Tear down a simulated swarm on etcd: close its engines, remove its nodes (last made
    first), the etcd cluster and the LAN; whatever exists of them (for `finally` blocks)."""
    for e in engines:
        e.close()
    for n in reversed(list(nodes)):
        if host.host_store.read().node(n) is not None:
            host.remove_node(n, force=True)
    if etcd is not None:
        etcd.close()
    if host.host_store.read().lan(lan) is not None:
        host.remove_lan(lan)


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
