"""`stack deploy / ls / services / ps / rm` end to end on three simulated nodes (a manager, two
workers): the notes' two-service stack file (with its `links`), commands in place of images.

Needs the service API (netkit/services/manager.py) and the node agents' task runner: skipped
until they are merged.
"""

from __future__ import annotations

import importlib.util
import time

import pytest

from tests.kernel.helpers import swarm_of_three

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(importlib.util.find_spec("netkit.services.manager") is None
                       or importlib.util.find_spec("netkit.services.runner") is None,
                       reason="stacks need the service API and the task runner "
                              "(netkit.services.manager / runner, branches svc-manager and "
                              "svc-runner), not merged yet"),
]
IPS = {"a": "192.168.78.10", "b": "192.168.78.11", "c": "192.168.78.12"}
NOTES = """
version: '3.0'
services:
  mysql:
    command: python3 -m http.server 3306
  web:
    command: python3 -m http.server {port}
    links:
      - mysql:db
    ports:
      - 80:{port}
    deploy:
      replicas: {replicas}
"""


@pytest.fixture(scope="module")
def sw(host, netkit_dirs):
    with swarm_of_three(host, netkit_dirs, "192.168.78.0/24", IPS) as (engines, names, lan, cid):
        yield engines
        for name, _ in engines["a"].stacks():
            engines["a"].stack_remove(name)


def wait_for(fn, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def write(tmp_path, port: int = 8000, replicas: int = 1) -> str:
    p = tmp_path / "docker-compose.yml"
    p.write_text(NOTES.format(port=port, replicas=replicas))
    return str(p)


def running(eng, stack: str) -> dict[str, list]:
    out: dict[str, list] = {}
    for t in eng.stack_tasks(stack):
        if t.desired == "running" and t.state == "running":
            out.setdefault(t.service_name, []).append(t)
    return out


def test_deploy_ls_ps_update_rm(sw, tmp_path):
    a = sw["a"]
    warnings: list[str] = []
    lines = a.stack_deploy("mystack", [write(tmp_path)], warn=warnings.append)
    try:
        assert warnings == ["Ignoring unsupported options: links"]
        assert lines == ["Creating network mystack_default", "Creating service mystack_mysql",
                         "Creating service mystack_web"]
        net = a.network("mystack_default")
        assert (net.driver, getattr(net.scope, "value", net.scope), net.attachable) == \
            ("overlay", "swarm", False)
        assert net.labels["com.docker.stack.namespace"] == "mystack"
        assert a.stacks() == [("mystack", 2)]
        assert [s.name for s in a.stack_services("mystack")] == ["mystack_mysql", "mystack_web"]
        tasks = wait_for(lambda: len(running(a, "mystack")) == 2 and running(a, "mystack"))
        assert tasks, a.stack_tasks("mystack")
        assert {t.name for ts in tasks.values() for t in ts} == {"mystack_mysql.1", "mystack_web.1"}

        # the short name `mysql` answers from a web task, with mystack_mysql's VIP
        web = tasks["mystack_web"][0]
        mysql = a.service("mystack_mysql")
        vip = mysql.vips[net.id].split("/")[0]
        eng = sw[next(k for k in IPS if sw[k].node_name == web.node)]
        resolve = ["python3", "-c", "import socket,sys; print(socket.gethostbyname(sys.argv[1]))"]
        assert wait_for(lambda: eng.exec_output(web.container_name, resolve + ["mysql"])[1].strip()
                        == vip), "mysql does not resolve to its VIP"
        assert eng.exec_output(web.container_name, resolve + ["mystack_mysql"])[1].strip() == vip

        # deploying again updates in place: same ids, the new command and replica count
        ids = {s.name: s.id for s in a.stack_services("mystack")}
        lines = a.stack_deploy("mystack", [write(tmp_path, port=8001, replicas=2)],
                               warn=lambda w: None)
        assert lines == [f"Updating service mystack_mysql (id: {ids['mystack_mysql']})",
                         f"Updating service mystack_web (id: {ids['mystack_web']})"]
        web_svc = a.service("mystack_web")
        assert web_svc.id == ids["mystack_web"] and web_svc.spec.replicas == 2
        assert web_svc.spec.command[-1] == "8001"
        assert wait_for(lambda: len(running(a, "mystack").get("mystack_web", [])) == 2, 30)
        assert a.stacks() == [("mystack", 2)]
    finally:
        lines = a.stack_remove("mystack")
    assert lines == ["Removing service mystack_mysql", "Removing service mystack_web",
                     "Removing network mystack_default"]
    assert a.stacks() == []
    assert "mystack_default" not in {n.name for n in a.networks()}
    assert a.stack_remove("mystack") == []


def test_an_invalid_file_makes_nothing(sw, tmp_path):
    from netkit.errors import InvalidArgument, NotFound
    a = sw["a"]
    bad = tmp_path / "bad.yml"
    bad.write_text("services:\n  web: {command: x, networks: [back]}\n  db: {image: nginx}\n"
                   "networks:\n  back: {}\n")
    with pytest.raises(InvalidArgument, match="has no command"):
        a.stack_deploy("bad", [str(bad)])
    ext = tmp_path / "ext.yml"
    ext.write_text("services:\n  web: {command: sleep 600, networks: [n]}\n"
                   "networks:\n  n: {external: true, name: nowhere}\n")
    with pytest.raises(NotFound, match="declared as external, but could not be found"):
        a.stack_deploy("bad", [str(ext)])
    assert a.stacks() == [] and not [n for n in a.networks() if n.name.startswith("bad_")]
