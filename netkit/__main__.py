"""`python -m netkit`: the same as the `netkit` command."""

from netkit.cli.main import cli

if __name__ == "__main__":
    cli(prog_name="netkit")
