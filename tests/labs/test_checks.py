"""Checks: parsing errors, the registry, and the verdicts against a fake lab (pure)."""

from __future__ import annotations

import json

import pytest

from netkit.labs import checks
from netkit.labs.project import load_project
from netkit.labs.source import LabFileError


def lab_with(write, checks_yaml: str):
    return load_project(write("lab.yml", "name: t\nservices:\n  web: {}\n  client: {}\nx-netkit:\n  checks:\n"
                              + checks_yaml))


@pytest.mark.parametrize("item, line, message", [
    ("    - reach: {from: web, to: db}\n", 7, "x-netkit.checks[0].reach: give either port or ping: true"),
    ("    - reach: {from: web, to: db, port: 80, ping: true}\n", 7,
     "x-netkit.checks[0].reach: give either port or ping: true"),
    ("    - reach: {from: web, port: 80}\n", 7, 'x-netkit.checks[0].reach: missing key "to"'),
    ("    - reach: {from: web, to: db, port: 80, expect: maybe}\n", 7,
     'x-netkit.checks[0].reach.expect: expected one of ok, blocked, got "maybe"'),
    ("    - reach: {from: webb, to: db, port: 80}\n", 7,
     'x-netkit.checks[0].reach.from: no service or container "webb" in this lab (services: web, client)'),
    ("    - reech: {from: web}\n", 7, 'x-netkit.checks[0].reech: unknown check kind "reech" (did you mean "reach"?)'),
    ("    - {name: x}\n", 7, "x-netkit.checks[0]: a check has exactly one kind (capture, connect, disconnect, "
                            "exec, node_update, reach, resolve, service_update, tasks); got none"),
    ("    - {reach: {}, exec: {}}\n", 7, "x-netkit.checks[0]: a check has exactly one kind (capture, connect, "
                                        "disconnect, exec, node_update, reach, resolve, service_update, tasks); got reach, exec"),
    ("    - exec: {in: web, command: x, output_regex: '('}\n", 7,
     "x-netkit.checks[0].exec.output_regex: invalid regular expression: missing ), unterminated subpattern at position 0"),
    ("    - connect: {network: nope, container: web}\n", 7, 'x-netkit.checks[0].connect.network: undefined network "nope"'),
    ("    - resolve: {from: client, name: web, expect: some}\n", 7,
     'x-netkit.checks[0].resolve.expect: expected "none" or a list of strings, got "some"'),
])
def test_check_errors_name_file_line_and_key(write, item, line, message):
    with pytest.raises(LabFileError) as e:
        lab_with(write, item)
    assert str(e.value).endswith(f"lab.yml:{line}: {message}")


def test_capture_kind_comes_from_netkit_capture(write, monkeypatch):
    from netkit.capture.check import CaptureCheck
    assert checks.get("capture") is CaptureCheck
    monkeypatch.delitem(checks._registered, "capture")            # as if the module were missing
    monkeypatch.setitem(checks._BUILTIN, "capture", "netkit.capture.check:Missing")
    with pytest.raises(LabFileError, match=r'checks\[0\].capture: check kind "capture" is not available '
                                           r"\(netkit.capture.check is not installed\)"):
        lab_with(write, "    - capture: {on: web}\n")


def test_references_accept_services_containers_and_nodes(write):
    p = lab_with(write, "    - exec: {in: t-web-1, command: x}\n    - exec: {in: t_client_2, command: x}\n"
                        "    - exec: {in: 'node:n1', command: x}\n    - exec: {in: web, index: 2, command: [ls, -l]}\n")
    assert [c.describe() for c in p.checks] == ["exec in t-web-1: x", "exec in t_client_2: x",
                                                "exec in node:n1: x", "exec in web: ls -l"]


def test_register_a_new_kind(write):
    class Always(checks.Check):
        kind = "always"
        fields = {"answer": checks.S.Bool()}
        required = ("answer",)

        def run(self, ctx):
            return self.body["answer"], "as told"

    checks.register(Always)
    try:
        p = lab_with(write, "    - always: {answer: true}\n")
        assert isinstance(p.checks[0], Always) and p.checks[0].run(None) == (True, "as told")
        assert "always" in checks.kinds()
    finally:
        checks._registered.pop("always")


class FakeCtx:
    """Canned command outputs, keyed by the command's first words after the agent."""

    def __init__(self, outputs: dict[str, tuple[int, str]], addresses=None) -> None:
        self.outputs, self.calls = outputs, []
        self._addresses = addresses or {}

    def run_in(self, ref, index, argv, timeout):
        self.calls.append((ref, index, argv))
        key = argv[3] if argv[1:3] == ["-m", checks.AGENT] else argv[0]
        return self.outputs[key]

    def label(self, ref, index):
        return f"t-{ref}-{index or 1}"

    def addresses(self, name, seen_from, index):
        return self._addresses.get(name, [])


def parse(item: dict) -> checks.Check:
    from netkit.labs.schema import Ctx
    from netkit.labs.source import Where
    return checks.parse(item, (), Ctx(Where()))


def reach_out(ok: bool, detail: str, peers=()) -> tuple[int, str]:
    return (0 if ok else 1), json.dumps({"ok": ok, "detail": detail, "peers": list(peers)}) + "\n"


def test_reach_verdicts_and_evidence():
    ok = FakeCtx({"reach": reach_out(True, "connected to 10.0.0.3:80/tcp")})
    assert parse({"reach": {"from": "web", "to": "db", "port": 80}}).run(ok) == (
        True, "t-web-1 -> db: ok (connected to 10.0.0.3:80/tcp); expected ok")
    refused = FakeCtx({"reach": reach_out(False, "10.0.0.3:80/tcp: connection refused")})
    c = parse({"reach": {"from": "web", "to": "db", "port": 80}})
    assert c.run(refused) == (False, "t-web-1 -> db: blocked (10.0.0.3:80/tcp: connection refused); expected ok")
    blocked = parse({"reach": {"from": "web", "to": "db", "port": 80, "expect": "blocked"}})
    assert blocked.run(refused)[0] is True and blocked.within() == 0.0 and c.within() == 3.0
    spread = parse({"reach": {"from": "c", "to": "web", "port": 80, "count": 3, "distinct": 3}})
    same = FakeCtx({"reach": reach_out(True, "3/3 ok", ["10.0.0.2"] * 3)})
    assert spread.run(same) == (False, "t-c-1 -> web: ok (3/3 ok); expected 3 different addresses to "
                                       "answer, got 1")
    assert "--count" in same.calls[0][2] and "3" in same.calls[0][2]
    garbage = FakeCtx({"reach": (1, "Traceback: boom\n")})
    assert c.run(garbage) == (False, "t-web-1 -> db: blocked (agent failed (exit 1): Traceback: boom); expected ok")


def test_ping():
    out = "PING 10.0.0.1 (10.0.0.1) 56(84) bytes of data.\n64 bytes from 10.0.0.1: icmp_seq=1\n\n1 packets transmitted, 1 received, 0% packet loss\n"
    c = parse({"reach": {"from": "web", "to": "10.0.0.1", "ping": True}})
    passed, evidence = c.run(FakeCtx({"ping": (0, out)}))
    assert passed and "64 bytes from 10.0.0.1" in evidence and "0% packet loss" in evidence


def dns(*answers, via="dns 127.0.0.11", rcode="NOERROR"):
    return 0, "".join(json.dumps({"via": via, "rcode": rcode if not a else "NOERROR", "addresses": a}) + "\n"
                      for a in answers)


def test_resolve_sets_round_robin_and_none():
    rr = parse({"resolve": {"from": "client", "name": "web", "expect": ["web"], "round_robin": True}})
    addrs = {"web": [{"10.0.0.2", "10.0.0.3"}]}
    rotating = dns(["10.0.0.2", "10.0.0.3"], ["10.0.0.3", "10.0.0.2"], ["10.0.0.2", "10.0.0.3"],
                   ["10.0.0.3", "10.0.0.2"], ["10.0.0.2", "10.0.0.3"])
    passed, evidence = rr.run(FakeCtx({"resolve": rotating}, addrs))
    assert passed and evidence.endswith("every address came first (10.0.0.2 10.0.0.3 10.0.0.2 10.0.0.3 10.0.0.2)")
    stuck = dns(*[["10.0.0.2", "10.0.0.3"]] * 5)
    assert rr.run(FakeCtx({"resolve": stuck}, addrs)) == (False, (
        "t-client-1 asked dns 127.0.0.11 5x for web: " + " | ".join(["10.0.0.2 10.0.0.3"] * 5)
        + "; not round robin: 10.0.0.3 never came first"))
    wrong = parse({"resolve": {"from": "client", "name": "web", "expect": ["web", "10.9.9.9"]}})
    assert wrong.run(FakeCtx({"resolve": dns(["10.0.0.2", "10.0.0.3"])}, addrs)) == (False, (
        "t-client-1 asked dns 127.0.0.11 1x for web: 10.0.0.2 10.0.0.3; "
        "expected {10.0.0.2, 10.0.0.3, 10.9.9.9}"))
    none = parse({"resolve": {"from": "client", "name": "db", "expect": "none"}})
    assert none.run(FakeCtx({"resolve": dns([], rcode="NXDOMAIN")})) == (
        True, "t-client-1 asked dns 127.0.0.11 1x for db: NXDOMAIN")
    assert none.run(FakeCtx({"resolve": dns(["10.0.0.5"])}))[0] is False


def test_resolve_per_network_alternatives():
    c = parse({"resolve": {"from": "client", "name": "web", "expect": ["web"]}})
    ctx = FakeCtx({"resolve": dns(["10.1.0.2"])}, {"web": [{"10.0.0.2"}, {"10.1.0.2"}]})
    assert c.run(ctx)[0] is True


def test_exec_verdicts():
    c = parse({"exec": {"in": "web", "command": "ip route", "output": "default via", "exit": 0}})
    assert c.argv() == ["sh", "-c", "ip route"]
    assert c.run(FakeCtx({"sh": (0, "default via 10.0.0.1 dev eth0\n")})) == (
        True, "t-web-1: exit 0\ndefault via 10.0.0.1 dev eth0")
    assert c.run(FakeCtx({"sh": (2, "")})) == (
        False, 't-web-1: exit 2, expected 0; output lacks "default via"\n(no output)')
    rx = parse({"exec": {"in": "web", "command": ["cat", "f"], "output_regex": r"^\d+$"}})
    assert rx.run(FakeCtx({"cat": (0, "abc\n")}))[1].startswith("t-web-1: output does not match /^\\d+$/")
