"""pytest plugin: fixtures that build networks with netkit (registered as pytest11)."""
