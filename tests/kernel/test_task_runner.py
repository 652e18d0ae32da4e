"""The node side of swarm services (netkit/services/runner.py) on two simulated nodes.

Node a is the manager, b a worker, on the SQLite cluster store; an attachable
overlay `tnet` spans them. The tests play the managers: they write Service
and Task objects into the cluster store directly and watch each node's agent
run the tasks assigned to it -- containers, states, addresses, DNS names and
real TCP through the overlay.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time

import pytest

from netkit.agent import client as agent_client
from netkit.ids import now
from netkit.lifecycle import RestartPolicy
from netkit.planning import TASK_LABEL
from netkit.services import model, runner
from netkit.specs import ContainerSpec, NetworkSpec
from tests.kernel.helpers import (PROBE, count_kernel_calls, probe, swarm_of_three,
                                  wait_converged)

pytestmark = pytest.mark.root
IPS = {"a": "192.168.78.10", "b": "192.168.78.11"}
SERVE = (*PROBE, "serve", "tcp", "8080")          # exits 0 on SIGTERM
SLEEP = ("sleep", "600")                          # pid 1: ignores SIGTERM


@pytest.fixture(scope="module")
def sw(host, netkit_dirs):
    """A LAN, nodes a (manager) and b (worker) in a swarm, the overlay tnet and a plain
    client container on a; all removed afterwards, also on failure."""
    with swarm_of_three(host, netkit_dirs, "192.168.78.0/24", IPS) as (engines, names, _, cid):
        net = engines["a"].create_network(NetworkSpec("tnet", driver="overlay",
                                                      subnets=("10.0.19.0/24",),
                                                      attachable=True))
        engines["a"].run(ContainerSpec(name="client", network="tnet", detach=True,
                                       command=SLEEP))
        yield {**engines, "names": names, "cid": cid, "net": net}
        for k in IPS:                       # no step failed (tick.py logs and retries those)
            with open(agent_client.path(engines[k].paths.run, "agent.log")) as f:
                text = f.read()
            assert "runner:step failed" not in text and "Traceback" not in text, text[-3000:]


# -- playing the managers ---------------------------------------------------------------
def store(sw):
    return sw["a"].cluster.store()


def new_service(sw, name: str, command: tuple[str, ...], **spec) -> model.Service:
    svc = model.Service(model.new_object_id(), model.ServiceSpec(
        name=name, command=command, networks=(sw["net"].id,), **spec))
    with store(sw).transaction() as w:
        model.put_service(w, svc)
    return svc


def new_task(sw, svc: model.Service, k: str, slot: int = 1) -> model.Task:
    node = sw["names"][k]
    t = model.Task(model.new_object_id(), svc.id, svc.name, slot, node=node,
                   node_id=model.node_id(sw["cid"], node), spec=svc.spec,
                   state=model.ASSIGNED, since=now())
    with store(sw).transaction() as w:
        model.put_task(w, t)
    return t


def task(sw, tid: str) -> model.Task | None:
    d = store(sw).read().get_object(model.TASK, tid)
    return model.Task.from_dict(d) if d else None


def set_desired(sw, tid: str, desired: str) -> None:
    with store(sw).transaction() as w:
        t = model.Task.from_dict(w.get_object(model.TASK, tid))
        model.put_task(w, dataclasses.replace(t, desired=desired))


def delete_service(sw, sid: str) -> None:
    with store(sw).transaction() as w:
        w.delete_object(model.SERVICE, sid)


def wait_for(what, timeout: float = 10.0, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        got = what()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what.__doc__ or what}"
        time.sleep(step)


def state_is(sw, tid: str, *states: str):
    def check():
        t = task(sw, tid)
        return t if t is not None and t.state in states else None
    check.__doc__ = f"task {tid} in {states} (now {getattr(task(sw, tid), 'state', None)})"
    return wait_for(check)


def task_containers(sw, k: str, tid: str | None = None) -> list:
    return [c for c in sw[k].containers(all=True)
            if TASK_LABEL in (c.options.get("labels") or {})
            and (tid is None or c.options["labels"][TASK_LABEL] == tid)]


def cleanup(sw, *svcs: model.Service) -> None:
    for svc in svcs:
        delete_service(sw, svc.id)
    for k in IPS:
        wait_for(lambda k=k: not task_containers(sw, k))
    wait_for(lambda: not store(sw).read().objects(model.TASK))      # the runners deleted them


# -- tests ------------------------------------------------------------------------------
def test_task_runs_on_its_node_with_labels_aliases_and_addresses(sw):
    svc = new_service(sw, "web", SERVE, container_labels={"tier": "front"})
    t = new_task(sw, svc, "b")
    try:
        running = state_is(sw, t.id, model.RUNNING)
        assert not task_containers(sw, "a")
        [ctr] = task_containers(sw, "b", t.id)
        assert ctr.name == f"web.1.{t.id}" == t.container_name
        assert ctr.state.value == "running"
        assert ctr.options["restart"] == RestartPolicy.parse("no").to_json()   # managers replace
        labels = ctr.options["labels"]
        assert labels == {"tier": "front", "com.docker.swarm.node.id": t.node_id,
                          "com.docker.swarm.service.id": svc.id,
                          "com.docker.swarm.service.name": "web", "com.docker.swarm.task": "",
                          "com.docker.swarm.task.id": t.id,
                          "com.docker.swarm.task.name": t.container_name}
        [ep] = [e for e in ctr.endpoints if e.network_id == sw["net"].id]   # + netkit_gwbridge
        assert "tasks.web" in ep.aliases
        assert "web" not in ep.aliases                       # vip mode: the VIP has the name
        assert running.container_id == ctr.id and running.message == "started"
        assert running.addresses == {sw["net"].id: ep.ipv4} and ep.ipv4.endswith("/24")
        wait_converged([sw["a"], sw["b"]])
        # tasks.web from a container on the other node, then real TCP over the overlay
        code, out = sw["a"].exec_output("client", ["python3", "-c",
                                                   "import socket; print(socket.gethostbyname("
                                                   "'tasks.web'))"])
        assert code == 0 and out.strip() == ep.ipv4_address
        client_ip = sw["a"].container("client").endpoints[0].ipv4_address
        assert wait_for(lambda: probe(sw["a"], "client", "tcp", "tasks.web", 8080)) == client_ip
    finally:
        cleanup(sw, svc)


def test_dnsrr_alias_and_exit_codes_are_reported_not_restarted(sw):
    svc = new_service(sw, "jobs", ("sh", "-c", "sleep 0.3; exit 3"), endpoint_mode=model.DNSRR)
    ok = new_service(sw, "done", ("true",))
    bad, good = new_task(sw, svc, "a"), new_task(sw, ok, "b")
    try:
        [ctr] = wait_for(lambda: task_containers(sw, "a", bad.id))
        assert {"tasks.jobs", "jobs"} <= set(ctr.endpoints[0].aliases if ctr.endpoints
                                            else ctr.netconfig[0].aliases)
        failed = state_is(sw, bad.id, model.FAILED)
        assert (failed.exit_code, failed.error) == (3, "task: non-zero exit (3)")
        complete = state_is(sw, good.id, model.COMPLETE)
        assert complete.exit_code == 0 and complete.error == ""
        time.sleep(1.0)                                      # never started again
        [ctr] = task_containers(sw, "a", bad.id)
        assert ctr.state.value == "exited" and ctr.exit_code == 3 and ctr.restart_count == 0
        assert task(sw, bad.id).state == model.FAILED
    finally:
        cleanup(sw, svc, ok)


def test_desired_shutdown_drains_then_stops(sw):
    svc = new_service(sw, "stopme", SERVE, stop_grace_period=5.0)
    hard = new_service(sw, "hard", SLEEP, stop_grace_period=1.0)
    t, h = new_task(sw, svc, "b"), new_task(sw, hard, "a")
    try:
        state_is(sw, t.id, model.RUNNING)
        state_is(sw, h.id, model.RUNNING)
        began = time.monotonic()
        set_desired(sw, t.id, model.SHUTDOWN)
        set_desired(sw, h.id, model.SHUTDOWN)
        time.sleep(0.3)
        assert [c.state.value for c in task_containers(sw, "b", t.id)] == ["running"]  # draining
        shut = state_is(sw, t.id, model.SHUTDOWN)
        took = time.monotonic() - began
        assert runner.DRAIN <= took < 3.0, took             # SIGTERM ended it at once
        [ctr] = task_containers(sw, "b", t.id)              # kept, exited, as history
        assert ctr.state.value == "exited" and shut.exit_code == 0 and not ctr.endpoints
        killed = state_is(sw, h.id, model.SHUTDOWN)         # SIGTERM ignored: SIGKILL after 1 s
        assert time.monotonic() - began >= runner.DRAIN + 1.0
        assert killed.exit_code == 137
        assert task(sw, t.id).desired == model.SHUTDOWN     # the object stays
    finally:
        cleanup(sw, svc, hard)


def test_remove_and_orphans(sw):
    svc = new_service(sw, "rmme", SERVE)
    t1, t2 = new_task(sw, svc, "b", 1), new_task(sw, svc, "b", 2)
    try:
        state_is(sw, t1.id, model.RUNNING)
        state_is(sw, t2.id, model.RUNNING)
        set_desired(sw, t1.id, model.REMOVE)
        wait_for(lambda: task(sw, t1.id) is None and not task_containers(sw, "b", t1.id))
        with store(sw).transaction() as w:                   # a task object that is gone
            w.delete_object(model.TASK, t2.id)
        wait_for(lambda: not task_containers(sw, "b", t2.id))
        assert not task_containers(sw, "b")
    finally:
        cleanup(sw, svc)


def test_service_gone_removes_its_tasks(sw):
    svc = new_service(sw, "gone", SLEEP)
    t = new_task(sw, svc, "a")
    state_is(sw, t.id, model.RUNNING)
    cleanup(sw, svc)                                         # deletes the service, waits
    assert task(sw, t.id) is None


def test_step_is_cheap_and_idempotent(sw):
    svc = new_service(sw, "calm", SERVE)
    t = new_task(sw, svc, "b")
    try:
        state_is(sw, t.id, model.RUNNING)
        wait_converged([sw["a"], sw["b"]])
        before = store(sw).version()
        calls = count_kernel_calls(sw["b"], lambda: runner.step(sw["b"], store(sw), set()))
        assert calls == 0 and store(sw).version() == before
        assert len(task_containers(sw, "b")) == 1
    finally:
        cleanup(sw, svc)


def test_killed_agent_adopts_without_duplicates(sw):
    svc = new_service(sw, "adopt", SERVE)
    t = new_task(sw, svc, "b")
    try:
        running = state_is(sw, t.id, model.RUNNING)
        pid = agent_client.pid(sw["b"].paths.run)
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: agent_client.pid(sw["b"].paths.run) is None
                 or not os.path.exists(f"/proc/{pid}"))
        late = new_task(sw, svc, "b", 2)                     # assigned while it is down
        sw["b"].swarm_agents()                               # any command brings it back
        sw["b"].containers()
        wait_for(lambda: agent_client.pid(sw["b"].paths.run) not in (None, pid))
        state_is(sw, late.id, model.RUNNING)
        wait_converged([sw["b"]])
        again = task(sw, t.id)
        assert again.state == model.RUNNING and again.container_id == running.container_id
        assert again.since == running.since
        assert sorted(c.name for c in task_containers(sw, "b")) == sorted(
            [t.container_name, late.container_name])
        client_ip = sw["a"].container("client").endpoints[0].ipv4_address
        addr = running.addresses[sw["net"].id].split("/")[0]
        assert probe(sw["a"], "client", "tcp", addr, 8080) == client_ip
    finally:
        cleanup(sw, svc)


def test_worker_leave_removes_its_task_containers(sw, host):
    svc = new_service(sw, "leaver", SLEEP)
    t = new_task(sw, svc, "b")
    try:
        state_is(sw, t.id, model.RUNNING)
        sw["b"].swarm_leave()                                # a worker: no --force needed
        assert not task_containers(sw, "b")
    finally:
        if sw["b"].cluster.store() is None:
            sw["b"].swarm_join(sw["names"]["a"])
        with store(sw).transaction() as w:
            w.delete_object(model.TASK, t.id)
        cleanup(sw, svc)


def test_task_joins_a_network_made_without_attachable(sw):
    net = sw["a"].create_network(NetworkSpec("private", driver="overlay",
                                             subnets=("10.0.29.0/24",)))
    svc = model.Service(model.new_object_id(), model.ServiceSpec(
        name="private", command=SERVE, networks=(net.id,),
        ports=(model.PortConfig(8081, 8080, mode=model.HOST_MODE),)))
    with store(sw).transaction() as w:
        model.put_service(w, svc)
    t1, t2 = new_task(sw, svc, "a", 1), new_task(sw, svc, "b", 2)
    try:
        r1, r2 = state_is(sw, t1.id, model.RUNNING), state_is(sw, t2.id, model.RUNNING)
        assert list(r1.addresses) == list(r2.addresses) == [net.id]
        [ctr] = task_containers(sw, "b", t2.id)
        assert ctr.options["ports"]["publish"] == ["8081:8080/tcp"]      # mode=host: -p
        wait_converged([sw["a"], sw["b"]])
        # task to task over the overlay, across the nodes
        code, out = sw["a"].exec_output(t1.container_name, [
            *PROBE, "probe", "tcp", r2.addresses[net.id].split("/")[0], "8080",
            "--timeout", "2"])
        assert code == 0 and out.strip() == r1.addresses[net.id].split("/")[0]
    finally:
        cleanup(sw, svc)
        wait_converged([sw["a"], sw["b"]])
        sw["a"].remove_network("private")
