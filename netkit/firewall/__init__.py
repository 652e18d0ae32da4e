"""netkit's firewall: the store's networks and published ports rendered as
one nftables table per node (pure; see ``ruleset``), applied atomically by
``netkit.kernel.nft``."""

from netkit.firewall.ruleset import (
    FwNetwork,
    FwPort,
    delete_script,
    needs_route_localnet,
    render,
    render_delete,
)

__all__ = ["FwNetwork", "FwPort", "delete_script", "needs_route_localnet", "render", "render_delete"]
