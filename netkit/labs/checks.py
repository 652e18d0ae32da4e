"""Lab checks (`x-netkit.checks`): a small declarative list, run in order by `lab test`.

Each entry is a mapping with an optional ``name`` and exactly one *kind*::

    - reach:   {from: web, to: db, port: 3306}                 # tcp (default) or udp
    - reach:   {from: client, to: web, port: 80, count: 3, resolver: dns, distinct: 3}
    - reach:   {from: client, to: 10.0.0.9, ping: true, expect: blocked}
    - resolve: {from: client, name: web, expect: [web], round_robin: true}
    - exec:    {in: web, command: "ip -4 -o addr", exit: 0, output: "172.72."}
    - connect: {network: front, container: outsider}           # steps of a scenario
    - disconnect: {network: front, container: outsider}

Kinds come from a registry: the built-ins below by name, ``capture`` from
``netkit.capture`` once it exists, third-party ones from the entry point
group ``netkit.lab_checks``, or :func:`register` at run time. A kind is a
:class:`Check` subclass: ``kind``, ``fields`` (schema checkers for its body,
validated when the file loads, so a typo is an error with file and line),
``validate(project)`` for references, and ``run(ctx) -> (passed, evidence)``.
``ctx`` is the runner's :class:`CheckContext`: it runs commands in
containers or on nodes and answers questions about the running lab.
"""

from __future__ import annotations

import difflib
import importlib
import json
import math
import re
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from netkit.labs import schema as S
from netkit.labs.source import Path

if TYPE_CHECKING:
    from netkit.labs.model import Project

AGENT = "netkit.labs.agent"

_BUILTIN = {
    "reach": "netkit.labs.checks:Reach",
    "resolve": "netkit.labs.checks:Resolve",
    "exec": "netkit.labs.checks:Exec",
    "connect": "netkit.labs.checks:Connect",
    "disconnect": "netkit.labs.checks:Disconnect",
    "capture": "netkit.capture.check:CaptureCheck",        # arrives with netkit.capture
    "tasks": "netkit.labs.swarm:Tasks",                   # swarm services (x-netkit.services)
    "node_update": "netkit.labs.swarm:NodeUpdate",
    "service_update": "netkit.labs.swarm:ServiceUpdate",
}
_registered: dict[str, type["Check"]] = {}


class CheckContext(Protocol):
    """What a check may ask of the running lab (implemented by the runner)."""

    project: "Project"

    def run_in(self, ref: str, index: int | None, argv: list[str], timeout: float) -> tuple[int, str]:
        """Run argv in a container (service or container name) or on ``node:NAME``;
        (exit code, stdout and stderr together). The command is killed after `timeout`."""

    def label(self, ref: str, index: int | None) -> str:
        """The container (or node) name a reference points to, for evidence."""

    def addresses(self, name: str, seen_from: str, index: int | None) -> list[set[str]]:
        """IPv4 addresses `name` (a service, container or alias) has on each network it
        shares with `seen_from`: one set per shared network."""

    def connect(self, network: str, ref: str, index: int | None, aliases: tuple[str, ...],
                ipv4: str | None) -> str: ...

    def disconnect(self, network: str, ref: str, index: int | None, force: bool) -> str: ...

    def node_name(self, ref: str) -> str:
        """``node:KEY``, ``KEY`` (of x-netkit.nodes) or a node's name -> the node's name."""

    def swarm_manager(self) -> Any:
        """The Engine of the lab's swarm manager (x-netkit.swarm)."""

    def capture_target(self, ref: str, index: int | None, iface: str | None = None) -> Any:
        """A netkit.capture Target: a service/container (on its node), ``node:``, ``lan:``
        or ``network:`` with keys of the file resolved to names."""


@dataclass
class CheckResult:
    check: "Check"
    passed: bool
    evidence: str
    seconds: float = 0.0

    @property
    def status(self) -> str:
        if self.check.step:
            return "done" if self.passed else "failed"
        return "passed" if self.passed else "failed"


class Check:
    """Base of check kinds. Subclasses set `kind`, `fields`, `required` and `run`."""

    kind: ClassVar[str] = ""
    fields: ClassVar[dict[str, S.T]] = {}
    required: ClassVar[tuple[str, ...]] = ()
    step: ClassVar[bool] = False         # an action of a scenario, not an assertion

    def __init__(self, body: dict[str, Any], name: str | None = None, path: Path = ()) -> None:
        self.body, self.name, self.path = body, name, path

    @classmethod
    def parse_body(cls, value: Any, path: Path, ctx: S.Ctx) -> dict[str, Any]:
        return S.Obj(cls.fields, required=cls.required, extensions=False).check(value, path, ctx)

    def validate(self, project: "Project") -> None:
        """References to services, networks: errors name the file and line."""

    def describe(self) -> str:
        return self.kind

    @property
    def title(self) -> str:
        return self.name or self.describe()

    def within(self) -> float:
        """How long a failing check is retried before it counts as failed (a server may
        still be starting). Checks that expect something to fail are not retried."""
        return float(self.body.get("within", 3.0))

    def run(self, ctx: CheckContext) -> tuple[bool, str]:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name} if self.name else {}
        out[self.kind] = {k: (S.format_duration(v) if isinstance(self.fields.get(k), S.Duration) else v)
                          for k, v in self.body.items()}
        return out

    # helpers for subclasses
    def _ref(self, project: "Project", key: str) -> None:
        ref = self.body.get(key)
        if ref is None or _known_ref(project, ref):
            return
        names = ", ".join(project.services) or "none"
        raise project.where.error(self.path + (self.kind, key),
                                  f'no service or container "{ref}" in this lab (services: {names})')


def _known_ref(project: "Project", ref: str) -> bool:
    if ref.startswith("node:") or ref in project.services:
        return True
    if ref.startswith("task:"):                 # a swarm service's task (its stacks' too)
        return bool(project.swarm)
    m = re.match(rf"^{re.escape(project.name)}[-_](.+)[-_](\d+)$", ref)
    if m and m.group(1) in project.services:
        return True
    return any(s.container_name == ref for s in project.services.values())


def register(cls: type[Check]) -> type[Check]:
    """Add a check kind (a decorator; replaces a kind of the same name)."""
    _registered[cls.kind] = cls
    return cls


def kinds() -> list[str]:
    return sorted(set(_BUILTIN) | set(_registered))


def get(kind: str) -> type[Check] | None:
    """The class of a kind; None if unknown. Raises ImportError-derived
    `InvalidArgument` if the kind is known but its module is not installed."""
    if kind in _registered:
        return _registered[kind]
    target = _BUILTIN.get(kind)
    if target is None:
        from importlib.metadata import entry_points
        for ep in entry_points(group="netkit.lab_checks", name=kind):
            return register(ep.load())
        return None
    module, _, attr = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        return None
    _registered[kind] = cls
    return cls


def parse(item: Any, path: Path, ctx: S.Ctx) -> Check:
    """One entry of `x-netkit.checks` -> a Check (schema-checked, not yet run)."""
    known = ", ".join(k for k in kinds())
    if not isinstance(item, dict):
        raise ctx.fail(path, f"expected a check (a mapping with one of {known}), got {S.got(item)}")
    name = item.get("name")
    if name is not None and not isinstance(name, str):
        raise ctx.fail(path + ("name",), f"expected a string, got {S.got(name)}")
    rest = [k for k in item if k != "name"]
    if len(rest) != 1:
        what = f"got {', '.join(rest)}" if rest else "got none"
        raise ctx.fail(path, f"a check has exactly one kind ({known}); {what}")
    kind = rest[0]
    cls = get(kind)
    if cls is None:
        if kind in _BUILTIN:
            module = _BUILTIN[kind].split(":")[0]
            raise ctx.fail(path + (kind,), f'check kind "{kind}" is not available ({module} is not installed)')
        near = difflib.get_close_matches(kind, kinds(), n=1, cutoff=0.6)
        raise ctx.fail(path + (kind,), f'unknown check kind "{kind}"' +
                       (f' (did you mean "{near[0]}"?)' if near else f" (known: {known})"))
    body = cls.parse_body(item[kind], path + (kind,), ctx)
    return cls(body, name, path)


# -- built-in kinds -----------------------------------------------------------------------

def agent(*args: str) -> list[str]:
    """argv of the in-container helper (netkit.labs.agent), with netkit's own Python."""
    return [sys.executable, "-m", AGENT, *args]


def _index(body: dict[str, Any]) -> int | None:
    return body.get("index")


def _clip(text: str, lines: int = 6, width: int = 300) -> str:
    rows = [r[:width] for r in text.strip().splitlines()]
    if len(rows) > lines:
        rows = rows[:lines] + [f"... ({len(rows) - lines} more lines)"]
    return "\n".join(rows)


class Reach(Check):
    """Can `from` open a TCP connection, get a UDP answer, or ping `to`?"""

    kind = "reach"
    fields = {"from": S.Str(), "index": S.Int(minimum=1), "to": S.Str(), "port": S.Int(1, 65535),
              "proto": S.Enum("tcp", "udp"), "ping": S.Bool(), "expect": S.Enum("ok", "blocked"),
              "timeout": S.Duration(), "within": S.Duration(), "count": S.Int(1, 100),
              "resolver": S.Enum("system", "dns"), "distinct": S.Int(1, 100)}
    required = ("from", "to")

    @classmethod
    def parse_body(cls, value, path, ctx):
        body = super().parse_body(value, path, ctx)
        if bool(body.get("port")) == bool(body.get("ping")):
            raise ctx.fail(path, "give either port or ping: true")
        for key in ("proto", "count", "resolver", "distinct"):
            if body.get("ping") and key in body:
                raise ctx.fail(path + (key,), f"{key} goes with port, not with ping")
        if body.get("distinct", 1) > body.get("count", 1):
            raise ctx.fail(path + ("distinct",), "distinct cannot be more than count")
        if "distinct" in body and body.get("expect") == "blocked":
            raise ctx.fail(path + ("distinct",), "distinct goes with expect: ok")
        return body

    def validate(self, project):
        self._ref(project, "from")

    @property
    def expect(self) -> str:
        return self.body.get("expect", "ok")

    def describe(self) -> str:
        b = self.body
        what = "ping" if b.get("ping") else f"{b['port']}/{b.get('proto', 'tcp')}"
        times = f" x{b['count']}" if b.get("count", 1) > 1 else ""
        spread = f", {b['distinct']} different answers" if b.get("distinct", 1) > 1 else ""
        return f"reach {b['from']} -> {b['to']} {what}{times}: expect {self.expect}{spread}"

    def within(self) -> float:
        return 0.0 if self.expect == "blocked" else super().within()

    def run(self, ctx):
        b = self.body
        timeout = float(b.get("timeout", 1.0))
        src = ctx.label(b["from"], _index(b))
        if b.get("ping"):
            code, out = ctx.run_in(b["from"], _index(b), ["ping", "-n", "-c", "1", "-W",
                                                         str(max(1, math.ceil(timeout))), b["to"]],
                                   timeout + 2)
            ok = code == 0
            lines = [l for l in out.splitlines() if "bytes from" in l or "loss" in l or "ping:" in l]
            detail = "; ".join(lines) or _clip(out, 2) or f"ping exited {code}"
        else:
            proto, count = b.get("proto", "tcp"), b.get("count", 1)
            argv = agent("reach", proto, b["to"], str(b["port"]), "--timeout", str(timeout),
                         "--count", str(count), "--resolver", b.get("resolver", "system"))
            code, out = ctx.run_in(b["from"], _index(b), argv, count * (timeout + 2) + 5)
            res = _last_json(out)
            if res is None:
                ok, detail = False, f"agent failed (exit {code}): {_clip(out, 3)}"
            else:
                ok = bool(res.get("ok"))
                detail = res.get("detail", "")
                distinct = len({p for p in res.get("peers") or () if p})
                if ok and distinct < b.get("distinct", 0):
                    return False, (f"{src} -> {b['to']}: ok ({detail}); expected {b['distinct']} "
                                   f"different addresses to answer, got {distinct}")
        got = "ok" if ok else "blocked"
        return got == self.expect, f"{src} -> {b['to']}: {got} ({detail}); expected {self.expect}"


class Resolve(Check):
    """What does `name` resolve to in `from` (hosts file, then its DNS server)?

    ``expect``: the address set, as IPs and/or names of services and
    containers (each standing for its addresses on a network it shares with
    `from`), or ``none`` (the name must not resolve). ``round_robin``: ask
    several times; every expected address must come first at least once.
    """

    kind = "resolve"
    fields = {"from": S.Str(), "index": S.Int(minimum=1), "name": S.Str(),
              "expect": S.Either(S.Enum("none"), S.List(S.Str())), "round_robin": S.Bool(),
              "queries": S.Int(1, 100), "within": S.Duration()}
    required = ("from", "name")

    def validate(self, project):
        self._ref(project, "from")

    def describe(self) -> str:
        b = self.body
        exp = b.get("expect")
        want = "nothing" if exp == "none" else ("{" + ", ".join(exp) + "}" if exp else "something")
        rr = ", round robin" if b.get("round_robin") else ""
        return f"resolve {b['name']} from {b['from']}: expect {want}{rr}"

    def within(self) -> float:
        return 0.0 if self.body.get("expect") == "none" else super().within()

    def _expected(self, ctx) -> list[set[str]] | None:
        exp = self.body.get("expect")
        if not exp or exp == "none":
            return None
        ips = {e for e in exp if _is_ip(e)}
        names = [e for e in exp if not _is_ip(e)]
        options = [ips]
        for name in names:
            per_net = ctx.addresses(name, self.body["from"], _index(self.body))
            if not per_net:
                per_net = [set()]
            options = [o | s for o in options for s in per_net]
        return options

    def run(self, ctx):
        b = self.body
        src = ctx.label(b["from"], _index(b))
        expected = self._expected(ctx)
        n = b.get("queries") or (2 * max(len(expected[0]), 1) + 1 if expected and b.get("round_robin") else 1)
        code, out = ctx.run_in(b["from"], _index(b), agent("resolve", b["name"], "--queries", str(n)), 10 + n)
        answers = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
        if not answers:
            return False, f"{src}: resolver helper failed (exit {code}): {_clip(out, 3)}"
        via = answers[0].get("via", "?")
        seqs = [a.get("addresses") or [] for a in answers]
        shown = " | ".join(" ".join(s) if s else a.get("rcode", "no answer") for s, a in zip(seqs, answers))
        head = f"{src} asked {via} {len(answers)}x for {b['name']}: {shown}"
        if b.get("expect") == "none":
            ok = not any(seqs)
            return ok, head + ("" if ok else "; expected no answer")
        if not any(seqs):
            return False, head + "; expected an answer"
        if expected is None:
            return True, head
        got = set(seqs[0])
        match = next((e for e in expected if e == got), None)
        if match is None:
            want = " or ".join("{" + ", ".join(sorted(e)) + "}" for e in expected)
            return False, head + f"; expected {want}"
        if any(set(s) != got for s in seqs):
            return False, head + "; the answers differ between queries"
        if b.get("round_robin"):
            firsts = [s[0] for s in seqs]
            missing = got - set(firsts)
            if missing:
                return False, head + f"; not round robin: {', '.join(sorted(missing))} never came first"
            return True, head + f"; every address came first ({' '.join(firsts)})"
        return True, head


class Exec(Check):
    """Run a command in a container (or ``node:NAME``): expected exit code and output."""

    kind = "exec"
    fields = {"in": S.Str(), "index": S.Int(minimum=1), "command": S.Either(S.Str(), S.List(S.Scalar())),
              "exit": S.Int(0, 255), "output": S.Str(), "output_regex": S.Str(), "timeout": S.Duration(),
              "within": S.Duration()}
    required = ("in", "command")

    @classmethod
    def parse_body(cls, value, path, ctx):
        body = super().parse_body(value, path, ctx)
        if "output_regex" in body:
            try:
                re.compile(body["output_regex"])
            except re.error as exc:
                raise ctx.fail(path + ("output_regex",), f"invalid regular expression: {exc}") from None
        return body

    def validate(self, project):
        self._ref(project, "in")

    def argv(self) -> list[str]:
        cmd = self.body["command"]
        return ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)

    def describe(self) -> str:
        cmd = self.body["command"]
        text = cmd if isinstance(cmd, str) else " ".join(cmd)
        return f"exec in {self.body['in']}: {text}"

    def run(self, ctx):
        b = self.body
        src = ctx.label(b["in"], _index(b))
        code, out = ctx.run_in(b["in"], _index(b), self.argv(), float(b.get("timeout", 10.0)))
        want = b.get("exit", 0)
        problems = []
        if code != want:
            problems.append(f"exit {code}, expected {want}")
        if "output" in b and b["output"] not in out:
            problems.append(f'output lacks "{b["output"]}"')
        if "output_regex" in b and not re.search(b["output_regex"], out, re.M):
            problems.append(f"output does not match /{b['output_regex']}/")
        shown = _clip(out) or "(no output)"
        if "output" in b and b["output"] in out and len(out.splitlines()) > 6:
            shown = _clip("\n".join(l for l in out.splitlines() if b["output"] in l))
        verdict = "; ".join(problems) if problems else f"exit {code}"
        return not problems, f"{src}: {verdict}\n{shown}"


class Connect(Check):
    """A step: `docker network connect` a container to one of the lab's networks."""

    kind = "connect"
    step = True
    fields = {"network": S.Str(), "container": S.Str(), "index": S.Int(minimum=1),
              "aliases": S.List(S.Str()), "ipv4_address": S.Str()}
    required = ("network", "container")

    def validate(self, project):
        self._ref(project, "container")
        if self.body["network"] not in project.networks:
            raise project.where.error(self.path + (self.kind, "network"),
                                      f'undefined network "{self.body["network"]}"')

    def within(self) -> float:
        return 0.0

    def describe(self) -> str:
        return f"connect {self.body['container']} to {self.body['network']}"

    def run(self, ctx):
        b = self.body
        return True, ctx.connect(b["network"], b["container"], _index(b), tuple(b.get("aliases") or ()),
                                 b.get("ipv4_address"))


class Disconnect(Connect):
    """A step: `docker network disconnect`."""

    kind = "disconnect"
    fields = {"network": S.Str(), "container": S.Str(), "index": S.Int(minimum=1), "force": S.Bool()}

    def describe(self) -> str:
        return f"disconnect {self.body['container']} from {self.body['network']}"

    def run(self, ctx):
        b = self.body
        return True, ctx.disconnect(b["network"], b["container"], _index(b), bool(b.get("force")))


def _is_ip(text: str) -> bool:
    import ipaddress
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def _last_json(out: str) -> dict | None:
    for line in reversed(out.splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                return None
    return None
