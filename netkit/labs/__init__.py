"""Labs: Compose files run on netkit (`netkit lab ...`), with declarative checks.

    source.py    YAML with line numbers, ${VAR} interpolation, .env       (pure)
    schema.py    the accepted keys and their types                        (pure)
    model.py     Project, Service, NetworkDef ... (normalized dataclasses) (pure)
    project.py   load_project(): validate + normalize into a Project      (pure)
    plan.py      names, labels, NetworkSpec / ContainerSpec per replica   (pure)
    render.py    Project -> Compose-shaped mapping (`lab config`)         (pure)
    checks.py    the check registry and the built-in kinds                (pure parsing)
    runner.py    Lab: up, down, scale, ps, exec, logs, check, test        (Engine)
    lifecycle.py stop / start / restart in Compose's order, steps at once (Engine)
    hosts.py     x-netkit LANs, nodes and swarm: made by up, removed by down (Engine)
    health.py    healthchecks and completion for depends_on               (Engine)
    context.py   what checks may ask of a running lab (CheckContext)      (Engine)
    graph.py     topology -> Graphviz / Mermaid                           (dot for images)
    agent.py     the helper checks run inside containers (stdlib only)

Importing this package loads nothing heavy; `Lab` and `load_project` are
imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["Lab", "load_project", "LabFileError"]

if TYPE_CHECKING:
    from netkit.labs.project import load_project
    from netkit.labs.runner import Lab
    from netkit.labs.source import LabFileError


def __getattr__(name: str) -> Any:
    if name == "Lab":
        from netkit.labs.runner import Lab
        return Lab
    if name == "load_project":
        from netkit.labs.project import load_project
        return load_project
    if name == "LabFileError":
        from netkit.labs.source import LabFileError
        return LabFileError
    raise AttributeError(name)
