"""The CLI against a fake Engine: flags -> specs, verbatim commands, outputs, errors, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from netkit.errors import Conflict, InvalidArgument, NetkitError, NotFound
from netkit.model import Container, Endpoint, Lan, Network, Node, State
from netkit.specs import ContainerSpec, EndpointSpec, NetworkSpec
from tests.cli.helpers import error_line, ok

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def net(name: str, id_char: str = "a", driver: str = "bridge", **kw) -> Network:
    return Network(id=id_char * 64, name=name, driver=driver, **kw)


# -- root group: errors, debug, interrupts, --node, engine lifetime ----------------------

def test_help_lists_the_commands(nk, fake):
    out = ok(nk("--help")).stdout
    for name in ("network", "run", "exec", "ps", "rm", "inspect", "system", "node", "lan"):
        assert f"  {name} " in out
    assert fake.opened == 0                    # --help never opens an engine


def test_netkit_error_is_one_line_exit_1(nk, fake):
    fake.raises["networks"] = NotFound("network x not found")
    r = nk("network", "ls")
    assert error_line(r) == "Error: network x not found"
    assert r.stdout == ""


def test_error_exit_code_comes_from_the_exception(nk, fake):
    class Special(NetkitError):
        exit_code = 3
    fake.raises["networks"] = Special("odd")
    r = nk("network", "ls")
    assert r.exit_code == 3 and r.stderr == "Error: odd\n"


def test_netkit_debug_reraises(nk, fake):
    fake.raises["networks"] = NotFound("network x not found")
    r = nk("network", "ls", env={"NETKIT_DEBUG": "1"})
    assert isinstance(r.exception, NotFound)
    assert r.exit_code == 1


def test_keyboard_interrupt_exits_130_quietly(nk, fake):
    fake.raises["networks"] = KeyboardInterrupt()
    r = nk("network", "ls")
    assert r.exit_code == 130 and r.output == ""


def test_permission_error_is_one_line(nk, fake):
    fake.raises["networks"] = PermissionError(13, "Permission denied", "/var/lib/netkit")
    assert error_line(nk("network", "ls")) == "Error: permission denied: /var/lib/netkit (netkit needs root)"


def test_node_option_and_env(nk, fake):
    ok(nk("network", "ls"))
    assert fake.node is None
    ok(nk("--node", "n1", "network", "ls"))
    assert fake.node == "n1"
    ok(nk("network", "ls", env={"NETKIT_NODE": "n2"}))
    assert fake.node == "n2"


def test_engine_is_opened_once_and_closed(nk, fake):
    ok(nk("network", "rm", "a", "b"))
    assert fake.opened == 1 and fake.closed == 1


def test_engine_closed_after_error(nk, fake):
    fake.raises["networks"] = NotFound("x")
    nk("network", "ls")
    assert fake.closed == 1


# -- network create ------------------------------------------------------------------------

def test_network_create_defaults(nk, fake):
    r = ok(nk("network", "create", "n1"))
    assert r.stdout == "f" * 64 + "\n"
    [((spec,), _)] = fake.called("create_network")
    assert spec == NetworkSpec("n1")


def test_network_create_all_flags(nk, fake):
    ok(nk("network", "create", "-d", "macvlan", "--subnet", "10.1.0.0/16", "--subnet", "fd00::/64",
          "--ip-range", "10.1.1.0/24", "--gateway", "10.1.0.254", "--aux-address", "router=10.1.0.2",
          "--aux-address", "dns=10.1.0.3", "-o", "parent=eth0", "--opt", "macvlan_mode=bridge",
          "--label", "env=prod", "--label", "flag", "--internal", "--ipv6", "--attachable",
          "--no-ipv4", "n1"))
    [((spec,), _)] = fake.called("create_network")
    assert spec == NetworkSpec(
        name="n1", driver="macvlan", subnets=("10.1.0.0/16", "fd00::/64"), ip_ranges=("10.1.1.0/24",),
        gateways=("10.1.0.254",), aux_addresses={"router": "10.1.0.2", "dns": "10.1.0.3"},
        options={"parent": "eth0", "macvlan_mode": "bridge"}, labels={"env": "prod", "flag": ""},
        internal=True, ipv6=True, ipv4=False, attachable=True)


@pytest.mark.parametrize("flag, value", [("-o", "novalue"), ("--aux-address", "router"),
                                         ("--label", "=v"), ("-o", "=x")])
def test_network_create_bad_key_value(nk, fake, flag, value):
    line = error_line(nk("network", "create", flag, value, "n1"))
    assert line.startswith(f'Error: invalid argument "{value}" for "')
    assert fake.called("create_network") == []


def test_network_create_engine_error(nk, fake):
    fake.raises["create_network"] = InvalidArgument("network with name n1 already exists")
    assert error_line(nk("network", "create", "n1")) == "Error: network with name n1 already exists"


# -- network ls --------------------------------------------------------------------------------

LS = [net("net10", "a"), net("bridge", "1"), net("net2", "b", labels={"env": "prod"}),
      net("host", "2", "host"), net("none", "3", "null"), net("macnet", "c", "macvlan")]


def test_network_ls_table_sorted_naturally(nk, fake):
    fake.results["networks"] = LS
    assert ok(nk("network", "ls")).stdout.splitlines() == [
        "NETWORK ID     NAME      DRIVER    SCOPE",
        "111111111111   bridge    bridge    local",
        "222222222222   host      host      local",
        "cccccccccccc   macnet    macvlan   local",
        "bbbbbbbbbbbb   net2      bridge    local",
        "aaaaaaaaaaaa   net10     bridge    local",
        "333333333333   none      null      local",
    ]


def test_network_list_alias_quiet_no_trunc(nk, fake):
    fake.results["networks"] = LS[:2]
    assert ok(nk("network", "list", "-q")).stdout == "111111111111\naaaaaaaaaaaa\n"
    assert ok(nk("network", "ls", "-q", "--no-trunc")).stdout == "1" * 64 + "\n" + "a" * 64 + "\n"
    out = ok(nk("network", "ls", "--no-trunc")).stdout.splitlines()
    assert out[1].startswith("1" * 64 + "   bridge")


@pytest.mark.parametrize("args, names", [
    (["-f", "driver=bridge"], ["bridge", "net2", "net10"]),
    (["-f", "name=net", "-f", "name=mac"], ["macnet", "net2", "net10"]),
    (["--filter", "name=net", "-f", "driver=macvlan"], ["macnet"]),
    (["-f", "type=builtin"], ["bridge", "host", "none"]),
    (["-f", "type=custom"], ["macnet", "net2", "net10"]),
    (["-f", "label=env=prod"], ["net2"]),
    (["-f", "id=bbbb"], ["net2"]),
])
def test_network_ls_filters(nk, fake, args, names):
    fake.results["networks"] = LS
    assert ok(nk("network", "ls", *args, "--format", "{{.Name}}")).stdout.split() == names


def test_network_ls_bad_filter(nk, fake):
    assert error_line(nk("network", "ls", "-f", "color=red")) == "Error: invalid filter 'color'"


def test_network_ls_formats(nk, fake):
    fake.results["networks"] = LS[:2]
    out = ok(nk("network", "ls", "--format", "json")).stdout.splitlines()
    assert [json.loads(line)["Name"] for line in out] == ["bridge", "net10"]
    out = ok(nk("network", "ls", "--format", r"table {{.Name}}\t{{.ID}}")).stdout.splitlines()
    assert out == ["NAME      NETWORK ID", "bridge    111111111111", "net10     aaaaaaaaaaaa"]
    assert ok(nk("network", "ls", "--format", "{{.ID}} {{.Driver}}")).stdout == \
        "111111111111 bridge\naaaaaaaaaaaa bridge\n"


def test_network_ls_bad_template(nk, fake):
    assert error_line(nk("network", "ls", "--format", "{{.Name")).startswith("Error: template parsing error")


# -- network inspect -----------------------------------------------------------------------

INSPECTED = [{"Name": "n1", "Id": "f" * 64, "Driver": "bridge",
              "IPAM": {"Driver": "default", "Options": {},
                       "Config": [{"Subnet": "172.18.0.0/16", "Gateway": "172.18.0.1"}]},
              "Containers": {}, "Labels": {}}]


def test_network_inspect_json(nk, fake):
    fake.results["inspect_networks"] = INSPECTED
    r = ok(nk("network", "inspect", "n1", "n2"))
    assert fake.called("inspect_networks") == [((["n1"],), {}), ((["n2"],), {})]
    assert json.loads(r.stdout) == INSPECTED * 2
    assert r.stdout.startswith('[\n    {\n        "Name": "n1",\n')


@pytest.mark.parametrize("fmt, out", [
    ("{{.Name}}", "n1"), ("{{.Id}}", "f" * 64), ("{{.Driver}}", "bridge"),
    ("{{json .}}", json.dumps(INSPECTED[0], separators=(",", ":"))),
    ("{{json .IPAM.Config}}", '[{"Subnet":"172.18.0.0/16","Gateway":"172.18.0.1"}]'),
    ("{{(index .IPAM.Config 0).Subnet}}", "172.18.0.0/16"),
    ("{{range .IPAM.Config}}{{.Gateway}}{{end}}", "172.18.0.1"),
])
def test_network_inspect_format(nk, fake, fmt, out):
    fake.results["inspect_networks"] = INSPECTED * 2
    assert ok(nk("network", "inspect", "-f", fmt, "n1", "n1")).stdout == f"{out}\n{out}\n"


def test_network_inspect_not_found(nk, fake):
    fake.raises["inspect_networks"] = NotFound("network nope not found")
    assert error_line(nk("network", "inspect", "nope")) == "Error: network nope not found"


def test_network_inspect_prints_the_found_ones_then_the_errors(nk, fake):
    fake.raises["inspect_networks"] = {"nope": NotFound("network nope not found")}
    fake.results["inspect_networks"] = INSPECTED
    r = nk("network", "inspect", "n1", "nope")
    assert r.exit_code == 1 and json.loads(r.stdout) == INSPECTED
    assert r.stderr == "Error: network nope not found\n"


def test_inspect_template_errors_as_dockers(nk, fake):
    fake.results["inspect_networks"] = INSPECTED
    r = nk("network", "inspect", "-f", "{{.Nope}}", "n1")       # executing: per object, exit 1
    assert (r.exit_code, r.stdout) == (1, "\n")
    assert r.stderr == ('Error: template parsing error: template: :1:2: executing "" at <.Nope>: '
                        'map has no entry for key "Nope"\n')
    r = nk("network", "inspect", "-f", "{{.Name", "n1")          # parsing: 64, nothing looked up
    assert r.exit_code == 64 and r.stderr.startswith("Error: template parsing error")
    assert len(fake.called("inspect_networks")) == 1


# -- network rm / prune ------------------------------------------------------------------------

def test_network_rm_prints_each_ref(nk, fake):
    r = ok(nk("network", "rm", "n1", "n2"))
    assert r.stdout == "n1\nn2\n"
    assert [a for a, _ in fake.called("remove_network")] == [("n1",), ("n2",)]


def test_network_rm_continues_past_errors_and_exits_1(nk, fake):
    fake.raises["remove_network"] = {
        "gone": NotFound("network gone not found"),
        "busy": Conflict('error while removing network: network busy has active endpoints (name:"c1" id:"abc")')}
    r = nk("network", "remove", "gone", "n1", "busy", "n2")
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert r.stdout == "n1\nn2\n"
    assert r.stderr.splitlines() == [
        "Error: network gone not found",
        'Error: error while removing network: network busy has active endpoints (name:"c1" id:"abc")']


def test_network_rm_force_ignores_not_found_only(nk, fake):
    fake.raises["remove_network"] = {"gone": NotFound("network gone not found")}
    r = ok(nk("network", "rm", "-f", "gone", "n1"))
    assert r.stdout == "n1\n" and r.stderr == ""
    fake.raises["remove_network"] = {"bridge": InvalidArgument("bridge is a pre-defined network and cannot be removed")}
    assert error_line(nk("network", "rm", "-f", "bridge")) == \
        "Error: bridge is a pre-defined network and cannot be removed"


def test_network_rm_needs_a_name(nk, fake):
    assert nk("network", "rm").exit_code == 2


def test_network_prune_asks_and_declines(nk, fake):
    r = ok(nk("network", "prune", input="n\n"))
    assert r.stdout == ("WARNING! This will remove all custom networks not used by at least one container.\n"
                        "Are you sure you want to continue? [y/N] ")
    assert fake.called("prune_networks") == []
    ok(nk("network", "prune", input=""))                       # EOF means no
    assert fake.called("prune_networks") == []


def test_network_prune_confirmed(nk, fake):
    fake.results["prune_networks"] = ["n1", "n2"]
    r = ok(nk("network", "prune", input="y\n"))
    assert r.stdout.endswith("[y/N] Deleted Networks:\nn1\nn2\n")
    r = ok(nk("network", "prune", "-f"))
    assert r.stdout == "Deleted Networks:\nn1\nn2\n"


def test_network_prune_nothing(nk, fake):
    assert ok(nk("network", "prune", "-f")).stdout == ""


# -- connect / disconnect ----------------------------------------------------------------------

def test_network_connect(nk, fake):
    r = ok(nk("network", "connect", "--alias", "a1", "--alias", "a2", "--ip", "10.0.0.5",
              "--ip6", "fd00::5", "--link", "db:database", "n1", "c1"))
    assert r.stdout == ""
    assert fake.called("connect") == [(("n1", "c1"), {"aliases": ("a1", "a2"), "ipv4": "10.0.0.5",
                                                      "ipv6": "fd00::5", "links": ("db:database",)})]
    ok(nk("network", "connect", "n1", "c1"))
    assert fake.called("connect")[1] == (("n1", "c1"), {"aliases": (), "ipv4": None, "ipv6": None, "links": ()})


def test_network_disconnect(nk, fake):
    ok(nk("network", "disconnect", "n1", "c1"))
    ok(nk("network", "disconnect", "-f", "n1", "c1"))
    assert fake.called("disconnect") == [(("n1", "c1"), {"force": False}), (("n1", "c1"), {"force": True})]
    fake.raises["disconnect"] = NotFound("container c1 is not connected to network n1")
    assert error_line(nk("network", "disconnect", "n1", "c1")) == \
        "Error: container c1 is not connected to network n1"


# -- run ----------------------------------------------------------------------------------------

def run_spec(fake) -> ContainerSpec:
    [((spec,), _)] = fake.called("run")
    return spec


def test_run_command_is_verbatim(nk, fake):
    ok(nk("run", "--rm", "--network", "n1", "ping", "-c", "1", "--name", "web", "-d"))
    spec = run_spec(fake)
    assert spec.command == ("ping", "-c", "1", "--name", "web", "-d")
    assert spec.network == "n1" and spec.auto_remove and not spec.detach and spec.name is None


def test_run_leading_dashdash_is_dropped(nk, fake):
    ok(nk("run", "--", "sh", "-c", "exit 0"))
    assert run_spec(fake).command == ("sh", "-c", "exit 0")


def test_run_dashdash_allows_a_dash_command(nk, fake):
    ok(nk("run", "-d", "--", "-weird", "x"))
    assert run_spec(fake).command == ("-weird", "x")


def test_run_unknown_option_is_not_a_command(nk, fake):
    r = nk("run", "-it", "sh")                 # a usage error of run: 125, as docker's
    assert r.exit_code == 125 and "No such option" in r.stderr and "-it" in r.stderr
    assert fake.called("run") == []


def test_run_all_flags(nk, fake, monkeypatch):
    monkeypatch.setenv("FROM_HOST", "yes")
    monkeypatch.delenv("NOT_SET", raising=False)
    ok(nk("run", "-d", "--rm", "--name", "web", "--net", "n1", "--network", "n2", "--network", "n3",
          "--network-alias", "www", "--net-alias", "site", "--ip", "172.18.0.9", "--ip6", "fd00::9",
          "-h", "webhost", "--mac-address", "02:00:00:00:00:09", "--dns", "1.1.1.1", "--dns", "8.8.8.8",
          "--link", "db:database", "--link", "cache", "-e", "A=1", "--env", "B=x=y", "-e", "FROM_HOST",
          "-e", "NOT_SET", "--label", "k=v", "-l", "bare", "sleep", "100"))
    assert run_spec(fake) == ContainerSpec(
        name="web", command=("sleep", "100"), network="n1", aliases=("www", "site"), ipv4="172.18.0.9",
        ipv6="fd00::9", mac="02:00:00:00:00:09", hostname="webhost", detach=True, auto_remove=True,
        dns=("1.1.1.1", "8.8.8.8"), links=("db:database", "cache"),
        extra_networks=(EndpointSpec("n2"), EndpointSpec("n3")),
        env={"A": "1", "B": "x=y", "FROM_HOST": "yes"}, labels={"k": "v", "bare": ""})


def test_run_defaults_to_bridge(nk, fake):
    ok(nk("run", "true"))
    spec = run_spec(fake)
    assert spec.network == "bridge" and spec.extra_networks == () and spec.aliases == ()


def test_run_network_long_form(nk, fake):
    ok(nk("run", "--network", "name=n1,alias=a,alias=b,ip=10.0.0.5,ip6=fd00::5,mac-address=02:00:00:00:00:05",
          "--network", "name=n2,alias=c", "true"))
    spec = run_spec(fake)
    assert (spec.network, spec.aliases, spec.ipv4, spec.ipv6, spec.mac) == (
        "n1", ("a", "b"), "10.0.0.5", "fd00::5", "02:00:00:00:00:05")
    assert spec.extra_networks == (EndpointSpec("n2", aliases=("c",)),)


@pytest.mark.parametrize("args, message", [
    (["--network", "name=n1,ip=10.0.0.5", "--ip", "10.0.0.6"],
     "Error: conflicting options: cannot specify both --ip and per-network IPv4 address"),
    (["--network", "alias=a"], "Error: network name must be specified"),
    (["--network", "name=n1,color=red"], "Error: invalid field key color"),
    (["--network", "name=n1,gw-priority=1"], "Error: --network gw-priority=... is not supported by netkit"),
])
def test_run_network_flag_errors(nk, fake, args, message):
    assert error_line(nk("run", *args, "true"), 125) == message
    assert fake.called("run") == []


def test_run_container_mode_is_passed_through(nk, fake):
    ok(nk("run", "--network", "container:web", "true"))
    assert run_spec(fake).network == "container:web"


def test_run_detached_prints_full_id(nk, fake):
    r = ok(nk("run", "-d", "sleep", "1000"))
    assert r.stdout == "d" * 64 + "\n"
    assert run_spec(fake).detach


def test_run_foreground_passes_the_exit_code(nk, fake):
    c = Container(id="d" * 64, name="c1", hostname="h", state=State.EXITED, exit_code=7)
    fake.results["run"] = (c, 7)
    r = nk("run", "--rm", "sh", "-c", "exit 7")
    assert r.exit_code == 7 and r.output == ""
    fake.results["run"] = (c, 0)
    assert nk("run", "true").exit_code == 0


def test_run_engine_error(nk, fake):
    fake.raises["run"] = InvalidArgument("network-scoped alias is supported only for containers in user defined networks")
    assert error_line(nk("run", "--network-alias", "x", "true"), 125) == \
        "Error: network-scoped alias is supported only for containers in user defined networks"


# -- exec -----------------------------------------------------------------------------------------

def test_exec_verbatim_and_exit_code(nk, fake):
    fake.results["exec"] = 4
    r = nk("exec", "web", "sh", "-c", "exit 4", "--", "-x")
    assert r.exit_code == 4
    assert fake.called("exec") == [(("web", ["sh", "-c", "exit 4", "--", "-x"]), {})]


def test_exec_unknown_flag(nk, fake):
    r = nk("exec", "-it", "web", "sh")
    assert r.exit_code == 125 and "No such option" in r.stderr and "-it" in r.stderr


def test_exec_needs_a_command(nk, fake):
    assert nk("exec", "web").exit_code == 125


def test_exec_not_running(nk, fake):
    fake.raises["exec"] = Conflict("container abc is not running")
    assert error_line(nk("exec", "web", "true"), 125) == "Error: container abc is not running"


# -- ps / rm / inspect ------------------------------------------------------------------------------

CONTAINERS = [
    Container(id="e" * 64, name="web", hostname="h", command=("python3", "-m", "http.server", "8080"),
              state=State.RUNNING,
              endpoints=(Endpoint("x", "n", "e" * 64, "eth0", "m", network_name="front"),
                         Endpoint("y", "n", "e" * 64, "eth1", "m", network_name="back"))),
    Container(id="f" * 64, name="job", hostname="h", command=("false",), state=State.EXITED,
              exit_code=1, network_mode="none"),
]


def test_ps_table(nk, fake):
    fake.results["containers"] = CONTAINERS
    assert ok(nk("ps", "-a")).stdout.splitlines() == [
        "CONTAINER ID   NAME      COMMAND                  STATUS       PORTS     NETWORKS",
        'eeeeeeeeeeee   web       "python3 -m http.ser…"   Up                     back,front',
        'ffffffffffff   job       "false"                  Exited (1)             none',
    ]
    assert fake.called("containers") == [((), {"all": True})]


def test_ps_defaults_quiet_no_trunc(nk, fake):
    fake.results["containers"] = CONTAINERS[:1]
    ok(nk("ps"))
    assert fake.called("containers") == [((), {"all": False})]
    assert ok(nk("ps", "-q")).stdout == "e" * 12 + "\n"
    assert ok(nk("ps", "-q", "--no-trunc")).stdout == "e" * 64 + "\n"
    assert '"python3 -m http.server 8080"' in ok(nk("ps", "--no-trunc")).stdout


def test_ps_empty_prints_header(nk, fake):
    assert ok(nk("ps")).stdout == "CONTAINER ID   NAME      COMMAND   STATUS    PORTS     NETWORKS\n"


def test_ps_format(nk, fake):
    fake.results["containers"] = CONTAINERS
    assert ok(nk("ps", "-a", "--format", "{{.Name}} {{.State}}")).stdout == "web running\njob exited\n"


def test_rm_containers(nk, fake):
    fake.raises["remove_container"] = {"up": Conflict('cannot remove container "/up": container is running')}
    r = nk("rm", "a", "up", "b")
    assert r.exit_code == 1 and r.stdout == "a\nb\n"
    assert r.stderr == 'Error: cannot remove container "/up": container is running\n'
    assert fake.called("remove_container")[0] == (("a",), {"force": False})


def test_rm_force(nk, fake):
    fake.raises["remove_container"] = {"gone": NotFound("no such container: gone")}
    r = ok(nk("rm", "-f", "up", "gone"))
    assert r.stdout == "up\n"
    assert fake.called("remove_container")[0] == (("up",), {"force": True})


def test_inspect_containers(nk, fake):
    data = [{"Id": "c" * 64, "Name": "/web", "NetworkSettings": {"Networks": {"n1": {"IPAddress": "172.18.0.2"}}}}]
    fake.results["inspect_containers"] = data
    r = ok(nk("inspect", "web"))
    assert json.loads(r.stdout) == data and r.stdout.startswith("[\n    {\n")
    assert fake.called("inspect_containers") == [((["web"],), {})]
    r = ok(nk("inspect", "-f", "{{.NetworkSettings.Networks.n1.IPAddress}}", "web"))
    assert r.stdout == "172.18.0.2\n"
    r = ok(nk("inspect", "--format", "{{range $n, $e := .NetworkSettings.Networks}}{{$n}}={{$e.IPAddress}}{{end}}", "web"))
    assert r.stdout == "n1=172.18.0.2\n"


def test_inspect_falls_back_to_networks_and_type_narrows(nk, fake):
    fake.raises["inspect_containers"] = {"n1": NotFound("No such container: n1"),
                                         "x": NotFound("No such container: x")}
    fake.raises["inspect_networks"] = {"x": NotFound("network x not found")}
    fake.results["inspect_networks"] = INSPECTED
    assert ok(nk("inspect", "-f", "{{.Name}}", "n1")).stdout == "n1\n"
    r = nk("inspect", "n1", "x")
    assert r.exit_code == 1 and json.loads(r.stdout) == INSPECTED
    assert r.stderr == "Error: No such object: x\n"
    r = nk("inspect", "--type", "container", "n1")
    assert (r.exit_code, r.stdout, r.stderr) == (1, "[]\n", "Error: No such container: n1\n")
    r = nk("inspect", "--type", "network", "x")
    assert (r.exit_code, r.stdout, r.stderr) == (1, "[]\n", "Error: network x not found\n")


# -- system -----------------------------------------------------------------------------------------

def test_system_check_clean(nk, fake):
    assert ok(nk("system", "check")).stdout == "No drift.\n"


def test_system_check_drift_exits_1(nk, fake):
    fake.results["system_check"] = ["network n1: bridge br-aaaa is missing", "orphan link vethx (not in the store)"]
    r = nk("system", "check")
    assert r.exit_code == 1
    assert r.stdout == "network n1: bridge br-aaaa is missing\norphan link vethx (not in the store)\n"


def test_system_prune(nk, fake):
    fake.results["system_prune"] = ["netns nk-abc", "link vethx"]
    r = ok(nk("system", "prune", input="n\n"))
    assert r.stdout.startswith("WARNING! ") and fake.called("system_prune") == []
    assert ok(nk("system", "prune", input="y\n")).stdout.endswith("[y/N] netns nk-abc\nlink vethx\n")
    assert ok(nk("system", "prune", "-f")).stdout == "netns nk-abc\nlink vethx\n"


def test_system_reset_needs_force(nk, fake):
    assert error_line(nk("system", "reset")) == \
        "Error: system reset removes everything netkit made on this node; pass -f to confirm"
    assert fake.called("system_reset") == [] and fake.opened == 0
    fake.results["system_reset"] = ["container c1", "network n1"]
    assert ok(nk("system", "reset", "-f")).stdout == "container c1\nnetwork n1\n"


# -- nodes and LANs -----------------------------------------------------------------------------------

def test_node_create(nk, fake):
    assert ok(nk("node", "create", "--lan", "l1", "--ip", "192.168.1.10/24", "--gateway", "192.168.1.1",
                 "--dns", "192.168.1.1", "--dns", "1.1.1.1", "h1")).stdout == "h1\n"
    assert fake.called("create_node") == [(("h1",), {"lan": "l1", "ip": "192.168.1.10/24",
                                                     "gateway": "192.168.1.1",
                                                     "dns": ("192.168.1.1", "1.1.1.1")})]
    ok(nk("node", "create", "h2"))
    assert fake.called("create_node")[1] == (("h2",), {"lan": None, "ip": None, "gateway": None, "dns": ()})
    ok(nk("node", "create", "--state-dir", "/srv/h3/state", "--run-dir", "/srv/h3/run", "h3"))
    assert fake.called("create_node")[2][1]["state_dir"] == "/srv/h3/state"
    assert fake.called("create_node")[2][1]["run_dir"] == "/srv/h3/run"


def test_node_ls(nk, fake):
    fake.results["nodes"] = [Node("h10", "nkn-h10", lan="l1", ip="192.168.1.10/24"), Node("h2", "nkn-h2")]
    fake.results["swarm_roles"] = {"h10": "manager", "h2": ""}
    fake.results["swarm_agents"] = {"h10": "running", "h2": "stopped"}
    assert ok(nk("node", "ls")).stdout.splitlines() == [
        "NAME      LAN       IP                ROLE      AGENT",
        "h2                                              stopped",
        "h10       l1        192.168.1.10/24   manager   running"]
    assert ok(nk("node", "list", "-q")).stdout == "h2\nh10\n"


def test_swarm_commands(nk, fake):
    from netkit.services.model import node_id
    token = f"SWMTKN-1-{'d' * 50}-{'w' * 25}"
    assert ok(nk("--node", "h1", "swarm", "init")).stdout == (
        f"Swarm initialized: current node ({node_id('c' * 25, 'h1')}) is now a manager.\n\n"
        "To add a worker to this swarm, run the following command:\n\n"
        f"    netkit swarm join --token {token} 192.168.1.10:2377\n\n"
        "To add a manager to this swarm, run 'netkit swarm join-token manager' and follow the "
        "instructions.\n")
    assert fake.called("swarm_init") == [((), {"advertise_addr": None, "cluster_store": None})]
    ok(nk("--node", "h1", "swarm", "init", "--advertise-addr", "192.168.1.10",
          "--cluster-store", "etcd://10.0.0.5:2379,10.0.0.6:2379"))
    assert fake.called("swarm_init")[1] == ((), {"advertise_addr": "192.168.1.10",
                                                 "cluster_store": "etcd://10.0.0.5:2379,10.0.0.6:2379"})
    ok(nk("--node", "h2", "swarm", "join", "--manager", "h1"))
    assert fake.called("swarm_join") == [(("h1",), {})]
    from netkit.store.cluster import Member
    fake.results["swarm_members"] = [Member("h1", "manager", "192.168.1.10"),
                                     Member("h3", "manager", "192.168.1.12")]
    assert ok(nk("--node", "h3", "swarm", "join", "--token", token, "192.168.1.10")).stdout == \
        "This node joined a swarm as a manager.\n"
    assert fake.called("swarm_join")[1] == ((), {"token": token, "remote": "192.168.1.10"})
    assert ok(nk("--node", "h1", "swarm", "join-token", "-q", "manager")).stdout == \
        f"SWMTKN-1-{'d' * 50}-{'m' * 25}\n"
    assert "netkit swarm join --token" in ok(nk("--node", "h1", "swarm", "join-token", "worker")).stdout
    ok(nk("--node", "h2", "swarm", "leave", "-f"))
    assert fake.called("swarm_leave") == [((), {"force": True})]
    assert nk("--node", "h2", "swarm", "join").exit_code == 2          # --manager or --token ADDR
    assert nk("--node", "h2", "swarm", "join", "--token", token).exit_code == 2
    assert nk("--node", "h2", "swarm", "join", "--manager", "h1", "10.0.0.1").exit_code == 2
    assert nk("--node", "h1", "swarm", "join-token", "boss").exit_code == 2


def test_swarm_nodes_and_info(nk, fake):
    from netkit.store.cluster import Member
    fake.results["swarm_nodes"] = [(Member("h2", "worker", "192.168.1.11"), "Down"),
                                   (Member("h1", "manager", "192.168.1.10"), "Ready")]
    assert ok(nk("--node", "h1", "swarm", "nodes")).stdout.splitlines() == [
        "HOSTNAME   STATUS    ROLE      ADDRESS",
        "h1 *       Ready     manager   192.168.1.10",
        "h2         Down      worker    192.168.1.11"]
    assert ok(nk("info")).stdout.splitlines()[-1] == "Swarm: inactive"
    fake.results["swarm_info"] = {
        "state": "active", "cluster": "c" * 25, "store": "etcd://10.0.0.5:2379,10.0.0.6:2379",
        "advertise": "192.168.1.10:2377", "role": "manager", "nodes": 3, "managers": 1,
        "down": ["h3"], "endpoints": [
            {"endpoint": "http://10.0.0.5:2379", "healthy": True, "detail": ""},
            {"endpoint": "http://10.0.0.6:2379", "healthy": False, "detail": "connection refused"}]}
    out = ok(nk("--node", "h1", "info")).stdout.splitlines()
    assert out[out.index("Swarm: active"):] == [
        "Swarm: active", " NodeID: h1", " Is Manager: true", f" ClusterID: {'c' * 25}",
        " Managers: 1", " Nodes: 3", " Nodes Down: h3", " Node Address: 192.168.1.10",
        " Cluster Store: etcd (etcd://10.0.0.5:2379,10.0.0.6:2379)",
        "  http://10.0.0.5:2379: healthy",
        "  http://10.0.0.6:2379: unhealthy (connection refused)"]


def test_node_rm(nk, fake):
    fake.raises["remove_node"] = {"busy": Conflict("node busy is in use (c1): use -f to remove it anyway")}
    r = nk("node", "rm", "h1", "busy")
    assert r.exit_code == 1 and r.stdout == "h1\n"
    assert r.stderr == "Error: node busy is in use (c1): use -f to remove it anyway\n"
    ok(nk("node", "rm", "-f", "busy2"))
    assert fake.called("remove_node")[-1] == (("busy2",), {"force": True})


def test_node_exec(nk, fake):
    fake.results["node_exec"] = 2
    r = nk("node", "exec", "h1", "ip", "-br", "addr")
    assert r.exit_code == 2
    assert fake.called("node_exec") == [(("h1", ["ip", "-br", "addr"]), {})]


def test_node_commands_use_the_host_engine(nk, fake):
    ok(nk("--node", "h1", "node", "rm", "h2"))
    assert fake.node is None                  # nodes and LANs live on the real host, whatever --node says
    ok(nk("--node", "h1", "node", "ls"))      # but `node ls` on a node is its swarm's view
    assert fake.node == "h1" and fake.called("node_list") == [((), {})]


def test_lan_commands(nk, fake):
    assert ok(nk("lan", "create", "--subnet", "192.168.1.0/24", "--gateway", "192.168.1.1", "l1")).stdout == "l1\n"
    assert fake.called("create_lan") == [(("l1", "192.168.1.0/24"), {"gateway": "192.168.1.1"})]
    assert nk("lan", "create", "l2").exit_code == 2                      # --subnet is required
    fake.results["lans"] = [Lan("l1", "192.168.1.0/24", "192.168.1.1"), Lan("l0", "10.0.0.0/8")]
    assert ok(nk("lan", "ls")).stdout.splitlines() == [
        "NAME      SUBNET           GATEWAY", "l0        10.0.0.0/8", "l1        192.168.1.0/24   192.168.1.1"]
    fake.raises["remove_lan"] = {"l1": Conflict("lan l1 has nodes attached: h1")}
    r = nk("lan", "rm", "l0", "l1")
    assert r.exit_code == 1 and r.stdout == "l0\n" and r.stderr == "Error: lan l1 has nodes attached: h1\n"


# -- the process boundary --------------------------------------------------------------------------------

def _python(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
                    **(env or {}))
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=full_env,
                          cwd=ROOT, timeout=60)


def test_help_imports_only_click():
    proc = _python("-X", "importtime", "-m", "netkit", "--help")
    assert proc.returncode == 0 and "Usage: netkit" in proc.stdout
    imported = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines()
                if line.startswith("import time:")}
    assert "click" in imported
    assert not imported & {"pyroute2", "netaddr", "dnslib", "rich", "scapy", "sqlite3"}
    loaded = {line.split("|")[-1].strip() for line in proc.stderr.splitlines()}
    assert "netkit.engine" not in loaded


@pytest.mark.parametrize("cmd, flag", [("run", "--network-alias"), ("create", "--restart"),
                                       ("start", "--attach"), ("logs", "--timestamps")])
def test_subcommand_help_is_cheap_too(cmd, flag):
    proc = _python("-X", "importtime", "-m", "netkit", cmd, "--help")
    assert proc.returncode == 0 and flag in proc.stdout
    for heavy in ("pyroute2", "netaddr", "sqlite3", "netkit.engine", "netkit.agent", "netkit.lifecycle"):
        assert f" {heavy}\n" not in proc.stderr and f" {heavy}." not in proc.stderr, heavy


def test_version():
    proc = _python("-m", "netkit", "--version")
    from netkit import __version__
    assert proc.returncode == 0 and proc.stdout == f"netkit version {__version__}\n"   # docker's


_FAILING_ENGINE = """
import sys, types
mod = types.ModuleType("netkit.engine")
class Engine:
    @classmethod
    def from_env(cls, node=None):
        from netkit.errors import NotFound
        raise NotFound(f"node {node} not found")
mod.Engine = Engine
sys.modules["netkit.engine"] = mod
from netkit.cli.main import cli
cli(prog_name="netkit")
"""


def test_error_in_a_real_process_has_no_traceback():
    proc = _python("-c", _FAILING_ENGINE, "--node", "ghost", "network", "ls")
    assert proc.returncode == 1
    assert proc.stderr == "Error: node ghost not found\n"


def test_run_error_in_a_real_process_exits_125():
    proc = _python("-c", _FAILING_ENGINE, "--node", "ghost", "run", "true")
    assert proc.returncode == 125
    assert proc.stderr == "Error: node ghost not found\n"
    proc = _python("-c", _FAILING_ENGINE, "run", "-it", "sh")
    assert proc.returncode == 125 and "No such option" in proc.stderr


def test_netkit_debug_shows_the_traceback_in_a_real_process():
    proc = _python("-c", _FAILING_ENGINE, "--node", "ghost", "network", "ls", env={"NETKIT_DEBUG": "1"})
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "NotFound: node ghost not found" in proc.stderr
