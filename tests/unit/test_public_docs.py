"""Every public name of `netkit` and every public method of its classes has a docstring
(issue #16: the library is documented where it is used, in help() and IDEs)."""

import inspect

import netkit


def test_every_public_name_and_method_has_a_docstring():
    missing = []
    for name in netkit.__all__:
        obj = getattr(netkit, name)
        if not inspect.getdoc(obj):
            missing.append(name)
        if not inspect.isclass(obj):
            continue
        for attr, value in vars(obj).items():
            if attr.startswith("_"):
                continue
            fn = value.fget if isinstance(value, property) else \
                value.__func__ if isinstance(value, (classmethod, staticmethod)) else value
            if callable(fn) and not inspect.getdoc(fn):
                missing.append(f"{name}.{attr}")
    assert missing == []
