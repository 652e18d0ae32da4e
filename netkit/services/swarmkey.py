"""The swarm's cluster key: the file that seals secrets (netkit/services/secrets.py).

32 random bytes in `swarm.key` (mode 0600) in each member's node state root,
hidden from containers, never in the cluster store. `swarm init` makes it;
a joining node gets it with the join reply (netkit/swarm.py); `swarm leave`
deletes it. Kept apart from secrets.py so that swarm.py can use it without
an import circle.
"""

from __future__ import annotations

import base64
import os

from netkit.errors import InvalidArgument

KEY_FILE = "swarm.key"


def key_path(node_root: str) -> str:
    return os.path.join(node_root, KEY_FILE)


def write_key(node_root: str, key: bytes) -> None:
    """Store `key` as the node's cluster key (0600, written whole or not at all)."""
    if len(key) != 32:
        raise InvalidArgument("a swarm's cluster key has 32 bytes")
    os.makedirs(node_root, exist_ok=True)
    tmp = key_path(node_root) + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, key)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, key_path(node_root))


def create_key(node_root: str) -> bytes:
    """A new cluster key for this node's new swarm (`swarm init`)."""
    key = os.urandom(32)
    write_key(node_root, key)
    return key


def read_key(node_root: str) -> bytes | None:
    try:
        with open(key_path(node_root), "rb") as f:
            key = f.read()
    except FileNotFoundError:
        return None
    return key if len(key) == 32 else None


def remove_key(node_root: str) -> None:
    try:
        os.unlink(key_path(node_root))
    except FileNotFoundError:
        pass


def key_text(node_root: str) -> str | None:
    """The key as the join reply carries it (base64), None when this node has none."""
    key = read_key(node_root)
    return base64.b64encode(key).decode() if key else None


def accept_key(node_root: str, text: str | None) -> None:
    """A joining node's side: keep the key the manager sent (none: an older manager)."""
    if text:
        write_key(node_root, base64.b64decode(text))
