"""Bad lab files: refused in one line, before anything is made.

The file-level refusals (size, encoding, alias bombs, empty) are pure and
go through `lab config`; the whole-file validation of `lab up` runs the
real CLI against a throwaway node and checks nothing was created and
`system check` stays clean.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys

import pytest
from click.testing import CliRunner

from netkit.cli.main import cli as netkit_cli
from netkit.labs import source
from tests.labs.conftest import IDLE


def config(path: str):
    return CliRunner().invoke(netkit_cli, ["lab", "-f", path, "config"], prog_name="netkit")


def one_line(r, code: int = 1) -> str:
    assert r.exit_code == code, (r.exit_code, r.output)
    assert "Traceback" not in r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_binary_file_is_one_line(tmp_path):
    path = tmp_path / "lab.yml"
    path.write_bytes(bytes(range(256)) * 4)
    assert one_line(config(str(path))) == f"Error: {path}: not UTF-8 text (byte 0x80 at offset 128)"
    path.write_bytes(b"services:\n  web: {}\n\0\0")
    assert one_line(config(str(path))) == f"Error: {path}: not a text file (it contains NUL bytes)"


def test_control_characters_are_one_line(tmp_path):
    path = tmp_path / "lab.yml"
    path.write_bytes(b"services:\n  web:\n    command: \x07bell\n")
    assert one_line(config(str(path))) == (f"Error: {path}:3: invalid YAML: unacceptable character "
                                           "#x0007: special characters are not allowed")


def test_file_over_the_size_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(source, "MAX_FILE_BYTES", 1 << 20)
    path = tmp_path / "lab.yml"
    path.write_text("services:\n  web: {}\n" + "# padding\n" * 120_000)
    assert one_line(config(str(path))) == f"Error: {path}: file too large (over 1 MiB)"


def test_empty_file(tmp_path):
    path = tmp_path / "lab.yml"
    for text in ("", "# only a comment\n", "---\n"):
        path.write_text(text)
        assert one_line(config(str(path))) == f"Error: {path}: empty compose file"


def bomb(levels: int = 9, width: int = 9) -> str:
    lines = ['a0: &a0 [' + ",".join(['"lol"'] * width) + ']']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + f"\nservices:\n  web:\n    command: {IDLE}\n    labels: *a{levels - 1}\n"


def merge_bomb(levels: int = 40) -> str:
    lines = ["m0: &m0 {k0: 1}"]
    for i in range(1, levels):
        lines.append(f"m{i}: &m{i}\n  <<: [*m{i - 1}, *m{i - 1}]\n  k{i}: 1")
    return "\n".join(lines) + "\nservices:\n  web: {command: sleep}\n"


@pytest.mark.parametrize("text", [bomb(), merge_bomb()], ids=["aliases", "merge-keys"])
def test_alias_bomb_fails_fast_in_bounded_memory(tmp_path, text):
    path = tmp_path / "lab.yml"
    path.write_text(text)
    # in a child process whose address space is capped at 512 MiB (the bomb wants many GB)
    code = ("import resource, sys\n"
            "resource.setrlimit(resource.RLIMIT_AS, (512 << 20, 512 << 20))\n"
            "from netkit.cli.main import main\n"
            f"sys.argv = ['netkit', 'lab', '-f', {str(path)!r}, 'config']\n"
            "main()\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, PYTHONPATH=os.getcwd()))
    assert p.returncode == 1, p.stderr
    assert p.stderr.strip().endswith("document contains excessive aliasing"), p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_ordinary_aliases_still_work(tmp_path):
    path = tmp_path / "lab.yml"
    path.write_text("x-common: &common {command: sleep 1, labels: {a: b}}\n"
                    "services:\n  web: *common\n  api: {<<: *common, hostname: api}\n")
    r = config(str(path))
    assert r.exit_code == 0, r.output


# -- lab up validates before it creates --------------------------------------------------

NET = "networks:\n  n: {ipam: {config: [{subnet: 10.77.0.0/29}]}}\n"


@pytest.mark.parametrize("services, message", [
    ("  a: {command: sleep 60, networks: {n: {mac_address: '02:42:ac:11:00'}}}\n",
     "services.a: invalid MAC address: 02:42:ac:11:00"),
    ("  a: {command: sleep 60, networks: {n: {ipv4_address: 10.78.0.2}}}\n",
     "services.a.networks.n.ipv4_address: no configured subnet contains IP address 10.78.0.2"),
    ("  a: {command: sleep 60, networks: {n: {ipv4_address: 10.77.0.1}}}\n",
     "services.a.networks.n.ipv4_address: Address already in use: 10.77.0.1 is the gateway "
     "of network vl_n"),
    ("  a: {command: sleep 60, networks: {n: {ipv4_address: 10.77.0.3}}}\n"
     "  b: {command: sleep 60, networks: {n: {ipv4_address: 10.77.0.3}}}\n",
     "services.b.networks.n.ipv4_address: Address already in use: 10.77.0.3 is also the "
     "address of service a"),
    ("  a: {command: sleep 60, container_name: same, networks: [n]}\n"
     "  b: {command: sleep 60, container_name: same, networks: [n]}\n",
     'services.b.container_name: the container name "same" is already used by service a'),
    ("  a: {command: sleep 60, ports: ['18080:80'], networks: [n]}\n"
     "  b: {command: sleep 60, ports: ['18080:81'], networks: [n]}\n",
     "services.b.ports[0]: Bind for 0.0.0.0:18080 failed: port is already allocated "
     "(by service a)"),
    ("  a: {command: sleep 60, ports: ['18081:80'], scale: 2, networks: [n]}\n",
     "services.a.ports[0]: Bind for 0.0.0.0:18081 failed: port is already allocated "
     "(by service a)"),
    (f"  a: {{command: sleep 60, hostname: {'h' * 65}, networks: [n]}}\n",
     f"services.a: invalid hostname format: {'h' * 65}"),
    ("  a: {command: sleep 60, scale: 6, networks: [n]}\n",
     "networks.n: 6 containers on network vl_n, but 10.77.0.0/29 holds only 5 addresses for "
     "them (no available IPv4 addresses on this network's address pools)"),
    ("  a: {command: sleep 60, networks: {n: {aliases: ['bad alias']}}}\n",
     'services.a: invalid network alias "bad alias": it must be a valid DNS name '
     "(dot-separated labels of [a-zA-Z0-9_-])"),
])
def test_up_refuses_before_creating_anything(write, node, cli, services, message):
    path = write("lab.yml", "name: vl\nservices:\n" + services + NET)
    n = node.node_name
    p = cli("lab", "-f", path, "up", "-d", node=n, check=False)
    assert p.returncode == 1, (p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    assert lines[0].startswith(f"Error: {path}:") and lines[0].endswith(message), lines[0]
    assert node.containers(all=True) == []
    assert sorted(net.name for net in node.networks()) == ["bridge", "host", "none"]
    assert cli("system", "check", node=n).stdout.strip() == "No drift."
