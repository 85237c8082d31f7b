#!/usr/bin/env bash
# Sets everything up (see setup.sh) and traces the seed example.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
for backend in ptrace; do
  echo "--- logprobe trace --backend $backend foo -- fixtures/bin/seed"
  ./target/release/logprobe trace --backend "$backend" foo -- fixtures/bin/seed
done
