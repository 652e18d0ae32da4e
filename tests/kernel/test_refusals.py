"""Inputs Docker refuses, refused through the CLI on a throwaway node: one `Error:` line,
exit 1 (125 for run/create), nothing created, `system check` clean."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.root

LONG = "a" * 300


def state(cli, n: str) -> tuple[str, str]:
    return (cli("network", "ls", "-q", node=n).stdout, cli("ps", "-aq", node=n).stdout)


@pytest.mark.parametrize("args, code, message", [
    (("run", "-d", "--link", "nosuch", "sleep", "60"), 125,
     "Error: could not get container for nosuch: No such container: nosuch"),
    (("create", "--link", "nosuch:alias", "sleep", "60"), 125,
     "Error: could not get container for nosuch: No such container: nosuch"),
    (("run", "-d", "--name", LONG, "sleep", "60"), 125,
     "Error: Invalid container name (aaaaaaaaaaaaaaaaaaaa...): it is 300 characters long, "
     "at most 255 are allowed"),
    (("run", "-d", "--network", "web", "--network-alias", "my alias", "sleep", "60"), 125,
     'Error: invalid network alias "my alias": it must be a valid DNS name '
     "(dot-separated labels of [a-zA-Z0-9_-])"),
    (("run", "-d", "--network", "web", "--network-alias", "a..b", "sleep", "60"), 125, None),
    (("network", "create", "-o", "com.docker.network.bridge.host_binding_ipv4=notip", "n2"), 1,
     "Error: failed to parse com.docker.network.bridge.host_binding_ipv4 value: notip (nil ip)"),
    (("network", "create", "--subnet", "224.0.0.0/4", "n2"), 1,
     "Error: multicast subnet '224.0.0.0/4' is not allowed"),
    (("network", "create", "--subnet", "127.0.0.0/8", "n2"), 1,
     "Error: loopback subnet '127.0.0.0/8' is not allowed"),
    (("network", "create", "--subnet", "10.72.0.0/24", "--aux-address", "a=10.72.0.5",
      "--aux-address", "a=10.72.0.6", "n2"), 1,
     'Error: invalid argument "a=10.72.0.6" for "--aux-address" flag: duplicate key a'),
])
def test_refused_with_nothing_created(node, cli, args, code, message):
    n = node.node_name
    cli("network", "create", "--subnet", "10.73.0.0/24", "web", node=n)
    before = state(cli, n)
    p = cli(*args, node=n, check=False)
    assert p.returncode == code, (p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    if message:
        assert lines[0] == message
    assert state(cli, n) == before
    check = cli("system", "check", node=n, check=False)
    assert check.returncode == 0 and check.stdout.strip() == "No drift.", check.stdout


def test_connect_alias_and_link_refused(node, cli):
    n = node.node_name
    cli("network", "create", "--subnet", "10.74.0.0/24", "web", node=n)
    cli("run", "-d", "--name", "one", "sleep", "60", node=n)
    p = cli("network", "connect", "--alias", "bad alias", "web", "one", node=n, check=False)
    assert p.returncode == 1 and p.stderr.startswith('Error: invalid network alias "bad alias"')
    p = cli("network", "connect", "--link", "ghost", "bridge", "one", node=n, check=False)
    assert p.returncode == 1
    # a link on a user-defined network may name a container to come (Docker: a private alias)
    cli("network", "connect", "--link", "later:db", "web", "one", node=n)
    # a link to an existing container on the default bridge still works
    cli("run", "-d", "--name", "two", "--link", "one:db", "sleep", "60", node=n)
    assert cli("system", "check", node=n).stdout.strip() == "No drift."
    cli("rm", "-f", "one", "two", node=n)
