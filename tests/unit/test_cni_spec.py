"""netkit/cni/spec.py: the CNI calls, error objects and results, without a kernel."""

from __future__ import annotations

import json

import pytest

from netkit.cni import spec
from netkit.cni.plugin import _error_of, run
from netkit.cni.spec import Attachment, CniError, parse_call
from netkit.errors import AlreadyExists, Exhausted, InvalidArgument, NotFound

CONF = {"cniVersion": "1.0.0", "name": "pnet", "type": "netkit-cni"}
ENV = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "abc", "CNI_NETNS": "/run/netns/x",
       "CNI_IFNAME": "eth0"}


def code_of(env: dict, conf: object) -> int:
    with pytest.raises(CniError) as err:
        parse_call(env, conf if isinstance(conf, str) else json.dumps(conf))
    return err.value.code


def test_calls_are_checked_with_the_spec_codes():
    assert code_of({}, CONF) == spec.INVALID_ENVIRONMENT
    assert code_of({**ENV, "CNI_COMMAND": "add"}, CONF) == spec.INVALID_ENVIRONMENT
    assert code_of({**ENV, "CNI_IFNAME": ""}, CONF) == spec.INVALID_ENVIRONMENT
    assert code_of({**ENV, "CNI_ARGS": "novalue"}, CONF) == spec.INVALID_ENVIRONMENT
    assert code_of({**ENV, "CNI_CONTAINERID": "a b"}, CONF) == spec.INVALID_ENVIRONMENT
    assert code_of(ENV, "{") == spec.DECODE_FAILURE
    assert code_of(ENV, "[1]") == spec.DECODE_FAILURE
    assert code_of(ENV, {**CONF, "cniVersion": "0.4.0"}) == spec.INCOMPATIBLE_VERSION
    assert code_of({**ENV, "CNI_COMMAND": "GC"}, CONF) == spec.INCOMPATIBLE_VERSION  # 1.1 only
    assert code_of(ENV, {**CONF, "type": ""}) == spec.INVALID_CONFIG
    assert code_of(ENV, {**CONF, "node": 3}) == spec.INVALID_CONFIG
    # DEL needs no netns; VERSION needs nothing but the command
    assert parse_call({**ENV, "CNI_COMMAND": "DEL", "CNI_NETNS": ""}, json.dumps(CONF)).netns == ""
    assert parse_call({"CNI_COMMAND": "VERSION"}, "").command == "VERSION"


def test_names_aliases_and_addresses_from_the_runtime():
    env = {**ENV, "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME=pa;ALIASES=x,y;IP=10.0.0.5"}
    conf = {**CONF, "network": "backend", "node": "n1",
            "runtimeConfig": {"aliases": {"pnet": ["alpha", "x"]}, "ips": ["fd00::5/64"],
                              "mac": "02:00:00:00:00:01"},
            "args": {"cni": {"aliases": ["beta"]}}}
    call = parse_call(env, json.dumps(conf))
    assert (call.network, call.node, call.name()) == ("backend", "n1", "pa")
    assert call.aliases() == ("alpha", "x", "beta", "y")
    assert call.addresses() == ("10.0.0.5", "fd00::5")
    assert call.mac() == "02:00:00:00:00:01"
    plain = parse_call(ENV, json.dumps(CONF))
    assert (plain.network, plain.node, plain.name(), plain.aliases()) == ("pnet", None, None, ())


def test_add_result_and_what_check_reads_of_it():
    att = Attachment("eth0", "02:aa:00:00:00:02", "/run/netns/x", "veth1234567",
                     "10.1.0.2/24", None, "10.1.0.1", None, default_v4=True, dns=True)
    res = spec.add_result("1.1.0", att)
    assert res == {"cniVersion": "1.1.0",
                   "interfaces": [{"name": "veth1234567"},
                                  {"name": "eth0", "mac": "02:aa:00:00:00:02",
                                   "sandbox": "/run/netns/x"}],
                   "ips": [{"address": "10.1.0.2/24", "interface": 1, "gateway": "10.1.0.1"}],
                   "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}],
                   "dns": {"nameservers": ["127.0.0.11"], "options": ["ndots:0"]}}
    assert spec.result_addresses(res, "eth0", "/run/netns/x") == {"10.1.0.2/24"}
    assert spec.result_addresses(res, "eth1", "/run/netns/x") == set()
    bare = spec.add_result("1.0.0", Attachment("net1", "02:aa:00:00:00:03", "/p"))
    assert bare["interfaces"] == [{"name": "net1", "mac": "02:aa:00:00:00:03", "sandbox": "/p"}]
    assert "routes" not in bare and bare["ips"] == [] and bare["dns"] == {}


def test_gc_list_version_answer_and_error_objects():
    keep = [{"containerID": "a", "ifname": "eth0"}, "junk"]
    assert spec.valid_attachments({spec.VALID_ATTACHMENTS: keep}) == {("a", "eth0")}
    with pytest.raises(CniError):
        spec.valid_attachments({spec.VALID_ATTACHMENTS: "a"})
    assert spec.version_answer("9.9.9")["cniVersion"] == "1.1.0"
    assert _error_of(Exhausted("no address")).code == spec.ADDRESSES_EXHAUSTED
    assert _error_of(AlreadyExists("x")).code == spec.CONFLICT
    assert _error_of(NotFound("network n not found")).code == spec.INVALID_CONFIG
    assert _error_of(InvalidArgument("bad")).code == spec.INVALID_CONFIG
    assert _error_of(KeyError("k")).code == spec.NETKIT_ERROR
    assert CniError(7, "m", "d").to_json("1.0.0") == {"cniVersion": "1.0.0", "code": 7,
                                                      "msg": "m", "details": "d"}
    assert run({"CNI_COMMAND": "VERSION"}, '{"cniVersion": "1.0.0"}') == (
        0, {"cniVersion": "1.0.0", "supportedVersions": ["1.0.0", "1.1.0"]})
    code, out = run({"CNI_COMMAND": "ADD"}, json.dumps({**CONF, "cniVersion": "1.1.0"}))
    assert code == 1 and out == {"cniVersion": "1.1.0", "code": 4, "msg": "CNI_CONTAINERID is not set"}
