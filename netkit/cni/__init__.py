"""netkit as a CNI plugin (`netkit-cni`): the CNI specification's side in spec.py (pure),
the commands over Engine.attach / detach in plugin.py. See docs/cni.md."""
