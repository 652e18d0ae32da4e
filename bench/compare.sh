#!/usr/bin/env bash
# netkit's attach/detach beside the peers (netavark, CNI bridge, iproute2,
# raw pyroute2), interleaved in one run on this machine. Root; everything
# happens in namespaces the scripts create and remove.
#   bash bench/compare.sh [N...]        (default: 200)
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS=${PEERS:-../shared/bench/peers}
OUT=${OUT:-bench/results/attach-$(date -u +%Y%m%dT%H%M%SZ).txt}
mkdir -p "$(dirname "$OUT")"
export PB_RESULTS=$PWD/$OUT
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
if [ ! -x /tmp/pb-venv/bin/python ]; then
    python3 -m venv /tmp/pb-venv && /tmp/pb-venv/bin/pip install -q pyroute2==0.9.7
fi
for n in "${@:-200}"; do
    (cd "$PEERS" && ./raw_iproute2.sh "$n" batch && /tmp/pb-venv/bin/python pyroute2_attach.py "$n" inproc \
        && ./cni_attach.sh "$n" plain && ./netavark_attach.sh "$n" nodns && ./netavark_attach.sh "$n" dns) >/dev/null
    "$PY" -m bench.attach "$n" | grep RESULT
done
python3 "$PEERS/summarize.py" "$OUT" 2>/dev/null || cat "$OUT"
