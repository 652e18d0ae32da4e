#!/usr/bin/env bash
# Install everything netkit needs on a fresh Debian/Ubuntu machine (run as root).
# Idempotent: apt packages, then a virtualenv at .venv with netkit and its test deps.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=0
for cmd in ip nft ping dig tcpdump ps python3 dnsperf dot nsenter; do
    command -v "$cmd" >/dev/null 2>&1 || need_apt=1
done
python3 -c "import venv, ensurepip" 2>/dev/null || need_apt=1
if [ "$need_apt" = 1 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends \
        iproute2 nftables iputils-ping dnsutils tcpdump procps psmisc \
        python3 python3-venv python3-pip graphviz dnsperf util-linux >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
if ! .venv/bin/python -c "import netkit, pyroute2, netaddr, dnslib, scapy, click, rich, yaml, pytest" 2>/dev/null \
   || [ pyproject.toml -nt .venv/.netkit-installed ]; then
    .venv/bin/pip install -q --upgrade pip >/dev/null
    .venv/bin/pip install -q -e '.[test]'
    touch .venv/.netkit-installed
fi
# byte-compile once: the CLI's start-up is part of every command's cost, and an
# environment with PYTHONDONTWRITEBYTECODE would otherwise recompile on each run
.venv/bin/python -m compileall -q netkit >/dev/null
