"""Swarm objects survive their JSON round trip through the cluster store's rows."""

from netkit.services.model import (FileRef, NodeAttrs, PortConfig, RestartPolicy, Service,
                                   ServiceSpec, Task, UpdateConfig, new_object_id, node_id)


def test_round_trips():
    spec = ServiceSpec("web", ("sleep", "inf"), replicas=3, networks=("n1",),
                       ports=(PortConfig(8080, 80),), constraints=("node.role==worker",),
                       env={"A": "1"}, secrets=(FileRef("pw", "pw", 0o400),),
                       restart=RestartPolicy("on-failure", 3), update=UpdateConfig(2, 1.5))
    svc = Service("s" * 25, spec, 2, previous=spec, vips={"n1": "10.0.9.2/24"})
    assert Service.from_dict(svc.to_dict()) == svc
    task = Task("t" * 25, svc.id, "web", 2, node="n1", node_id="x" * 25, spec=spec)
    assert Task.from_dict(task.to_dict()) == task
    assert task.name == "web.2" and task.container_name == f"web.2.{'t' * 25}"
    glob = Task("g" * 25, svc.id, "mon", None, node="n1", node_id="y" * 25)
    assert glob.name == "mon." + "y" * 25
    assert NodeAttrs.from_dict(None) == NodeAttrs()
    assert ServiceSpec.from_dict({**spec.to_dict(), "added_later": 1}) == spec


def test_ids():
    a, b = new_object_id(), new_object_id()
    assert a != b and len(a) == 25 and a.isalnum() and a == a.lower()
    assert node_id("c", "n1") == node_id("c", "n1") != node_id("c", "n2")
    assert len(node_id("c", "n1")) == 25
