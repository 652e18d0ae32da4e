"""The lab check kind ``capture``: capture packets somewhere while something happens, and
say what the wire must (not) carry.

    - capture:
        on: "lan:lan1"                 # a service/container, node:NAME, lan:NAME, network:KEY
        filter: host 192.168.77.10 and host 192.168.77.11     # what to look at (tcpdump syntax)
        while: {reach: {from: ca, to: 10.0.9.3, ping: true}}   # a check run while capturing
        expect: {only: udp port 4789}  # or {none: true}, {seen: 2}, {dns_answer: {name: web, count: 1}}

``expect`` (exactly one):

- ``only: EXPR``: at least one packet matched ``filter``, and every one of them also
  matches EXPR (the kernel checks it: a second socket captures ``filter and not (EXPR)``
  and must see nothing);
- ``none: true``: no packet matched ``filter``;
- ``seen: N``: at least N packets matched ``filter``;
- ``dns_answer: {name, count, addresses}``: DNS answers for ``name`` (exactly ``count`` if
  given, else at least one), each carrying exactly ``addresses`` if given.

``while`` is another check (or a list of them) run while capturing; it must pass too,
and its evidence is part of this one's. Without it the capture lasts ``duration``
(default 1s). The evidence lists the packets seen, as tcpdump lines.
"""

from __future__ import annotations

import time
from typing import Any

from netkit.labs import checks
from netkit.labs import schema as S


def _while(value: Any, path: S.Path, ctx: S.Ctx) -> list[checks.Check]:
    if isinstance(value, list):
        if not value:
            raise ctx.fail(path, "expected a check or a list of checks, got an empty list")
        return [checks.parse(v, path + (i,), ctx) for i, v in enumerate(value)]
    return [checks.parse(value, path, ctx)]


EXPECT = S.Obj({
    "only": S.Str(), "none": S.Bool(), "seen": S.Int(1, 100000),
    "dns_answer": S.Obj({"name": S.Str(), "count": S.Int(0, 1000), "addresses": S.List(S.Str()),
                         "type": S.Str()}, required=("name",), extensions=False),
}, extensions=False)


class CaptureCheck(checks.Check):
    """Packets seen on `on` (matching `filter`) while `while` runs: `expect` holds."""

    kind = "capture"
    fields = {"on": S.Str(), "index": S.Int(minimum=1), "iface": S.Str(), "filter": S.Str(),
              "while": S.Custom("a check or a list of checks", _while), "duration": S.Duration(),
              "expect": EXPECT, "within": S.Duration()}
    required = ("on", "expect")

    @classmethod
    def parse_body(cls, value, path, ctx):
        body = super().parse_body(value, path, ctx)
        exp = body["expect"]
        if len(exp) != 1:
            raise ctx.fail(path + ("expect",), "give exactly one of only, none, seen, dns_answer")
        if exp.get("none") is False:
            raise ctx.fail(path + ("expect", "none"), "none: false expects nothing: use seen: 1")
        for expr in (body.get("filter"), exp.get("only")):
            if expr:
                from netkit.capture import bpf
                from netkit.errors import InvalidArgument
                try:
                    bpf.compile(expr)
                except InvalidArgument as err:
                    raise ctx.fail(path + ("expect", "only") if expr == exp.get("only") else path + ("filter",),
                                   str(err)) from None
        return body

    def validate(self, project):
        on = self.body["on"]
        kind, _, name = on.partition(":")
        if kind == "lan":
            if project.lans and name not in project.lans and name not in {l.name for l in project.lans.values()}:
                raise project.where.error(self.path + (self.kind, "on"), f'no LAN "{name}" in this lab '
                                          f"(lans: {', '.join(project.lans)})")
        elif kind == "network":
            pass
        elif kind != "node":
            self._ref(project, "on")
        for c in self.body.get("while") or ():
            c.validate(project)

    def within(self) -> float:
        return 0.0 if self.body["expect"].get("none") else super().within()

    def describe(self) -> str:
        b = self.body
        exp = b["expect"]
        what = (f"only {exp['only']}" if "only" in exp else "nothing" if "none" in exp else
                f"at least {exp['seen']} packets" if "seen" in exp else
                f"DNS answers for {exp['dns_answer']['name']}")
        flt = f" {b['filter']}" if b.get("filter") else ""
        return f"capture{flt} on {b['on']}: expect {what}"

    def to_dict(self):
        out = super().to_dict()
        if "while" in self.body:
            inner = [c.to_dict() for c in self.body["while"]]
            out[self.kind]["while"] = inner[0] if len(inner) == 1 else inner
        return out

    def run(self, ctx):
        from netkit.capture.session import Capture
        b, exp = self.body, self.body["expect"]
        target = ctx.capture_target(b["on"], b.get("index"), b.get("iface"))
        flt = b.get("filter")
        caps = [Capture(target, filter=flt)]
        if "only" in exp:
            others = f"({flt}) and not ({exp['only']})" if flt else f"not ({exp['only']})"
            caps.append(Capture(target, filter=others))
        inner: list[str] = []
        inner_ok = True
        for c in caps:
            c.start()
        try:
            if b.get("while"):
                for c in b["while"]:
                    ok, evidence = c.run(ctx)
                    inner_ok = inner_ok and ok
                    inner.append(f"while {c.title}: {'passed' if ok else 'FAILED'}: {evidence}")
                time.sleep(0.1)               # frames still crossing bridges
            else:
                time.sleep(float(b.get("duration", 1.0)))
        finally:
            for c in caps:
                c.stop()
        main = caps[0]
        where = f"{target.label}" + (f" {flt!r}" if flt else "")
        seen = len(main)
        ok, verdict = True, ""
        if "only" in exp:
            bad = len(caps[1])
            ok = seen > 0 and bad == 0
            verdict = (f"{seen} packets, all {exp['only']}" if ok else
                       f"nothing matched the filter; expected {exp['only']}" if not seen else
                       f"{bad} of {seen} packets are not {exp['only']}:\n{caps[1].summary(10)}")
        elif "none" in exp:
            ok = seen == 0
            verdict = "no packets" if ok else f"{seen} packets; expected none"
        elif "seen" in exp:
            ok = seen >= exp["seen"]
            verdict = f"{seen} packets" + ("" if ok else f"; expected at least {exp['seen']}")
        else:
            d = exp["dns_answer"]
            try:
                found = main.assert_dns_answer(d["name"], count=d.get("count"), type=d.get("type"),
                                               addresses=d.get("addresses"))
                verdict = f"{len(found)} DNS answers for {d['name']}: " + \
                    " | ".join(" ".join(m.addresses) for m in found)
            except AssertionError as err:
                ok, verdict = False, str(err).splitlines()[0]
        text = [f"{seen} packets on {where}: {verdict}"]
        if seen:
            text.append(main.summary(6))
        if not inner_ok:
            ok = False
        return ok, "\n".join(text + inner)
