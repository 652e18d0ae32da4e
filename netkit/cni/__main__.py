"""`python -m netkit.cni`: the netkit-cni plugin (for wrapper scripts in a CNI_PATH)."""

from netkit.cni.plugin import main

main()
