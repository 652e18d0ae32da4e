"""Swarm secrets and configs: `docker secret|config create / ls / inspect / rm`, and the
files a task is granted (`task_files`).

Both are objects of the cluster store (kinds "secret" and "config",
netkit/services/model.py `SecretObject`), written by managers only. A
config's data is base64 of its bytes, as Docker shows it. A secret's data
is **sealed**: AES-256-GCM under the cluster key, with the cluster id and
the secret's id as associated data (a sealed value copied onto another
object or cluster does not open), stored as "v1:" + base64(nonce || ct).
The cluster key never enters the store: it is a file (netkit/services/
swarmkey.py, 0600) in each member's node state root, which netkit hides from every container
(processes.hidden(), mntns.ensure_template hide=). `swarm init` makes it;
a node joining gets it with the join reply (over the network: the
manager's agent answers from its own root; on one machine: read from the
manager node's root); `swarm leave` deletes it. See docs/security.md for
the design and its limits.

A task's node unseals the granted secrets only into private files under
the task container's directory (0700, under the node's run root, hidden
from containers): `task_files` returns them as ContainerSpec.secrets /
.configs, which the container's mount namespace shows read-only at
/run/secrets/TARGET and at each config's absolute target
(netkit/kernel/secretfs.py).
"""

from __future__ import annotations

import base64
import os
import re
from typing import TYPE_CHECKING, Any

from netkit.errors import AlreadyExists, Conflict, Forbidden, InvalidArgument, NotFound
from netkit.refs import resolve
from netkit.services.model import CONFIG, SECRET, SecretObject, new_object_id, services
from netkit.services.swarmkey import (KEY_FILE, accept_key, create_key, key_path,  # noqa: F401
                                      key_text, read_key, remove_key, write_key)

if TYPE_CHECKING:
    from netkit.engine import Engine
    from netkit.services.model import FileRef, ServiceSpec

MAX_SIZE = 500 * 1024                # swarmkit's MaxSecretSize / MaxConfigSize
SEALED_PREFIX = "v1:"
NONCE = 12
NAME_RE = re.compile(r"^[a-zA-Z0-9]+(?:[a-zA-Z0-9-_.]*[a-zA-Z0-9])?$")
INVALID_NAME = ("invalid name, only 64 [a-zA-Z0-9-_.] characters allowed, and the start and end "
                "character must be [a-zA-Z0-9]")
SECRETS_DIR = "/run/secrets"


class SealError(Forbidden):
    """The value cannot be unsealed with this node's cluster key."""


# -- sealing --------------------------------------------------------------------------

def _aad(cluster_id: str, object_id: str) -> bytes:
    return f"netkit-secret/{cluster_id}/{object_id}".encode()


def seal(key: bytes, cluster_id: str, object_id: str, data: bytes) -> str:
    """`data` encrypted and authenticated for object `object_id` of cluster `cluster_id`."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    nonce = os.urandom(NONCE)
    sealed = AESGCM(key).encrypt(nonce, data, _aad(cluster_id, object_id))
    return SEALED_PREFIX + base64.b64encode(nonce + sealed).decode()


def unseal(key: bytes, cluster_id: str, object_id: str, sealed: str) -> bytes:
    """The plain bytes of a sealed value; SealError with a wrong key, cluster or object."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    if not sealed.startswith(SEALED_PREFIX):
        raise SealError(f"secret {object_id}: not a sealed value")
    try:
        raw = base64.b64decode(sealed[len(SEALED_PREFIX):], validate=True)
        return AESGCM(key).decrypt(raw[:NONCE], raw[NONCE:], _aad(cluster_id, object_id))
    except (InvalidTag, ValueError):
        raise SealError(f"secret {object_id} cannot be unsealed with this node's cluster key") \
            from None


# -- the manager's API (Engine.secret_* / config_*) -------------------------------------

def check_create(kind: str, name: str, data: bytes) -> None:
    """swarmkit's validation of a new secret or config (its words)."""
    if not name:
        raise InvalidArgument("name must be provided")
    if len(name) > 64 or not NAME_RE.match(name):
        raise InvalidArgument(INVALID_NAME)
    if not 0 < len(data) < MAX_SIZE:
        raise InvalidArgument(f"{kind} data must be larger than 0 and less than {MAX_SIZE} bytes")


def _manager_store(engine: "Engine") -> Any:
    """The cluster store, if this node is a manager of it (Docker's words otherwise)."""
    from netkit.store.cluster import MANAGER
    from netkit.swarm import NOT_IN_SWARM, WORKER_VIEW
    store = engine.cluster.store()
    if store is None:
        raise Conflict(NOT_IN_SWARM)
    me = store.read().member(engine.node_name)
    if me is None or me.role != MANAGER:
        raise Forbidden(WORKER_VIEW)
    return store


def _all(c: Any, kind: str) -> list[SecretObject]:
    return [SecretObject.from_dict(v) for _, v in c.objects(kind)]


def find(c: Any, kind: str, ref: str) -> SecretObject:
    """By full id, then name, then unique id prefix (the daemon's getSecret/getConfig)."""
    found = {o.id: o for o in _all(c, kind)}
    return found[resolve(kind, ((o.id, o.name) for o in found.values()), ref, note="")]


def create(engine: "Engine", kind: str, name: str, data: bytes,
           labels: dict[str, str] | None = None) -> SecretObject:
    """`docker secret|config create NAME FILE|-`: the new object (a secret's data sealed)."""
    from netkit.ids import now
    check_create(kind, name, data)
    store = _manager_store(engine)
    object_id = new_object_id()
    if kind == SECRET:
        key = read_key(engine.paths.root)
        if key is None:                  # a swarm made before secrets: its key now
            key = create_key(engine.paths.root)
        stored = seal(key, store.cluster_id, object_id, data)
    else:
        stored = base64.b64encode(data).decode()
    stamp = now()
    obj = SecretObject(object_id, name, stored, stamp, stamp, dict(labels or {}))
    with store.transaction() as c:
        if any(o.name == name for o in _all(c, kind)):
            raise AlreadyExists(f"{kind} {name} already exists")
        c.put_object(kind, object_id, obj.to_dict())
    return obj


def listing(engine: "Engine", kind: str) -> list[SecretObject]:
    """`docker secret|config ls`."""
    return sorted(_all(_manager_store(engine).read(), kind), key=lambda o: o.name)


def get(engine: "Engine", kind: str, ref: str) -> SecretObject:
    """`docker secret|config inspect REF` (name, id or unique id prefix)."""
    return find(_manager_store(engine).read(), kind, ref)


def users(c: Any, kind: str, obj: SecretObject) -> list[str]:
    """The names of the services granted `obj`."""
    out = []
    for svc in services(c):
        refs = svc.spec.secrets if kind == SECRET else svc.spec.configs
        if any(r.source in (obj.name, obj.id) for r in refs):
            out.append(svc.name)
    return sorted(out)


def remove(engine: "Engine", kind: str, ref: str) -> SecretObject:
    """`docker secret|config rm REF`: refused while a service uses it (swarmkit's words)."""
    store = _manager_store(engine)
    with store.transaction() as c:
        obj = find(c, kind, ref)
        used = users(c, kind, obj)
        if used:
            plural = "s" if len(used) > 1 else ""
            raise InvalidArgument(f"{kind} '{obj.name}' is in use by the following "
                                  f"service{plural}: {', '.join(used)}")
        c.delete_object(kind, obj.id)
    return obj


def inspect_json(kind: str, obj: SecretObject) -> dict:
    """Docker's inspect object: never a secret's value; a config's Spec.Data (base64)."""
    spec: dict[str, Any] = {"Name": obj.name, "Labels": dict(obj.labels)}
    if kind == CONFIG:
        spec["Data"] = obj.data
    return {"ID": obj.id, "Version": {"Index": obj.version}, "CreatedAt": obj.created,
            "UpdatedAt": obj.updated, "Spec": spec}


# -- what a task is granted (the runner) ------------------------------------------------

def _private_dir(container_dir: str) -> str:
    """`container_dir`/granted, 0700 (root only; the run root is hidden from containers)."""
    d = os.path.join(container_dir, "granted")
    os.makedirs(d, mode=0o700, exist_ok=True)
    os.chmod(d, 0o700)
    return d


def _owner(ref: "FileRef") -> tuple[int, int]:
    try:
        return int(ref.uid or 0), int(ref.gid or 0)
    except ValueError:
        raise InvalidArgument(f"invalid uid/gid {ref.uid}:{ref.gid} for {ref.source}") from None


def _write(path: str, data: bytes, ref: "FileRef") -> None:
    """A private file with `data`, owned as the task asks (its mode is set on the copy the
    container gets; this one stays 0600 under a 0700 directory)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fchown(fd, *_owner(ref))
    finally:
        os.close(fd)


def check_target(kind: str, ref: "FileRef") -> str:
    """The target a FileRef names in the container: /run/secrets/TARGET for a secret (a
    relative name), an absolute path for a config (default /NAME)."""
    if kind == SECRET:
        target = os.path.normpath(ref.target or ref.source)
        if target.startswith(SECRETS_DIR + "/"):
            target = target[len(SECRETS_DIR) + 1:]
        if target.startswith(("/", "..")) or target in (".", ""):
            raise InvalidArgument(f"invalid secret target {ref.target!r}: a file name under "
                                  f"{SECRETS_DIR}")
        return target
    target = ref.target or "/" + ref.source
    if not os.path.isabs(target) or os.path.normpath(target) == "/":
        raise InvalidArgument(f"invalid config target {target!r}: an absolute file path")
    return os.path.normpath(target)


def task_files(engine: "Engine", cluster_tx: Any, spec: "ServiceSpec", container_dir: str
               ) -> tuple[tuple[tuple[str, str, int], ...], tuple[tuple[str, str, int], ...]]:
    """The secrets and configs `spec` grants, written into private files under
    `container_dir`: (ContainerSpec.secrets, ContainerSpec.configs). A secret or config
    that does not exist: NotFound (Docker's words)."""
    grants = [(SECRET, r) for r in spec.secrets] + [(CONFIG, r) for r in spec.configs]
    if not grants:
        return (), ()
    d = _private_dir(container_dir)
    key = read_key(engine.paths.root) if spec.secrets else None
    out: dict[str, list[tuple[str, str, int]]] = {SECRET: [], CONFIG: []}
    for i, (kind, ref) in enumerate(grants):
        target = check_target(kind, ref)
        try:
            obj = find(cluster_tx, kind, ref.source)
        except NotFound:
            raise NotFound(f"{kind} not found: {ref.source}") from None
        if kind == SECRET:
            if key is None:
                raise SealError(f"secret {ref.source}: this node has no cluster key "
                                "(it joined the swarm before secrets existed: leave and join again)")
            data = unseal(key, _cluster_id(engine), obj.id, obj.data)
        else:
            data = base64.b64decode(obj.data)
        path = os.path.join(d, f"{kind}-{i}")
        _write(path, data, ref)
        out[kind].append((path, target, ref.mode))
    return tuple(out[SECRET]), tuple(out[CONFIG])


def _cluster_id(engine: "Engine") -> str:
    found = engine.cluster.membership()
    if found is None:
        from netkit.swarm import NOT_IN_SWARM
        raise Conflict(NOT_IN_SWARM)
    return str(found["cluster"])


__all__ = ["KEY_FILE", "MAX_SIZE", "SealError", "create", "find", "get",
           "inspect_json", "listing", "remove", "seal", "task_files", "unseal"]
