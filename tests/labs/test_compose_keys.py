"""Compose keys of real files, loaded (no root): the fixtures under tests/fixtures/compose
(shaped like awesome-compose samples), every error of a file at once, warnings for the keys
that need images or a full runtime, profiles, extends, include, env_file, entrypoint."""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner

from netkit.cli.main import cli
from netkit.labs import plan
from netkit.labs.project import load_project
from netkit.labs.source import LabFileError

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "fixtures", "compose")
SHOP = os.path.join(FIXTURES, "shop", "compose.yaml")
PROFILES = os.path.join(FIXTURES, "profiles", "compose.yaml")
EXTENDS = os.path.join(FIXTURES, "extends", "compose.yaml")
IDLE = ["sh", "-c", "trap exit TERM; sleep infinity & wait"]


def test_a_web_db_proxy_stack_loads_with_warnings_only():
    p = load_project(SHOP, environ={})
    assert list(p.services) == ["proxy", "web", "db"]
    proxy, web, db = p.services["proxy"], p.services["web"], p.services["db"]
    assert proxy.command == tuple(IDLE)                          # entrypoint + command
    assert proxy.extra_hosts == ("upstream.example=192.0.2.10", "legacy.example=192.0.2.11")
    assert web.extra_hosts == ("cache.example=192.0.2.20",)
    assert (proxy.restart, web.restart, db.restart) == ("always", "unless-stopped", "on-failure:3")
    assert (web.stop_signal, web.stop_timeout) == ("SIGINT", 3)
    assert web.environment == {"FLASK_ENV": "development", "DB_HOST": "database",
                               "GREETING": "hello world", "MODE": "production"}   # env_file < environment
    assert db.domainname == "db.internal"
    assert db.networks[0].mac_address == "02:42:ac:11:00:99"     # service-level mac_address
    assert db.healthcheck is not None and db.healthcheck.interval == 1.0
    secret = os.path.join(FIXTURES, "shop", "db", "password.txt")
    assert web.secrets == ((secret, "/run/secrets/db-password", 0o444),)
    assert db.secrets == ((secret, "/run/secrets/password.txt", 0o400),)   # 0400 is octal
    assert [n.network for n in web.networks] == ["backnet", "frontnet"]
    assert p.networks["backnet"].internal
    warned = "\n".join(p.warnings)
    for key in ("services.proxy.platform", "services.proxy.logging", "services.web.stdin_open",
                "services.web.tty", "services.db.ulimits", "services.db.deploy.resources",
                "services.db.volumes", "services.proxy.image"):
        assert key in warned
    assert len([w for w in p.warnings if "platform" in w]) == 1          # one line per key
    spec = plan.container_spec(p, proxy, 1)
    assert spec.extra_hosts == (("upstream.example", "192.0.2.10"), ("legacy.example", "192.0.2.11"))
    assert plan.container_spec(p, db, 1).domainname == "db.internal"


@pytest.mark.parametrize("given, environ, expected", [
    ((), {}, ["app"]),
    (("debug",), {}, ["app", "debug", "tools"]),
    ((), {"COMPOSE_PROFILES": "tools"}, ["app", "tools"]),
    ((), {"COMPOSE_PROFILES": "*"}, ["app", "debug", "tools"]),
    (("tools",), {"COMPOSE_PROFILES": "debug"}, ["app", "tools"]),     # --profile wins
])
def test_profiles_enable_services(given, environ, expected):
    assert list(load_project(PROFILES, profiles=given, environ=environ).services) == expected


def test_a_named_service_is_enabled_whatever_its_profiles():
    assert list(load_project(PROFILES, environ={}, enable=["tools"]).services) == ["app", "tools"]


def test_profile_on_the_command_line():
    r = CliRunner().invoke(cli, ["lab", "-f", PROFILES, "config", "--services"])
    assert r.stdout == "app\n"
    r = CliRunner().invoke(cli, ["lab", "-f", PROFILES, "--profile", "tools", "config", "--services"])
    assert r.stdout == "app\ntools\n"
    r = CliRunner().invoke(cli, ["lab", "config", "-f", PROFILES, "--services"],
                           env={"COMPOSE_PROFILES": "debug"})
    assert r.stdout == "app\ndebug\ntools\n"


def test_extends_include_and_env_file():
    p = load_project(EXTENDS, environ={})
    assert list(p.services) == ["api", "worker", "monitor"]          # monitor: included
    api, worker = p.services["api"], p.services["worker"]
    # common.env (relative to base/common.yaml) < api.env < environment (TIER from api,
    # LOG_LEVEL from base); missing.env is not required
    assert api.environment == {"COMMON": "from-common-env", "LOG_LEVEL": "info",
                               "API_KEY": "abc $literal", "TIER": "api"}
    assert api.restart == "on-failure" and api.command == tuple(IDLE)
    assert api.extra_hosts == ("metrics.example=192.0.2.30",)
    assert worker.environment == api.environment and worker.command == tuple(IDLE)
    assert [n.network for n in worker.networks] == ["default", "monitoring"]
    assert p.networks["monitoring"].name == "ext_monitoring"


def error_of(path: str, **kw) -> str:
    with pytest.raises(LabFileError) as e:
        load_project(path, environ={}, **kw)
    return str(e.value)


def test_every_error_of_a_file_at_once(write):
    path = write("lab.yml", """
        services:
          web:
            command: serve
            hostnme: web
            scale: many
          db:
            privileged: maybe
        """)
    lines = error_of(path).splitlines()
    assert lines == [
        f'{path}:4: services.web.hostnme: unknown key (did you mean "hostname"?)',
        f'{path}:5: services.web.scale: expected an integer, got "many"',
        f'{path}:7: services.db.privileged: expected a boolean, got "maybe"',
    ]
    # and, once the file's shape is right, every network's and service's errors
    path = write("lab.yml", """
        services:
          web: {command: serve, restart: sometimes}
          db: {command: serve, stop_signal: SIGNOPE}
        networks:
          a: {ipam: {config: [{gateway: 10.0.0.1}]}}
          b: {ipam: {config: [{ip_range: 10.0.0.0/25}]}}
        """)
    lines = error_of(path).splitlines()
    assert len(lines) == 2 and "networks.a.ipam.config[0]" in lines[0] and "networks.b" in lines[1]
    path = write("lab.yml", """
        services:
          web: {command: serve, restart: sometimes}
          db: {command: serve, stop_signal: SIGNOPE}
        """)
    lines = error_of(path).splitlines()
    assert len(lines) == 2 and "services.web.restart" in lines[0] and "services.db.stop_signal" in lines[1]


@pytest.mark.parametrize("body, message", [
    ("services:\n  a:\n    extra_hosts: {h: not-an-ip}\n",
     'services.a.extra_hosts.h: invalid IP address in add-host: "not-an-ip"'),
    ("services:\n  a:\n    extends: nope\n", 'services.a.extends: service "nope" not found in'),
    ("services:\n  a:\n    extends: b\n  b:\n    extends: a\n", "circular reference with extends"),
    ("services:\n  a:\n    secrets: [nope]\n", 'service "a" refers to undefined secret nope'),
    ("services:\n  a:\n    env_file: nope.env\n", "services.a.env_file[0]: env file "),
    ("services:\n  a: {}\ninclude: [other.yml]\n", "services.a conflicts with imported resource"),
    ("services:\n  a:\n    secrets: [s]\nsecrets:\n  s: {environment: X}\n",
     "secrets.s: only file secrets can be mounted"),
    ("services:\n  a:\n    secrets: [s]\nsecrets:\n  s: {file: nope.txt}\n",
     'secrets.s.file: secret "s": file '),
    ("services:\n  a:\n    secrets: [{source: s, target: /etc/s}]\nsecrets:\n  s: {file: other.yml}\n",
     'invalid secret target "/etc/s": netkit mounts secrets under /run/secrets only'),
])
def test_compose_key_errors(write, body, message):
    write("other.yml", "services:\n  a: {}\n")
    path = write("lab.yml", body)
    assert message in error_of(path)


def test_forms_accepted(write):
    path = write("lab.yml", """
        services:
          a:
            entrypoint: ["/bin/echo", 1]
            command: two
            extra_hosts: ["v6.example=[2001:db8::1]", "h:10.0.0.1"]
            env_file:
              - path: a.env
                format: raw
            deploy:
          b:
            deploy:
              restart_policy: {condition: on-failure, max_attempts: 3, delay: 5s}
            entrypoint: []
            command: echo b
            extra_hosts: {multi.example: ["10.0.0.1", "10.0.0.2"]}
        """)
    write("a.env", "X=1\nQ='kept quotes' $HOME\n")
    p = load_project(path, environ={})
    a, b = p.services["a"], p.services["b"]
    assert a.command == ("/bin/echo", "1", "two")
    assert a.environment == {"X": "1", "Q": "'kept quotes' $HOME"}          # format: raw
    assert a.extra_hosts == ("v6.example=2001:db8::1", "h=10.0.0.1")
    assert b.command == ("echo", "b")
    assert (a.restart, b.restart) == ("no", "on-failure:3")          # deploy.restart_policy
    assert b.extra_hosts == ("multi.example=10.0.0.1", "multi.example=10.0.0.2")


def test_logs_of_an_unknown_service_fails_as_compose(write):
    path = write("lab.yml", "services:\n  web: {command: serve}\n")
    r = CliRunner().invoke(cli, ["lab", "-f", path, "logs", "nosuchsvc"])
    assert r.exit_code == 1
    assert "no such service: nosuchsvc" in r.output


def test_a_check_added_at_run_time_still_fails_at_its_first_error():
    from netkit.labs import checks
    from netkit.labs.schema import Ctx
    from netkit.labs.source import Where
    with pytest.raises(LabFileError, match="unknown key"):
        checks.parse({"reach": {"from": "a", "to": "b", "nope": 1}}, ("check",), Ctx(Where()))
