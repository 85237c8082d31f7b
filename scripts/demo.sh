#!/usr/bin/env bash
# Sets everything up (see setup.sh) and traces the seed example with each
# backend: ptrace breakpoints, then eBPF uprobes.
set -euo pipefail
cd "$(dirname "$0")/.."
LOGPROBE_WITH_TOOLCHAINS=0 bash scripts/setup.sh
for backend in ptrace ebpf; do
  echo "--- logprobe trace --backend $backend foo -- fixtures/bin/seed"
  ./target/release/logprobe trace --backend "$backend" foo -- fixtures/bin/seed
done
