"""Real-world shaped compose files brought up in throwaway nodes, each honoured key checked
inside the containers: extra_hosts and domainname in /etc/hosts, secrets read-only at
/run/secrets, env_file variables in the process's environment, entrypoint + command,
service-level mac_address, restart and stop_signal, profiles, extends and include."""

from __future__ import annotations

import pytest

from netkit.labs import Lab
from tests.labs.test_compose_keys import EXTENDS, PROFILES, SHOP

pytestmark = pytest.mark.root

ENVIRON = ["sh", "-c", "tr '\\0' '\\n' < /proc/1/environ"]


def out(lab: Lab, service: str, *argv: str) -> str:
    code, text = lab.exec_output(service, list(argv))
    assert code == 0, text
    return text


def test_web_db_proxy_stack(node):
    with Lab.load(SHOP, engine=node) as lab:
        hosts = out(lab, "proxy", "cat", "/etc/hosts")
        assert "192.0.2.10\tupstream.example\n" in hosts
        assert "192.0.2.11\tlegacy.example\n" in hosts
        assert "192.0.2.20\tcache.example\n" in out(lab, "web", "cat", "/etc/hosts")
        db_ip = lab.service("db").addresses()[0]
        assert f"{db_ip}\tdb.db.internal db\n" in out(lab, "db", "cat", "/etc/hosts")
        assert out(lab, "db", "cat", "/proc/sys/kernel/domainname") == "db.internal\n"
        assert out(lab, "db", "hostname") == "db\n"
        with open("/proc/sys/kernel/domainname") as f:             # the host's stays as it was
            host_domain = f.read()
        assert host_domain != "db.internal\n"
        assert out(lab, "web", "cat", "/proc/sys/kernel/domainname") == host_domain
        assert out(lab, "db", "cat", "/sys/class/net/eth0/address") == "02:42:ac:11:00:99\n"
        # the proxy's command is its entrypoint followed by its command
        assert lab.container("proxy").command == ("sh", "-c", "trap exit TERM; sleep infinity & wait")

        # secrets: readable, 0444 (or the long form's mode), read-only even for root
        assert out(lab, "web", "cat", "/run/secrets/db-password") == "s3cret\n"
        assert out(lab, "web", "stat", "-c", "%a %U", "/run/secrets/db-password") == "444 root\n"
        code, text = lab.exec_output("web", ["sh", "-c", "echo x > /run/secrets/db-password"])
        assert code != 0 and "Read-only file system" in text
        code, _ = lab.exec_output("web", ["rm", "-f", "/run/secrets/db-password"])
        assert code != 0
        assert out(lab, "db", "stat", "-c", "%a", "/run/secrets/password.txt") == "400\n"
        assert out(lab, "db", "cat", "/run/secrets/password.txt") == "s3cret\n"
        code, _ = lab.exec_output("proxy", ["test", "-e", "/run/secrets/db-password"])
        assert code != 0                                   # only services that ask get it

        # env_file under environment, in the process's environment
        env = out(lab, "web", *ENVIRON).splitlines()
        for line in ("FLASK_ENV=development", "DB_HOST=database", "GREETING=hello world",
                     "MODE=production"):
            assert line in env

        info = {s: node.inspect_containers([lab.container(s).id])[0] for s in ("proxy", "web", "db")}
        assert info["proxy"]["HostConfig"]["RestartPolicy"]["Name"] == "always"
        assert info["db"]["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
        assert info["web"]["Config"]["StopSignal"] == "SIGINT"
        assert lab.health(lab.locate("db")) == "healthy"


def test_profile_gated_services_start_only_with_their_profile(node):
    with Lab.load(PROFILES, engine=node) as lab:
        assert sorted(m.service for m in lab.ps()) == ["app"]
    with Lab.load(PROFILES, engine=node, profiles=["debug"]) as lab:
        assert sorted(m.service for m in lab.ps()) == ["app", "debug", "tools"]
        assert out(lab, "debug", "true") == ""


def test_extends_include_and_env_file_up(node):
    with Lab.load(EXTENDS, engine=node) as lab:
        assert sorted(m.service for m in lab.ps()) == ["api", "monitor", "worker"]
        for service in ("api", "worker"):
            env = out(lab, service, *ENVIRON).splitlines()
            for line in ("COMMON=from-common-env", "LOG_LEVEL=info", "API_KEY=abc $literal", "TIER=api"):
                assert line in env
            assert "192.0.2.30\tmetrics.example\n" in out(lab, service, "cat", "/etc/hosts")
        # the included file's network joins api and monitor
        monitor_ip = lab.service("monitor").addresses()[0]
        assert out(lab, "api", "sh", "-c", f"ping -c1 -W2 {monitor_ip} >/dev/null && echo ok") == "ok\n"


def test_profiles_through_the_cli(node, cli):
    n = node.node_name
    try:
        cli("lab", "-f", PROFILES, "-p", "prof", "up", "-d", node=n)
        assert cli("lab", "-p", "prof", "ps", "--services", node=n).stdout == "app\n"
        cli("lab", "-f", PROFILES, "-p", "prof", "--profile", "tools", "up", "-d", node=n)
        assert cli("lab", "-p", "prof", "ps", "--services", node=n).stdout.split() == ["app", "tools"]
        cli("lab", "-f", PROFILES, "-p", "prof", "up", "-d", "debug", node=n)   # named: enabled
        assert "debug" in cli("lab", "-p", "prof", "ps", "--services", node=n).stdout.split()
        r = cli("lab", "-f", PROFILES, "-p", "prof", "logs", "nosuchsvc", node=n, check=False)
        assert (r.returncode, r.stderr.strip().splitlines()[-1]) == (1, "Error: no such service: nosuchsvc")
        cli("lab", "-f", PROFILES, "-p", "prof", "down", node=n)      # the profiled ones too
        assert node.containers(all=True) == []
    finally:
        cli("lab", "-f", PROFILES, "-p", "prof", "down", node=n)
