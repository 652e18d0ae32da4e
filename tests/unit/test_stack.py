"""A stack's compose files -> networks, secrets, configs and ServiceSpecs (netkit/services/stack.py),
and every refusal of a bad file: pure, no cluster."""

from __future__ import annotations

import textwrap

import pytest

from netkit.errors import InvalidArgument
from netkit.services import stack
from netkit.services.model import FileRef, PortConfig, RestartPolicy, UpdateConfig

NOTES = """
version: '3.0'
services:
  mysql:
    command: mysqld            # any long-running command
  web:
    command: apachectl -DFOREGROUND
    links:
      - mysql:db
    ports:
      - 80:80
"""


def write(tmp_path, text: str, name: str = "stack.yml") -> str:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return str(p)


def load(tmp_path, text: str, name: str = "mystack", env=None) -> stack.StackPlan:
    return stack.load([write(tmp_path, text)], name, env or {})


def refused(tmp_path, text: str, *parts: str, env=None) -> str:
    with pytest.raises(InvalidArgument) as exc:
        load(tmp_path, text, env=env)
    msg = str(exc.value)
    assert "\n" not in msg
    for part in parts:
        assert part in msg, msg
    return msg


def test_the_notes_file(tmp_path):
    plan = load(tmp_path, NOTES)
    assert plan.warnings == ("Ignoring unsupported options: links",)
    assert list(plan.networks) == ["default"]
    net = plan.networks["default"]
    assert (net.name, net.driver, net.attachable, net.external) == ("mystack_default", "overlay", False, False)
    assert net.labels == {stack.NAMESPACE: "mystack"}
    web, db = plan.services["web"], plan.services["mysql"]
    assert web.name == "mystack_web" and db.name == "mystack_mysql"
    assert web.command == ("apachectl", "-DFOREGROUND")
    assert web.ports == (PortConfig(80, 80, "tcp", "ingress"),)
    assert web.networks == ("mystack_default",)
    assert web.aliases == {"mystack_default": ["web"]} and db.aliases == {"mystack_default": ["mysql"]}
    assert web.labels == {stack.NAMESPACE: "mystack"} == web.container_labels
    assert web.replicas == 1 and web.mode == "replicated" and web.endpoint_mode == "vip"
    assert plan.replicas_set == frozenset()


def test_deploy_keys(tmp_path):
    (tmp_path / "pw.txt").write_bytes(b"s3cret\n")
    (tmp_path / "site.conf").write_text("listen 80\n")
    plan = load(tmp_path, """
        services:
          web:
            command: [python3, -m, http.server, "80"]
            hostname: web-host
            environment: [A=1, B]
            labels: {tier: front}
            ports:
              - "8080:80/udp"
              - {target: 443, published: 8443, mode: host}
              - "9000-9001:90-91"
            networks:
              back: {aliases: [www]}
              front:
            secrets: [pw, {source: pw, target: other, mode: 0400, uid: "33"}]
            configs: [site, {source: site, target: /etc/site.conf}]
            stop_grace_period: 1m30s
            stop_signal: SIGINT
            deploy:
              mode: replicated
              replicas: 3
              endpoint_mode: vip
              labels: [svc=1]
              placement: {constraints: ["node.role==worker", "node.labels.zone != b"]}
              update_config: {parallelism: 2, delay: 10s, order: start-first, failure_action: rollback,
                              monitor: 2s, max_failure_ratio: 0.5}
              rollback_config: {parallelism: 0, failure_action: continue}
              restart_policy: {condition: on-failure, delay: 1s, max_attempts: 3, window: 2m}
        networks:
          back: {driver: overlay, ipam: {config: [{subnet: 10.0.9.0/24}]}, labels: [x=y]}
          front: {name: shared_front, attachable: true, internal: true, driver_opts: {k: v}}
        secrets:
          pw: {file: ./pw.txt}
        configs:
          site: {file: site.conf, name: site_v1}
        """, env={"B": "from-env"})
    web = plan.services["web"]
    assert web.env == {"A": "1", "B": "from-env"} and web.hostname == "web-host"
    assert web.container_labels == {"tier": "front", stack.NAMESPACE: "mystack"}
    assert web.labels == {"svc": "1", stack.NAMESPACE: "mystack"}
    assert web.ports == (PortConfig(8080, 80, "udp", "ingress"), PortConfig(8443, 443, "tcp", "host"),
                         PortConfig(9000, 90), PortConfig(9001, 91))
    assert web.networks == ("mystack_back", "shared_front")
    assert web.aliases == {"mystack_back": ["web", "www"], "shared_front": ["web"]}
    assert plan.networks["back"].subnets == ("10.0.9.0/24",)
    assert plan.networks["back"].labels == {"x": "y", stack.NAMESPACE: "mystack"}
    front = plan.networks["front"]
    assert (front.name, front.attachable, front.internal, front.options) == \
        ("shared_front", True, True, {"k": "v"})
    assert plan.secrets["pw"].name == "mystack_pw" and plan.secrets["pw"].data == b"s3cret\n"
    assert plan.configs["site"].name == "site_v1"
    assert web.secrets == (FileRef("mystack_pw", "pw"), FileRef("mystack_pw", "other", 0o400, "33"))
    assert web.configs == (FileRef("site_v1", "/site"), FileRef("site_v1", "/etc/site.conf"))
    assert web.stop_grace_period == 90.0 and web.stop_signal == "SIGINT"
    assert web.replicas == 3 and plan.replicas_set == {"web"}
    assert web.constraints == ("node.role==worker", "node.labels.zone != b")
    assert web.update == UpdateConfig(2, 10.0, "start-first", "rollback", 2.0, 0.5)
    assert web.rollback == UpdateConfig(parallelism=0, failure_action="continue")
    assert web.restart == RestartPolicy("on-failure", 3, 1.0, 120.0)


def test_global_dnsrr_and_externals(tmp_path):
    # ingress ports cannot go with dnsrr: host mode can
    plan = load(tmp_path, """
        services:
          agent:
            command: sleep infinity
            image: busybox
            deploy: {mode: global, endpoint_mode: dnsrr}
            networks: [ext]
            secrets: [token]
            ports: [{target: 53, published: 53, protocol: udp, mode: host}]
            container_name: x
            healthcheck: {test: [CMD, "true"]}
        networks:
          ext: {external: true, name: outside}
        secrets:
          token: {external: {name: cluster_token}}
        """)
    agent = plan.services["agent"]
    assert agent.mode == "global" and agent.endpoint_mode == "dnsrr"
    assert plan.networks["ext"].external and plan.networks["ext"].name == "outside"
    assert agent.networks == ("outside",)
    assert plan.secrets["token"].external and agent.secrets == (FileRef("cluster_token", "token"),)
    assert "default" not in plan.networks
    assert any(w.startswith("Ignoring deprecated options:\n\ncontainer_name: Setting the container "
                            "name is not supported.") for w in plan.warnings)
    assert any("Ignoring image of services agent" in w for w in plan.warnings)
    assert any("services.agent.healthcheck: ignored" in w for w in plan.warnings)


def test_several_files_merge_and_entrypoint(tmp_path):
    a = write(tmp_path, """
        services:
          web:
            command: serve
            entrypoint: [python3]
            environment: {A: "1", B: "2"}
            deploy: {replicas: 2}
            ports: ["80:80"]
        """, "a.yml")
    b = write(tmp_path, """
        services:
          web:
            environment: {B: "3"}
            deploy: {replicas: 5}
            ports: ["443:443"]
          db:
            command: "db --port ${PORT:-5432}"
        """, "b.yml")
    plan = stack.load([a, b], "s", {})
    web = plan.services["web"]
    assert web.command == ("python3", "serve")
    assert web.env == {"A": "1", "B": "3"} and web.replicas == 5
    assert [p.published for p in web.ports] == [80, 443]
    assert plan.services["db"].command == ("db", "--port", "5432")


@pytest.mark.parametrize("text,parts", [
    ("services:\n  web: {image: nginx}\n", ['has no command', '("nginx")']),
    ("services:\n  web: {command: x, deploy: {mode: global, replicas: 2}}\n",
     ["replicas can only be used with replicated mode"]),
    ("services:\n  web: {command: x, networks: [nope]}\n", ["refers to undefined network nope"]),
    ("services:\n  web: {command: x, secrets: [nope]}\n", ["refers to undefined secret nope"]),
    ("services:\n  web: {command: x, configs: [nope]}\n", ["refers to undefined config nope"]),
    ("services:\n  web: {command: x, bogus: 1}\n", ["services.web.bogus", "unknown key"]),
    ("services:\n  web: {command: x, deploy: {replicas: many}}\n", ["expected an integer"]),
    ("services:\n  web: {command: x, deploy: {mode: both}}\n", ["deploy.mode", "expected one of"]),
    ("services:\n  web: {command: x, deploy: {placement: {constraints: [node.role]}}}\n",
     ["constraint expected one operator from ==, !="]),
    ("services:\n  web: {command: x, ports: ['1.2.3.4:80:80']}\n", ["a host IP cannot be given"]),
    ("services:\n  web: {command: x, ports: ['80:80/sctp']}\n", ['invalid proto "sctp"']),
    ("services:\n  web: {command: x, ports: ['80-82:80-81']}\n", ["ranges differ"]),
    ("services:\n  web: {command: x, deploy: {endpoint_mode: dnsrr}, ports: ['80:80']}\n",
     ["can't be used with dnsrr mode"]),
    ("services:\n  a: {command: x, ports: ['80:80']}\n  b: {command: y, ports: ['80:8080']}\n",
     ["port '80' is published by both services a and b"]),
    ("services:\n  web: {command: x, stop_signal: SIGNOPE}\n", ["invalid signal: SIGNOPE"]),
    ("services:\n  web: {command: x, stop_grace_period: soon}\n", ["expected a duration"]),
    ("services:\n  web: {command: x, networks: [n]}\nnetworks:\n  n: {driver: bridge}\n",
     ['driver "bridge" is not swarm-scoped']),
    ("services:\n  web: {command: x, networks: [n]}\nnetworks:\n  n: {external: true, driver: overlay}\n",
     ['conflicting parameters "external" and "driver" specified for network "n"']),
    ("services:\n  web: {command: x, secrets: [s]}\nsecrets:\n  s: {name: y}\n",
     ['secret "s" must declare either "file" or "external"']),
    ("services:\n  web: {command: x, secrets: [s]}\nsecrets:\n  s: {file: ./missing}\n",
     ["no such file or directory"]),
    ("services:\n  web: {command: x, secrets: [{source: s, target: /etc/s}]}\n"
     "secrets:\n  s: {external: true}\n", ['invalid secret target "/etc/s"']),
    ("services:\n  web: {command: '${NEED:?set NEED}'}\n", ["set NEED"]),
    ("", ["empty compose file"]),
    ("[1, 2]\n", ["Top-level object must be a mapping"]),
])
def test_invalid_files(tmp_path, text, parts):
    refused(tmp_path, text, *parts)


def test_errors_name_file_and_line(tmp_path):
    msg = refused(tmp_path, "services:\n  web:\n    command: x\n    deploy:\n      replicas: -1\n")
    assert "stack.yml:5: services.web.deploy.replicas: must be at least 0" in msg


def test_stack_names_and_files(tmp_path):
    with pytest.raises(InvalidArgument, match='invalid stack name "-x"'):
        stack.load([write(tmp_path, NOTES)], "-x", {})
    with pytest.raises(InvalidArgument, match="Please specify a Compose file"):
        stack.load([], "s", {})
    with pytest.raises(InvalidArgument, match="not found"):
        stack.load([str(tmp_path / "nope.yml")], "s", {})


def test_a_lab_names_stack_files(tmp_path):
    from netkit.labs.project import load_project
    write(tmp_path, NOTES, "notes.yml")
    lab = write(tmp_path, """
        name: stk
        x-netkit:
          nodes: {n1: {}}
          swarm: {manager: n1}
          stacks: {mystack: notes.yml, two: [notes.yml, notes.yml]}
        """, "lab.yml")
    p = load_project(lab)
    assert p.stacks == {"mystack": (str(tmp_path / "notes.yml"),),
                        "two": (str(tmp_path / "notes.yml"),) * 2}
    assert p.to_dict()["x-netkit"]["stacks"]["mystack"] == [str(tmp_path / "notes.yml")]
    write(tmp_path, "services:\n  web: {image: nginx}\n", "notes.yml")
    with pytest.raises(InvalidArgument, match="has no command"):     # refused before `up`
        load_project(lab)
    write(tmp_path, "name: stk\nx-netkit:\n  stacks: {s: notes.yml}\n", "lab.yml")
    with pytest.raises(InvalidArgument, match="x-netkit.swarm is missing"):
        load_project(lab)
