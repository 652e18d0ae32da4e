"""The client side of a node's resolver daemon: start it, tell it what changed, ask it.

What the engine (netkit/resolver.py), the node agent and the tests call, and
nothing of the daemon itself: this module imports neither the server nor the
records, so the engine never loads them. The daemon (netkit.dns.daemon)
imports the file helpers from here. Files under ``<run_dir>/dns/`` and the
control protocol are described in netkit.dns.daemon.

:func:`update` (the engine's call per change), :func:`set_remote` (the node
agent's: the other nodes' names), :func:`ensure_running`, :func:`notify`,
:func:`stop`, :func:`status`, :func:`crashed` and :func:`pid`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from typing import TYPE_CHECKING, Iterable

from netkit.errors import InternalError

if TYPE_CHECKING:
    from netkit.dns.entries import ContainerEntries, NetworkEntry, Snapshot

DNS_DIR = "dns"
WAIT = 5.0
MODULE = "netkit.dns.daemon"


def _dir(run_dir: str) -> str:
    return os.path.join(run_dir, DNS_DIR)


def _path(run_dir: str, name: str) -> str:
    return os.path.join(run_dir, DNS_DIR, name)


def _write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _read_json(path: str) -> dict | None:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def write_snapshot(run_dir: str, snapshot: "Snapshot") -> None:
    """Atomically replace ``<run_dir>/dns/snapshot.json`` (snapshot mode), in its JSON form."""
    os.makedirs(_dir(run_dir), exist_ok=True)
    _write_atomic(_path(run_dir, "snapshot.json"),
                  json.dumps(snapshot.to_json(), separators=(",", ":")))


def load_snapshot(run_dir: str) -> "Snapshot":
    """The current snapshot; an empty one (version 0) when there is none yet."""
    from netkit.dns.entries import Snapshot
    snap = _read_json(_path(run_dir, "snapshot.json"))
    return Snapshot.from_json(snap) if isinstance(snap, dict) else Snapshot()


def _snapshot_version(run_dir: str) -> int:
    snap = _read_json(_path(run_dir, "snapshot.json"))     # the version only: no records built
    return int(snap.get("version") or 0) if isinstance(snap, dict) else 0


def _pid(run_dir: str) -> int | None:
    """The daemon's pid if it is alive and really our resolver for `run_dir`."""
    try:
        with open(_path(run_dir, "resolver.pid")) as f:
            pid = int(f.read().strip())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except (OSError, ValueError):
        return None
    if MODULE.encode() not in argv:
        return None
    try:
        i = argv.index(b"--run-dir")
        if os.path.realpath(argv[i + 1].decode()) != os.path.realpath(run_dir):
            return None
    except (ValueError, IndexError):
        return None
    return pid if _alive(pid) else None


def _alive(pid: int) -> bool:
    """`pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def crashed(run_dir: str) -> bool:
    """A daemon died without stopping (killed): its pid file is left behind."""
    return os.path.exists(_path(run_dir, "resolver.pid")) and _pid(run_dir) is None


def _ready(run_dir: str, pid: int) -> dict | None:
    ready = _read_json(_path(run_dir, "ready"))
    if isinstance(ready, dict) and ready.get("pid") == pid:
        return ready
    return None


def _wait_ready(run_dir: str, pid: int, timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        want = _snapshot_version(run_dir)
        ready = _ready(run_dir, pid)
        if ready is not None and int(ready.get("version") or 0) >= want:
            return True
        if time.monotonic() > deadline or _pid(run_dir) != pid:
            return False
        time.sleep(0.01)


def _control(run_dir: str, line: str, timeout: float = WAIT) -> tuple[int, int] | None:
    """Send one command; (version, sandboxes) from its ``ok``, else None.

    None also when no daemon listens or it is on its way out. A unix
    stream socket answers in well under a millisecond.
    """
    words = _control_words(run_dir, line, timeout)
    if words is None or len(words) < 2:
        return None
    try:
        return int(words[1]), int(words[2]) if len(words) > 2 and words[2].isdigit() else 0
    except ValueError:
        return None


def _control_words(run_dir: str, line: str, timeout: float = WAIT) -> list[str] | None:
    """Send one command; the words of its ``ok`` reply, else None."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(_path(run_dir, "control"))
            sock.sendall(line.encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(256)
                if not chunk:
                    return None
                data += chunk
    except OSError:
        return None
    words = data.decode(errors="replace").split()
    return words if words and words[0] == "ok" else None


def update(run_dir: str, container_ids: Iterable[str],
           timeout: float = WAIT) -> tuple[int, int] | None:
    """Tell the running daemon these containers changed; (version, sandboxes) once served.

    None when no daemon answered (none runs, or it is exiting): the caller
    decides whether to start one (:func:`ensure_running`).
    """
    ids = list(container_ids)
    if any(not cid or any(ch.isspace() for ch in cid) for cid in ids):
        raise ValueError(f"bad container ids {ids!r}")
    return _control(run_dir, " ".join(["update", *ids]), timeout)


def set_remote(run_dir: str, containers: "dict[str, ContainerEntries]",
               networks: "dict[str, NetworkEntry]", timeout: float = WAIT) -> tuple[int, int] | None:
    """Have the running daemon serve exactly `containers` as the other nodes' endpoints
    (their `networks` with them); (version, sandboxes) once served, None when no daemon
    answered. It applies only the difference from what it served before."""
    from netkit.dns.entries import entries_to_json
    payload = json.dumps(entries_to_json(containers, networks), separators=(",", ":"))
    return _control(run_dir, f"remote {payload}", timeout)


def _spawn_lock(run_dir: str):
    from netkit.kernel.daemon import spawn_lock
    return spawn_lock(_path(run_dir, "spawn.lock"))


def _spawn(run_dir: str, netns: str | None, store: str | None, host_resolv: str | None) -> None:
    """Start a detached daemon (new session, stdio to its log), in `netns` if given."""
    from netkit.kernel.daemon import spawn_daemon
    argv = ["-m", MODULE, "--run-dir", os.path.abspath(run_dir)]
    if store:
        argv += ["--store", os.path.abspath(store)]
    if host_resolv:
        argv += ["--host-resolv", os.path.abspath(host_resolv)]
    spawn_daemon(argv, netns=netns, logfile=_path(run_dir, "resolver.log"))


def ensure_running(run_dir: str, netns: str | None = None, *, store: str | None = None,
                   host_resolv: str | None = None, timeout: float = WAIT) -> int:
    """Start the resolver for `run_dir` unless it runs; wait until it answers; its pid.

    `netns` is the node's netns name (None: the caller's netns). With
    `store` (the node's database) and `host_resolv` (the node's
    resolv.conf) it runs in store mode, else in snapshot mode, where this
    also waits until it serves the current snapshot. Raises InternalError
    when it does not come up within `timeout`.
    """
    os.makedirs(_dir(run_dir), exist_ok=True)
    deadline = time.monotonic() + timeout
    while True:
        with _spawn_lock(run_dir):          # one client starts it, the others wait for it
            pid = _pid(run_dir)
            if pid is None:
                for stale in ("resolver.pid", "ready"):
                    _unlink(_path(run_dir, stale))
                _spawn(run_dir, netns, store, host_resolv)
                while pid is None and time.monotonic() < deadline:
                    time.sleep(0.002)
                    pid = _pid(run_dir)
                if pid is None:
                    raise InternalError(f"dns resolver did not start: see "
                                        f"{_path(run_dir, 'resolver.log')}")
        # it answers once its first full load is served
        while True:
            left = max(0.05, deadline - time.monotonic())
            reply = _control(run_dir, "status", left)
            if reply is not None and store is None and reply[0] < _snapshot_version(run_dir):
                reply = _control(run_dir, "reload", left)
                if reply is not None and reply[0] < _snapshot_version(run_dir):
                    reply = None
            if reply is not None:
                return pid
            if _pid(run_dir) != pid:
                break                       # it died or is exiting: start another
            if time.monotonic() > deadline:
                raise InternalError(f"dns resolver (pid {pid}) does not answer: see "
                                    f"{_path(run_dir, 'resolver.log')}")
            time.sleep(0.002)
        if time.monotonic() > deadline:
            raise InternalError(f"dns resolver did not start: see "
                                f"{_path(run_dir, 'resolver.log')}")


def notify(run_dir: str) -> bool:
    """Make the running resolver reload fully; True once it serves the current snapshot.

    False when no resolver runs or it did not catch up within 5 s.
    """
    pid = _pid(run_dir)
    if pid is None:
        return False
    reply = _control(run_dir, "reload")
    if reply is not None and reply[0] >= _snapshot_version(run_dir):
        return True
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        return False
    return _wait_ready(run_dir, pid)


def stop(run_dir: str, timeout: float = WAIT) -> None:
    """SIGTERM the resolver and wait for it (SIGKILL after `timeout`); idempotent."""
    pid = _pid(run_dir)
    if pid is not None:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        if _alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            while _alive(pid) and time.monotonic() < deadline + timeout:
                time.sleep(0.01)
    for name in ("resolver.pid", "ready"):
        _unlink(_path(run_dir, name))


def status(run_dir: str) -> dict:
    """{pid, running, version, sandboxes, started} of the resolver for `run_dir`."""
    pid = _pid(run_dir)
    ready = (_ready(run_dir, pid) if pid is not None else None) or {}
    version, sandboxes = ready.get("version"), ready.get("sandboxes", 0)
    if pid is not None:
        live = _control(run_dir, "status", timeout=1.0)
        if live is not None:
            version, sandboxes = live
    return {"pid": pid, "running": pid is not None, "version": version,
            "sandboxes": sandboxes, "started": ready.get("started")}


def ports(run_dir: str, timeout: float = WAIT) -> dict[str, tuple[str, int, int]] | None:
    """{container id: (netns, udp port, tcp port)} the running daemon listens on, per
    sandbox (where 127.0.0.11:53 is redirected to); None when no daemon answered."""
    words = _control_words(run_dir, "ports", timeout)
    if words is None or len(words) != 2:
        return None
    try:
        return {cid: (v[0], int(v[1]), int(v[2])) for cid, v in json.loads(words[1]).items()}
    except (ValueError, TypeError, IndexError, AttributeError):
        return None


def pid(run_dir: str) -> int | None:
    """The pid of the node's daemon for `run_dir`, None when none runs."""
    return _pid(run_dir)
