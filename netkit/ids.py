"""Ids, names and timestamps of new objects: what every part of the engine stamps them with.

Ids are 64 hex characters (shown as 12), as Docker's; creation times are UTC
with microseconds (they order a name's addresses in DNS answers); the name
rules are Docker's (networks, containers) and netkit's (nodes, LANs: short,
since they become parts of interface and namespace names).
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from netkit.store import Tx

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
CONTAINER_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
NODE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,12}$")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def new_id() -> str:
    return secrets.token_hex(32)


_ADJ = ("admiring", "brave", "calm", "eager", "festive", "gifted", "happy", "jolly", "keen",
        "lucid", "modest", "nifty", "quirky", "serene", "trusting", "vibrant", "wizardly", "zen")
_NOUN = ("turing", "hopper", "lovelace", "ritchie", "thompson", "torvalds", "cerf", "kahn",
         "metcalfe", "postel", "perlman", "baran", "davies", "kleinrock", "pouzin", "clark")


def random_name(tx: "Tx") -> str:
    """A free container name in Docker's adjective_surname style."""
    taken = {name for _, name in tx.container_refs()}
    while True:
        name = f"{secrets.choice(_ADJ)}_{secrets.choice(_NOUN)}"
        if name not in taken:
            return name
        name = f"{name}{secrets.randbelow(100)}"
        if name not in taken:
            return name
