"""`netkit events` and Engine.events() in a throwaway node: Docker's network and container
events, once each, in order, with Docker's fields; nothing for a rolled-back action;
filters; --since/--until; following events another process commits."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from netkit.errors import InvalidArgument, KernelError
from netkit.kernel.session import FaultPlan
from netkit.specs import ContainerSpec, NetworkSpec

pytestmark = pytest.mark.root
LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (\w+) (\w+) ([0-9a-f]{64})(?: \((.*)\))?")


def _since(eng, t0: float) -> list:
    return list(eng.events(since=t0, until=time.time()))


def _cli(node, netkit_dirs, *args: str, **kw) -> subprocess.Popen | subprocess.CompletedProcess:
    env = dict(os.environ, NETKIT_ROOT=netkit_dirs[0], NETKIT_RUN=netkit_dirs[1])
    env.pop("NETKIT_NODE", None)
    cmd = [sys.executable, "-m", "netkit", "--node", node.node_name, *args]
    if kw.pop("background", False):
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, **kw)


def test_each_event_once_in_order_with_docker_s_fields(node):
    eng = node
    t0 = time.time()
    net = eng.create_network(NetworkSpec(name="evnet"))
    ctr, _ = eng.run(ContainerSpec(name="ev1", network="evnet", command=("sleep", "300"),
                                   detach=True))
    eng.rename("ev1", "ev2")
    eng.kill("ev2")
    eng.wait("ev2")
    eng.restart("ev2")                 # exited: no stop, it starts again
    eng.stop("ev2", timeout=1)
    eng.remove_container("ev2")
    eng.remove_network("evnet")
    evs = _since(eng, t0)
    net_attrs = {"name": "evnet", "type": "bridge"}
    ep_attrs = {"container": ctr.id, "name": "evnet", "type": "bridge"}
    got = [(e.type, e.action, e.actor_id, e.attributes) for e in evs]
    assert got == [
        ("network", "create", net.id, net_attrs),
        ("container", "create", ctr.id, {"name": "ev1"}),
        ("network", "connect", net.id, ep_attrs),
        ("container", "start", ctr.id, {"name": "ev1"}),
        ("container", "rename", ctr.id, {"name": "ev2", "oldName": "/ev1"}),
        ("container", "kill", ctr.id, {"name": "ev2", "signal": "9"}),
        ("container", "die", ctr.id, {"name": "ev2", "exitCode": "137"}),
        ("network", "disconnect", net.id, ep_attrs),
        ("network", "connect", net.id, ep_attrs),
        ("container", "start", ctr.id, {"name": "ev2"}),
        ("container", "restart", ctr.id, {"name": "ev2"}),
        ("container", "die", ctr.id, {"name": "ev2", "exitCode": "137"}),
        ("network", "disconnect", net.id, ep_attrs),
        ("container", "stop", ctr.id, {"name": "ev2"}),
        ("container", "destroy", ctr.id, {"name": "ev2"}),
        ("network", "destroy", net.id, net_attrs),
    ]
    stamps = [e.time_nano for e in evs]
    assert stamps == sorted(stamps) and len({e.seq for e in evs}) == len(evs)
    assert all(t0 * 1e9 <= s <= time.time() * 1e9 for s in stamps)
    doc = evs[2].to_json()
    assert doc == {"Type": "network", "Action": "connect",
                   "Actor": {"ID": net.id, "Attributes": ep_attrs}, "scope": "local",
                   "time": evs[2].time_nano // 10**9, "timeNano": evs[2].time_nano}
    m = LINE.fullmatch(evs[2].line())
    assert m and m.groups() == ("network", "connect", net.id,
                                f"container={ctr.id}, name=evnet, type=bridge")

    # filters: the same key ORs, different keys AND; container/network by id or name prefix
    assert [e.action for e in eng.events(t0, time.time(), {"type": ["network"],
                                                            "event": ["create", "destroy"]})] \
        == ["create", "destroy"]
    assert [e.action for e in eng.events(t0, time.time(), ["container=ev2", "event=die"])] \
        == ["die", "die"]
    assert [e.action for e in eng.events(t0, time.time(), ["network=evn"])] \
        == [a for t, a, *_ in got if t == "network"]
    assert [e.action for e in eng.events(t0, time.time(), ["container=" + ctr.id[:12],
                                                            "type=container"])][:2] \
        == ["create", "start"]
    with pytest.raises(InvalidArgument, match="^invalid filter 'image'$"):
        eng.events(filters=["image=x"])
    with pytest.raises(InvalidArgument, match="^invalid filter 'type=volume'$"):
        eng.events(filters={"type": ["volume"]})
    # --since / --until bound the replay
    middle = evs[6].time_nano
    # (exact nanoseconds as text: a float of seconds is ~200 ns coarse here)
    assert [e.seq for e in eng.events(since=f"{middle // 10**9}.{middle % 10**9:09d}",
                                      until=time.time())] \
        == [e.seq for e in evs[6:]]
    assert [e.seq for e in eng.events(since=t0, until=f"{middle // 10**9}.{middle % 10**9:09d}")] \
        == [e.seq for e in evs[:7]]
    assert list(eng.events(since="10m", until="9m")) == []


def test_a_rolled_back_action_emits_nothing(node):
    eng = node
    t0 = time.time()
    eng.faults = FaultPlan(fail_at=2)
    try:
        with pytest.raises(KernelError):
            eng.create_network(NetworkSpec(name="rolled"))
    finally:
        eng.faults = None
    eng.create_network(NetworkSpec(name="okay"))
    eng.faults = FaultPlan(fail_at=3)
    try:
        with pytest.raises(KernelError):
            eng.run(ContainerSpec(name="rolledc", network="okay", command=("sleep", "300"),
                                  detach=True))
    finally:
        eng.faults = None
    assert [(e.action, e.attributes["name"]) for e in _since(eng, t0)] == [("create", "okay")]
    eng.remove_network("okay")


def test_follow_receives_events_other_processes_commit(node, netkit_dirs):
    eng = node
    follow = eng.events(filters={"type": ["network"]})      # from now on, for ever
    _cli(node, netkit_dirs, "network", "create", "fol1", check=True)
    ev = next(follow)
    assert (ev.type, ev.action, ev.attributes) == ("network", "create",
                                                    {"name": "fol1", "type": "bridge"})
    follow.close()

    proc = _cli(node, netkit_dirs, "events", "--filter", "type=network", "--format",
                "{{.Action}} {{.Actor.Attributes.name}} {{json .Actor.Attributes}}",
                background=True)
    try:
        time.sleep(1.5)                                       # it took its starting point
        _cli(node, netkit_dirs, "network", "rm", "fol1", check=True)
        line = proc.stdout.readline()
        assert line == 'destroy fol1 {"name":"fol1","type":"bridge"}\n'
        proc.send_signal(signal.SIGINT)                       # Ctrl-C ends it quietly
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == 130 and err == "" and out == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    done = _cli(node, netkit_dirs, "events", "--since", "1h", "--until", "0s", "--format", "json")
    assert done.returncode == 0
    docs = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(d["Type"], d["Action"], d["Actor"]["Attributes"].get("name")) for d in docs][-2:] \
        == [("network", "create", "fol1"), ("network", "destroy", "fol1")]
    bad = _cli(node, netkit_dirs, "events", "--since", "yesterday")
    assert bad.returncode == 1
    assert bad.stderr == 'Error: failed to parse value as time or duration: "yesterday"\n'
