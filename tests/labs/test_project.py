"""The lab file format: validation errors (file, line, key), normalization, naming (pure)."""

from __future__ import annotations

import os

import pytest

from netkit.errors import InvalidArgument
from netkit.labs.project import load_project, order
from netkit.labs.source import LabFileError


def error_of(path: str, **kw) -> str:
    with pytest.raises(LabFileError) as e:
        load_project(path, **kw)
    return str(e.value)


# -- errors: exact file, line and key ----------------------------------------------------------

@pytest.mark.parametrize("body, line, message", [
    ("services:\n  web:\n    comand: sleep 1\n", 3,
     'services.web.comand: unknown key (did you mean "command"?)'),
    ("services:\n  web:\n    scale: three\n", 3, 'services.web.scale: expected an integer, got "three"'),
    ("services:\n  web:\n    scale: -1\n", 3, "services.web.scale: must be at least 0, got -1"),
    ("services:\n  web:\n    ports: 80\n", 3,
     "services.web.ports: expected a list of strings or integers or mappings, got 80"),
    ("services:\n  web:\n    ports:\n      - 80\n      - [1]\n", 5,
     "services.web.ports[1]: expected a string or an integer or a mapping, got a list"),
    ("services:\n  web:\n    networks:\n      front:\n        alias: [x]\n", 5,
     'services.web.networks.front.alias: unknown key (did you mean "aliases"?)'),
    ("services:\n  web:\n    healthcheck:\n      test: [CMD, 'true']\n      interval: soon\n", 5,
     'services.web.healthcheck.interval: expected a duration ("10s", "1m30s", "500ms"), got "soon"'),
    ("services:\n  web:\n    depends_on:\n      db:\n        condition: service_ready\n", 5,
     "services.web.depends_on.db.condition: expected one of service_started, service_healthy, "
     'service_completed_successfully, got "service_ready"'),
    ("services:\n  web:\n    networks:\n      default:\n        priority: 1\n", 5,
     "services.web.networks.default.priority: not supported by netkit"),
    ("services:\n  web:\n    restart: sometimes\n", 3, "services.web.restart: invalid restart policy 'sometimes'"),
    ("services:\n  web:\n    restart: always:3\n", 3, "services.web.restart: invalid restart policy: maximum "
                                                        "retry count can only be used with 'on-failure'"),
    ("services:\n  web:\n    restart: on-failure:x\n", 3, "services.web.restart: invalid restart policy format: "
     'maximum retry count must be an integer: strconv.Atoi: parsing "x": invalid syntax'),
    ("services:\n  web:\n    restart: false\n", 3, "services.web.restart: expected a string, got false"),
    ("services:\n  web:\n    stop_signal: SIGNOPE\n", 3, "services.web.stop_signal: Invalid signal: SIGNOPE"),
    ("services:\n  web:\n    stop_grace_period: 1 minute\n", 3, 'services.web.stop_grace_period: expected a '
                                                               'duration ("10s", "1m30s", "500ms"), got "1 minute"'),
    ("services:\n  web:\n    stop_grace_period: -1s\n", 3, 'services.web.stop_grace_period: expected a '
                                                          'duration ("10s", "1m30s", "500ms"), got "-1s"'),
    ("networks:\n  n1:\n    internal: maybe\n", 3, 'networks.n1.internal: expected a boolean, got "maybe"'),
    ("networks:\n  n1:\n    ipam:\n      config:\n        - subnet: 10.1.0.0/24\n          iprange: x\n", 6,
     'networks.n1.ipam.config[0].iprange: unknown key (did you mean "ip_range"?)'),
    ("servicess: {}\n", 1, 'servicess: unknown key (did you mean "services"?)'),
    ("name: My_Lab\n", 1, 'name: invalid value "My_Lab": it must contain only characters from [a-z0-9_-] '
                          "and start with [a-z0-9]"),
    ("services:\n  web:\n    x-netkit: {nodes: a}\n", 3, 'services.web.x-netkit.nodes: unknown key (did you mean "node"?)'),
    ("x-netkit:\n  nodes:\n    BadName: {}\n", 3, "x-netkit.nodes.BadName: invalid name: use 1-13 of [a-z0-9-]"),
    ("x-netkit:\n  lans:\n    l1: {gateway: 10.0.0.1}\n", 3, 'x-netkit.lans.l1: missing key "subnet"'),
])
def test_invalid_files_name_file_line_and_key(write, body, line, message):
    path = write("lab.yml", body)
    assert error_of(path) == f"{path}:{line}: {message}"


@pytest.mark.parametrize("body, line, message", [
    ("services:\n  web:\n    networks: [front]\n", 3, 'services.web.networks.front: service "web" refers to '
                                                         "undefined network front"),
    ("services:\n  web:\n    depends_on: [db]\n", 3, 'services.web.depends_on.db: service "web" depends on '
                                                       'undefined service "db"'),
    ("services:\n  web:\n    links: [db]\n", 3, 'services.web.links: service "web" depends on undefined service "db"'),
    ("services:\n  a:\n    depends_on: [b]\n  b:\n    depends_on: [a]\n", 3,
     "services.a.depends_on: dependency cycle detected: a -> b -> a"),
    ("services:\n  web:\n    network_mode: host\n    networks: [x]\n", 3,
     "services.web.network_mode: service web declares mutually exclusive `network_mode` and `networks`"),
    ("services:\n  web:\n    network_mode: bridged\n", 3,
     'services.web.network_mode: invalid network mode "bridged": use host, none, bridge, service:NAME '
     "or container:NAME"),
    ("services:\n  a: {}\n  web:\n    network_mode: service:a\n    hostname: h\n", 5,
     "services.web.hostname: conflicting options: hostname and network_mode service:a"),
    ("services:\n  web:\n    scale: 2\n    deploy: {replicas: 3}\n", 2,
     "services.web: can't set distinct values on 'scale' and 'deploy.replicas'"),
    ("services:\n  web:\n    scale: 2\n    container_name: w\n", 4,
     "services.web.container_name: container_name \"w\" is set, so the service can't be scaled beyond 1 container"),
    ("services:\n  web:\n    ports: ['80:80:80:80']\n", 3, "services.web.ports[0]: invalid port format: 80:80:80:80"),
    ("services:\n  web:\n    healthcheck: {test: [RUN, x]}\n", 3,
     'services.web.healthcheck.test: the first element must be "CMD", "CMD-SHELL" or "NONE"'),
    ("services:\n  db: {}\n  web:\n    depends_on:\n      db: {condition: service_healthy}\n", 5,
     'services.web.depends_on.db: condition service_healthy, but service "db" has no healthcheck'),
    ("services:\n  web:\n    command: sh -c 'oops\n", 3, "services.web.command: invalid command line: No closing quotation"),
    ("networks:\n  ext:\n    external: true\n    driver: bridge\n", 4,
     'networks.ext.driver: conflicting parameters "external" and "driver" specified for network "ext"'),
])
def test_semantic_errors_name_file_line_and_key(write, body, line, message):
    path = write("lab.yml", body)
    assert error_of(path) == f"{path}:{line}: {message}"


def test_errors_in_a_second_file_name_that_file(write):
    base = write("lab.yml", "services:\n  web:\n    command: sleep 1\n")
    over = write("override.yml", "services:\n  web:\n    scale: many\n")
    assert error_of([base, over]) == f'{over}:3: services.web.scale: expected an integer, got "many"'


def test_images_build_volumes_are_ignored_with_one_warning_each(write):
    path = write("lab.yml", """
        services:
          web: {image: nginx, build: ., volumes: [data:/data]}
          db: {image: mysql}
        volumes: {data: {}}
        """)
    p = load_project(path)
    assert p.warnings == [
        "services.web.image, services.db.image: ignored (netkit runs host commands, not images)",
        "services.web.build: ignored (netkit runs host commands, not images)",
        "services.web.volumes, volumes: ignored (netkit runs host commands, not images)",
    ]
    assert "image" not in p.to_dict()["services"]["web"]


# -- interpolation and .env through the loader ---------------------------------------------------

def test_interpolation_with_env_file_and_environment(write, monkeypatch):
    write(".env", "PORT=8080\nNET=backnet\n# comment\n")
    path = write("lab.yml", """
        name: ${LAB:-envdemo}
        services:
          web:
            command: serve ${PORT}
            scale: ${REPLICAS:-2}
            networks: [back]
            environment:
              - GREETING=hello $${USER}
        networks:
          back: {name: "${NET}"}
        """)
    monkeypatch.setenv("NET", "fromshell")
    p = load_project(path)
    assert p.name == "envdemo"
    assert p.services["web"].command == ("serve", "8080")
    assert p.services["web"].replicas == 2                        # "2" cast to an integer
    assert p.networks["back"].name == "fromshell"                 # the shell wins over .env
    assert p.services["web"].environment == {"GREETING": "hello ${USER}"}


def test_env_file_option_replaces_dot_env(write):
    write(".env", "PORT=1\n")
    other = write("prod.env", "PORT=2\n")
    path = write("lab.yml", "services:\n  web:\n    command: serve ${PORT}\n")
    assert load_project(path, env_files=[other]).services["web"].command == ("serve", "2")


def test_environment_forms(write, monkeypatch):
    monkeypatch.setenv("FROM_SHELL", "s")
    path = write("lab.yml", """
        services:
          a: {environment: {X: 1, Y: true, Z: null, FROM_SHELL: null}}
          b: {environment: [X=1, FROM_SHELL, MISSING]}
        """)
    p = load_project(path)
    assert p.services["a"].environment == {"X": "1", "Y": "true", "FROM_SHELL": "s"}
    assert p.services["b"].environment == {"X": "1", "FROM_SHELL": "s"}


# -- naming ----------------------------------------------------------------------------------------

def test_project_name_precedence(write, monkeypatch):
    path = write("lab.yml", "name: fromfile\nservices:\n  web: {}\n", dir="My Dir.x")
    assert load_project(path).name == "fromfile"
    assert load_project(path, project="given").name == "given"
    monkeypatch.setenv("COMPOSE_PROJECT_NAME", "fromenv")
    assert load_project(path).name == "fromenv"
    assert load_project(path, project="given").name == "given"
    monkeypatch.delenv("COMPOSE_PROJECT_NAME")
    bare = write("lab.yml", "services:\n  web: {}\n", dir="My Dir.x")
    assert load_project(bare).name == "mydirx"                     # the directory, normalized
    with pytest.raises(InvalidArgument, match='invalid project name "Bad!" \\(-p\\)'):
        load_project(bare, project="Bad!")


def test_default_network_and_network_names(write):
    path = write("lab.yml", """
        name: p
        services:
          a: {}
          b: {networks: [front]}
          c: {network_mode: host}
        networks:
          front: {}
          named: {name: exact}
          ext: {external: true}
        """)
    p = load_project(path)
    assert {k: n.name for k, n in p.networks.items()} == {
        "front": "p_front", "named": "exact", "ext": "ext", "default": "p_default"}
    assert [n.network for n in p.services["a"].networks] == ["default"]
    assert p.services["c"].networks == ()


def test_no_default_network_when_unused(write):
    p = load_project(write("lab.yml", "services:\n  a: {networks: [n]}\nnetworks:\n  n: {}\n"))
    assert "default" not in p.networks


def test_order_follows_dependencies_then_file_order(write):
    path = write("lab.yml", """
        services:
          web: {depends_on: {db: {condition: service_healthy}}, links: [cache]}
          side: {network_mode: "service:web"}
          db: {healthcheck: {test: "true"}}
          cache: {}
          lone: {}
        """)
    p = load_project(path)
    assert order(p.services) == ["db", "cache", "web", "side", "lone"]
    assert [(d.service, d.condition) for d in p.services["web"].depends_on] == [
        ("db", "service_healthy"), ("cache", "service_started")]        # links imply depends_on


def test_optional_dependency_may_be_missing(write):
    p = load_project(write("lab.yml", "services:\n  web:\n    depends_on:\n      db: {required: false}\n"))
    assert order(p.services) == ["web"]


def test_healthcheck_forms_and_defaults(write):
    path = write("lab.yml", """
        services:
          a: {healthcheck: {test: "curl -f x"}}
          b: {healthcheck: {test: [CMD-SHELL, exit 0], interval: 1m30s, timeout: 500ms, retries: 0,
                            start_period: 2s}}
          c: {healthcheck: {test: [CMD, probe, "1"]}}
          d: {healthcheck: {test: [NONE]}}
          e: {healthcheck: {test: [CMD, x], disable: true}}
        """)
    s = load_project(path).services
    assert s["a"].healthcheck.test == ("CMD-SHELL", "curl -f x")
    assert s["a"].healthcheck.argv() == ["sh", "-c", "curl -f x"]
    b = s["b"].healthcheck
    assert (b.interval, b.timeout, b.retries, b.start_period) == (90.0, 0.5, 3, 2.0)
    assert s["c"].healthcheck.argv() == ["probe", "1"]
    assert (s["a"].healthcheck.interval, s["a"].healthcheck.retries) == (30.0, 3)
    assert s["d"].healthcheck is None and s["e"].healthcheck is None


def test_restart_stop_signal_and_grace_period(write):
    path = write("lab.yml", """
        services:
          a: {restart: "no"}
          b: {restart: always, stop_signal: SIGUSR1, stop_grace_period: 1m30s}
          c: {restart: on-failure, stop_signal: "15", stop_grace_period: 500ms}
          d: {restart: "on-failure:2", stop_grace_period: 0s}
          e: {restart: unless-stopped, stop_grace_period: 1.5s}
          f: {restart: any}
          g: {restart: none}
          h: {restart: "on-failure:0", stop_grace_period: "${GRACE:-3s}"}
        """)
    s = load_project(path).services
    assert {k: v.restart for k, v in s.items()} == {
        "a": "no", "b": "always", "c": "on-failure", "d": "on-failure:2", "e": "unless-stopped",
        "f": "always", "g": "no", "h": "on-failure"}
    assert (s["b"].stop_signal, s["c"].stop_signal, s["a"].stop_signal) == ("SIGUSR1", "15", None)
    # Docker's stop timeout is in whole seconds: the grace period, rounded up
    assert {k: (v.stop_grace_period, v.stop_timeout) for k, v in s.items() if k in "abcdeh"} == {
        "a": (None, None), "b": (90.0, 90), "c": (0.5, 1), "d": (0.0, 0), "e": (1.5, 2), "h": (3.0, 3)}


def test_ports_expose_dns_scale(write):
    path = write("lab.yml", """
        services:
          web:
            ports: [80, "8080:80", "127.0.0.1:9000:90/udp",
                    {target: 81, published: 8081}, {target: 82, host_ip: 127.0.0.1, protocol: udp}]
            expose: [3000, "4000/udp"]
            dns: 10.0.0.53
            deploy: {replicas: 4}
        """)
    web = load_project(path).services["web"]
    assert web.ports == ("80", "8080:80", "127.0.0.1:9000:90/udp", "8081:81/tcp", "127.0.0.1::82/udp")
    assert web.expose == ("3000", "4000/udp")
    assert web.dns == ("10.0.0.53",)
    assert web.replicas == 4
    assert load_project(path, scale={"web": 1}).services["web"].replicas == 1
    with pytest.raises(InvalidArgument, match="no such service: nope"):
        load_project(path, scale={"nope": 1})


def test_multiple_files_merge(write):
    base = write("lab.yml", """
        services:
          web:
            command: serve
            ports: ["80"]
            environment: {A: "1", B: "1"}
            networks: [front]
        networks:
          front: {}
        """)
    over = write("lab.override.yml", """
        services:
          web:
            ports: ["81"]
            environment: [B=2]
            networks:
              front: {aliases: [www]}
          extra: {}
        """)
    p = load_project([base, over])
    web = p.services["web"]
    assert web.command == ("serve",)
    assert web.ports == ("80", "81")
    assert web.environment == {"A": "1", "B": "2"}
    assert web.networks[0].aliases == ("www",)
    assert set(p.services) == {"web", "extra"}


def test_nodes_and_lans(write):
    path = write("lab.yml", """
        services:
          api: {x-netkit: {node: a}}
          other: {x-netkit: {node: existing-node}}
        x-netkit:
          lans:
            l: {name: "${LAN:-mylan}", subnet: 192.168.5.0/24, gateway: 192.168.5.1}
          nodes:
            a: {name: n-a, lan: l, ip: 192.168.5.10}
            b: {lan: l, ip: 192.168.5.11, dns: 192.168.5.1}
        """)
    p = load_project(path)
    assert p.lans["l"].name == "mylan"
    assert (p.nodes["a"].name, p.nodes["a"].lan) == ("n-a", "mylan")
    assert p.nodes["b"].dns == ("192.168.5.1",)
    assert p.services["api"].node == "n-a"                     # a key of x-netkit.nodes -> its name
    assert p.services["other"].node == "existing-node"        # or an existing node
    bad = write("lab.yml", "x-netkit:\n  nodes:\n    a: {lan: l}\n  lans:\n    l: {subnet: 10.0.0.0/24}\n")
    assert error_of(bad) == f"{bad}:3: x-netkit.nodes.a.lan: a node on a LAN needs ip"


def test_service_mode_across_nodes_is_refused(write):
    path = write("lab.yml", """
        services:
          a: {x-netkit: {node: n1}}
          b: {network_mode: "service:a", x-netkit: {node: n2}}
        """)
    assert error_of(path) == (f'{path}:3: services.b.network_mode: service "b" and "a" run on different '
                              "nodes: they cannot share a network namespace")


def test_config_output_is_normalized_and_loads_again(write, tmp_path):
    import yaml
    path = write("lab.yml", """
        name: cfg
        services:
          web:
            command: python3 -m http.server 80
            networks: {front: {aliases: [www]}}
            depends_on: [db]
            healthcheck: {test: "true", interval: 90s}
          db: {}
        networks:
          front:
            ipam: {config: [{subnet: 10.9.0.0/24}]}
        x-netkit:
          checks:
            - reach: {from: web, to: db, port: 80, timeout: 500ms}
        """)
    data = load_project(path).to_dict()
    assert data["services"]["web"]["command"] == ["python3", "-m", "http.server", "80"]
    assert data["services"]["web"]["depends_on"] == {"db": {"condition": "service_started", "required": True}}
    assert data["services"]["web"]["healthcheck"]["interval"] == "1m30s"
    assert data["networks"]["front"] == {"name": "cfg_front", "driver": "bridge",
                                         "ipam": {"config": [{"subnet": "10.9.0.0/24"}]}}
    assert data["networks"]["default"]["name"] == "cfg_default"
    assert data["x-netkit"]["checks"] == [{"reach": {"from": "web", "to": "db", "port": 80,
                                                     "timeout": "500ms"}}]
    again = tmp_path / "again.yml"
    again.write_text(yaml.safe_dump(data, sort_keys=False))
    assert load_project(str(again)).to_dict() == data


def test_default_file_names(tmp_path, monkeypatch):
    from netkit.labs.project import find_files
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidArgument, match="no lab file found"):
        find_files()
    (tmp_path / "compose.yaml").write_text("services: {}\n")
    assert find_files() == ["compose.yaml"]
    (tmp_path / "lab.yml").write_text("services: {}\n")
    assert find_files() == ["lab.yml"]
    monkeypatch.chdir("/")
    assert find_files(str(tmp_path)) == [os.path.join(str(tmp_path), "lab.yml")]


def test_privilege_keys_map_to_the_container_spec(tmp_path):
    """cap_add, cap_drop, privileged, user, sysctls (map or K=V list) reach `docker run`."""
    from netkit.labs import plan
    f = tmp_path / "lab.yml"
    f.write_text("services:\n  r1:\n    command: sleep infinity\n    cap_add: [NET_ADMIN]\n"
                 "    cap_drop: [MKNOD]\n    user: 1000:1000\n    sysctls: [net.ipv4.ip_forward=1]\n"
                 "  r2:\n    privileged: true\n    user: 0\n    sysctls: {net.ipv6.conf.all.forwarding: 1}\n")
    p = load_project(str(f), project="p")
    r1 = plan.container_spec(p, p.services["r1"], 1)
    assert (r1.cap_add, r1.cap_drop, r1.privileged, r1.user, r1.sysctls) == \
        (("NET_ADMIN",), ("MKNOD",), False, "1000:1000", {"net.ipv4.ip_forward": "1"})
    r2 = plan.container_spec(p, p.services["r2"], 1)
    assert (r2.privileged, r2.user, r2.sysctls) == (True, "0", {"net.ipv6.conf.all.forwarding": "1"})
