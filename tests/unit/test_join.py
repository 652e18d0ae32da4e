"""Joining over the network (netkit/agent/join.py): tokens, addresses, and one request
through a JoinListener on loopback (the kernel tests join real nodes over a LAN)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from netkit.agent import join
from netkit.errors import Conflict, InvalidArgument, NetkitError


def test_tokens_have_dockers_shape_and_name_their_cluster():
    a1, a2, b = join.new_token("c1"), join.new_token("c1"), join.new_token("c2")
    for t in (a1, a2, b):
        assert join.TOKEN_RE.match(t) and len(t) == len("SWMTKN-1-") + 50 + 1 + 25
        join.check_token(t)
    assert a1 != a2 and a1[:59] == a2[:59] != b[:59]      # same digest, fresh secret
    for bad in ("", "SWMTKN-1-x", a1.upper(), a1 + "0", a1.replace("SWMTKN-1", "SWMTKN-2")):
        with pytest.raises(InvalidArgument, match="^invalid join token$"):
            join.check_token(bad)


def test_addresses():
    assert join.parse_address("10.0.0.1") == ("10.0.0.1", 2377)
    assert join.parse_address("10.0.0.1:4000") == ("10.0.0.1", 4000)
    for bad in ("", "host:2377", "10.0.0.1:0", "10.0.0.1:70000", "10.0.0.1:x", "10.0.0.256"):
        with pytest.raises(InvalidArgument, match="invalid address"):
            join.parse_address(bad)


def test_one_request_through_a_listener_on_loopback():
    seen = []

    async def handler(msg: dict) -> dict:
        seen.append(msg)
        if msg["node"] == "dup":
            raise Conflict("a node named dup is already a member of this swarm")
        return {"cluster": "c1", "store": "sqlite", "role": "worker"}

    import socket
    with socket.socket() as s:               # a free port on loopback
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    loop = asyncio.new_event_loop()
    listener = join.JoinListener(handler)
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(listener.listen(f"127.0.0.1:{port}"))
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        assert ready.wait(5) and listener.address == f"127.0.0.1:{port}"
        reply = join.request(None, f"127.0.0.1:{port}", {"op": "join", "node": "b", "token": "t"})
        assert reply == {"ok": True, "cluster": "c1", "store": "sqlite", "role": "worker"}
        with pytest.raises(join.JoinRefused, match="already a member"):
            join.request(None, f"127.0.0.1:{port}", {"op": "join", "node": "dup"})
        assert [m["node"] for m in seen] == ["b", "dup"]
    finally:
        asyncio.run_coroutine_threadsafe(listener.close(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
    with pytest.raises(NetkitError, match="could not reach the swarm manager"):
        join.request(None, f"127.0.0.1:{port}", {"op": "join"}, timeout=0.3)
