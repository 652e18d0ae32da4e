"""Specs check their fields' types when made: no silent splitting of strings (issue 16)."""

from __future__ import annotations

from dataclasses import fields

import pytest

from netkit import ContainerSpec, EndpointSpec, InvalidArgument, NetworkSpec


@pytest.mark.parametrize("kwargs, message", [
    ({"command": "sleep 300"}, "command must be a sequence of strings, not a string"),
    ({"aliases": "web"}, "aliases must be a sequence of strings, not a string"),
    ({"extra_networks": ("front",)}, "extra_networks must be a sequence of EndpointSpec, "
                                     "not one holding str 'front'"),
    ({"extra_networks": "front"}, "extra_networks must be a sequence of EndpointSpec, not a string"),
    ({"dns": b"1.1.1.1"}, "dns must be a sequence of strings, not a string"),
    ({"publish": 8080}, "publish must be a sequence of strings, not int"),
    ({"command": ("sleep", 300)}, "command must be a sequence of strings, not one holding int 300"),
    ({"env": ["A=1"]}, "env must be a mapping of strings to strings, not list"),
    ({"labels": {"a": 1}}, "labels must map strings to strings, not 'a' to 1"),
    ({"name": 7}, "name must be a string or None, not int 7"),
    ({"network": None}, "network must be a string, not NoneType None"),
    ({"detach": "yes"}, "detach must be True or False, not str 'yes'"),
    ({"stop_timeout": "10"}, "stop_timeout must be an integer or None, not str '10'"),
    ({"stop_timeout": True}, "stop_timeout must be an integer or None, not bool True"),
])
def test_container_spec_refuses(kwargs, message):
    with pytest.raises(InvalidArgument, match=f"^ContainerSpec: {message}$"):
        ContainerSpec(**kwargs)


@pytest.mark.parametrize("cls, kwargs, message", [
    (NetworkSpec, {"name": "n", "subnets": "10.0.0.0/24"}, "subnets must be a sequence of strings"),
    (NetworkSpec, {"name": "n", "options": "mtu=1400"}, "options must be a mapping"),
    (NetworkSpec, {"name": "n", "internal": 1}, "internal must be True or False"),
    (NetworkSpec, {"name": None}, "name must be a string, not NoneType"),
    (EndpointSpec, {"network": "n", "aliases": "web"}, "aliases must be a sequence of strings"),
    (EndpointSpec, {"network": "n", "links": "db:db"}, "links must be a sequence of strings"),
    (EndpointSpec, {"network": "n", "ipv4": 167772161}, "ipv4 must be a string or None"),
])
def test_other_specs_refuse(cls, kwargs, message):
    with pytest.raises(InvalidArgument, match=f"^{cls.__name__}: {message}"):
        cls(**kwargs)


def test_lists_are_accepted_and_kept_as_tuples():
    spec = ContainerSpec(command=["sleep", "300"], aliases=["web"],
                         extra_networks=[EndpointSpec("back", aliases=["db"])],
                         env={"A": "1"})
    assert spec.command == ("sleep", "300") and spec.aliases == ("web",)
    assert spec.extra_networks[0].aliases == ("db",)
    assert spec.env == {"A": "1"}


def test_every_field_of_every_spec_is_checked():
    """A wrong-typed value is refused for each field (a new field must be taught to _validate)."""
    wrong = {"str": 1, "str | None": 1, "bool": "x", "int | None": "x",
             "tuple[str, ...]": "x", "tuple[EndpointSpec, ...]": "x", "dict[str, str]": "x",
             "tuple[tuple[str, str], ...]": "x", "tuple[tuple[str, str, int], ...]": "x"}
    required = {NetworkSpec: {"name": "n"}, EndpointSpec: {"network": "n"}, ContainerSpec: {}}
    for cls, base in required.items():
        for f in fields(cls):
            with pytest.raises(InvalidArgument, match=f"{cls.__name__}: {f.name} must be"):
                cls(**{**base, f.name: wrong[str(f.type)]})
