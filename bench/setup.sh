#!/usr/bin/env bash
# Everything the benchmark needs, from a fresh Debian machine (run as root or with sudo):
#   Debian packages for the tools it drives (rsync, sshd, lsyncd, rrdtool; ip and tc for the
#   network model, mkfs.ext4 for the destinations' filesystem) and for building
#   the python rrdtool binding (librrd-dev), then a virtualenv in bench/.venv with rrdsync
#   itself, the rrdtool binding, matplotlib and py-spy.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

. tools/host-packages.sh
install_host_packages "${HOST_PACKAGES_BENCH[@]}"

PY=${PYTHON:-python3}
VENV=bench/.venv
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/pip" install -q --disable-pip-version-check -e . rrdtool matplotlib py-spy pytest
"$VENV/bin/python" -c 'import rrdtool, matplotlib, rrdsync; print("bench environment ready")'
