"""Where a container's UTS and mount namespace files live; a failed mount namespace.

They are bound in the node run dir's `ns/` directory, a private mount point
of its own: the mount that holds the containers' files (their hosts files,
their layers) keeps no child per container, so cloning those files for the
next container does not scan every earlier one's namespace files. Those of
an older netkit (in the container's run dir) keep working.
"""

from __future__ import annotations

import os

import pytest

from netkit.errors import KernelError
from netkit.kernel.session import FaultPlan
from netkit.kernel import mntns
from netkit.kernel import netns as kns
from netkit.paths import NodePaths
from netkit.specs import ContainerSpec, NetworkSpec
from tests.kernel.helpers import container_mounts, mounts_under

pytestmark = pytest.mark.root


def _ns_mounts(node) -> list[tuple[str, str]]:
    return mounts_under(node.paths.ns_dir)


def test_namespace_files_are_off_the_mount_of_the_containers_files(node):
    node.create_network(NetworkSpec("n1"))
    ids = [node.run(ContainerSpec(name=f"c{i}", network="n1", detach=True,
                                  command=("sleep", "infinity")))[0].id for i in range(3)]
    run = os.path.realpath(node.paths.run)
    # nothing mounted below the containers' run dirs: one mount holds them all, childless
    assert mounts_under(node.paths.containers_dir) == []
    ns_dir = os.path.realpath(node.paths.ns_dir)
    assert ns_dir in [m for m, _ in mounts_under(run)]                 # a mount point of its own
    assert sorted(m for m, _ in _ns_mounts(node) if m != ns_dir) == sorted(
        os.path.join(ns_dir, f"{cid}.{kind}") for cid in ids for kind in ("mnt", "uts"))
    assert all(node.paths.ns_file(cid, "mnt") == os.path.join(node.paths.ns_dir, f"{cid}.mnt")
               for cid in ids)
    assert node.exec_output("c1", ["hostname"])[1].strip() == node.container("c1").hostname
    # a container sees none of them
    code = node.exec("c0", ["sh", "-c", f"grep -q ' {ns_dir}' /proc/self/mountinfo"])
    assert code == 1
    for cid in ids:
        node.remove_container(cid, force=True)
    assert [m for m, _ in _ns_mounts(node)] == [ns_dir]
    assert os.listdir(node.paths.ns_dir) == []
    assert node.system_check() == []


def test_ns_file_falls_back_to_where_an_older_netkit_bound_it(tmp_path):
    paths = NodePaths(str(tmp_path / "state"), str(tmp_path / "run"))
    new = paths.ns_file("abc", "uts")
    assert new == os.path.join(paths.run, "ns", "abc.uts")
    os.makedirs(paths.container_dir("abc"))
    open(os.path.join(paths.container_dir("abc"), "uts"), "w").close()
    old = paths.ns_file("abc", "uts")
    assert old == os.path.join(paths.container_dir("abc"), "uts")
    assert paths.ns_file("abc", "mnt") == os.path.join(paths.run, "ns", "abc.mnt")
    os.makedirs(paths.ns_dir)
    open(new, "w").close()                      # both: the new one wins
    assert paths.ns_file("abc", "uts") == new
    assert paths.container_ids() == {"abc"}


def _move_to_old_layout(node, cid: str) -> None:
    """Put a container's namespace files where an older netkit bound them."""
    for kind in ("uts", "mnt"):
        new = os.path.join(node.paths.ns_dir, f"{cid}.{kind}")
        old = os.path.join(node.paths.container_dir(cid), kind)
        open(old, "w").close()
        kns.mount(new, old, None, kns.MS_BIND)
        kns.remove_bind(new)
    assert node.paths.ns_file(cid, "mnt").startswith(node.paths.container_dir(cid))


def test_containers_of_the_old_layout_keep_working(node):
    node.create_network(NetworkSpec("n1"))
    c, _ = node.run(ContainerSpec(name="old", network="n1", detach=True,
                                  command=("sleep", "infinity"), hostname="oldhost"))
    node.stop("old", timeout=0)
    _move_to_old_layout(node, c.id)
    assert node.system_check() == []
    node.start("old")
    assert node.exec_output("old", ["hostname"])[1].strip() == "oldhost"
    assert node.exec_output("old", ["cat", "/etc/hostname"])[1].strip() == "oldhost"
    assert node.exec("old", ["test", "-w", "/etc"]) == 0                 # its own layer
    node.remove_container("old", force=True)
    assert mounts_under(node.paths.containers_dir) == []
    assert not os.path.exists(node.paths.container_dir(c.id))
    # and what system reset finds of one (a run dir, its namespace files bound in it)
    c2, _ = node.run(ContainerSpec(name="old2", network="n1", detach=True))
    _move_to_old_layout(node, c2.id)
    node.system_reset()
    assert mounts_under(node.paths.containers_dir) == []
    assert container_mounts(node) == []


def test_a_mount_namespace_failure_fails_the_run(node, monkeypatch):
    """Its failure fails the action, and nothing is left behind."""
    node.create_network(NetworkSpec("n1"))
    node.run(ContainerSpec(name="first", network="n1", detach=True))   # the template exists
    before = container_mounts(node)
    real = mntns.rootfs.layers

    def broken(directory: str):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(mntns.rootfs, "layers", broken)
    with pytest.raises(KernelError, match="create mount namespace .*No space left on device"):
        node.run(ContainerSpec(name="c1", network="n1", detach=True, command=("sleep", "60")))
    monkeypatch.setattr(mntns.rootfs, "layers", real)
    assert [c.name for c in node.containers(all=True)] == ["first"]
    assert container_mounts(node) == before
    assert sorted(os.listdir(node.paths.ns_dir)) == sorted(
        f"{node.container('first').id}.{k}" for k in ("mnt", "uts"))
    assert node.system_check() == []
    # a failure of the action itself (joining a network) after the namespace was made:
    # the undo removes it
    node.faults = FaultPlan(3)                  # netns, mount namespace, then the veth
    with pytest.raises(KernelError, match="injected fault at kernel call 3") as info:
        node.run(ContainerSpec(name="c2", network="n1", detach=True, command=("sleep", "60")))
    node.faults = None
    assert "mount namespace" not in str(info.value) and "netns" not in str(info.value)
    assert [c.name for c in node.containers(all=True)] == ["first"]
    assert container_mounts(node) == before
    assert node.system_check() == []
