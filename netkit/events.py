"""Docker's events (`docker events`): what happened to networks and containers, in order.

Recorded durably in the node's store by triggers (store/schema.py, migration
5) in the same transaction as the change itself: an event exists exactly when
its action committed, once, in commit order (`seq`), whichever process acted
(the CLI, a library user, the node agent recording a process's exit). A few
actions change no row (`stop`, `kill`): they are recorded with `record()`.
The store keeps the newest 10000 events.

Network events: create, connect, disconnect, destroy (Actor: the network,
Attributes name, type and, for connect/disconnect, container). Container
events: create, start, die (exitCode), kill (signal), stop, restart, rename
(oldName), destroy (Actor: the container, Attributes name).

`stream()` reads them: past ones from `since`, then new ones as they commit
(a poll of the store's newest rows, one indexed read) until `until`, or for
ever without it.
"""

from __future__ import annotations

import datetime as _dt
import re
import time
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from netkit.errors import InvalidArgument

if TYPE_CHECKING:
    from netkit.store import Store

POLL = 0.1                       # seconds between two reads of the store while following
TYPES = ("network", "container")
FILTERS = ("type", "event", "network", "container")
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION = re.compile(f"(?:{_PART.pattern})+")
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
            "m": 60_000_000_000, "h": 3_600_000_000_000}


@dataclass(frozen=True, slots=True)
class Event:
    """One of Docker's events (its `events.Message`)."""

    type: str                                   # "network" | "container"
    action: str                                 # create, connect, start, die, ...
    actor_id: str
    attributes: dict[str, str] = field(default_factory=dict)
    time_nano: int = 0
    seq: int = 0                                # the store's order

    @property
    def time(self) -> int:
        return self.time_nano // 1_000_000_000

    def to_json(self) -> dict[str, Any]:
        """Docker's JSON of the event (`docker events --format json`)."""
        return {"Type": self.type, "Action": self.action,
                "Actor": {"ID": self.actor_id, "Attributes": dict(self.attributes)},
                "scope": "local", "time": self.time, "timeNano": self.time_nano}

    def line(self) -> str:
        """Docker's default line: ``<time> <type> <action> <id> (k=v, ...)``."""
        stamp = _dt.datetime.fromtimestamp(self.time, _dt.timezone.utc)
        text = f"{stamp:%Y-%m-%dT%H:%M:%S}.{self.time_nano % 1_000_000_000:09d}Z " \
               f"{self.type} {self.action} {self.actor_id}"
        if self.attributes:
            text += " (" + ", ".join(f"{k}={v}" for k, v in sorted(self.attributes.items())) + ")"
        return text


def record(store: "Store", type_: str, action: str, actor: str,
           attributes: Mapping[str, str]) -> None:
    """An event of an action that changes no row of the store (`stop`, `kill`)."""
    with store.transaction() as tx:
        tx.add_event(type_, action, actor, dict(attributes))


def parse_time(value: "str | float | int | _dt.datetime | None", *,
               now_ns: int | None = None) -> int | None:
    """`--since` / `--until` as Docker reads them, in ns since the epoch: a Unix time
    (seconds, with a fraction), an RFC 3339 date/time (UTC without a zone), or a Go
    duration before now ("10m", "1h30m")."""
    if value is None or value == "":
        return None
    now_ns = time.time_ns() if now_ns is None else now_ns
    if isinstance(value, _dt.datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=_dt.timezone.utc)
        return (stamp - _EPOCH) // _dt.timedelta(microseconds=1) * 1000
    if isinstance(value, (int, float)):
        whole = int(value)
        return whole * 1_000_000_000 + round((value - whole) * 1e9)
    text = str(value).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        secs, _, frac = text.partition(".")
        return int(secs) * 1_000_000_000 + int((frac + "000000000")[:9])
    if _DURATION.fullmatch(text):
        total = sum(float(n) * _UNIT_NS[u] for n, u in _PART.findall(text))
        return now_ns - int(total)
    try:
        stamp = _dt.datetime.fromisoformat(text)
    except ValueError:
        raise InvalidArgument(f'failed to parse value as time or duration: "{text}"') from None
    return parse_time(stamp)


def parse_filters(values: Iterable[str] | Mapping[str, Iterable[str]] | None) -> dict[str, list[str]]:
    """`--filter k=v` (repeatable) or {k: [v, ...]}: the same key ORs, different keys AND."""
    out: dict[str, list[str]] = {}
    items: Iterable[tuple[str, str]]
    if values is None:
        return out
    if isinstance(values, Mapping):
        items = [(k, v) for k, vs in values.items()
                 for v in ([vs] if isinstance(vs, str) else vs)]
    else:
        items = []
        for item in values:
            key, sep, value = item.partition("=")
            if not sep:
                raise InvalidArgument(f"bad format of filter (expected name=value): {item}")
            items.append((key.strip(), value))
    for key, value in items:
        if key not in FILTERS:
            raise InvalidArgument(f"invalid filter '{key}'")
        if key == "type" and value not in TYPES:
            raise InvalidArgument(f"invalid filter 'type={value}'")
        out.setdefault(key, []).append(value)
    return out


def matches(ev: Event, filters: Mapping[str, list[str]]) -> bool:
    """Docker's event filter (daemon/events/filter.go): `type` and `event` match exactly,
    `container` and `network` by a prefix of the actor's id or name (Docker's FuzzyMatch)."""
    if "type" in filters and ev.type not in filters["type"]:
        return False
    if "event" in filters and ev.action not in filters["event"]:
        return False
    for key in ("container", "network"):
        if key in filters and not any(ev.actor_id.startswith(v) or
                                      ev.attributes.get("name", "").startswith(v)
                                      for v in filters[key]):
            return False
    return True


def stream(store: "Store", since: Any = None, until: Any = None,
           filters: Iterable[str] | Mapping[str, Iterable[str]] | None = None
           ) -> Generator[Event, None, None]:
    """The events of `store` (see the module docstring). The starting point is taken now,
    not at the first `next()`: without `since`, exactly the events that commit after
    this call. Without `until` it follows for ever (close the iterator to stop)."""
    wanted = parse_filters(filters)
    since_ns, until_ns = parse_time(since), parse_time(until)
    past = since_ns is not None or until_ns is not None
    cursor = 0 if past else store.read().last_event_seq()
    return _follow(store, cursor, since_ns, until_ns, wanted)


def _follow(store: "Store", cursor: int, since_ns: int | None, until_ns: int | None,
            wanted: Mapping[str, list[str]]) -> Generator[Event, None, None]:
    while True:
        rows = store.read().events_after(cursor, since_ns=since_ns)
        for seq, nano, type_, action, actor, attrs in rows:
            cursor = seq
            if until_ns is not None and nano > until_ns:
                return
            ev = Event(type_, action, actor, attrs, nano, seq)
            if matches(ev, wanted):
                yield ev
        if rows:
            continue
        if until_ns is not None and time.time_ns() > until_ns:
            return
        time.sleep(POLL)
