"""x-netkit.services / x-netkit.secrets and the swarm check kinds (tasks, node_update,
service_update): loading, validation with file and line, `lab config`, and the `tasks`
verdicts against a fake manager (pure)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from netkit.labs import checks
from netkit.labs.project import load_project
from netkit.labs.schema import Ctx
from netkit.labs.source import LabFileError, Where
from netkit.services import model as M

HEAD = """name: sw
networks:
  appnet: {driver: overlay, attachable: true}
  local: {}
x-netkit:
  nodes: {n1: {name: a1}, n2: {name: a2}}
  swarm: {manager: n1, workers: [n2]}
"""


def load(tmp_path, body: str):
    path = tmp_path / "lab.yml"
    path.write_text(HEAD + body)
    return load_project(str(path))


def error(tmp_path, body: str) -> str:
    with pytest.raises(LabFileError) as e:
        load(tmp_path, body)
    return str(e.value)


def test_services_and_secrets_become_specs(tmp_path):
    (tmp_path / "pw.txt").write_bytes(b"from-file")
    p = load(tmp_path, """  secrets:
    pw: {content: s3cret}
    pw2: {file: pw.txt}
  services:
    web:
      command: serve tcp 80
      replicas: 3
      networks: [appnet]
      publish: ["8080:80", "mode=host,published=9000,target=90"]
      secrets: [pw, {source: pw2, target: other, mode: 0400}]
      constraints: [node.role==worker]
      environment: {A: 1}
      update_config: {parallelism: 2, delay: 1s, order: start-first}
""")
    assert p.swarm_secrets == {"pw": b"s3cret", "pw2": b"from-file"}
    spec = p.swarm_services["web"]
    assert spec.command == ("serve", "tcp", "80") and spec.replicas == 3
    assert spec.networks == ("sw_appnet",) and spec.constraints == ("node.role==worker",)
    assert spec.ports == (M.PortConfig(8080, 80), M.PortConfig(9000, 90, "tcp", "host"))
    assert spec.secrets == (M.FileRef("pw", "pw"), M.FileRef("pw2", "other", 0o400))
    assert spec.env == {"A": "1"}            # PATH (netkit's Python first) is added at up
    assert (spec.update.parallelism, spec.update.delay, spec.update.order) == (2, 1.0, "start-first")
    assert spec.labels == {"com.docker.compose.project": "sw"}
    shown = p.to_dict()["x-netkit"]
    assert shown["secrets"] == {"pw": {"content": "********"}, "pw2": {"content": "********"}}
    assert shown["services"]["web"]["publish"][0] == "mode=ingress,published=8080,target=80,protocol=tcp"
    assert "PATH" not in shown["services"]["web"]["environment"]


@pytest.mark.parametrize("body, message", [
    ("  services:\n    web: {command: x, networks: [nope]}\n",
     'x-netkit.services.web.networks[0]: undefined network "nope"'),
    ("  services:\n    web: {command: x, networks: [local]}\n",
     "x-netkit.services.web.networks[0]: The network sw_local cannot be used with services"),
    ("  services:\n    web: {command: x, mode: global, replicas: 2}\n",
     "x-netkit.services.web.replicas: replicas can only be used with replicated mode"),
    ("  services:\n    web: {command: x, secrets: [pw]}\n",
     "x-netkit.services.web.secrets[0]: secret not found: pw"),
    ("  services:\n    web: {command: x, publish: [eighty]}\n",
     'x-netkit.services.web.publish[0]: invalid argument "eighty"'),
    ("  services:\n    web: {replicas: 2}\n", 'x-netkit.services.web: missing key "command"'),
    ("  services:\n    web: {command: x, replica: 2}\n",
     'x-netkit.services.web.replica: unknown key (did you mean "replicas"?)'),
    ("  secrets:\n    pw: {}\n", "x-netkit.secrets.pw: give either content or file"),
    ("  secrets:\n    pw: {file: missing.txt}\n", "x-netkit.secrets.pw.file: cannot read missing.txt"),
    ("  checks:\n    - tasks: {service: web, runing: 3}\n",
     'x-netkit.checks[0].tasks.runing: unknown key (did you mean "running"?)'),
    ("  checks:\n    - node_update: {node: n2, availability: gone}\n",
     "x-netkit.checks[0].node_update.availability: expected one of active, pause, drain"),
])
def test_errors_name_the_key(tmp_path, body, message):
    assert message in error(tmp_path, body)


def test_a_swarm_service_cannot_share_a_lab_services_name(tmp_path):
    path = tmp_path / "lab.yml"
    path.write_text(HEAD.replace("networks:", "services:\n  web: {command: sleep 1}\nnetworks:", 1) +
                    "  services:\n    web: {command: x}\n")
    with pytest.raises(LabFileError) as e:
        load_project(str(path))
    assert '"web" is also a service of the lab' in str(e.value)


def test_swarm_kinds_need_a_swarm(tmp_path):
    path = tmp_path / "lab.yml"
    path.write_text("name: sw\nservices:\n  c: {command: sleep 1}\nx-netkit:\n"
                    "  services:\n    web: {command: x}\n")
    with pytest.raises(LabFileError) as e:
        load_project(str(path))
    assert "x-netkit.swarm is missing" in str(e.value)
    path.write_text("name: sw\nservices:\n  c: {command: sleep 1}\nx-netkit:\n"
                    "  checks:\n    - tasks: {service: web, running: 1}\n")
    with pytest.raises(LabFileError) as e:
        load_project(str(path))
    assert "tasks acts on a swarm" in str(e.value)


def test_task_references_are_known_with_a_swarm(tmp_path):
    p = load(tmp_path, "  checks:\n    - exec: {in: 'task:web', command: cat /run/secrets/pw}\n"
                       "    - service_update: {service: web, env_add: {V: 2}, force: true}\n")
    assert [c.kind for c in p.checks] == ["exec", "service_update"]
    assert p.checks[1].step and p.checks[1].describe() == "service update --env-add V=2 --force web"


# -- the tasks check against a fake manager ---------------------------------------------------

SPEC = M.ServiceSpec(name="web", command=("serve",), replicas=3)


class Manager:
    def __init__(self, svc, tasks):
        self.svc, self.tasks = svc, tasks

    def service(self, ref):
        return self.svc

    def service_tasks(self, ref=None):
        return self.tasks


class Ctx_:
    def __init__(self, manager):
        self.manager = manager

    def swarm_manager(self):
        return self.manager

    def node_name(self, ref):
        return {"node3": "n3"}.get(ref.removeprefix("node:"), ref)


def task(slot, node, state="running", desired="running", spec=SPEC):
    return M.Task(id=f"t{slot}{node}", service_id="s", service_name="web", slot=slot, node=node,
                  spec=spec, state=state, desired=desired)


def run(body, svc, tasks):
    check = checks.parse({"tasks": body}, ("c",), Ctx(Where()))
    return check.run(Ctx_(Manager(svc, tasks)))


def test_tasks_counts_running_tasks_and_nodes():
    svc = M.Service("s", SPEC)
    spread = [task(1, "n1"), task(2, "n2"), task(3, "n3")]
    ok, text = run({"service": "web", "running": 3, "nodes": 3}, svc, spread)
    assert ok and "3 running" in text and "on 3 nodes" in text
    ok, text = run({"service": "web", "running": 3, "nodes": 2, "not_on": ["node3"]}, svc, spread)
    assert not ok and "expected them on 2 nodes" in text and "expected none on n3" in text
    starting = spread[:2] + [task(3, "n1", state="starting")]
    ok, text = run({"service": "web", "running": 3}, svc, starting)
    assert not ok and "(1 not running yet)" in text
    shut = spread + [task(4, "n3", state="running", desired="shutdown")]
    assert run({"service": "web", "running": 3}, svc, shut)[0]       # leaving tasks do not count


def test_tasks_updated_wants_every_task_on_the_current_spec():
    new = replace(SPEC, env={"V": "2"})
    svc = M.Service("s", new, version=2, update_status={"state": "updating"})
    mixed = [task(1, "n1", spec=new), task(2, "n2"), task(3, "n3")]
    ok, text = run({"service": "web", "updated": True}, svc, mixed)
    assert not ok and "update updating" in text and "old tasks web.2 web.3" in text
    done = replace(svc, update_status={"state": "completed"})
    assert run({"service": "web", "updated": True}, done, [task(i, "n1", spec=new) for i in (1, 2, 3)])[0]
