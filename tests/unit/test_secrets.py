"""Sealing of swarm secrets (netkit/services/secrets.py): pure, no root."""

from __future__ import annotations

import base64
import os

import pytest

from netkit.errors import InvalidArgument
from netkit.services import secrets
from netkit.services.model import FileRef, SecretObject

CID = "c" * 25


def test_seal_round_trip_and_no_plaintext():
    key = os.urandom(32)
    value = b"s3cr3t-password\n"
    sealed = secrets.seal(key, CID, "obj1", value)
    assert sealed.startswith("v1:")
    stored = SecretObject("obj1", "pw", sealed).to_dict()
    text = repr(stored).encode()
    assert value.strip() not in text and base64.b64encode(value) not in text
    assert secrets.unseal(key, CID, "obj1", sealed) == value
    assert secrets.seal(key, CID, "obj1", value) != sealed          # a fresh nonce each time


@pytest.mark.parametrize("change", ["key", "cluster", "object", "tamper"])
def test_unseal_refuses(change):
    key = os.urandom(32)
    sealed = secrets.seal(key, CID, "obj1", b"value")
    args = {"key": key, "cluster": CID, "object": "obj1", "sealed": sealed}
    if change == "key":
        args["key"] = os.urandom(32)
    elif change == "cluster":
        args["cluster"] = "d" * 25
    elif change == "object":
        args["object"] = "obj2"
    else:
        raw = bytearray(base64.b64decode(sealed[3:]))
        raw[-1] ^= 1
        args["sealed"] = "v1:" + base64.b64encode(bytes(raw)).decode()
    with pytest.raises(secrets.SealError):
        secrets.unseal(args["key"], args["cluster"], args["object"], args["sealed"])


def test_key_file(tmp_path):
    root = str(tmp_path)
    assert secrets.read_key(root) is None and secrets.key_text(root) is None
    key = secrets.create_key(root)
    assert secrets.read_key(root) == key
    assert os.stat(secrets.key_path(root)).st_mode & 0o777 == 0o600
    other = tmp_path / "other"
    secrets.accept_key(str(other), secrets.key_text(root))
    assert secrets.read_key(str(other)) == key
    secrets.remove_key(root)
    assert secrets.read_key(root) is None


@pytest.mark.parametrize("name,data,message", [
    ("", b"x", "name must be provided"),
    ("-bad", b"x", secrets.INVALID_NAME),
    ("bad-", b"x", secrets.INVALID_NAME),
    ("a" * 65, b"x", secrets.INVALID_NAME),
    ("ok", b"", "secret data must be larger than 0 and less than 512000 bytes"),
    ("ok", b"x" * 512000, "secret data must be larger than 0 and less than 512000 bytes"),
])
def test_create_checks(name, data, message):
    with pytest.raises(InvalidArgument) as exc:
        secrets.check_create("secret", name, data)
    assert str(exc.value) == message


def test_create_accepts_docker_names():
    for name in ("a", "my_secret.v1", "A-b_c.d9", "x" * 64):
        secrets.check_create("secret", name, b"x" * 511999)


def test_targets():
    assert secrets.check_target("secret", FileRef("pw", "")) == "pw"
    assert secrets.check_target("secret", FileRef("pw", "db/pw")) == "db/pw"
    assert secrets.check_target("config", FileRef("cfg", "")) == "/cfg"
    assert secrets.check_target("config", FileRef("cfg", "/etc/app.conf")) == "/etc/app.conf"
    for kind, target in (("secret", "../x"), ("config", "rel/x"), ("config", "/")):
        with pytest.raises(InvalidArgument):
            secrets.check_target(kind, FileRef("s", target))


def test_inspect_json_never_shows_a_secret():
    obj = SecretObject("id1", "pw", "v1:abc", "t1", "t2", {"a": "b"}, 3)
    assert secrets.inspect_json("secret", obj) == {
        "ID": "id1", "Version": {"Index": 3}, "CreatedAt": "t1", "UpdatedAt": "t2",
        "Spec": {"Name": "pw", "Labels": {"a": "b"}}}
    assert secrets.inspect_json("config", obj)["Spec"]["Data"] == "v1:abc"
