#!/usr/bin/env bash
# Checks the VS Code extension without VS Code: installs its exact dependencies
# (npm ci, from package-lock.json), then lint, type-check and unit tests.
set -euo pipefail
cd "$(dirname "$0")/../vscode-extension"
if ! command -v npm >/dev/null 2>&1; then
  echo "test-extension: npm not found: install Node.js 20 (apt-get install nodejs npm)" >&2
  exit 1
fi
npm ci --no-audit --no-fund --loglevel=error
npm run --silent lint
npm run --silent typecheck
npm test
