"""Docker's container lifecycle rules, as pure functions (no I/O).

The node agent (netkit/agent/) applies them to real processes; the CLI
uses the same functions to print what Docker prints. Everything here is
unit-tested without root.

- :class:`RestartPolicy`: ``--restart no|on-failure[:N]|always|unless-stopped``
  with Docker's validation messages and decision (:meth:`RestartPolicy.should_restart`).
- :class:`Backoff`: Docker's restart delay, 100 ms doubling, back to 100 ms
  once a container has stayed up for 10 s.
- :func:`status_text`: the STATUS column of ``docker ps``
  (``Up 3 minutes``, ``Exited (0) 2 seconds ago``, ``Created``,
  ``Restarting (1) 1 second ago``), with :func:`human_duration` from
  docker/go-units.
- :func:`parse_signal`, :func:`parse_size`: ``kill -s``/``--stop-signal`` and
  ``--log-opt max-size`` values.
"""

from __future__ import annotations

import signal as _signal
from dataclasses import dataclass
from datetime import datetime, timezone

from netkit.errors import InvalidArgument

RESTART_NAMES = ("no", "on-failure", "always", "unless-stopped")
BACKOFF_START = 0.1          # seconds: Docker's first restart delay
BACKOFF_RESET = 10.0         # seconds up after which the delay starts again at BACKOFF_START
DEFAULT_STOP_TIMEOUT = 10    # seconds between the stop signal and SIGKILL


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """``HostConfig.RestartPolicy``: Name and MaximumRetryCount."""

    name: str = "no"
    max_retries: int = 0

    @classmethod
    def parse(cls, text: str | None) -> "RestartPolicy":
        """``--restart`` as Docker reads it; '' or None is ``no``."""
        if not text:
            return cls()
        name, _, count = text.partition(":")
        if name not in RESTART_NAMES:
            raise InvalidArgument(f"invalid restart policy '{name}'")
        if count:
            if name != "on-failure":
                raise InvalidArgument(f"invalid restart policy: maximum retry count can only be "
                                      f"used with 'on-failure'")
            try:
                retries = int(count)
            except ValueError:
                raise InvalidArgument(f'invalid restart policy format: maximum retry count must '
                                      f'be an integer: strconv.Atoi: parsing "{count}": invalid '
                                      'syntax') from None
            if retries < 0:
                raise InvalidArgument("invalid restart policy: maximum retry count cannot be negative")
            return cls(name, retries)
        return cls(name)

    @classmethod
    def from_json(cls, data: dict | None) -> "RestartPolicy":
        if not data:
            return cls()
        return cls(str(data.get("Name") or "no"), int(data.get("MaximumRetryCount") or 0))

    def to_json(self) -> dict:
        return {"Name": "" if self.name == "no" else self.name, "MaximumRetryCount": self.max_retries}

    @property
    def text(self) -> str:
        return f"{self.name}:{self.max_retries}" if self.max_retries else self.name

    def should_restart(self, exit_code: int, restart_count: int, *, stopped_by_user: bool) -> bool:
        """Docker's restartmanager decision after the container's process ended."""
        if stopped_by_user or self.name == "no":
            return False
        if self.name in ("always", "unless-stopped"):
            return True
        # on-failure: a non-zero exit, and retries left when a maximum is set
        return exit_code != 0 and (self.max_retries == 0 or restart_count < self.max_retries)


@dataclass(slots=True)
class Backoff:
    """Restart delay: 100 ms, doubling on each restart, reset after 10 s of uptime."""

    delay: float = 0.0

    def next(self, uptime: float) -> float:
        """The delay before the next start, given how long the last run lasted."""
        if uptime >= BACKOFF_RESET or self.delay == 0.0:
            self.delay = BACKOFF_START
        else:
            self.delay *= 2
        return self.delay


def parse_time(value: str | None) -> datetime | None:
    """An RFC 3339 time as netkit stores it ('...Z'), or None."""
    if not value or value.startswith("0001-"):
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def human_duration(seconds: float) -> str:
    """go-units HumanDuration: 'Less than a second', '3 seconds', 'About a minute', ..."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(s / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"


def status_text(state: str, *, exit_code: int | None, started: str | None, finished: str | None,
                now: datetime | None = None) -> str:
    """``docker ps`` STATUS for a container in `state` (created/running/restarting/exited)."""
    now = now or datetime.now(timezone.utc)
    if state == "running":
        t = parse_time(started)
        return f"Up {human_duration((now - t).total_seconds())}" if t else "Up"
    if state == "restarting":
        t = parse_time(finished)
        ago = f" {human_duration((now - t).total_seconds())} ago" if t else ""
        return f"Restarting ({exit_code if exit_code is not None else 0}){ago}"
    if state == "exited":
        t = parse_time(finished)
        ago = f" {human_duration((now - t).total_seconds())} ago" if t else ""
        return f"Exited ({exit_code if exit_code is not None else 0}){ago}"
    return "Created"


def parse_signal(value: str | int | None, default: int = _signal.SIGKILL) -> int:
    """A signal by number, name or SIG-name ('9', 'KILL', 'SIGKILL'); Docker's message if bad."""
    if value is None or value == "":
        return default
    text = str(value).strip()
    if text.isdigit():
        num = int(text)
        if num <= 0 or num > 64:
            raise InvalidArgument(f"Invalid signal: {value}")
        return num
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    sig = getattr(_signal.Signals, name, None) if name in _signal.Signals.__members__ else None
    if sig is None:
        raise InvalidArgument(f"Invalid signal: {value}")
    return int(sig)


_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "m": 1024 ** 2, "mb": 1024 ** 2,
          "g": 1024 ** 3, "gb": 1024 ** 3}


def parse_size(value: str) -> int:
    """go-units RAMInBytes: '10m', '512k', '1g', '2048' -> bytes."""
    text = value.strip().lower()
    num = text.rstrip("bkmg")
    unit = text[len(num):]
    try:
        n = float(num)
    except ValueError:
        raise InvalidArgument(f"invalid size: '{value}'") from None
    if unit not in _UNITS or n < 0:
        raise InvalidArgument(f"invalid size: '{value}'")
    return int(n * _UNITS[unit])
