# Debian packages the repository's scripts need on the host: one list per purpose, and the
# one function that installs them. Sourced (never run) by run-demo, run-tests and
# bench/setup.sh:
#
#   . tools/host-packages.sh
#   install_host_packages "${HOST_PACKAGES_TESTS[@]}"
#
# Packages are installed with --no-install-recommends, so every list names all it needs,
# including what a package only recommends or suggests. Verified on a fresh Debian 12 host.

# Podman with what makes it work on a plain Debian host, none of which `podman` depends on:
#   netavark, aardvark-dns  the network backend whose networks resolve container names
#                           (compose services find each other). They must come in the same
#                           apt-get call as podman: otherwise apt satisfies containers-common's
#                           "netavark | containernetworking-plugins" with the old CNI plugins,
#                           Podman settles on CNI for good, and names never resolve.
#   iptables                netavark sets up NAT and published ports with it; without it
#                           every container with a network fails ("netavark: No such file or
#                           directory (os error 2)"), image builds included
#   catatonit               the init of the pause image `podman kube play` builds
#   runc                    podman depends on "crun | runc" and apt would pick crun, which
#                           refuses cgroups v1 "hybrid" hosts (image/containers.conf)
#   podman-compose          compose files on Podman
HOST_PACKAGES_PODMAN=(podman netavark aardvark-dns iptables catatonit runc podman-compose)

# ./run-demo, besides the engine (HOST_PACKAGES_PODMAN unless Docker runs): curl for the
# readiness wait, debootstrap for a base image when no registry answers.
HOST_PACKAGES_DEMO=(curl debootstrap)

# ./run-tests: what the tests drive for real (rsync and sshd, rrdtool and rrdcached, the
# rrdtool binding's build, nss_wrapper, lsyncd for the benchmark's smoke test, promtool and
# the Prometheus server), Podman, and what the demo needs (the container tests run it).
HOST_PACKAGES_TESTS=("${HOST_PACKAGES_PODMAN[@]}" "${HOST_PACKAGES_DEMO[@]}" rsync openssh-client openssh-server rrdtool
                     rrdcached librrd-dev pkg-config python3-venv python3-dev gcc
                     libnss-wrapper lsyncd prometheus iproute2 e2fsprogs)

# bench/setup.sh: the tools it compares and the rrdtool binding's build.
HOST_PACKAGES_BENCH=(rsync openssh-client openssh-server lsyncd rrdtool librrd-dev pkg-config
                     python3-venv python3-dev gcc procps iproute2 e2fsprogs)

# install_host_packages PACKAGE...: installs those not installed yet (as root, or with sudo).
# A policy-rc.d that says "no" keeps the installs from starting services (openssh-server
# would start the system's sshd) and is removed again afterwards.
install_host_packages() {
  local p missing=() sudo="" policy=0 rc=0
  if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
    echo "not a Debian host: make sure the equivalents of these are installed: $*" >&2
    return 0
  fi
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  echo "installing Debian packages: ${missing[*]}" >&2
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod +x /usr/sbin/policy-rc.d
    policy=1
  fi
  # Another apt (unattended-upgrades on a new VM, a second script) may hold a lock:
  # wait for it (up to 10 minutes) instead of failing.
  local out tries=60
  while :; do
    out=$( { $sudo apt-get update -qq \
             && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
                  --no-install-recommends "${missing[@]}" >/dev/null; } 2>&1 ) && { rc=0; break; }
    rc=1
    tries=$((tries - 1))
    if [ "$tries" -le 0 ] || ! grep -qE "Could not get lock|Unable to (lock|acquire)" <<<"$out"
    then
      printf '%s\n' "$out" >&2
      break
    fi
    [ "$tries" -lt 59 ] || echo "apt is busy (another install holds its lock): waiting" >&2
    sleep 10
  done
  [ "$policy" -eq 0 ] || $sudo rm -f /usr/sbin/policy-rc.d
  return "$rc"
}
