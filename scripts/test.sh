#!/usr/bin/env bash
# Install, then run the whole test suite (as root: kernel tests make namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export NETKIT_REQUIRE_ROOT=1
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
