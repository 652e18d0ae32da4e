"""What `service create/ls/ps/inspect` parse and show (pure: netkit/services/display.py and
the progress lines of netkit/cli/service.py)."""

from __future__ import annotations

import pytest

from netkit.cli.service import _bar, _progress_lines
from netkit.errors import InvalidArgument
from netkit.services import display
from netkit.services.model import FileRef, PortConfig, Service, ServiceSpec, Task
from netkit.services.reconcile import iso, spec_key


@pytest.mark.parametrize("text,want", [
    ("8080:80", PortConfig(8080, 80)), ("53:53/udp", PortConfig(53, 53, "udp")),
    ("mode=host,8080:80", PortConfig(8080, 80, mode="host")),
    ("published=8080,target=80,protocol=udp,mode=host", PortConfig(8080, 80, "udp", "host")),
])
def test_publish_forms(text, want):
    assert display.parse_publish(text) == want


@pytest.mark.parametrize("text", ["8080", "a:b", "mode=bridge,1:2", "published=1,target=2,x=3"])
def test_bad_publish(text):
    with pytest.raises(InvalidArgument, match='for "-p, --publish" flag'):
        display.parse_publish(text)


def test_durations_and_files():
    assert display.parse_duration("1m30s", "--update-delay") == 90.0
    assert display.parse_duration("500ms", "--update-delay") == 0.5
    assert display.parse_duration("0", "--update-delay") == 0.0
    with pytest.raises(InvalidArgument, match='time: invalid duration "5"'):
        display.parse_duration("5", "--update-delay")
    assert [display.go_duration(s) for s in (0, 0.5, 5, 90, 3600)] == \
        ["0s", "500ms", "5s", "1m30s", "1h0m0s"]
    assert display.parse_file_ref("pw", "--secret", True) == FileRef("pw", "pw")
    assert display.parse_file_ref("source=pw,target=db_pw,mode=0400", "--secret", True) == \
        FileRef("pw", "db_pw", 0o400)
    assert display.parse_file_ref("cfg", "--config", False).target == "/cfg"


def test_rows_and_progress():
    spec = ServiceSpec("web", ("sleep", "1"), replicas=3, ports=(PortConfig(8080, 80),))
    svc = Service("s" * 25, spec)
    now = iso(1_800_000_000.0)
    ts = [Task(f"t{i}" + "x" * 23, svc.id, "web", i, node=f"n{i}", spec=spec, state=st,
               created=now, since=now) for i, st in ((1, "running"), (2, "starting"))]
    old = Task("o" * 25, svc.id, "web", 1, node="n3", spec=spec, state="failed",
               desired="shutdown", error="task: non-zero exit (1) and a long explanation",
               created=iso(1_700_000_000.0), since=now)
    row = display.service_row(svc, ts)
    assert (row["ID"], row["Replicas"], row["Ports"], row["Command"]) == \
        ("s" * 12, "1/3", "*:8080->80/tcp", "sleep 1")
    order = display.ordered_tasks([old, *ts])
    assert [(t.id[:2], h) for t, h in order] == [("t1", False), ("oo", True), ("t2", False)]
    hist = display.task_row(old, True)
    assert hist["Name"] == " \\_ web.1" and hist["DesiredState"] == "Shutdown"
    assert hist["Error"] == '"task: non-zero exit (1) and a…"'
    assert hist["CurrentState"].startswith("Failed ") and hist["CurrentState"].endswith(" ago")
    lines, done = _progress_lines(svc, ts, spec_key)
    assert not done and lines == [
        "overall progress: 1 out of 3 tasks ",
        f"1/3: running   {_bar('running')} ",
        f"2/3: starting  {_bar('starting')} ",
        f"3/3: new       {_bar('new')} "]
    assert _bar("running") == "[" + "=" * 50 + ">]"


def test_inspect_json():
    spec = ServiceSpec("web", ("sleep", "1"), mode="global", networks=("n" * 64,),
                       constraints=("node.role==worker",))
    svc = Service("s" * 25, spec, 2, previous=spec, vips={"n" * 64: "10.0.9.2/24"},
                  update_status={"state": "completed", "started": "a", "completed": "b",
                                 "message": "update completed"})
    doc = display.inspect_json(svc)
    assert doc["Spec"]["Mode"] == {"Global": {}}
    assert doc["Spec"]["TaskTemplate"]["Placement"] == {"Constraints": ["node.role==worker"]}
    assert doc["Spec"]["UpdateConfig"]["Monitor"] == 5_000_000_000
    assert doc["Endpoint"]["VirtualIPs"] == [{"NetworkID": "n" * 64, "Addr": "10.0.9.2/24"}]
    assert doc["UpdateStatus"] == {"State": "completed", "StartedAt": "a", "CompletedAt": "b",
                                   "Message": "update completed"}
    text = display.pretty(svc, {"n" * 64: "app"})
    assert "Service Mode:\tGlobal" in text and "Networks: app" in text



def test_update_bad_args_is_one_line_error():
    """A malformed --args is Docker's one-line flag error, before any store is opened."""
    from click.testing import CliRunner

    from netkit.cli.main import cli
    result = CliRunner().invoke(cli, ["service", "update", "--args", 'a "b', "web"],
                                prog_name="netkit")
    assert (result.exit_code, result.output) == \
        (1, 'Error: invalid argument "a "b" for "--args" flag: No closing quotation\n')
