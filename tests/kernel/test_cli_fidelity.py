"""Docker's output where scripts parse it: templates, filters, inspect, ports (CLI, new
processes, a throwaway node)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.root


def test_templates_and_inspect_lookup(node, cli):
    n = node.node_name
    cli("network", "create", "--subnet", "10.72.0.0/24", "web", node=n)
    net_id = json.loads(cli("network", "inspect", "web", node=n).stdout)[0]["Id"]
    assert cli("network", "inspect", "--format", "{{.ID}}", "web", node=n).stdout == net_id + "\n"
    cli("run", "-d", "--name", "b1", "-e", "A=1", "-l", "k=v", "sleep", "60", node=n)
    out = cli("inspect", "-f", '{{.NetworkSettings.IPAddress}} {{.NetworkSettings.IPPrefixLen}} '
              '{{printf "%s" .Config.Hostname | len}} {{eq .State.Status "running"}} '
              '{{join .Config.Env ","}} {{index .Config.Labels "k"}}', "b1", node=n).stdout
    ip, plen, hostlen, running, env, label = out.split()
    assert ip.startswith("172.") and plen == "16" and hostlen == "12" and running == "true"
    assert env == "A=1" and label == "v"
    p = cli("inspect", "-f", "{{.Nope}}", "b1", node=n, check=False)
    assert p.returncode == 1 and p.stdout == "\n"
    assert p.stderr == ('Error: template parsing error: template: :1:2: executing "" at <.Nope>: '
                        'map has no entry for key "Nope"\n')
    # a name that is no container is looked up as a network (Docker's order); --type narrows
    assert cli("inspect", "-f", "{{.Name}}", "web", node=n).stdout == "web\n"
    p = cli("inspect", "--type", "container", "web", node=n, check=False)
    assert (p.returncode, p.stdout, p.stderr) == (1, "[]\n", "Error: No such container: web\n")
    p = cli("inspect", "nonexistent", node=n, check=False)
    assert (p.returncode, p.stdout, p.stderr) == (1, "[]\n", "Error: No such object: nonexistent\n")
    p = cli("network", "inspect", "host", "nonexistent", node=n, check=False)
    assert p.returncode == 1 and [x["Name"] for x in json.loads(p.stdout)] == ["host"]
    assert p.stderr == "Error: network nonexistent not found\n"
    info = json.loads(cli("inspect", "b1", node=n).stdout)[0]
    assert info["Config"]["Env"] == ["A=1"] and info["Config"]["Labels"] == {"k": "v"}
    assert info["HostsPath"].endswith("/hosts") and info["ResolvConfPath"].endswith("/resolv.conf")
    assert info["HostnamePath"].endswith("/hostname")
    assert open(info["HostsPath"]).read().endswith(f"\t{info['Config']['Hostname']}\n")
    assert len(info["NetworkSettings"]["SandboxID"]) == 64
    assert info["HostConfig"]["Links"] is None
    cli("rm", "-f", "b1", node=n)


def test_ps_and_network_filters(node, cli):
    n = node.node_name
    cli("network", "create", "--subnet", "10.73.0.0/24", "front", node=n)
    cli("network", "create", "--subnet", "10.74.0.0/24", "spare", node=n)
    cli("run", "-d", "--name", "web", "--network", "front", "-l", "tier=web", "-p", "8080:80",
        "--expose", "81", "sleep", "60", node=n)
    cli("run", "--name", "job", "--network", "none", "sh", "-c", "exit 3", node=n, check=False)

    def names(*filters: str) -> list[str]:
        args = [a for f in filters for a in ("-f", f)]
        return cli("ps", *args, "--format", "{{.Name}}", node=n).stdout.split()

    assert names("label=tier=web") == ["web"]
    assert names("network=front") == ["web"] and names("network=spare") == []
    assert names("status=exited") == ["job"] and names("exited=3") == []     # exited needs -a
    assert cli("ps", "-a", "-f", "exited=3", "-q", node=n).stdout.strip() != ""
    assert names("publish=80") == ["web"] and names("publish=81") == []
    assert names("expose=81/tcp") == ["web"] and names("name=^/we") == ["web"]
    p = cli("ps", "-f", "status=bogus", node=n, check=False)
    assert p.returncode == 1 and p.stderr == "Error: invalid filter 'status=bogus'\n"
    assert cli("ps", "-f", "ancestor=x", node=n, check=False).stderr == "Error: invalid filter 'ancestor'\n"
    ps = cli("ps", node=n).stdout.splitlines()
    assert ps[0].split()[:6] == ["CONTAINER", "ID", "NAME", "COMMAND", "STATUS", "PORTS"]
    assert "81/tcp, 0.0.0.0:8080->80/tcp" in ps[1]

    def nets(*filters: str) -> list[str]:
        args = [a for f in filters for a in ("-f", f)]
        return cli("network", "ls", *args, "--format", "{{.Name}}", node=n).stdout.split()

    assert nets("dangling=true") == ["spare"]
    assert nets("dangling=false") == ["bridge", "front", "host", "none"]
    assert nets("dangling=1", "type=custom") == ["spare"]
    p = cli("network", "ls", "-f", "dangling=maybe", node=n, check=False)
    assert p.returncode == 1 and p.stderr == "Error: invalid filter 'dangling=maybe'\n"
    cli("rm", "-f", "web", "job", node=n)


def test_ports(node, cli):
    n = node.node_name
    cli("network", "create", "--subnet", "10.75.0.0/24", "pub", node=n)
    cli("network", "create", "--internal", "--subnet", "10.76.0.0/24", "priv", node=n)
    for name in ("r1", "r2"):
        cli("run", "-d", "--name", name, "--network", "pub", "-p", "9090-9091:80", "sleep", "60", node=n)
    assert cli("port", "r1", node=n).stdout == "80/tcp -> 0.0.0.0:9090\n"
    assert cli("port", "r2", "80", node=n).stdout == "0.0.0.0:9091\n"
    assert cli("port", "r2", "80/tcp", node=n).stdout == "0.0.0.0:9091\n"
    p = cli("port", "r2", "81", node=n, check=False)
    assert (p.returncode, p.stderr) == (1, "Error: No public port '81' published for r2\n")
    p = cli("port", "r2", "x/udp", node=n, check=False)
    assert (p.returncode, p.stderr) == (1, 'Error: invalid port (x): strconv.ParseUint: parsing "x": '
                                           "invalid syntax\n")
    p = cli("run", "-d", "--name", "r3", "--network", "pub", "-p", "9090-9091:80", "sleep", "60",
            node=n, check=False)
    assert p.returncode == 125 and p.stderr == "Error: all ports are allocated\n"
    p = cli("run", "-d", "--network", "pub", "-p", "9090-:80", "true", node=n, check=False)
    assert p.returncode == 125 and p.stderr == "Error: invalid hostPort: 9090-\n"
    # exposed and unpublished: null in NetworkSettings.Ports, listed in Config.ExposedPorts
    cli("run", "-d", "--name", "e1", "--network", "pub", "--expose", "81", "-p", "8081:80",
        "sleep", "60", node=n)
    info = json.loads(cli("inspect", "e1", node=n).stdout)[0]
    assert info["NetworkSettings"]["Ports"] == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8081"}],
                                                "81/tcp": None}
    assert info["Config"]["ExposedPorts"] == {"80/tcp": {}, "81/tcp": {}}
    assert info["HostConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "", "HostPort": "8081"}]}
    # internal only: the binding waits in HostConfig.PortBindings, applied on a normal network
    cli("run", "-d", "--name", "i1", "--network", "priv", "-p", "8082:80", "sleep", "60", node=n)
    info = json.loads(cli("inspect", "i1", node=n).stdout)[0]
    assert info["HostConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "", "HostPort": "8082"}]}
    assert cli("port", "i1", node=n).stdout == ""
    cli("network", "connect", "pub", "i1", node=n)
    assert cli("port", "i1", node=n).stdout == "80/tcp -> 0.0.0.0:8082\n"
    cli("network", "disconnect", "pub", "i1", node=n)
    assert cli("port", "i1", node=n).stdout == ""
    cli("rm", "-f", "r1", "r2", "e1", "i1", node=n)
    assert cli("system", "check", node=n).returncode == 0


def test_links_and_names(node, cli):
    n = node.node_name
    cli("network", "create", "--subnet", "10.77.0.0/24", "n1", node=n)
    cli("network", "create", "--subnet", "10.78.0.0/24", "n2", node=n)
    cli("run", "-d", "--name", "c1", "-h", "c1.invalid", "--network", "n1", "--network", "n2",
        "sleep", "60", node=n)
    cli("run", "-d", "--name", "c2", "--network", "n1", "--network", "n2", "--link", "c1:al",
        "sleep", "60", node=n)

    def dig(name: str) -> list[str]:
        return cli("exec", "c2", "dig", "+short", "+tries=1", "+time=2", name, node=n,
                   check=False).stdout.split()

    # a name on two networks: the first network of the querier's order answers, alone
    assert dig("c1") == ["10.77.0.2"]
    assert dig("al") == ["10.77.0.2"]
    hosts = cli("exec", "c1", "cat", "/etc/hosts", node=n).stdout
    assert "10.77.0.2\tc1.invalid c1\n" in hosts and "10.78.0.2\tc1.invalid c1\n" in hosts
    # the link alias was made on n1: once c1 leaves n1 it resolves nowhere (not via n2)
    cli("network", "disconnect", "n1", "c1", node=n)
    assert dig("c1") == ["10.78.0.2"]
    assert dig("al") == []
    cli("rm", "-f", "c1", "c2", node=n)


def test_docker_messages(node, cli):
    n = node.node_name
    p = cli("run", "--network", "host", "--link", "x:y", "true", node=n, check=False)
    assert (p.returncode, p.stderr) == (125, "Error: conflicting options: host type networking "
                                             "can't be used with links. This would result in "
                                             "undefined behavior\n")
    p = cli("run", "--ip", "172.17.0.50", "true", node=n, check=False)
    assert (p.returncode, p.stderr) == (125, "Error: user specified IP address is supported on "
                                             "user defined networks only\n")
    cli("run", "-d", "--name", "h1", "--network", "host", "sleep", "60", node=n)
    p = cli("network", "disconnect", "host", "h1", node=n, check=False)
    assert (p.returncode, p.stderr) == (1, "Error: cannot disconnect container from host network - "
                                           "container was created in host network mode\n")
    cli("rm", "-f", "h1", node=n)


def test_legacy_links_in_host_config(node, cli):
    n = node.node_name
    cli("run", "-d", "--name", "db", "sleep", "60", node=n)
    cli("run", "-d", "--name", "app", "--link", "db:database", "--link", "db", "sleep", "60", node=n)
    info = json.loads(cli("inspect", "app", node=n).stdout)[0]
    assert info["HostConfig"]["Links"] == ["/db:/app/database", "/db:/app/db"]
    assert json.loads(cli("inspect", "db", node=n).stdout)[0]["HostConfig"]["Links"] is None
    cli("rm", "-f", "app", "db", node=n)
