"""Healthchecks and completion, run from outside: how `depends_on` conditions are met.

Docker's daemon runs a container's healthcheck on a timer; netkit's node
agent does not, so the lab runner runs the test when it needs the answer
(`up` waiting on `service_healthy`, `ps` showing the state), with Docker's rules:
failures during `start_period` do not count, `retries` failures in a row
after it make the container unhealthy, each test is killed after
`timeout`. The first test runs at once (Docker waits one interval).
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from netkit.errors import Conflict

if TYPE_CHECKING:
    from netkit.engine import Engine
    from netkit.labs.model import Healthcheck
    from netkit.model import Container


def wrap(argv: list[str], timeout: float | None) -> list[str]:
    """stderr into stdout (exec_output captures stdout only), and a hard time limit."""
    inner = ["sh", "-c", 'exec "$@" 2>&1', "sh", *argv]
    return ["timeout", "-s", "KILL", f"{timeout:g}", *inner] if timeout else inner


def probe(eng: "Engine", container_id: str, hc: "Healthcheck") -> tuple[int, str]:
    """Run the test once inside the container: (exit code, output)."""
    return eng.exec_output(container_id, wrap(hc.argv(), hc.timeout))


def wait_healthy(eng: "Engine", ctr: "Container", hc: "Healthcheck") -> None:
    """Return once the test passes; raise Conflict when the container is unhealthy or exits.
    While its restart policy restarts it, each look counts as a failed test."""
    from netkit.model import State
    t0 = time.monotonic()
    started = None
    fails = 0
    while True:
        c = eng.container(ctr.id)
        if c.state not in (State.RUNNING, State.RESTARTING):
            raise Conflict(f"dependency failed to start: container {c.name} exited "
                           f"({c.exit_code}) before it was healthy")
        if started is None:                   # start_period counts from the container's start
            started = age(c.started_at or c.created)
        if c.state is State.RESTARTING:
            code, out = 1, f"restarting after exit {c.exit_code}"
        else:
            code, out = probe(eng, c.id, hc)
        if code == 0:
            return
        last = out.strip().splitlines()[-1] if out.strip() else f"exit {code}"
        in_start = started + (time.monotonic() - t0) < hc.start_period
        if not in_start:
            fails += 1
            if fails >= hc.retries:
                raise Conflict(f"dependency failed to start: container {c.name} is unhealthy "
                               f"({fails} failed checks, last: {last})")
        time.sleep(hc.start_interval if in_start else hc.interval)


def wait_exited(eng: "Engine", ctr: "Container", service: str) -> None:
    """Return once the container's command ended for good (its restart policy gave up)
    with exit 0; raise Conflict on another code. The node agent reports the exit code."""
    code = eng.wait(ctr.id)
    if code != 0:
        raise Conflict(f'service "{service}" didn\'t complete successfully: exit {code}')


def age(created: str) -> float:
    """Seconds since an RFC 3339 timestamp (0 if unreadable)."""
    try:
        when = datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    return max(0.0, (datetime.now(timezone.utc) - when).total_seconds())
