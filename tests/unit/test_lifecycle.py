"""Docker's lifecycle rules (netkit.lifecycle) and the json log files (netkit.agent.logs)."""

from __future__ import annotations

import json
import signal
from datetime import datetime, timedelta, timezone

import pytest

from netkit.agent import logs
from netkit.errors import InvalidArgument
from netkit.lifecycle import (Backoff, RestartPolicy, human_duration, parse_signal, parse_size,
                              status_text)


@pytest.mark.parametrize("text,name,retries", [
    ("", "no", 0), ("no", "no", 0), ("always", "always", 0), ("unless-stopped", "unless-stopped", 0),
    ("on-failure", "on-failure", 0), ("on-failure:3", "on-failure", 3)])
def test_restart_policy_parse(text, name, retries):
    p = RestartPolicy.parse(text)
    assert (p.name, p.max_retries) == (name, retries)
    assert RestartPolicy.from_json(p.to_json()) == p


@pytest.mark.parametrize("text,message", [
    ("sometimes", "invalid restart policy 'sometimes'"),
    ("always:3", "invalid restart policy: maximum retry count can only be used with 'on-failure'"),
    ("on-failure:x", 'invalid restart policy format: maximum retry count must be an integer: '
                     'strconv.Atoi: parsing "x": invalid syntax'),
    ("on-failure:-1", "invalid restart policy: maximum retry count cannot be negative")])
def test_restart_policy_errors(text, message):
    with pytest.raises(InvalidArgument) as exc:
        RestartPolicy.parse(text)
    assert str(exc.value) == message


def test_should_restart():
    no, always = RestartPolicy.parse("no"), RestartPolicy.parse("always")
    unless, fail3 = RestartPolicy.parse("unless-stopped"), RestartPolicy.parse("on-failure:3")
    fail = RestartPolicy.parse("on-failure")
    assert not no.should_restart(1, 0, stopped_by_user=False)
    assert always.should_restart(0, 100, stopped_by_user=False)
    assert not always.should_restart(0, 0, stopped_by_user=True)
    assert unless.should_restart(0, 0, stopped_by_user=False)
    assert not unless.should_restart(1, 0, stopped_by_user=True)
    assert fail3.should_restart(1, 2, stopped_by_user=False)
    assert not fail3.should_restart(1, 3, stopped_by_user=False)
    assert not fail3.should_restart(0, 0, stopped_by_user=False)
    assert fail.should_restart(2, 1000, stopped_by_user=False)


def test_backoff_doubles_and_resets_after_ten_seconds_up():
    b = Backoff()
    assert [b.next(0.5), b.next(0.5), b.next(1), b.next(9.9)] == [0.1, 0.2, 0.4, 0.8]
    assert b.next(10.0) == 0.1
    assert b.next(0.1) == 0.2


@pytest.mark.parametrize("seconds,text", [
    (0.2, "Less than a second"), (1, "1 second"), (59, "59 seconds"), (60, "About a minute"),
    (119, "About a minute"), (180, "3 minutes"), (3600, "About an hour"), (7200, "2 hours"),
    (3 * 86400, "3 days")])
def test_human_duration(seconds, text):
    assert human_duration(seconds) == text


def test_status_text():
    now = datetime(2026, 12, 4, 12, 0, 0, tzinfo=timezone.utc)

    def ago(s):
        return (now - timedelta(seconds=s)).isoformat().replace("+00:00", "Z")

    assert status_text("running", exit_code=None, started=ago(180), finished=None, now=now) == "Up 3 minutes"
    assert status_text("exited", exit_code=0, started=ago(9), finished=ago(2), now=now) == \
        "Exited (0) 2 seconds ago"
    assert status_text("restarting", exit_code=1, started=None, finished=ago(1), now=now) == \
        "Restarting (1) 1 second ago"
    assert status_text("created", exit_code=None, started=None, finished=None, now=now) == "Created"


def test_parse_signal_and_size():
    assert parse_signal("KILL") == parse_signal("SIGKILL") == parse_signal("9") == signal.SIGKILL
    assert parse_signal("term") == signal.SIGTERM
    assert parse_signal(None, default=signal.SIGTERM) == signal.SIGTERM
    for bad in ("NOPE", "0", "99"):
        with pytest.raises(InvalidArgument, match="Invalid signal"):
            parse_signal(bad)
    assert parse_size("10m") == 10 * 1024 * 1024
    assert parse_size("512k") == 512 * 1024
    assert parse_size("2048") == 2048
    with pytest.raises(InvalidArgument):
        parse_size("ten")


def test_log_writer_lines_streams_and_partial(tmp_path):
    w = logs.LogWriter(str(tmp_path))
    w.feed("stdout", b"hel")
    w.feed("stdout", b"lo\nwor")
    w.feed("stderr", b"oops\n")
    w.close()                                    # flushes "wor"
    entries = logs.read(str(tmp_path))
    assert [(e.stream, e.text) for e in entries] == [
        ("stdout", "hello\n"), ("stderr", "oops\n"), ("stdout", "wor")]
    raw = (tmp_path / logs.LOG_NAME).read_text().splitlines()
    assert set(json.loads(raw[0])) == {"log", "stream", "time"}
    assert [e.text for e in logs.read(str(tmp_path), tail=1)] == ["wor"]
    assert logs.read(str(tmp_path), tail=0) == []


def test_log_writer_rotates_at_max_size(tmp_path):
    w = logs.LogWriter(str(tmp_path), max_size=1000, max_files=3)
    for i in range(100):
        w.feed("stdout", f"line {i:03d}\n".encode())
    w.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [logs.LOG_NAME, logs.LOG_NAME + ".1", logs.LOG_NAME + ".2"]
    assert all(p.stat().st_size <= 1000 for p in tmp_path.iterdir())
    kept = [e.text for e in logs.read(str(tmp_path))]
    assert kept[-1] == "line 099\n"
    assert kept == sorted(kept)                  # oldest first, in order, nothing duplicated
    assert "line 000\n" not in kept              # the oldest file was dropped


def test_log_writer_cuts_long_lines(tmp_path):
    w = logs.LogWriter(str(tmp_path))
    w.feed("stdout", b"x" * (logs.MAX_LINE * 2 + 10) + b"\n")
    w.close()
    sizes = [len(e.text) for e in logs.read(str(tmp_path))]
    assert sizes == [logs.MAX_LINE, logs.MAX_LINE, 11]


def test_follow_sees_appends_and_rotation(tmp_path):
    w = logs.LogWriter(str(tmp_path), max_size=300, max_files=2)
    f = logs.follow(str(tmp_path), 0)
    w.feed("stdout", b"a\n")
    _, got = next(f)
    assert [e.text for e in got] == ["a\n"]
    for i in range(10):
        w.feed("stdout", f"b{i}\n".encode())
    _, got = next(f)
    assert got and got[-1].text == "b9\n"
    w.close()
