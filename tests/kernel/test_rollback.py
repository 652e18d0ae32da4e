"""Every failure point of an action leaves the kernel and the store as they were."""

from __future__ import annotations

import pytest

from netkit.errors import KernelError, NetkitError
from netkit.kernel.session import FaultPlan
from netkit.specs import ContainerSpec, NetworkSpec
from tests.kernel.helpers import count_kernel_calls, snapshot

pytestmark = pytest.mark.root




def test_every_failure_point_of_run(node):
    node.create_network(NetworkSpec("n1", ipv6=True))
    node.create_network(NetworkSpec("n2"))
    from netkit.specs import EndpointSpec
    spec = lambda: ContainerSpec(name="c1", network="n1", extra_networks=(EndpointSpec("n2"),),
                                 detach=True)
    calls = count_kernel_calls(node, lambda: node.run(spec()))
    node.remove_container("c1", force=True)
    assert calls >= 10
    before = snapshot(node)
    for n in range(1, calls + 1):
        node.faults = FaultPlan(fail_at=n)
        with pytest.raises(KernelError, match=f"injected fault at kernel call {n}"):
            node.run(spec())
        node.faults = None
        assert snapshot(node) == before, f"kernel call {n} left something behind"


def test_every_failure_point_of_network_create(node):
    calls = count_kernel_calls(node, lambda: node.create_network(NetworkSpec("n1", ipv6=True)))
    node.remove_network("n1")
    before = snapshot(node)
    for n in range(1, calls + 1):
        node.faults = FaultPlan(fail_at=n)
        with pytest.raises(NetkitError):
            node.create_network(NetworkSpec("n1", ipv6=True))
        node.faults = None
        assert snapshot(node) == before, f"kernel call {n} left something behind"


def test_every_failure_point_of_connect(node):
    node.create_network(NetworkSpec("n1"))
    node.create_network(NetworkSpec("n2"))
    node.run(ContainerSpec(name="c1", network="n1", detach=True))
    calls = count_kernel_calls(node, lambda: node.connect("n2", "c1", aliases=("a",)))
    node.disconnect("n2", "c1")
    before = snapshot(node)
    for n in range(1, calls + 1):
        node.faults = FaultPlan(fail_at=n)
        with pytest.raises(NetkitError):
            node.connect("n2", "c1", aliases=("a",))
        node.faults = None
        assert snapshot(node) == before, f"kernel call {n} left something behind"
