#!/usr/bin/env bash
# Sets everything up (see setup.sh) and runs every test: unit tests and the
# end-to-end tests that trace the fixtures with the real binary.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo test --release --locked -p logprobe -- --test-threads=2
# The DAP server driven by VS Code's own test client (tests/dap-node).
(cd tests/dap-node && npm ci --no-audit --no-fund --silent && node --test)
