"""The lab file's shape: small type checkers, and the Compose keys netkit reads.

Each checker takes a value and its key path and returns the value in its
canonical form (``"3"`` -> 3 for an integer, ``"10s"`` -> 10.0 for a
duration), or raises :class:`~netkit.labs.source.LabFileError` naming the
file, line and key. Values may be strings where a number or boolean is
expected, because interpolation always yields strings (Compose casts them
the same way).
"""

from __future__ import annotations

import difflib
import re
from typing import Any, Callable

from netkit.labs.source import LabFileError, Path, Where


def got(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


class Ctx:
    """What a checker needs besides the value: positions, and where warnings go."""

    def __init__(self, where: Where, warnings: list[str] | None = None, *, collect: bool = False) -> None:
        self.where, self.collect = where, collect     # collect: Obj keeps checking after an error
        self.warnings = warnings if warnings is not None else []
        self.ignored: dict[str, list[str]] = {}      # key -> paths (one warning per key)
        self.why: dict[str, str] = {}                # key -> why it is ignored
        self.errors: list[Exception] = []            # every error of the file (Obj collects them)

    def fail(self, path: Path, message: str) -> Exception:
        return self.where.error(path, message)


class T:
    """A type checker. `what` names it in messages ("an integer")."""

    what = "a value"

    def check(self, value: Any, path: Path, ctx: Ctx) -> Any:
        raise NotImplementedError

    def wrong(self, value: Any, path: Path, ctx: Ctx) -> Exception:
        return ctx.fail(path, f"expected {self.what}, got {got(value)}")


class Anything(T):
    def check(self, value, path, ctx):
        return value


class Str(T):
    what = "a string"

    def __init__(self, pattern: str | None = None, hint: str = "") -> None:
        self.pattern = re.compile(pattern) if pattern else None
        self.hint = hint

    def check(self, value, path, ctx):
        if not isinstance(value, str):
            raise self.wrong(value, path, ctx)
        if self.pattern and not self.pattern.match(value):
            raise ctx.fail(path, f'invalid value "{value}"' + (f": {self.hint}" if self.hint else ""))
        return value


class Scalar(T):
    """A string, number or boolean, as a string (environment values, labels, options)."""

    what = "a string, number or boolean"

    def __init__(self, nullable: bool = False) -> None:
        self.nullable = nullable

    def check(self, value, path, ctx):
        if value is None and self.nullable:
            return None
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (str, int, float)):
            return str(value)
        raise self.wrong(value, path, ctx)


class Int(T):
    what = "an integer"

    def __init__(self, minimum: int | None = None, maximum: int | None = None) -> None:
        self.minimum, self.maximum = minimum, maximum

    def check(self, value, path, ctx):
        if isinstance(value, bool):
            raise self.wrong(value, path, ctx)
        if isinstance(value, str) and re.fullmatch(r"[-+]?[0-9]+", value.strip()):
            value = int(value)
        if not isinstance(value, int):
            raise self.wrong(value, path, ctx)
        if self.minimum is not None and value < self.minimum:
            raise ctx.fail(path, f"must be at least {self.minimum}, got {value}")
        if self.maximum is not None and value > self.maximum:
            raise ctx.fail(path, f"must be at most {self.maximum}, got {value}")
        return value


class Bool(T):
    what = "a boolean"

    def check(self, value, path, ctx):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise self.wrong(value, path, ctx)


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float | None:
    """Go's duration syntax (``1m30s``, ``500ms``) -> seconds; None if invalid."""
    text = text.strip()
    if text in ("0", ""):
        return 0.0 if text == "0" else None
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return total if pos == len(text) else None


def format_duration(seconds: float) -> str:
    """Seconds -> Go-style duration text (``90`` -> ``1m30s``, ``0.5`` -> ``500ms``)."""
    if seconds and seconds < 1:
        return f"{round(seconds * 1000)}ms"
    whole = round(seconds)
    if abs(seconds - whole) > 1e-9:
        return f"{seconds:g}s"
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    return (f"{h}h" if h else "") + (f"{m}m" if m else "") + (f"{s}s" if s or not (h or m) else "")


class Duration(T):
    what = 'a duration ("10s", "1m30s", "500ms")'

    def check(self, value, path, ctx):
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
            return float(value)
        if isinstance(value, str):
            seconds = parse_duration(value)
            if seconds is not None:
                return seconds
        raise self.wrong(value, path, ctx)


class Enum(T):
    def __init__(self, *values: str) -> None:
        self.values = values
        self.what = "one of " + ", ".join(values) if len(values) > 1 else f'"{values[0]}"'

    def check(self, value, path, ctx):
        if value not in self.values:
            raise self.wrong(value, path, ctx)
        return value


class List(T):
    def __init__(self, item: T, unique: bool = False) -> None:
        self.item, self.unique = item, unique
        self.what = "a list of " + _plural(item.what)

    def check(self, value, path, ctx):
        if not isinstance(value, list):
            raise self.wrong(value, path, ctx)
        out = [self.item.check(v, path + (i,), ctx) for i, v in enumerate(value)]
        if self.unique:
            seen: set = set()
            for i, v in enumerate(out):
                key = repr(v)
                if key in seen:
                    raise ctx.fail(path + (i,), f"duplicate entry {got(v)}")
                seen.add(key)
        return out


class Map(T):
    """A mapping of free keys (service names, variables) to one value type."""

    def __init__(self, value: T, key_pattern: str | None = None, key_hint: str = "") -> None:
        self.value = value
        self.key_pattern = re.compile(key_pattern) if key_pattern else None
        self.key_hint = key_hint
        self.what = "a mapping"

    def check(self, value, path, ctx):
        if not isinstance(value, dict):
            raise self.wrong(value, path, ctx)
        out = {}
        for k, v in value.items():
            if self.key_pattern and not self.key_pattern.match(k):
                raise ctx.fail(path + (k,), "invalid name" + (f": {self.key_hint}" if self.key_hint else ""))
            out[k] = self.value.check(v, path + (k,), ctx)
        return out


class Unsupported(T):
    """A Compose key netkit knows but does not implement: an error that says so."""

    def __init__(self, why: str = "not supported by netkit") -> None:
        self.why = why

    def check(self, value, path, ctx):
        raise ctx.fail(path, self.why)


class Ignored(T):
    """Accepted and dropped; the loader warns once per key name, listing where."""

    def __init__(self, why: str) -> None:
        self.why = why

    def check(self, value, path, ctx):
        ctx.ignored.setdefault(str(path[-1]), []).append(".".join(map(str, path)))
        ctx.why[str(path[-1])] = self.why
        return None


class Obj(T):
    """A mapping with known keys. `x-*` extension keys pass when `extensions` is set."""

    what = "a mapping"

    def __init__(self, fields: dict[str, T], *, required: tuple[str, ...] = (),
                 extensions: bool = True, null_ok: bool = False) -> None:
        self.fields, self.required, self.extensions, self.null_ok = fields, required, extensions, null_ok

    def check(self, value, path, ctx):
        if value is None and self.null_ok:
            value = {}
        if not isinstance(value, dict):
            raise self.wrong(value, path, ctx)
        out = {}
        for k, v in value.items():
            if self.extensions and k.startswith("x-") and k not in self.fields:
                out[k] = v
                continue
            spec = self.fields.get(k)
            if spec is None:
                near = difflib.get_close_matches(k, list(self.fields), n=1, cutoff=0.7)
                err = ctx.fail(path + (k,), "unknown key" + (f' (did you mean "{near[0]}"?)' if near else ""))
                if not ctx.collect:
                    raise err
                ctx.errors.append(err)
                continue
            try:
                checked = spec.check(v, path + (k,), ctx)
            except LabFileError as exc:               # collecting: the next keys are checked too
                if not ctx.collect:
                    raise
                ctx.errors.append(exc)
                continue
            if not isinstance(spec, Ignored):
                out[k] = checked
        for k in self.required:
            if k not in value:
                raise ctx.fail(path, f'missing key "{k}"')
        return out


class Either(T):
    """Pick a checker by the value's shape: mapping, list or scalar."""

    def __init__(self, *options: T) -> None:
        self.options = options
        self.what = " or ".join(o.what for o in options)

    def check(self, value, path, ctx):
        for opt in self.options:                  # the option made for this kind of value
            if _shape_ok(opt, value):
                if isinstance(opt, (Obj, Map, List)):
                    return opt.check(value, path, ctx)    # its own, more precise errors
                try:
                    return opt.check(value, path, ctx)
                except Exception:
                    if len(self.options) == 1:
                        raise
                    break
        if isinstance(value, str):                # "3" / "true" from interpolation
            for opt in self.options:
                try:
                    return opt.check(value, path, ctx)
                except Exception:
                    continue
        raise self.wrong(value, path, ctx)


def _shape_ok(opt: T, value: Any) -> bool:
    if isinstance(opt, (Obj, Map)):
        return isinstance(value, dict) or (value is None and getattr(opt, "null_ok", False))
    if isinstance(opt, List):
        return isinstance(value, list)
    if isinstance(opt, Null):
        return value is None
    if isinstance(opt, (Str, Enum)):
        return isinstance(value, str)
    if isinstance(opt, Int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(opt, Bool):
        return isinstance(value, bool)
    if isinstance(opt, Either):
        return any(_shape_ok(o, value) for o in opt.options)
    return not isinstance(value, (dict, list)) and value is not None


class Null(T):
    what = "null"

    def check(self, value, path, ctx):
        if value is not None:
            raise self.wrong(value, path, ctx)
        return None


class Custom(T):
    """A checker from a function (value, path, ctx) -> value."""

    def __init__(self, what: str, fn: Callable[[Any, Path, Ctx], Any]) -> None:
        self.what, self.fn = what, fn

    def check(self, value, path, ctx):
        return self.fn(value, path, ctx)


def _plural(what: str) -> str:
    if " or " in what:
        return " or ".join(_plural(part) for part in what.split(" or "))
    for a in ("an ", "a "):
        if what.startswith(a):
            what = what[len(a):]
            break
    return what if what.endswith("s") or " " in what else what + "s"


# -- the Compose subset ---------------------------------------------------------------

NAME = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"
STR_LIST = List(Str())
STR_OR_LIST = Either(Str(), STR_LIST)
KV = Either(Map(Scalar(nullable=True)), List(Str()))      # environment / labels: map or K=V list
IMAGES = "netkit runs host commands, not images"

HEALTHCHECK = Obj({
    "test": Either(Str(), List(Str())),
    "interval": Duration(), "timeout": Duration(), "retries": Int(minimum=0),
    "start_period": Duration(), "start_interval": Duration(), "disable": Bool(),
})

SERVICE_NETWORK = Obj({
    "aliases": STR_LIST, "ipv4_address": Str(), "ipv6_address": Str(), "mac_address": Str(),
    "priority": Unsupported(), "gw_priority": Unsupported(), "link_local_ips": Unsupported(),
    "driver_opts": Unsupported(), "interface_name": Unsupported(),
}, null_ok=True)

PORT_LONG = Obj({
    "target": Int(1, 65535), "published": Either(Int(0, 65535), Str()), "host_ip": Str(),
    "protocol": Enum("tcp", "udp"), "mode": Enum("host", "ingress"), "name": Str(),
    "app_protocol": Str(),
})

DEPENDS_ON = Either(List(Str(), unique=True), Map(Obj({
    "condition": Enum("service_started", "service_healthy", "service_completed_successfully"),
    "restart": Bool(), "required": Bool(),
}, null_ok=True)))

# keys that need images, a full runtime or resource control: accepted with a warning
RUNTIME = "netkit runs host commands in namespaces, without a container runtime"
_RUNTIME_SERVICE_KEYS = (
    "annotations attach blkio_config cgroup cgroup_parent configs cpu_count "
    "cpu_percent cpu_period cpu_quota cpu_rt_period cpu_rt_runtime cpu_shares cpus cpuset "
    "credential_spec develop device_cgroup_rules devices dns_opt dns_search "
    "external_links gpus group_add init ipc isolation "
    "label_file logging mem_limit mem_reservation mem_swappiness memswap_limit "
    "models oom_kill_disable oom_score_adj pid pids_limit platform post_start pre_stop "
    "provider pull_policy read_only runtime security_opt "
    "shm_size stdin_open storage_opt tmpfs tty ulimits "
    "use_api_socket userns_mode uts volumes_from working_dir").split()

ENV_FILE = Either(Str(), List(Either(Str(), Obj({"path": Str(), "required": Bool(), "format": Str()},
                                                required=("path",)))))
SERVICE_SECRET = Either(Str(), Obj({"source": Str(), "target": Str(), "uid": Scalar(), "gid": Scalar(),
                                    "mode": Either(Int(minimum=0), Str())}, required=("source",)))
EXTRA_HOSTS = Either(List(Str()), Map(Either(Str(), List(Str()))))

SERVICE = Obj({
    "command": Either(Str(), List(Scalar())),
    "container_name": Str(NAME, "only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"),
    "hostname": Str(),
    "networks": Either(List(Str(), unique=True), Map(SERVICE_NETWORK)),
    "network_mode": Str(),
    "ports": List(Either(Str(), Int(1, 65535), PORT_LONG)),
    "expose": List(Either(Str(), Int(1, 65535))),
    "links": List(Str()),
    "dns": Either(Str(), List(Str())),
    "depends_on": DEPENDS_ON,
    "healthcheck": HEALTHCHECK,
    "scale": Int(minimum=0),
    "restart": Str(),                       # values checked when normalized (Docker's messages)
    "stop_signal": Str(),
    "stop_grace_period": Duration(),
    "deploy": Obj({"replicas": Int(minimum=0), "mode": Enum("replicated"),
                   "restart_policy": Obj({"condition": Enum("none", "on-failure", "any"),
                                          "max_attempts": Int(minimum=0), "delay": Ignored(RUNTIME),
                                          "window": Ignored(RUNTIME)}),
                   **{k: Ignored(RUNTIME) for k in ("resources", "placement",
                                                    "update_config", "rollback_config", "labels",
                                                    "endpoint_mode")}}, null_ok=True),
    "environment": KV,
    "labels": KV,
    "cap_add": List(Str()), "cap_drop": List(Str()), "privileged": Bool(),
    "user": Either(Str(), Int(minimum=0)), "sysctls": KV,
    "entrypoint": Either(Null(), Str(), List(Scalar())),
    "env_file": ENV_FILE,
    "extra_hosts": EXTRA_HOSTS,
    "profiles": List(Str(), unique=True),
    "extends": Either(Str(), Obj({"service": Str(), "file": Str()}, required=("service",))),
    "domainname": Str(), "mac_address": Str(),
    "secrets": List(SERVICE_SECRET),
    "x-netkit": Obj({"node": Str()}, extensions=False),
    "image": Ignored(IMAGES), "build": Ignored(IMAGES), "volumes": Ignored(IMAGES),
    **{k: Ignored(RUNTIME) for k in _RUNTIME_SERVICE_KEYS},
})

IPAM_CONFIG = Obj({"subnet": Str(), "ip_range": Str(), "gateway": Str(),
                   "aux_addresses": Map(Str())})

NETWORK = Obj({
    "driver": Str(), "driver_opts": Map(Scalar()),
    "ipam": Obj({"driver": Enum("default"), "config": List(IPAM_CONFIG), "options": Map(Scalar())}),
    "internal": Bool(), "attachable": Bool(), "enable_ipv6": Bool(), "enable_ipv4": Bool(),
    "labels": KV, "name": Str(), "external": Either(Bool(), Obj({"name": Str()})),
    # per-node networks: made on each node listed (and each node running a service on it),
    # with that node's overrides of ipam.config (entry by entry) and driver_opts
    "x-netkit": Obj({"nodes": Map(Obj({
        "ipam": Obj({"config": List(IPAM_CONFIG)}, extensions=False),
        "driver_opts": Map(Scalar())}, extensions=False, null_ok=True))}, extensions=False),
}, null_ok=True)

NODE_NAME = r"^[a-z0-9][a-z0-9-]{0,12}$"
NODE_HINT = "use 1-13 of [a-z0-9-]"

LAN = Obj({"name": Str(NODE_NAME, NODE_HINT), "subnet": Str(), "gateway": Str(), "external": Bool()},
          required=("subnet",), extensions=False)
NODE = Obj({"name": Str(NODE_NAME, NODE_HINT), "lan": Str(), "ip": Str(), "gateway": Str(),
            "dns": Either(Str(), List(Str())), "external": Bool()}, extensions=False, null_ok=True)
