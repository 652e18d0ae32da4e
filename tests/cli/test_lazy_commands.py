"""The root group loads a command's module only when that command runs."""

import json
import subprocess
import sys

import click

from netkit.cli.main import COMMANDS, cli


def test_every_command_loads_under_its_name():
    ctx = click.Context(cli)
    assert cli.list_commands(ctx) == sorted(COMMANDS)
    for name in COMMANDS:
        cmd = cli.get_command(ctx, name)
        assert isinstance(cmd, click.Command) and cmd.name == name


def test_run_does_not_load_the_other_commands():
    code = ("import sys; from netkit.cli.main import cli; "
            "cli.get_command(None, 'run'); "
            "import json; print(json.dumps([m for m in sys.modules if m.startswith('netkit.cli.')]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    assert "netkit.cli.container" in loaded
    assert not {"netkit.cli.capture", "netkit.cli.lab", "netkit.cli.swarm", "netkit.cli.node",
                "netkit.cli.completion", "netkit.cli.version", "netkit.cli.info",
                "netkit.cli.docgen"} & set(loaded)
