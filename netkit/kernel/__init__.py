"""The only code that touches the kernel: netlink (pyroute2), namespaces,
sysctls, mounts, nft and process spawning. Nothing above this package
imports pyroute2."""
