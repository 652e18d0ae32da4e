"""Swarm mode services: the managers' service API and reconciler, the nodes' task runner,
service load balancing (VIPs, the ingress routing mesh), secrets and configs, and stacks.

The objects they share live in the cluster store (netkit/services/model.py).
"""
