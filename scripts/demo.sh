#!/usr/bin/env bash
# Install, then show two containers on a user network talking: all inside a
# throwaway simulated host (netns) on a simulated LAN, removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export NETKIT_ROOT=${NETKIT_ROOT:-$(mktemp -d /tmp/netkit-demo.XXXXXX)}
export NETKIT_RUN=${NETKIT_RUN:-$NETKIT_ROOT/run}
nk() { echo "+ netkit $*" >&2; .venv/bin/netkit "$@"; }
cleanup() {
    NETKIT_NODE= .venv/bin/netkit node rm -f demohost >/dev/null 2>&1 || true
    .venv/bin/netkit lan rm demolan >/dev/null 2>&1 || true
    rm -rf "$NETKIT_ROOT"
}
trap cleanup EXIT

nk lan create demolan --subnet 192.168.100.0/24 --gateway 192.168.100.1
nk node create demohost --lan demolan --ip 192.168.100.10/24
export NETKIT_NODE=demohost                     # every command below runs on that host
nk network create --subnet 10.10.0.0/24 mynet
nk run -d --name web --network mynet --network-alias www sleep 600
nk run -d --name client --network mynet sleep 600
nk network ls
nk ps
WEB_IP=$(nk inspect web --format '{{.NetworkSettings.Networks.mynet.IPAddress}}')
nk exec client ping -c 2 "$WEB_IP"
if nk exec client getent hosts web 2>/dev/null; then
    nk exec client ping -c 2 www
fi
nk network inspect mynet --format '{{json .Containers}}'
nk run -d --name ticker --network mynet --restart on-failure:2 sh -c 'echo tick from $(hostname); exit 3'
sleep 1.5
nk logs ticker                                   # three runs: the first and two restarts
nk inspect ticker --format 'restarts={{.RestartCount}} state={{.State.Status}} exit={{.State.ExitCode}}'
nk stop -t 1 client                              # leaves mynet: its address returns to the pool
nk ps -a
nk start client                                  # joins mynet again
nk exec client ping -c 1 "$WEB_IP"
nk rm -f web client ticker
nk network rm mynet
nk system check
echo "demo: two containers on mynet talked; everything removed."
