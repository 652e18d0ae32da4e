"""The node agent's work: program this node from the cluster store (README.md here)."""
