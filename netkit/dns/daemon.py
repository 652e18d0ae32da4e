"""The resident resolver process and the engine's handle on it.

Files under ``<run_dir>/dns/``:

    snapshot.json   what to serve; written atomically by the engine (:func:`write_snapshot`)
    resolver.pid    the daemon's pid, removed on a clean exit
    ready           JSON {pid, version, sandboxes, started}: what the daemon serves now
    resolver.log    one line per event (start, reload, bind failure, error)

``python -m netkit.dns.daemon --run-dir DIR`` runs it in the foreground.
It reloads on SIGHUP and, as a backstop, when the snapshot file changes
(checked every 2 s); SIGTERM stops it. :func:`ensure_running` starts it
detached (inside a node's netns if asked), :func:`notify` makes it reload,
both waiting until it serves the current snapshot version.

:class:`Resolver` runs the same server in a thread of the caller's process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import threading
import time

from netkit.errors import InternalError

DNS_DIR = "dns"
POLL = 2.0
WAIT = 5.0
MODULE = "netkit.dns.daemon"
log = logging.getLogger("netkit.dns")


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


def write_snapshot(run_dir: str, snapshot: dict) -> None:
    """Atomically replace ``<run_dir>/dns/snapshot.json``."""
    os.makedirs(_dir(run_dir), exist_ok=True)
    _write_atomic(_path(run_dir, "snapshot.json"), json.dumps(snapshot, separators=(",", ":")))


def load_snapshot(run_dir: str) -> dict:
    """The current snapshot; an empty one (version 0) when there is none yet."""
    snap = _read_json(_path(run_dir, "snapshot.json"))
    return snap if isinstance(snap, dict) else {"version": 0, "sandboxes": [],
                                               "networks": {}, "endpoints": []}


def _snapshot_version(run_dir: str) -> int:
    return int(load_snapshot(run_dir).get("version") or 0)


# -- the engine's side ----------------------------------------------------------------

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


def _spawn(run_dir: str, netns: str | None) -> None:
    """Double-fork a detached daemon (setsid, stdio to the log), in `netns` if given."""
    logfile = _path(run_dir, "resolver.log")
    argv = [sys.executable, "-m", MODULE, "--run-dir", os.path.abspath(run_dir)]
    env = dict(os.environ)
    pkg_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_root, env.get("PYTHONPATH")) if p)
    ns_fd = None
    if netns is not None:
        from netkit.kernel.netns import open_fd
        ns_fd = open_fd(netns)
    try:
        child = os.fork()
        if child == 0:              # first child: new session, fork again, exit
            try:
                os.setsid()
                if os.fork() != 0:
                    os._exit(0)
                if ns_fd is not None:
                    from netkit.kernel.netns import setns
                    setns(ns_fd)
                os.chdir("/")
                null = os.open(os.devnull, os.O_RDONLY)
                out = os.open(logfile, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                os.dup2(null, 0)
                os.dup2(out, 1)
                os.dup2(out, 2)
                os.execve(sys.executable, argv, env)
            finally:
                os._exit(127)
        os.waitpid(child, 0)
    finally:
        if ns_fd is not None:
            os.close(ns_fd)


def ensure_running(run_dir: str, netns: str | None = None) -> int:
    """Start the resolver for `run_dir` unless it runs; wait until it serves; its pid.

    `netns` is the node's netns name (None: the caller's netns). Raises
    InternalError when it does not come up within 5 s.
    """
    os.makedirs(_dir(run_dir), exist_ok=True)
    pid = _pid(run_dir)
    if pid is None:
        for stale in ("resolver.pid", "ready"):
            try:
                os.unlink(_path(run_dir, stale))
            except FileNotFoundError:
                pass
        _spawn(run_dir, netns)
        deadline = time.monotonic() + WAIT
        while pid is None and time.monotonic() < deadline:
            time.sleep(0.01)
            pid = _pid(run_dir)
        if pid is None:
            raise InternalError(f"dns resolver did not start: see {_path(run_dir, 'resolver.log')}")
    else:
        ready = _ready(run_dir, pid)
        if ready is None or int(ready.get("version") or 0) < _snapshot_version(run_dir):
            try:
                os.kill(pid, signal.SIGHUP)
            except ProcessLookupError:
                pass
    if not _wait_ready(run_dir, pid):
        raise InternalError(f"dns resolver (pid {pid}) did not load snapshot version "
                            f"{_snapshot_version(run_dir)}: see {_path(run_dir, 'resolver.log')}")
    return pid


def _control(run_dir: str, timeout: float = WAIT) -> int | None:
    """Ask the daemon over its control socket to reload; the version it serves, or None.

    A unix stream socket answers in well under a millisecond once the daemon
    has reloaded, where polling the ready file would cost sleep steps.
    """
    import socket
    path = _path(run_dir, "control")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(b"reload\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(64)
                if not chunk:
                    return None
                data += chunk
    except OSError:
        return None
    parts = data.split()
    return int(parts[1]) if len(parts) == 2 and parts[0] == b"ok" else None


def sync(run_dir: str, netns: str | None = None) -> int:
    """Make the resolver serve the current snapshot, starting it if needed; the version served."""
    want = _snapshot_version(run_dir)
    version = _control(run_dir)
    if version is not None and version >= want:
        return version
    ensure_running(run_dir, netns)
    return _snapshot_version(run_dir)


def notify(run_dir: str) -> bool:
    """Make the running resolver reload; True once it serves the current snapshot.

    False when no resolver runs or it did not catch up within 5 s.
    """
    pid = _pid(run_dir)
    if pid is None:
        return False
    version = _control(run_dir)
    if version is not None and version >= _snapshot_version(run_dir):
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
        try:
            os.unlink(_path(run_dir, name))
        except FileNotFoundError:
            pass


def status(run_dir: str) -> dict:
    """{pid, running, version, sandboxes, started} of the resolver for `run_dir`."""
    pid = _pid(run_dir)
    ready = _ready(run_dir, pid) if pid is not None else None
    ready = ready or {}
    return {"pid": pid, "running": pid is not None, "version": ready.get("version"),
            "sandboxes": ready.get("sandboxes", 0), "started": ready.get("started")}


# -- in-process ---------------------------------------------------------------------

class Resolver:
    """The resolver on a background thread of this process (no daemon).

        r = Resolver(snapshot).start()
        r.reload(new_snapshot)      # returns once it serves new_snapshot
        r.stop()

    Usable as a context manager. `timeout` and `max_inflight` override the
    forwarding defaults (4 s, 1024).
    """

    def __init__(self, snapshot: dict | None = None, *, timeout: float | None = None,
                 max_inflight: int | None = None) -> None:
        self._snapshot = snapshot or {"version": 0}
        self._kwargs = {"timeout": timeout, "max_inflight": max_inflight}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.server = None

    def start(self) -> "Resolver":
        from netkit.dns.server import Server
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self.server = Server(**self._kwargs)
                loop.run_until_complete(self.server.apply(self._snapshot))
            except BaseException as exc:
                failure.append(exc)
                started.set()
                loop.close()
                return
            started.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self.server.close())
                loop.run_until_complete(loop.shutdown_default_executor())
                loop.close()

        self._thread = threading.Thread(target=run, name="netkit-dns", daemon=True)
        self._thread.start()
        started.wait()
        if failure:
            raise failure[0]
        return self

    def reload(self, snapshot: dict) -> None:
        """Serve `snapshot` (sockets of unchanged sandboxes stay open)."""
        assert self._loop is not None, "Resolver not started"
        asyncio.run_coroutine_threadsafe(self.server.apply(snapshot), self._loop).result()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop = self._thread = None

    @property
    def version(self) -> int | None:
        return self.server.version if self.server else None

    def __enter__(self) -> "Resolver":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# -- the daemon -----------------------------------------------------------------------

class _Daemon:
    def __init__(self, run_dir: str) -> None:
        from netkit.dns.server import Server
        self.run_dir = run_dir
        self.server = Server()
        self.started = time.time()
        self.stamp: tuple | None = None
        self.pending = False
        self.reloading = False
        self.stopping: asyncio.Event | None = None

    def _stat(self) -> tuple | None:
        try:
            st = os.stat(_path(self.run_dir, "snapshot.json"))
            return (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            return None

    async def reload(self, why: str) -> None:
        if self.reloading:
            self.pending = True
            return
        self.reloading = True
        try:
            while True:
                self.pending = False
                self.stamp = self._stat()
                snap = load_snapshot(self.run_dir)
                if snap.get("version") != self.server.version or why == "start":
                    log.info("reload (%s) to version %s", why, snap.get("version"))
                    try:
                        await self.server.apply(snap)
                    except Exception:
                        log.exception("reload to version %s failed", snap.get("version"))
                self._write_ready()
                if not self.pending:
                    break
                why = "signal"
        finally:
            self.reloading = False

    def _write_ready(self) -> None:
        _write_atomic(_path(self.run_dir, "ready"), json.dumps({
            "pid": os.getpid(), "version": self.server.version or 0,
            "sandboxes": len(self.server.states), "started": self.started}))

    async def poll(self) -> None:
        while True:
            await asyncio.sleep(POLL)
            if self._stat() != self.stamp:
                await self.reload("poll")

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        tasks: set[asyncio.Task] = set()

        def on_hup() -> None:
            task = loop.create_task(self.reload("signal"))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        loop.add_signal_handler(signal.SIGHUP, on_hup)
        loop.add_signal_handler(signal.SIGTERM, self.stopping.set)
        loop.add_signal_handler(signal.SIGINT, self.stopping.set)
        await self.reload("start")
        control = _path(self.run_dir, "control")
        try:
            os.unlink(control)
        except FileNotFoundError:
            pass
        ctl = await asyncio.start_unix_server(self._on_control, path=control)
        poller = loop.create_task(self.poll())
        await self.stopping.wait()
        poller.cancel()
        ctl.close()
        try:
            os.unlink(control)
        except FileNotFoundError:
            pass
        await self.server.close()

    async def _on_control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """`reload` -> reload now, answer `ok <version>` once it is served."""
        try:
            while line := await reader.readline():
                if line.strip() == b"reload":
                    await self.reload("control")
                    while self.reloading:          # a reload already running: wait for it
                        await asyncio.sleep(0.001)
                    writer.write(f"ok {self.server.version or 0}\n".encode())
                    await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}",
                                     description="netkit embedded DNS resolver")
    parser.add_argument("--run-dir", required=True)
    args = parser.parse_args(argv)
    run_dir = os.path.abspath(args.run_dir)
    os.makedirs(_dir(run_dir), exist_ok=True)
    handler = logging.FileHandler(_path(run_dir, "resolver.log"))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    # a SIGHUP before the loop's handler is in place must not kill us: the
    # first load reads the snapshot anyway
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    pidfile = _path(run_dir, "resolver.pid")
    _write_atomic(pidfile, f"{os.getpid()}\n")
    log.info("start pid %d in %s", os.getpid(), run_dir)
    daemon = _Daemon(run_dir)
    try:
        asyncio.run(daemon.run())
    except Exception:
        log.exception("resolver failed")
        return 1
    finally:
        for name in ("resolver.pid", "ready"):
            path = _path(run_dir, name)
            try:
                with open(path) as f:
                    text = f.read().strip()
                owner = json.loads(text).get("pid") if name == "ready" else int(text)
                if owner == os.getpid():
                    os.unlink(path)
            except (OSError, ValueError, AttributeError):
                pass
        log.info("stop pid %d", os.getpid())
    return 0


if __name__ == "__main__":
    sys.exit(main())
