"""Ids, name rules and timestamps of new objects: what every part of the engine stamps them with.

Ids are 64 hex characters (shown as 12), as Docker's; creation times are UTC
with microseconds (they order a name's addresses in DNS answers); the name
rules are Docker's (networks, containers) and netkit's (nodes, LANs: short,
since they become parts of interface and namespace names).
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timezone
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
CONTAINER_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
NODE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,12}$")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def new_id() -> str:
    return secrets.token_hex(32)
