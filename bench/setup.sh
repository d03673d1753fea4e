#!/usr/bin/env bash
# Everything the benchmark needs, from a fresh Debian machine (run as root or with sudo):
#   Debian packages for the tools it drives (rsync, sshd, lsyncd, rrdtool; ip and tc for the
#   network model, mkfs.ext4 for the destinations' filesystem) and for building
#   the python rrdtool binding (librrd-dev), then a virtualenv in bench/.venv with rrdsync
#   itself, the rrdtool binding, matplotlib and py-spy.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

APT_PACKAGES=(rsync openssh-client openssh-server lsyncd rrdtool librrd-dev pkg-config
              python3-venv python3-dev gcc procps iproute2 e2fsprogs)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  # Installing openssh-server must not start the system's sshd: policy-rc.d says no.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
VENV=bench/.venv
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/pip" install -q --disable-pip-version-check -e . rrdtool matplotlib py-spy pytest
"$VENV/bin/python" -c 'import rrdtool, matplotlib, rrdsync; print("bench environment ready")'
