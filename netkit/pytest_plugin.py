"""pytest plugin: throwaway netkit nodes, labs and packet captures (entry point ``pytest11``).

Fixtures (all named ``netkit_*``, so they never shadow a project's own):

    netkit_node       a simulated host with its Engine, new for each test, removed afterwards
                      (also when the test fails); state in a temporary directory
    netkit_capture    netkit_capture(target, **kw) -> a started Capture (`with` ends it) on
                      netkit_node's containers, networks (``network:N``), nodes, LANs;
                      ``engine=`` binds it to another Engine (a lab's)
    netkit_lab        the lab of ``@pytest.mark.netkit_lab("lab.yml")`` (a path relative to
                      the test file), loaded with ``netkit.labs.Lab.load(path)`` as a
                      context manager, on the test's netkit_node ($NETKIT_NODE), so that
                      netkit_capture sees its containers
    netkit_host       (session) the host Engine that makes the nodes, state in a temp dir
    netkit_state_dirs (session) that temp dir's (root, run)

Markers:

    netkit_lab(path)            the lab for the netkit_lab fixture
    netkit_requires(*kinds)     skip unless the kernel can create these link kinds
                                ("vxlan", "macvlan"...): tried in a throwaway netns

When a test fails, every capture made through ``netkit_capture`` is written
to a pcap under the test's ``tmp_path`` and the paths are printed in a
"netkit captures" section of the failure report. Without root every
fixture skips, saying so (``NETKIT_REQUIRE_ROOT=1`` makes that a failure).
Names are random and state lives in per-process temp dirs, so parallel
runs (``pytest -n``) do not collide. Importing this module imports neither
netkit's kernel layer nor scapy: pytest starts as fast as without it.
"""

from __future__ import annotations

import importlib
import os
import re
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Generator, Iterator

import pytest

_CAPTURES = pytest.StashKey[dict]()
_PROBED = pytest.StashKey[dict]()

# extra arguments `ip link add X type KIND ...` needs; "parent" kinds get a dummy to sit on
_LINK_ARGS = {"vxlan": ["id", "42", "dstport", "4789"], "geneve": ["id", "42", "remote", "192.0.2.1"],
              "vrf": ["table", "4242"], "vlan": ["link", "nkq0", "id", "42"],
              "macvlan": ["link", "nkq0"], "macvtap": ["link", "nkq0"],
              "ipvlan": ["link", "nkq0"], "ipvtap": ["link", "nkq0"]}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "netkit_lab(path): the lab file the netkit_lab fixture loads "
                                       "(relative to the test file)")
    config.addinivalue_line("markers", "netkit_requires(*kinds): skip unless the kernel can create "
                                       "these link kinds (vxlan, macvlan, ...)")
    config.stash[_PROBED] = {}


def _need_root() -> None:
    if os.geteuid() == 0:
        return
    msg = "netkit needs root (network namespaces, netlink, packet sockets): run pytest as root"
    if os.environ.get("NETKIT_REQUIRE_ROOT") == "1":
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)


# -- kernel features ---------------------------------------------------------------------

def pytest_runtest_setup(item: pytest.Item) -> None:
    kinds = [str(k) for m in item.iter_markers("netkit_requires") for k in m.args]
    if not kinds:
        return
    _need_root()
    probed = item.config.stash[_PROBED]
    missing = []
    for kind in dict.fromkeys(kinds):
        if kind not in probed:
            probed[kind] = link_kind_supported(kind)
        if probed[kind] is not True:
            missing.append(f"{kind} ({probed[kind]})")
    if missing:
        pytest.skip(f"netkit_requires: this kernel cannot create {', '.join(missing)} links")


def link_kind_supported(kind: str) -> bool | str:
    """True if `ip link add ... type KIND` works in a throwaway netns, else the reason."""
    if not re.fullmatch(r"[a-z0-9_]{1,32}", kind):
        return "not a link kind"
    from netkit.kernel import netns as kns
    ns = f"nkq-{secrets.token_hex(4)}"
    try:
        kns.create_netns(ns)
    except Exception as exc:                     # no netns support at all
        return f"cannot create a netns: {exc}"
    try:
        ip = ["ip", "-n", ns, "link", "add"]
        args = _LINK_ARGS.get(kind, [])
        if "nkq0" in args:
            subprocess.run([*ip, "nkq0", "type", "dummy"], capture_output=True, timeout=30)
        proc = subprocess.run([*ip, "nkq1", "type", kind, *args], capture_output=True, text=True,
                              timeout=30)
        return True if proc.returncode == 0 else (proc.stderr.strip().splitlines() or ["failed"])[-1]
    except FileNotFoundError:
        return "iproute2's ip is not installed"
    finally:
        kns.delete_netns(ns)


# -- nodes ---------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def netkit_state_dirs() -> Iterator[tuple[str, str]]:
    """(NETKIT_ROOT, NETKIT_RUN) for this test process: short paths (unix sockets live there)."""
    base = tempfile.mkdtemp(prefix="netkit-")
    yield os.path.join(base, "root"), os.path.join(base, "run")
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def netkit_host(netkit_state_dirs: tuple[str, str]) -> Iterator[Any]:
    """The real machine's Engine, with its state in temp dirs: it makes and removes nodes."""
    _need_root()
    from netkit.engine import Engine
    root, run = netkit_state_dirs
    engine = Engine(root=root, run=run)
    yield engine
    engine.close()


@pytest.fixture
def netkit_node(netkit_host: Any, netkit_state_dirs: tuple[str, str]) -> Iterator[Any]:
    """A throwaway simulated host (an Engine acting on it); removed afterwards, also on failure."""
    from netkit.engine import Engine
    name = f"nk{secrets.token_hex(4)}"
    netkit_host.create_node(name)
    try:
        engine = Engine(name, root=netkit_state_dirs[0], run=netkit_state_dirs[1])
    except BaseException:
        netkit_host.remove_node(name, force=True)
        raise
    try:
        yield engine
    finally:
        try:
            engine.close()
        finally:
            netkit_host.remove_node(name, force=True)


# -- captures ------------------------------------------------------------------------------

@pytest.fixture
def netkit_capture(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """Factory: ``netkit_capture(target, *, engine=None, iface=, filter=, count=, timeout=)``.

    Captures on `engine` (default: the test's netkit_node), already started:
    the capture sees everything from the call on, used bare or as
    ``with netkit_capture(...) as cap:`` (leaving the block ends it; the
    fixture ends any still running after the test). Each is kept, and
    written to a pcap under tmp_path if the test fails.
    """
    _need_root()
    made: list[Any] = []
    request.node.stash[_CAPTURES] = {"dir": tmp_path, "captures": made, "written": False}

    def factory(target: Any, *, engine: Any = None, **kwargs: Any) -> Any:
        from netkit.capture.session import capture
        engine = engine if engine is not None else request.getfixturevalue("netkit_node")
        cap = capture(engine, target, **kwargs)
        made.append(cap)
        return cap.start()

    yield factory
    for cap in made:                      # one left running (no `with`): close its socket
        if cap.running:
            try:
                cap.stop()
            except Exception:
                pass


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    kept = item.stash.get(_CAPTURES, None)
    if not report.failed or not kept or not kept["captures"] or kept["written"]:
        return
    kept["written"] = True
    report.sections.append(("netkit captures", _keep_captures(kept["dir"], kept["captures"])))


def _keep_captures(directory: Path, captures: list[Any]) -> str:
    lines = []
    for i, cap in enumerate(captures, 1):
        if cap.running:
            try:
                cap.stop()
            except Exception as exc:
                lines.append(f"capture {i}: stopping it failed: {exc}")
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", cap.target.ref).strip("-") or "target"
        path = directory / f"netkit-capture-{i}-{slug}.pcap"
        where = f" filter {cap.filter!r}" if cap.filter else ""
        try:
            cap.write_pcap(str(path))
        except Exception as exc:
            lines.append(f"capture {i}: {cap.target.label}{where}: writing the pcap failed: {exc}")
            continue
        lines.append(f"capture {i}: {cap.target.label}{where}: {len(cap)} packets")
        lines.append(f"  pcap: {path}")
        lines.append(cap.summary(limit=20))
    return "\n".join(lines)


# -- labs ----------------------------------------------------------------------------------

@pytest.fixture
def netkit_lab(request: pytest.FixtureRequest, netkit_state_dirs: tuple[str, str],
               monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The lab named by ``@pytest.mark.netkit_lab(path)``, up for the test, down afterwards."""
    marker = request.node.get_closest_marker("netkit_lab")
    if marker is None or not marker.args:
        pytest.fail('netkit_lab needs a lab file: @pytest.mark.netkit_lab("path/to/lab.yml")',
                    pytrace=False)
    path = Path(str(marker.args[0]))
    if not path.is_absolute():
        path = Path(request.path).parent / path
    _need_root()
    labs: Any
    try:
        labs = importlib.import_module("netkit.labs")
    except ImportError:
        labs = None
    loader = getattr(getattr(labs, "Lab", None), "load", None)
    if loader is None:
        pytest.skip(f"netkit_lab: this netkit has no lab loader (netkit.labs.Lab.load) "
                    f"to bring up {path}")
    if not path.is_file():
        pytest.fail(f"netkit_lab: lab file not found: {path}", pytrace=False)
    # The lab goes on the test's throwaway node, its state in our temp dirs: the
    # loader's engines default to $NETKIT_NODE, $NETKIT_ROOT and $NETKIT_RUN.
    node = request.getfixturevalue("netkit_node")
    monkeypatch.setenv("NETKIT_ROOT", netkit_state_dirs[0])
    monkeypatch.setenv("NETKIT_RUN", netkit_state_dirs[1])
    monkeypatch.setenv("NETKIT_NODE", node.node_name)
    with loader(str(path)) as lab:
        yield lab
