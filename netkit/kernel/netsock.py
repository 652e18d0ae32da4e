"""HTTP sessions whose connections are opened inside a network namespace.

A socket keeps the netns it was created in, so a `requests` session whose
connections are made by the netns worker thread (netkit/kernel/netns.py
`run_in`) talks from inside that netns while the calling thread stays where
it is. The engine of a simulated node runs in the host's root netns but
reaches its cluster store (etcd on the node's LAN) only from the node's
netns: `session(node.netns)` is how (netkit/store/etcd.py).

The session never reads proxy settings from the environment (trust_env is
off): a proxy would be a connection from the host's network.
"""

from __future__ import annotations

import socket
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

from netkit.kernel import netns as kns


class NetnsConnection(HTTPConnection):
    """An HTTP connection whose socket is made (and its name resolved) inside `netns`."""

    netns: str | None = None

    def _new_conn(self) -> socket.socket:
        host, port, ns = self._dns_host, self.port, self.netns

        def make() -> tuple[socket.socket, Any]:
            family, kind, proto, _, addr = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
            return socket.socket(family, kind, proto), addr

        try:
            sock, addr = make() if ns is None else kns.run_in(ns, make)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(self.timeout if isinstance(self.timeout, (int, float)) else None)
            sock.connect(addr)
        except socket.timeout as exc:
            sock.close()
            raise ConnectTimeoutError(self, f"connection to {host} timed out") from exc
        except OSError as exc:
            sock.close()
            raise NewConnectionError(self, f"failed to establish a new connection: {exc}") from exc
        return sock


class _NetnsAdapter(HTTPAdapter):
    def __init__(self, netns: str | None) -> None:
        self._conn_cls = type("NetnsConnection", (NetnsConnection,), {"netns": netns})
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        pool_cls = type("NetnsPool", (HTTPConnectionPool,), {"ConnectionCls": self._conn_cls})
        self.poolmanager.pool_classes_by_scheme = {"http": pool_cls}


def session(netns: str | None) -> requests.Session:
    """A requests session for plain http whose sockets live in `netns` (None: the caller's
    netns). https is not mounted: it raises InvalidSchema rather than leave the netns."""
    s = requests.Session()
    s.trust_env = False
    for prefix in list(s.adapters):
        del s.adapters[prefix]
    s.mount("http://", _NetnsAdapter(netns))
    return s
