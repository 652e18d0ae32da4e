"""What `service ls / ps / inspect` show, and the flags' own syntax (pure).

Docker's shapes: `service ls` rows (ID NAME MODE REPLICAS COMMAND PORTS, the
command standing in for the image), `service ps` rows (history under each
slot's current task, ` \\_ ` prefixed), `service inspect`'s JSON (swarmkit's
Service object: Spec.TaskTemplate, Mode, UpdateConfig, EndpointSpec, Endpoint
with VirtualIPs, UpdateStatus) and its `--pretty` text; Go durations
("1m30s") and the `--publish` / `--secret` / `--config` forms.
"""

from __future__ import annotations

import re
import time
from typing import Any, Iterable

from netkit.errors import InvalidArgument
from netkit.services.model import (GLOBAL, HOST_MODE, INGRESS_MODE, RUNNING, FileRef, PortConfig,
                                   Service, Task)

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str, flag: str) -> float:
    """A Go duration ("10s", "1m30s", "500ms", "0") in seconds."""
    t = text.strip()
    if t == "0":
        return 0.0
    parts = _DURATION.findall(t)
    if not parts or "".join(n + u for n, u in parts) != t:
        raise InvalidArgument(f'invalid argument "{text}" for "{flag}" flag: time: invalid '
                              f'duration "{text}"')
    return sum(float(n) * _UNIT[u] for n, u in parts)


def go_duration(seconds: float) -> str:
    """Seconds as Go prints a Duration: 5s, 1m30s, 500ms, 0s."""
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    out = (f"{int(h)}h" if h else "") + (f"{int(m)}m" if h or m else "")
    return out + f"{s:g}s"


def parse_publish(value: str) -> PortConfig:
    """`-p [mode=ingress|host,]PUBLISHED:TARGET[/PROTO]` or the long form
    `published=P,target=T[,protocol=tcp|udp][,mode=ingress|host]`."""
    fields: dict[str, str] = {}
    short = None
    for part in value.split(","):
        key, sep, v = part.partition("=")
        if sep:
            if key not in ("published", "target", "protocol", "mode"):
                raise InvalidArgument(f'invalid argument "{value}" for "-p, --publish" flag: '
                                      f"invalid field key {key}")
            fields[key] = v
        elif short is None:
            short = part
        else:
            raise InvalidArgument(f'invalid argument "{value}" for "-p, --publish" flag')
    if short is not None:
        ports, _, proto = short.partition("/")
        published, sep, target = ports.partition(":")
        if not sep:
            raise InvalidArgument(f'invalid argument "{value}" for "-p, --publish" flag: '
                                  "expected PUBLISHED:TARGET[/PROTO]")
        fields.setdefault("published", published)
        fields.setdefault("target", target)
        if proto:
            fields.setdefault("protocol", proto)
    try:
        port = PortConfig(int(fields["published"]), int(fields["target"]),
                          fields.get("protocol", "tcp"), fields.get("mode", INGRESS_MODE))
    except (KeyError, ValueError):
        raise InvalidArgument(f'invalid argument "{value}" for "-p, --publish" flag: '
                              "published and target ports are numbers") from None
    if port.mode not in (INGRESS_MODE, HOST_MODE) or port.protocol not in ("tcp", "udp", "sctp"):
        raise InvalidArgument(f'invalid argument "{value}" for "-p, --publish" flag')
    return port


def parse_file_ref(value: str, flag: str, secret: bool) -> FileRef:
    """`--secret SRC` / `source=S,target=T,mode=0400,uid=U,gid=G` (configs alike; a config's
    target defaults to /SRC, a secret's to SRC under /run/secrets)."""
    fields: dict[str, str] = {}
    for i, part in enumerate(value.split(",")):
        key, sep, v = part.partition("=")
        if not sep and i == 0:
            fields["source"] = key
        elif key in ("source", "src", "target", "mode", "uid", "gid") and sep:
            fields["source" if key == "src" else key] = v
        else:
            raise InvalidArgument(f'invalid argument "{value}" for "{flag}" flag: invalid field '
                                  f"'{part}' must be a key=value pair")
    source = fields.get("source", "")
    if not source:
        raise InvalidArgument(f'invalid argument "{value}" for "{flag}" flag: source is required')
    target = fields.get("target") or (source if secret else "/" + source)
    try:
        mode = int(fields.get("mode", "0444"), 8)
    except ValueError:
        raise InvalidArgument(f'invalid argument "{value}" for "{flag}" flag: invalid mode') from None
    return FileRef(source, target, mode, fields.get("uid", "0"), fields.get("gid", "0"))


def ports_text(ports: Iterable[PortConfig]) -> str:
    return ", ".join(f"*:{p.published}->{p.target}/{p.protocol}" for p in ports)


def replicas_text(svc: Service, tasks: list[Task]) -> str:
    running = sum(t.state == RUNNING and t.desired == RUNNING for t in tasks)
    desired = sum(t.desired == RUNNING for t in tasks) if svc.spec.mode == GLOBAL \
        else svc.spec.replicas
    return f"{running}/{desired}"


def service_row(svc: Service, tasks: list[Task], trunc: bool = True) -> dict[str, str]:
    return {"ID": svc.id[:12] if trunc else svc.id, "Name": svc.name, "Mode": svc.spec.mode,
            "Replicas": replicas_text(svc, tasks), "Command": " ".join(svc.spec.command),
            "Image": " ".join(svc.spec.command), "Ports": ports_text(svc.spec.ports)}


def _since(text: str) -> float:
    from netkit.services.reconcile import epoch
    return time.time() - epoch(text) if text else 0.0


def current_state(t: Task) -> str:
    from netkit.lifecycle import human_duration
    return f"{t.state.capitalize()} {human_duration(_since(t.since))} ago"


def ordered_tasks(tasks: Iterable[Task]) -> list[tuple[Task, bool]]:
    """Docker's ps order: by service and slot (global: node id), the current task first,
    then its history; (task, is_history)."""
    groups: dict[tuple, list[Task]] = {}
    for t in tasks:
        key = (t.service_name, t.slot if t.slot is not None else 0, t.node_id if t.slot is None else "")
        groups.setdefault(key, []).append(t)
    out = []
    for key in sorted(groups):
        ts = groups[key]
        live = [t for t in ts if t.desired == RUNNING]
        rest = sorted((t for t in ts if t.desired != RUNNING), key=lambda t: t.created,
                      reverse=True)
        first, *others = sorted(live, key=lambda t: t.created, reverse=True) + rest
        out.append((first, False))
        out += [(t, True) for t in others]
    return out


def task_row(t: Task, history: bool, trunc: bool = True) -> dict[str, str]:
    err = t.error
    if trunc and len(err) > 30:
        err = err[:29] + "…"
    ports = [p for p in (t.spec.ports if t.spec else ()) if p.mode == HOST_MODE]
    return {"ID": t.id[:12] if trunc else t.id,
            "Name": (" \\_ " if history else "") + t.name,
            "Node": t.node, "DesiredState": t.desired.capitalize(),
            "CurrentState": current_state(t), "Error": f'"{err}"' if err else "",
            "Ports": ports_text(ports),
            "Image": " ".join(t.spec.command) if t.spec else ""}


def _update_config(cfg: Any) -> dict:
    return {"Parallelism": cfg.parallelism, "Delay": int(cfg.delay * 1e9),
            "FailureAction": cfg.failure_action, "Monitor": int(cfg.monitor * 1e9),
            "MaxFailureRatio": cfg.max_failure_ratio, "Order": cfg.order}


def spec_json(spec: Any) -> dict:
    files = [{"File": {"Name": f.target, "UID": f.uid, "GID": f.gid, "Mode": f.mode},
              "SecretName": f.source} for f in spec.secrets]
    configs = [{"File": {"Name": f.target, "UID": f.uid, "GID": f.gid, "Mode": f.mode},
                "ConfigName": f.source} for f in spec.configs]
    ports = [{"Protocol": p.protocol, "TargetPort": p.target, "PublishedPort": p.published,
              "PublishMode": p.mode} for p in spec.ports]
    container: dict[str, Any] = {"Command": list(spec.command), "Labels": dict(spec.container_labels),
                                 "Env": [f"{k}={v}" for k, v in spec.env.items()],
                                 "StopGracePeriod": int(spec.stop_grace_period * 1e9)}
    if spec.hostname:
        container["Hostname"] = spec.hostname
    if spec.stop_signal:
        container["StopSignal"] = spec.stop_signal
    if files:
        container["Secrets"] = files
    if configs:
        container["Configs"] = configs
    return {
        "Name": spec.name, "Labels": dict(spec.labels),
        "TaskTemplate": {
            "ContainerSpec": container,
            "RestartPolicy": {"Condition": spec.restart.condition,
                              "Delay": int(spec.restart.delay * 1e9),
                              "MaxAttempts": spec.restart.max_attempts},
            "Placement": {"Constraints": list(spec.constraints)} if spec.constraints else {},
            "Networks": [{"Target": n, **({"Aliases": spec.aliases[n]} if spec.aliases.get(n)
                                          else {})} for n in spec.networks],
            "ForceUpdate": spec.force_update},
        "Mode": {"Global": {}} if spec.mode == GLOBAL else
                {"Replicated": {"Replicas": spec.replicas}},
        "UpdateConfig": _update_config(spec.update),
        "RollbackConfig": _update_config(spec.rollback),
        "EndpointSpec": {"Mode": spec.endpoint_mode, **({"Ports": ports} if ports else {})}}


def inspect_json(svc: Service) -> dict:
    out: dict[str, Any] = {"ID": svc.id, "Version": {"Index": svc.version},
                           "CreatedAt": svc.created, "UpdatedAt": svc.updated,
                           "Spec": spec_json(svc.spec)}
    if svc.previous is not None:
        out["PreviousSpec"] = spec_json(svc.previous)
    endpoint: dict[str, Any] = {"Spec": out["Spec"]["EndpointSpec"]}
    if svc.spec.ports:
        endpoint["Ports"] = out["Spec"]["EndpointSpec"]["Ports"]
    if svc.vips:
        endpoint["VirtualIPs"] = [{"NetworkID": n, "Addr": a} for n, a in sorted(svc.vips.items())]
    out["Endpoint"] = endpoint
    st = svc.update_status
    if st.get("state"):
        out["UpdateStatus"] = {"State": st["state"], "StartedAt": st.get("started", ""),
                               **({"CompletedAt": st["completed"]} if st.get("completed") else {}),
                               "Message": st.get("message", "")}
    return out


def pretty(svc: Service, network_names: dict[str, str]) -> str:
    """`docker service inspect --pretty`."""
    s = svc.spec
    lines = ["", f"ID:\t\t{svc.id}", f"Name:\t\t{s.name}"]
    if s.labels:
        lines.append("Labels:")
        lines += [f" {k}={v}" for k, v in sorted(s.labels.items())]
    if s.mode == GLOBAL:
        lines.append("Service Mode:\tGlobal")
    else:
        lines += ["Service Mode:\tReplicated", f" Replicas:\t{s.replicas}"]
    st = svc.update_status
    if st.get("state"):
        lines += ["UpdateStatus:", f" State:\t\t{st['state']}", f" Started:\t{st.get('started', '')}"]
        if st.get("completed"):
            lines.append(f" Completed:\t{st['completed']}")
        lines.append(f" Message:\t{st.get('message', '')}")
    lines.append("Placement:")
    if s.constraints:
        lines.append(f" Constraints:\t{list(s.constraints)}")
    for title, cfg, word in (("UpdateConfig", s.update, "Update"), ("RollbackConfig", s.rollback,
                                                                     "Rollback")):
        lines += [f"{title}:", f" Parallelism:\t{cfg.parallelism}"]
        if cfg.delay:
            lines.append(f" Delay:\t\t{go_duration(cfg.delay)}")
        lines += [f" On failure:\t{cfg.failure_action}",
                  f" Monitoring Period: {go_duration(cfg.monitor)}",
                  f" Max failure ratio: {cfg.max_failure_ratio:g}",
                  f" {word} order:{' ' * (6 if word == 'Update' else 4)}{cfg.order}"]
    lines += ["ContainerSpec:", f" Command:\t{' '.join(s.command)}"]
    if s.env:
        lines.append(" Env:\t\t" + " ".join(f"{k}={v}" for k, v in s.env.items()))
    if s.secrets:
        lines.append("Secrets:")
        lines += [f" Target:\t{f.target}\n  Source:\t{f.source}" for f in s.secrets]
    if s.configs:
        lines.append("Configs:")
        lines += [f" Target:\t{f.target}\n  Source:\t{f.source}" for f in s.configs]
    lines.append("Resources:")
    if s.networks:
        lines.append("Networks: " + " ".join(network_names.get(n, n) for n in s.networks))
    lines.append(f"Endpoint Mode:\t{s.endpoint_mode}")
    if s.ports:
        lines.append("Ports:")
        for p in s.ports:
            lines += [f" PublishedPort = {p.published}", f"  Protocol = {p.protocol}",
                      f"  TargetPort = {p.target}", f"  PublishMode = {p.mode}"]
    return "\n".join(lines) + "\n"
