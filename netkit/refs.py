"""Docker's lookup order for user references: full ID, exact name, unique ID prefix."""

from __future__ import annotations

from typing import Iterable

from netkit.errors import InvalidArgument, NotFound


def resolve(kind: str, pairs: Iterable[tuple[str, str]], ref: str, *,
            note: str = " based on ID prefix") -> str:
    """The id that `ref` names among (id, name) pairs (`note`: the ambiguity message's tail,
    "" for swarm objects, as the daemon words them)."""
    pairs = list(pairs)
    if kind == "container":
        ref = ref.lstrip("/")
    for id_, _ in pairs:
        if id_ == ref:
            return id_
    for id_, name in pairs:
        if name == ref:
            return id_
    matches = [id_ for id_, _ in pairs if ref and id_.startswith(ref.lower())]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise InvalidArgument(f"{kind} {ref} is ambiguous ({len(matches)} matches found{note})")
    if kind == "container":
        raise NotFound(f"No such container: {ref}")
    raise NotFound(f"{kind} {ref} not found")
