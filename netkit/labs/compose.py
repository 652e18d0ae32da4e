"""Compose's file-level keys: `include`, `extends`, `env_file`, `profiles`, `entrypoint`,
`extra_hosts`, `secrets`, and the list forms turned into mappings (pure).

`load_file` reads one lab file as Compose's loader does before files are
merged: parse, interpolate, check (every error of the file at once), list
forms to mappings, relative paths (``env_file``, ``secrets.*.file``,
``extends.file``, ``include``) made absolute against the file's directory,
``extends`` resolved (same file or ``file:``) and ``include`` d files merged
in (a resource defined twice is an error, as in Compose).
"""

from __future__ import annotations

import os
import shlex
from typing import AbstractSet, Any, Mapping, Sequence

from netkit.labs import document, schema
from netkit.labs.source import (LabFileError, Where, interpolate, load_env, parse_env_file,
                                parse_yaml, read_text)

APPEND = {"ports", "expose", "dns", "links", "checks", "extra_hosts", "env_file", "secrets"}


def combine(errors: list[Exception]) -> None:
    """Raise every error of a file at once (one per line), or nothing."""
    if not errors:
        return
    if len(errors) == 1:
        raise errors[0]
    first = errors[0]
    err = LabFileError("\n".join(dict.fromkeys(str(e) for e in errors)))
    err.file, err.line, err.key, err.reason = (getattr(first, "file", ""), getattr(first, "line", 0),
                                               getattr(first, "key", ""), str(first))
    err.errors = errors                                   # type: ignore[attr-defined]
    raise err


def merge(base: Any, over: Any, path: tuple = ()) -> Any:
    """Compose's merge of an override: mappings key by key, lists replaced except APPEND's."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = merge(base[k], v, path + (k,)) if k in base else v
        return out
    if isinstance(base, list) and isinstance(over, list) and path and path[-1] in APPEND:
        return base + [v for v in over if v not in base]
    return over


def load_file(path: str, env: Mapping[str, str], warnings: list[str], shared: schema.Ctx,
              stack: tuple[str, ...] = ()) -> tuple[dict, Where]:
    """One file, checked and made self-contained (extends and include resolved)."""
    path = os.path.abspath(path) if stack else path
    if os.path.abspath(path) in stack:
        raise LabFileError(f"circular reference between files: "
                           f"{' -> '.join(stack + (os.path.abspath(path),))}", path)
    raw, spots = parse_yaml(read_text(path), path)
    if raw is None or raw == {}:
        raise LabFileError("empty compose file", path)
    raw = interpolate(raw, env, spots, warnings)
    one = schema.Ctx(spots, warnings, collect=True)
    one.ignored, one.why = shared.ignored, shared.why
    checked = document.TOP.check(raw, (), one)
    combine(one.errors)
    to_map_forms(checked, spots)
    _absolute(checked, os.path.dirname(os.path.abspath(path)))
    stack = stack + (os.path.abspath(path),)
    _extends(checked, spots, path, env, warnings, shared, stack)
    _include(checked, spots, env, warnings, shared, stack)
    return checked, spots


def _absolute(data: dict, base: str) -> None:
    """Paths in the file, against its directory; env_file in its long form."""
    def absolute(p: str) -> str:
        return os.path.normpath(os.path.join(base, os.path.expanduser(p)))
    for svc in (data.get("services") or {}).values():
        ef = svc.get("env_file")
        if ef is not None:
            items = [ef] if isinstance(ef, str) else ef
            svc["env_file"] = [{"path": absolute(e), "required": True} if isinstance(e, str) else
                               {"path": absolute(e["path"]), "required": e.get("required", True),
                                "format": e.get("format")}
                               for e in items]
        ext = svc.get("extends")
        if isinstance(ext, str):
            svc["extends"] = {"service": ext}
        elif isinstance(ext, dict) and ext.get("file"):
            ext["file"] = absolute(ext["file"])
    for sec in (data.get("secrets") or {}).values():
        if sec.get("file"):
            sec["file"] = absolute(sec["file"])
    inc = []
    for item in data.get("include") or ():
        item = {"path": item} if isinstance(item, str) else dict(item)
        paths = [item["path"]] if isinstance(item["path"], str) else item["path"]
        item["path"] = [absolute(p) for p in paths]
        ef = item.get("env_file")
        item["env_file"] = [absolute(p) for p in ([ef] if isinstance(ef, str) else ef or ())]
        inc.append(item)
    if inc:
        data["include"] = inc


def _extends(data: dict, spots: Where, path: str, env: Mapping[str, str], warnings: list[str],
             shared: schema.Ctx, stack: tuple[str, ...]) -> None:
    services = data.get("services") or {}
    others: dict[str, tuple[dict, Where]] = {}
    done: set[str] = set()

    def resolve(name: str, trail: tuple[str, ...]) -> dict:
        svc = services[name]
        ext = svc.get("extends")
        if not ext or name in done:
            return svc
        if name in trail:
            raise spots.error(("services", name, "extends"), "circular reference with extends: "
                              + " -> ".join(trail + (name,)))
        target, file = ext["service"], ext.get("file")
        if file and os.path.abspath(file) != os.path.abspath(path):
            if file not in others:
                others[file] = load_file(file, env, warnings, shared, stack)
            odata, ospots = others[file]
            base = (odata.get("services") or {}).get(target)
            if base is None:
                raise spots.error(("services", name, "extends"), f'service "{target}" not found in {file}')
            for p, spot in ospots.spots.items():
                if p[:2] == ("services", target):
                    spots.spots.setdefault(("services", name) + p[2:], spot)
        else:
            if target not in services:
                raise spots.error(("services", name, "extends"), f'service "{target}" not found in {path}')
            base = resolve(target, trail + (name,))
            spots.move(("services", target), ("services", name))
        own = {k: v for k, v in svc.items() if k != "extends"}
        services[name] = merge({k: v for k, v in base.items() if k != "extends"}, own, ("services", name))
        done.add(name)
        return services[name]

    errors: list[Exception] = []
    for name in list(services):
        try:
            resolve(name, ())
        except LabFileError as exc:
            errors.append(exc)
    combine(errors)


def _include(data: dict, spots: Where, env: Mapping[str, str], warnings: list[str],
             shared: schema.Ctx, stack: tuple[str, ...]) -> None:
    for item in data.pop("include", None) or ():
        files = item["path"]
        inc_env = dict(env)
        if item["env_file"]:
            inc_env = {**load_env(os.path.dirname(files[0]), item["env_file"], {}), **env}
        merged: dict = {}
        for f in files:
            one, ospots = load_file(f, inc_env, warnings, shared, stack)
            merged = merge(merged, one)
            for p, spot in ospots.spots.items():
                spots.spots.setdefault(p, spot)
        for section in ("services", "networks", "secrets"):
            for key, value in (merged.get(section) or {}).items():
                mine = data.setdefault(section, {})
                if key in mine:
                    raise spots.error((section, key), f"{section}.{key} conflicts with imported resource")
                mine[key] = value


# -- list forms ---------------------------------------------------------------------------

def to_map_forms(data: dict, where: Where) -> None:
    """List forms of networks / depends_on / environment / labels / extra_hosts -> mappings."""
    for name, svc in (data.get("services") or {}).items():
        base = ("services", name)
        if isinstance(svc.get("networks"), list):
            for i, net in enumerate(svc["networks"]):
                where.move(base + ("networks", i), base + ("networks", net))
            svc["networks"] = {net: None for net in svc["networks"]}
        if isinstance(svc.get("depends_on"), list):
            for i, dep in enumerate(svc["depends_on"]):
                where.move(base + ("depends_on", i), base + ("depends_on", dep))
            svc["depends_on"] = {dep: {"condition": "service_started"} for dep in svc["depends_on"]}
        for key in ("environment", "labels", "sysctls"):
            if isinstance(svc.get(key), list):
                svc[key] = kv_list(svc[key], base + (key,), where)
        if "extra_hosts" in svc:
            svc["extra_hosts"] = extra_hosts(svc["extra_hosts"], base + ("extra_hosts",), where)
    for name, net in (data.get("networks") or {}).items():
        if net and isinstance(net.get("labels"), list):
            net["labels"] = kv_list(net["labels"], ("networks", name, "labels"), where)


def kv_list(items: list[str], path: tuple, where: Where) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for i, item in enumerate(items):
        key, sep, value = item.partition("=")
        if not key:
            raise where.error(path + (i,), f'invalid entry "{item}": the name is empty')
        where.move(path + (i,), path + (key,))
        out[key] = value if sep else None
    return out


def extra_hosts(value: Any, path: tuple, where: Where) -> list[str]:
    """`extra_hosts` in its list form ``host=ip`` (``host:ip`` and mappings accepted), each
    address checked: Compose's rules (an IPv6 address may be written in brackets)."""
    import ipaddress
    pairs: list[tuple[Any, str, str]] = []
    if isinstance(value, dict):
        for host, ips in value.items():
            for ip in [ips] if isinstance(ips, str) else ips:
                pairs.append((host, host, ip))
    else:
        for i, item in enumerate(value):
            sep = "=" if "=" in item else ":"
            host, found, ip = item.partition(sep)
            if not found or not host:
                raise where.error(path + (i,), f'invalid extra host "{item}": use HOST=IP or HOST:IP')
            pairs.append((i, host, ip))
    out = []
    for key, host, ip in pairs:
        ip = ip.strip()
        if ip.startswith("[") and ip.endswith("]"):
            ip = ip[1:-1]
        if ip != "host-gateway":
            try:
                ipaddress.ip_address(ip)
            except ValueError:
                raise where.error(path + (key,), f'invalid IP address in add-host: "{ip}"') from None
        out.append(f"{host}={ip}")
    return out


# -- a service's keys ---------------------------------------------------------------------

def command_line(raw: dict, command: tuple[str, ...], path: tuple, where: Where) -> tuple[str, ...]:
    """`entrypoint` joined with `command` (an empty entrypoint: the command alone)."""
    ep = raw.get("entrypoint")
    if ep is None:
        return command
    if isinstance(ep, str):
        try:
            ep = shlex.split(ep)
        except ValueError as exc:
            raise where.error(path, f"invalid entrypoint: {exc}") from None
    return tuple(str(a) for a in ep) + command


def environment(raw: dict, env: Mapping[str, str], base: tuple, where: Where) -> dict[str, str]:
    """`env_file` files in order, then `environment` over them; a variable without a value
    comes from the interpolation environment (dropped when unset there)."""
    out: dict[str, str | None] = {}
    for i, item in enumerate(raw.get("env_file") or ()):
        p = item["path"]
        try:
            with open(p) as f:
                text = f.read()
        except FileNotFoundError:
            if item.get("required", True):
                raise where.error(base + ("env_file", i), f"env file {p} not found: stat {p}: "
                                  "no such file or directory") from None
            continue
        except OSError as exc:
            raise where.error(base + ("env_file", i), f"env file {p}: {exc.strerror}") from None
        if item.get("format") == "raw":               # Compose's raw format: KEY=VALUE, literal
            out.update(line.partition("=")[::2] for line in text.splitlines()
                       if "=" in line and not line.lstrip().startswith("#"))
        else:
            out.update(parse_env_file(text, p))
    out.update(raw.get("environment") or {})
    resolved = {k: (v if v is not None else env.get(k)) for k, v in out.items()}
    return {k: v for k, v in resolved.items() if v is not None}


def deploy_restart(raw: dict) -> str | None:
    """`deploy.restart_policy` as the `restart` it stands for when `restart` is not set."""
    policy = (raw.get("deploy") or {}).get("restart_policy")
    if not policy:
        return None
    condition = policy.get("condition", "any")
    attempts = policy.get("max_attempts")
    if condition == "on-failure" and attempts:
        return f"on-failure:{attempts}"
    return condition


def active_profiles(given: Sequence[str] | None, env: Mapping[str, str]) -> set[str]:
    """--profile, else COMPOSE_PROFILES (comma-separated)."""
    if given:
        return set(given)
    return {p.strip() for p in (env.get("COMPOSE_PROFILES") or "").split(",") if p.strip()}


def enabled(raw: dict, profiles: AbstractSet[str]) -> bool:
    """A service without `profiles` always runs; one with them, when one is active ("*": all)."""
    mine = raw.get("profiles") or ()
    return not mine or "*" in profiles or any(p in profiles for p in mine)


def secrets(raw: dict, defined: Mapping[str, dict], base: tuple, where: Where,
            ) -> tuple[tuple[str, str, int], ...]:
    """A service's `secrets` (short and long form) -> (source file, target, mode); targets
    are relative to /run/secrets unless absolute."""
    out = []
    for i, item in enumerate(raw.get("secrets") or ()):
        item = {"source": item} if isinstance(item, str) else item
        source = item["source"]
        d = defined.get(source)
        if d is None:
            raise where.error(base + ("secrets", i), f'service "{base[1]}" refers to undefined secret {source}')
        if not d.get("file"):
            raise where.error(("secrets", source), "only file secrets can be mounted by netkit "
                              "(environment, content and external ones need a secret store)")
        if not os.path.isfile(d["file"]):
            raise where.error(("secrets", source, "file"), f'secret "{source}": file {d["file"]} not found')
        mode = item.get("mode", 0o444)
        if isinstance(mode, str):
            try:
                mode = int(mode, 8)
            except ValueError:
                raise where.error(base + ("secrets", i, "mode"), f'invalid mode "{mode}"') from None
        target = item.get("target") or source
        if not target.startswith("/"):
            target = "/run/secrets/" + target
        name = os.path.normpath(target)[len("/run/secrets/"):]
        if not target.startswith("/run/secrets/") or not name or name.startswith(".."):
            raise where.error(base + ("secrets", i, "target"), f'invalid secret target "{target}": '
                              "netkit mounts secrets under /run/secrets only")
        out.append((d["file"], target, mode))
    return tuple(out)
