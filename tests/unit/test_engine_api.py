"""The Engine's shape: a plain class built by composition, with the public API the CLI,
labs, capture, the pytest plugin and the tests call (names, parameters, keyword-only ones
marked with *). Nothing here runs an action: importing netkit.engine needs no root."""

from __future__ import annotations

import inspect

from netkit.engine import Engine

PUBLIC = {
    "agent_status": "",
    "attach": "netns network *ifname *name *aliases *ip *ip6 *mac *sandbox",
    "attached": "*netns *sandbox",
    "capture": "target *iface *filter *count *timeout *pcap *on_packet",
    "close": "",
    "config": "ref",
    "config_create": "name data labels",
    "config_remove": "ref",
    "configs": "",
    "connect": "network container *aliases *ipv4 *ipv6 *links",
    "container": "ref",
    "container_dir": "ref",
    "events": "since until filters",
    "containers": "all",
    "create_container": "spec",
    "create_lan": "name subnet gateway",
    "create_network": "spec",
    "create_node": "name *lan *ip *gateway *dns *state_dir *run_dir",
    "detach": "netns network *sandbox",
    "disconnect": "network container *force",
    "dns_log": "",
    "dns_status": "",
    "exec": "container command",
    "exec_output": "container command *stderr *timeout",
    "firewall_check": "",
    "follow_logs": "ref *tail",
    "from_env": "node *host",
    "inspect_containers": "refs",
    "inspect_networks": "refs",
    "kill": "ref signal",
    "lans": "",
    "logs": "ref *tail",
    "network": "ref",
    "network_members": "net",
    "networks": "",
    "node_exec": "name command capture",
    "nodes": "",
    "node_demote": "node",
    "node_inspect": "refs",
    "node_list": "",
    "node_promote": "node",
    "node_update": "node *availability *label_add *label_rm",
    "port": "container",
    "prune_networks": "",
    "remove_container": "ref *force",
    "remove_lan": "name",
    "remove_network": "ref",
    "remove_node": "name *force",
    "rename": "ref new_name",
    "restart": "ref timeout",
    "run": "spec",
    "secret": "ref",
    "secret_create": "name data labels",
    "secret_remove": "ref",
    "secrets": "",
    "start": "ref *attach",
    "stack_deploy": "name files *prune *out *warn",
    "stack_remove": "name *out",
    "stack_services": "name",
    "stack_tasks": "name",
    "stacks": "",
    "stop": "ref timeout",
    "service": "ref",
    "service_create": "spec",
    "service_logs": "ref *no_trunc",
    "service_remove": "ref",
    "service_rollback": "ref",
    "service_scale": "scales",
    "service_tasks": "ref",
    "service_update": "ref spec *force",
    "services": "",
    "swarm_agents": "",
    "swarm_advertise": "",
    "swarm_info": "",
    "swarm_init": "*advertise_addr *cluster_store",
    "swarm_join": "manager *token *remote",
    "swarm_join_token": "role rotate",
    "swarm_leave": "force",
    "swarm_members": "",
    "swarm_nodes": "",
    "swarm_roles": "",
    "system_check": "",
    "system_prune": "",
    "system_reset": "",
    "wait": "ref",
}


def test_engine_is_one_plain_class_without_mixins():
    assert Engine.__bases__ == (object,)


def test_public_methods_keep_their_names_and_parameters():
    have = {}
    for name, attr in vars(Engine).items():
        if name.startswith("_") or isinstance(attr, property):
            continue
        fn = attr.__func__ if isinstance(attr, classmethod) else attr
        have[name] = " ".join(("*" if p.kind is p.KEYWORD_ONLY else "") + p.name
                              for p in inspect.signature(fn).parameters.values()
                              if p.name not in ("self", "cls"))
    assert have == PUBLIC


def test_the_engine_attributes_others_use():
    assert isinstance(inspect.getattr_static(Engine, "faults"), property)   # tests set it
    init = inspect.signature(Engine.__init__).parameters
    assert list(init) == ["self", "node", "root", "run", "in_agent"]
    assert init["in_agent"].default is False
