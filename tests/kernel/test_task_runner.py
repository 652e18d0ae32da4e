"""The node side of swarm services (netkit/services/runner.py) on two simulated nodes.

Node a is the manager, b a worker, on the SQLite cluster store; an attachable
overlay `tnet` spans them. The services are made through the service API
(`Engine.service_create / service_update / service_scale / service_remove`)
and pinned to a node with `node.hostname==NAME` (restart condition none:
an ended task stays ended); a's agent runs the acting manager's reconciler,
and the tests watch each node's agent run the tasks assigned to it --
containers, states, addresses, DNS names and real TCP through the overlay.
Task objects are written by hand only for a state the API cannot make (a
task object deleted under its running container), consistently with the
reconciler (which then replaces it).
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from netkit.agent import client as agent_client
from netkit.errors import NotFound
from netkit.lifecycle import RestartPolicy
from netkit.planning import TASK_LABEL
from netkit.services import drain, model, runner
from netkit.services.reconcile import DOWN_GRACE
from netkit.specs import ContainerSpec, NetworkSpec
from tests.kernel.helpers import (PROBE, count_kernel_calls, probe, settled, swarm_of_three,
                                  wait_converged)

pytestmark = pytest.mark.root
IPS = {"a": "192.168.78.10", "b": "192.168.78.11"}
SERVE = (*PROBE, "serve", "tcp", "8080")          # exits 0 on SIGTERM
SLEEP = ("sleep", "600")                          # pid 1: ignores SIGTERM
ONCE = model.RestartPolicy("none")                # ended tasks stay ended


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
            assert "step failed" not in text and "Traceback" not in text, text[-3000:]


# -- the service API and what the nodes made of it ----------------------------------------
def store(sw):
    return sw["a"].cluster.store()


def create(sw, name: str, command: tuple[str, ...], on: str | None = None,
           **spec) -> model.Service:
    """Service `name` on tnet (unless `networks` says otherwise), its tasks pinned to node
    `on` ("a" | "b") if given, restart condition none unless `restart` says otherwise."""
    spec.setdefault("networks", (sw["net"].id,))
    spec.setdefault("restart", ONCE)
    if on is not None:
        spec["constraints"] = (f"node.hostname=={sw['names'][on]}",)
    return sw["a"].service_create(model.ServiceSpec(name, command, **spec))


def tasks_of(sw, svc: model.Service, **where) -> list[model.Task]:
    """The service's task objects (`where`: attributes they must have), by slot and age."""
    return sorted((t for t in model.tasks(store(sw).read(), service_id=svc.id)
                   if all(getattr(t, k) == v for k, v in where.items())),
                  key=lambda t: (str(t.slot), t.created, t.id))


def task(sw, tid: str) -> model.Task | None:
    d = store(sw).read().get_object(model.TASK, tid)
    return model.Task.from_dict(d) if d else None


def wait_for(what, timeout: float = 10.0, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        got = what()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what.__doc__ or what}"
        time.sleep(step)


def state_is(sw, tid: str, *states: str, timeout: float = 10.0):
    def check():
        t = task(sw, tid)
        return t if t is not None and t.state in states else None
    check.__doc__ = f"task {tid} in {states} (now {getattr(task(sw, tid), 'state', None)})"
    return wait_for(check, timeout)


def running(sw, svc: model.Service, n: int = 1, **where) -> list[model.Task]:
    """Until exactly `n` tasks of `svc` are desired running and all running; those."""
    def check():
        live = tasks_of(sw, svc, desired=model.RUNNING, **where)
        return live if len(live) == n and all(t.state == model.RUNNING for t in live) else None
    check.__doc__ = f"{n} running task(s) of {svc.name} (now {tasks_of(sw, svc)})"
    return wait_for(check)


def task_containers(sw, k: str, tid: str | None = None) -> list:
    return [c for c in sw[k].containers(all=True)
            if TASK_LABEL in (c.options.get("labels") or {})
            and (tid is None or c.options["labels"][TASK_LABEL] == tid)]


def cleanup(sw, *svcs: model.Service) -> None:
    """`service rm` each (if still there); the runners remove every task container and
    task object."""
    for svc in svcs:
        try:
            sw["a"].service_remove(svc.id)
        except NotFound:
            pass
    for k in IPS:
        wait_for(lambda k=k: not task_containers(sw, k))
    wait_for(lambda: not store(sw).read().objects(model.TASK))      # the runners deleted them


def restart_agent(sw, k: str, old: int) -> None:
    """Any command brings a member's stopped agent back; until a new one runs."""
    sw[k].swarm_agents()
    sw[k].containers()
    wait_for(lambda: agent_client.pid(sw[k].paths.run) not in (None, old))


def kill_agent(sw, k: str) -> int:
    """SIGKILL node k's agent (its containers keep running); its pid."""
    pid = agent_client.pid(sw[k].paths.run)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: agent_client.pid(sw[k].paths.run) is None
             or not os.path.exists(f"/proc/{pid}"))
    return pid


def stopped_after_acks(sw, k: str, t: model.Task, timeout: float = 10.0) -> float:
    """Until retired task `t`'s container on node k stopped running, checking at every look
    that once it has, every member had acked its retirement; seconds it took from now."""
    assert t.retired_version > 0
    began = time.monotonic()
    while True:
        ctrs = task_containers(sw, k, t.id)                  # desired remove: it goes
        if not ctrs or ctrs[0].state.value != "running":
            took = time.monotonic() - began
            seen = drain.acks(store(sw).read())     # after the look: written before the stop
            assert all(seen.get(sw["names"][n], 0) >= t.retired_version for n in IPS), (
                seen, t.retired_version)
            return took
        assert time.monotonic() - began < timeout, "the retired task was not stopped"
        time.sleep(0.01)


# -- tests ------------------------------------------------------------------------------
def test_task_runs_on_its_node_with_labels_aliases_and_addresses(sw):
    svc = create(sw, "web", SERVE, on="b", container_labels={"tier": "front"})
    try:
        [t] = running(sw, svc)
        assert t.node == sw["names"]["b"] and t.node_id == model.node_id(sw["cid"], t.node)
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
        assert t.container_id == ctr.id and t.message == "started"
        assert t.addresses == {sw["net"].id: ep.ipv4} and ep.ipv4.endswith("/24")
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
    svc = create(sw, "jobs", ("sh", "-c", "sleep 0.3; exit 3"), on="a",
                 endpoint_mode=model.DNSRR)
    ok = create(sw, "done", ("true",), on="b")
    [bad], [good] = tasks_of(sw, svc), tasks_of(sw, ok)
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
        assert [t.id for t in tasks_of(sw, svc)] == [bad.id]          # restart condition none
        assert [c.name for c in task_containers(sw, "b")] == [good.container_name]
    finally:
        cleanup(sw, svc, ok)


def test_desired_shutdown_drains_then_stops(sw):
    svc = create(sw, "stopme", SERVE, on="b", stop_grace_period=5.0)
    hard = create(sw, "hard", SLEEP, on="a", stop_grace_period=1.0)
    try:
        [t], [h] = running(sw, svc), running(sw, hard)
        began = time.monotonic()
        for s in (svc, hard):                   # a rolling update: the old task shuts down
            sw["a"].service_update(s.id, sw["a"].service(s.id).spec, force=True)
        assert task(sw, t.id).desired == task(sw, h.id).desired == model.SHUTDOWN
        stopped_after_acks(sw, "b", task(sw, t.id))         # drained: every member acked first
        shut = state_is(sw, t.id, model.SHUTDOWN)
        took = time.monotonic() - began
        assert took < drain.DRAIN_MAX, took                 # SIGTERM ended it at once
        [ctr] = task_containers(sw, "b", t.id)              # kept, exited, as history
        assert ctr.state.value == "exited" and shut.exit_code == 0 and not ctr.endpoints
        killed = state_is(sw, h.id, model.SHUTDOWN)         # SIGTERM ignored: SIGKILL after 1 s
        assert time.monotonic() - began >= 1.0
        assert killed.exit_code == 137
        assert task(sw, t.id).desired == model.SHUTDOWN     # the object stays
        [new] = running(sw, svc)                            # then its slot's new task runs
        assert new.id != t.id and new.slot == t.slot and new.node == t.node
        assert {c.name: c.state.value for c in task_containers(sw, "b")} == {
            t.container_name: "exited", new.container_name: "running"}
    finally:
        cleanup(sw, svc, hard)


def test_stop_waits_for_a_slow_member_then_follows_its_ack(sw):
    """b's agent frozen (SIGSTOP: its process lives, so b counts as up, but it programs and
    acks nothing): a's task, retired, keeps running; b's ack, once it thaws, lets a stop it
    at once; a member that never acks holds it DRAIN_MAX at most."""
    svc = create(sw, "slow", SERVE, on="a", replicas=2)
    agent = agent_client.pid(sw["b"].paths.run)
    assert agent is not None
    try:
        t1, t2 = running(sw, svc, 2)
        settled(store(sw))
        os.kill(agent, signal.SIGSTOP)
        sw["a"].service_scale({"slow": 1})                   # slot 2: desired remove
        began = time.monotonic()
        gone = task(sw, t2.id)
        assert gone.desired == model.REMOVE and 0 < gone.retired_version <= store(sw).version()
        me, slow = sw["names"]["a"], sw["names"]["b"]
        wait_for(lambda: drain.acks(store(sw).read()).get(me, 0) >= gone.retired_version)
        time.sleep(1.0)
        assert drain.acks(store(sw).read()).get(slow, 0) < gone.retired_version
        assert [c.state.value for c in task_containers(sw, "a", t2.id)] == ["running"]
        os.kill(agent, signal.SIGCONT)
        thawed = time.monotonic()
        wait_for(lambda: not task_containers(sw, "a", t2.id))   # b acks, a removes it
        assert drain.acks(store(sw).read()).get(slow, 0) >= gone.retired_version
        assert time.monotonic() - thawed < drain.DRAIN_MAX - 1.0, time.monotonic() - thawed
        wait_for(lambda: task(sw, t2.id) is None)   # the object goes in the runner's next write

        settled(store(sw))                                   # a member that never acks
        os.kill(agent, signal.SIGSTOP)
        spec = sw["a"].service(svc.id).spec
        began = time.monotonic()
        sw["a"].service_update(svc.id, spec, force=True)
        print(f"service_update took {time.monotonic() - began:.3f} s")
        old = task(sw, t1.id)
        assert old.desired == model.SHUTDOWN
        wait_for(lambda: task_containers(sw, "a", t1.id)[0].state.value != "running",
                 timeout=drain.DRAIN_MAX + 5.0)
        took = time.monotonic() - began
        assert drain.DRAIN_MAX <= took < drain.DRAIN_MAX + 2.0, took
        assert drain.acks(store(sw).read()).get(slow, 0) < old.retired_version
    finally:
        os.kill(agent, signal.SIGCONT)
        cleanup(sw, svc)


def test_stop_is_prompt_once_every_member_acked(sw):
    """With every agent up, a retired task stops as soon as both members acked, well before
    the fixed 0.5 s the runner used to wait."""
    svc = create(sw, "quick", SERVE, on="b", replicas=4)
    try:
        ts = running(sw, svc, 4)
        took = []
        for n in (3, 2, 1, 0):
            settled(store(sw), quiet=0.5)
            began = time.monotonic()
            sw["a"].service_scale({"quick": n})              # slot n+1: desired remove
            gone = task(sw, ts[n].id)
            took.append(time.monotonic() - began
                        + stopped_after_acks(sw, "b", gone))
        print("retirement -> stop (s):", " ".join(f"{x:.3f}" for x in took))
        assert sorted(took)[len(took) // 2] < 0.45, took    # the median
    finally:
        cleanup(sw, svc)


def test_remove_and_orphans(sw):
    svc = create(sw, "rmme", SERVE, on="b", replicas=2)
    try:
        t1, t2 = running(sw, svc, 2)
        assert (t1.slot, t2.slot) == (1, 2)
        sw["a"].service_scale({"rmme": 1})                   # slot 2: desired remove
        assert getattr(task(sw, t2.id), "desired", model.REMOVE) == model.REMOVE  # or gone
        wait_for(lambda: task(sw, t2.id) is None and not task_containers(sw, "b", t2.id))
        assert task(sw, t1.id).state == model.RUNNING
        [ctr] = task_containers(sw, "b", t1.id)
        assert ctr.id == t1.container_id and ctr.state.value == "running"
        with store(sw).transaction() as w:                   # a task object that is gone
            w.delete_object(model.TASK, t1.id)
        wait_for(lambda: not task_containers(sw, "b", t1.id))   # its container: an orphan
        [new] = running(sw, svc)                             # the reconciler refilled slot 1
        assert new.id != t1.id and new.slot == 1
        assert [c.name for c in task_containers(sw, "b")] == [new.container_name]
    finally:
        cleanup(sw, svc)


def test_service_gone_removes_its_tasks(sw):
    svc = create(sw, "gone", SLEEP, on="a")              # SLEEP ignores SIGTERM, grace 10 s
    [t] = running(sw, svc)
    began = time.monotonic()
    cleanup(sw, svc)                                     # `service rm`, waits
    assert time.monotonic() - began < 5.0                # at once: no drain, no grace period
    assert task(sw, t.id) is None


def test_step_is_cheap_and_idempotent(sw):
    svc = create(sw, "calm", SERVE, on="b")
    try:
        running(sw, svc)
        wait_converged([sw["a"], sw["b"]])
        settled(store(sw))
        before = store(sw).version()
        calls = count_kernel_calls(sw["b"], lambda: runner.step(sw["b"], store(sw), set()))
        assert calls == 0 and store(sw).version() == before
        assert len(task_containers(sw, "b")) == 1
    finally:
        cleanup(sw, svc)


def test_killed_agent_adopts_without_duplicates(sw):
    svc = create(sw, "adopt", SERVE, on="b")
    try:
        [t] = running(sw, svc)
        pid = kill_agent(sw, "b")
        began = time.monotonic()
        sw["a"].service_scale({"adopt": 2})                  # while b's agent is down
        restart_agent(sw, "b", pid)
        assert time.monotonic() - began < DOWN_GRACE         # not orphaned meanwhile
        again, late = running(sw, svc, 2)
        assert late.slot == 2 and late.node == t.node
        wait_converged([sw["b"]])
        again = task(sw, t.id)
        assert again.state == model.RUNNING and again.container_id == t.container_id
        assert again.since == t.since
        assert sorted(c.name for c in task_containers(sw, "b")) == sorted(
            [t.container_name, late.container_name])
        assert [t.id, late.id] == [x.id for x in tasks_of(sw, svc)]     # nothing replaced
        client_ip = sw["a"].container("client").endpoints[0].ipv4_address
        addr = t.addresses[sw["net"].id].split("/")[0]
        assert probe(sw["a"], "client", "tcp", addr, 8080) == client_ip
    finally:
        cleanup(sw, svc)


def test_task_orphaned_while_its_node_was_down_stops_when_it_returns(sw):
    svc = create(sw, "lost", SERVE, on="b")
    try:
        [t] = running(sw, svc)
        pid = kill_agent(sw, "b")
        try:                                                 # a's reconciler gives up on it
            lost = state_is(sw, t.id, model.ORPHANED, timeout=DOWN_GRACE + 10)
        finally:
            restart_agent(sw, "b", pid)
        assert lost.desired == model.SHUTDOWN
        [new] = running(sw, svc)                             # its replacement, on b again
        assert new.id != t.id and new.slot == 1 and new.node == t.node
        wait_for(lambda: [c.state.value for c in task_containers(sw, "b", t.id)] == ["exited"])
        assert task(sw, t.id).state == model.ORPHANED        # as Docker's: stays orphaned
        assert {c.name: c.state.value for c in task_containers(sw, "b")} == {
            t.container_name: "exited", new.container_name: "running"}
    finally:
        cleanup(sw, svc)


def test_worker_leave_removes_its_task_containers(sw):
    svc = create(sw, "leaver", SLEEP, on="b")
    try:
        running(sw, svc)
        sw["b"].swarm_leave()                                # a worker: no --force needed
        assert not task_containers(sw, "b")
    finally:
        if sw["b"].cluster.store() is None:
            sw["b"].swarm_join(sw["names"]["a"])
        cleanup(sw, svc)


def test_task_joins_a_network_made_without_attachable(sw):
    net = sw["a"].create_network(NetworkSpec("private", driver="overlay",
                                             subnets=("10.0.29.0/24",)))
    svc = create(sw, "private", SERVE, networks=(net.id,), mode=model.GLOBAL,
                 ports=(model.PortConfig(8081, 8080, mode=model.HOST_MODE),))
    try:
        r1, r2 = running(sw, svc, node=sw["names"]["a"]) + running(sw, svc, node=sw["names"]["b"])
        assert len(tasks_of(sw, svc)) == 2                   # global: one on each node
        assert list(r1.addresses) == list(r2.addresses) == [net.id]
        for k, r in (("a", r1), ("b", r2)):
            [ctr] = task_containers(sw, k, r.id)
            assert ctr.name == f"private.{r.node_id}.{r.id}"
            assert ctr.options["ports"]["publish"] == ["8081:8080/tcp"]  # mode=host: -p
        wait_converged([sw["a"], sw["b"]])
        # task to task over the overlay, across the nodes
        code, out = sw["a"].exec_output(r1.container_name, [
            *PROBE, "probe", "tcp", r2.addresses[net.id].split("/")[0], "8080",
            "--timeout", "2"])
        assert code == 0 and out.strip() == r1.addresses[net.id].split("/")[0]
    finally:
        cleanup(sw, svc)
        wait_converged([sw["a"], sw["b"]])
        sw["a"].remove_network("private")
