"""The runtime's kernel primitives: a mount namespace per container made once from the
node's template (mntns.py), a PID namespace per start, exec, signals and exit codes
(spawn.py). Namespaces are made by the tests with unique names and removed afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import pytest

from netkit.errors import AlreadyExists, KernelError, NotFound
from netkit.kernel import mntns, spawn
from netkit.kernel import netns as ns
from netkit.kernel.errors import ExecFailed, NotRunning
from netkit.kernel.session import FaultPlan, KernelSession
from tests.conftest import unique

pytestmark = pytest.mark.root

ETC = ("hosts", "resolv.conf", "hostname")


class Runtime:
    """A run dir with the template, containers made on it, inits started; all undone by close()."""

    def __init__(self, run: str) -> None:
        self.run = run
        self.template = os.path.join(run, "mnt.template")
        self.boxes: list[spawn.Sandbox] = []
        self.inits: list[tuple[int, int]] = []
        mntns.ensure_template(self.template, detach=[run])

    def container(self, hostname: str = "ctr", files: dict[str, str] | None = None) -> spawn.Sandbox:
        name = unique("nkt")
        d = os.path.join(self.run, name)
        os.makedirs(d)
        text = {"hosts": f"127.0.0.1\tlocalhost\n10.9.8.7\t{hostname}\n",
                "resolv.conf": "nameserver 10.9.8.1\n", "hostname": f"{hostname}\n", **(files or {})}
        for f in ETC:
            with open(os.path.join(d, f), "w") as fh:
                fh.write(text[f])
        box = spawn.Sandbox(netns=name, uts=os.path.join(d, "uts"), mntns=os.path.join(d, "mnt"))
        ns.create_netns(name, lo_up=True, uts=(box.uts, hostname))
        self.boxes.append(box)
        mntns.create(box.mntns, template=self.template, netns=name,
                     binds=[(os.path.join(d, f), f"/etc/{f}") for f in ETC])
        return box

    def start(self, box: spawn.Sandbox, argv: list[str], **kw) -> tuple[int, int]:
        pid, start = spawn.start_init(box, argv, **kw)
        self.inits.append((pid, start))
        return pid, start

    def remove(self, box: spawn.Sandbox) -> None:
        self.boxes.remove(box)
        mntns.remove(box.mntns)
        ns.remove_bind(box.uts)
        ns.delete_netns(box.netns)

    def close(self) -> None:
        errors = []
        for pid, start in self.inits:
            spawn.signal_init(pid, start, signal.SIGKILL)
            try:
                spawn.reap(pid)
            except ChildProcessError:
                pass
        for step in [lambda b=b: self.remove(b) for b in list(self.boxes)] + [
                lambda: mntns.remove(self.template), lambda: mntns.release_mount_point(self.run)]:
            try:
                step()
            except Exception as exc:        # keep going: leave nothing behind
                errors.append(exc)
        assert not errors, errors


@pytest.fixture
def subreaper():
    """The test process is a child subreaper for the test only."""
    was = spawn.is_subreaper()
    spawn.become_subreaper()
    yield
    spawn.become_subreaper(was)


@pytest.fixture
def rt(tmp_path, subreaper):
    run = str(tmp_path / "run")
    os.makedirs(run)
    runtime = Runtime(run)
    yield runtime
    runtime.close()
    assert not [m for m in mntns.mounts() if m.mountpoint.startswith(run)]


@pytest.fixture
def outsiders():
    """Processes a test starts outside any container; killed afterwards."""
    procs: list[subprocess.Popen] = []
    yield procs
    for p in procs:
        p.kill()
        p.wait()


def wait_for(cond, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := cond():
            return value
        time.sleep(0.01)
    raise AssertionError("timed out")


def ns_inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def members(init: int) -> set[int]:
    """Host pids in the PID namespace of init (scan of /proc: fine in a test)."""
    target = ns_inode(f"/proc/{init}/ns/pid")
    return {int(p) for p in os.listdir("/proc") if p.isdigit() and ns_inode(f"/proc/{p}/ns/pid") == target}


def out_of(box, init, argv) -> str:
    out: list[bytes] = []
    code = spawn.exec_in(box, *init, argv, capture=out, capture_stderr=True)
    assert code == 0, b"".join(out)
    return b"".join(out).decode()


def our_zombies() -> set[int]:
    out = set()
    for p in filter(str.isdigit, os.listdir("/proc")):
        st = spawn.proc_stat(int(p))
        try:
            with open(f"/proc/{p}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if st and st[0] == "Z" and ppid == os.getpid():
            out.add(int(p))
    return out


def mountinfo_lines(pid: int) -> int:
    with open(f"/proc/{pid}/mountinfo") as f:
        return len(f.readlines())


def test_init_is_pid_1_and_sees_only_its_processes(rt):
    box = rt.container()
    init = rt.start(box, ["sleep", "1000"])
    with open(f"/proc/{init[0]}/stat") as f:
        assert int(f.read().rsplit(")", 1)[1].split()[1]) == os.getpid()   # re-parented to us
    assert sorted(os.listdir(f"/proc/{init[0]}/fd")) == ["0", "1", "2"]
    ps = out_of(box, init, ["ps", "-e", "-o", "pid=,comm="]).split("\n")
    assert [line.split() for line in ps if line] == [["1", "sleep"], ["2", "ps"]]
    sh, *listed = out_of(box, init, ["sh", "-c", "echo $$; ls /proc"]).split()
    pids = sorted(int(p) for p in listed if p.isdigit())
    assert len(pids) == 3 and pids[:2] == [1, int(sh)]            # init, sh, ls
    assert members(init[0]) == {init[0]}


def test_exec_joins_the_pid_namespace_and_dies_with_it(rt):
    box = rt.container()
    init = rt.start(box, ["sleep", "1000"])
    result: list[int] = []
    t = threading.Thread(target=lambda: result.append(spawn.exec_in(box, *init, ["sleep", "1000"])))
    t.start()
    inside = wait_for(lambda: (m := members(init[0]) - {init[0]}) and m)
    assert out_of(box, init, ["ps", "-o", "pid=,comm=", "-p", "1,2"]).split() == ["1", "sleep", "2", "sleep"]
    assert spawn.signal_init(*init, signal.SIGKILL)
    t.join(10)
    assert result == [137]
    assert spawn.reap(init[0]) == 137
    assert not any(os.path.exists(f"/proc/{p}") for p in inside)
    with pytest.raises(NotRunning):
        spawn.exec_in(box, *init, ["true"])
    assert not spawn.signal_init(*init, signal.SIGKILL)


def test_sigkill_of_the_init_spares_a_process_that_entered_the_netns(rt, outsiders):
    box = rt.container()
    init = rt.start(box, ["sleep", "1000"])
    out_of(box, init, ["sh", "-c", "sleep 1000 >/dev/null 2>&1 &"])
    netns_path = ns.netns_path(box.netns)
    outsiders.append(subprocess.Popen(["nsenter", f"--net={netns_path}", "sleep", "1000"]))
    fd = os.open(netns_path, os.O_RDONLY)
    try:
        outsiders.append(subprocess.Popen(["sleep", "1000"], preexec_fn=lambda: ns.setns(fd)))
    finally:
        os.close(fd)
    target = ns_inode(netns_path)
    for p in outsiders:
        wait_for(lambda: ns_inode(f"/proc/{p.pid}/ns/net") == target and
                 open(f"/proc/{p.pid}/comm").read() == "sleep\n")
    own = members(init[0])
    assert len(own) == 2 and not own & {p.pid for p in outsiders}
    assert spawn.signal_init(*init, signal.SIGKILL)
    assert spawn.reap(init[0]) == 137
    wait_for(lambda: not any(os.path.exists(f"/proc/{p}") for p in own))
    assert all(p.poll() is None for p in outsiders)


def test_exit_codes_and_exec_errors(rt):
    box = rt.container()
    noexec = "/etc/passwd"              # a host file the container reads (its /tmp is its own)
    # pid 1 ignores signals it has no handler for, even SIGKILL from inside (as in Docker)
    for argv, code in ((["true"], 0), (["sh", "-c", "exit 3"], 3), (["sh", "-c", "kill -9 $$; exit 4"], 4)):
        pid, _ = rt.start(box, argv)
        assert spawn.reap(pid) == code
    init = rt.start(box, ["sleep", "1000"])
    assert spawn.signal_init(*init, signal.SIGTERM)         # no handler: dropped, as `docker stop` knows
    time.sleep(0.1)
    assert spawn.pid_alive(*init)
    assert spawn.signal_init(*init, signal.SIGKILL) and spawn.reap(init[0]) == 137
    cases = ((["no-such-cmd"], 127, 'exec: "no-such-cmd": executable file not found in $PATH'),
             (["/no/such"], 127, 'exec: "/no/such": stat /no/such: no such file or directory'),
             ([str(noexec)], 126, f'exec: "{noexec}": permission denied'),
             (["/etc"], 126, 'exec: "/etc": permission denied'))
    zombies = our_zombies()
    for argv, code, message in cases:
        with pytest.raises(ExecFailed) as err:
            rt.start(box, argv)
        assert (err.value.exit_code, str(err.value)) == (code, message)
    assert our_zombies() <= zombies                 # failed inits (and helpers) were reaped
    init = rt.start(box, ["sleep", "1000"])
    assert spawn.exec_in(box, *init, ["sh", "-c", "exit 3"]) == 3
    assert spawn.exec_in(box, *init, ["sleep", "10"], timeout=0.2) == 137
    for argv, code, message in cases:
        with pytest.raises(ExecFailed) as err:
            spawn.exec_in(box, *init, argv)
        assert (err.value.exit_code, str(err.value)) == (code, message)
    assert members(init[0]) == {init[0]}
    # the start time guards against a reused pid
    with pytest.raises(NotRunning):
        spawn.exec_in(box, init[0], init[1] + 1, ["true"])
    assert not spawn.signal_init(init[0], init[1] + 1, signal.SIGKILL)
    assert spawn.pid_alive(*init)


def test_etc_files_hostname_and_sys_inside(rt, tmp_path):
    box = rt.container("web1")
    log = tmp_path / "log"
    fd = os.open(log, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        init = rt.start(box, ["sh", "-c", "cat /etc/hosts /etc/resolv.conf /etc/hostname; hostname; "
                                          "ls /sys/class/net; exec sleep 1000"], stdout=fd)
    finally:
        os.close(fd)
    expect = "127.0.0.1\tlocalhost\n10.9.8.7\tweb1\nnameserver 10.9.8.1\nweb1\nweb1\nlo\n"
    wait_for(lambda: log.read_text() == expect)
    assert out_of(box, init, ["sh", "-c", "cat /etc/hosts /etc/resolv.conf /etc/hostname; hostname; "
                                          "ls /sys/class/net"]) == expect
    # the files are the container's: a change in place shows inside
    with open(os.path.join(rt.run, box.netns, "hosts"), "a") as f:
        f.write("10.9.8.9\tother\n")
    assert "10.9.8.9\tother" in out_of(box, init, ["cat", "/etc/hosts"])
    # the host's own files are untouched
    with open("/etc/hostname") as f:
        assert f.read().strip() != "web1"


def test_mountinfo_stays_flat_as_other_containers_come_and_go(rt):
    a = rt.container()
    init = rt.start(a, ["sleep", "1000"])
    base = mountinfo_lines(init[0])

    def ours() -> int:          # other test sessions may mount and unmount meanwhile: count ours
        return sum(1 for m in mntns.mounts() if m.mountpoint.startswith(rt.run)
                   or any(b.netns and m.mountpoint.endswith("/" + b.netns) for b in rt.boxes))

    host = ours()
    others = [rt.container() for _ in range(4)]
    started = [rt.start(b, ["sleep", "1000"]) for b in others]
    assert ours() >= host + 4 * 3          # the host holds netns, uts, mnt of each
    assert mountinfo_lines(init[0]) == base
    assert [mountinfo_lines(p) for p, _ in started] == [base] * 4
    for box, (pid, start) in zip(others[:2], started[:2]):
        spawn.signal_init(pid, start, signal.SIGKILL)
        spawn.reap(pid)
        rt.remove(box)
    assert mountinfo_lines(init[0]) == base


def test_later_netns_mounts_do_not_appear_inside(rt):
    box = rt.container()
    init = rt.start(box, ["sleep", "1000"])
    later = unique("nkt")
    ns.create_netns(later)
    try:
        with open(f"/proc/{init[0]}/mountinfo") as f:
            table = f.read()
        assert later not in table and "nsfs" not in table
        # the container's own /run: no /run/netns at all
        assert out_of(box, init, ["sh", "-c", "ls -A /run/netns 2>/dev/null; true"]) == ""
    finally:
        ns.delete_netns(later)


def test_template_holds_no_namespace_files(rt):
    mntns.ensure_template(rt.template, detach=[rt.run])     # again: nothing to do
    assert mntns.is_mntns(rt.template)
    assert [m.mountpoint for m in mntns.mounts() if m.mountpoint.startswith(rt.run)].count(rt.template) == 1
    out: list[bytes] = []
    assert spawn.run_foreground(spawn.Sandbox(netns=None, mntns=rt.template),
                                ["cat", "/proc/self/mountinfo"], capture=out) == 0
    table = b"".join(out)
    assert table and b"nsfs" not in table and rt.run.encode() not in table


def test_run_foreground_joins_the_mount_namespace(rt):
    box = rt.container("fg1")
    out: list[bytes] = []
    assert spawn.run_foreground(box, ["cat", "/etc/hostname"], capture=out) == 0
    assert out == [b"fg1\n"]


def test_host_mode_init_gets_its_own_pid_namespace(subreaper):
    box = spawn.Sandbox(netns=None)
    pid, start = spawn.start_init(box, ["sleep", "1000"])
    try:
        out = out_of(box, (pid, start), ["ps", "-e", "-o", "pid=,comm="])
        assert [line.split() for line in out.splitlines()] == [["1", "sleep"], ["2", "ps"]]
        assert ns_inode(f"/proc/{pid}/ns/net") == ns_inode("/proc/self/ns/net")
    finally:
        spawn.signal_init(pid, start, signal.SIGKILL)
        assert spawn.reap(pid) == 137


def test_create_failures_leave_nothing(rt, tmp_path):
    box = rt.container()
    d = os.path.dirname(box.mntns)
    path = os.path.join(d, "mnt2")
    with pytest.raises(NotFound):
        mntns.create(path, template=os.path.join(rt.run, "nope"))
    with pytest.raises(NotFound):
        mntns.create(path, template=rt.template, netns=unique("nkt"))
    with pytest.raises(KernelError, match="(?i)no such file"):
        mntns.create(path, template=rt.template, binds=[(str(tmp_path / "nope"), "/etc/hosts")])
    # fails inside the new namespace: a file cannot go over a directory
    with pytest.raises(KernelError, match="/etc"):
        mntns.create(path, template=rt.template, netns=box.netns,
                     binds=[(os.path.join(d, "hosts"), "/etc/hosts"), (os.path.join(d, "hosts"), "/etc")])
    with pytest.raises(AlreadyExists):
        mntns.create(box.mntns, template=rt.template)
    assert not os.path.exists(path)
    assert not [m for m in mntns.mounts() if m.mountpoint == path]
    # through an action's kernel session: the Nth call fails, or the undo is journaled
    with pytest.raises(KernelError, match="injected fault"):
        KernelSession(None, faults=FaultPlan(1)).create_mntns(path, template=rt.template, netns=None)
    assert not os.path.exists(path)
    session = KernelSession(None)
    session.create_mntns(path, template=rt.template, netns=box.netns)
    assert mntns.is_mntns(path)
    assert session.journal.rollback() == []
    assert not os.path.exists(path) and not [m for m in mntns.mounts() if m.mountpoint == path]


def test_private_mount_point_keeps_what_is_below(tmp_path):
    top = str(tmp_path / "top")
    uts = os.path.join(top, "sub", "uts")
    os.makedirs(os.path.dirname(uts))
    ns.create_uts(uts, "h1")
    try:
        mntns.private_mount_point(top)
        mntns.private_mount_point(top)                      # idempotent
        points = [m.mountpoint for m in mntns.mounts()]
        assert points.count(top) == 1 and points.count(uts) == 1    # the hidden original is gone
        fd = os.open(uts, os.O_RDONLY)
        os.close(fd)
        ns.remove_bind(uts)
        assert uts not in [m.mountpoint for m in mntns.mounts()]
    finally:
        ns.remove_bind(uts)
        mntns.release_mount_point(top)
    assert not [m for m in mntns.mounts() if m.mountpoint.startswith(top)]


def test_mntns_files_need_a_private_mount_point(tmp_path, outsiders):
    """As on a systemd host: the parent mount is shared and another namespace receives it."""
    base = str(tmp_path / "shared")
    os.makedirs(base)
    ns.mount("tmpfs", base, "tmpfs", 0, "size=64k")
    try:
        ns.mount("", base, None, ns.MS_SHARED)
        outsiders.append(subprocess.Popen(["unshare", "--mount", "--propagation", "slave", "sleep", "1000"]))
        pid = outsiders[0].pid
        wait_for(lambda: ns_inode(f"/proc/{pid}/ns/mnt") not in (None, ns_inode("/proc/self/ns/mnt"))
                 and open(f"/proc/{pid}/comm").read() == "sleep\n")
        run = os.path.join(base, "run")
        tpl = os.path.join(run, "mnt.template")
        loose = os.path.join(base, "loose")
        os.makedirs(loose)
        mntns.ensure_template(tpl, detach=[run])            # makes run a private mount point
        try:
            with pytest.raises(KernelError, match="propagates to other namespaces"):
                mntns.create(os.path.join(loose, "mnt"), template=tpl)
            assert not os.path.exists(os.path.join(loose, "mnt"))
            mntns.create(os.path.join(run, "mnt"), template=tpl)
            assert mntns.is_mntns(os.path.join(run, "mnt"))
            mntns.remove(os.path.join(run, "mnt"))
        finally:
            mntns.remove(tpl)
            mntns.release_mount_point(run)
    finally:
        ns.umount(base)
