"""A hostile container against netkit and its neighbours (real kernel, throwaway nodes).

From inside a container (Engine.exec_output; containers run the host's binaries)
every attempt to reach netkit's state, its sockets, another container's files or
namespaces fails; what `--privileged` grants instead is shown at the end:

- default: Docker's 14 capabilities (CapBnd = CapPrm = CapEff = 0xa80425fb, CapInh
  and CapAmb 0); netkit's state and run roots and /run/netns are empty read-only
  mounts; /proc is the container's PID namespace's (no other container's or
  netkit's processes); /proc/sys, /proc/sysrq-trigger and /sys are read-only;
  the host's files are read-only, writes to /etc, /var, /root land in the
  container's own layer, /tmp, /var/tmp, /run are its own; /dev is Docker's and
  a device node made with mknod cannot be opened.
- `--privileged`: every capability (CapEff = the host's bounding set), /proc/sys
  and /sys writable, the host's /dev. netkit's directories stay covered (a fresh mount namespace
  copy), but with CAP_SYS_ADMIN the container can unmount the cover, mount
  devices, load modules: as with Docker, it is root on the node.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys

import pytest

from netkit.errors import InvalidArgument
from netkit.kernel import caps
from netkit.specs import ContainerSpec, NetworkSpec

pytestmark = pytest.mark.root

DEFAULT_HEX = "00000000a80425fb"


def _host_bnd() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1], 16) for line in f if line.startswith("CapBnd:"))


def _status(node, name: str, pid: str = "self") -> dict[str, str]:
    code, out = node.exec_output(name, ["cat", f"/proc/{pid}/status"])
    assert code == 0, out
    return dict(line.split(":\t", 1) for line in out.splitlines() if ":\t" in line)


def _caps(st: dict[str, str]) -> tuple[int, int, int, int, int]:
    return tuple(int(st[k], 16) for k in ("CapBnd", "CapPrm", "CapEff", "CapInh", "CapAmb"))  # type: ignore[return-value]


@pytest.fixture
def net(node):
    return node.create_network(NetworkSpec("hn", subnets=("10.57.0.0/24",)))


def _sh(node, name: str, script: str) -> tuple[int, str]:
    return node.exec_output(name, ["sh", "-c", script], stderr=True)


def test_capability_sets(node, net):
    bnd = _host_bnd()
    default = int(DEFAULT_HEX, 16) & bnd
    node.run(ContainerSpec(name="dd", network="hn", command=("sleep", "infinity"), detach=True))
    # the init (pid 1) and an exec process: Docker's default sets
    for pid in ("1", "self"):
        assert _caps(_status(node, "dd", pid)) == (default, default, default, 0, 0)
    node.run(ContainerSpec(name="na", network="hn", command=("sleep", "infinity"), detach=True,
                           cap_add=("net_admin",)))
    with_admin = default | 1 << 12
    assert _caps(_status(node, "na", "1")) == (with_admin, with_admin, with_admin, 0, 0)
    node.run(ContainerSpec(name="none", network="hn", command=("sleep", "infinity"), detach=True,
                           cap_drop=("ALL",)))
    assert _caps(_status(node, "none", "1")) == (0, 0, 0, 0, 0)
    node.run(ContainerSpec(name="only", network="hn", command=("sleep", "infinity"), detach=True,
                           cap_drop=("ALL",), cap_add=("CAP_NET_BIND_SERVICE",)))
    assert _caps(_status(node, "only")) == (1 << 10, 1 << 10, 1 << 10, 0, 0)
    node.run(ContainerSpec(name="pp", network="hn", command=("sleep", "infinity"), detach=True,
                           privileged=True))
    everything = caps.all_caps() & bnd
    assert _caps(_status(node, "pp", "1")) == (everything, everything, everything, 0, 0)
    # a bare sandbox (no command): exec gets the same sets and a PID namespace of its own
    node.run(ContainerSpec(name="bare", network="hn", detach=True))
    assert _caps(_status(node, "bare")) == (default, default, default, 0, 0)
    assert _status(node, "bare")["NSpid"].split()[-1] == "1"
    i = node.inspect_containers(["na", "pp"])
    assert i[0]["HostConfig"]["CapAdd"] == ["CAP_NET_ADMIN"] and i[0]["HostConfig"]["Privileged"] is False
    assert i[1]["HostConfig"]["Privileged"] is True and i[1]["HostConfig"]["CapAdd"] is None


def test_net_admin_is_what_ip_route_add_needs(node, net):
    node.run(ContainerSpec(name="dd", network="hn", detach=True, command=("sleep", "infinity")))
    code, out = _sh(node, "dd", "ip route add 10.99.0.0/24 dev eth0")
    assert code != 0 and "not permitted" in out.lower()
    node.run(ContainerSpec(name="na", network="hn", detach=True, command=("sleep", "infinity"),
                           cap_add=("NET_ADMIN",)))
    assert _sh(node, "na", "ip route add 10.99.0.0/24 dev eth0")[0] == 0
    # Docker: even with NET_ADMIN /proc/sys is read-only; --sysctl sets them
    assert _sh(node, "na", "echo 1 > /proc/sys/net/ipv4/ip_forward")[0] != 0


def test_user_and_sysctl(node, net):
    node.run(ContainerSpec(name="uu", network="hn", command=("sleep", "infinity"), detach=True,
                           user="1234:2345", sysctls={"net.ipv4.ip_forward": "1"}))
    st = _status(node, "uu", "1")
    assert st["Uid"].split() == ["1234"] * 4 and st["Gid"].split() == ["2345"] * 4
    assert st["Groups"].strip() == ""
    assert _caps(st) == (int(DEFAULT_HEX, 16) & _host_bnd(), 0, 0, 0, 0)       # Docker: non-root
    assert _sh(node, "uu", "id -u; id -g")[1].split() == ["1234", "2345"]
    assert _sh(node, "uu", "cat /proc/sys/net/ipv4/ip_forward")[1].strip() == "1"
    assert _sh(node, "uu", "echo $HOME")[1].strip() == "/"
    i = node.inspect_containers(["uu"])[0]
    assert i["Config"]["User"] == "1234:2345"
    assert i["HostConfig"]["Sysctls"] == {"net.ipv4.ip_forward": "1"}
    # the node's own forwarding setting is untouched by the container's
    node.run(ContainerSpec(name="root", network="hn", command=("sleep", "infinity"), detach=True,
                           user="root"))
    assert _status(node, "root", "1")["Uid"].split()[0] == "0"


@pytest.mark.parametrize("spec, message", [
    (ContainerSpec(cap_add=("NOPE",)), 'invalid CapAdd: unknown capability: "CAP_NOPE"'),
    (ContainerSpec(cap_drop=("cap_nope",)), 'invalid CapDrop: unknown capability: "CAP_NOPE"'),
    (ContainerSpec(sysctls={"kernel.core_pattern": "|/x"}),
     "invalid argument \"kernel.core_pattern=|/x\" for \"--sysctl\" flag: sysctl "
     "'kernel.core_pattern=|/x' is not whitelisted"),
    (ContainerSpec(sysctls={"net.ipv4/../../kernel/core_pattern": "x"}), "is not whitelisted"),
    (ContainerSpec(sysctls={"kernel.shmmax": "1"}), "is not allowed in the hosts ipc namespace"),
    (ContainerSpec(network="host", sysctls={"net.ipv4.ip_forward": "1"}),
     'sysctl "net.ipv4.ip_forward" not allowed in host network namespace'),
    (ContainerSpec(user="nosuchuser"), "unable to find user nosuchuser: no matching entries in passwd file"),
    (ContainerSpec(user="0:nosuchgroup"), "unable to find group nosuchgroup: no matching entries in group file"),
])
def test_bad_privileges_refused_nothing_made(node, spec, message):
    spec.name, spec.command = "bad", ("true",)
    with pytest.raises(InvalidArgument, match=message.replace("(", r"\(").replace("|", r"\|")
                       .replace(".", r"\.").replace("*", r"\*").replace("?", r"\?")):
        node.run(spec)
    assert node.containers(all=True) == []


def test_bad_flags_cli(cli, node, netkit_dirs):
    name = node.node.name
    for flags, message in ((["--cap-add", "bogus"], 'invalid CapAdd: unknown capability: "CAP_BOGUS"'),
                           (["--sysctl", "vm.swappiness=1"], "is not whitelisted"),
                           (["--sysctl", "noequals"], "'noequals' is not whitelisted"),
                           (["--user", "nosuchuser"], "unable to find user nosuchuser")):
        for verb in ("run", "create"):
            p = cli(verb, *flags, "true", node=name, check=False)
            assert p.returncode == 125, (flags, p.stdout, p.stderr)
            assert len(p.stderr.strip().splitlines()) == 1 and message in p.stderr, p.stderr
    assert cli("ps", "-aq", node=name).stdout.strip() == ""
    check = cli("system", "check", node=name, check=False)
    assert check.returncode == 0, check.stdout + check.stderr


def test_flags_cli(cli, node):
    """`run --cap-add/--cap-drop/--user/--sysctl` as a user types them; `inspect` shows them."""
    name = node.node.name
    node.create_network(NetworkSpec("hn", subnets=("10.57.0.0/24",)))
    p = cli("run", "--rm", "--network", "hn", "--cap-add", "net_admin", "--cap-drop", "CAP_MKNOD",
            "-u", "0:10", "--sysctl", "net.ipv4.ip_forward=1", "sh", "-c",
            "grep -E '^(CapEff|Gid)' /proc/self/status; cat /proc/sys/net/ipv4/ip_forward", node=name)
    want = (int(DEFAULT_HEX, 16) | 1 << 12) & ~(1 << 27) & _host_bnd()
    assert sorted(p.stdout.splitlines()) == ["1", f"CapEff:\t{want:016x}", "Gid:\t10\t10\t10\t10"], p.stdout
    cid = cli("create", "--privileged", "--user", "root", "sleep", "1", node=name).stdout.strip()
    fmt = "{{.HostConfig.Privileged}} {{.Config.User}}"
    assert cli("inspect", "-f", fmt, cid, node=name).stdout.split() == ["true", "root"]


def test_netkit_state_out_of_reach(node, net, netkit_dirs):
    root, run = netkit_dirs
    other, _ = node.run(ContainerSpec(name="victim", network="hn", command=("sleep", "infinity"),
                                      detach=True, env={"DB_PASSWORD": "s3cret"}))
    node.run(ContainerSpec(name="evil", network="hn", command=("sleep", "infinity"), detach=True))
    vdir = node.runtime.container_dir(other.id)
    db = node.paths.db
    agent_sock = [os.path.join(dp, f) for dp, _, fs in os.walk(node.paths.run) for f in fs
                  if stat.S_ISSOCK(os.lstat(os.path.join(dp, f)).st_mode)]
    assert agent_sock and os.path.exists(db)
    for path in (root, run, "/run/netns"):
        # an empty cover, or not there at all (below the container's own /tmp or /run)
        code, out = _sh(node, "evil", f"ls -A {path}")
        gone = "No such file" in out
        assert code == 0 and out.strip() == "" or gone, (path, out)
        code, out = _sh(node, "evil", f"touch {path}/x")
        assert code != 0 and ("read-only" in out.lower() or gone), (path, out)
    for path in (db, db + "-wal", os.path.join(vdir, "hosts"), os.path.join(vdir, "mnt"), *agent_sock):
        code, out = _sh(node, "evil", f"cat {path}; echo x >> {path}")
        assert code != 0, (path, out)
    for sock in agent_sock:          # also by python's socket module (the socket file is hidden)
        code, out = node.exec_output("evil", [sys.executable, "-c",
                                     f"import socket; socket.socket(socket.AF_UNIX).connect({sock!r})"],
                                     stderr=True)
        assert code != 0 and "No such file" in out, out
    # the host's view is unchanged
    assert os.path.exists(db) and os.listdir(run)


def test_other_containers_out_of_reach(node, net):
    victim, _ = node.run(ContainerSpec(name="victim", network="hn", command=("sleep", "infinity"),
                                       detach=True, env={"DB_PASSWORD": "s3cret"}))
    node.run(ContainerSpec(name="evil", network="hn", command=("sleep", "infinity"), detach=True))
    # its own files work (also after an in-place rewrite by netkit: a new container's name)
    assert "victim" in _sh(node, "evil", "cat /etc/hosts /etc/resolv.conf /etc/hostname; getent hosts victim")[1]
    # /proc shows the container's own processes only: no other environ, no other namespaces
    code, out = _sh(node, "evil", "ls /proc | grep -E '^[0-9]+$' | wc -l; "
                                  "cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n' | grep -c DB_PASSWORD")
    assert out.split()[1] == "0", out
    assert victim.pid and _sh(node, "evil", f"cat /proc/{victim.pid}/environ")[0] != 0
    # setns into the victim's namespaces: its files are not reachable, and without
    # CAP_SYS_ADMIN setns fails even on a namespace file the container holds
    code, out = _sh(node, "evil", f"nsenter -t {victim.pid} -n true")
    assert code != 0, out
    script = ("import ctypes, os; libc = ctypes.CDLL(None, use_errno=True); "
              "fd = os.open('/proc/self/ns/net', os.O_RDONLY); "
              "rc = libc.setns(fd, 0); print(rc, ctypes.get_errno())")
    code, out = node.exec_output("evil", [sys.executable, "-c", script])
    assert code == 0 and out.split() == ["-1", "1"], out                 # EPERM
    # the kernel's knobs Docker protects: read-only
    assert _sysfs_options(node, "evil")[0] == "ro"
    for path in ("/proc/sysrq-trigger", "/proc/sys/kernel/core_pattern", "/sys/kernel/uevent_helper"):
        code, out = _sh(node, "evil", f"echo x > {path}")
        assert code != 0, (path, out)


def _sysfs_options(node, name: str) -> list[str]:
    """The mount options of the container's /sys (the topmost mount there)."""
    code, out = node.exec_output(name, ["cat", "/proc/self/mounts"])
    return [line.split()[3] for line in out.splitlines() if line.split()[1] == "/sys"][-1].split(",")


def test_privileged_grants(node, net, netkit_dirs):
    root, _ = netkit_dirs
    node.run(ContainerSpec(name="pp", network="hn", command=("sleep", "infinity"), detach=True,
                           privileged=True))
    # writable /proc/sys (its own netns's) and /sys
    assert _sh(node, "pp", "echo 1 > /proc/sys/net/ipv4/ip_forward && cat /proc/sys/net/ipv4/ip_forward")[1].strip() == "1"
    assert _sysfs_options(node, "pp")[0] == "rw"
    # netkit's state is covered at first (below the container's own /tmp, then an empty
    # mount); CAP_SYS_ADMIN may unmount both (Docker's --privileged is root on the node):
    # shown here, in the container's own mount namespace
    assert "No such file" in _sh(node, "pp", f"ls -A {root}")[1]
    assert _sh(node, "pp", f"umount /tmp && ls -A {root}")[1].strip() == ""
    code, out = _sh(node, "pp", f"umount {root} && ls -A {root}")
    assert code == 0 and out.strip(), out
    # the host's mount table is untouched
    assert not any(line.split()[1] == root for line in open("/proc/self/mounts"))


def _mode(path: str) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_file_modes(node, net):
    node.run(ContainerSpec(name="cc", network="hn", command=("sleep", "infinity"), detach=True))
    db = node.paths.db
    for path in (db, db + "-wal", db + "-shm"):
        if os.path.exists(path):
            assert _mode(path) == 0o600, path
    # the roots and the node's state dir: 0700 (what lies below the run root is out of reach)
    for d in (node.root, node.run_root, node.paths.root):
        assert _mode(d) == 0o700, d
    for dp, _, files in os.walk(node.paths.run):
        for f in files:
            p = os.path.join(dp, f)
            if stat.S_ISSOCK(os.lstat(p).st_mode):         # connect needs write permission
                assert _mode(p) & 0o022 == 0, p


def test_symlink_and_ownership_refused(tmp_path):
    env = dict(os.environ)
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(real)
    loose = tmp_path / "loose"
    loose.mkdir()
    loose.chmod(0o777)
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, 1234, 1234)
    for rootdir, message in ((link, "is a symbolic link"), (loose, "is writable by others"),
                             (theirs, "is not owned by")):
        e = dict(env, NETKIT_ROOT=str(rootdir), NETKIT_RUN=str(tmp_path / "run"))
        p = subprocess.run([sys.executable, "-m", "netkit", "network", "ls"], env=e,
                           capture_output=True, text=True, timeout=60)
        assert p.returncode != 0 and message in p.stderr, p.stderr
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr
        assert not os.path.exists(os.path.join(rootdir, "netkit.db"))


# Docker's /dev: these and nothing else (runc's default devices and symlinks; pts, shm mounts)
DOCKER_DEV = {"core", "fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin",
              "stdout", "tty", "urandom", "zero"}


def test_host_files_out_of_reach(node, net):
    """System files are read-only; /etc, /var and /root take writes in the container's own
    layer (an overlay, as Docker's writable layer): the host's files never change."""
    node.run(ContainerSpec(name="ro", network="hn", command=("sleep", "infinity"), detach=True))
    node.run(ContainerSpec(name="other", network="hn", command=("sleep", "infinity"), detach=True))
    tag = f"netkit-ro-{os.getpid()}"
    for path in (f"/usr/bin/{tag}", f"/usr/lib/{tag}", f"/home/{tag}"):
        code, out = _sh(node, "ro", f"echo x > {path}")
        assert code != 0 and "read-only" in out.lower(), (path, out)
        assert not os.path.exists(path), path
    for script in ("rm -f /usr/bin/sh", "ln -sf /x /usr/bin/sh", "chmod 777 /usr/bin"):
        code, out = _sh(node, "ro", script)
        assert code != 0 and "read-only" in out.lower(), (script, out)
    passwd = open("/etc/passwd", "rb").read()
    for path in (f"/etc/{tag}", f"/root/{tag}", f"/var/lib/{tag}", f"/etc/frr-{tag}/frr.conf"):
        code, out = _sh(node, "ro", f"mkdir -p {os.path.dirname(path)} && echo mine > {path} && cat {path}")
        assert code == 0 and out.strip() == "mine", (path, out)
        assert not os.path.exists(path), path                              # not on the host
        assert _sh(node, "other", f"cat {path}")[0] != 0, path              # nor in another
    assert _sh(node, "ro", "echo evil:x:0:0::/:/bin/sh >> /etc/passwd && rm -f /etc/shadow")[0] == 0
    assert open("/etc/passwd", "rb").read() == passwd and os.path.exists("/usr/bin/sh")
    assert "evil" not in _sh(node, "other", "cat /etc/passwd")[1]
    # the container's own files netkit rewrites stay its own (and writable, as in Docker)
    assert _sh(node, "ro", "echo 10.9.9.9 extra >> /etc/hosts && grep -c extra /etc/hosts")[1].strip() == "1"
    # a layered directory holding netkit's state shows it covered again
    code, out = _sh(node, "ro", f"ls -A {node.root} 2>&1; mount | grep -c overlay")
    assert out.split()[-1] == "3" and ("No such file" in out or len(out.split()) == 1), out


def test_scratch_is_private(node, net):
    node.run(ContainerSpec(name="s1", network="hn", command=("sleep", "infinity"), detach=True))
    node.run(ContainerSpec(name="s2", network="hn", command=("sleep", "infinity"), detach=True))
    tag = f"netkit-scratch-{os.getpid()}"
    for d in ("/tmp", "/var/tmp", "/run", "/var/run", "/dev/shm"):
        code, out = _sh(node, "s1", f"echo mine > {d}/{tag} && cat {d}/{tag}")
        assert code == 0 and out.strip() == "mine", (d, out)
        assert not os.path.exists(f"{d}/{tag}"), d                         # not on the host
        assert _sh(node, "s2", f"cat {d}/{tag}")[0] != 0, d                 # nor in another
    # its scratch is its own: nosuid, nodev (a restart keeps it, as Docker's writable layer)
    opts = {line.split()[1]: line.split()[3].split(",") for line in
            _sh(node, "s1", "cat /proc/self/mounts")[1].splitlines()}
    for d in ("/tmp", "/var/tmp", "/run", "/dev", "/dev/shm"):
        assert {"nosuid", "nodev"} <= set(opts[d]), (d, opts[d])
    node.restart("s1", timeout=0)
    assert _sh(node, "s1", f"cat /tmp/{tag}")[1].strip() == "mine"


def test_devices(node, net):
    node.run(ContainerSpec(name="dv", network="hn", command=("sleep", "infinity"), detach=True))
    code, out = _sh(node, "dv", "ls -A /dev")
    assert code == 0 and set(out.split()) == DOCKER_DEV, out
    code, out = _sh(node, "dv", "echo x > /dev/null && head -c 4 /dev/zero | wc -c && "
                                "head -c 4 /dev/urandom | wc -c && readlink /dev/ptmx /dev/fd")
    assert code == 0 and out.split() == ["4", "4", "pts/ptmx", "/proc/self/fd"], out
    # a device node made with MKNOD (Docker's default caps) cannot be opened: the host's root
    # disk, wherever the container can write
    dev = os.stat("/").st_dev
    mm = f"{os.major(dev)} {os.minor(dev)}"
    for path in ("/tmp/disk", "/dev/shm/disk", "/run/disk", "/etc/disk", "/var/lib/disk"):
        code, out = _sh(node, "dv", f"mknod {path} b {mm} && head -c 1 {path} | wc -c")
        assert "Permission denied" in out and out.split()[-1] == "0", (path, out)
    code, out = _sh(node, "dv", f"mknod /dev/disk b {mm}")
    assert code != 0 and "read-only" in out.lower(), out
    # a devpts instance of its own: the first pty is /dev/pts/0 whatever the host has open
    script = "import os; m, s = os.openpty(); print(os.ttyname(s))"
    code, out = node.exec_output("dv", [sys.executable, "-c", script], stderr=True)
    assert code == 0 and out.strip() == "/dev/pts/0", out
    # --privileged: the host's /dev (as in Docker), its own pts and shm still
    node.run(ContainerSpec(name="pd", network="hn", command=("sleep", "infinity"), detach=True,
                           privileged=True))
    extra = sorted(set(os.listdir("/dev")) - DOCKER_DEV)
    assert extra
    code, out = _sh(node, "pd", "ls -A /dev")
    assert code == 0 and set(extra) <= set(out.split()), out
    code, out = node.exec_output("pd", [sys.executable, "-c", script], stderr=True)
    assert code == 0 and out.strip() == "/dev/pts/0", out
    tag = f"netkit-shm-{os.getpid()}"
    assert _sh(node, "pd", f"echo x > /dev/shm/{tag}")[0] == 0 and not os.path.exists(f"/dev/shm/{tag}")


def test_state_below_a_layered_directory_stays_hidden(tmp_path):
    """netkit's default state root is /var/lib/netkit: /var's overlay shows the host's
    directory itself, so the cover is made again on top of it."""
    from netkit.kernel import mntns
    run = str(tmp_path / "run")
    state = f"/var/lib/netkit-hidden-test-{os.getpid()}"
    os.makedirs(state, mode=0o700)
    open(os.path.join(state, "secret"), "w").close()
    template, path = os.path.join(run, "tpl"), os.path.join(run, "c1", "mnt")
    os.makedirs(os.path.dirname(path))
    try:
        mntns.ensure_template(template, detach=[run], hide=[state, run])
        mntns.create(path, template=template)
        p = subprocess.run(["nsenter", f"--mount={path}", "sh", "-c",
                            f"ls -A {state}; touch /var/lib/x-{os.getpid()} && echo wrote"],
                           capture_output=True, text=True, timeout=30)
        assert p.stdout.split() == ["wrote"], p.stdout + p.stderr
        assert not os.path.exists(f"/var/lib/x-{os.getpid()}")
        assert os.listdir(os.path.join(run, "c1", "layer", "var", "upper", "lib")) == [f"x-{os.getpid()}"]
    finally:
        mntns.remove(path)
        mntns.remove(template)
        mntns.release_mount_point(run)
        subprocess.run(["rm", "-rf", state], check=False)
