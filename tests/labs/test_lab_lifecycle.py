"""Lab services under the node agent, for real in throwaway nodes: `restart:` policies,
`stop_signal:` and `stop_grace_period:` honoured by stop / down / scale, `lab stop / start /
restart`, `lab ps` STATUS, a one-shot service that completes after a restart, `lab up`
attached until the services exit."""

from __future__ import annotations

import os
import signal
import time

import pytest

from netkit.labs import Lab
from netkit.model import State
from tests.kernel.test_lifecycle import until
from tests.labs.conftest import IDLE, SERVE

pytestmark = pytest.mark.root

# ignores SIGTERM (a trap that only says so): only SIGKILL ends it
STUBBORN = """[sh, -c, "trap 'echo TERM ignored' TERM; echo ready; while :; do sleep 0.05; done"]"""


def empty(node) -> None:
    assert node.containers(all=True) == []
    assert sorted(n.name for n in node.networks()) == ["bridge", "host", "none"]


class Clock:
    """on_event: when each container began and finished stopping."""

    def __init__(self) -> None:
        self.began: dict[str, float] = {}
        self.took: dict[str, float] = {}

    def __call__(self, ev) -> None:
        if ev.kind != "Container":
            return
        if ev.status == "Stopping":
            self.began[ev.name] = time.monotonic()
        elif ev.status == "Stopped" and ev.name in self.began:
            self.took[ev.name] = time.monotonic() - self.began.pop(ev.name)


def test_restart_policies_keep_services_up(write, node, cli):
    path = write("lab.yml", """
        name: rp
        services:
          flaky: {command: sh -c "echo run; exit 3", restart: "on-failure:2"}
          fine: {command: sh -c "echo once", restart: on-failure}
          keeper: {command: sleep infinity, restart: always, stop_signal: SIGKILL}
          plain: {command: sh -c "exit 4"}
        """)
    with Lab.load(path, engine=node) as lab:
        flaky = until(lambda: (c := lab.container("flaky")).state is State.EXITED
                      and c.restart_count == 2 and c, 15)
        assert flaky and flaky.exit_code == 3                     # restarted twice, then given up
        info = node.inspect_containers([flaky.id])[0]
        assert info["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
        assert [text for _, text in lab.logs("flaky")] == ["run\nrun\nrun\n"]
        fine = until(lambda: (c := lab.container("fine")).state is State.EXITED and c, 5)
        assert fine.exit_code == 0 and fine.restart_count == 0    # success is not a failure
        os.kill(lab.container("keeper").pid, signal.SIGKILL)     # it dies: the agent starts it again
        assert until(lambda: (c := lab.container("keeper")).restart_count == 1 and c.running, 5)
        assert lab.container("plain").exit_code == 4 and lab.container("plain").restart_count == 0
        ps = cli("lab", "-f", path, "ps", "-a", node=node.node_name).stdout
        rows = {line.split()[0]: line for line in ps.splitlines()[1:]}
        assert "Exited (3)" in rows["rp-flaky-1"] and "Exited (4)" in rows["rp-plain-1"]
        assert "Up " in rows["rp-keeper-1"]
        shown = cli("lab", "-f", path, "ps", node=node.node_name).stdout     # running ones only
        assert [line.split()[0] for line in shown.splitlines()[1:]] == ["rp-keeper-1"]
    empty(node)


def test_stop_signal_and_grace_period_on_stop_and_down(write, node):
    mark = "/root/usr1"         # in the container's own layer: read from the host once it stopped
    path = write("lab.yml", f"""
        name: sg
        services:
          usr1:
            command: sh -c 'trap "echo got USR1 >> {mark}; exit 7" USR1; trap "" TERM; while :; do sleep 0.05; done'
            stop_signal: SIGUSR1
          stubborn: {{command: {STUBBORN}, stop_grace_period: 1s}}
          rounded: {{command: {STUBBORN}, stop_grace_period: 1500ms}}
          quick: {{command: {IDLE}}}
        """)
    marks: list[str] = []

    class Marks(Clock):
        def __call__(self, ev) -> None:
            super().__call__(ev)
            if ev.kind == "Container" and ev.status == "Stopped" and ev.name == "sg-usr1-1":
                mark = os.path.join(node.container_dir(ev.name), "layer", "root", "upper", "usr1")
                if os.path.exists(mark):            # (not on the way up)
                    with open(mark) as f:
                        marks.append(f.read())

    clock = Marks()

    def log(service: str) -> str:
        return dict((m.service, text) for m, text in lab.logs(service))[service]

    with Lab.load(path, engine=node, on_event=clock) as lab:
        assert until(lambda: "ready" in log("stubborn") and "ready" in log("rounded"), 5)
        lab.stop()
        c = {m.service: m.container for m in lab.ps()}
        assert {s: (x.state, x.exit_code) for s, x in c.items()} == {
            "usr1": (State.EXITED, 7), "stubborn": (State.EXITED, 137), "rounded": (State.EXITED, 137),
            "quick": (State.EXITED, 143)}
        assert marks == ["got USR1\n"]                           # the stop signal, not SIGTERM
        took = clock.took
        assert 0.95 <= took["sg-stubborn-1"] < 2.5, took         # killed after its 1 s, not before
        assert 1.95 <= took["sg-rounded-1"] < 3.5, took          # 1500ms: Docker's whole seconds, up
        assert took["sg-usr1-1"] < 1.5 and took["sg-quick-1"] < 1.5, took
        assert "TERM ignored" in log("stubborn")
        # started again, then `down` stops them the same way before removing them
        lab.start()
        assert all(m.container.running for m in lab.ps())
        assert until(lambda: "ready" in log("stubborn").split("TERM ignored")[-1], 5)
        clock.took.clear()
    assert marks == ["got USR1\n", "got USR1\n" * 2]
    assert 0.95 <= clock.took["sg-stubborn-1"] < 2.5, clock.took
    empty(node)


def test_timeout_overrides_the_grace_period(write, node, cli):
    path = write("lab.yml", f"""
        name: to
        services:
          stubborn: {{command: {STUBBORN}, stop_grace_period: 1m}}
        """)
    cli("lab", "-f", path, "up", "-d", node=node.node_name)
    t0 = time.monotonic()
    r = cli("lab", "-f", path, "down", "-t", "0", node=node.node_name)
    assert time.monotonic() - t0 < 10
    assert "Container to-stubborn-1  Stopped" in r.stderr and "Container to-stubborn-1  Removed" in r.stderr
    empty(node)


def test_stop_start_restart_and_up_keep_the_containers(write, node, cli):
    path = write("lab.yml", f"""
        name: ssr
        services:
          web: {{command: {SERVE} 80, scale: 2}}
          client: {{command: {IDLE}, depends_on: {{web: {{condition: service_started, restart: true}}}}}}
        """)
    run = lambda *a: cli("lab", "-f", path, *a, node=node.node_name)      # noqa: E731
    try:
        run("up", "-d")
        lab = Lab.load(path, engine=node)
        ids = {m.name: m.container.id for m in lab.ps()}
        for n in (1, 2):                           # the servers listen (and handle SIGTERM)
            assert lab.check({"reach": {"from": "client", "to": f"ssr-web-{n}", "port": 80}}).passed
        r = run("stop")
        assert r.stderr.index("ssr-client-1  Stopped") < r.stderr.index("ssr-web-1  Stopped")   # dependents first
        ps = run("ps", "-a").stdout
        assert ps.count("Exited (143)") == 1 and ps.count("Exited (0)") == 2, ps    # probe: exits 0 on TERM
        assert run("ps").stdout.count("\n") == 1                                    # none running
        assert all(not c.endpoints for c in node.containers(all=True))              # networks left
        r = run("start", "web")
        assert "ssr-web-2  Started" in r.stderr and "client" not in r.stderr
        run("start")
        assert {m.name: m.container.id for m in lab.ps(all=False)} == ids
        r = lab.check({"resolve": {"from": "client", "name": "web", "expect": ["web"]}})
        assert r.passed, r.evidence                                  # names resolve again after start
        before = {c.name: c.started_at for c in node.containers()}
        r = run("restart", "web")                                    # and client: restart: true
        assert r.stderr.index("ssr-web-2  Started") < r.stderr.index("ssr-client-1  Started")
        assert all(c.started_at > before[c.name] for c in node.containers())
        run("stop", "client")
        r = run("up", "-d")                                          # starts it again, not recreated
        assert "ssr-client-1  Started" in r.stderr and "Recreate" not in r.stderr
        assert {c.name: c.id for c in node.containers()} == ids
        lab.close()
    finally:
        run("down")
    empty(node)


def test_scale_down_stops_with_the_grace_period(write, node):
    path = write("lab.yml", f"""
        name: sd
        services:
          w: {{command: {STUBBORN}, stop_grace_period: 1s, scale: 3}}
        """)
    clock = Clock()
    with Lab.load(path, engine=node, on_event=clock) as lab:
        t0 = time.monotonic()
        lab.scale({"w": 1})
        assert time.monotonic() - t0 < 3                             # the two stop at the same time
        assert [m.number for m in lab.ps()] == [1]
        assert all(0.95 <= clock.took[f"sd-w-{n}"] < 2.5 for n in (2, 3)), clock.took
    empty(node)


def test_one_shot_completes_after_a_restart(write, node):
    # /root/runs: in the container's own layer (host files are out of its reach), kept
    # across its restarts
    path = write("lab.yml", f"""
        name: os
        services:
          init:
            command: sh -c 'echo x >> /root/runs; [ "$$(wc -l < /root/runs)" -ge 2 ]'
            restart: on-failure
          app:
            command: {IDLE}
            depends_on: {{init: {{condition: service_completed_successfully}}}}
        """)
    with Lab.load(path, engine=node) as lab:
        init = lab.container("init")
        assert (init.state, init.exit_code, init.restart_count) == (State.EXITED, 0, 1)
        count = os.path.join(node.runtime.container_dir(init.id), "layer", "root", "upper", "runs")
        assert open(count).read() == "x\nx\n" and lab.container("app").running
    empty(node)


def test_up_attached_follows_until_the_services_exit(write, node, cli):
    path = write("lab.yml", """
        name: at
        services:
          talk: {command: sh -c "echo hello; sleep 0.3; echo bye >&2", scale: 2}
        """)
    try:
        r = cli("lab", "-f", path, "up", node=node.node_name)
        assert "Attaching to at-talk-1, at-talk-2" in r.stderr
        for n in (1, 2):
            assert f"at-talk-{n} | hello\n" in r.stdout and f"at-talk-{n} | bye\n" in r.stdout
        assert cli("lab", "-f", path, "logs", "--no-prefix", "talk", node=node.node_name).stdout == \
            "hello\nbye\n" * 2
    finally:
        cli("lab", "-f", path, "down", node=node.node_name)
    empty(node)
