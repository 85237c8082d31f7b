#!/usr/bin/env bash
# Sets everything up (see setup.sh) and runs every test:
#   1. the Rust unit tests and the end-to-end tests that trace the fixtures
#      with the real binary under every backend (CLI, values, DAP);
#   2. the DAP server driven by VS Code's own test client (tests/dap-node);
#   3. the VS Code extension's lint, type-check and unit tests;
#   4. the extension in a real VS Code (code-server + headless Chromium);
#   5. the fuzzer, 20 seconds per target (scripts/fuzz.sh, docs/fuzzing.md).
set -euo pipefail
cd "$(dirname "$0")/.."
LOGPROBE_WITH_VSCODE_E2E=1 bash scripts/setup.sh
cargo test --release --locked -p logprobe -- --test-threads=2
# A fixed seed: CI replays the same inputs each time (a new crash found by
# exploring with fresh seeds, `bash scripts/fuzz.sh`, comes with its fix).
FUZZ_SEED=20261205 bash scripts/fuzz.sh 20
(cd tests/dap-node && npm ci --no-audit --no-fund --silent && node --test)
bash scripts/test-extension.sh
# Screenshots of a test run go to a scratch directory, not over docs/.
shots="$(mktemp -d /tmp/logprobe-shots.XXXXXX)"
LOGPROBE_SCREENSHOT_DIR="$shots" bash scripts/test-vscode-e2e.sh
rm -rf "$shots"
