"""Flag parsing shared by the commands: ``k=v`` lists, ``--env``, ``--network`` and
the verbatim command tail of `run` / `create` / `exec` / `node exec`.

Errors are `InvalidArgument`, so the root group prints them as one
``Error: ...`` line (exit 1, or 125 for `run` / `create`), like every other
netkit error.
"""

from __future__ import annotations

import os
from typing import Callable, Iterable, Mapping

import click

from netkit.errors import InvalidArgument
from netkit.specs import EndpointSpec


def split_key_value(item: str, flag: str, *, bare_ok: bool = False) -> tuple[str, str]:
    """``"k=v"`` -> ``("k", "v")``. With `bare_ok`, ``"k"`` means ``("k", "")`` (docker labels)."""
    key, sep, value = item.partition("=")
    if not key.strip() or (not sep and not bare_ok):
        raise InvalidArgument(f'invalid argument "{item}" for "{flag}" flag: expected key=value')
    return key.strip(), value


def key_values(flag: str, *, bare_ok: bool = False) -> Callable[..., dict[str, str]]:
    """A click callback turning a repeated ``k=v`` option into a dict (last one wins)."""
    def callback(ctx: click.Context, param: click.Parameter, values: Iterable[str]) -> dict[str, str]:
        return dict(split_key_value(v, flag, bare_ok=bare_ok) for v in values or ())
    return callback


def env_vars(values: Iterable[str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``-e K=V`` sets K; ``-e K`` copies K from our environment, or drops it (docker's rule)."""
    environ = os.environ if environ is None else environ
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not key:
            raise InvalidArgument(f'invalid argument "{item}" for "-e, --env" flag: variable name is empty')
        if sep:
            out[key] = value
        elif key in environ:
            out[key] = environ[key]
    return out


_LONG_FORM_KEYS = {"name", "alias", "ip", "ip6", "mac-address"}
_UNSUPPORTED_KEYS = {"link-local-ip", "driver-opt", "gw-priority"}


def network_flag(value: str) -> EndpointSpec:
    """One ``--network`` value: a plain reference or docker's long form
    ``name=N,alias=A,ip=I,ip6=I6,mac-address=M``."""
    if "=" not in value:                     # network names never contain "="
        return EndpointSpec(network=value)
    fields: dict[str, str] = {}
    aliases: list[str] = []
    for part in value.split(","):
        key, sep, val = part.partition("=")
        key = key.strip().lower()
        if not sep:
            raise InvalidArgument(f"invalid field '{part}' must be a key=value pair")
        if key in _UNSUPPORTED_KEYS:
            raise InvalidArgument(f"--network {key}=... is not supported by netkit")
        if key not in _LONG_FORM_KEYS:
            raise InvalidArgument(f"invalid field key {key}")
        if key == "alias":
            aliases.append(val)
        else:
            fields[key] = val
    if not fields.get("name"):
        raise InvalidArgument("network name must be specified")
    return EndpointSpec(network=fields["name"], aliases=tuple(aliases), ipv4=fields.get("ip"),
                        ipv6=fields.get("ip6"), mac=fields.get("mac-address"))


def merge_first_network(first: EndpointSpec, aliases: tuple[str, ...], ipv4: str | None,
                        ipv6: str | None, mac: str | None) -> EndpointSpec:
    """Apply --network-alias/--ip/--ip6/--mac-address to the first network (docker's rule),
    refusing to mix them with the same setting in the long form."""
    for flag, given, per_net, what in (
            ("--network-alias", aliases, first.aliases, "alias"),
            ("--ip", ipv4, first.ipv4, "IPv4 address"),
            ("--ip6", ipv6, first.ipv6, "IPv6 address"),
            ("--mac-address", mac, first.mac, "MAC address")):
        if given and per_net:
            raise InvalidArgument(f"conflicting options: cannot specify both {flag} and per-network {what}")
    return EndpointSpec(network=first.network, aliases=first.aliases or tuple(aliases),
                        ipv4=first.ipv4 or ipv4, ipv6=first.ipv6 or ipv6, mac=first.mac or mac,
                        links=first.links)


class VerbatimCommand(click.Command):
    """A command whose last argument is a command line taken verbatim.

    Parsing stops at the first word that is not one of our options, so
    ``netkit run --rm --network n1 ping -c 1 web`` needs no ``--``. A leading
    ``--`` is dropped (click does that). An unknown option *before* the
    command (``netkit run -it sh``) is an error rather than a program name,
    unless it comes after an explicit ``--``.
    """

    def __init__(self, *args, **kwargs) -> None:
        settings = kwargs.setdefault("context_settings", {})
        settings.update(ignore_unknown_options=True, allow_interspersed_args=False)
        super().__init__(*args, **kwargs)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        raw = list(args)
        rest = super().parse_args(ctx, args)
        words: list[str] = []                       # every positional word, in order
        for param in self.params:
            if isinstance(param, click.Argument):
                value = ctx.params.get(param.name or "")
                if isinstance(value, (list, tuple)):
                    words.extend(value)
                elif value is not None:
                    words.append(value)
        n = len(words)
        after_dashdash = 0 < n < len(raw) and raw[-n - 1] == "--" and raw[-n:] == words
        if words and words[0].startswith("-") and words[0] != "-" and not after_dashdash:
            raise click.NoSuchOption(words[0], ctx=ctx)
        return rest
