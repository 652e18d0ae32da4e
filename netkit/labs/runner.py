"""Running a lab on engines: up, down, stop, start, restart, scale, ps, exec, logs and checks.

`Lab` is the Python API behind `netkit lab ...`::

    from netkit.labs import Lab
    with Lab.load("labs/compose-web-db/lab.yml", node="t1") as lab:   # up ... down
        lab.service("web").exec(["ip", "-4", "addr"])
        lab.container("web", 2).endpoints[0].ipv4_address
        assert all(r.passed for r in lab.test())

Everything a lab makes carries Compose's labels, so `ps` and `down` find it
again from any process. What labels cannot mark (simulated nodes and LANs
from `x-netkit`) is listed in a record file in the target node's state
root, written as each one is made, so `down` removes exactly what `up`
created, even after a failed `up`. Services run on the lab's target node
(`node=` / `--node`) unless `x-netkit.node` places them elsewhere.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from netkit.errors import InvalidArgument, NetkitError, NotFound
from netkit.labs import health, hosts, lifecycle, plan, swarm
from netkit.labs.validate import step, validate
from netkit.labs.checks import Check, CheckResult
from netkit.labs.model import Healthcheck, Project, Service
from netkit.labs.project import load_project, order

if TYPE_CHECKING:
    from netkit.engine import Engine
    from netkit.model import Container


@dataclass(frozen=True)
class Event:
    """Progress of a long operation: ``Container web-1 Started``."""

    kind: str                 # Lan, Node, Network, Container, Warning
    name: str
    status: str               # Creating, Created, Started, Running, Waiting, Healthy, Removed ...
    detail: str = ""
    done: bool = True         # False while the operation is still under way


@dataclass(frozen=True)
class Member:
    """One container of the lab and where it runs."""

    service: str
    number: int
    node: str | None          # None: the real host
    container: "Container"

    @property
    def name(self) -> str:
        return self.container.name


def _scope(net: Any) -> str:
    scope = getattr(net, "scope", "local")
    return getattr(scope, "value", scope) or "local"


class ServiceHandle:
    """`lab.service("web")`: the containers of one service."""

    def __init__(self, lab: "Lab", name: str) -> None:
        self.lab, self.name = lab, name

    def containers(self) -> list["Container"]:
        return [m.container for m in self.lab.ps(service=self.name)]

    def container(self, index: int = 1) -> "Container":
        return self.lab.container(self.name, index)

    def exec(self, command: Sequence[str], index: int | None = None) -> int:
        return self.lab.exec(self.name, command, index=index)

    def exec_output(self, command: Sequence[str], index: int | None = None,
                    timeout: float | None = None) -> tuple[int, str]:
        return self.lab.exec_output(self.name, command, index=index, timeout=timeout)

    def addresses(self, network: str | None = None) -> list[str]:
        """IPv4 addresses of the service's containers (on `network`, a key of the file)."""
        net = self.lab.project.networks[network].name if network and self.lab.project else network
        return [ep.ipv4_address for c in self.containers() for ep in c.endpoints
                if ep.ipv4_address and (net is None or ep.network_name == net)]

    def scale(self, replicas: int) -> None:
        self.lab.scale({self.name: replicas})


class Lab:
    """A lab (Compose project) on a target node."""

    def __init__(self, project: Project | None, *, name: str | None = None,
                 engine: "Engine | None" = None, node: str | None = None, root: str | None = None,
                 run: str | None = None, compatibility: bool = False,
                 on_event: Callable[[Event], None] | None = None) -> None:
        from netkit.engine import Engine
        if project is None and not name:
            raise InvalidArgument("a lab needs a file or a project name")
        self.project = project
        self.name: str = project.name if project else name        # type: ignore[assignment]
        self._own = engine is None
        self.target = engine or Engine(node or os.environ.get("NETKIT_NODE") or None, root=root, run=run)
        self.target_node: str | None = self.target.node_name or None
        self._engines: dict[str | None, Engine] = {self.target_node: self.target}
        self.on_event = on_event or (lambda event: None)
        record = self._load_record()
        self.compatibility = compatibility or bool(record.get("compatibility"))

    @classmethod
    def load(cls, path: str | Sequence[str] | None = None, project: str | None = None,
             node: str | None = None, *, engine: "Engine | None" = None, root: str | None = None,
             run: str | None = None, env_files: Iterable[str] = (), compatibility: bool = False,
             scale: dict[str, int] | None = None,
             on_event: Callable[[Event], None] | None = None,
             profiles: Sequence[str] | None = None, enable: Sequence[str] = ()) -> "Lab":
        """Read a lab file (or several, merged) for `node` (default: $NETKIT_NODE, else the host);
        `profiles`: the active Compose profiles (default: $COMPOSE_PROFILES); `enable`: services
        loaded whatever their profiles (those `up` names)."""
        p = load_project(path, project=project, env_files=env_files, scale=scale, profiles=profiles,
                         enable=enable)
        return cls(p, engine=engine, node=node, root=root, run=run, compatibility=compatibility,
                   on_event=on_event)

    # -- context manager ---------------------------------------------------------------
    def __enter__(self) -> "Lab":
        try:
            self.up()
        except BaseException as exc:
            try:
                self.down()
            except Exception as undo:                 # keep the first error; say what else failed
                exc.add_note(f"lab down after the failed up: {undo}")
            finally:
                self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.down()
        finally:
            self.close()

    def close(self) -> None:
        for node, eng in list(self._engines.items()):
            if eng is not self.target or self._own:
                eng.close()
        self._engines.clear()

    # -- engines and the record ----------------------------------------------------------
    def engine(self, node: str | None) -> "Engine":
        """The Engine of a node of this lab (None: the real host)."""
        from netkit.engine import Engine
        if node not in self._engines:
            self._engines[node] = Engine(node, root=self.target.root, run=self.target.run_root)
        return self._engines[node]

    def _emit(self, kind: str, name: str, status: str, detail: str = "", done: bool = True) -> None:
        self.on_event(Event(kind, name, status, detail, done))

    def _record_path(self) -> str:
        return os.path.join(self.target.paths.root, "labs", f"{self.name}.json")

    def _load_record(self) -> dict[str, Any]:
        try:
            with open(self._record_path()) as f:
                rec = json.load(f)
        except (FileNotFoundError, ValueError):
            rec = {}
        rec.setdefault("nodes", [])
        rec.setdefault("lans", [])
        rec.setdefault("engines", [])
        rec.setdefault("swarm", [])          # nodes this lab put in a swarm, manager first
        rec.setdefault("stacks", [])         # stacks this lab deployed (x-netkit.stacks)
        rec.setdefault("swarm_services", [])  # x-netkit.services / .secrets it created
        rec.setdefault("swarm_secrets", [])
        return rec

    def _save_record(self, rec: dict[str, Any]) -> None:
        path = self._record_path()
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(rec, f, indent=1)
        os.replace(tmp, path)

    def _node_names(self) -> set[str]:
        return {n.name for n in self.target.nodes()}

    def engine_nodes(self) -> list[str | None]:
        """Every node that may hold something of this lab (and still exists)."""
        rec = self._load_record()
        wanted: list[str | None] = [self.target_node] + [e or None for e in rec["engines"]]
        if self.project:
            wanted += [plan.node_of(s, self.target_node) for s in self.project.services.values()]
            for nodes in plan.network_nodes(self.project, self.target_node).values():
                wanted += nodes
        existing = self._node_names()
        out: list[str | None] = []
        for n in wanted:
            if n not in out and (n is None or n == self.target_node or n in existing):
                out.append(n)
        return out

    def _require_project(self) -> Project:
        if self.project is None:
            raise InvalidArgument(f"lab {self.name}: this needs the lab file (-f FILE)")
        return self.project

    # -- up --------------------------------------------------------------------------------
    def up(self, services: Sequence[str] | None = None, *, scale: dict[str, int] | None = None,
           no_deps: bool = False) -> list[Member]:
        """`compose up -d`: LANs, nodes, networks, then containers in dependency order,
        waiting for `depends_on` conditions. Converges: running containers whose config is
        unchanged are kept, changed ones recreated, surplus replicas removed."""
        p = self._require_project()
        scale = dict(scale or {})
        for name in list(services or ()) + list(scale):
            p.service(name)
        validate(p, target=self.target_node, scale=scale, compatibility=self.compatibility)
        for w in p.warnings:
            self._emit("Warning", "", "", w)
        rec = self._load_record()
        rec["project"] = p.name
        rec["files"] = [os.path.abspath(f) for f in p.files]
        rec["compatibility"] = self.compatibility
        hosts.up_lans(self, rec)
        hosts.up_nodes(self, rec)
        hosts.up_swarm(self, rec)
        placement = plan.network_nodes(p, self.target_node)
        for node in [plan.node_of(s, self.target_node) for s in p.services.values()] + \
                [n for nodes in placement.values() for n in nodes]:
            if (node or "") not in rec["engines"]:
                rec["engines"].append(node or "")
        self._save_record(rec)
        self._up_networks(placement)
        hosts.up_stacks(self, rec)
        swarm.up(self, rec)
        selected = self._selection(p, services, no_deps)
        recreated: set[str] = set()
        for name in order(p.services):
            if name not in selected:
                continue
            svc = p.services[name]
            self._wait_for_dependencies(svc)
            force = bool(svc.network_mode and svc.network_mode.split(":", 1)[-1] in recreated)
            if self._converge(svc, scale.get(name, svc.replicas), force):
                recreated.add(name)
        self._warn_orphans(p)
        return self.ps()

    def _selection(self, p: Project, services: Sequence[str] | None, no_deps: bool) -> set[str]:
        if not services:
            return set(p.services)
        chosen = set(services)
        if not no_deps:
            todo = list(chosen)
            while todo:
                for d in p.services[todo.pop()].depends_on:
                    if d.service in p.services and d.service not in chosen:
                        chosen.add(d.service)
                        todo.append(d.service)
        return chosen

    def _where(self, node: str | None) -> str:
        return "" if node == self.target_node else f"on {node or 'the host'}"

    def _up_networks(self, placement: dict[str, list[str | None]]) -> None:
        p = self._require_project()
        for key, nodes in placement.items():
            net = p.networks[key]
            for node in nodes:
                eng = self.engine(node)
                found = next((n for n in eng.networks() if n.name == net.name), None)
                if net.external:
                    if found is None:
                        raise NotFound(f"network {net.name} declared as external, but could not be found")
                    continue
                if found is not None:
                    if found.labels.get(plan.PROJECT) != p.name:
                        self._emit("Warning", net.name, "", f"a network with name {net.name} exists but was "
                                   "not created by this lab; set `external: true` to use an existing network")
                    continue
                self._emit("Network", net.name, "Creating", self._where(node), done=False)
                created = step(f"creating network {net.name}",
                               lambda: eng.create_network(plan.network_spec(p, net, node)))
                subnets = ", ".join(c.subnet for c in created.ipam)
                self._emit("Network", net.name, "Created", " ".join(x for x in (subnets, self._where(node)) if x))

    def _converge(self, svc: Service, replicas: int, force: bool) -> bool:
        """Make the service have `replicas` up-to-date containers, running; True if any was
        (re)made. Stopped ones whose configuration is unchanged are started again."""
        p = self._require_project()
        node = plan.node_of(svc, self.target_node)
        eng = self.engine(node)
        have = {m.number: m for m in self.members(eng, service=svc.name)}
        want_hash = plan.config_hash(p, svc)
        changed = False
        surplus = [m for number, m in have.items() if number > replicas]
        if surplus:
            lifecycle.remove(self, surplus, why="scale down")
        for number in range(1, replicas + 1):
            m = have.get(number)
            name = plan.container_name(p.name, svc, number, self.compatibility)
            verb = "Started"
            if m is not None:
                c = m.container
                labels: dict = c.options.get("labels") or {}                # type: ignore[assignment]
                if not force and c.name == name and labels.get(plan.CONFIG_HASH) == want_hash:
                    if lifecycle.live(m):
                        self._emit("Container", c.name, "Running")
                    else:
                        self._emit("Container", c.name, "Starting", self._where(node), done=False)
                        eng.start(c.id)
                        self._emit("Container", c.name, "Started", self._where(node))
                    continue
                self._emit("Container", c.name, "Recreate", done=False)
                lifecycle.stop_step(self, [m], None)
                eng.remove_container(c.id, force=True)
                verb = "Recreated"
            self._emit("Container", name, "Creating", self._where(node), done=False)
            ctr, _ = step(f"creating container {name}", lambda: eng.run(
                plan.container_spec(p, svc, number, compatibility=self.compatibility)))
            addrs = ", ".join(ep.ipv4_address or ep.ipv6_address or "" for ep in ctr.endpoints)
            self._emit("Container", name, verb, " ".join(x for x in (addrs, self._where(node)) if x))
            changed = True
        return changed

    def _remove(self, eng: "Engine", c: "Container", why: str = "") -> None:
        self._emit("Container", c.name, "Removing", why, done=False)
        try:
            eng.remove_container(c.id, force=True)
        except NotFound:
            pass
        self._emit("Container", c.name, "Removed")

    def _warn_orphans(self, p: Project) -> None:
        for node in self.engine_nodes():
            for m in self.members(self.engine(node)):
                if m.service not in p.services:
                    self._emit("Warning", m.name, "", f"found orphan container {m.name} (service "
                               f"{m.service} is not in the file); `lab down` removes it")

    # -- depends_on ----------------------------------------------------------------------------
    def _wait_for_dependencies(self, svc: Service) -> None:
        p = self._require_project()
        for dep in svc.depends_on:
            other = p.services.get(dep.service)
            if other is None or dep.condition == "service_started":
                continue
            eng = self.engine(plan.node_of(other, self.target_node))
            for m in self.members(eng, service=other.name):
                if dep.condition == "service_healthy":
                    assert other.healthcheck is not None
                    self.wait_healthy(m, other.healthcheck)
                else:
                    self._wait_exited(eng, m, other.name)

    def health_probe(self, member: Member, hc: Healthcheck) -> tuple[int, str]:
        """Run a healthcheck's test once in the container: (exit code, output)."""
        return health.probe(self.engine(member.node), member.container.id, hc)

    def wait_healthy(self, member: Member, hc: Healthcheck) -> None:
        """Wait until the container is healthy (Docker's rules; see netkit.labs.health)."""
        self._emit("Container", member.name, "Waiting", "for healthy", done=False)
        health.wait_healthy(self.engine(member.node), member.container, hc)
        self._emit("Container", member.name, "Healthy")

    def _wait_exited(self, eng: "Engine", member: Member, service: str) -> None:
        self._emit("Container", member.name, "Waiting", "to complete", done=False)
        health.wait_exited(eng, member.container, service)
        self._emit("Container", member.name, "Exited", "0")

    # -- down / scale ------------------------------------------------------------------------------
    def down(self, timeout: int | None = None) -> None:
        """`compose down [-t N]`: the lab's containers, stopped with their stop signal and
        grace period (`timeout` for all) and removed, dependents first; then its networks,
        and the nodes and LANs it created. What it did not create stays."""
        rec = self._load_record()
        swarm.down(self, rec)
        hosts.down_stacks(self, rec)
        nodes = self.engine_nodes()
        lifecycle.remove(self, [m for node in nodes for m in self.members(self.engine(node))], timeout)
        roles = self.target.swarm_roles() if any(n for n in nodes) else {}
        for node in sorted(nodes, key=lambda n: roles.get(n or "") != "manager"):   # managers first
            eng = self.engine(node)
            for net in eng.networks():
                if net.labels.get(plan.PROJECT) == self.name:
                    if _scope(net) == "swarm" and roles.get(node or "") != "manager":
                        continue              # a swarm network: only a manager removes it
                    self._emit("Network", net.name, "Removing", self._where(node), done=False)
                    eng.remove_network(net.id)
                    self._emit("Network", net.name, "Removed", self._where(node))
        hosts.down_swarm(self, rec)
        hosts.down_nodes_and_lans(self, rec)
        try:
            os.unlink(self._record_path())
        except FileNotFoundError:
            pass

    def scale(self, counts: dict[str, int]) -> list[Member]:
        """`compose scale svc=N`: only these services change."""
        return self.up(list(counts), scale=counts, no_deps=True)

    def _chosen(self, services: Sequence[str] | None) -> list[Member]:
        if self.project is not None:
            for name in services or ():
                self.project.service(name)
        return [m for m in self.members() if not services or m.service in services]

    def stop(self, services: Sequence[str] | None = None, timeout: int | None = None) -> None:
        """`compose stop [-t N] [SERVICE...]`: each container with its stop signal and grace
        period (`timeout` for all), dependents first; they keep their configuration."""
        lifecycle.stop(self, self._chosen(services), timeout)

    def start(self, services: Sequence[str] | None = None) -> None:
        """`compose start [SERVICE...]`: the stopped containers again, dependencies first,
        waiting for `depends_on` conditions."""
        lifecycle.start(self, self._chosen(services))

    def restart(self, services: Sequence[str] | None = None, timeout: int | None = None) -> None:
        """`compose restart [-t N] [SERVICE...]`: stop (as `stop`) and start each container;
        services depending on a restarted one with `restart: true` are restarted too."""
        if services and self.project is not None:
            services = lifecycle.with_restart_dependents(self.project.services, services)
        lifecycle.restart(self, self._chosen(services), timeout)

    # -- looking at it -----------------------------------------------------------------------------
    def members(self, eng: "Engine | None" = None, service: str | None = None) -> list[Member]:
        """The lab's containers on one engine (default: every engine of the lab)."""
        if eng is None:
            return [m for node in self.engine_nodes() for m in self.members(self.engine(node), service)]
        out = []
        for c in eng.containers(all=True):
            labels: dict = c.options.get("labels") or {}              # type: ignore[assignment]
            if labels.get(plan.PROJECT) != self.name:
                continue
            if service is not None and labels.get(plan.SERVICE) != service:
                continue
            try:
                number = int(labels.get(plan.NUMBER) or 0)
            except ValueError:
                number = 0
            out.append(Member(labels.get(plan.SERVICE, ""), number, eng.node_name or None, c))
        return sorted(out, key=lambda m: (m.service, m.number))

    def ps(self, service: str | None = None, all: bool = True) -> list[Member]:
        """The lab's containers; `all=False`: only running (or restarting) ones."""
        out = self.members(service=service)
        return out if all else [m for m in out if lifecycle.live(m)]

    def service(self, name: str) -> ServiceHandle:
        if self.project is not None:
            self.project.service(name)
        return ServiceHandle(self, name)

    def locate(self, ref: str, index: int | None = None) -> Member:
        """A service (its replica `index`, default the lowest), a container name, or
        ``task:SERVICE`` (a swarm service's running task; `index`: its slot)."""
        if ref.startswith("task:"):
            slot, node, ctr = swarm.locate_task(self, ref[5:], index)
            return Member(ref[5:], slot, node, ctr)
        members = self.members()
        if self.project is not None and ref in self.project.services or any(m.service == ref for m in members):
            mine = [m for m in members if m.service == ref]
            if index is not None:
                mine = [m for m in mine if m.number == index]
            if not mine:
                which = f" has no container number {index}" if index is not None else " has no container"
                raise NotFound(f"service {ref}{which} (is the lab up?)")
            return mine[0]
        for m in members:
            if m.name == ref or m.container.id.startswith(ref) and len(ref) >= 12:
                return m
        raise NotFound(f"no service or container {ref} in lab {self.name}")

    def container(self, ref: str, index: int | None = None) -> "Container":
        """A container of the lab, by service (+ index, from 1) or by name."""
        return self.locate(ref, index).container

    def exec(self, ref: str, command: Sequence[str], index: int | None = None) -> int:
        """`compose exec`: run a command in a service's container; its exit code."""
        m = self.locate(ref, index)
        return self.engine(m.node).exec(m.container.id, list(command))

    def exec_output(self, ref: str, command: Sequence[str], index: int | None = None,
                    timeout: float | None = None) -> tuple[int, str]:
        """`exec` with stdout and stderr captured together: (exit code, output)."""
        m = self.locate(ref, index)
        return self.engine(m.node).exec_output(m.container.id, health.wrap(list(command), timeout))

    def logs(self, service: str | None = None) -> list[tuple[Member, str]]:
        """Each container's output (stdout and stderr, as the node agent logged them)."""
        out = []
        for m in self.ps(service=service):
            try:
                entries = self.engine(m.node).logs(m.container.id)
            except NotFound:
                entries = []
            out.append((m, "".join(e.text for e in entries)))
        return out

    def log_dir(self, m: Member) -> str:
        """Where the node agent writes the container's json log (netkit.agent.logs)."""
        return self.engine(m.node).paths.container_dir(m.container.id)

    def health(self, m: Member) -> str | None:
        """healthy / unhealthy (the test run once now), or None without a healthcheck."""
        if self.project is None or m.service not in self.project.services:
            return None
        hc = self.project.services[m.service].healthcheck
        if hc is None or not m.container.running:
            return None
        return "healthy" if self.health_probe(m, hc)[0] == 0 else "unhealthy"

    def topology(self):
        """Nodes, LANs, networks and containers of the running lab, for `lab graph`."""
        from netkit.labs.graph import gather
        return gather(self)

    # -- checks --------------------------------------------------------------------------------------
    def check(self, check: Check | dict[str, Any]) -> CheckResult:
        """Run one check (a Check, or a mapping as written under `x-netkit.checks`)."""
        if isinstance(check, dict):
            from netkit.labs import checks as registry
            from netkit.labs.schema import Ctx
            from netkit.labs.source import LabFileError, Where
            try:
                check = registry.parse(check, ("check",), Ctx(Where()))
                if self.project is not None:
                    check.validate(self.project)
            except LabFileError as exc:               # no file, no line: just the key
                raise InvalidArgument(f"{exc.key}: {exc.reason}") from None
        from netkit.labs.context import RunnerContext
        ctx = RunnerContext(self)
        t0 = time.monotonic()
        deadline = t0 + check.within()
        while True:
            try:
                passed, evidence = check.run(ctx)
            except NetkitError as exc:
                passed, evidence = False, f"error: {exc}"
            if passed or time.monotonic() >= deadline:
                return CheckResult(check, passed, evidence, time.monotonic() - t0)
            time.sleep(0.25)

    def test(self, on_result: Callable[[CheckResult], None] | None = None) -> list[CheckResult]:
        """Run the file's checks in order (`lab test`)."""
        p = self._require_project()
        results = []
        for check in p.checks:
            r = self.check(check)
            results.append(r)
            if on_result is not None:
                on_result(r)
        return results
