"""netkit.sandbox's /etc/hosts text (pure)."""

from netkit.sandbox import HOSTS_FIXED_V4, hosts_file


def test_own_address_line_has_the_hostname():
    assert hosts_file("abc123", ["10.0.0.2"], ipv6=False) == HOSTS_FIXED_V4 + "10.0.0.2\tabc123\n"


def test_fqdn_hostname_adds_the_short_name():
    """Docker's updateHostsFile: "IP<tab>FQDN SHORT" when the hostname has a domain."""
    text = hosts_file("c1.invalid", ["10.0.0.2", "fd00::2"], ipv6=False)
    assert text.endswith("10.0.0.2\tc1.invalid c1\nfd00::2\tc1.invalid c1\n")
    assert hosts_file("a.b.c", ["10.0.0.3"], ipv6=False).endswith("10.0.0.3\ta.b.c a\n")
