"""netkit's own drivers pass the driver conformance kit (netkit.testing.conformance);
acme-netkit's third-party `acmebridge` does in tests/kernel/test_third_party_driver.py.
overlay runs on the kit's one-node swarm (`swarm = True`)."""

from __future__ import annotations

import pytest

from netkit.testing.conformance import DriverConformance

pytestmark = pytest.mark.root


class TestBridge(DriverConformance):
    driver = "bridge"


class TestMacvlan(DriverConformance):
    driver = "macvlan"                 # no parent: an internal network on a dummy parent
    subnet = "10.198.0.0/24"


class TestNull(DriverConformance):
    driver = "null"
    predefined = "none"
    connectivity = False


class TestOverlay(DriverConformance):
    driver = "overlay"
    swarm = True
    subnet = "10.197.0.0/24"
