"""`python -m netkit`: the same as the `netkit` command."""

from netkit.cli.main import main

if __name__ == "__main__":
    main()
