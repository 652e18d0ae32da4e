#!/usr/bin/env bash
# netkit's attach/detach beside the peers (netavark, CNI bridge, iproute2,
# raw pyroute2), interleaved in one run on this machine. Root; everything
# happens in namespaces the scripts create and remove.
#   bash bench/compare.sh [N...]        (default: 200)
# The peers need Debian's netavark, aardvark-dns, containernetworking-plugins
# and iptables (see their README); PEERS= and PY= override where they are.
set -euo pipefail
cd "$(dirname "$0")/.."
common=$(dirname "$(git rev-parse --path-format=absolute --git-common-dir 2>/dev/null || echo "$PWD/.git")")
PEERS=${PEERS:-../shared/bench/peers}
[ -d "$PEERS" ] || PEERS=$common/../shared/bench/peers      # from a git worktree
OUT=${OUT:-bench/results/attach-$(date -u +%Y%m%dT%H%M%SZ).txt}
mkdir -p "$(dirname "$OUT")"
export PB_RESULTS=$(realpath -m "$OUT")
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=$common/.venv/bin/python
[ -x "$PY" ] || PY=python3
if [ ! -x /tmp/pb-venv/bin/python ]; then
    python3 -m venv /tmp/pb-venv && /tmp/pb-venv/bin/pip install -q pyroute2==0.9.7
fi
echo "# compare.sh $(date -u +%Y-%m-%dT%H:%M:%SZ) loadavg $(cut -d' ' -f1-3 /proc/loadavg) N=[${*:-200}]" >> "$OUT"
peer() {    # peer N COMMAND...: one peer's run; a failure is noted and the others go on
    local n=$1; shift
    (cd "$PEERS" && "$@") >/dev/null || echo "# N=$n: $* failed" | tee -a "$OUT"
}
for n in "${@:-200}"; do
    peer "$n" ./raw_iproute2.sh "$n" batch
    peer "$n" /tmp/pb-venv/bin/python pyroute2_attach.py "$n" inproc
    if [ "$n" -le 253 ]; then       # its check expects the last address to be 10.98.0.<N+1>
        peer "$n" ./cni_attach.sh "$n" plain
    else
        echo "# N=$n: cni_attach.sh skipped (its check only works up to N=253)" | tee -a "$OUT"
    fi
    peer "$n" ./netavark_attach.sh "$n" nodns
    peer "$n" ./netavark_attach.sh "$n" dns
    "$PY" -m bench.attach "$n" | grep RESULT
done
python3 "$PEERS/summarize.py" "$OUT" 2>/dev/null || cat "$OUT"
