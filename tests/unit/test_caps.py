"""Docker's privilege rules (netkit/kernel/caps.py, pure half) and the directory checks
(netkit/secure.py)."""

from __future__ import annotations

import os
import stat

import pytest

from netkit import secure
from netkit.errors import Forbidden, InvalidArgument
from netkit.kernel import caps
from netkit.specs import ContainerSpec, check_privileges

DEFAULT = 0xA80425FB


def test_default_is_dockers_list():
    assert caps.capability_mask() == DEFAULT
    assert caps.cap_names(DEFAULT) == [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
        "CAP_SETUID", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SYS_CHROOT",
        "CAP_MKNOD", "CAP_AUDIT_WRITE", "CAP_SETFCAP"]


def test_add_drop_all_privileged():
    assert caps.capability_mask(("net_admin",)) == DEFAULT | 1 << 12
    assert caps.capability_mask(("CAP_NET_ADMIN",), ("Mknod", "cap_net_raw")) == \
        (DEFAULT | 1 << 12) & ~(1 << 27 | 1 << 13)
    assert caps.capability_mask(cap_drop=("ALL",)) == 0
    assert caps.capability_mask(("NET_BIND_SERVICE",), ("all",)) == 1 << 10
    assert caps.capability_mask(("ALL",), ("SYS_ADMIN",)) == caps.all_caps() & ~(1 << 21)
    assert caps.capability_mask(("NET_ADMIN",), ("ALL",), privileged=True) == caps.all_caps()
    assert caps.all_caps() == (1 << (caps.last_cap() + 1)) - 1


@pytest.mark.parametrize("add, drop, message", [
    (("FOO",), (), 'invalid CapAdd: unknown capability: "CAP_FOO"'),
    (("CAP_",), (), 'invalid CapAdd: unknown capability: "CAP_"'),
    ((), ("cap_bar",), 'invalid CapDrop: unknown capability: "CAP_BAR"'),
])
def test_unknown_capability(add, drop, message):
    with pytest.raises(InvalidArgument) as exc:
        caps.capability_mask(add, drop)
    assert str(exc.value) == message


def test_sysctls():
    assert caps.parse_sysctls(["net.ipv4.ip_forward=1", "net.core.somaxconn=1024"]) == \
        {"net.ipv4.ip_forward": "1", "net.core.somaxconn": "1024"}
    caps.check_sysctls({"net.ipv4.ip_forward": "1", "net.ipv6.conf.all.forwarding": "1"}, "bridge")
    for bad, message in (({"vm.swappiness": "1"}, "sysctl 'vm.swappiness=1' is not whitelisted"),
                         ({"net./../../kernel": "x"}, "is not whitelisted"),
                         ({"net..x": "x"}, "is not whitelisted"),
                         ({"kernel.sem": "1"}, 'sysctl "kernel.sem" is not allowed in the hosts ipc namespace'),
                         ({"fs.mqueue.msg_max": "1"}, "hosts ipc namespace")):
        with pytest.raises(InvalidArgument, match=message.replace(".", r"\.")):
            caps.check_sysctls(bad, "bridge")
    with pytest.raises(InvalidArgument, match="not allowed in host network namespace"):
        caps.check_sysctls({"net.ipv4.ip_forward": "1"}, "host")
    with pytest.raises(InvalidArgument, match="'novalue' is not whitelisted"):
        caps.parse_sysctls(["novalue"])


def test_users():
    assert caps.resolve_user(None) is None
    root = caps.resolve_user("root")
    assert (root.uid, root.gid, root.home) == (0, 0, "/root")
    assert caps.resolve_user("0") == root
    u = caps.resolve_user("4321:98")
    assert (u.uid, u.gid, u.groups, u.home) == (4321, 98, (), "/")
    assert caps.resolve_user("root:5").gid == 5
    with pytest.raises(InvalidArgument, match="^unable to find user nosuch: no matching entries in passwd file$"):
        caps.resolve_user("nosuch")
    with pytest.raises(InvalidArgument, match="^unable to find group nogrp: no matching entries in group file$"):
        caps.resolve_user("0:nogrp")


def test_spec_privileges_stored_only_when_given():
    assert ContainerSpec().privileges() == {}
    spec = ContainerSpec(cap_add=("NET_ADMIN",), user="1", sysctls={"net.ipv4.ip_forward": "1"})
    assert spec.privileges() == {"cap_add": ["NET_ADMIN"], "user": "1",
                                 "sysctls": {"net.ipv4.ip_forward": "1"}}
    check_privileges(spec)
    with pytest.raises(InvalidArgument):
        check_privileges(ContainerSpec(network="host", sysctls={"net.ipv4.ip_forward": "1"}))


def test_private_dirs_and_files(tmp_path):
    made = secure.private_dir(str(tmp_path / "a" / "b"))
    assert stat.S_IMODE(os.stat(tmp_path / "a").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(made).st_mode) == 0o700
    db = os.path.join(made, "netkit.db")
    secure.private_db(db)
    assert stat.S_IMODE(os.stat(db).st_mode) == 0o600
    os.chmod(db, 0o644)
    open(db + "-wal", "w").close()
    os.chmod(db + "-wal", 0o644)
    secure.private_db(db)
    assert stat.S_IMODE(os.stat(db).st_mode) == stat.S_IMODE(os.stat(db + "-wal").st_mode) == 0o600
    os.symlink("/etc/passwd", db + "-shm")
    with pytest.raises(Forbidden, match="symbolic link"):
        secure.private_db(db)
    loose = tmp_path / "loose"
    loose.mkdir()
    loose.chmod(0o757)
    with pytest.raises(Forbidden, match="writable by others"):
        secure.check_dir(str(loose))
    link = tmp_path / "link"
    link.symlink_to(made)
    with pytest.raises(Forbidden, match="is a symbolic link"):
        secure.private_dir(str(link))
    secure.check_dir(str(tmp_path / "missing"))          # created later, by private_dir
    old = tmp_path / "old"
    old.mkdir(mode=0o755)
    old.chmod(0o755)
    secure.private_dir(str(old))                          # an older netkit's 0755: tightened
    assert stat.S_IMODE(os.stat(old).st_mode) == 0o700
