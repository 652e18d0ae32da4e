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

import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterator

LOG_NAME = "log.json"
MAX_LINE = 16 * 1024
DEFAULT_MAX_SIZE = 10 * 1024 * 1024
DEFAULT_MAX_FILES = 2


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
