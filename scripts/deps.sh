#!/usr/bin/env bash
# Installs the Debian 12 packages kandil needs to build and test (skips apt when all are present).
set -euo pipefail
packages=(cmake ninja-build g++ pkg-config git
  libcli11-dev nlohmann-json3-dev libfmt-dev libpcre2-dev libutf8proc-dev
  libedit-dev libsqlite3-dev libcurl4-openssl-dev libtomlplusplus-dev libssl-dev
  libcpp-httplib-dev)
if [[ "${1:-}" == "--test" ]]; then
  packages+=(libgtest-dev libgmock-dev libbenchmark-dev clang libclang-rt-14-dev gcovr
    g++-aarch64-linux-gnu qemu-user-static)
  # Node.js + npm run the reference implementations (tests/js); machines of this kind ship them.
  command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
