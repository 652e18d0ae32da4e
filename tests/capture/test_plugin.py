"""The pytest plugin as users meet it: test files run by pytest in a subprocess.

The plugin is loaded by its ``pytest11`` entry point, as in any project
that installs netkit. Inner runs make real nodes (random names, state in
their own temp dirs); every test here checks that they are gone afterwards.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from scapy.utils import rdpcap

pytestmark = pytest.mark.root

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

FAILING = '''
from netkit import ContainerSpec, NetworkSpec

def test_wrong_expectation(netkit_node, netkit_capture):
    netkit_node.create_network(NetworkSpec("app"))
    for name in ("web1", "web2", "client"):
        netkit_node.run(ContainerSpec(name=name, network="app", aliases=("web",), detach=True,
                                      command=("sleep", "infinity")))
    with netkit_capture("client", filter="udp port 53") as cap:
        for _ in range(2):
            netkit_node.exec_output("client", ["dig", "+short", "web"])
    with netkit_capture("network:app", filter="icmp") as quiet:
        pass
    cap.assert_dns_answer("web", count=3)
'''


RECORD = '''
import pytest

@pytest.fixture(autouse=True)
def _record_netkit_node(request):
    yield                                   # torn down last: after netkit_node
    node = request.node.funcargs.get("netkit_node")
    if node is not None:
        with open({path!r}, "a") as f:
            f.write(node.node_name + "\\n")
'''


@pytest.fixture
def no_leftovers(pytester):
    """Inner runs record the nodes their tests got; none may exist afterwards."""
    record = pytester.path / "nodes.txt"
    pytester.makeconftest(RECORD.format(path=str(record)))
    yield
    names = record.read_text().split() if record.exists() else []
    assert names, "no test of the inner run got a netkit_node"
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    present = {line.split()[0] for line in listed.splitlines() if line.strip()}
    assert not {f"nkn-{name}" for name in names} & present, "the plugin left nodes behind"


def test_examples_pass(pytester, no_leftovers):
    for name in ("test_dns_round_robin.py", "test_isolation.py"):
        pytester.makepyfile(**{name[:-3]: (EXAMPLES / name).read_text()})
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_failure_report_keeps_every_capture_as_pcap(pytester, no_leftovers):
    pytester.makepyfile(test_failing=FAILING)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    # the assertion message shows the packets that were seen
    assert "expected 3 DNS answers for web with NOERROR, saw 2" in out
    assert "A? web." in out
    # the report section names both pcaps, under the test's tmp_path
    assert "netkit captures" in out
    paths = re.findall(r"pcap: (\S+\.pcap)", out)
    assert len(paths) == 2 and all("test_wrong_expectation" in p for p in paths), out
    dns_pcap, quiet_pcap = paths
    assert len(rdpcap(dns_pcap)) == 4 and len(rdpcap(quiet_pcap)) == 0
    read = subprocess.run(["tcpdump", "-nr", dns_pcap], capture_output=True, text=True)
    assert read.returncode == 0 and read.stdout.count("A? web.") == 2


def test_passing_tests_keep_no_pcap(pytester, no_leftovers):
    pytester.makepyfile(test_ok='''
        def test_ok(netkit_node, netkit_capture):
            with netkit_capture(f"node:{netkit_node.node_name}") as cap:
                pass
            cap.assert_no_packets()
    ''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rA")
    result.assert_outcomes(passed=1)
    assert "netkit captures" not in result.stdout.str()
    assert not list(pytester.path.rglob("*.pcap"))


def test_requires_marker_skips_with_the_reason(pytester, no_leftovers):
    pytester.makepyfile(test_req='''
        import pytest

        @pytest.mark.netkit_requires("bridge", "veth")
        def test_have(netkit_node):
            pass

        @pytest.mark.netkit_requires("nosuchkind")
        def test_missing():
            pass
    ''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*netkit_requires: this kernel cannot create nosuchkind (*) links*"])


def test_without_root_every_fixture_skips_saying_why(pytester, monkeypatch):
    monkeypatch.delenv("NETKIT_REQUIRE_ROOT", raising=False)    # CI sets it: skips would fail
    pytester.makeconftest("import os\nos.geteuid = lambda: 1000\n")
    pytester.makepyfile(test_user='''
        def test_node(netkit_node):
            pass

        def test_capture(netkit_capture):
            pass
    ''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*netkit needs root (network namespaces*"])


FAKE_LABS = '''
import contextlib, sys, types

events = []

class Lab:
    @classmethod
    @contextlib.contextmanager
    def load(cls, path):
        events.append(("up", path))
        yield {"path": path}
        events.append(("down", path))

labs = types.ModuleType("netkit.labs")
{define}
labs.events = events
sys.modules["netkit.labs"] = labs
import netkit
netkit.labs = labs
'''

LAB_TESTS = '''
import os, pytest

@pytest.mark.netkit_lab("labs/two.yml")
def test_lab(netkit_lab, netkit_node, netkit_host):
    assert netkit_lab["path"].endswith(os.path.join("labs", "two.yml"))
    assert os.environ["NETKIT_ROOT"].startswith("/tmp/netkit-")
    # on the test's throwaway node, where netkit_capture looks
    assert os.environ["NETKIT_NODE"] == netkit_node.node_name
    assert netkit_node.node_name in [n.name for n in netkit_host.nodes()]

def test_lab_without_marker(netkit_lab):
    pass

def test_lab_was_taken_down():
    import netkit.labs
    assert [e for e, _ in netkit.labs.events] == ["up", "down"]
'''


def test_lab_marker_loads_the_lab_as_a_context_manager(pytester, no_leftovers):
    recorder = (pytester.path / "conftest.py").read_text()
    pytester.makeconftest(recorder + FAKE_LABS.replace("{define}", "labs.Lab = Lab"))
    pytester.mkdir("labs")
    (pytester.path / "labs" / "two.yml").write_text("nodes: {}\n")
    pytester.makepyfile(test_lab=LAB_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(['*netkit_lab needs a lab file: @pytest.mark.netkit_lab("path/to/lab.yml")*'])


def test_lab_marker_skips_without_a_lab_loader(pytester):
    pytester.makeconftest(FAKE_LABS.replace("{define}", ""))
    pytester.makepyfile(test_lab='''
        import pytest

        @pytest.mark.netkit_lab("lab.yml")
        def test_lab(netkit_lab):
            pass
    ''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*netkit_lab: this netkit has no lab loader (netkit.labs.Lab.load)*"])


def test_parallel_runs_do_not_collide(pytester, no_leftovers):
    """What `pytest -n` does: several pytest processes at once, each with its own nodes."""
    for name in ("test_dns_round_robin.py", "test_isolation.py"):
        pytester.makepyfile(**{name[:-3]: (EXAMPLES / name).read_text()})
    procs = []
    for i in range(3):
        base = pytester.path / f"basetemp{i}"
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--basetemp={base}",
             str(pytester.path)], cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, env={k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}))
    for proc in procs:
        out = proc.communicate(timeout=120)[0]
        assert proc.returncode == 0, out
        assert "2 passed" in out


def test_fixture_captures_are_started_without_with(pytester, no_leftovers):
    """Bare use (no `with`) sees the traffic: assert_no_packets cannot pass falsely."""
    pytester.makepyfile(test_bare='''
        import pytest
        from scapy.layers.dns import DNS
        from netkit import ContainerSpec, NetkitError, NetworkSpec

        def test_bare(netkit_node, netkit_capture):
            netkit_node.create_network(NetworkSpec("app"))
            netkit_node.run(ContainerSpec(name="client", network="app", detach=True,
                                          command=("sleep", "infinity")))
            cap = netkit_capture("client", filter="udp port 53")
            assert cap.running
            netkit_node.exec_output("client", ["dig", "+short", "+tries=1", "+time=2", "client"])
            cap.wait_for(DNS)
            with pytest.raises(NetkitError, match="while it still runs could miss frames"):
                cap.assert_no_packets()     # not before it ended
            with cap:                       # entering a fixture's capture keeps it running
                pass
            assert not cap.running
            cap.assert_dns_answer("client", count=1)
            with pytest.raises(AssertionError, match="expected no packets"):
                cap.assert_no_packets()
    ''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
