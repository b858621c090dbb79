#!/usr/bin/env bash
# Install everything MRKM needs on a Debian 12 machine, as root; idempotent.
#   1. Debian packages (routing daemons, Mininet, capture tools, strongSwan).
#   2. .venv: a virtual environment from Debian's /usr/bin/python3 with
#      --system-site-packages (Debian's `mininet` module lives there), holding
#      the pinned Python dependencies of requirements.txt and MRKM itself.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  frr frr-pythontools bird2 mininet
  tshark tcpdump nftables iptables iproute2 iputils-ping
  strongswan-charon strongswan-swanctl libstrongswan-extra-plugins libstrongswan-standard-plugins
  libnetfilter-queue-dev python3-venv python3-dev gcc make
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: these Debian packages are missing and installing them needs root: ${missing[*]}" >&2
    exit 1
  fi
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The packaged daemons must not run machine-wide: MRKM starts its own per namespace.
for unit in frr bird strongswan-starter strongswan; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$unit" 2>/dev/null; then
    echo "setup: note: the system service '$unit' is running; MRKM does not use it"
  fi
done

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import mininet' 2>/dev/null; then
  echo "setup: creating .venv from /usr/bin/python3 (with Debian's site packages for mininet)"
  rm -rf .venv
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
.venv/bin/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
echo "setup: ok ($(.venv/bin/python --version), cryptography $(.venv/bin/python -c 'import cryptography; print(cryptography.__version__)'))"
