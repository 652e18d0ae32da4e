"""``python -m netkit.agent``: run a node's agent (netkit/agent/server.py)."""

import sys

from netkit.agent.server import main

sys.exit(main())
