#!/usr/bin/env bash
# netkit's overlay beside raw VXLAN between the same kind of namespaces, one session.
#   bash bench/overlay.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS=${PEERS:-../shared/bench/peers}
PY=${PY:-.venv/bin/python}
S=${1:-10}
(cd "$PEERS" && ./dataplane.sh "$S") | grep -E "RESULT|vxlan" || true
"$PY" -m bench.overlay --seconds "$S"
