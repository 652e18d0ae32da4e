"""Misused captures fail loudly instead of passing falsely (issue 16, capture safety)."""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP

from netkit.capture import capture
from netkit.errors import InvalidArgument, NetkitError

pytestmark = pytest.mark.root


@pytest.mark.parametrize("use", [
    lambda c: c.assert_no_packets(),
    lambda c: c.assert_packets(),
    lambda c: c.assert_only(ICMP),
    lambda c: c.assert_dns_query("web"),
    lambda c: c.assert_dns_answer("web"),
    lambda c: c.wait_for(ICMP, timeout=0.1),
    lambda c: c.packets,
    lambda c: c.flows(),
])
def test_a_capture_never_started_refuses_every_question(world, use):
    cap = capture(world.engine, "client", filter="icmp")
    world.ping("client", world.ips["peer"])          # crosses, but nobody listened
    with pytest.raises(NetkitError, match="was never started.*with engine.capture"):
        use(cap)


def test_the_same_traffic_fails_assert_no_packets_once_started(world):
    cap = capture(world.engine, "client", filter="icmp").start()
    world.ping("client", world.ips["peer"])
    cap.stop()
    with pytest.raises(AssertionError, match="expected no packets"):
        cap.assert_no_packets()


def test_a_capture_runs_once(world):
    with capture(world.engine, "client", filter="icmp") as cap:
        with pytest.raises(InvalidArgument, match="already runs: a capture runs once"):
            cap.start()
        with pytest.raises(InvalidArgument, match="already runs"):
            with cap:
                pass
    with pytest.raises(InvalidArgument, match="already ran: a capture runs once, make a new one"):
        with cap:
            pass
    cap.assert_no_packets()                           # what it saw is still there to ask


def test_negative_assertions_wait_for_the_end(world):
    with capture(world.engine, "client", filter="icmp") as cap:
        world.ping("client", world.ips["peer"])
        for check in (cap.assert_no_packets, lambda: cap.assert_only(lambda p: False)):
            with pytest.raises(NetkitError, match="^assert_(no_packets|only) on the capture of "
                               "client while it still runs could miss frames not read yet"):
                check()
        cap.wait_for(ICMP)                    # positive questions are fine while it runs
    with pytest.raises(AssertionError, match="expected no packets"):
        cap.assert_no_packets()
