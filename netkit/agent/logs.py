"""Container logs in Docker's json-file format, with a size cap.

The agent drains each container's stdout and stderr pipes and appends one
JSON object per line to ``<container dir>/log.json``::

    {"log": "hello\\n", "stream": "stdout", "time": "2026-12-04T17:00:00.123456Z"}

When the file passes ``max_size`` bytes it is rotated (``log.json`` ->
``log.json.1`` -> ... up to ``max_files - 1`` old files, the oldest dropped),
as Docker's json-file driver does with ``--log-opt max-size/max-file``.
A line longer than 16 KiB is cut into 16 KiB pieces, as Docker's are.
:func:`read` is the reading side (``netkit logs``): oldest first, ``tail``.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterator

LOG_NAME = "log.json"
MAX_LINE = 16 * 1024
DEFAULT_MAX_SIZE = 10 * 1024 * 1024
DEFAULT_MAX_FILES = 2
STREAMS = ("stdout", "stderr")
F_SETPIPE_SZ = 1031
PIPE_SIZE = 1024 * 1024       # what a container may write while no agent reads


def now_text() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class LogEntry:
    stream: str          # "stdout" or "stderr"
    text: str            # the line, with its newline when it had one
    time: str            # RFC 3339


class LogWriter:
    """One container's log file; `feed` takes raw bytes of one stream."""

    def __init__(self, directory: str, *, max_size: int = DEFAULT_MAX_SIZE,
                 max_files: int = DEFAULT_MAX_FILES) -> None:
        self.path = os.path.join(directory, LOG_NAME)
        self.max_size = max(max_size, 1)
        self.max_files = max(max_files, 1)
        self._partial: dict[str, bytes] = {"stdout": b"", "stderr": b""}
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        self._size = os.fstat(self._fd).st_size

    def feed(self, stream: str, data: bytes) -> None:
        buf = self._partial[stream] + data
        lines = []
        while True:
            nl = buf.find(b"\n")
            if nl < 0 or nl >= MAX_LINE:
                if len(buf) >= MAX_LINE:
                    lines.append(buf[:MAX_LINE])
                    buf = buf[MAX_LINE:]
                    continue
                break
            lines.append(buf[:nl + 1])
            buf = buf[nl + 1:]
        self._partial[stream] = buf
        if lines:
            self._write(stream, lines)

    def flush(self) -> None:
        """Write what is left of unterminated lines (the process ended)."""
        for stream, buf in self._partial.items():
            if buf:
                self._partial[stream] = b""
                self._write(stream, [buf])

    def _write(self, stream: str, lines: list[bytes]) -> None:
        stamp = now_text()
        batch: list[bytes] = []
        size = 0
        for line in lines:
            entry = (json.dumps({"log": line.decode(errors="replace"), "stream": stream,
                                 "time": stamp}, ensure_ascii=False) + "\n").encode()
            if self._size + size + len(entry) > self.max_size and (self._size or size):
                self._flush(batch)
                batch, size = [], 0
                self._rotate()
            batch.append(entry)
            size += len(entry)
        self._flush(batch)

    def _flush(self, batch: list[bytes]) -> None:
        if batch:
            blob = b"".join(batch)
            os.write(self._fd, blob)
            self._size += len(blob)

    def _rotate(self) -> None:
        os.close(self._fd)
        if self.max_files == 1:
            os.truncate(self.path, 0)
        else:
            for i in range(self.max_files - 1, 0, -1):
                src = self.path if i == 1 else f"{self.path}.{i - 1}"
                if os.path.exists(src):
                    os.replace(src, f"{self.path}.{i}")
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        self._size = 0

    def close(self) -> None:
        self.flush()
        os.close(self._fd)


class Output:
    """A container's stdout and stderr: FIFOs in its run dir, the agent's read ends, and
    the log they go to.

    The container gets each FIFO opened read-write, so it never has a pipe without a
    reader (no SIGPIPE while the agent is away: it blocks once PIPE_SIZE is buffered);
    an agent that comes back opens the read ends again (`reopen`).
    """

    def __init__(self, writer: LogWriter, ends: dict[int, str]) -> None:
        self.writer = writer
        self.ends = ends                      # our read fd -> stream

    @classmethod
    def make(cls, directory: str, writer: LogWriter) -> tuple["Output", list[int]]:
        """New ends, and the container's (its stdout and stderr fds, for the caller to close)."""
        ours: dict[int, str] = {}
        theirs: list[int] = []
        try:
            for stream in STREAMS:
                path = os.path.join(directory, f"{stream}.fifo")
                if not os.path.exists(path):
                    os.mkfifo(path, 0o600)
                ours[os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)] = stream
                w = os.open(path, os.O_RDWR | os.O_CLOEXEC)
                theirs.append(w)
                try:
                    fcntl.fcntl(w, F_SETPIPE_SZ, PIPE_SIZE)
                except OSError:
                    pass
        except OSError:
            for fd in [*ours, *theirs]:
                os.close(fd)
            writer.close()
            raise
        return cls(writer, ours), theirs

    @classmethod
    def reopen(cls, directory: str, writer: LogWriter) -> "Output":
        """The read ends of a running container's FIFOs (after an agent restart)."""
        ours: dict[int, str] = {}
        for stream in STREAMS:
            path = os.path.join(directory, f"{stream}.fifo")
            try:
                if stat.S_ISFIFO(os.stat(path).st_mode):
                    ours[os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)] = stream
            except OSError:
                pass
        return cls(writer, ours)

    def pump(self, fd: int) -> None:
        """`fd` is readable: log what is there."""
        try:
            data = os.read(fd, 65536)
        except OSError:
            return
        if data:
            self.writer.feed(self.ends[fd], data)

    def close(self) -> None:
        """The process ended: log what is left, close everything."""
        for fd, stream in self.ends.items():
            while True:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    break
                if not data:
                    break
                self.writer.feed(stream, data)
            os.close(fd)
        self.ends.clear()
        self.writer.close()


def files(directory: str) -> list[str]:
    """The log files of a container, oldest first."""
    base = os.path.join(directory, LOG_NAME)
    rotated = []
    i = 1
    while os.path.exists(f"{base}.{i}"):
        rotated.append(f"{base}.{i}")
        i += 1
    return list(reversed(rotated)) + ([base] if os.path.exists(base) else [])


def parse(line: str) -> LogEntry | None:
    try:
        obj = json.loads(line)
        return LogEntry(obj["stream"], obj["log"], obj["time"])
    except (ValueError, KeyError, TypeError):
        return None


def read(directory: str, tail: int | None = None) -> list[LogEntry]:
    """Every entry of the container's logs, oldest first; the last `tail` with `tail`."""
    out: list[LogEntry] = []
    for path in files(directory):
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                out.extend(e for e in map(parse, f) if e is not None)
        except FileNotFoundError:
            continue
    if tail is not None:
        out = out[-tail:] if tail > 0 else []
    return out


def follow(directory: str, start: int) -> Iterator[tuple[int, list[LogEntry]]]:
    """From byte `start` of the current log file: (new offset, new entries) each time asked.

    A rotation (the file got shorter) starts again at 0 of the new file.
    """
    path = os.path.join(directory, LOG_NAME)
    offset = start
    rest = b""
    while True:
        entries: list[LogEntry] = []
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size < offset:
                    offset, rest = 0, b""
                f.seek(offset)
                data = f.read()
        except FileNotFoundError:
            data = b""
        offset += len(data)
        data = rest + data
        *whole, rest = data.split(b"\n")
        for line in whole:
            e = parse(line.decode(errors="replace"))
            if e is not None:
                entries.append(e)
        yield offset, entries


def size_of(directory: str) -> int:
    try:
        return os.stat(os.path.join(directory, LOG_NAME)).st_size
    except FileNotFoundError:
        return 0
