#!/usr/bin/env bash
# Install everything netkit needs on a fresh Debian/Ubuntu machine (run as root).
# Idempotent: apt packages, then a virtualenv at .venv with netkit and its test deps.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=0
for cmd in ip nft ping dig tcpdump ps python3 dnsperf dot nsenter etcd etcdctl podman runc conmon busybox; do
    command -v "$cmd" >/dev/null 2>&1 || need_apt=1
done
python3 -c "import venv, ensurepip" 2>/dev/null || need_apt=1
[ -e /usr/lib/x86_64-linux-gnu/libnftables.so.1 ] || ldconfig -p | grep -q libnftables.so.1 || need_apt=1
if [ "$need_apt" = 1 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # podman, runc, conmon and busybox-static: the CNI plugin's test with a real runtime.
    # etcd-server's package would start an etcd on the host's network: the tests run etcd
    # only inside simulated nodes. policy-rc.d (exit 101) keeps apt from starting any service
    # during the install (kept if the machine already had one); then stop it if it runs anyway.
    made_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    apt-get install -y -qq --no-install-recommends \
        iproute2 nftables iputils-ping dnsutils tcpdump procps psmisc \
        python3 python3-venv python3-pip graphviz dnsperf util-linux \
        etcd-server etcd-client libnftables1 \
        podman runc conmon busybox-static >/dev/null
    if [ "$made_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        systemctl disable --now etcd >/dev/null 2>&1 || true
    else
        update-rc.d etcd disable >/dev/null 2>&1 || true
    fi
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
if ! .venv/bin/python -c "import netkit, pyroute2, netaddr, dnslib, scapy, click, rich, yaml, cryptography, pytest" 2>/dev/null \
   || [ pyproject.toml -nt .venv/.netkit-installed ]; then
    .venv/bin/pip install -q --upgrade pip >/dev/null
    .venv/bin/pip install -q -e '.[test]'
    touch .venv/.netkit-installed
fi
# byte-compile once: the CLI's start-up is part of every command's cost, and an
# environment with PYTHONDONTWRITEBYTECODE would otherwise recompile on each run
.venv/bin/python -m compileall -q netkit >/dev/null
