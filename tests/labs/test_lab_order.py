"""Which containers `down`, `stop`, `start` and `restart` act on together, and in which
order (pure): Compose's dependency order, one step at a time."""

from __future__ import annotations

from types import SimpleNamespace

from netkit.labs.lifecycle import steps, with_restart_dependents
from netkit.labs.project import load_project
from netkit.labs.runner import Member

LAB = """
services:
  db: {}
  cache: {}
  web: {depends_on: {db: {condition: service_started, restart: true}}, scale: 2}
  side: {network_mode: "service:web"}
  client: {depends_on: {web: {condition: service_started, restart: true}, cache: {}}}
  lone: {}
"""


def member(service: str, number: int = 1, shares: str | None = None) -> Member:
    return Member(service, number, None, SimpleNamespace(shares_netns_of=shares))   # type: ignore[arg-type]


def names(groups) -> list[list[str]]:
    return [[f"{m.service}-{m.number}" for m in g] for g in groups]


def test_stop_dependents_first_start_dependencies_first(write):
    services = load_project(write("lab.yml", LAB)).services
    ms = [member(s) for s in ("lone", "client", "side", "db", "cache")] + [member("web", 2), member("web", 1)]
    assert names(steps(ms, services, stopping=True)) == [
        ["client-1", "lone-1", "side-1"], ["cache-1", "web-1", "web-2"], ["db-1"]]
    assert names(steps(ms, services, stopping=False)) == [
        ["cache-1", "db-1", "lone-1"], ["web-1", "web-2"], ["client-1", "side-1"]]


def test_without_the_file_namespace_sharers_stop_first_and_start_last():
    ms = [member("a"), member("b", shares="c0ffee"), member("c")]
    assert names(steps(ms, None, stopping=True)) == [["b-1"], ["a-1", "c-1"]]
    assert names(steps(ms, None, stopping=False)) == [["a-1", "c-1"], ["b-1"]]
    assert steps([], None, stopping=True) == []


def test_restart_takes_the_dependents_that_ask_for_it(write):
    services = load_project(write("lab.yml", LAB)).services
    assert with_restart_dependents(services, ["db"]) == ["db", "web", "client"]
    assert with_restart_dependents(services, ["cache"]) == ["cache"]       # no restart: true
    assert with_restart_dependents(services, ["web", "lone"]) == ["web", "client", "lone"]
