"""Persistent state: SQLite (WAL) under the node's state root."""

from netkit.store.sqlite import Store, Tx

__all__ = ["Store", "Tx"]
