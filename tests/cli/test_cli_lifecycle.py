"""The lifecycle commands against a fake Engine: create, start, stop, restart, kill, wait,
logs, rename, the run/create lifecycle flags, ps STATUS, and docker's exit codes (125 for
netkit's own failures in run/create/start/exec)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from netkit.agent.logs import LogEntry
from netkit.errors import AlreadyExists, Conflict, InvalidArgument, NetkitError, NotFound
from netkit.model import Container, State
from netkit.specs import ContainerSpec
from tests.cli.helpers import error_line, ok


def only_call(fake, name: str):
    [(args, kwargs)] = fake.called(name)
    return args, kwargs


# -- create ----------------------------------------------------------------------------------

def test_create_prints_the_id_and_runs_nothing(nk, fake):
    r = ok(nk("create", "--name", "web", "--network", "n1", "sleep", "100", "--rm", "-d"))
    assert r.stdout == "d" * 64 + "\n" and r.stderr == ""
    (spec,), kw = only_call(fake, "create_container")
    assert kw == {} and fake.called("run") == []
    assert spec == ContainerSpec(name="web", network="n1", command=("sleep", "100", "--rm", "-d"))


def test_create_takes_runs_options(nk, fake):
    ok(nk("create", "--rm", "--name", "web", "--net", "n1", "--network", "n2", "--network-alias", "www",
          "--ip", "172.18.0.9", "-h", "webhost", "--dns", "1.1.1.1", "--link", "db", "-p", "8080:80",
          "-P", "--expose", "81", "-e", "A=1", "-l", "k=v", "true"))
    (spec,), _ = only_call(fake, "create_container")
    assert (spec.name, spec.network, spec.extra_networks[0].network, spec.aliases, spec.ipv4,
            spec.hostname, spec.dns, spec.links, spec.publish, spec.publish_all, spec.expose,
            spec.env, spec.labels, spec.auto_remove, spec.detach, spec.command) == (
        "web", "n1", "n2", ("www",), "172.18.0.9", "webhost", ("1.1.1.1",), ("db",), ("8080:80",),
        True, ("81",), {"A": "1"}, {"k": "v"}, True, False, ("true",))


def test_create_without_a_command(nk, fake):
    ok(nk("create", "--name", "box"))
    (spec,), _ = only_call(fake, "create_container")
    assert spec.command == () and spec.network == "bridge"


def test_create_has_no_detach_flag(nk, fake):
    r = nk("create", "-d", "true")
    assert r.exit_code == 125 and "No such option '-d'" in r.stderr
    assert fake.called("create_container") == []


@pytest.mark.parametrize("cmd", ["run", "create"])
def test_lifecycle_flags_reach_the_spec(nk, fake, cmd):
    ok(nk(cmd, "-d" if cmd == "run" else "--name=x", "--restart", "on-failure:3", "--stop-signal", "SIGUSR1",
          "--stop-timeout", "5", "--log-driver", "json-file", "--log-opt", "max-size=1m",
          "--log-opt", "max-file=3", "sleep", "9"))
    (spec,), _ = only_call(fake, "run" if cmd == "run" else "create_container")
    assert (spec.restart, spec.stop_signal, spec.stop_timeout, spec.log_opts, spec.command) == (
        "on-failure:3", "SIGUSR1", 5, {"max-size": "1m", "max-file": "3"}, ("sleep", "9"))


@pytest.mark.parametrize("cmd", ["run", "create"])
def test_lifecycle_flag_defaults(nk, fake, cmd):
    ok(nk(cmd, "true"))
    (spec,), _ = only_call(fake, "run" if cmd == "run" else "create_container")
    assert (spec.restart, spec.stop_signal, spec.stop_timeout, spec.log_opts) == ("no", None, None, {})


@pytest.mark.parametrize("policy", ["no", "always", "unless-stopped", "on-failure", "on-failure:0", ""])
def test_restart_policies_accepted(nk, fake, policy):
    ok(nk("run", "-d", "--restart", policy, "true"))
    (spec,), _ = only_call(fake, "run")
    assert spec.restart == (policy or "no")


@pytest.mark.parametrize("cmd", ["run", "create"])
@pytest.mark.parametrize("args, message", [
    (["--restart", "sometimes"], "Error: invalid restart policy 'sometimes'"),
    (["--restart", "always:3"],
     "Error: invalid restart policy: maximum retry count can only be used with 'on-failure'"),
    (["--restart", "on-failure:x"], 'Error: invalid restart policy format: maximum retry count must be '
                                    'an integer: strconv.Atoi: parsing "x": invalid syntax'),
    (["--rm", "--restart", "always"], "Error: conflicting options: cannot specify both --restart and --rm"),
    (["--rm", "--restart", "on-failure:2"],
     "Error: conflicting options: cannot specify both --restart and --rm"),
    (["--log-driver", "syslog"], "Error: logger: no log driver named 'syslog' is registered"),
    (["--log-driver", "none"], "Error: logger: no log driver named 'none' is registered"),
    (["--log-opt", "max-size"], 'Error: invalid argument "max-size" for "--log-opt" flag: expected key=value'),
    (["--network", "alias=a"], "Error: network name must be specified"),
])
def test_bad_flag_values_exit_125(nk, fake, cmd, args, message):
    assert error_line(nk(cmd, *args, "true"), 125) == message
    assert fake.calls == []


def test_rm_with_restart_no_is_fine(nk, fake):
    ok(nk("run", "--rm", "--restart", "no", "true"))
    assert run_spec(fake).auto_remove


@pytest.mark.parametrize("cmd", ["run", "create"])
def test_bad_stop_timeout_is_a_usage_error_125(nk, fake, cmd):
    r = nk(cmd, "--stop-timeout", "soon", "true")
    assert r.exit_code == 125 and "'soon' is not a valid integer" in r.stderr
    assert fake.calls == []


@pytest.mark.parametrize("cmd", ["run", "create"])
def test_engine_errors_exit_125(nk, fake, cmd):
    conflict = ('Conflict. The container name "/web" is already in use by container "abc". '
                'You have to remove (or rename) that container to be able to reuse that name.')
    fake.raises["run" if cmd == "run" else "create_container"] = AlreadyExists(conflict)
    assert error_line(nk(cmd, "--name", "web", "true"), 125) == "Error: " + conflict


def run_spec(fake) -> ContainerSpec:
    (spec,), _ = only_call(fake, "run")
    return spec


# -- exit codes: 125 for run/create/start/exec only ------------------------------------------

@pytest.mark.parametrize("args", [["run", "true"], ["create", "true"], ["start", "c1"],
                                  ["start", "-a", "c1"], ["exec", "c1", "true"]])
def test_runtime_commands_exit_125_on_any_netkit_error(nk, fake, args):
    class Odd(NetkitError):
        exit_code = 3
    method = {"run": "run", "create": "create_container", "start": "start", "exec": "exec"}[args[0]]
    fake.raises[method] = Odd("odd")
    r = nk(*args)
    assert r.exit_code == 125 and "Traceback" not in r.output
    assert r.stderr.splitlines() == (["Error: odd", "Error: failed to start containers: c1"]
                                     if args == ["start", "c1"] else ["Error: odd"])


@pytest.mark.parametrize("args", [["run", "--bogus", "true"], ["create", "--bogus"], ["start", "--bogus", "c"],
                                  ["start"], ["exec", "--bogus", "c", "true"], ["exec", "c"]])
def test_runtime_commands_usage_errors_exit_125(nk, fake, args):
    r = nk(*args)
    assert r.exit_code == 125 and r.stderr.startswith("Usage: netkit ")
    assert fake.calls == []


@pytest.mark.parametrize("args", [["stop"], ["kill", "--bogus", "c"], ["logs"], ["wait"],
                                  ["rename", "a"], ["restart", "-t", "x", "c"], ["ps", "--bogus"],
                                  ["nosuchcommand"]])
def test_other_usage_errors_keep_exit_2(nk, fake, args):
    assert nk(*args).exit_code == 2
    assert fake.calls == []


def test_runtime_commands_keep_the_commands_own_code(nk, fake):
    for code in (1, 2, 125, 126, 127):
        fake.results["exec"] = code
        assert nk("exec", "c1", "x").exit_code == code
        c = Container(id="d" * 64, name="c1", hostname="h", state=State.EXITED, exit_code=code)
        fake.results["run"] = (c, code)
        assert nk("run", "x").exit_code == code


def test_permission_error_in_run_exits_125(nk, fake):
    fake.raises["run"] = PermissionError(13, "Permission denied", "/var/lib/netkit")
    assert error_line(nk("run", "true"), 125) == \
        "Error: permission denied: /var/lib/netkit (netkit needs root)"
    fake.raises["stop"] = PermissionError(13, "Permission denied", "/var/lib/netkit")
    assert error_line(nk("stop", "c1"), 1).startswith("Error: permission denied")


def test_interrupt_and_debug_unchanged_for_runtime_commands(nk, fake):
    fake.raises["run"] = KeyboardInterrupt()
    assert nk("run", "sleep", "9").exit_code == 130
    fake.raises["run"] = NotFound("network n1 not found")
    r = nk("run", "true", env={"NETKIT_DEBUG": "1"})
    assert isinstance(r.exception, NotFound)


# -- start --------------------------------------------------------------------------------------

def test_start_prints_each_ref_as_given(nk, fake):
    r = ok(nk("start", "web", "abc123", "db"))
    assert r.stdout == "web\nabc123\ndb\n" and r.stderr == ""
    assert fake.called("start") == [(("web",), {"attach": False}), (("abc123",), {"attach": False}),
                                    (("db",), {"attach": False})]


def test_start_keeps_going_and_exits_125(nk, fake):
    fake.raises["start"] = {"ghost": NotFound("No such container: ghost"),
                            "bad": InvalidArgument("network n9 not found")}
    r = nk("start", "ghost", "web", "bad", "db")
    assert r.exit_code == 125 and "Traceback" not in r.output
    assert r.stdout == "web\ndb\n"
    assert r.stderr.splitlines() == ["Error: No such container: ghost", "Error: network n9 not found",
                                     "Error: failed to start containers: ghost, bad"]


def test_start_attach_exits_with_the_containers_code(nk, fake):
    fake.results["start"] = (Container(id="d" * 64, name="web", hostname="h"), 3)
    r = nk("start", "-a", "web")
    assert r.exit_code == 3 and r.output == ""
    assert fake.called("start") == [(("web",), {"attach": True})]
    fake.results["start"] = (Container(id="d" * 64, name="web", hostname="h"), 0)
    assert ok(nk("start", "--attach", "web")).output == ""


def test_start_attach_only_one_container(nk, fake):
    assert error_line(nk("start", "-a", "a", "b"), 125) == \
        "Error: you cannot start and attach multiple containers at once"
    assert fake.called("start") == []


# -- stop / restart / kill -------------------------------------------------------------------------

@pytest.mark.parametrize("cmd", ["stop", "restart"])
def test_stop_and_restart(nk, fake, cmd):
    assert ok(nk(cmd, "web", "db")).stdout == "web\ndb\n"
    ok(nk(cmd, "-t", "5", "web"))
    ok(nk(cmd, "--time", "0", "web"))
    ok(nk(cmd, "--timeout", "30", "web"))
    assert fake.called(cmd) == [(("web",), {"timeout": None}), (("db",), {"timeout": None}),
                                (("web",), {"timeout": 5}), (("web",), {"timeout": 0}),
                                (("web",), {"timeout": 30})]


@pytest.mark.parametrize("cmd", ["stop", "restart"])
def test_stop_and_restart_keep_going_and_exit_1(nk, fake, cmd):
    fake.raises[cmd] = {"ghost": NotFound("No such container: ghost")}
    r = nk(cmd, "ghost", "web")
    assert r.exit_code == 1 and r.stdout == "web\n" and r.stderr == "Error: No such container: ghost\n"


def test_kill_default_signal_and_flag(nk, fake):
    assert ok(nk("kill", "web", "db")).stdout == "web\ndb\n"
    ok(nk("kill", "-s", "HUP", "web"))
    ok(nk("kill", "--signal", "15", "web"))
    assert fake.called("kill") == [(("web",), {"signal": "KILL"}), (("db",), {"signal": "KILL"}),
                                   (("web",), {"signal": "HUP"}), (("web",), {"signal": "15"})]


def test_kill_errors(nk, fake):
    fake.raises["kill"] = {"db": Conflict("cannot kill container: db: container abc is not running")}
    r = nk("kill", "web", "db", "x")
    assert r.exit_code == 1 and r.stdout == "web\nx\n"
    assert r.stderr == "Error: cannot kill container: db: container abc is not running\n"
    fake.raises["kill"] = InvalidArgument("Invalid signal: NOPE")
    assert error_line(nk("kill", "-s", "NOPE", "web")) == "Error: Invalid signal: NOPE"


# -- wait ------------------------------------------------------------------------------------------

def test_wait_prints_each_exit_code(nk, fake):
    fake.results["wait"] = 137
    assert ok(nk("wait", "a", "b")).stdout == "137\n137\n"
    assert fake.called("wait") == [(("a",), {}), (("b",), {})]
    fake.results["wait"] = None                        # the fake's default: 0
    assert ok(nk("wait", "a")).stdout == "0\n"


def test_wait_keeps_going_and_exits_1(nk, fake):
    fake.raises["wait"] = {"ghost": NotFound("No such container: ghost")}
    r = nk("wait", "ghost", "a")
    assert r.exit_code == 1 and r.stdout == "0\n" and r.stderr == "Error: No such container: ghost\n"


# -- logs ------------------------------------------------------------------------------------------

ENTRIES = [LogEntry("stdout", "hello\n", "2026-12-04T17:00:00.123456Z"),
           LogEntry("stderr", "oops\n", "2026-12-04T17:00:01Z"),
           LogEntry("stdout", "no newline", "2026-12-04T17:00:02.5Z")]


def test_logs_split_streams(nk, fake):
    fake.results["logs"] = ENTRIES
    r = ok(nk("logs", "web"))
    assert r.stdout == "hello\nno newline" and r.stderr == "oops\n"
    assert fake.called("logs") == [(("web",), {"tail": None})] and fake.called("follow_logs") == []


def test_logs_timestamps(nk, fake):
    fake.results["logs"] = ENTRIES
    r = ok(nk("logs", "-t", "web"))
    assert r.stdout == ("2026-12-04T17:00:00.123456000Z hello\n"
                        "2026-12-04T17:00:02.500000000Z no newline")
    assert r.stderr == "2026-12-04T17:00:01.000000000Z oops\n"
    assert ok(nk("logs", "--timestamps", "web")).stdout == r.stdout


@pytest.mark.parametrize("args, tail", [([], None), (["-n", "5"], 5), (["--tail", "0"], 0),
                                        (["--tail", "all"], None), (["-n", "-1"], None),
                                        (["--tail", "lots"], None), (["--tail=12"], 12)])
def test_logs_tail(nk, fake, args, tail):
    ok(nk("logs", *args, "web"))
    assert fake.called("logs") == [(("web",), {"tail": tail})]


def test_logs_follow(nk, fake):
    fake.results["follow_logs"] = ENTRIES[:2]
    r = ok(nk("logs", "-f", "-n", "1", "web"))
    assert r.stdout == "hello\n" and r.stderr == "oops\n"
    assert fake.called("follow_logs") == [(("web",), {"tail": 1})] and fake.called("logs") == []
    ok(nk("logs", "--follow", "web"))
    assert fake.called("follow_logs")[1] == (("web",), {"tail": None})


def test_logs_follow_interrupted_exits_130(nk, fake):
    def entries():
        yield ENTRIES[0]
        raise KeyboardInterrupt
    fake.results["follow_logs"] = entries()
    r = nk("logs", "-f", "web")
    assert r.exit_code == 130 and r.stdout == "hello\n"


def test_logs_errors(nk, fake):
    fake.raises["logs"] = NotFound("No such container: ghost")
    assert error_line(nk("logs", "ghost")) == "Error: No such container: ghost"
    assert nk("logs", "a", "b").exit_code == 2                     # exactly one container


def test_nano_time():
    from netkit.cli.lifecycle import nano_time
    assert nano_time("2026-12-04T17:00:00.123456Z") == "2026-12-04T17:00:00.123456000Z"
    assert nano_time("2026-12-04T17:00:00.1234567891Z") == "2026-12-04T17:00:00.123456789Z"
    assert nano_time("2026-12-04T17:00:00+02:00") == "2026-12-04T17:00:00.000000000+02:00"
    assert nano_time("not a time") == "not a time"


# -- rename ----------------------------------------------------------------------------------------

def test_rename_prints_nothing(nk, fake):
    r = ok(nk("rename", "old", "new"))
    assert r.output == ""
    assert fake.called("rename") == [(("old", "new"), {})]


def test_rename_error_is_docker_worded(nk, fake):
    fake.raises["rename"] = AlreadyExists('Error when allocating new name: Conflict. The container name '
                                          '"/new" is already in use by container "abc".')
    assert error_line(nk("rename", "old", "new")) == (
        'Error: failed to rename container: Error when allocating new name: Conflict. The container '
        'name "/new" is already in use by container "abc".')

    class Odd(NotFound):
        exit_code = 4
    fake.raises["rename"] = Odd("No such container: old")
    assert error_line(nk("rename", "old", "new"), 4) == \
        "Error: failed to rename container: No such container: old"


# -- ps -a with every state ------------------------------------------------------------------------

def _ago(**kw) -> str:
    return (datetime.now(timezone.utc) - timedelta(**kw)).isoformat().replace("+00:00", "Z")


def test_ps_all_states(nk, fake):
    fake.results["containers"] = [
        Container(id="1" * 64, name="up", hostname="h", command=("sleep", "9"), state=State.RUNNING,
                  started_at=_ago(minutes=3, seconds=5), network_mode="none"),
        Container(id="2" * 64, name="new", hostname="h", command=("true",), network_mode="none"),
        Container(id="3" * 64, name="flappy", hostname="h", command=("false",), state=State.RESTARTING,
                  exit_code=1, started_at=_ago(hours=1), finished_at=_ago(minutes=10, seconds=5),
                  restart_count=4, network_mode="none"),
        Container(id="4" * 64, name="done", hostname="h", command=("true",), state=State.EXITED,
                  exit_code=0, started_at=_ago(hours=3), finished_at=_ago(hours=2, minutes=1),
                  network_mode="none"),
        Container(id="5" * 64, name="killed", hostname="h", command=("sleep", "9"), state=State.EXITED,
                  exit_code=137, network_mode="none"),
    ]
    assert ok(nk("ps", "-a")).stdout.splitlines() == [
        "CONTAINER ID   NAME      COMMAND     STATUS                          PORTS     NETWORKS",
        '111111111111   up        "sleep 9"   Up 3 minutes                              none',
        '222222222222   new       "true"      Created                                   none',
        '333333333333   flappy    "false"     Restarting (1) 10 minutes ago             none',
        '444444444444   done      "true"      Exited (0) 2 hours ago                    none',
        '555555555555   killed    "sleep 9"   Exited (137)                              none',
    ]
    assert ok(nk("ps", "-a", "--format", "{{.Name}} {{.State}}")).stdout.splitlines() == [
        "up running", "new created", "flappy restarting", "done exited", "killed exited"]
