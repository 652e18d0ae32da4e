"""cli/render.py: tables, natural order, filters and the --format subset (pure)."""

from __future__ import annotations

import pytest

from netkit.cli import render
from netkit.cli.render import Template, TemplateError
from netkit.errors import InvalidArgument
from netkit.model import Container, Endpoint, Network, Scope, State


def net(name: str, id_char: str = "a", driver: str = "bridge", **kw) -> Network:
    return Network(id=id_char * 64, name=name, driver=driver, **kw)


INSPECT = {
    "Name": "n1", "Id": "f" * 64, "Driver": "bridge", "EnableIPv6": False, "Internal": True,
    "IPAM": {"Driver": "default", "Options": {},
             "Config": [{"Subnet": "172.18.0.0/16", "Gateway": "172.18.0.1"},
                        {"Subnet": "fd00::/64"}]},
    "Containers": {"c2": {"Name": "web", "IPv4Address": "172.18.0.3/16"},
                   "c1": {"Name": "db", "IPv4Address": "172.18.0.2/16"}},
    "Labels": {"b": "2", "a": "1"}, "Options": None,
}


# -- natural order and tables ----------------------------------------------------------

def test_natural_key_orders_numbers_by_value():
    names = ["net10", "net2", "bridge", "net1", "net", "a10b2", "a10b10", "a9"]
    assert sorted(names, key=render.natural_key) == [
        "a9", "a10b2", "a10b10", "bridge", "net", "net1", "net2", "net10"]


def test_tabulate_uses_dockers_tabwriter_widths():
    lines = render.tabulate([["NETWORK ID", "NAME", "DRIVER", "SCOPE"],
                             ["7fca4eb8c647", "bridge", "bridge", "local"],
                             ["9f904ee27bf5", "a-much-longer-name", "null", "local"]])
    assert lines == [
        "NETWORK ID     NAME                 DRIVER    SCOPE",
        "7fca4eb8c647   bridge               bridge    local",
        "9f904ee27bf5   a-much-longer-name   null      local",
    ]


def test_tabulate_strips_trailing_blanks_of_empty_last_cells():
    assert render.tabulate([["NAME", "LAN"], ["n1", ""]]) == ["NAME      LAN", "n1"]


def test_ellipsis():
    assert render.ellipsis("short", 20) == "short"
    assert render.ellipsis("x" * 25, 20) == "x" * 19 + "…"


# -- filters ---------------------------------------------------------------------------------

def test_parse_filters_groups_repeated_keys():
    assert render.parse_filters(["name=a", "driver=bridge", "name=b"], render.NETWORK_FILTERS) == {
        "name": ["a", "b"], "driver": ["bridge"]}


@pytest.mark.parametrize("item, message", [
    ("name", "bad format of filter (expected name=value): name"),
    ("color=red", "invalid filter 'color'"),
    ("type=other", "invalid filter: 'type'='other'"),
])
def test_parse_filters_rejects(item, message):
    with pytest.raises(InvalidArgument, match=message.replace("(", r"\(").replace(")", r"\)")):
        render.parse_filters([item], render.NETWORK_FILTERS)


NETS = [net("bridge", "1"), net("host", "2", "host"), net("none", "3", "null"),
        net("front", "4", labels={"tier": "web", "env": "prod"}),
        net("back", "5", "macvlan", labels={"tier": "db"}), net("ovl", "6", "overlay", scope=Scope.SWARM)]


@pytest.mark.parametrize("filters, names", [
    ({}, ["bridge", "host", "none", "front", "back", "ovl"]),
    ({"driver": ["bridge"]}, ["bridge", "front"]),
    ({"driver": ["bridge", "macvlan"]}, ["bridge", "front", "back"]),          # same key: OR
    ({"driver": ["bridge"], "name": ["ro"]}, ["front"]),                        # keys: AND
    ({"name": ["o"]}, ["host", "none", "front", "ovl"]),                        # substring
    ({"id": ["444"]}, ["front"]),
    ({"label": ["tier"]}, ["front", "back"]),
    ({"label": ["tier=db"]}, ["back"]),
    ({"label": ["tier", "env=prod"]}, ["front", "back"]),
    ({"scope": ["swarm"]}, ["ovl"]),
    ({"type": ["builtin"]}, ["bridge", "host", "none"]),
    ({"type": ["custom"]}, ["front", "back", "ovl"]),
])
def test_match_network(filters, names):
    assert [n.name for n in NETS if render.match_network(n, filters)] == names


# -- rows ------------------------------------------------------------------------------------

def test_network_row_truncates_id_and_renders_bools():
    n = net("front", "4", labels={"tier": "web", "env": "prod"}, internal=True)
    row = render.network_row(n)
    assert row["ID"] == "4" * 12 and row["Scope"] == "local"
    assert (row["IPv4"], row["IPv6"], row["Internal"]) == ("true", "false", "true")
    assert row["Labels"] == "env=prod,tier=web"
    assert render.network_row(n, trunc=False)["ID"] == "4" * 64


def test_container_row():
    c = Container(id="c" * 64, name="web", hostname="h", command=("sleep", "infinity", "--with", "args"),
                  state=State.RUNNING,
                  endpoints=(Endpoint("e1", "n2", "c" * 64, "eth1", "m", network_name="zeta"),
                             Endpoint("e2", "n1", "c" * 64, "eth0", "m", network_name="alpha")))
    row = render.container_row(c)
    assert row["ID"] == "c" * 12
    assert row["Command"] == '"sleep infinity --wi…"'
    assert row["Status"] == "Up"
    assert row["Networks"] == "alpha,zeta"
    assert render.container_row(c, trunc=False)["Command"] == '"sleep infinity --with args"'


@pytest.mark.parametrize("state, code, text", [
    (State.RUNNING, None, "Up"), (State.EXITED, 3, "Exited (3)"), (State.CREATED, None, "Created"),
    (State.RESTARTING, 1, "Restarting (1)")])
def test_container_status(state, code, text):
    c = Container(id="c" * 64, name="x", hostname="h", state=state, exit_code=code,
                  command=("sleep", "9"))
    assert render.container_status(c) == text


def test_a_running_sandbox_without_a_command_shows_created():
    c = Container(id="c" * 64, name="x", hostname="h", state=State.RUNNING)
    assert c.status is State.CREATED and c.running
    assert (render.container_status(c), render.container_row(c)["State"]) == ("Created", "created")


def test_container_networks_falls_back_to_the_mode():
    c = Container(id="c" * 64, name="x", hostname="h", network_mode="host")
    assert render.container_networks(c) == "host"


# -- format_rows -----------------------------------------------------------------------------

ROWS = [render.network_row(n) for n in NETS[:2]]


def test_format_rows_default_table():
    assert render.format_rows(None, ROWS, render.NETWORK_HEADERS, render.NETWORK_TABLE) == [
        "NETWORK ID     NAME      DRIVER    SCOPE",
        "111111111111   bridge    bridge    local",
        "222222222222   host      host      local",
    ]


def test_format_rows_custom_table_with_escaped_tab():
    out = render.format_rows(r"table {{.Name}}\t{{.Driver}}", ROWS, render.NETWORK_HEADERS, "")
    assert out == ["NAME      DRIVER", "bridge    bridge", "host      host"]


def test_format_rows_template_and_json():
    assert render.format_rows("{{.Name}}:{{.Driver}}", ROWS, {}, "") == ["bridge:bridge", "host:host"]
    out = render.format_rows("json", ROWS[:1], {}, "")
    assert out[0].startswith('{"CreatedAt":"","Driver":"bridge","ID":"111111111111",')


def test_to_json_indents_by_four():
    assert render.to_json([{"Name": "n1", "Labels": {}}]) == '[\n    {\n        "Name": "n1",\n        "Labels": {}\n    }\n]'


# -- the template subset ----------------------------------------------------------------------

@pytest.mark.parametrize("text, out", [
    ("{{.Name}}", "n1"),
    ("id={{.Id}} driver={{.Driver}}", f"id={'f' * 64} driver=bridge"),
    ("{{.IPAM.Driver}}", "default"),
    ("{{.EnableIPv6}} {{.Internal}}", "false true"),
    ("{{.Labels}}", "map[a:1 b:2]"),
    ("{{.Options}}", "<nil>"),
    ("{{index .Labels \"nope\"}}", "<no value>"),
    ("{{json .Labels}}", '{"b":"2","a":"1"}'),
    ("{{json .IPAM.Config}}", '[{"Subnet":"172.18.0.0/16","Gateway":"172.18.0.1"},{"Subnet":"fd00::/64"}]'),
    ("{{(index .IPAM.Config 0).Subnet}}", "172.18.0.0/16"),
    ("{{index .IPAM.Config 1 \"Subnet\"}}", "fd00::/64"),
    ("{{index .Labels `a`}}", "1"),
    ("{{.Name | upper}}", "N1"),
    ("{{len .Containers}}", "2"),
    ("{{range .Containers}}{{.Name}} {{end}}", "db web "),
    ("{{range $id, $c := .Containers}}{{$id}}={{$c.Name}};{{end}}", "c1=db;c2=web;"),
    ("{{range .IPAM.Config}}{{.Subnet}},{{end}}", "172.18.0.0/16,fd00::/64,"),
    ("{{range .Options}}x{{else}}empty{{end}}", "empty"),
    ("{{if .Internal}}internal{{else}}open{{end}}", "internal"),
    ("{{if .EnableIPv6}}v6{{end}}", ""),
    ("{{with .IPAM}}{{.Driver}}{{end}}", "default"),
    ("{{$n := .Name}}{{range .IPAM.Config}}{{$n}}{{end}}", "n1n1"),
    ("{{range .IPAM.Config}}{{$.Name}}{{end}}", "n1n1"),
    ("a {{- .Name -}} b", "an1b"),
    ("{{/* comment */}}x", "x"),
    ("{{join (split \"a,b\" \",\") \"+\"}}", "a+b"),
    ("{{.}}", None),
])
def test_template(text, out):
    result = Template(text).render(INSPECT)
    if out is None:
        assert result.startswith("map[Containers:map[c1:map[")
    else:
        assert result == out


@pytest.mark.parametrize("text", [
    "{{.Name", "{{nosuchfunc .Name}}", "{{end}}", "{{range .X}}", "{{.Name .Id}}", "{{(index .X 0}}",
    "{{index .IPAM.Config 5}}", "{{range .Name}}{{end}}", "{{$undefined}}", "{{.Name | .Id}}",
    "{{.Nope}}", "{{.Nope.Deeper}}", "{{range .Nope}}x{{else}}empty{{end}}",
])
def test_template_errors_are_invalid_argument(text):
    with pytest.raises(TemplateError) as info:
        Template(text).render(INSPECT)
    assert isinstance(info.value, InvalidArgument)


def test_template_string_may_contain_braces():
    assert Template('{{index .Labels "}}"}}').render({"Labels": {"}}": "ok"}}) == "ok"


def test_table_header_keeps_column_names_through_functions():
    """Docker's HeaderFunctions: upper/join/split ... leave the header's names as they are."""
    out = render.format_rows("table {{upper .Name}}\t{{split .Driver \"r\"}}", ROWS,
                             render.NETWORK_HEADERS, "")
    assert out == ["NAME      DRIVER", "BRIDGE    [b idge]", "HOST      [host]"]


# -- docker ps filters, PORTS, network dangling ------------------------------------------------

def test_dangling_networks_are_user_networks_without_containers():
    spare, used = net("spare", "s"), net("used", "u")
    assert render.match_network(spare, {"dangling": ["true"]}, 0)
    assert not render.match_network(used, {"dangling": ["true"]}, 2)
    assert not render.match_network(net("bridge", "b"), {"dangling": ["1"]}, 0)
    assert render.match_network(net("bridge", "b"), {"dangling": ["false"]}, 0)
    with pytest.raises(InvalidArgument, match="invalid filter 'dangling=maybe'"):
        render.parse_filters(["dangling=maybe"], render.NETWORK_FILTERS)


PS_CTR = Container(id="ab" * 32, name="web", hostname="h", state=State.EXITED, exit_code=3,
                   created="2026-01-02T00:00:00Z", options={"labels": {"tier": "web"}},
                   endpoints=(Endpoint("e" * 64, "n" * 64, "ab" * 32, "eth0", "m",
                                       network_name="front"),))


@pytest.mark.parametrize("filters, hit", [
    ({"id": ["abab"]}, True), ({"id": ["cd"]}, False),
    ({"name": ["^/we"]}, True), ({"name": ["^we"]}, False),
    ({"label": ["tier"]}, True), ({"label": ["tier=db"]}, False),
    ({"status": ["running", "exited"]}, True), ({"status": ["running"]}, False),
    ({"exited": ["3"]}, True), ({"exited": ["0"]}, False),
    ({"network": ["front"]}, True), ({"network": ["nnnn"]}, True), ({"network": ["back"]}, False),
    ({"publish": ["80"]}, True), ({"publish": ["80/udp"]}, False), ({"publish": ["79-81/tcp"]}, True),
    ({"expose": ["81"]}, True), ({"expose": ["82"]}, False),
    ({"before": ["later"]}, True), ({"since": ["later"]}, False),
    ({"is-task": ["false"]}, True), ({"is-task": ["true"]}, False),
    ({"label": ["tier"], "status": ["running"]}, False),
])
def test_match_container(filters, hit):
    assert render.match_container(PS_CTR, filters, published={"80/tcp"}, exposed={"80/tcp", "81/tcp"},
                                  created={"later": "2026-02-01T00:00:00Z"}) is hit


@pytest.mark.parametrize("item, message", [
    ("status=bogus", "invalid filter 'status=bogus'"), ("exited=x", "invalid filter 'exited=x'"),
    ("ancestor=img", "invalid filter 'ancestor'"), ("health=healthy", "invalid filter 'health'"),
])
def test_container_filters_rejected(item, message):
    with pytest.raises(InvalidArgument, match=message):
        render.parse_filters([item], render.CONTAINER_FILTERS)


@pytest.mark.parametrize("ports, text", [
    ([], ""),
    ([("0.0.0.0", 80, 8080, "tcp")], "0.0.0.0:8080->80/tcp"),
    ([("0.0.0.0", 80, 8080, "tcp"), ("", 81, 0, "tcp")], "81/tcp, 0.0.0.0:8080->80/tcp"),
    ([("0.0.0.0", 80, 80, "tcp"), ("0.0.0.0", 81, 81, "tcp")], "0.0.0.0:80-81->80-81/tcp"),
    ([("", 81, 0, "tcp"), ("", 82, 0, "tcp"), ("", 84, 0, "tcp"), ("", 53, 0, "udp")],
     "81-82/tcp, 53/udp, 84/tcp"),     # Docker: a closed group first, then open ones
    ([("::", 80, 8080, "tcp")], "[::]:8080->80/tcp"),
])
def test_display_ports_is_dockers(ports, text):
    assert render.display_ports(ports) == text


def test_container_row_has_dockers_other_ps_fields():
    from datetime import datetime, timedelta, timezone
    created = (datetime.now(timezone.utc) - timedelta(minutes=3, seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    c = Container(id="a" * 64, name="x", hostname="h", created=created, options={"labels": {"b": "2", "a": "1"}})
    row = render.container_row(c)
    assert (row["RunningFor"], row["Labels"], row["Image"], row["Ports"]) == ("3 minutes ago", "a=1,b=2", "", "")
    out = render.format_rows("table {{.Name}}\t{{.RunningFor}}\t{{.Labels}}", [row], render.CONTAINER_HEADERS, "")
    assert out[0].split() == ["NAME", "CREATED", "LABELS"]


def test_display_ports_brackets_ipv6_hosts():
    assert render.display_ports([("0.0.0.0", 80, 8080, "tcp"), ("::", 80, 8080, "tcp")]) == \
        "0.0.0.0:8080->80/tcp, [::]:8080->80/tcp"
    assert render.display_ports([("::", 80, 80, "tcp"), ("::", 81, 81, "tcp")]) == "[::]:80-81->80-81/tcp"


def test_host_bindings_add_the_v6_binding_only_where_the_network_gave_ipv6():
    from netkit.model import Endpoint, PortMapping
    from netkit.ports import host_bindings
    pm = PortMapping("tcp", "0.0.0.0", 8080, 80, "10.0.0.2", "n6")
    local = PortMapping("tcp", "127.0.0.1", 8081, 80, "10.0.0.2", "n6")
    v4 = PortMapping("udp", "0.0.0.0", 5353, 53, "10.1.0.2", "n4")
    eps = (Endpoint("e1", "n6", "c" * 64, "eth0", "02:42:0a:00:00:02", "10.0.0.2/24", "fd00::2/64"),
           Endpoint("e2", "n4", "c" * 64, "eth1", "02:42:0a:01:00:02", "10.1.0.2/24"))
    c = Container(id="c" * 64, name="x", hostname="h", endpoints=eps, ports=(pm, local, v4))
    assert [(b.host_ip, b.host_port) for b in host_bindings(c)] == [
        ("0.0.0.0", 8080), ("::", 8080), ("127.0.0.1", 8081), ("0.0.0.0", 5353)]
